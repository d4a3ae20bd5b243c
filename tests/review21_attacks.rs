//! Review 21: attacks on a full bounded queue's putter letting the getters
//! drain (`JoinableQueue::let_getters_drain`) and on timed waits whose
//! deadline has passed (`SpinWait::spin_before`).
//!
//! The measurements (`#[ignore]`d) pin their threads beside a busy loop on
//! one CPU themselves; run them with
//! `cargo test --release --test review21_attacks -- --ignored --nocapture --test-threads=1`.

#[cfg(target_os = "linux")]
verisync::process_test_support!();

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{join_scoped, with_progress_watchdog, with_watchdog, PATIENCE};
use verisync::{
    Event, GetError, JoinableQueue, Mutex, PutError, ReentrantLock, Semaphore, ShutDown,
};

type Build = fn(usize) -> JoinableQueue<usize>;

const ORDERS: [(&str, Build); 3] = [
    ("fifo", JoinableQueue::bounded),
    ("lifo", JoinableQueue::lifo_bounded),
    ("priority", JoinableQueue::priority_bounded),
];

fn full(build: Build, capacity: usize) -> JoinableQueue<usize> {
    let queue = build(capacity);
    for item in 0..capacity {
        queue.put(item).unwrap();
    }
    assert!(queue.is_full());
    queue
}

/// Capacities 1 to 9, every order: a putter blocked on the full queue gets
/// the one slot a getter frees before it stops (no getter ever comes again).
#[test]
fn every_small_capacity_putter_takes_the_one_slot_freed() {
    with_watchdog(PATIENCE, || {
        for (order, build) in ORDERS {
            for capacity in 1..=9 {
                let queue = full(build, capacity);
                let started = AtomicBool::new(false);
                thread::scope(|scope| {
                    let putter = scope.spawn(|| {
                        started.store(true, Ordering::SeqCst);
                        queue.put(100)
                    });
                    while !started.load(Ordering::SeqCst) {
                        thread::yield_now();
                    }
                    queue.get().unwrap();
                    assert_eq!(join_scoped(putter), Ok(()), "{order} {capacity}");
                });
                assert_eq!(queue.len(), capacity, "{order} {capacity}");
                assert_eq!(queue.unfinished_tasks(), capacity + 1);
            }
        }
    });
}

/// A shutdown while putters wait on a full queue (in their drain wait or
/// asleep) hands every item back; `shutdown_now` hands back the queued ones;
/// nothing is lost or duplicated.
#[test]
fn shutdown_while_putters_wait_for_the_drain_loses_nothing() {
    with_watchdog(PATIENCE, || {
        for (order, build) in ORDERS {
            for now in [false, true] {
                for capacity in [4, 8, 64] {
                    let queue = full(build, capacity);
                    let started = AtomicUsize::new(0);
                    let (refused, left) = thread::scope(|scope| {
                        let putters: Vec<_> = (0..4)
                            .map(|putter| {
                                let (queue, started) = (&queue, &started);
                                scope.spawn(move || {
                                    started.fetch_add(1, Ordering::SeqCst);
                                    queue.put(1000 + putter)
                                })
                            })
                            .collect();
                        while started.load(Ordering::SeqCst) < 4 {
                            thread::yield_now();
                        }
                        let left = if now {
                            queue.shutdown_now()
                        } else {
                            queue.shutdown();
                            Vec::new()
                        };
                        let refused: Vec<_> = putters
                            .into_iter()
                            .map(|putter| match join_scoped(putter) {
                                Err(ShutDown(item)) => item,
                                Ok(()) => panic!("{order}: a put succeeded on a full queue"),
                            })
                            .collect();
                        (refused, left)
                    });
                    let mut all: Vec<usize> = left;
                    while let Ok(item) = queue.get() {
                        all.push(item);
                    }
                    all.extend(refused);
                    all.sort_unstable();
                    let expected: Vec<usize> = (0..capacity).chain(1000..1004).collect();
                    assert_eq!(all, expected, "{order} {capacity} now={now}");
                }
            }
        }
    });
}

/// A timed put on a full queue whose getters never come times out with its
/// item handed back, not much later than its deadline (the drain wait stops
/// at the deadline).
#[test]
fn timed_puts_on_a_full_queue_time_out_near_their_deadline() {
    with_watchdog(PATIENCE, || {
        for (order, build) in ORDERS {
            for capacity in [4, 8, 1024] {
                let queue = full(build, capacity);
                for timeout in [Duration::from_nanos(1), Duration::from_millis(5)] {
                    let start = Instant::now();
                    assert_eq!(
                        queue.put_timeout(7, timeout),
                        Err(PutError::Full(7)),
                        "{order} {capacity}"
                    );
                    let took = start.elapsed();
                    // Generous: the machine may be loaded.
                    assert!(
                        took < timeout + Duration::from_millis(500),
                        "{order} {capacity}: put_timeout({timeout:?}) took {took:?}"
                    );
                }
                assert_eq!(queue.len(), capacity);
                assert_eq!(queue.unfinished_tasks(), capacity);
            }
        }
    });
}

