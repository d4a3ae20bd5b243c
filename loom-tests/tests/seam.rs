//! The loom model of the parking seam, tested on its own: it must wake
//! exactly whom it says, hand over tokens, time out at any point, and — the
//! point of it all — turn a lost wake-up into a loom "deadlock" failure.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::__loom::seam::{
    park, unpark_filter, unpark_one, FilterOp, ParkResult, ParkToken, UnparkToken,
};

const KEY: usize = 0x1000;

/// A one-shot flag built directly on the seam, the way every primitive
/// uses it: set the flag, then unpark; a waiter parks only if the flag is
/// still clear when `validate` runs under the queue lock.
fn wait_for_flag(flag: &AtomicUsize) -> ParkResult {
    // SAFETY: validate only loads an atomic.
    unsafe {
        park(
            KEY,
            || flag.load(Ordering::Acquire) == 0,
            || {},
            |_, _| {},
            ParkToken(0),
            None,
        )
    }
}

#[test]
fn unpark_after_validate_wakes_the_waiter() {
    loom::model(|| {
        let flag = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let flag = Arc::clone(&flag);
            thread::spawn(move || wait_for_flag(&flag))
        };
        flag.store(1, Ordering::Release);
        // SAFETY: the callback does nothing.
        let woken = unsafe { unpark_one(KEY, |_| UnparkToken(7)) };
        let result = waiter.join().unwrap();
        match result {
            ParkResult::Unparked(token) => {
                assert_eq!(token, UnparkToken(7));
                assert_eq!(woken.unparked_threads, 1);
            }
            ParkResult::Invalid => assert_eq!(woken.unparked_threads, 0),
            ParkResult::TimedOut => panic!("an untimed park timed out"),
        }
    });
}

#[test]
fn a_lost_unpark_is_reported_as_a_deadlock() {
    verisync_loom_tests::assert_loom_reports_deadlock(
        "unpark_before_the_state_change_loses_the_wake_up",
    );
}

#[test]
#[ignore = "fails by design; run in a child process by a_lost_unpark_is_reported_as_a_deadlock"]
fn unpark_before_the_state_change_loses_the_wake_up() {
    loom::model(|| {
        let flag = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let flag = Arc::clone(&flag);
            thread::spawn(move || wait_for_flag(&flag))
        };
        // The bug: unpark first, then set the flag. A waiter that validates
        // between the two parks forever, and loom must say so.
        // SAFETY: the callback does nothing.
        unsafe { unpark_one(KEY, |_| UnparkToken(0)) };
        flag.store(1, Ordering::Release);
        waiter.join().unwrap();
    });
}

/// A timed park racing an unpark either times out or takes the hand-off,
/// never both or neither; across the executions both happen, and an unpark
/// that wins the race reports both `be_fair` answers.
#[test]
fn a_timed_park_either_times_out_or_takes_the_hand_off() {
    use std::sync::atomic::{AtomicBool as Seen, Ordering as SeenOrdering};
    static SEEN: [Seen; 3] = [const { Seen::new(false) }; 3];
    loom::model(|| {
        let timed_out_calls = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let timed_out_calls = Arc::clone(&timed_out_calls);
            thread::spawn(move || {
                // SAFETY: the callbacks only touch an atomic.
                unsafe {
                    park(
                        KEY,
                        || true,
                        || {},
                        |_, was_last| {
                            assert!(was_last);
                            timed_out_calls.fetch_add(1, Ordering::Relaxed);
                        },
                        ParkToken(0),
                        Some(std::time::Instant::now()),
                    )
                }
            })
        };
        // SAFETY: the callback does nothing.
        let woken = unsafe { unpark_one(KEY, |_| UnparkToken(3)) };
        let result = waiter.join().unwrap();
        match result {
            ParkResult::Unparked(token) => {
                assert_eq!(token, UnparkToken(3));
                assert_eq!(woken.unparked_threads, 1);
                assert_eq!(timed_out_calls.load(Ordering::Relaxed), 0);
                SEEN[usize::from(woken.be_fair)].store(true, SeenOrdering::Relaxed);
            }
            ParkResult::TimedOut => {
                assert_eq!(woken.unparked_threads, 0);
                assert_eq!(timed_out_calls.load(Ordering::Relaxed), 1);
                SEEN[2].store(true, SeenOrdering::Relaxed);
            }
            ParkResult::Invalid => panic!("validate always accepts"),
        }
    });
    let seen = SEEN.each_ref().map(|seen| seen.load(SeenOrdering::Relaxed));
    assert_eq!(
        seen, [true; 3],
        "[woken with be_fair false, woken with be_fair true, timed out]"
    );
}

