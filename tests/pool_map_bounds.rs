//! A map's items run on the pool's workers only (adversarial review 14: a
//! caller that ran chunks itself broke both of these): a pool of N workers
//! runs at most N items at once, and items get the workers' stack size.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use verisync::ThreadPool;

use common::{with_watchdog, PATIENCE};

/// A pool of N workers bounds how many items of a map run at once to N
/// (Python's `Pool(1).map` runs one item at a time; users size pools to
/// cap memory, connections, or to serialise a resource). With the caller
/// running chunks no worker has started, a pool of one worker runs two
/// items at once: the worker's chunk and the caller's.
#[test]
fn a_pool_of_one_worker_runs_one_map_item_at_a_time() {
    with_watchdog(PATIENCE * 6, || {
        let pool = ThreadPool::new(1);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let (running, most_seen) = (Arc::clone(&running), Arc::clone(&most));
            // An input of unknown length: chunks of one item at first.
            let inputs = (0..40u64).filter(|_| true);
            let results: Vec<_> = pool
                .map(inputs, move |item| {
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most_seen.fetch_max(now, SeqCst);
                    std::thread::sleep(Duration::from_micros(300));
                    running.fetch_sub(1, SeqCst);
                    item
                })
                .collect();
            assert_eq!(results.len(), 40);
            if most.load(SeqCst) > 1 {
                break;
            }
        }
        assert_eq!(
            most.load(SeqCst),
            1,
            "a pool of ONE worker ran {} map items at once",
            most.load(SeqCst)
        );
    });
}

/// Recursion `depth` deep, each frame holding a 1 KiB array.
#[inline(never)]
fn deep(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        return u64::from(frame[0]);
    }
    deep(depth - 1) + u64::from(std::hint::black_box(frame)[1])
}

/// The scenario, run in a child process (a stack overflow aborts the
/// whole process): a pool whose workers have 64 MiB stacks maps a function
/// that needs about 16 MiB of stack, from a caller thread with a 1 MiB
/// stack, while the one worker is busy for a moment.
#[test]
#[ignore = "run by map_items_run_with_the_pools_stack_size in a child process"]
fn inner_map_on_a_small_stack_caller() {
    let pool = ThreadPool::builder()
        .workers(1)
        .stack_size(64 << 20)
        .build();
    let caller = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            // The worker is busy: the map's chunk waits in the queue.
            let busy = pool.submit(|| std::thread::sleep(Duration::from_millis(300)));
            let results: Vec<_> = pool.map([16_000u64], deep).collect();
            busy.join().unwrap();
            results.len()
        })
        .unwrap();
    assert_eq!(caller.join().unwrap(), 1);
}

/// `ThreadPoolBuilder::stack_size` sizes the stacks tasks run on: a map
/// over a pool built for deep recursion must not run an item on the
/// caller's (smaller) stack. Observed: the caller runs the queued chunk
/// itself and the process dies of a stack overflow (SIGABRT).
#[test]
fn map_items_run_with_the_pools_stack_size() {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "inner_map_on_a_small_stack_caller",
            "--ignored",
            "--nocapture",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(
        status.status.success(),
        "the map crashed: {:?}\n{}",
        status.status,
        stderr.lines().take(5).collect::<Vec<_>>().join("\n")
    );
}

/// The caller's claim racing the workers' and `shutdown_now`'s: every
/// item gives one result, runs at most once, `Ok` exactly when it ran, and
/// `shutdown_now`'s count matches the chunks that said `Cancelled`.
#[test]
fn caller_runs_race_shutdown_now_and_workers() {
    use std::sync::atomic::AtomicU8;
    with_watchdog(PATIENCE * 6, || {
        for round in 0..300u64 {
            let pool = Arc::new(ThreadPool::new(2));
            const N: usize = 200;
            let runs: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
            let stopper = {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_micros(50 + round * 7 % 900));
                    pool.shutdown_now()
                })
            };
            let counted = Arc::clone(&runs);
            let results: Vec<_> = pool
                .map((0..N).filter(|_| true), move |item| {
                    assert_eq!(
                        counted[item].fetch_add(1, SeqCst),
                        0,
                        "item {item} ran twice"
                    );
                    std::hint::black_box((0..200).sum::<u64>());
                    item
                })
                .collect();
            let _cancelled = stopper.join().unwrap();
            assert_eq!(results.len(), N, "round {round}");
            for (item, result) in results.iter().enumerate() {
                let ran = runs[item].load(SeqCst);
                match result {
                    Ok(value) => assert!(*value == item && ran == 1, "round {round} item {item}"),
                    Err(verisync::TaskError::Cancelled | verisync::TaskError::ShutDown) => {
                        assert_eq!(
                            ran, 0,
                            "round {round}: item {item} ran but reports {result:?}"
                        )
                    }
                    Err(other) => panic!("round {round} item {item}: {other:?}"),
                }
            }
        }
    });
}
