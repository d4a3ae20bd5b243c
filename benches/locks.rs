//! verisync's locks side by side with `std` and `parking_lot`, in one run.
//!
//! Every group holds the rows that are compared with each other, measured in
//! the same process one after the other, so their ratios mean something even
//! on a noisy machine:
//!
//! | group                   | one iteration                         | rows |
//! |-------------------------|---------------------------------------|------|
//! | `mutex_uncontended`     | lock, increment a `u64`, unlock       | verisync, std, parking_lot; anchors: one atomic RMW, a CAS+swap spin lock |
//! | `mutex_nested_pair`     | lock A, lock B, unlock B, unlock A (the same order every time) | verisync, std, parking_lot |
//! | `mutex_contended/{2,4,8}` | one increment of a counter shared by N threads (wall time / total increments) | verisync, std, parking_lot; anchor: `fetch_add` on a shared atomic |
//! | `reentrant_uncontended` | lock+unlock, and lock twice nested    | verisync `ReentrantLock`, `parking_lot::ReentrantMutex` |
//! | `ping_pong_one_cpu`     | one round trip between two threads pinned to the same CPU | verisync `Condition`+`Mutex`, parking_lot `Condvar`+`Mutex`, std `Condvar`+`Mutex`, verisync `Event` (two events) |
//! | `ping_pong_two_cpus`    | the same with the two threads pinned to two different CPUs | same rows |
//! | `semaphore_uncontended` | acquire+release of one permit         | verisync `Semaphore`, a `parking_lot::Mutex<usize>`+`Condvar` semaphore; floor: CAS try-decrement + `fetch_add` |
//! | `semaphore_contended`   | one acquire+release, 4 threads over 2 permits (wall time / total acquires) | verisync, the `Mutex<usize>`+`Condvar` semaphore |
//!
//! Multi-threaded rows use `iter_custom`: each measured batch spawns its
//! threads (scoped), releases them together with a `std::sync::Barrier`, and
//! reports the wall time from the first thread's start to the last thread's
//! end (read by the worker threads themselves), divided over the batch's
//! iterations. Thread start-up is outside the timed region. Shared locks
//! and counters sit in a `CachePadded` so that every row starts at a cache-line
//! boundary (no row is helped or hurt by where its lock happens to land).
//!
//! Reproduce (the second command prints the ratio table with the targets of
//! issue 2, from criterion's saved medians):
//!
//! ```text
//! cargo bench --bench locks && python3 benches/ratios.py
//! cargo bench --bench locks -- ping_pong_one_cpu   # re-run one group
//! ```

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use core_affinity::CoreId;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use crossbeam_utils::CachePadded;

// ---------------------------------------------------------------------------
// Running a batch on several threads
// ---------------------------------------------------------------------------

/// Runs `body(index)` on `threads` fresh scoped threads, each first pinned
/// to `pin(index)` if that is `Some`, then released together by a barrier.
/// Returns the wall time from the first thread's start to the last thread's
/// end, as the threads themselves saw it (the spawning thread may be
/// descheduled when the barrier opens, so it does not hold the stopwatch).
fn timed_threads<B, P>(threads: usize, pin: P, body: B) -> Duration
where
    B: Fn(usize) + Sync,
    P: Fn(usize) -> Option<CoreId> + Sync,
{
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let (barrier, body, pin) = (&barrier, &body, &pin);
                scope.spawn(move || {
                    if let Some(core) = pin(index) {
                        assert!(
                            core_affinity::set_for_current(core),
                            "could not pin a benchmark thread to CPU {}",
                            core.id
                        );
                    }
                    barrier.wait();
                    let start = Instant::now();
                    body(index);
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a benchmark thread panicked"))
            .collect()
    });
    let first_start = spans.iter().map(|span| span.0).min().unwrap();
    let last_end = spans.iter().map(|span| span.1).max().unwrap();
    last_end - first_start
}

