//! verisync's `ProcessPool` (2 worker processes): start-up, tiny tasks and
//! `map` — the Rust half of issue 5's benchmarks; `benches/process_pool.py`
//! times the same workloads with Python's `ProcessPoolExecutor(2)` and
//! `multiprocessing.Pool(2)` (fork start method) on the same machine, and
//! `benches/ratios.py` puts both side by side.
//!
//! | group                    | one iteration | row |
//! |--------------------------|---------------|-----|
//! | `process_pool_startup`   | `ProcessPool::new(2)` to the first result of one tiny task (the pool's shutdown afterwards is not timed) | `verisync`; `verisync_1_worker` (`ProcessPool::new(1)`, for information: the cost of one worker's start) |
//! | `process_pool_tiny_tasks`| one tiny task of a round of 5,000 submitted with `submit`, then every handle `join`ed | `verisync_submit_join` |
//! | `process_pool_map`       | one item of `pool.map(tiny, 0..5000).collect()` | `verisync_map` |
//!
//! A tiny task is `fn tiny(x: u64) -> u64 { x }`: a `u64` argument and a
//! `u64` result crossing the process boundary. The pools of the task and
//! map groups are built once, outside the timed region; every measured
//! batch (`iter_custom`) runs whole rounds, timed on the submitting thread,
//! and scales the total to the iterations criterion asked for; results are
//! summed and checked. `verisync::process::init()` is the first line of
//! `main` (worker processes re-execute this binary), hence no
//! `criterion_main!`.
//!
//! Reproduce (both halves, then the ratio table with issue 5's targets):
//!
//! ```text
//! cargo bench --bench process_pool && python3 benches/process_pool.py && python3 benches/ratios.py
//! cargo bench --bench process_pool -- process_pool_startup   # re-run one group
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, SamplingMode};
use verisync::ProcessPool;

/// Worker processes.
const WORKERS: usize = 2;
/// Tasks per round of the task and map groups.
const ROUND: u64 = 5_000;

/// The tiny task: its argument back.
fn tiny(x: u64) -> u64 {
    x
}

fn expected_sum() -> u64 {
    (0..ROUND).sum()
}

/// Runs `round()` as many times as it takes to cover `iters` iterations of
/// `per_round` each, and scales the summed time to `iters`.
fn rounds(iters: u64, per_round: u64, mut round: impl FnMut() -> Duration) -> Duration {
    let count = iters.div_ceil(per_round).max(1);
    let total: Duration = (0..count).map(|_| round()).sum();
    total.mul_f64(iters as f64 / (count * per_round) as f64)
}

fn pool() -> ProcessPool {
    ProcessPool::new(WORKERS).expect("the worker processes start")
}

fn startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_pool_startup");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, workers) in [("verisync", WORKERS), ("verisync_1_worker", 1)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for index in 0..iters {
                    let start = Instant::now();
                    let pool = ProcessPool::new(workers).expect("the worker processes start");
                    let answer = pool.submit(tiny, black_box(index)).join();
                    total += start.elapsed();
                    assert_eq!(answer, Ok(index));
                    drop(pool); // shutdown: waits for the workers, not timed
                }
                total
            })
        });
    }
    group.finish();
}

fn tiny_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_pool_tiny_tasks");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let pool = pool();
    group.bench_function("verisync_submit_join", |b| {
        b.iter_custom(|iters| {
            rounds(iters, ROUND, || {
                let start = Instant::now();
                let handles: Vec<_> = (0..ROUND).map(|x| pool.submit(tiny, x)).collect();
                let sum: u64 = handles
                    .into_iter()
                    .map(|handle| handle.join().expect("a tiny task cannot fail"))
                    .sum();
                let elapsed = start.elapsed();
                assert_eq!(sum, expected_sum(), "results were lost or duplicated");
                elapsed
            })
        })
    });
    group.finish();
}

fn map(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_pool_map");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let pool = pool();
    group.bench_function("verisync_map", |b| {
        b.iter_custom(|iters| {
            rounds(iters, ROUND, || {
                let start = Instant::now();
                let results: Vec<u64> = pool
                    .map(tiny, 0..ROUND)
                    .collect::<Result<_, _>>()
                    .expect("a tiny task cannot fail");
                let elapsed = start.elapsed();
                assert_eq!(results.iter().sum::<u64>(), expected_sum());
                elapsed
            })
        })
    });
    group.finish();
}

criterion_group!(benches, startup, tiny_tasks, map);

fn main() {
    verisync::process::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
