//! The process map's flat chunks against hostile workers and their limits
//! (adversarial review 14): SIGKILLs during big maps, a forged short chunk
//! answer, zero-length items, retiring workers, the result budget.

verisync::process_test_support!();

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::with_watchdog;
use verisync::{ProcessPool, TaskError};

const LIMIT: Duration = Duration::from_secs(300);

/// The killer's mean pause between SIGKILLs is about 3 × this.
const KILL_EVERY_MICROS: u64 = 40_000;

/// The most SIGKILLs per map.
const MAX_KILLS: usize = 12;

fn marker_directory(test: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("verisync-r14-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&directory);
    fs::create_dir_all(&directory).unwrap();
    directory
}

/// Marks the item (a second run panics), spins a little, returns 2 × item.
fn mark_and_double((directory, item): (PathBuf, u64)) -> u64 {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(directory.join(item.to_string()))
        .unwrap_or_else(|error| panic!("item {item} ran twice: {error}"));
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_micros(200) {}
    item * 2
}

fn kill_randomly(
    pool_pids: impl Fn() -> Vec<u32> + Send + 'static,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut kills = 0;
        let mut seed = 0x2545F4914F6CDD1Du64 ^ u64::from(std::process::id());
        while !stop.load(Ordering::SeqCst) && kills < MAX_KILLS {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_micros(
                KILL_EVERY_MICROS + seed % (4 * KILL_EVERY_MICROS),
            ));
            let pids = pool_pids();
            if pids.is_empty() {
                continue;
            }
            let pid = pids[(seed >> 20) as usize % pids.len()];
            // SAFETY: kill(2) with a plain pid and SIGKILL; no memory is shared.
            unsafe { libc_kill(pid as i32, 9) };
            kills += 1;
        }
        kills
    })
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

fn check(name: &str, results: Vec<Result<u64, TaskError>>, items: u64, directory: &PathBuf) {
    assert_eq!(results.len() as u64, items, "{name}: results lost or added");
    let mut died = 0;
    for (item, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(value, item as u64 * 2, "{name}: item {item}"),
            Err(TaskError::WorkerDied { .. }) => died += 1,
            other => panic!("{name}: item {item}: {other:?}"),
        }
    }
    eprintln!("{name}: {died} items WorkerDied");
    let _ = directory;
}

#[test]
fn sigkill_during_big_maps_answers_every_item_once() {
    with_watchdog(LIMIT, || {
        let pool = Arc::new(ProcessPool::new(2).unwrap());
        for round in 0..2 {
            for kind in ["map", "chunks", "unordered"] {
                let directory = marker_directory(&format!("kill-{kind}-{round}"));
                let stop = Arc::new(AtomicBool::new(false));
                let watched = Arc::clone(&pool);
                let killer = kill_randomly(move || watched.worker_pids(), Arc::clone(&stop));
                let items = 2_000u64;
                let inputs = (0..items).map(|item| (directory.clone(), item));
                let results: Vec<Result<u64, TaskError>> = match kind {
                    "map" => pool.map(mark_and_double, inputs).collect(),
                    "chunks" => pool
                        .map_with_chunksize(mark_and_double, inputs, 37)
                        .collect(),
                    _ => {
                        let mut pairs: Vec<(u64, Result<u64, TaskError>)> = Vec::new();
                        let got: Vec<_> = pool
                            .map_unordered(
                                |(d, i): (PathBuf, u64)| (i, mark_and_double((d, i))),
                                inputs,
                            )
                            .collect();
                        let mut errors = Vec::new();
                        for result in got {
                            match result {
                                Ok((i, v)) => pairs.push((i, Ok(v))),
                                Err(e) => errors.push(e),
                            }
                        }
                        stop.store(true, Ordering::SeqCst);
                        let kills = killer.join().unwrap();
                        pairs.sort_by_key(|(i, _)| *i);
                        let mut seen = std::collections::HashSet::new();
                        for (i, v) in &pairs {
                            assert!(seen.insert(*i), "unordered: item {i} delivered twice");
                            assert_eq!(v, &Ok(i * 2));
                        }
                        for e in &errors {
                            assert!(
                                matches!(e, TaskError::WorkerDied { .. }),
                                "unordered: {e:?}"
                            );
                        }
                        assert_eq!(
                            pairs.len() + errors.len(),
                            items as usize,
                            "unordered: lost/added"
                        );
                        eprintln!("unordered: {kills} kills, {} died", errors.len());
                        let _ = fs::remove_dir_all(&directory);
                        continue;
                    }
                };
                stop.store(true, Ordering::SeqCst);
                let kills = killer.join().unwrap();
                eprintln!("{kind}: {kills} kills");
                check(kind, results, items, &directory);
                let _ = fs::remove_dir_all(&directory);
            }
        }
        pool.shutdown();
    });
}

/// Appends `item` to the run log at `path` (one line per run).
fn record_run(path: &std::path::Path, item: u64) {
    use std::io::Write;
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    log.write_all(format!("{item}\n").as_bytes()).unwrap();
}

fn runs_in(path: &std::path::Path) -> Vec<u64> {
    let mut runs: Vec<u64> = fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    runs.sort_unstable();
    runs
}

