//! The workloads of the stress tests that are slow pinned to one CPU beside
//! a busy loop, timed on verisync's primitive and on a textbook or standard
//! one beside it, to tell a design problem of ours from a cost that every
//! blocking primitive pays when its threads share one CPU with a busy
//! loop (there a woken thread, or one that yields, may wait for the loop's
//! whole scheduler slice). `#[ignore]`d: measurements, not tests. Run them
//! pinned:
//!
//! ```text
//! nice -n 19 taskset -c 0 sh -c 'while :; do :; done' &
//! nice -n 19 taskset -c 0 cargo test --release --test oversubscribed \
//!     -- --ignored --nocapture --test-threads=1
//! kill %1
//! ```
//!
//! `ROUNDS=n` sets the rounds per thread (the stress tests run 40,000);
//! `NO_YIELD=1` makes the critical sections spin without yielding.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{with_watchdog, work, Rng};

/// Rounds per thread: `ROUNDS`, or 1,000 (the stress tests run 40,000,
/// which takes minutes beside the busy loop).
fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000)
}

/// `common::work` (which yields every eighth step, as in the stress
/// tests), or a spin of as many steps that never yields (`NO_YIELD=1`).
fn critical_section(spins: u8) {
    if std::env::var_os("NO_YIELD").is_none() {
        work(spins);
    } else {
        for _ in 0..spins {
            std::hint::spin_loop();
        }
    }
}

fn report(name: &str, operations: usize, took: Duration) {
    let per_operation = took / u32::try_from(operations).unwrap();
    println!("{name:>34}: {operations:>6} in {took:>10.3?}, {per_operation:>9.3?} each");
}

/// Runs a workload of `rounds` per thread; returns how many operations it
/// did and how long it took.
type Measure = fn(usize) -> (usize, Duration);

/// Runs each measurement twice, alternating, so both see the same load.
fn compare(measurements: [(&'static str, Measure); 2]) {
    with_watchdog(Duration::from_secs(600), move || {
        println!();
        for _ in 0..2 {
            for (name, measure) in measurements {
                let (operations, took) = measure(rounds());
                report(name, operations, took);
            }
        }
    });
}

/// A semaphore as the textbooks build it: a count under a mutex, and a
/// condition variable every release notifies (all waiters, since they may
/// want different counts). Whoever runs first takes the permits (barging).
#[derive(Default)]
struct CondvarSemaphore {
    permits: parking_lot::Mutex<usize>,
    released: parking_lot::Condvar,
}

impl CondvarSemaphore {
    fn acquire_many(&self, count: usize) {
        let mut permits = self.permits.lock();
        while *permits < count {
            self.released.wait(&mut permits);
        }
        *permits -= count;
    }

    fn release(&self, count: usize) {
        *self.permits.lock() += count;
        self.released.notify_all();
    }
}

const SEMAPHORE_THREADS: usize = 4;
const PERMITS: usize = 2;

/// `stress.rs`'s `semaphore_blocking_acquire_many_never_strands_a_waiter`
/// on whichever semaphore `hold` acquires `n` permits of, runs the critical
/// section with, and releases; returns the acquires and the time taken.
fn semaphore_workload(
    rounds: usize,
    hold: &(dyn Fn(usize, &dyn Fn()) + Sync),
) -> (usize, Duration) {
    let in_use = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for seed in 0..SEMAPHORE_THREADS {
            let in_use = &in_use;
            scope.spawn(move || {
                let mut rng = Rng::new(seed);
                for _ in 0..rounds {
                    let n = 1 + rng.below(PERMITS as u64) as usize;
                    let spins = rng.below(32) as u8;
                    hold(n, &|| {
                        let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                        assert!(now <= PERMITS, "{now} permits in use of {PERMITS}");
                        critical_section(spins);
                        in_use.fetch_sub(n, Ordering::SeqCst);
                    });
                }
            });
        }
    });
    (SEMAPHORE_THREADS * rounds, started.elapsed())
}

