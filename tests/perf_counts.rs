//! Workloads for counting instructions (`perf stat`), not tests: each is
//! `#[ignore]`d and runs one benchmark shape of `benches/pool.rs` a number
//! of times (`VERISYNC_PERF_ROUNDS`, default 0: only the set-up), so that
//! the count of a run with N rounds minus the count with 0 rounds, divided
//! by the items (or tasks), is the cost of one item (or task), free of the
//! wall-clock noise of a shared machine.
//!
//! ```text
//! cargo test --release --test perf_counts --no-run
//! VERISYNC_PERF_ROUNDS=20 perf stat -e instructions,task-clock \
//!     target/release/deps/perf_counts-* --ignored --exact map_verisync
//! ```
//!
//! `map_*`: `pool.map` of 1,000,000 `u64`s by a cheap function, collected
//! into a `Vec` (the `map_1m` group), against rayon and against the same
//! collect with no pool at all (`map_serial_collect_floor`); `scope_*`: 100,000 tiny tasks in one
//! scope, each handle dropped (the `tiny_tasks` group's `*_scope` rows).
//! Every round checks its results, so a count of a broken run is not taken.

use std::hint::black_box;

use rayon::prelude::*;

const WORKERS: usize = 2;
const MAP_ITEMS: u64 = 1_000_000;
const SCOPE_TASKS: u64 = 100_000;

fn rounds() -> usize {
    std::env::var("VERISYNC_PERF_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(0)
}

/// Runs `round` `rounds()` times; with `VERISYNC_PERF_PRINT` set, prints
/// the fastest and the median round's time per unit (`units` per round)
/// on stderr, for a rough wall-clock look (the fastest round is the least
/// disturbed one on a shared machine; the median is closer to what a
/// criterion mean sees); with `VERISYNC_PERF_EACH` set, every round's (the
/// pool workloads settle into one of a few speeds per process, so an A/B
/// comparison alternates binaries over many processes and compares the
/// distributions of rounds).
fn run_rounds(units: u64, mut round: impl FnMut()) {
    let mut times = Vec::with_capacity(rounds());
    for _ in 0..rounds() {
        let start = std::time::Instant::now();
        round();
        times.push(start.elapsed());
    }
    if std::env::var_os("VERISYNC_PERF_EACH").is_some() {
        let each: Vec<u64> = times
            .iter()
            .map(|time| time.as_nanos() as u64 / units)
            .collect();
        eprintln!("rounds (ns per unit): {each:?}");
    }
    if std::env::var_os("VERISYNC_PERF_PRINT").is_some() && !times.is_empty() {
        times.sort();
        let per_unit = |time: std::time::Duration| time.as_nanos() as f64 / units as f64;
        eprintln!(
            "fastest round: {:.2} ns per unit, median {:.2}",
            per_unit(times[0]),
            per_unit(times[times.len() / 2])
        );
    }
}

#[inline]
fn cheap(item: u64) -> u64 {
    item.wrapping_mul(3) ^ 0x5555
}

fn items_and_sum() -> (Vec<u64>, u64) {
    let items: Vec<u64> = (0..MAP_ITEMS).collect();
    let sum = items
        .iter()
        .fold(0u64, |sum, &item| sum.wrapping_add(cheap(item)));
    (items, sum)
}

fn check(results: &[u64], expected: u64) {
    let sum = results.iter().fold(0u64, |sum, &r| sum.wrapping_add(r));
    assert_eq!((results.len() as u64, sum), (MAP_ITEMS, expected));
}

#[test]
#[ignore = "a workload for perf stat, not a test"]
fn map_verisync() {
    let (items, expected) = items_and_sum();
    let pool = verisync::ThreadPool::new(WORKERS);
    run_rounds(MAP_ITEMS, || {
        let results: Vec<u64> = pool
            .map(items.iter().copied(), cheap)
            .collect::<Result<_, _>>()
            .expect("a cheap item cannot fail");
        check(&results, expected);
    });
}

/// As `map_verisync`, the results taken by `for_each` (the map's `fold`).
#[test]
#[ignore = "a workload for perf stat, not a test"]
fn map_verisync_for_each() {
    let (items, expected) = items_and_sum();
    let pool = verisync::ThreadPool::new(WORKERS);
    run_rounds(MAP_ITEMS, || {
        let mut results = Vec::with_capacity(items.len());
        pool.map(items.iter().copied(), cheap)
            .for_each(|result| results.push(result.expect("a cheap item cannot fail")));
        check(&results, expected);
    });
}

/// As `map_verisync`, from an input without an exact length (every item
/// passes the filter, so the counts compare with `map_verisync`'s).
#[test]
#[ignore = "a workload for perf stat, not a test"]
fn map_verisync_inexact_input() {
    let (items, expected) = items_and_sum();
    let pool = verisync::ThreadPool::new(WORKERS);
    run_rounds(MAP_ITEMS, || {
        let results: Vec<u64> = pool
            .map(
                items.iter().copied().filter(|&item| item < MAP_ITEMS),
                cheap,
            )
            .collect::<Result<_, _>>()
            .expect("a cheap item cannot fail");
        check(&results, expected);
    });
}

/// The floor under any `map` whose results are collected as
/// `map_verisync` collects them: no pool at all, the caller's thread alone
/// reads each input, applies the function and hands out an `Ok` to the
/// same `collect::<Result<Vec<_>, _>>()`, whose loop calls `next` once per
/// item and, its size hint being `(0, _)`, grows the `Vec` by doubling.
#[test]
#[ignore = "a workload for perf stat, not a test"]
fn map_serial_collect_floor() {
    let (items, expected) = items_and_sum();
    run_rounds(MAP_ITEMS, || {
        let results: Vec<u64> = items
            .iter()
            .map(|&item| Ok::<u64, verisync::TaskError>(cheap(item)))
            .collect::<Result<_, _>>()
            .expect("a cheap item cannot fail");
        check(&results, expected);
    });
}

#[test]
#[ignore = "a workload for perf stat, not a test"]
fn map_rayon() {
    let (items, expected) = items_and_sum();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("a rayon pool");
    run_rounds(MAP_ITEMS, || {
        let results: Vec<u64> =
            pool.install(|| items.par_iter().map(|&item| cheap(item)).collect());
        check(&results, expected);
    });
}

#[test]
#[ignore = "a workload for perf stat, not a test"]
fn scope_verisync() {
    let pool = verisync::ThreadPool::new(WORKERS);
    run_rounds(SCOPE_TASKS, || {
        pool.scope(|scope| {
            for index in 0..SCOPE_TASKS {
                drop(scope.submit(move || {
                    black_box(index);
                }));
            }
        });
    });
}

#[test]
#[ignore = "a workload for perf stat, not a test"]
fn scope_rayon() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("a rayon pool");
    run_rounds(SCOPE_TASKS, || {
        pool.scope(|scope| {
            for index in 0..SCOPE_TASKS {
                scope.spawn(move |_| {
                    black_box(index);
                });
            }
        });
    });
}

