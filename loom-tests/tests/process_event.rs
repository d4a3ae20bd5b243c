//! The process-shared event (`raw/process_event.rs`) under the loom model
//! of the futex seam: no lost wake-up, a set followed at once by a clear
//! still wakes (and is reported to) the waiter, a timeout racing a set,
//! and a setter that dies between setting the word and waking.

use std::time::Instant;

use loom::sync::atomic::Ordering;
use loom::sync::Arc;
use loom::thread;
use verisync::__loom::process_event::RawProcessEvent;
use verisync::__loom::process_lock::{process_died, Word};

fn event(word: &Word) -> RawProcessEvent<'_> {
    RawProcessEvent::new(word)
}

#[test]
fn two_waiters_are_woken_by_one_set() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let word = Arc::new(Word::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let word = Arc::clone(&word);
                thread::spawn(move || assert!(event(&word).wait_until(None)))
            })
            .collect();
        event(&word).set();
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert!(event(&word).is_set());
    });
}

#[test]
fn a_set_cleared_at_once_still_wakes_the_waiter_and_reports_true() {
    loom::model(|| {
        let word = Arc::new(Word::new(0));
        let waiter = {
            let word = Arc::clone(&word);
            thread::spawn(move || event(&word).wait_until(None))
        };
        // Once the waiter announced that it sleeps (`SLEEPERS`), it is
        // inside its wait: a set and a clear now must reach it.
        while word.load(Ordering::Relaxed) & 2 == 0 {
            thread::yield_now();
        }
        event(&word).set();
        event(&word).clear();
        // Had the clear hidden the set, the waiter would sleep forever.
        assert!(waiter.join().unwrap());
        assert!(!event(&word).is_set());
    });
}

#[test]
fn a_timeout_racing_a_set_reports_what_happened() {
    loom::model(|| {
        let word = Arc::new(Word::new(0));
        let timed = {
            let word = Arc::clone(&word);
            thread::spawn(move || event(&word).wait_until(Some(Instant::now())))
        };
        let patient = {
            let word = Arc::clone(&word);
            thread::spawn(move || assert!(event(&word).wait_until(None)))
        };
        event(&word).set();
        // The timed waiter may report either; the patient one is woken.
        let _either = timed.join().unwrap();
        patient.join().unwrap();
    });
}

#[test]
fn a_timed_out_wait_with_nobody_setting_reports_false() {
    loom::model(|| {
        let word = Word::new(0);
        assert!(!event(&word).wait_until(Some(Instant::now())));
    });
}

#[test]
fn a_setter_that_dies_between_setting_and_waking_loses_no_waiter() {
    loom::model(|| {
        let word = Arc::new(Word::new(0));
        let waiter = {
            let word = Arc::clone(&word);
            thread::spawn(move || assert!(event(&word).wait_until(None)))
        };
        let _must_wake = event(&word).set_without_waking();
        process_died(); // production: the waiter's poll
        waiter.join().unwrap();
    });
}