/// A timed put whose deadline falls inside the drain wait still takes a
/// slot that is free by then (its last attempt), rather than reporting Full.
#[test]
fn a_timed_put_takes_a_slot_freed_before_its_deadline() {
    with_watchdog(PATIENCE, || {
        for (order, build) in ORDERS {
            let queue = full(build, 8);
            let started = AtomicBool::new(false);
            thread::scope(|scope| {
                let putter = scope.spawn(|| {
                    started.store(true, Ordering::SeqCst);
                    queue.put_timeout(100, Duration::from_millis(20))
                });
                while !started.load(Ordering::SeqCst) {
                    thread::yield_now();
                }
                queue.get().unwrap();
                assert_eq!(join_scoped(putter), Ok(()), "{order}");
            });
        }
    });
}

/// Expired and zero deadlines on free resources succeed: the last attempt
/// is always made.
#[test]
fn expired_deadlines_on_free_resources_succeed() {
    with_watchdog(PATIENCE, || {
        let past = Instant::now();
        thread::sleep(Duration::from_millis(1));
        let mutex = Mutex::new(1);
        assert!(mutex.try_lock_until(Instant::now()).is_some());
        assert!(mutex.try_lock_until(past).is_some());
        assert!(mutex.try_lock_for(Duration::ZERO).is_some());
        assert!(mutex.try_lock_for(Duration::from_nanos(1)).is_some());
        let lock = ReentrantLock::new(1);
        assert!(lock.try_lock_until(past).is_some());
        let outer = lock.lock();
        // Reentry by the holder with an expired deadline.
        assert!(lock.try_lock_until(past).is_some());
        assert!(lock.try_lock_for(Duration::ZERO).is_some());
        drop(outer);
        let semaphore = Semaphore::new(2);
        assert!(semaphore.try_acquire_until(past).is_some());
        assert!(semaphore.try_acquire_for(Duration::ZERO).is_some());
        assert!(semaphore
            .try_acquire_many_for(2, Duration::from_nanos(1))
            .is_some());
        assert_eq!(semaphore.available_permits(), 2);
        let event = Event::new();
        assert!(!event.wait_until(past));
        event.set();
        assert!(event.wait_until(past));
        assert!(event.wait_timeout(Duration::ZERO));
        for (order, build) in ORDERS {
            let queue = build(2);
            assert_eq!(
                queue.put_timeout(1, Duration::from_nanos(1)),
                Ok(()),
                "{order}"
            );
            assert_eq!(queue.put_timeout(2, Duration::ZERO), Ok(()), "{order}");
            assert_eq!(
                queue.put_timeout(3, Duration::from_nanos(1)),
                Err(PutError::Full(3))
            );
            assert!(
                queue.get_timeout(Duration::from_nanos(1)).is_ok(),
                "{order}"
            );
            assert!(queue.get_timeout(Duration::ZERO).is_ok(), "{order}");
            assert_eq!(
                queue.get_timeout(Duration::from_nanos(1)),
                Err(GetError::Empty)
            );
        }
    });
}

/// Polls with tiny timeouts racing a holder that lets go at random times:
/// whatever a poll reports, nothing is lost and nobody is stranded: every
/// permit released is still there or was taken, every item put was got.
/// Under a progress watchdog: pinned beside a busy loop a round takes about
/// 3.7 ms (as before the drain wait and `spin_before`).
#[test]
fn tiny_timeouts_racing_releases_lose_nothing() {
    with_progress_watchdog(PATIENCE, |progress| {
        let semaphore = Semaphore::new(0);
        let queue = JoinableQueue::bounded(4);
        let taken = AtomicUsize::new(0);
        let got = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let mutex = Mutex::new(0usize);
        let event = Event::new();
        let releases: usize = std::env::var("RELEASES")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(5_000);
        let start = Instant::now();
        thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while !stop.load(Ordering::SeqCst) {
                        if let Some(mut guard) = mutex.try_lock_for(Duration::from_nanos(1)) {
                            *guard += 1;
                        }
                        if event.wait_timeout(Duration::from_nanos(1)) {
                            event.clear();
                        }
                        if let Some(permit) = semaphore.try_acquire_for(Duration::from_nanos(1)) {
                            permit.forget();
                            taken.fetch_add(1, Ordering::SeqCst);
                        }
                        if queue.get_timeout(Duration::from_nanos(1)).is_ok() {
                            got.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
            for item in 0..releases {
                semaphore.release(1).unwrap();
                queue.put(item).unwrap();
                *mutex.lock() += 1;
                event.set();
                progress.tick();
            }
            stop.store(true, Ordering::SeqCst);
        });
        println!("{releases} rounds in {:?}", start.elapsed());
        assert_eq!(
            taken.load(Ordering::SeqCst) + semaphore.available_permits(),
            releases
        );
        assert_eq!(got.load(Ordering::SeqCst) + queue.len(), releases);
        // Free: nobody was left holding it or parked on it.
        assert!(mutex.try_lock_for(Duration::ZERO).is_some());
        assert!(*mutex.lock() >= releases);
    });
}