#[test]
fn unpark_filter_serves_in_arrival_order_and_reports_the_rest() {
    loom::model(|| {
        let parked = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (1..=2)
            .map(|token| {
                let parked = Arc::clone(&parked);
                thread::spawn(move || {
                    // SAFETY: validate only touches an atomic.
                    unsafe {
                        park(
                            KEY,
                            || {
                                parked.fetch_add(1, Ordering::Relaxed);
                                true
                            },
                            || {},
                            |_, _| {},
                            ParkToken(token),
                            None,
                        )
                    }
                })
            })
            .collect();
        // Wait (by yielding) until both are queued, then wake only token 2.
        while parked.load(Ordering::Relaxed) < 2 {
            thread::yield_now();
        }
        let mut seen = Vec::new();
        // SAFETY: filter and callback only touch local state.
        let result = unsafe {
            unpark_filter(
                KEY,
                |token| {
                    seen.push(token.0);
                    if token.0 == 2 {
                        FilterOp::Unpark
                    } else {
                        FilterOp::Skip
                    }
                },
                |result| {
                    assert!(result.have_more_threads);
                    UnparkToken(0)
                },
            )
        };
        assert_eq!(result.unparked_threads, 1);
        assert_eq!(seen.len(), 2);
        // SAFETY: the callback does nothing.
        let last = unsafe { unpark_one(KEY, |_| UnparkToken(0)) };
        assert_eq!(last.unparked_threads, 1);
        assert!(!last.have_more_threads);
        for waiter in waiters {
            assert!(matches!(waiter.join().unwrap(), ParkResult::Unparked(_)));
        }
    });
}

/// The model chooses `be_fair` at each unpark, independently of the others
/// (as production's fairness timer may expire between any two): over the
/// executions of one model, two successive unparks of two parked threads
/// report all four combinations.
#[test]
fn be_fair_is_chosen_at_every_unpark_independently() {
    use std::sync::atomic::{AtomicBool as Seen, Ordering as SeenOrdering};
    static SEEN: [Seen; 4] = [const { Seen::new(false) }; 4];
    loom::model(|| {
        let parked = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let parked = Arc::clone(&parked);
                thread::spawn(move || {
                    // SAFETY: validate only touches an atomic.
                    unsafe {
                        park(
                            KEY,
                            || {
                                parked.fetch_add(1, Ordering::Relaxed);
                                true
                            },
                            || {},
                            |_, _| {},
                            ParkToken(0),
                            None,
                        )
                    }
                })
            })
            .collect();
        while parked.load(Ordering::Relaxed) < 2 {
            thread::yield_now();
        }
        // SAFETY: the callbacks do nothing.
        let first = unsafe { unpark_one(KEY, |_| UnparkToken(0)) };
        // SAFETY: as above.
        let second = unsafe { unpark_one(KEY, |_| UnparkToken(0)) };
        assert_eq!((first.unparked_threads, second.unparked_threads), (1, 1));
        SEEN[usize::from(first.be_fair) * 2 + usize::from(second.be_fair)]
            .store(true, SeenOrdering::Relaxed);
        for waiter in waiters {
            assert!(matches!(waiter.join().unwrap(), ParkResult::Unparked(_)));
        }
    });
    for (combination, seen) in SEEN.iter().enumerate() {
        assert!(
            seen.load(SeenOrdering::Relaxed),
            "no execution had be_fair = ({}, {})",
            combination / 2 == 1,
            combination % 2 == 1
        );
    }
}
