//! verisync's process-shared primitives (`verisync::process::{Lock,
//! Value}`) against the thread `Mutex` — the Rust half of issue 14's
//! benchmarks; `benches/process_shared.py` times the same workloads with
//! Python's `multiprocessing.Lock` and `multiprocessing.Value` (fork start
//! method), and `benches/ratios.py` puts both side by side.
//!
//! | group                           | one iteration | rows |
//! |---------------------------------|---------------|------|
//! | `process_lock_uncontended`      | one lock + unlock by one thread, nobody else around | `verisync_process_lock` (`process::Lock::lock()`, guard dropped); `verisync_mutex` (the thread `verisync::Mutex<()>`, the target's yardstick) |
//! | `process_lock_contended_2`      | one lock + unlock, two processes doing 20,000 each at once (time per operation of both together: 1 / ops per second) | `verisync_process_lock_2_processes`; `verisync_mutex_2_threads` (the thread `Mutex`, two threads of one process: the in-process bound) |
//! | `process_value_fetch_add`       | one `+= 1` on a shared `u64`, one thread | `verisync_fetch_add` (`Value::fetch_add(1)`); `verisync_lock_increment` (`*value.lock()? += 1`) |
//!
//! The contended group starts its two processes (or threads) outside the
//! timed region: each says it is ready (a `process::Semaphore` release)
//! and waits for a `process::Event`; the clock runs from the `set` to the
//! moment both have said they are done (another semaphore), so process
//! start-up and exit are not timed. Counts are checked after each round.
//!
//! **Queue rows (issue 14 item 8, to come):** `process::JoinableQueue`
//! messages per second between two processes (u64 and 1 KiB items, with
//! `task_done`) against Python's `multiprocessing.Queue`/`JoinableQueue`,
//! a pipe with postcard frames and the thread `JoinableQueue` belong in a
//! group `process_queue_*` here, marked `QUEUE ROWS` below and in
//! `process_shared.py` and `ratios.py`.
//!
//! `verisync::process::init()` is the first line of `main` (the child
//! processes re-execute this binary), hence no `criterion_main!`.
//!
//! Reproduce (both halves, then the ratio table with issue 14's target,
//! `process::Lock` uncontended ≤ 2× the thread `Mutex`):
//!
//! ```text
//! cargo bench --bench process_shared && python3 benches/process_shared.py && python3 benches/ratios.py
//! cargo bench --bench process_shared -- process_lock_uncontended   # re-run one group
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, SamplingMode};
use serde::{Deserialize, Serialize};
use verisync::process::{Event, Lock, Semaphore, Value};
use verisync::Mutex;

/// Lock + unlock operations by each of the two contenders per round.
const CONTENDED_ROUND: u64 = 20_000;
/// Contending processes (or threads).
const CONTENDERS: usize = 2;
/// How long the parent waits for a contender to start or finish before
/// declaring the benchmark broken.
const PATIENCE: Duration = Duration::from_secs(60);

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_lock_uncontended");
    let lock = Lock::new().expect("the arena has room for a lock");
    group.bench_function("verisync_process_lock", |b| {
        b.iter(|| {
            let guard = lock.lock().expect("nobody dies here");
            black_box(&guard);
        })
    });
    let mutex = Mutex::new(());
    group.bench_function("verisync_mutex", |b| {
        b.iter(|| {
            let guard = mutex.lock();
            black_box(&guard);
        })
    });
    group.finish();
}

/// What a contending process gets (handles into shared memory; clones
/// name the same objects).
#[derive(Clone, Serialize, Deserialize)]
struct Contender {
    lock: Lock,
    /// Each contender adds how often it entered, checked after the round.
    entries: Value<u64>,
    ready: Semaphore,
    go: Event,
    done: Semaphore,
}