/// Splits `iters` over `threads` (rounding up), runs `body(index, share)` on
/// each, and returns the wall time scaled to exactly `iters` iterations.
fn split_batch<B>(iters: u64, threads: usize, body: B) -> Duration
where
    B: Fn(usize, u64) + Sync,
{
    let share = iters.div_ceil(threads as u64).max(1);
    let total = share * threads as u64;
    let elapsed = timed_threads(threads, |_| None, |index| body(index, share));
    elapsed.mul_f64(iters as f64 / total as f64)
}

/// Contended rows vary with scheduling from batch to batch: more and longer
/// samples than the default keep their medians steadier.
fn contended_settings(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
}

// ---------------------------------------------------------------------------
// Mutexes
// ---------------------------------------------------------------------------

/// A test-and-test-and-set spin lock (one CAS to lock, one swap to unlock):
/// the floor a parking mutex's fast path is compared with.
struct SpinLock {
    locked: AtomicBool,
    value: Cell<u64>,
}

// SAFETY: `value` is only touched while `locked` is held.
unsafe impl Sync for SpinLock {}

impl SpinLock {
    fn new() -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: Cell::new(0),
        }
    }

    #[inline]
    fn increment(&self) {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
        self.value.set(self.value.get() + 1);
        self.locked.swap(false, Ordering::Release);
    }
}

fn mutex_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("mutex_uncontended");

    let verisync = verisync::Mutex::new(0u64);
    group.bench_function("verisync", |b| {
        b.iter(|| *black_box(&verisync).lock() += 1);
    });

    let std = std::sync::Mutex::new(0u64);
    group.bench_function("std", |b| {
        b.iter(|| *black_box(&std).lock().unwrap() += 1);
    });

    let parking_lot = parking_lot::Mutex::new(0u64);
    group.bench_function("parking_lot", |b| {
        b.iter(|| *black_box(&parking_lot).lock() += 1);
    });

    let spin = SpinLock::new();
    group.bench_function("anchor_spin_lock", |b| {
        b.iter(|| black_box(&spin).increment());
    });

    let atomic = AtomicU64::new(0);
    group.bench_function("anchor_atomic_rmw", |b| {
        b.iter(|| black_box(&atomic).fetch_add(1, Ordering::AcqRel));
    });

    group.finish();
}

/// Two locks taken one inside the other, always in the same order: with
/// the `deadlock-detection` feature, the pair is already known after the
/// first iteration (issue 15 asks for at most 5× the feature-off time).
fn mutex_nested_pair(c: &mut Criterion) {
    let mut group = c.benchmark_group("mutex_nested_pair");

    let verisync = (verisync::Mutex::new(0u64), verisync::Mutex::new(0u64));
    group.bench_function("verisync", |b| {
        b.iter(|| {
            let (outer, inner) = black_box(&verisync);
            let mut outer = outer.lock();
            let mut inner = inner.lock();
            *inner += 1;
            drop(inner);
            *outer += 1;
        });
    });

    let std = (std::sync::Mutex::new(0u64), std::sync::Mutex::new(0u64));
    group.bench_function("std", |b| {
        b.iter(|| {
            let (outer, inner) = black_box(&std);
            let mut outer = outer.lock().unwrap();
            let mut inner = inner.lock().unwrap();
            *inner += 1;
            drop(inner);
            *outer += 1;
        });
    });

    let parking_lot = (parking_lot::Mutex::new(0u64), parking_lot::Mutex::new(0u64));
    group.bench_function("parking_lot", |b| {
        b.iter(|| {
            let (outer, inner) = black_box(&parking_lot);
            let mut outer = outer.lock();
            let mut inner = inner.lock();
            *inner += 1;
            drop(inner);
            *outer += 1;
        });
    });

    group.finish();
}

