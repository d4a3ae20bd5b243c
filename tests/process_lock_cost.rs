//! What one uncontended `process::Lock` lock + unlock costs, in
//! instructions, against the thread `Mutex` (issue 14's target: at most
//! twice its time). Ignored: a measuring harness, not a check. Count with
//! callgrind, which sees only the two loops below:
//!
//! ```text
//! cargo test --release --test process_lock_cost --no-run   # prints the binary
//! VERISYNC_COST_ITERATIONS=1000000 valgrind --tool=callgrind \
//!     --toggle-collect='*process_lock_loop*' --toggle-collect='*mutex_loop*' \
//!     target/release/deps/process_lock_cost-... --ignored --test-threads=1 \
//!     --skip uncontended_ratio
//! callgrind_annotate callgrind.out.<pid>   # Ir per loop / iterations
//! ```
//!
//! Or time it (`--ignored --nocapture`): each loop test prints nanoseconds
//! per operation; `uncontended_ratio` alternates short runs of the two and
//! keeps each one's fastest, which a loaded machine disturbs least.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

use std::hint::black_box;
use std::time::{Duration, Instant};

use verisync::process::Lock;
use verisync::Mutex;

/// Lock + unlock operations per loop (`VERISYNC_COST_ITERATIONS`; 10
/// million by default).
fn iterations() -> u64 {
    std::env::var("VERISYNC_COST_ITERATIONS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(10_000_000)
}

#[inline(never)]
fn process_lock_loop(lock: &Lock, iterations: u64) {
    for _ in 0..iterations {
        let guard = lock.lock().expect("nobody dies here");
        black_box(&guard);
    }
}

#[inline(never)]
fn mutex_loop(mutex: &Mutex<()>, iterations: u64) {
    for _ in 0..iterations {
        let guard = mutex.lock();
        black_box(&guard);
    }
}

fn report(what: &str, iterations: u64, started: Instant) {
    let nanos = started.elapsed().as_nanos() as f64 / iterations as f64;
    println!("{what}: {iterations} lock + unlock, {nanos:.1} ns each");
}

#[test]
#[ignore = "a measuring harness: run it under callgrind or on a quiet machine"]
fn process_lock_uncontended_cost() {
    let lock = Lock::new().unwrap();
    let iterations = iterations();
    let started = Instant::now();
    process_lock_loop(&lock, iterations);
    report("process::Lock", iterations, started);
    assert!(lock.try_lock().is_ok(), "the loop left it unlocked");
}

#[test]
#[ignore = "a measuring harness: run it under callgrind or on a quiet machine"]
fn mutex_uncontended_cost() {
    let mutex = Mutex::new(());
    let iterations = iterations();
    let started = Instant::now();
    mutex_loop(&mutex, iterations);
    report("Mutex", iterations, started);
    assert!(mutex.try_lock().is_some(), "the loop left it unlocked");
}

/// The fastest of `rounds` runs of `chunk` operations, in nanoseconds per
/// operation, for each of the two, run alternately.
#[test]
#[ignore = "a measuring harness: run it under callgrind or on a quiet machine"]
fn uncontended_ratio() {
    const ROUNDS: usize = 200;
    const CHUNK: u64 = 100_000;
    let lock = Lock::new().unwrap();
    let mutex = Mutex::new(());
    let (mut fastest_lock, mut fastest_mutex) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        process_lock_loop(&lock, CHUNK);
        fastest_lock = fastest_lock.min(started.elapsed());
        let started = Instant::now();
        mutex_loop(&mutex, CHUNK);
        fastest_mutex = fastest_mutex.min(started.elapsed());
    }
    let per_op = |fastest: Duration| fastest.as_nanos() as f64 / CHUNK as f64;
    let (lock_ns, mutex_ns) = (per_op(fastest_lock), per_op(fastest_mutex));
    println!(
        "fastest of {ROUNDS} x {CHUNK}: process::Lock {lock_ns:.2} ns, Mutex {mutex_ns:.2} ns, \
         ratio {:.2}",
        lock_ns / mutex_ns
    );
}
