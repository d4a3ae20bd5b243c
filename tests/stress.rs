//! Bounded stress tests: many threads hammering each primitive of the lock
//! family (the queues' are in `stress_queue.rs`), each test asserting its
//! invariants throughout and at the end. Sized to finish in a
//! second or two in a debug build; `--release` multiplies the iterations
//! (`common::SCALE`). Every test runs under a watchdog, so a lost wake-up
//! fails it instead of hanging the suite.

mod common;

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use verisync::{Barrier, Condition, Event, Mutex, MutexGuard, ReentrantLock, Semaphore};

use common::{
    join_scoped, panic_text, with_progress_watchdog, with_watchdog, work, Rng, PATIENCE, SCALE,
};

fn stress_limit() -> Duration {
    PATIENCE * 3
}

#[test]
fn mutex_many_threads_never_overlap_and_count_exactly() {
    with_watchdog(stress_limit(), || {
        const THREADS: usize = 8;
        let iterations = 5_000 * SCALE;
        let counter = Mutex::new(0usize);
        let inside = AtomicBool::new(false);
        let total: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|seed| {
                    let (counter, inside) = (&counter, &inside);
                    scope.spawn(move || {
                        let mut rng = Rng::new(seed);
                        let mut added = 0;
                        for _ in 0..iterations {
                            let guard = match rng.below(4) {
                                0 => counter.try_lock(),
                                1 => counter.try_lock_for(Duration::from_micros(rng.below(50))),
                                2 => counter
                                    .try_lock_until(Instant::now() + Duration::from_micros(20)),
                                _ => Some(counter.lock()),
                            };
                            let Some(mut guard) = guard else { continue };
                            assert!(!inside.swap(true, Ordering::Acquire), "overlap");
                            *guard += 1;
                            added += 1;
                            inside.store(false, Ordering::Release);
                            if rng.below(16) == 0 {
                                MutexGuard::unlock_fair(guard);
                            } else {
                                drop(guard);
                            }
                        }
                        added
                    })
                })
                .collect();
            threads.into_iter().map(join_scoped).sum()
        });
        assert!(
            total >= iterations,
            "the blocking locks alone add this many"
        );
        assert_eq!(counter.into_inner(), total);
    });
}

#[test]
fn reentrant_lock_many_threads_keep_depth_and_exclusion() {
    with_watchdog(stress_limit(), || {
        const THREADS: usize = 4;
        let iterations = 2_000 * SCALE;
        let lock = ReentrantLock::new(Cell::new(0usize));
        let owner = AtomicUsize::new(0);
        let total: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|seed| {
                    let (lock, owner) = (&lock, &owner);
                    scope.spawn(move || {
                        let me = seed + 1;
                        let mut rng = Rng::new(seed);
                        let mut entries = 0;
                        for _ in 0..iterations {
                            let outer = if rng.below(3) == 0 {
                                lock.try_lock_for(Duration::from_micros(rng.below(100)))
                            } else {
                                Some(lock.lock())
                            };
                            let Some(outer) = outer else { continue };
                            assert_eq!(owner.swap(me, Ordering::Relaxed), 0, "two owners");
                            let depth = 1 + rng.below(3);
                            let inner: Vec<_> = (0..depth)
                                .map(|_| lock.try_lock().expect("the owner re-enters"))
                                .collect();
                            inner[0].set(inner[0].get() + 1);
                            entries += 1;
                            drop(inner);
                            assert!(lock.is_owned_by_current_thread());
                            assert_eq!(owner.swap(0, Ordering::Relaxed), me);
                            drop(outer);
                        }
                        entries
                    })
                })
                .collect();
            threads.into_iter().map(join_scoped).sum()
        });
        assert!(!lock.is_locked());
        assert_eq!(lock.into_inner().get(), total);
    });
}