fn mutex_contended(c: &mut Criterion) {
    for threads in [2usize, 4, 8] {
        let mut group = c.benchmark_group(format!("mutex_contended/{threads}"));
        contended_settings(&mut group);

        group.bench_function("verisync", |b| {
            b.iter_custom(|iters| {
                let counter = CachePadded::new(verisync::Mutex::new(0u64));
                let elapsed = split_batch(iters, threads, |_, share| {
                    for _ in 0..share {
                        *counter.lock() += 1;
                    }
                });
                assert_eq!(
                    CachePadded::into_inner(counter).into_inner(),
                    iters.div_ceil(threads as u64).max(1) * threads as u64
                );
                elapsed
            });
        });

        group.bench_function("std", |b| {
            b.iter_custom(|iters| {
                let counter = CachePadded::new(std::sync::Mutex::new(0u64));
                let elapsed = split_batch(iters, threads, |_, share| {
                    for _ in 0..share {
                        *counter.lock().unwrap() += 1;
                    }
                });
                assert_eq!(
                    CachePadded::into_inner(counter).into_inner().unwrap(),
                    iters.div_ceil(threads as u64).max(1) * threads as u64
                );
                elapsed
            });
        });

        group.bench_function("parking_lot", |b| {
            b.iter_custom(|iters| {
                let counter = CachePadded::new(parking_lot::Mutex::new(0u64));
                let elapsed = split_batch(iters, threads, |_, share| {
                    for _ in 0..share {
                        *counter.lock() += 1;
                    }
                });
                assert_eq!(
                    CachePadded::into_inner(counter).into_inner(),
                    iters.div_ceil(threads as u64).max(1) * threads as u64
                );
                elapsed
            });
        });

        group.bench_function("anchor_atomic_rmw", |b| {
            b.iter_custom(|iters| {
                let counter = CachePadded::new(AtomicU64::new(0));
                split_batch(iters, threads, |_, share| {
                    for _ in 0..share {
                        counter.fetch_add(1, Ordering::AcqRel);
                    }
                })
            });
        });

        group.finish();
    }
}

// ---------------------------------------------------------------------------
// Reentrant locks
// ---------------------------------------------------------------------------

fn reentrant_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("reentrant_uncontended");

    let verisync = verisync::ReentrantLock::new(Cell::new(0u64));
    group.bench_function("verisync", |b| {
        b.iter(|| {
            let guard = black_box(&verisync).lock();
            guard.set(guard.get() + 1);
        });
    });

    let parking_lot = parking_lot::ReentrantMutex::new(Cell::new(0u64));
    group.bench_function("parking_lot", |b| {
        b.iter(|| {
            let guard = black_box(&parking_lot).lock();
            guard.set(guard.get() + 1);
        });
    });

    group.bench_function("verisync_nested", |b| {
        b.iter(|| {
            let outer = black_box(&verisync).lock();
            let inner = black_box(&verisync).lock();
            inner.set(outer.get() + 1);
        });
    });

    group.bench_function("parking_lot_nested", |b| {
        b.iter(|| {
            let outer = black_box(&parking_lot).lock();
            let inner = black_box(&parking_lot).lock();
            inner.set(outer.get() + 1);
        });
    });

    group.finish();
}

// ---------------------------------------------------------------------------
// Ping-pong: two threads take turns
// ---------------------------------------------------------------------------

/// Two threads, 0 and 1, taking turns. `take_turn(me)` waits for `me`'s
/// turn, then gives the turn to the other thread and wakes it.
trait PingPong: Sync {
    fn new() -> Self;
    fn take_turn(&self, me: usize);
}

/// A turn flag under a verisync `Mutex`, waited for with a `Condition`.
struct VerisyncCondition {
    turn: verisync::Mutex<usize>,
    changed: verisync::Condition,
}

impl PingPong for VerisyncCondition {
    fn new() -> Self {
        Self {
            turn: verisync::Mutex::new(0),
            changed: verisync::Condition::new(),
        }
    }

