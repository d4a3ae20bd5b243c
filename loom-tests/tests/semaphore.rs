//! loom: `verisync::Semaphore` conserves permits, never lets more holders in
//! than permits exist, serves waiters in order, and loses no permit when a
//! waiter times out as permits are handed to it. The seam model chooses at
//! every wake-up whether the serve hands permits off or lets the woken
//! compete (`be_fair`), so every model runs both ways, mixed.

use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::Semaphore;

#[test]
fn holders_never_exceed_permits_and_permits_are_conserved() {
    loom::model(|| {
        let semaphore = Arc::new(Semaphore::new(1));
        let holders = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (semaphore, holders) = (Arc::clone(&semaphore), Arc::clone(&holders));
                thread::spawn(move || {
                    let _permit = semaphore.acquire();
                    assert_eq!(
                        holders.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders of one permit"
                    );
                    holders.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        {
            let _permit = semaphore.acquire();
            assert_eq!(
                holders.fetch_add(1, Ordering::SeqCst),
                0,
                "two holders of one permit"
            );
            holders.fetch_sub(1, Ordering::SeqCst);
        }
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(semaphore.available_permits(), 1);
    });
}

/// The release hands the permit to the queued waiter exactly as its timeout
/// fires: it either holds the permit or the permit is back — never neither.
#[test]
fn a_timed_out_waiter_loses_no_permit() {
    loom::model(|| {
        let semaphore = Arc::new(Semaphore::new(1));
        let held = semaphore.acquire();
        let waiter = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || {
                semaphore
                    .try_acquire_for(Duration::from_secs(1))
                    .map(|permit| permit.count())
                    .unwrap_or(0)
            })
        };
        drop(held);
        waiter.join().unwrap();
        assert_eq!(
            semaphore.available_permits(),
            1,
            "a permit was lost or duplicated"
        );
    });
}

/// A head waiter for two permits times out; the waiter for one behind it
/// must then be served from the permit that was there all along.
#[test]
fn a_head_that_times_out_lets_the_next_waiter_through() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let semaphore = Arc::new(Semaphore::new(0));
        let big = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || {
                semaphore
                    .try_acquire_many_for(2, Duration::from_secs(1))
                    .map(|permit| permit.count())
                    .unwrap_or(0)
            })
        };
        let small = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire().count())
        };
        semaphore.release(1).unwrap();
        // The only permit can satisfy only the small waiter; if it were left
        // stuck behind the big one, this join would deadlock.
        assert_eq!(small.join().unwrap(), 1);
        assert_eq!(big.join().unwrap(), 0);
        assert_eq!(semaphore.available_permits(), 1);
    });
}

/// Permits released while a big request waits are handed to it, not taken
/// by a later, smaller request that jumps the queue.
#[test]
fn a_later_small_request_does_not_overtake_a_queued_big_one() {
    loom::model(|| {
        let semaphore = Arc::new(Semaphore::new(1));
        let big = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire_many(2).count())
        };
        // Main: a later, non-blocking request for one permit. Strict FIFO:
        // it may only succeed while the big request is not yet queued.
        let took_one = semaphore
            .try_acquire()
            .map(|permit| permit.forget())
            .is_some();
        semaphore.release(if took_one { 2 } else { 1 }).unwrap();
        assert_eq!(big.join().unwrap(), 2);
        // Both permits came back when the big request's guard was dropped.
        assert_eq!(semaphore.available_permits(), 2);
    });
}

#[test]
fn bounded_release_never_exceeds_the_bound() {
    loom::model(|| {
        let semaphore = Arc::new(Semaphore::bounded(1));
        let permit_user = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || drop(semaphore.acquire()))
        };
        let refused = semaphore.release(1).is_err();
        permit_user.join().unwrap();
        assert!(refused || semaphore.available_permits() == 1);
        assert!(semaphore.available_permits() <= 1);
    });
}