#[test]
#[ignore = "a measurement, not a test: run it pinned beside a busy loop"]
fn semaphore_acquire_many_against_a_condvar_semaphore() {
    compare([
        ("verisync::Semaphore", |rounds| {
            let semaphore = verisync::Semaphore::new(PERMITS);
            let result = semaphore_workload(rounds, &|n, critical_section| {
                let permit = semaphore.acquire_many(n);
                critical_section();
                drop(permit);
            });
            assert_eq!(semaphore.available_permits(), PERMITS);
            result
        }),
        ("parking_lot Mutex+Condvar", |rounds| {
            let semaphore = CondvarSemaphore::default();
            *semaphore.permits.lock() = PERMITS;
            let result = semaphore_workload(rounds, &|n, critical_section| {
                semaphore.acquire_many(n);
                critical_section();
                semaphore.release(n);
            });
            assert_eq!(*semaphore.permits.lock(), PERMITS);
            result
        }),
    ]);
}

const PARTIES: usize = 4;

/// `stress.rs`'s `barrier_reused_across_many_generations` on whichever
/// barrier `wait` waits on; returns the generations and the time taken.
fn barrier_workload(generations: usize, wait: &(dyn Fn() + Sync)) -> (usize, Duration) {
    let arrived: Vec<AtomicUsize> = (0..generations).map(|_| AtomicUsize::new(0)).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for seed in 0..PARTIES {
            let arrived = &arrived;
            scope.spawn(move || {
                let mut rng = Rng::new(seed);
                for (generation, arrived) in arrived.iter().enumerate() {
                    critical_section(rng.below(16) as u8);
                    arrived.fetch_add(1, Ordering::SeqCst);
                    wait();
                    let arrived = arrived.load(Ordering::SeqCst);
                    assert_eq!(arrived, PARTIES, "generation {generation}: released early");
                }
            });
        }
    });
    (generations, started.elapsed())
}

#[test]
#[ignore = "a measurement, not a test: run it pinned beside a busy loop"]
fn barrier_generations_against_std_barrier() {
    compare([
        ("verisync::Barrier", |generations| {
            let barrier = verisync::Barrier::new(PARTIES);
            barrier_workload(generations, &|| {
                barrier.wait().unwrap();
            })
        }),
        ("std::sync::Barrier", |generations| {
            let barrier = std::sync::Barrier::new(PARTIES);
            barrier_workload(generations, &|| {
                barrier.wait();
            })
        }),
    ]);
}

const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;

/// `stress_queue.rs`'s `bounded_queues_of_every_order_wake_every_blocked_party`
/// (its FIFO, without the joiner, which the channel has no counterpart of)
/// on whichever capacity-2 queue `put` and `get` use (`get` returns `None`
/// once every producer is done and the queue is empty); returns the items
/// and the time taken.
fn queue_workload(
    per_producer: usize,
    put: &(dyn Fn(usize) + Sync),
    get: &(dyn Fn() -> Option<usize> + Sync),
    producers_done: &(dyn Fn() + Sync),
) -> (usize, Duration) {
    let started = Instant::now();
    let mut consumed: Vec<usize> = std::thread::scope(|scope| {
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| scope.spawn(|| std::iter::from_fn(get).collect::<Vec<_>>()))
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                scope.spawn(move || {
                    for sequence in 0..per_producer {
                        put(producer * per_producer + sequence);
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.join().unwrap();
        }
        producers_done();
        consumers
            .into_iter()
            .flat_map(|consumer| consumer.join().unwrap())
            .collect()
    });
    let took = started.elapsed();
    consumed.sort_unstable();
    assert!(consumed.into_iter().eq(0..PRODUCERS * per_producer));
    (PRODUCERS * per_producer, took)
}

#[test]
#[ignore = "a measurement, not a test: run it pinned beside a busy loop"]
fn bounded_queue_against_a_crossbeam_channel() {
    compare([
        ("verisync::JoinableQueue::bounded", |per_producer| {
            let queue = verisync::JoinableQueue::bounded(2);
            queue_workload(
                per_producer,
                &|item| queue.put(item).unwrap(),
                &|| {
                    let item = queue.get().ok()?;
                    queue.task_done().unwrap();
                    Some(item)
                },
                &|| queue.shutdown(),
            )
        }),
        ("crossbeam_channel::bounded", |per_producer| {
            // Shut down by one end-of-stream item per consumer.
            const END: usize = usize::MAX;
            let (sender, receiver) = crossbeam_channel::bounded(2);
            queue_workload(
                per_producer,
                &|item| sender.send(item).unwrap(),
                &|| receiver.recv().ok().filter(|&item| item != END),
                &|| (0..CONSUMERS).for_each(|_| sender.send(END).unwrap()),
            )
        }),
    ]);
}