    fn take_turn(&self, me: usize) {
        let mut turn = self.turn.lock();
        while *turn != me {
            self.changed.wait(&mut turn);
        }
        *turn = 1 - me;
        drop(turn);
        self.changed.notify_one();
    }
}

/// A turn flag under a `parking_lot::Mutex`, waited for with its `Condvar`.
struct ParkingLotCondvar {
    turn: parking_lot::Mutex<usize>,
    changed: parking_lot::Condvar,
}

impl PingPong for ParkingLotCondvar {
    fn new() -> Self {
        Self {
            turn: parking_lot::Mutex::new(0),
            changed: parking_lot::Condvar::new(),
        }
    }

    fn take_turn(&self, me: usize) {
        let mut turn = self.turn.lock();
        while *turn != me {
            self.changed.wait(&mut turn);
        }
        *turn = 1 - me;
        drop(turn);
        self.changed.notify_one();
    }
}

/// A turn flag under a `std::sync::Mutex`, waited for with std's `Condvar`.
struct StdCondvar {
    turn: std::sync::Mutex<usize>,
    changed: std::sync::Condvar,
}

impl PingPong for StdCondvar {
    fn new() -> Self {
        Self {
            turn: std::sync::Mutex::new(0),
            changed: std::sync::Condvar::new(),
        }
    }

    fn take_turn(&self, me: usize) {
        let mut turn = self.turn.lock().unwrap();
        while *turn != me {
            turn = self.changed.wait(turn).unwrap();
        }
        *turn = 1 - me;
        drop(turn);
        self.changed.notify_one();
    }
}

/// Two verisync `Event`s: `your_turn[i]` is set when it is thread `i`'s
/// turn; the thread clears it, then sets the other thread's.
struct VerisyncEvents {
    your_turn: [verisync::Event; 2],
}

impl PingPong for VerisyncEvents {
    fn new() -> Self {
        let events = Self {
            your_turn: [verisync::Event::new(), verisync::Event::new()],
        };
        events.your_turn[0].set();
        events
    }

    fn take_turn(&self, me: usize) {
        self.your_turn[me].wait();
        self.your_turn[me].clear();
        self.your_turn[1 - me].set();
    }
}

/// `rounds` round trips (thread 0 → thread 1 → thread 0) on two threads
/// pinned to `cores`.
fn ping_pong<P: PingPong>(rounds: u64, cores: [CoreId; 2]) -> Duration {
    let state = P::new();
    timed_threads(
        2,
        |index| Some(cores[index]),
        |me| {
            for _ in 0..rounds {
                state.take_turn(me);
            }
        },
    )
}

fn ping_pong_group(c: &mut Criterion, name: &str, cores: [CoreId; 2]) {
    let mut group = c.benchmark_group(name);
    group.bench_function("verisync_condition", |b| {
        b.iter_custom(|iters| ping_pong::<VerisyncCondition>(iters, cores));
    });
    group.bench_function("parking_lot_condvar", |b| {
        b.iter_custom(|iters| ping_pong::<ParkingLotCondvar>(iters, cores));
    });
    group.bench_function("std_condvar", |b| {
        b.iter_custom(|iters| ping_pong::<StdCondvar>(iters, cores));
    });
    group.bench_function("verisync_event", |b| {
        b.iter_custom(|iters| ping_pong::<VerisyncEvents>(iters, cores));
    });
    group.finish();
}

fn ping_pong_benches(c: &mut Criterion) {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let Some(&first) = cores.first() else {
        eprintln!("ping_pong: cannot list CPUs to pin to; skipped");
        return;
    };
    ping_pong_group(c, "ping_pong_one_cpu", [first, first]);
    match cores.get(1) {
        Some(&second) => ping_pong_group(c, "ping_pong_two_cpus", [first, second]),
        None => eprintln!("ping_pong_two_cpus: only one CPU available; skipped"),
    }
}

