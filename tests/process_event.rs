//! `process::Event` across real processes (Linux): a set in one process
//! wakes waiters in another, timeouts, and garbage in its word.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::arena::{arena_base, offset_of, u32_at, WORD_AT};
use common::{with_watchdog, PATIENCE};
use verisync::process::{self, Event, Lock};

fn set_after_a_while(event: Event) {
    std::thread::sleep(Duration::from_millis(30));
    event.set();
}

#[test]
fn a_set_in_a_child_wakes_the_parents_wait() {
    with_watchdog(PATIENCE, || {
        let event = Event::new().unwrap();
        let child = process::spawn(set_after_a_while, event.clone()).unwrap();
        event.wait();
        assert!(event.is_set());
        assert_eq!(child.join(), Ok(()));
    });
}

fn wait_in_child(event: Event) -> bool {
    event.wait_timeout(PATIENCE)
}

#[test]
fn a_set_in_the_parent_wakes_every_waiting_child() {
    with_watchdog(PATIENCE * 2, || {
        let event = Event::new().unwrap();
        let children: Vec<_> = (0..3)
            .map(|_| process::spawn(wait_in_child, event.clone()).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        let started = Instant::now();
        event.set();
        for child in children {
            assert_eq!(child.join(), Ok(true));
        }
        assert!(started.elapsed() < PATIENCE);
    });
}

fn wait_for_a_while(event: Event) -> (bool, u128) {
    let started = Instant::now();
    let set = event.wait_timeout(Duration::from_millis(50));
    (set, started.elapsed().as_millis())
}

#[test]
fn wait_timeout_times_out_in_another_process_and_clear_takes_effect() {
    with_watchdog(PATIENCE, || {
        let event = Event::new().unwrap();
        let (set, waited) = process::spawn(wait_for_a_while, event.clone())
            .unwrap()
            .join()
            .unwrap();
        assert!(!set);
        assert!(waited >= 50, "gave up after {waited} ms");
        event.set();
        event.set(); // setting a set event changes nothing
        assert!(
            process::spawn(wait_for_a_while, event.clone())
                .unwrap()
                .join()
                .unwrap()
                .0
        );
        event.clear();
        assert!(!event.is_set());
        assert!(!event.wait_timeout(Duration::from_millis(5)));
        assert!(!event.wait_timeout(Duration::ZERO));
    });
}

#[test]
fn garbage_in_the_word_never_hangs_a_timed_wait() {
    with_watchdog(PATIENCE * 2, || {
        let event = Event::new().unwrap();
        let base = arena_base(&Lock::new().unwrap());
        let word = u32_at(base, offset_of(&event) + WORD_AT);
        for garbage in [u32::MAX, 0xDEAD_BEEF, 2, 0xFFFF_FFFC, 0x8000_0000, 1] {
            word.store(garbage, Ordering::SeqCst);
            let started = Instant::now();
            let _ = event.wait_timeout(Duration::from_millis(20));
            assert!(started.elapsed() < Duration::from_secs(5), "{garbage:#x}");
            // It works as an event again.
            event.set();
            assert!(event.is_set() && event.wait_timeout(Duration::from_millis(5)));
            event.clear();
            assert!(!event.is_set(), "{garbage:#x}");
            assert!(
                !event.wait_timeout(Duration::from_millis(5)),
                "{garbage:#x}"
            );
        }
    });
}

#[test]
fn garbage_event_handles_are_errors() {
    let event = Event::new().unwrap();
    let json = serde_json::to_value(&event).unwrap();
    assert!(serde_json::from_value::<Event>(json.clone()).is_ok());
    for (field, value) in [("recorded", 1u64), ("kind", 1), ("tag", 0), ("offset", 0)] {
        let mut garbage = json.clone();
        garbage[field] = value.into();
        let error = serde_json::from_value::<Event>(garbage).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not a valid process-shared handle"),
            "{field}: {error}"
        );
    }
    assert!(serde_json::from_value::<Lock>(json).is_err());
}
