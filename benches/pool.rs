//! verisync's `ThreadPool` side by side with rayon, the `threadpool` crate
//! and a textbook `Mutex<VecDeque>` + `Condvar` pool, in one run, 2 workers
//! everywhere (issue 4's benchmarks).
//!
//! | group                  | one iteration | rows |
//! |------------------------|---------------|------|
//! | `tiny_tasks`           | one tiny task of a round of 100,000 submitted, then all awaited | verisync `submit` + waiting on every `TaskHandle` (`verisync_submit`); verisync `submit`, handle dropped, + a latch (`verisync_submit_latch`, the same measure as the rows after it); `verisync::ThreadPool::scope`, each handle dropped (`verisync_scope`, against `rayon_scope`); `rayon::ThreadPool::spawn` + a latch (`rayon_spawn_latch`); `rayon::ThreadPool::scope` (`rayon_scope`); `threadpool::ThreadPool::execute` + a latch (`threadpool_latch`); a `Mutex<VecDeque<Box<dyn FnOnce>>>` + `Condvar` pool + a latch (`mutex_condvar_pool_latch`) |
//! | `tiny_tasks_20k`       | one tiny task of a round of 20,000 | verisync only: the workload `benches/pool_python.py` times for Python's `ThreadPoolExecutor(2)` |
//! | `value_tasks`          | one task of a round of 1,000, each returning a `u64` that the submitter collects | verisync `submit` + `TaskHandle::join` (`verisync_join`); `threadpool` + one `std::sync::mpsc::channel` per task (`threadpool_channel`) |
//! | `map_1m`               | one item of a 1,000,000-item map whose results are collected into a `Vec` | verisync `pool.map(items, f).collect()` (`verisync_map`); rayon `items.par_iter().map(f).collect()` (`rayon_par_iter`) |
//!
//! A tiny task is `black_box(index)`; the latch is an atomic countdown whose
//! last decrement wakes the submitter through a `std::sync::Mutex` +
//! `Condvar` (written below, the same for every latch row). Each pool is
//! built once per row, outside the timed region; a measured batch
//! (`iter_custom`) runs whole rounds — enough of them to cover the
//! iterations criterion asked for — each timed on the submitting thread
//! from the first submit to the moment every task is known finished, and
//! scales the total to the iterations asked for. Rows that return values
//! check their sum, so a lost or duplicated result fails the benchmark.
//!
//! Reproduce (the last command prints the ratio table with issue 4's
//! targets from criterion's saved medians, running the Python script if its
//! result is missing):
//!
//! ```text
//! cargo bench --bench pool && python3 benches/pool_python.py && python3 benches/ratios.py
//! cargo bench --bench pool -- tiny_tasks   # re-run one group
//! ```

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use rayon::prelude::*;

/// Worker threads of every pool.
const WORKERS: usize = 2;
/// Tasks per round of `tiny_tasks`.
const TINY_ROUND: u64 = 100_000;
/// Tasks per round of `tiny_tasks_20k` (the Python script's workload).
const PYTHON_ROUND: u64 = 20_000;
/// Tasks per round of `value_tasks`.
const VALUE_ROUND: u64 = 1_000;
/// Items per `map` of `map_1m`.
const MAP_ITEMS: u64 = 1_000_000;

/// Runs `round()` (which returns its own measured time) as many times as it
/// takes to cover `iters` iterations of `per_round` each, and scales the
/// summed time to `iters`.
fn rounds(iters: u64, per_round: u64, mut round: impl FnMut() -> Duration) -> Duration {
    let count = iters.div_ceil(per_round).max(1);
    let total: Duration = (0..count).map(|_| round()).sum();
    total.mul_f64(iters as f64 / (count * per_round) as f64)
}

// ---------------------------------------------------------------------------
// Helpers: a latch and the textbook pool
// ---------------------------------------------------------------------------

/// A countdown latch: `count_down` by each task, `wait` by the submitter.
struct Latch {
    remaining: AtomicUsize,
    lock: Mutex<bool>,
    zero: Condvar,
}

impl Latch {
    fn new(count: usize) -> Arc<Self> {
        Arc::new(Latch {
            remaining: AtomicUsize::new(count),
            lock: Mutex::new(false),
            zero: Condvar::new(),
        })
    }

    #[inline]
    fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.lock.lock().unwrap() = true;
            self.zero.notify_all();
        }
    }

    fn wait(&self) {
        let mut done = self.lock.lock().unwrap();
        while !*done {
            done = self.zero.wait(done).unwrap();
        }
    }
}

type BoxedJob = Box<dyn FnOnce() + Send>;

struct SimpleShared {
    queue: Mutex<(VecDeque<BoxedJob>, bool)>,
    available: Condvar,
}