fn hammer_semaphore(semaphore: &Semaphore, permits: usize) {
    const THREADS: usize = 6;
    let iterations = 2_000 * SCALE;
    let in_use = AtomicUsize::new(0);
    let timed_out = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|seed| {
                let (in_use, timed_out) = (&in_use, &timed_out);
                scope.spawn(move || {
                    let mut rng = Rng::new(seed);
                    for _ in 0..iterations {
                        let n = 1 + rng.below(permits as u64) as usize;
                        let permit = match rng.below(5) {
                            0 => semaphore.try_acquire_many(n),
                            1 | 2 => {
                                let timeout = Duration::from_micros(rng.below(60));
                                let permit = semaphore.try_acquire_many_for(n, timeout);
                                if permit.is_none() {
                                    timed_out.fetch_add(1, Ordering::Relaxed);
                                }
                                permit
                            }
                            _ => Some(semaphore.acquire_many(n)),
                        };
                        let Some(permit) = permit else { continue };
                        let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                        assert!(now <= permits, "{now} permits in use of {permits}");
                        work(rng.below(8) as u8);
                        in_use.fetch_sub(n, Ordering::SeqCst);
                        if rng.below(4) == 0 {
                            permit.forget();
                            semaphore.release(n).expect("giving back consumed permits");
                        } else {
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            join_scoped(thread);
        }
    });
    assert_eq!(
        semaphore.available_permits(),
        permits,
        "permits lost or duplicated ({} timed out waits)",
        timed_out.load(Ordering::Relaxed)
    );
}

#[test]
fn semaphore_acquire_many_with_timeouts_conserves_permits() {
    with_watchdog(stress_limit(), || {
        hammer_semaphore(&Semaphore::new(3), 3);
        hammer_semaphore(&Semaphore::bounded(3), 3);
        hammer_semaphore(&Semaphore::new(1), 1);
    });
}

/// Only blocking `acquire_many` calls, no timeouts: a waiter stranded while
/// permits are free is never rescued by someone else's timeout here, so any
/// lost wake-up shows as a hang: no acquire completes once the other
/// threads have finished, and the progress watchdog fails the test.
/// (Not a total-time limit: pinned to one CPU beside a busy loop, each of
/// `work`'s yields inside the critical section may give the loop a whole
/// scheduler slice, and the run takes minutes.)
#[test]
fn semaphore_blocking_acquire_many_never_strands_a_waiter() {
    with_progress_watchdog(PATIENCE, |progress| {
        const THREADS: usize = 4;
        const PERMITS: usize = 2;
        let iterations = 2_000 * SCALE;
        let semaphore = Semaphore::new(PERMITS);
        let in_use = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for seed in 0..THREADS {
                let (semaphore, in_use) = (&semaphore, &in_use);
                scope.spawn(move || {
                    let mut rng = Rng::new(seed);
                    for _ in 0..iterations {
                        let n = 1 + rng.below(PERMITS as u64) as usize;
                        let permit = semaphore.acquire_many(n);
                        let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                        assert!(now <= PERMITS, "{now} permits in use of {PERMITS}");
                        work(rng.below(32) as u8);
                        in_use.fetch_sub(n, Ordering::SeqCst);
                        drop(permit);
                        progress.tick();
                    }
                });
            }
        });
        assert_eq!(semaphore.available_permits(), PERMITS);
    });
}

/// The progress watchdog the semaphore stress tests run under still fails
/// a run with a stranded waiter, and soon: here the only thread waits for
/// two permits of a semaphore holding one, after some operations that did
/// complete. (The stranded thread stays blocked; the test binary exits.)
#[test]
fn progress_watchdog_fails_a_run_whose_waiter_is_stranded() {
    let stalled = with_watchdog(PATIENCE, || {
        std::panic::catch_unwind(|| {
            with_progress_watchdog(Duration::from_secs(1), |progress| {
                let semaphore = Semaphore::new(1);
                for _ in 0..100 {
                    drop(semaphore.acquire());
                    progress.tick();
                }
                drop(semaphore.acquire_many(2));
            });
        })
    });
    let report = stalled.expect_err("a stranded waiter went unnoticed");
    let message = panic_text(&*report).unwrap_or_default();
    assert!(
        message.starts_with("no operation completed for 1s (after 100 had)"),
        "{message}"
    );
}