/// One contending process: ready, wait for the go, lock + unlock
/// `CONTENDED_ROUND` times (bumping a per-process count inside), done.
fn contend(contender: Contender) -> u64 {
    contender.ready.release(1).expect("unbounded");
    contender.go.wait();
    let mut inside = 0u64;
    for _ in 0..CONTENDED_ROUND {
        let guard = contender.lock.lock().expect("nobody dies here");
        inside = black_box(inside + 1);
        drop(guard);
    }
    contender.entries.fetch_add(inside);
    contender.done.release(1).expect("unbounded");
    inside
}

/// One round of two processes contending; returns the timed part. The
/// objects are made once and reused (shared memory is never freed): the
/// semaphores are back at 0 and the event clear after each round.
fn contended_processes_round(shared: &Contender) -> Duration {
    shared.entries.store(0);
    shared.go.clear();
    let children: Vec<_> = (0..CONTENDERS)
        .map(|_| verisync::process::spawn(contend, shared.clone()).expect("the contender starts"))
        .collect();
    shared
        .ready
        .try_acquire_many_for(CONTENDERS, PATIENCE)
        .expect("the contenders started")
        .forget();
    let start = Instant::now();
    shared.go.set();
    shared
        .done
        .try_acquire_many_for(CONTENDERS, PATIENCE)
        .expect("the contenders finished")
        .forget();
    let elapsed = start.elapsed();
    for child in children {
        assert_eq!(child.join(), Ok(CONTENDED_ROUND));
    }
    assert_eq!(shared.entries.load(), CONTENDED_ROUND * CONTENDERS as u64);
    elapsed
}

/// One round of two threads contending for a thread `Mutex`.
fn contended_threads_round() -> Duration {
    let mutex = Mutex::new(0u64);
    let barrier = std::sync::Barrier::new(CONTENDERS + 1);
    let start = std::thread::scope(|scope| {
        for _ in 0..CONTENDERS {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..CONTENDED_ROUND {
                    *mutex.lock() += 1;
                }
            });
        }
        barrier.wait();
        Instant::now()
    });
    // The scope joined the threads: their exit is in the timed part (a few
    // microseconds against a round of milliseconds).
    let elapsed = start.elapsed();
    assert_eq!(*mutex.lock(), CONTENDED_ROUND * CONTENDERS as u64);
    elapsed
}

/// Runs `round()` as many times as it takes to cover `iters` operations of
/// `per_round` each, and scales the summed time to `iters`.
fn rounds(iters: u64, per_round: u64, mut round: impl FnMut() -> Duration) -> Duration {
    let count = iters.div_ceil(per_round).max(1);
    let total: Duration = (0..count).map(|_| round()).sum();
    total.mul_f64(iters as f64 / (count * per_round) as f64)
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_lock_contended_2");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let per_round = CONTENDED_ROUND * CONTENDERS as u64;
    let shared = Contender {
        lock: Lock::new().expect("room"),
        entries: Value::new(0).expect("room"),
        ready: Semaphore::new(0).expect("room"),
        go: Event::new().expect("room"),
        done: Semaphore::new(0).expect("room"),
    };
    group.bench_function("verisync_process_lock_2_processes", |b| {
        b.iter_custom(|iters| rounds(iters, per_round, || contended_processes_round(&shared)))
    });
    group.bench_function("verisync_mutex_2_threads", |b| {
        b.iter_custom(|iters| rounds(iters, per_round, contended_threads_round))
    });
    group.finish();
}

fn value(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_value_fetch_add");
    let hits = Value::new(0u64).expect("room");
    group.bench_function("verisync_fetch_add", |b| {
        b.iter(|| black_box(hits.fetch_add(1)))
    });
    group.bench_function("verisync_lock_increment", |b| {
        b.iter(|| {
            let mut guard = hits.lock().expect("nobody dies here");
            *guard += 1;
        })
    });
    group.finish();
}

// QUEUE ROWS: the `process_queue_*` groups (process::JoinableQueue between
// two processes, u64 and 1 KiB items, with task_done) go here when the
// queue lands, with their functions added to `criterion_group!` below.

criterion_group!(benches, uncontended, contended, value);

fn main() {
    verisync::process::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