/// The process lock's timed lock with an expired or zero deadline takes a
/// free lock; polling it with tiny timeouts while another thread holds and
/// lets go never strands it or the holder (a poll that timed out leaves its
/// waiters flag behind: the next lock and unlock must still work).
#[cfg(target_os = "linux")]
#[test]
fn process_lock_polls_with_expired_deadlines() {
    use verisync::process::Lock;
    with_watchdog(PATIENCE, || {
        let lock = Lock::new().unwrap();
        assert!(lock.lock_timeout(Duration::ZERO).is_ok());
        assert!(lock.lock_timeout(Duration::from_nanos(1)).is_ok());
        let taken = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        thread::scope(|scope| {
            let poller = scope.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    if lock.lock_timeout(Duration::from_nanos(1)).is_ok() {
                        taken.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
            for _ in 0..20_000 {
                let guard = lock.lock().unwrap();
                std::hint::spin_loop();
                drop(guard);
            }
            stop.store(true, Ordering::SeqCst);
            join_scoped(poller);
        });
        // Free again for anyone, at once.
        assert!(lock.lock_timeout(Duration::from_nanos(1)).is_ok());
        assert!(lock.try_lock().is_ok());
    });
}

/// An item whose `Ord` panics while `TOUCHY` is set.
#[derive(Debug, PartialEq, Eq)]
struct Touchy(usize);

static TOUCHY: AtomicBool = AtomicBool::new(false);

impl PartialOrd for Touchy {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Touchy {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        assert!(!TOUCHY.load(Ordering::SeqCst), "deliberate: Touchy::cmp");
        self.0.cmp(&other.0)
    }
}

/// A getter whose item's `Ord` panics while a putter waits on the full
/// priority queue (in its drain wait or asleep) frees nothing; the next get
/// frees a slot and the putter takes it. Nothing lost, counts exact.
/// (Not a defect found: the heap keeps its items through a panicking `Ord`,
/// in an order its module docs leave unspecified.)
#[test]
fn a_panicking_ord_during_the_drain_wait_strands_no_putter() {
    common::quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let queue = JoinableQueue::priority_bounded(8);
        for item in 0..8 {
            queue.put(Touchy(item)).unwrap();
        }
        let started = AtomicBool::new(false);
        let first = thread::scope(|scope| {
            let putter = scope.spawn(|| {
                started.store(true, Ordering::SeqCst);
                queue.put(Touchy(100))
            });
            while !started.load(Ordering::SeqCst) {
                thread::yield_now();
            }
            TOUCHY.store(true, Ordering::SeqCst);
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| queue.get()));
            TOUCHY.store(false, Ordering::SeqCst);
            assert!(panicked.is_err(), "the get did not run the panicking Ord");
            assert_eq!(queue.len(), 8);
            // The heap's order after a panicking `Ord` is unspecified
            // (heap.rs module docs); only that nothing is lost.
            let first = queue.get().unwrap().0;
            assert_eq!(join_scoped(putter), Ok(()));
            first
        });
        assert_eq!(queue.len(), 8);
        assert_eq!(queue.unfinished_tasks(), 9);
        let mut all: Vec<usize> = std::iter::from_fn(|| queue.try_get().ok())
            .map(|touchy| touchy.0)
            .collect();
        all.push(first);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5, 6, 7, 100]);
    });
}

// ---- measurements (ignored): run with --ignored --nocapture ----

/// Pins the calling thread to the first listed CPU; false if impossible.
fn pin() -> bool {
    let Some(core) = core_affinity::get_core_ids().and_then(|cores| cores.first().copied()) else {
        return false;
    };
    core_affinity::set_for_current(core)
}