/// Two threads take two permits each out of three, with `forget` and a
/// manual `release` in the mix: no permit is created or destroyed.
#[test]
fn acquire_many_forget_and_release_conserve_permits() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let semaphore = Arc::new(Semaphore::new(3));
        let holders = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let (semaphore, holders) = (Arc::clone(&semaphore), Arc::clone(&holders));
                thread::spawn(move || {
                    let permit = semaphore.acquire_many(2);
                    assert!(
                        holders.fetch_add(2, Ordering::SeqCst) + 2 <= 3,
                        "more permits held than exist"
                    );
                    holders.fetch_sub(2, Ordering::SeqCst);
                    if worker == 0 {
                        permit.forget();
                        semaphore.release(2).unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(semaphore.available_permits(), 3);
    });
}

/// A release that satisfies the first waiter but not the bigger one behind
/// it: the first must keep its permit (it could not take it back past the
/// starving waiter), and both must finish once it is returned.
#[test]
fn a_serve_that_leaves_a_waiter_starving_strands_nobody() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let semaphore = Arc::new(Semaphore::new(0));
        let small = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire().count())
        };
        let big = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire_many(2).count())
        };
        semaphore.release(2).unwrap();
        assert_eq!(small.join().unwrap(), 1);
        assert_eq!(big.join().unwrap(), 2);
        assert_eq!(semaphore.available_permits(), 2);
    });
}

/// A manual `release` racing the serve that passes the only permit of a
/// `bounded(1)` to a queued waiter. The serve sets that permit aside for the
/// waiter while it decides how to wake it; the release must still count it,
/// or it is accepted, the permit comes back on top of it, and the count
/// exceeds the bound (and `limit - available` underflows later).
#[test]
fn a_release_racing_a_serve_respects_the_bound() {
    loom::model(|| {
        let semaphore = Arc::new(Semaphore::bounded(1));
        let held = semaphore.acquire();
        let waiter = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || drop(semaphore.acquire()))
        };
        let releaser = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || {
                // Accepted only if the waiter took the permit first; then
                // its guard's drop finds the count full and discards it.
                let _ = semaphore.release(1);
                assert!(
                    semaphore.available_permits() <= 1,
                    "a bounded(1) semaphore holds {} permits",
                    semaphore.available_permits()
                );
            })
        };
        drop(held);
        assert!(
            semaphore.available_permits() <= 1,
            "a bounded(1) semaphore holds {} permits",
            semaphore.available_permits()
        );
        waiter.join().unwrap();
        releaser.join().unwrap();
        assert_eq!(semaphore.available_permits(), 1);
    });
}

/// Waits (by yielding) until some thread is queued on `semaphore`.
fn until_a_waiter_is_queued(semaphore: &Semaphore) {
    while !verisync::__loom::semaphore_has_queued_waiters(semaphore) {
        thread::yield_now();
    }
}

/// A request for 2 is queued on an empty semaphore; a release of 1 serves
/// nobody, but the permit is partly what the queued request waits for: a
/// later request for 1 must not take it.
#[test]
fn a_permit_released_to_a_waiting_big_request_is_kept_for_it() {
    loom::model(|| {
        let semaphore = Arc::new(Semaphore::new(0));
        let big = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire_many(2).count())
        };
        until_a_waiter_is_queued(&semaphore);
        semaphore.release(1).unwrap();
        assert!(
            semaphore.try_acquire().is_none(),
            "a later request for 1 took the permit a queued request for 2 waits for"
        );
        semaphore.release(1).unwrap();
        assert_eq!(big.join().unwrap(), 2);
        assert_eq!(semaphore.available_permits(), 2);
    });
}