// ---------------------------------------------------------------------------
// Semaphores
// ---------------------------------------------------------------------------

/// The textbook semaphore: a count under a `parking_lot::Mutex`, waited for
/// with a `parking_lot::Condvar`.
struct CondvarSemaphore {
    permits: parking_lot::Mutex<usize>,
    released: parking_lot::Condvar,
}

impl CondvarSemaphore {
    fn new(permits: usize) -> Self {
        Self {
            permits: parking_lot::Mutex::new(permits),
            released: parking_lot::Condvar::new(),
        }
    }

    #[inline]
    fn acquire(&self) {
        let mut permits = self.permits.lock();
        while *permits == 0 {
            self.released.wait(&mut permits);
        }
        *permits -= 1;
    }

    #[inline]
    fn release(&self) {
        *self.permits.lock() += 1;
        self.released.notify_one();
    }
}

/// The floor: a CAS loop that decrements a non-zero count, and a `fetch_add`
/// to give the permit back (spins instead of blocking; only for uncontended use).
struct AtomicSemaphore {
    permits: AtomicUsize,
}

impl AtomicSemaphore {
    #[inline]
    fn acquire(&self) {
        let mut permits = self.permits.load(Ordering::Relaxed);
        loop {
            if permits == 0 {
                std::hint::spin_loop();
                permits = self.permits.load(Ordering::Relaxed);
                continue;
            }
            match self.permits.compare_exchange_weak(
                permits,
                permits - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => permits = actual,
            }
        }
    }

    #[inline]
    fn release(&self) {
        self.permits.fetch_add(1, Ordering::Release);
    }
}

fn semaphore_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("semaphore_uncontended");

    let verisync = verisync::Semaphore::new(1);
    group.bench_function("verisync", |b| {
        b.iter(|| drop(black_box(&verisync).acquire()));
    });

    let condvar = CondvarSemaphore::new(1);
    group.bench_function("parking_lot_mutex_condvar", |b| {
        b.iter(|| {
            let semaphore = black_box(&condvar);
            semaphore.acquire();
            semaphore.release();
        });
    });

    let floor = AtomicSemaphore {
        permits: AtomicUsize::new(1),
    };
    group.bench_function("floor_cas_fetch_add", |b| {
        b.iter(|| {
            let semaphore = black_box(&floor);
            semaphore.acquire();
            semaphore.release();
        });
    });

    group.finish();
}

fn semaphore_contended(c: &mut Criterion) {
    const THREADS: usize = 4;
    const PERMITS: usize = 2;
    let mut group = c.benchmark_group("semaphore_contended");
    contended_settings(&mut group);

    group.bench_function("verisync", |b| {
        b.iter_custom(|iters| {
            let semaphore = CachePadded::new(verisync::Semaphore::new(PERMITS));
            let elapsed = split_batch(iters, THREADS, |_, share| {
                for _ in 0..share {
                    drop(black_box(semaphore.acquire()));
                }
            });
            assert_eq!(semaphore.available_permits(), PERMITS);
            elapsed
        });
    });

    group.bench_function("parking_lot_mutex_condvar", |b| {
        b.iter_custom(|iters| {
            let semaphore = CachePadded::new(CondvarSemaphore::new(PERMITS));
            let elapsed = split_batch(iters, THREADS, |_, share| {
                for _ in 0..share {
                    semaphore.acquire();
                    black_box(&*semaphore);
                    semaphore.release();
                }
            });
            assert_eq!(*semaphore.permits.lock(), PERMITS);
            elapsed
        });
    });

    group.finish();
}

// ---------------------------------------------------------------------------

fn config() -> Criterion {
    Criterion::default()
        .sample_size(25)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = mutex_uncontended,
        mutex_nested_pair,
        mutex_contended,
        reentrant_uncontended,
        ping_pong_benches,
        semaphore_uncontended,
        semaphore_contended
}
criterion_main!(benches);
