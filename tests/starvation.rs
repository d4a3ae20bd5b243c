//! Fairness: nobody waits forever.
//!
//! - A thread `lock()`ing a `Mutex` (or `ReentrantLock`) while two others
//!   hammer lock/unlock in tight loops gets in within a bounded time
//!   (eventual fairness hands the lock to a waiter of about a millisecond).
//! - `MutexGuard::unlock_fair` hands the lock straight to the waiter.
//! - A `Semaphore` serves waiters first come, first served: a waiter for 3
//!   permits, queued first, is not overtaken by later waiters for 1, and a
//!   stream of small acquirers cannot starve it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use verisync::{Mutex, MutexGuard, ReentrantLock, Semaphore};

use common::{join_scoped, kernel_thread_id, wait_for, wait_until_asleep, with_watchdog, PATIENCE};

/// The bound a waiter must get in within; with eventual fairness it is a
/// few milliseconds, so this leaves room for a loaded machine.
const BOUNDED: Duration = Duration::from_secs(1);

/// How many times each starvation check is repeated.
const ATTEMPTS: usize = 10;

/// Two threads hammer `lock_unlock` until told to stop (or a cap, so a
/// broken test cannot spin forever); meanwhile `victim` is timed
/// `ATTEMPTS` times. Returns the longest wait.
fn longest_wait_while_hammered(
    lock_unlock: impl Fn() + Sync,
    victim: impl Fn() -> Option<Duration>,
) -> Duration {
    const CAP: usize = 50_000_000;
    let stop = AtomicBool::new(false);
    let rounds = [AtomicUsize::new(0), AtomicUsize::new(0)];
    std::thread::scope(|scope| {
        let hammers: Vec<_> = rounds
            .iter()
            .map(|count| {
                let (stop, lock_unlock) = (&stop, &lock_unlock);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) && count.load(Ordering::Relaxed) < CAP {
                        lock_unlock();
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mut longest = Duration::ZERO;
        for attempt in 0..ATTEMPTS {
            // Both hammers are really going before the victim tries.
            let before: Vec<usize> = rounds.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            wait_for("both hammers to run", || {
                rounds
                    .iter()
                    .zip(&before)
                    .all(|(count, before)| count.load(Ordering::Relaxed) > before + 100)
            });
            let waited = victim()
                .unwrap_or_else(|| panic!("attempt {attempt}: starved for the whole {PATIENCE:?}"));
            longest = longest.max(waited);
        }
        stop.store(true, Ordering::Relaxed);
        for hammer in hammers {
            join_scoped(hammer);
        }
        longest
    })
}

#[test]
fn a_mutex_waiter_gets_in_while_two_threads_hammer_it() {
    with_watchdog(PATIENCE * 2, || {
        let mutex = Mutex::new(0u64);
        let longest = longest_wait_while_hammered(
            || *mutex.lock() += 1,
            || {
                let started = Instant::now();
                let mut guard = mutex.try_lock_for(PATIENCE)?;
                let waited = started.elapsed();
                *guard += 1;
                Some(waited)
            },
        );
        assert!(
            longest < BOUNDED,
            "a waiter needed {longest:?} to get the mutex"
        );
    });
}

#[test]
fn a_blocking_lock_gets_in_while_two_threads_hammer_it() {
    with_watchdog(PATIENCE * 2, || {
        let mutex = Mutex::new(0u64);
        let longest = longest_wait_while_hammered(
            || *mutex.lock() += 1,
            || {
                let started = Instant::now();
                *mutex.lock() += 1;
                Some(started.elapsed())
            },
        );
        assert!(longest < BOUNDED, "lock() needed {longest:?}");
    });
}

#[test]
fn a_reentrant_lock_waiter_gets_in_while_two_threads_hammer_it() {
    with_watchdog(PATIENCE * 2, || {
        let lock = ReentrantLock::new(());
        let longest = longest_wait_while_hammered(
            || {
                let _outer = lock.lock();
                let _inner = lock.lock();
            },
            || {
                let started = Instant::now();
                let guard = lock.lock();
                let waited = started.elapsed();
                assert!(lock.is_owned_by_current_thread());
                drop(guard);
                Some(waited)
            },
        );
        assert!(longest < BOUNDED, "a waiter needed {longest:?}");
    });
}

/// Two waiters park on a held mutex; the holder lets go with `unlock_fair`,
/// which hands the lock to the first waiter, and that one hands it on with
/// `unlock_fair` to the second before it can take it back itself.
///
/// The second hand-off is the telling one: it follows the first by
/// microseconds, when eventual fairness (which also hands the lock over,
/// about once a millisecond) has just been used up, so a plain unlock there
/// would let the first waiter barge straight back in.
#[test]
fn unlock_fair_hands_the_lock_to_the_waiter() {
    with_watchdog(PATIENCE, || {
        for round in 0..5 {
            let mutex = Mutex::new(Vec::new());
            let guard = mutex.lock();
            std::thread::scope(|scope| {
                let mutex = &mutex;
                let (send, receive) = std::sync::mpsc::channel();
                let first_send = send.clone();
                let first = scope.spawn(move || {
                    first_send.send(kernel_thread_id()).unwrap();
                    let mut guard = mutex.lock();
                    guard.push("first");
                    MutexGuard::unlock_fair(guard);
                    // Handed to the second waiter: by the time this thread
                    // has the lock again, the second one has been in.
                    let seen = mutex.lock().clone();
                    assert_eq!(
                        seen,
                        ["first", "second"],
                        "round {round}: the first barged back in"
                    );
                });
                // Let the first waiter reach its lock() and park in it, then
                // the second behind it.
                wait_until_asleep(receive.recv().unwrap());
                let second = scope.spawn(move || {
                    send.send(kernel_thread_id()).unwrap();
                    mutex.lock().push("second");
                });
                wait_until_asleep(receive.recv().unwrap());
                MutexGuard::unlock_fair(guard);
                // The lock went to the longest waiter, not back into the pool.
                let seen = mutex.lock().clone();
                assert_eq!(
                    seen.first(),
                    Some(&"first"),
                    "round {round}: the holder barged in"
                );
                join_scoped(first);
                join_scoped(second);
            });
        }
    });
}

#[test]
fn unlock_fair_without_waiters_just_unlocks() {
    let mutex = Mutex::new(1);
    MutexGuard::unlock_fair(mutex.lock());
    assert!(!mutex.is_locked());
    assert_eq!(*mutex.try_lock().expect("free"), 1);
}

#[test]
fn a_big_semaphore_waiter_is_not_overtaken_by_later_small_ones() {
    with_watchdog(PATIENCE, || {
        let semaphore = Semaphore::new(2);
        let order = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            let (semaphore, order) = (&semaphore, &order);
            let big = scope.spawn(move || {
                let permit = semaphore
                    .try_acquire_many_for(3, PATIENCE)
                    .expect("the big waiter starved");
                order.lock().push("big");
                drop(permit);
            });
            // While the big waiter is queued, a free permit is refused to a
            // newcomer: that is how we know it is in line.
            wait_for("the big waiter to queue", || {
                semaphore.try_acquire().is_none()
            });
            assert_eq!(semaphore.available_permits(), 2);

            let (send, receive) = std::sync::mpsc::channel();
            let small: Vec<_> = (0..3)
                .map(|_| {
                    let send = send.clone();
                    scope.spawn(move || {
                        send.send(kernel_thread_id()).unwrap();
                        drop(send);
                        let permit = semaphore
                            .try_acquire_for(PATIENCE)
                            .expect("a small waiter starved");
                        order.lock().push("small");
                        permit.forget();
                    })
                })
                .collect();
            drop(send);
            // Give the small waiters the chance to grab the two free
            // permits; they must queue behind the big one instead.
            for tid in receive.iter() {
                wait_until_asleep(tid);
            }
            assert_eq!(
                semaphore.available_permits(),
                2,
                "a later small waiter took permits ahead of the big one"
            );
            assert!(order.lock().is_empty());

            semaphore.release(1).unwrap();
            join_scoped(big);
            for waiter in small {
                join_scoped(waiter);
            }
        });
        assert_eq!(*order.lock(), ["big", "small", "small", "small"]);
        assert_eq!(
            semaphore.available_permits(),
            0,
            "three small permits were kept"
        );
    });
}