/// A release that wakes a queued waiter for 1 gives the permit back to
/// compete for unless fairness is due (the seam's `be_fair`, which the
/// model chooses both ways), so in some executions the releasing thread
/// takes it again at once: barging, which spares the contended path a
/// context switch per acquire. A semaphore that hands off at every wake —
/// for instance one that marks a waiter parked on an empty count as
/// starving — never lets it. Whether barging happened is counted across
/// the whole model, since loom asserts inside one execution only.
#[test]
fn a_woken_waiter_competes_with_running_threads_unless_fairness_is_due() {
    let barged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let barged = std::sync::Arc::clone(&barged);
        let executions = std::sync::Arc::clone(&executions);
        loom::model(move || {
            executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let semaphore = Arc::new(Semaphore::new(0));
            let waiter = {
                let semaphore = Arc::clone(&semaphore);
                thread::spawn(move || drop(semaphore.acquire()))
            };
            until_a_waiter_is_queued(&semaphore);
            semaphore.release(1).unwrap();
            if let Some(permit) = semaphore.try_acquire() {
                barged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(permit);
            }
            waiter.join().unwrap();
            assert_eq!(semaphore.available_permits(), 1);
        });
    }
    let barged = barged.load(std::sync::atomic::Ordering::Relaxed);
    let executions = executions.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        barged > 0,
        "in none of {executions} executions did the releasing thread take back \
         the permit it gave a woken waiter: every wake was a hand-off"
    );
}

/// Two requests for 1 are queued on an empty semaphore; a release of 1
/// serves the first and stops at the second with no permit left over.
/// Nothing is left to protect, so unless fairness is due the woken waiter
/// competes for its permit again: in some execution the releasing thread
/// takes it back. (A serve that marked the queue starving whenever it
/// stopped — even with no permit left — made every such wake a hand-off.)
#[test]
fn a_serve_stopping_with_no_permit_left_is_not_a_hand_off() {
    let barged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let barged = std::sync::Arc::clone(&barged);
        let executions = std::sync::Arc::clone(&executions);
        // One preemption is enough for the executions that barge, and keeps
        // three threads cheap (35,000 executions at the suite's bound of 2).
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(1);
        builder.check(move || {
            executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let semaphore = Arc::new(Semaphore::new(0));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let semaphore = Arc::clone(&semaphore);
                    thread::spawn(move || drop(semaphore.acquire()))
                })
                .collect();
            while verisync::__loom::semaphore_parked_waiters(&semaphore) < 2 {
                thread::yield_now();
            }
            semaphore.release(1).unwrap();
            if let Some(permit) = semaphore.try_acquire() {
                barged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(permit);
            }
            semaphore.release(1).unwrap();
            for waiter in waiters {
                waiter.join().unwrap();
            }
            assert_eq!(semaphore.available_permits(), 2);
        });
    }
    let barged = barged.load(std::sync::atomic::Ordering::Relaxed);
    let executions = executions.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        barged > 0,
        "in none of {executions} executions did the releasing thread take back \
         the permit a serve stopping with nothing left gave a woken waiter: every \
         such wake was a hand-off"
    );
}

/// A request for 2 parks while 1 permit is free: it marks itself starving
/// as it parks, so the free permit is kept for it, and a later request for
/// 1 does not take it (before any release serves the queue).
#[test]
fn a_big_request_parking_with_a_permit_free_keeps_it() {
    loom::model(|| {
        let semaphore = Arc::new(Semaphore::new(1));
        let big = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire_many(2).count())
        };
        until_a_waiter_is_queued(&semaphore);
        assert!(
            semaphore.try_acquire().is_none(),
            "a later request for 1 took the permit a queued request for 2 waits for"
        );
        semaphore.release(1).unwrap();
        assert_eq!(big.join().unwrap(), 2);
        assert_eq!(semaphore.available_permits(), 2);
    });
}

/// A release refused by the bound while a request waits leaves the queue
/// marked: the next release serves the waiter (it used to be stranded if
/// the refusal cleared the marks).
#[test]
fn a_refused_release_strands_no_waiter() {
    loom::model(|| {
        let semaphore = Arc::new(Semaphore::bounded(2));
        let held = semaphore.acquire();
        let big = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire_many(2).count())
        };
        until_a_waiter_is_queued(&semaphore);
        assert!(
            semaphore.release(5).is_err(),
            "a bounded(2) semaphore took 5 more"
        );
        drop(held);
        assert_eq!(big.join().unwrap(), 2);
        assert_eq!(semaphore.available_permits(), 2);
    });
}