/// Timeouts racing hand-offs: waiters with tiny timeouts queue behind a
/// large request while permits trickle in; whatever times out, nothing is
/// lost. Under a progress watchdog (a round that never ends fails the test
/// within `PATIENCE`), not a total-time limit: pinned to one CPU beside a
/// busy loop, each round's thread spawns and yields may each give the loop
/// a scheduler slice.
#[test]
fn semaphore_timeouts_racing_releases_lose_nothing() {
    with_progress_watchdog(PATIENCE, |progress| {
        let rounds = 500 * SCALE;
        let semaphore = Semaphore::new(0);
        let taken = AtomicUsize::new(0);
        for round in 0..rounds {
            std::thread::scope(|scope| {
                let (semaphore, taken) = (&semaphore, &taken);
                for waiter in 0..3u64 {
                    scope.spawn(move || {
                        let n = 1 + (waiter + round as u64) % 3;
                        let timeout = Duration::from_micros(waiter * 30);
                        if let Some(permit) = semaphore.try_acquire_many_for(n as usize, timeout) {
                            taken.fetch_add(permit.count(), Ordering::Relaxed);
                            permit.forget();
                        }
                    });
                }
                for _ in 0..3 {
                    semaphore.release(1).unwrap();
                    std::thread::yield_now();
                }
            });
            // What was released is either still available or was taken.
            let released = 3 * (round + 1);
            assert_eq!(
                semaphore.available_permits() + taken.load(Ordering::Relaxed),
                released,
                "round {round}"
            );
            progress.tick();
        }
    });
}