/// With a spinning thread on the same CPU, runs `body`.
fn beside_a_busy_loop<R>(body: impl FnOnce() -> R) -> R {
    let stop = Arc::new(AtomicBool::new(false));
    let spinning = Arc::new(AtomicBool::new(false));
    let spinner = {
        let (stop, spinning) = (Arc::clone(&stop), Arc::clone(&spinning));
        thread::spawn(move || {
            assert!(pin());
            spinning.store(true, Ordering::SeqCst);
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    while !spinning.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    let result = body();
    stop.store(true, Ordering::SeqCst);
    spinner.join().unwrap();
    result
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let n = samples.len();
    println!(
        "{name}: n={n} min {:?} median {:?} p90 {:?} max {:?}",
        samples[0],
        samples[n / 2],
        samples[n * 9 / 10],
        samples[n - 1]
    );
}

/// One CPU shared with a busy loop: a putter on a full queue (capacity 8),
/// a getter that frees one slot and stops. Time from the get to the put's
/// return.
#[test]
#[ignore = "measurement"]
fn measure_put_after_one_get_beside_a_busy_loop() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20);
    for capacity in [3, 8] {
        let samples = beside_a_busy_loop(|| {
            (0..rounds)
                .map(|_| {
                    let queue = full(JoinableQueue::bounded, capacity);
                    let started = AtomicBool::new(false);
                    thread::scope(|scope| {
                        let putter = scope.spawn(|| {
                            assert!(pin());
                            started.store(true, Ordering::SeqCst);
                            queue.put(100).unwrap();
                            Instant::now()
                        });
                        assert!(pin());
                        while !started.load(Ordering::SeqCst) {
                            thread::yield_now();
                        }
                        thread::sleep(Duration::from_millis(2));
                        let got = Instant::now();
                        queue.get().unwrap();
                        let done = join_scoped(putter);
                        done.saturating_duration_since(got)
                    })
                })
                .collect()
        });
        summary(&format!("capacity {capacity}, get -> put returns"), samples);
    }
}

/// One CPU shared with a busy loop: a putter puts 200 items into a full
/// queue (capacity 8) whose getter frees one slot a millisecond.
#[test]
#[ignore = "measurement"]
fn measure_puts_against_a_getter_one_slot_a_millisecond() {
    let puts: usize = std::env::var("PUTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(200);
    for putters in [1, 4] {
        let (samples, total) = beside_a_busy_loop(|| {
            let queue = full(JoinableQueue::bounded, 8);
            let stop = AtomicBool::new(false);
            let start = Instant::now();
            let samples = thread::scope(|scope| {
                let getter = scope.spawn(|| {
                    assert!(pin());
                    while !stop.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(1));
                        let _ = queue.try_get();
                    }
                });
                let workers: Vec<_> = (0..putters)
                    .map(|_| {
                        scope.spawn(|| {
                            assert!(pin());
                            (0..puts / putters)
                                .map(|item| {
                                    let start = Instant::now();
                                    queue.put(item).unwrap();
                                    start.elapsed()
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let samples: Vec<Duration> = workers.into_iter().flat_map(join_scoped).collect();
                stop.store(true, Ordering::SeqCst);
                join_scoped(getter);
                samples
            });
            (samples, start.elapsed())
        });
        println!("{putters} putters, total {total:?}");
        summary("  put latency", samples);
    }
}

// ---- defects found (fixed) ----

/// One CPU shared with a busy loop (every thread of the test pinned to the
/// same CPU): a putter on a full capacity-8 queue whose getter frees one
/// slot and stops. Review 21: the putter kept yielding while the queue was
/// more than 3/4 full, and each of its 64 yields handed the busy loop a
/// scheduler slice, so the put returned 150–200 ms after the get (before
/// the drain wait: 3 µs – 12 ms, median 10 µs). The drain wait now ends
/// once a yield goes by without the queue getting shorter.
#[test]
fn a_put_into_a_freed_slot_beside_a_busy_loop_returns_promptly() {
    with_watchdog(PATIENCE, || {
        if !pin() {
            return;
        }
        let mut samples: Vec<Duration> = beside_a_busy_loop(|| {
            (0..5)
                .map(|_| {
                    let queue = full(JoinableQueue::bounded, 8);
                    let started = AtomicBool::new(false);
                    thread::scope(|scope| {
                        let putter = scope.spawn(|| {
                            assert!(pin());
                            started.store(true, Ordering::SeqCst);
                            queue.put(100).unwrap();
                            Instant::now()
                        });
                        while !started.load(Ordering::SeqCst) {
                            thread::yield_now();
                        }
                        thread::sleep(Duration::from_millis(2));
                        let got = Instant::now();
                        queue.get().unwrap();
                        join_scoped(putter).saturating_duration_since(got)
                    })
                })
                .collect()
        });
        samples.sort_unstable();
        assert!(
            samples[2] < Duration::from_millis(50),
            "a put into a freed slot returned {:?} after the get (median of {samples:?})",
            samples[2]
        );
    });
}