/// The textbook pool: one `Mutex<VecDeque<Box<dyn FnOnce>>>` and one
/// `Condvar`; `execute` pushes and notifies one worker; a worker waits while
/// the queue is empty, pops, unlocks and runs.
struct SimplePool {
    shared: Arc<SimpleShared>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl SimplePool {
    fn new(workers: usize) -> Self {
        let shared = Arc::new(SimpleShared {
            queue: Mutex::new((VecDeque::new(), false)),
            available: Condvar::new(),
        });
        let workers = (0..workers)
            .map(|_| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || loop {
                    let job = {
                        let mut queue = shared.queue.lock().unwrap();
                        loop {
                            if let Some(job) = queue.0.pop_front() {
                                break job;
                            }
                            if queue.1 {
                                return;
                            }
                            queue = shared.available.wait(queue).unwrap();
                        }
                    };
                    job();
                })
            })
            .collect();
        SimplePool { shared, workers }
    }

    fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.shared.queue.lock().unwrap().0.push_back(Box::new(job));
        self.shared.available.notify_one();
    }
}

impl Drop for SimplePool {
    fn drop(&mut self) {
        self.shared.queue.lock().unwrap().1 = true;
        self.shared.available.notify_all();
        for worker in self.workers.drain(..) {
            worker.join().unwrap();
        }
    }
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("a rayon pool")
}

// ---------------------------------------------------------------------------
// Rounds
// ---------------------------------------------------------------------------

fn verisync_tiny(pool: &verisync::ThreadPool, tasks: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|index| {
            pool.submit(move || {
                black_box(index);
            })
        })
        .collect();
    let mut finished = 0u64;
    for handle in handles {
        handle.join().expect("a tiny task cannot fail");
        finished += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(finished, tasks);
    elapsed
}

fn verisync_latch(pool: &verisync::ThreadPool, tasks: u64) -> Duration {
    let start = Instant::now();
    let latch = Latch::new(tasks as usize);
    for index in 0..tasks {
        let latch = Arc::clone(&latch);
        // The handle is dropped at once: fire and forget, like the rows
        // below; the task still runs.
        drop(pool.submit(move || {
            black_box(index);
            latch.count_down();
        }));
    }
    latch.wait();
    start.elapsed()
}

fn rayon_spawn_latch(pool: &rayon::ThreadPool, tasks: u64) -> Duration {
    let start = Instant::now();
    let latch = Latch::new(tasks as usize);
    for index in 0..tasks {
        let latch = Arc::clone(&latch);
        pool.spawn(move || {
            black_box(index);
            latch.count_down();
        });
    }
    latch.wait();
    start.elapsed()
}

fn verisync_scope(pool: &verisync::ThreadPool, tasks: u64) -> Duration {
    let start = Instant::now();
    pool.scope(|scope| {
        for index in 0..tasks {
            // The handle is dropped at once; the scope still waits for the
            // task, as rayon's does.
            drop(scope.submit(move || {
                black_box(index);
            }));
        }
    });
    start.elapsed()
}

fn rayon_scope(pool: &rayon::ThreadPool, tasks: u64) -> Duration {
    let start = Instant::now();
    pool.scope(|scope| {
        for index in 0..tasks {
            scope.spawn(move |_| {
                black_box(index);
            });
        }
    });
    start.elapsed()
}

fn threadpool_latch(pool: &threadpool::ThreadPool, tasks: u64) -> Duration {
    let start = Instant::now();
    let latch = Latch::new(tasks as usize);
    for index in 0..tasks {
        let latch = Arc::clone(&latch);
        pool.execute(move || {
            black_box(index);
            latch.count_down();
        });
    }
    latch.wait();
    start.elapsed()
}

fn simple_latch(pool: &SimplePool, tasks: u64) -> Duration {
    let start = Instant::now();
    let latch = Latch::new(tasks as usize);
    for index in 0..tasks {
        let latch = Arc::clone(&latch);
        pool.execute(move || {
            black_box(index);
            latch.count_down();
        });
    }
    latch.wait();
    start.elapsed()
}

/// The value every `value_tasks` task returns for `index`.
#[inline]
fn value(index: u64) -> u64 {
    index.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn expected_value_sum() -> u64 {
    (0..VALUE_ROUND).fold(0u64, |sum, index| sum.wrapping_add(value(index)))
}

fn verisync_values(pool: &verisync::ThreadPool) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..VALUE_ROUND)
        .map(|index| pool.submit(move || value(black_box(index))))
        .collect();
    let sum = handles.into_iter().fold(0u64, |sum, handle| {
        sum.wrapping_add(handle.join().expect("a value task cannot fail"))
    });
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_value_sum(), "results were lost or duplicated");
    elapsed
}

fn threadpool_values(pool: &threadpool::ThreadPool) -> Duration {
    let start = Instant::now();
    let receivers: Vec<_> = (0..VALUE_ROUND)
        .map(|index| {
            let (sender, receiver) = mpsc::channel();
            pool.execute(move || {
                sender
                    .send(value(black_box(index)))
                    .expect("the receiver waits");
            });
            receiver
        })
        .collect();
    let sum = receivers.into_iter().fold(0u64, |sum, receiver| {
        sum.wrapping_add(receiver.recv().expect("the task sends"))
    });
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_value_sum(), "results were lost or duplicated");
    elapsed
}