#[test]
fn event_pulses_and_noise_wake_every_waiter() {
    with_watchdog(stress_limit(), || {
        const WAITERS: usize = 4;
        let rounds = 500 * SCALE;
        let event = Event::new();
        let finished = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let waiters: Vec<_> = (0..WAITERS)
                .map(|_| {
                    let (event, finished) = (&event, &finished);
                    scope.spawn(move || {
                        for round in 0..rounds {
                            assert!(event.wait_timeout(PATIENCE), "round {round}: missed");
                            finished.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            // Noise: threads that time out on the event all the while.
            let noise: Vec<_> = (0..2)
                .map(|seed| {
                    let (event, stop) = (&event, &stop);
                    scope.spawn(move || {
                        let mut rng = Rng::new(seed);
                        while !stop.load(Ordering::Relaxed) {
                            let _ = event.wait_timeout(Duration::from_micros(rng.below(40)));
                        }
                    })
                })
                .collect();
            let mut pulses = 0u64;
            while finished.load(Ordering::SeqCst) < WAITERS * rounds {
                event.set();
                event.clear();
                pulses += 1;
                assert!(pulses < 1 << 40);
                std::thread::yield_now();
            }
            stop.store(true, Ordering::Relaxed);
            for thread in waiters.into_iter().chain(noise) {
                join_scoped(thread);
            }
        });
        // Once set and left set, every wait returns true at once.
        event.set();
        assert!(event.wait_timeout(Duration::ZERO));
        assert!(event.wait_timeout(Duration::from_secs(1)));
    });
}

/// Two threads take turns through a Condition; each notify_one wakes the
/// other (when it is waiting), and no turn is ever skipped or doubled.
#[test]
fn condition_ping_pong_takes_strict_turns() {
    with_watchdog(stress_limit(), || {
        let rounds = 5_000 * SCALE;
        let turn = Mutex::new(0usize); // even: ping's turn, odd: pong's
        let changed = Condition::new();
        std::thread::scope(|scope| {
            for parity in 0..2 {
                let (turn, changed) = (&turn, &changed);
                scope.spawn(move || {
                    for _ in 0..rounds {
                        let mut guard = turn.lock();
                        changed.wait_while(&mut guard, |turn| turn % 2 != parity);
                        *guard += 1;
                        assert!(changed.notify_one() <= 1);
                    }
                });
            }
        });
        assert_eq!(turn.into_inner(), 2 * rounds);
    });
}

/// Producers and consumers through one Condition with notify_one,
/// notify(n) and notify_all: every item is consumed exactly once.
#[test]
fn condition_producers_and_consumers_hand_over_every_item_once() {
    with_watchdog(stress_limit(), || {
        const PRODUCERS: usize = 3;
        const CONSUMERS: usize = 3;
        let per_producer = 5_000 * SCALE;
        let shelf = Mutex::new((VecDeque::new(), 0usize)); // items, producers done
        let condition = Condition::new();
        let mut consumed: Vec<usize> = std::thread::scope(|scope| {
            for producer in 0..PRODUCERS {
                let (shelf, condition) = (&shelf, &condition);
                scope.spawn(move || {
                    for i in 0..per_producer {
                        shelf.lock().0.push_back(producer * per_producer + i);
                        let woken = match i % 3 {
                            0 => condition.notify_one(),
                            1 => condition.notify(2),
                            _ => condition.notify_all(),
                        };
                        assert!(woken <= CONSUMERS);
                    }
                    shelf.lock().1 += 1;
                    condition.notify_all();
                });
            }
            let consumers: Vec<_> = (0..CONSUMERS)
                .map(|_| {
                    let (shelf, condition) = (&shelf, &condition);
                    scope.spawn(move || {
                        let mut got = Vec::new();
                        let mut guard = shelf.lock();
                        loop {
                            condition.wait_while(&mut guard, |(items, done)| {
                                items.is_empty() && *done < PRODUCERS
                            });
                            match guard.0.pop_front() {
                                Some(item) => got.push(item),
                                None if guard.1 == PRODUCERS => return got,
                                None => {}
                            }
                        }
                    })
                })
                .collect();
            consumers.into_iter().flat_map(join_scoped).collect()
        });
        consumed.sort_unstable();
        let expected: Vec<usize> = (0..PRODUCERS * per_producer).collect();
        assert!(consumed == expected, "items lost or consumed twice");
    });
}

/// Under a progress watchdog (no party passing the barrier for `PATIENCE`
/// fails the test), not a total-time limit: pinned to one CPU beside a busy
/// loop each generation waits for three woken parties to get the CPU,
/// 2.5–2.8 ms a generation here as with `std::sync::Barrier`; see
/// `tests/oversubscribed.rs`.
#[test]
fn barrier_reused_across_many_generations() {
    with_progress_watchdog(PATIENCE, |progress| {
        const PARTIES: usize = 4;
        let generations = 2_000 * SCALE;
        let barrier = Barrier::new(PARTIES);
        let arrived: Vec<AtomicUsize> = (0..generations).map(|_| AtomicUsize::new(0)).collect();
        let leaders: Vec<AtomicUsize> = (0..generations).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|scope| {
            for seed in 0..PARTIES {
                let (barrier, arrived, leaders) = (&barrier, &arrived, &leaders);
                scope.spawn(move || {
                    let mut rng = Rng::new(seed);
                    for generation in 0..generations {
                        work(rng.below(16) as u8);
                        arrived[generation].fetch_add(1, Ordering::SeqCst);
                        let result = if rng.below(2) == 0 {
                            barrier.wait()
                        } else {
                            barrier.wait_timeout(PATIENCE)
                        };
                        let result = result.expect("the barrier broke");
                        assert_eq!(
                            arrived[generation].load(Ordering::SeqCst),
                            PARTIES,
                            "generation {generation}: released early"
                        );
                        if result.is_leader() {
                            leaders[generation].fetch_add(1, Ordering::SeqCst);
                        }
                        progress.tick();
                    }
                });
            }
        });
        for (generation, leaders) in leaders.iter().enumerate() {
            assert_eq!(leaders.load(Ordering::SeqCst), 1, "generation {generation}");
        }
        assert!(!barrier.is_broken());
        assert_eq!(barrier.n_waiting(), 0);
    });
}