#[test]
fn small_acquirers_hammering_cannot_starve_a_big_one() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::new(3);
        let longest = longest_wait_while_hammered(
            || drop(semaphore.acquire()),
            || {
                let started = Instant::now();
                let permit = semaphore.try_acquire_many_for(3, PATIENCE)?;
                let waited = started.elapsed();
                drop(permit);
                Some(waited)
            },
        );
        assert!(longest < BOUNDED, "acquire_many(3) needed {longest:?}");
        assert_eq!(semaphore.available_permits(), 3);
    });
}

/// Three waiters queue in order for 1, 1 and 2 permits; two releases follow
/// back to back (1, then 2). The first release serves the first waiter.
/// After the second, two permits are free and the second waiter, now at
/// the head of the queue, wants one: it must get it promptly, without any
/// further release and without waiting for someone else's timeout.
///
/// The releases come microseconds apart, so the second one usually falls
/// inside the fairness timer the first one reset, and exercises the
/// "wake and let them compete" serve rather than the hand-off one.
#[test]
fn back_to_back_releases_reach_the_head_of_the_queue() {
    with_watchdog(PATIENCE, || {
        for round in 0..5 {
            let semaphore = Semaphore::new(0);
            std::thread::scope(|scope| {
                let semaphore = &semaphore;
                let (send, receive) = std::sync::mpsc::channel();
                // (permits wanted, how long the waiter may wait)
                let plan = [(1, PATIENCE), (1, BOUNDED), (2, PATIENCE)];
                let waiters: Vec<_> = plan
                    .into_iter()
                    .map(|(wanted, patience)| {
                        let send = send.clone();
                        let waiter = scope.spawn(move || {
                            send.send(kernel_thread_id()).unwrap();
                            let permit = semaphore.try_acquire_many_for(wanted, patience);
                            permit.map(|permit| permit.forget()).is_some()
                        });
                        // Queue strictly in this order.
                        wait_until_asleep(receive.recv().unwrap());
                        waiter
                    })
                    .collect();
                semaphore.release(1).unwrap();
                semaphore.release(2).unwrap();
                let mut waiters = waiters.into_iter();
                assert!(
                    join_scoped(waiters.next().unwrap()),
                    "round {round}: first waiter"
                );
                assert!(
                    join_scoped(waiters.next().unwrap()),
                    "round {round}: the second waiter (1 permit, at the head of the queue, \
                     2 permits free) was stranded for {BOUNDED:?}"
                );
                // One permit is left; one more lets the last waiter have its two.
                semaphore.release(1).unwrap();
                assert!(
                    join_scoped(waiters.next().unwrap()),
                    "round {round}: last waiter"
                );
                assert_eq!(semaphore.available_permits(), 0);
            });
        }
    });
}
