//! The process-shared event (`raw/process_event.rs`) under the loom model
//! of the futex seam: no lost wake-up, a set followed at once by a clear
//! still wakes (and is reported to) the waiter, a timeout racing a set,
//! and a setter that dies between setting the word and waking.

use std::time::Instant;

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::__loom::process_event::RawProcessEvent;
use verisync::__loom::process_lock::{process_died, Word};

fn event(word: &Word) -> RawProcessEvent<'_> {
    RawProcessEvent::new(word)
}

/// A word and what the setter writes before it sets (`Relaxed`: only the
/// event's own `Release`/`Acquire` can make a waiter see it).
struct Published {
    word: Word,
    data: AtomicU32,
}

impl Published {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            word: Word::new(0),
            data: AtomicU32::new(0),
        })
    }

    /// Writes the data, then sets the event.
    fn publish(&self) {
        self.data.store(42, Ordering::Relaxed);
        event(&self.word).set();
    }

    /// What a waiter that saw the set must find: the setter's data.
    fn assert_published(&self) {
        assert_eq!(
            self.data.load(Ordering::Relaxed),
            42,
            "a waiter returned `true` without seeing what the setter wrote before its set"
        );
    }
}

#[test]
fn two_waiters_are_woken_by_one_set_and_see_what_the_setter_wrote() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let shared = Published::new();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    assert!(event(&shared.word).wait_until(None));
                    shared.assert_published();
                    // Nobody clears: a woken waiter sees it set.
                    assert!(event(&shared.word).is_set());
                })
            })
            .collect();
        shared.publish();
        for waiter in waiters {
            waiter.join().unwrap();
        }
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

/// How often the timed waiter reported `false` and `true`, over every
/// execution loom explores (outside the model: plain atomics).
static OUTCOMES: [std::sync::atomic::AtomicUsize; 2] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

#[test]
fn a_timeout_racing_a_set_reports_what_happened() {
    loom::model(|| {
        let shared = Published::new();
        let timed = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let was_set = event(&shared.word).wait_until(Some(Instant::now()));
                if was_set {
                    // `true` only for a set it saw: the setter's data too.
                    shared.assert_published();
                }
                was_set
            })
        };
        let patient = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                assert!(event(&shared.word).wait_until(None));
                shared.assert_published();
            })
        };
        shared.publish();
        // The timed waiter reports either, as it ran before or after the
        // set (counted: both must happen); the patient one is woken. Once
        // the set is done, a timed wait reports `true` at once.
        let was_set = timed.join().unwrap();
        OUTCOMES[usize::from(was_set)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        patient.join().unwrap();
        assert!(event(&shared.word).wait_until(Some(Instant::now())));
    });
    let [timed_out, saw_the_set] = OUTCOMES
        .each_ref()
        .map(|outcome| outcome.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        timed_out > 0 && saw_the_set > 0,
        "the timed wait reported false {timed_out} times and true {saw_the_set} times: \
         both orders must be explored"
    );
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