/// A countdown latch as `benches/pool.rs` has it: the last `count_down`
/// wakes the waiter through a `std` `Mutex` + `Condvar`.
struct Latch {
    remaining: std::sync::atomic::AtomicUsize,
    done: std::sync::Mutex<bool>,
    zero: std::sync::Condvar,
}

impl Latch {
    fn new(count: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Latch {
            remaining: std::sync::atomic::AtomicUsize::new(count as usize),
            done: std::sync::Mutex::new(false),
            zero: std::sync::Condvar::new(),
        })
    }

    fn count_down(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            *self.done.lock().unwrap() = true;
            self.zero.notify_all();
        }
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap();
        while !*done {
            done = self.zero.wait(done).unwrap();
        }
    }
}

/// 100,000 tiny tasks submitted, every handle kept and joined (the
/// `tiny_tasks` group's `verisync_submit` row).
#[test]
#[ignore = "a workload for perf stat, not a test"]
fn submit_verisync() {
    let pool = verisync::ThreadPool::new(WORKERS);
    run_rounds(SCOPE_TASKS, || {
        let handles: Vec<_> = (0..SCOPE_TASKS)
            .map(|index| {
                pool.submit(move || {
                    black_box(index);
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("a tiny task cannot fail");
        }
    });
}

/// 100,000 tiny tasks submitted, each handle dropped, awaited with a latch
/// (the `tiny_tasks` group's `verisync_submit_latch` row).
#[test]
#[ignore = "a workload for perf stat, not a test"]
fn submit_verisync_latch() {
    let pool = verisync::ThreadPool::new(WORKERS);
    run_rounds(SCOPE_TASKS, || {
        let latch = Latch::new(SCOPE_TASKS);
        for index in 0..SCOPE_TASKS {
            let latch = std::sync::Arc::clone(&latch);
            drop(pool.submit(move || {
                black_box(index);
                latch.count_down();
            }));
        }
        latch.wait();
    });
}

/// As `submit_verisync_latch`, on the `threadpool` crate (the
/// `threadpool_latch` row).
#[test]
#[ignore = "a workload for perf stat, not a test"]
fn submit_threadpool_latch() {
    let pool = threadpool::ThreadPool::new(WORKERS);
    run_rounds(SCOPE_TASKS, || {
        let latch = Latch::new(SCOPE_TASKS);
        for index in 0..SCOPE_TASKS {
            let latch = std::sync::Arc::clone(&latch);
            pool.execute(move || {
                black_box(index);
                latch.count_down();
            });
        }
        latch.wait();
    });
}