/// The cheap function of `map_1m`.
#[inline]
fn cheap(item: u64) -> u64 {
    item.wrapping_mul(3) ^ 0x5555
}

fn expected_map_sum(items: &[u64]) -> u64 {
    items
        .iter()
        .fold(0u64, |sum, &item| sum.wrapping_add(cheap(item)))
}

fn verisync_map(pool: &verisync::ThreadPool, items: &[u64], expected: u64) -> Duration {
    let start = Instant::now();
    let results: Vec<u64> = pool
        .map(items.iter().copied(), cheap)
        .collect::<Result<_, _>>()
        .expect("a cheap item cannot fail");
    let elapsed = start.elapsed();
    let sum = results.iter().fold(0u64, |sum, &r| sum.wrapping_add(r));
    assert_eq!((results.len(), sum), (items.len(), expected));
    elapsed
}

fn rayon_map(pool: &rayon::ThreadPool, items: &[u64], expected: u64) -> Duration {
    let start = Instant::now();
    let results: Vec<u64> = pool.install(|| items.par_iter().map(|&item| cheap(item)).collect());
    let elapsed = start.elapsed();
    let sum = results.iter().fold(0u64, |sum, &r| sum.wrapping_add(r));
    assert_eq!((results.len(), sum), (items.len(), expected));
    elapsed
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
}

fn tiny_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("tiny_tasks");
    configure(&mut group);
    {
        let pool = verisync::ThreadPool::new(WORKERS);
        group.bench_function("verisync_submit", |b| {
            b.iter_custom(|iters| rounds(iters, TINY_ROUND, || verisync_tiny(&pool, TINY_ROUND)))
        });
        group.bench_function("verisync_submit_latch", |b| {
            b.iter_custom(|iters| rounds(iters, TINY_ROUND, || verisync_latch(&pool, TINY_ROUND)))
        });
        group.bench_function("verisync_scope", |b| {
            b.iter_custom(|iters| rounds(iters, TINY_ROUND, || verisync_scope(&pool, TINY_ROUND)))
        });
    }
    {
        let pool = rayon_pool();
        group.bench_function("rayon_spawn_latch", |b| {
            b.iter_custom(|iters| {
                rounds(iters, TINY_ROUND, || rayon_spawn_latch(&pool, TINY_ROUND))
            })
        });
        group.bench_function("rayon_scope", |b| {
            b.iter_custom(|iters| rounds(iters, TINY_ROUND, || rayon_scope(&pool, TINY_ROUND)))
        });
    }
    {
        let pool = threadpool::ThreadPool::new(WORKERS);
        group.bench_function("threadpool_latch", |b| {
            b.iter_custom(|iters| rounds(iters, TINY_ROUND, || threadpool_latch(&pool, TINY_ROUND)))
        });
    }
    {
        let pool = SimplePool::new(WORKERS);
        group.bench_function("mutex_condvar_pool_latch", |b| {
            b.iter_custom(|iters| rounds(iters, TINY_ROUND, || simple_latch(&pool, TINY_ROUND)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("tiny_tasks_20k");
    configure(&mut group);
    let pool = verisync::ThreadPool::new(WORKERS);
    group.bench_function("verisync_submit", |b| {
        b.iter_custom(|iters| rounds(iters, PYTHON_ROUND, || verisync_tiny(&pool, PYTHON_ROUND)))
    });
    group.finish();
}

fn value_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("value_tasks");
    configure(&mut group);
    {
        let pool = verisync::ThreadPool::new(WORKERS);
        group.bench_function("verisync_join", |b| {
            b.iter_custom(|iters| rounds(iters, VALUE_ROUND, || verisync_values(&pool)))
        });
    }
    {
        let pool = threadpool::ThreadPool::new(WORKERS);
        group.bench_function("threadpool_channel", |b| {
            b.iter_custom(|iters| rounds(iters, VALUE_ROUND, || threadpool_values(&pool)))
        });
    }
    group.finish();
}

fn map_1m(c: &mut Criterion) {
    let items: Vec<u64> = (0..MAP_ITEMS).collect();
    let expected = expected_map_sum(&items);
    let mut group = c.benchmark_group("map_1m");
    configure(&mut group);
    {
        let pool = verisync::ThreadPool::new(WORKERS);
        group.bench_function("verisync_map", |b| {
            b.iter_custom(|iters| {
                rounds(iters, MAP_ITEMS, || verisync_map(&pool, &items, expected))
            })
        });
    }
    {
        let pool = rayon_pool();
        group.bench_function("rayon_par_iter", |b| {
            b.iter_custom(|iters| rounds(iters, MAP_ITEMS, || rayon_map(&pool, &items, expected)))
        });
    }
    group.finish();
}

criterion_group!(benches, tiny_tasks, value_tasks, map_1m);
criterion_main!(benches);