/// Item 0 of the first chunk (task 0 of a fresh worker) forges that
/// chunk's answer: a well-formed `Done` with ONE outcome for the chunk of
/// three items, far below the result budget (so no real worker would have
/// stopped there). Then it sleeps so the parent reads the forgery first.
fn forges_a_short_chunk_answer((log, item): (PathBuf, u64)) -> u64 {
    record_run(&log, item);
    if item == 0 {
        // ChunkOutcome { nanos: 0, outcomes: [KIND_RESULT, len 1, 42] }
        let chunk_outcome = [0u8, 3, 0, 1, 42];
        // FromWorker::Done { id: 0, outcome: Ok(chunk_outcome) }
        let mut body = vec![1u8, 0, 0, chunk_outcome.len() as u8];
        body.extend(chunk_outcome);
        let mut frame = b"vs".to_vec();
        frame.extend((body.len() as u32).to_le_bytes());
        frame.extend(body);
        verisync::process::__write_raw_to_parent(&frame);
        std::thread::sleep(Duration::from_millis(500));
    }
    item
}

/// Garbage from a worker must never make an item run twice. A chunk
/// answer with fewer outcomes than items is trusted as "the budget stopped
/// the chunk" even when its outcomes are nowhere near the budget (which is
/// the only reason a real worker stops early), so the parent sends the
/// "rest" again while the worker that got the chunk is still running it.
#[test]
fn a_forged_short_chunk_answer_does_not_run_items_twice() {
    with_watchdog(LIMIT, || {
        let directory = marker_directory("forged-short");
        let log = directory.join("runs");
        let pool = ProcessPool::new(1).unwrap();
        let inputs = (0..3u64).map(|item| (log.clone(), item));
        let results: Vec<_> = pool
            .map_with_chunksize(forges_a_short_chunk_answer, inputs, 3)
            .collect();
        // Let any second run finish before reading the log. The forging
        // worker still sends its real answer for the chunk when it is done:
        // a second answer to a task it no longer runs, which the pool takes
        // as garbage, failing the task it runs by then (this probe, if it
        // went to that worker) and replacing the worker.
        match pool.submit(|x: u64| x, 5).join() {
            Ok(5) => {}
            Err(TaskError::Serialization(message)) if message.contains("was not running") => {}
            other => panic!("the probe task: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(800));
        let runs = runs_in(&log);
        eprintln!("results {results:?}; runs {runs:?}");
        assert_eq!(results.len(), 3);
        let mut deduped = runs.clone();
        deduped.dedup();
        assert_eq!(runs, deduped, "items ran twice; results {results:?}");
        // The items the forged answer left out fail, saying why.
        for result in &results[1..] {
            assert!(
                matches!(result, Err(TaskError::Serialization(message))
                    if message.contains("result budget")),
                "{results:?}"
            );
        }
        pool.shutdown();
        let _ = fs::remove_dir_all(&directory);
    });
}

fn unit(_: ()) {}

/// Zero-length items and results, chunks cut by a tiny frame budget, and
/// workers retired after every task: every item answered once, in order.
#[test]
fn zero_length_items_budget_cuts_and_retiring_workers() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(2)
            .max_tasks_per_worker(1)
            .max_frame_size(16 << 10)
            .build()
            .unwrap();
        let results: Vec<_> = pool
            .map_with_chunksize(unit, std::iter::repeat_n((), 3000), 700)
            .collect();
        assert_eq!(results.len(), 3000);
        assert!(
            results.iter().all(Result::is_ok),
            "{:?}",
            results.iter().find(|r| r.is_err())
        );
        let directory = marker_directory("retire");
        let inputs = (0..300u64).map(|item| (directory.clone(), item));
        let results: Vec<_> = pool
            .map_with_chunksize(kibibyte_marked, inputs, 50)
            .collect();
        for (item, result) in results.iter().enumerate() {
            assert_eq!(result.as_ref().map(Vec::len), Ok(1024), "item {item}");
        }
        assert_eq!(results.len(), 300);
        pool.shutdown();
        let _ = fs::remove_dir_all(&directory);
    });
}

fn kibibyte_marked((directory, item): (PathBuf, u64)) -> Vec<u8> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(directory.join(item.to_string()))
        .unwrap_or_else(|error| panic!("item {item} ran twice: {error}"));
    vec![item as u8; 1024]
}

/// A result of `length` bytes at item 1, one byte elsewhere.
fn bytes_at_one((length, item): (usize, u64)) -> Vec<u8> {
    vec![7; if item == 1 { length } else { 1 }]
}

/// The documented limit of one result in a chunk of several items:
/// `(max_frame_size - 96) / 2` bytes encoded, 8,144 of a 16 KiB frame. A
/// `Vec<u8>` of 8,142 bytes encodes as 8,144 (a two-byte length) and
/// passes; one byte more fails its item alone, naming the limit. (The docs
/// said "half the frame limit", 8,192, which the budget never was.)
#[test]
fn a_result_at_the_documented_limit_passes_in_a_chunk_and_one_byte_more_fails() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .max_frame_size(16 << 10)
            .build()
            .unwrap();
        let limit = ((16 << 10) - 96) / 2;
        assert_eq!(limit, 8144);
        let at_limit: Vec<_> = pool
            .map_with_chunksize(bytes_at_one, (0..3u64).map(|item| (8142, item)), 3)
            .collect();
        assert_eq!(at_limit[1].as_ref().map(Vec::len), Ok(8142), "{at_limit:?}");
        let over: Vec<_> = pool
            .map_with_chunksize(bytes_at_one, (0..3u64).map(|item| (8143, item)), 3)
            .collect();
        pool.shutdown();
        match &over[1] {
            Err(TaskError::Serialization(message)) => assert!(
                message.contains("8144 bytes") && message.contains("less 96 bytes"),
                "the message does not name the limit: {message}"
            ),
            other => panic!("a result over the limit was accepted: {other:?}"),
        }
        assert_eq!(over[0].as_ref().map(Vec::len), Ok(1));
        assert_eq!(over[2].as_ref().map(Vec::len), Ok(1));
    });
}
