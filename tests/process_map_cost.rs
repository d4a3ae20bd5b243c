//! Where a process map's time goes: an ignored workload of the
//! `process_pool_map` benchmark's shape (`pool.map(tiny, 0..5000)` collected
//! on a 2-worker pool built once), run `VERISYNC_PERF_ROUNDS` times
//! (default 0: only the set-up), for `strace -c -f`, callgrind or a rough
//! wall-clock look (`--nocapture` prints the fastest and median round per
//! item). Ignored: a measuring harness, not a check.
//!
//! ```text
//! cargo test --release --test process_map_cost --no-run   # prints the binary
//! VERISYNC_PERF_ROUNDS=300 target/release/deps/process_map_cost-... --ignored --nocapture
//! VERISYNC_PERF_ROUNDS=200 strace -c -f target/release/deps/process_map_cost-... --ignored
//! ```
//!
//! Under valgrind the pool cannot start its workers as it is: it starts
//! them from `/proc/self/exe`, which names valgrind's own tool there. With
//! `child.rs` changed locally to start them from `std::env::current_exe()`,
//! `valgrind --tool=callgrind` (without `--trace-children`: a worker under
//! valgrind crashes) counts the parent; the count of a run with N rounds
//! minus the count with 0 rounds, divided by N × 5,000, is the parent's
//! cost of one item. Every round checks its results.

verisync::process_test_support!();

use std::time::{Duration, Instant};

const WORKERS: usize = 2;
const ITEMS: u64 = 5_000;

fn tiny(x: u64) -> u64 {
    x
}

fn rounds() -> usize {
    std::env::var("VERISYNC_PERF_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "a workload for callgrind, strace or timing, not a test"]
fn map_5000_tiny_items() {
    let pool = verisync::ProcessPool::new(WORKERS).expect("the workers start");
    let expected: u64 = (0..ITEMS).sum();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..rounds() {
        let start = Instant::now();
        let results: Vec<u64> = pool
            .map(tiny, 0..ITEMS)
            .collect::<Result<_, _>>()
            .expect("a tiny item cannot fail");
        times.push(start.elapsed());
        assert_eq!(results.iter().sum::<u64>(), expected);
    }
    times.sort();
    if let (Some(fastest), Some(median)) = (times.first(), times.get(times.len() / 2)) {
        let per_item = |time: &Duration| time.as_nanos() as f64 / ITEMS as f64;
        eprintln!(
            "per item: fastest round {:.0} ns, median {:.0} ns ({} rounds)",
            per_item(fastest),
            per_item(median),
            times.len()
        );
    }
}
