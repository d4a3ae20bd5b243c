//! Process maps in chunks: `ProcessPool::map` (chunk size from the input's
//! length, or adaptive), `map_with_chunksize` and `map_unordered`, shown
//! with real worker processes. Each item reports the process that ran it
//! and its place in that process's sequence of calls, so a test sees which
//! items ran together as one chunk. Failures stay with their item (a
//! panic, a hostile `Serialize`), or with their chunk (a worker that
//! dies), and no item runs twice (each creates a marker file with
//! `create_new`).

verisync::process_test_support!();

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::with_watchdog;
use serde::{Deserialize, Serialize, Serializer};
use verisync::{ProcessPool, TaskError};

/// How long a test may take before its watchdog calls it hung (generous:
/// a loaded two-core machine).
const LIMIT: Duration = Duration::from_secs(120);

/// Calls made in this process so far (each worker counts its own).
static CALLS: AtomicU64 = AtomicU64::new(0);

/// What a worker tells about one item: the item, who ran it, and when.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct Ran {
    item: u64,
    pid: u32,
    call: u64,
}

fn ran(item: u64) -> Ran {
    Ran {
        item,
        pid: std::process::id(),
        call: CALLS.fetch_add(1, Ordering::SeqCst),
    }
}

/// The lengths of the runs of items that ran back to back in one process
/// (same pid, consecutive calls): a chunk is one such run (two chunks in a
/// row on one worker may merge into one run).
fn runs(results: &[Ran]) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut current = 0;
    for (index, result) in results.iter().enumerate() {
        let continues = index > 0 && {
            let before = results[index - 1];
            before.pid == result.pid && before.call + 1 == result.call
        };
        if continues {
            current += 1;
        } else {
            if current > 0 {
                lengths.push(current);
            }
            current = 1;
        }
    }
    if current > 0 {
        lengths.push(current);
    }
    lengths
}

fn all_ok<T: std::fmt::Debug>(results: Vec<Result<T, TaskError>>) -> Vec<T> {
    results
        .into_iter()
        .enumerate()
        .map(|(index, result)| result.unwrap_or_else(|error| panic!("item {index}: {error:?}")))
        .collect()
}

/// `map` over an input of known length sends `len / (4 × workers)` items
/// per chunk (Python's default): 5,000 items on two workers go in chunks
/// of 625, each run back to back by one worker, results in input order.
#[test]
fn map_over_a_known_length_sends_python_sized_chunks_in_order() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let results = all_ok(pool.map(ran, 0..5000u64).collect());
        let items: Vec<u64> = results.iter().map(|result| result.item).collect();
        assert_eq!(items, (0..5000).collect::<Vec<_>>(), "out of order");
        for (chunk, items) in results.chunks(625).enumerate() {
            assert_eq!(
                runs(items),
                [625],
                "chunk {chunk} of 625 items did not run back to back in one worker"
            );
        }
        pool.shutdown();
    });
}

/// `map_with_chunksize` sends exactly that many per chunk.
#[test]
fn map_with_chunksize_sends_chunks_of_that_size() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let results = all_ok(pool.map_with_chunksize(ran, 0..700u64, 7).collect());
        assert_eq!(results.len(), 700);
        for (chunk, items) in results.chunks(7).enumerate() {
            assert_eq!(runs(items), [7], "chunk {chunk}");
            assert_eq!(items[0].item, chunk as u64 * 7);
        }
        pool.shutdown();
    });
}

#[test]
#[should_panic(expected = "chunk size of at least 1")]
fn a_chunk_size_of_zero_is_refused() {
    let pool = ProcessPool::new(1).unwrap();
    let _ = pool.map_with_chunksize(ran, 0..3u64, 0);
}

/// Over an input of unknown length the chunks grow to about 2 ms of work
/// (they start at one item: see the unit tests of the sizing): tiny items
/// end up sent by the hundred.
#[test]
fn map_over_an_unknown_length_adapts_the_chunk_size() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let unknown_length = (0..20_000u64).filter(|_| true);
        let results = all_ok(pool.map(ran, unknown_length).collect());
        let items: Vec<u64> = results.iter().map(|result| result.item).collect();
        assert_eq!(items, (0..20_000).collect::<Vec<_>>(), "out of order");
        let runs = runs(&results);
        let longest = runs.iter().copied().max().unwrap();
        assert!(
            longest >= 100,
            "tiny items were never sent by the hundred (longest run {longest})"
        );
        pool.shutdown();
    });
}

fn sleep_300_ms(item: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    item
}

/// With a task timeout, `map` sends each item as its own task (the timeout
/// is per task), even over an input of known length: 12 items of 300 ms on
/// one worker under an 800 ms timeout all deliver (in chunks of
/// `12 / 4 = 3` they would take 900 ms each and time out). The margins
/// hold on a loaded machine: 500 ms each way.
#[test]
fn with_a_task_timeout_map_sends_one_item_per_task() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .task_timeout(Duration::from_millis(800))
            .build()
            .unwrap();
        let results = all_ok(pool.map(sleep_300_ms, 0..12u64).collect());
        assert_eq!(results, (0..12).collect::<Vec<_>>());
        pool.shutdown();
    });
}

/// `map_unordered` yields each result as its chunk finishes: item 0 waits
/// until the test has received a result, so that result is another item's;
/// then every item comes exactly once.
#[test]
fn map_unordered_yields_in_completion_order_every_item_once() {
    with_watchdog(LIMIT, || {
        let directory = marker_directory("unordered");
        let release = directory.join("release");
        let pool = ProcessPool::new(2).unwrap();
        let inputs = (0..40u64).map(|item| (release.clone(), item));
        let mut map = pool.map_unordered(held_back_if_zero, inputs);
        let first = map.next().expect("a result").expect("item ran");
        assert_ne!(first, 0, "the held-back item came first");
        fs::write(&release, b"go").unwrap();
        let mut items = all_ok(map.collect());
        items.push(first);
        items.sort_unstable();
        assert_eq!(items, (0..40).collect::<Vec<_>>());
        pool.shutdown();
        let _ = fs::remove_dir_all(&directory);
    });
}

/// Returns `item`; item 0 first waits until the file `release` exists (at
/// most a minute).
fn held_back_if_zero((release, item): (PathBuf, u64)) -> u64 {
    if item == 0 {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !release.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    item
}

fn sleep_if_zero(item: u64) -> u64 {
    if item == 0 {
        std::thread::sleep(Duration::from_millis(300));
    }
    item
}

fn panic_on_five(item: u64) -> u64 {
    if item % 10 == 5 {
        panic!("item {item} panicked on purpose");
    }
    item
}

/// A panic fails its own item; the rest of its chunk delivers.
#[test]
fn a_panicking_item_fails_alone_in_its_chunk() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        for results in [
            pool.map_with_chunksize(panic_on_five, 0..40u64, 10)
                .collect::<Vec<_>>(),
            pool.map(panic_on_five, 0..40u64).collect(),
        ] {
            for (item, result) in results.into_iter().enumerate() {
                match result {
                    Err(TaskError::Panicked(message)) if item % 10 == 5 => {
                        assert!(message.contains("on purpose"), "{message}")
                    }
                    Ok(value) if item % 10 != 5 => assert_eq!(value, item as u64),
                    other => panic!("item {item}: {other:?}"),
                }
            }
        }
        let mut unordered: Vec<bool> = pool
            .map_unordered(panic_on_five, 0..40u64)
            .map(|result| result.is_ok())
            .collect();
        unordered.sort_unstable();
        assert_eq!(unordered.iter().filter(|ok| !**ok).count(), 4);
        pool.shutdown();
    });
}

/// The marker directory of this test process (workers are told it in the
/// argument).
fn marker_directory(test: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("verisync-map-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&directory);
    fs::create_dir_all(&directory).unwrap();
    directory
}

/// Marks `item` as run (a second run of it panics), then aborts the
/// worker if the item is `die_at`.
fn mark_then_maybe_die((directory, item, die_at): (PathBuf, u64, u64)) -> u64 {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(directory.join(item.to_string()))
        .unwrap_or_else(|error| panic!("item {item} ran twice: {error}"));
    if item == die_at {
        std::process::abort();
    }
    item
}

/// A worker that dies in the middle of a chunk fails every item of that
/// chunk with `WorkerDied`, and only those; the pool replaces it and the
/// other chunks deliver; no item runs twice.
#[test]
fn a_worker_dying_in_a_chunk_fails_that_chunk_only() {
    with_watchdog(LIMIT, || {
        let directory = marker_directory("dies");
        let pool = ProcessPool::new(2).unwrap();
        let inputs = (0..60u64).map(|item| (directory.clone(), item, 23));
        let results: Vec<_> = pool
            .map_with_chunksize(mark_then_maybe_die, inputs, 10)
            .collect();
        assert_eq!(results.len(), 60);
        for (item, result) in results.into_iter().enumerate() {
            match result {
                Err(TaskError::WorkerDied { .. }) if (20..30).contains(&item) => {}
                Ok(value) if !(20..30).contains(&item) => assert_eq!(value, item as u64),
                other => panic!("item {item}: {other:?}"),
            }
        }
        // Items 20..=23 ran (and 23 killed its worker); 24..30 never ran.
        let mut marked: Vec<u64> = fs::read_dir(&directory)
            .unwrap()
            .map(|entry| {
                entry
                    .unwrap()
                    .file_name()
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        marked.sort_unstable();
        let expected: Vec<u64> = (0..24).chain(30..60).collect();
        assert_eq!(marked, expected, "items ran twice or not at all");
        assert_eq!(
            pool.submit(ran, 1).join().unwrap().item,
            1,
            "the pool lives on"
        );
        pool.shutdown();
        let _ = fs::remove_dir_all(&directory);
    });
}

/// Each result is about 1 KiB.
fn kibibyte((directory, item): (PathBuf, u64)) -> Vec<u8> {
    mark_then_maybe_die((directory, item, u64::MAX));
    vec![item as u8; 1024]
}

/// A chunk whose results would not fit a frame stops once they fill half
/// of it; the items it did not run are sent again — each item runs once,
/// all in order.
#[test]
fn results_that_outgrow_a_frame_are_sent_in_more_chunks() {
    with_watchdog(LIMIT, || {
        let directory = marker_directory("budget");
        let pool = ProcessPool::builder()
            .workers(2)
            .max_frame_size(16 << 10)
            .build()
            .unwrap();
        let inputs = (0..300u64).map(|item| (directory.clone(), item));
        let results = all_ok(pool.map_with_chunksize(kibibyte, inputs, 100).collect());
        assert_eq!(results.len(), 300);
        for (item, result) in results.iter().enumerate() {
            assert_eq!(result, &vec![item as u8; 1024], "item {item}");
        }
        assert_eq!(fs::read_dir(&directory).unwrap().count(), 300);
        pool.shutdown();
        let _ = fs::remove_dir_all(&directory);
    });
}

/// 9 KiB: more than half of a 16 KiB frame.
fn nine_kibibytes_at_three(item: u64) -> Vec<u8> {
    vec![1; if item == 3 { 9 << 10 } else { 8 }]
}

/// One result larger than half a frame fails its item (with a message
/// saying what to do), not its chunk.
#[test]
fn a_result_too_large_for_a_chunk_fails_its_item_only() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .max_frame_size(16 << 10)
            .build()
            .unwrap();
        let results: Vec<_> = pool
            .map_with_chunksize(nine_kibibytes_at_three, 0..10u64, 5)
            .collect();
        for (item, result) in results.into_iter().enumerate() {
            match result {
                Err(TaskError::Serialization(message)) if item == 3 => {
                    assert!(message.contains("chunk size of 1"), "{message}")
                }
                Ok(bytes) if item != 3 => assert_eq!(bytes.len(), 8),
                other => panic!("item {item}: {other:?}"),
            }
        }
        // Alone in its task (chunk size 1) it fits the frame.
        let alone: Vec<_> = pool
            .map_with_chunksize(nine_kibibytes_at_three, [3u64], 1)
            .collect();
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].as_ref().map(Vec::len), Ok(9 << 10));
        pool.shutdown();
    });
}

/// An input whose `Serialize` panics in the parent, or whose `Drop` does.
#[derive(Debug, Deserialize)]
struct Hostile {
    value: u64,
}

impl Serialize for Hostile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.value == 7 && std::process::id() == PARENT.load(Ordering::SeqCst) as u32 {
            panic!("hostile Serialize of input 7");
        }
        serializer.serialize_u64(self.value)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if self.value == 11
            && std::process::id() == PARENT.load(Ordering::SeqCst) as u32
            && !std::thread::panicking()
        {
            panic!("hostile Drop of input 11");
        }
    }
}

static PARENT: AtomicU64 = AtomicU64::new(0);

fn value_of(hostile: Hostile) -> u64 {
    let value = hostile.value;
    std::mem::forget(hostile);
    value
}

/// A hostile input fails its own item (`Serialize`) or nothing (`Drop`,
/// reported on stderr); no item is lost, the order holds.
#[test]
fn hostile_inputs_fail_only_their_item() {
    PARENT.store(u64::from(std::process::id()), Ordering::SeqCst);
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let results: Vec<_> = pool
            .map_with_chunksize(value_of, (0..20u64).map(|value| Hostile { value }), 4)
            .collect();
        assert_eq!(results.len(), 20);
        for (item, result) in results.into_iter().enumerate() {
            match result {
                Err(TaskError::Serialization(message)) if item == 7 => {
                    assert!(message.contains("hostile Serialize"), "{message}")
                }
                Ok(value) if item != 7 => assert_eq!(value, item as u64),
                other => panic!("item {item}: {other:?}"),
            }
        }
        pool.shutdown();
    });
}

/// Dropping a map half-way cancels what it has in flight; the pool goes
/// on; a map on a pool that was shut down yields one `ShutDown` and ends,
/// unordered too.
#[test]
fn dropped_maps_and_shut_down_pools() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let mut map = pool.map(sleep_if_zero, 0..10_000u64);
        assert_eq!(map.next().map(|result| result.unwrap()), Some(0));
        drop(map);
        let mut unordered = pool.map_unordered(sleep_if_zero, 1..10_000u64);
        assert!(unordered.next().unwrap().is_ok());
        drop(unordered);
        assert_eq!(pool.submit(sleep_if_zero, 5).join(), Ok(5));
        pool.shutdown();
        let after: Vec<_> = pool.map(sleep_if_zero, 0..5u64).collect();
        assert_eq!(after, [Err(TaskError::ShutDown)]);
        let after: Vec<_> = pool.map_unordered(sleep_if_zero, 0..5u64).collect();
        assert_eq!(after, [Err(TaskError::ShutDown)]);
    });
}

// ---------------------------------------------------------------------------
// Bounded lookahead, and nothing lost (found by review)
// ---------------------------------------------------------------------------

fn identity(x: u64) -> u64 {
    x
}

/// An input whose `Serialize` always fails (an error, no panic).
#[derive(Debug, Deserialize)]
struct Unsendable(#[allow(dead_code)] u64);

impl Serialize for Unsendable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this input never encodes"))
    }
}

fn unsendable_length(_: Unsendable) -> u64 {
    0
}

/// An endless input that counts what was read from it (and fails the test
/// past `bound` reads).
fn counted<T>(
    reads: &'static AtomicU64,
    bound: u64,
    make: impl Fn(u64) -> T,
) -> impl Iterator<Item = T> {
    (0u64..).map(move |value| {
        let read = reads.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            read <= bound,
            "the map read {read} inputs for its first 3 results"
        );
        make(value)
    })
}

/// Items that fail in the parent count against the lookahead: an endless
/// input whose every item fails is not read to its end (it was, forever).
#[test]
fn items_failing_in_the_parent_do_not_unbound_the_lookahead() {
    static ORDERED: AtomicU64 = AtomicU64::new(0);
    static UNORDERED: AtomicU64 = AtomicU64::new(0);
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let first: Vec<_> = pool
            .map(unsendable_length, counted(&ORDERED, 10_000, Unsendable))
            .take(3)
            .collect();
        assert_eq!(first.len(), 3);
        assert!(first.iter().all(Result::is_err));
        let first: Vec<_> = pool
            .map_unordered(unsendable_length, counted(&UNORDERED, 10_000, Unsendable))
            .take(3)
            .collect();
        assert_eq!(first.len(), 3);
        pool.shutdown();
    });
}

/// `0..u64::MAX` has an exact length, but a chunk of `len / (4 × workers)`
/// items would never be read whole: the chunk size is capped, and one
/// chunk is sent per read (a small frame used to make the map send chunk
/// after chunk without end).
#[test]
fn an_endless_input_with_an_exact_length_is_read_lazily() {
    static READS: AtomicU64 = AtomicU64::new(0);
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(2)
            .max_frame_size(4096)
            .build()
            .unwrap();
        let endless = (0..u64::MAX).inspect(|_| {
            let read = READS.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(
                read <= 100_000,
                "the map read {read} inputs for its first 3 results"
            );
        });
        let first: Vec<_> = pool.map(identity, endless).take(3).collect();
        assert_eq!(first, [Ok(0), Ok(1), Ok(2)]);
        pool.shutdown();
    });
}

fn long_panic_at_one(x: u64) -> u64 {
    if x == 1 {
        panic!("{}", "x".repeat(5000));
    }
    x
}

/// A panic message longer than a frame fails its item only (it used to
/// make the chunk's answer too large, failing the whole chunk).
#[test]
fn a_long_panic_message_fails_only_its_item() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .max_frame_size(4096)
            .build()
            .unwrap();
        let results: Vec<_> = pool
            .map_with_chunksize(long_panic_at_one, 0..8u64, 4)
            .collect();
        assert_eq!(results.len(), 8);
        for (item, result) in results.into_iter().enumerate() {
            match result {
                Err(TaskError::Panicked(message)) if item == 1 => {
                    assert!(message.starts_with("xxx") && message.len() < 4096)
                }
                Ok(value) if item != 1 => assert_eq!(value, item as u64),
                Err(error) => panic!("item {item}: {:.200}", format!("{error:?}")),
                other => panic!("item {item}: {other:?}"),
            }
        }
        pool.shutdown();
    });
}

/// An input iterator that panics: the items read before it are still run
/// (they were dropped, unreported), the panic reaches the caller, and the
/// map goes on.
#[test]
fn a_panicking_input_iterator_loses_no_item_already_read() {
    static PANICKED: AtomicU64 = AtomicU64::new(0);
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let inputs = (0..10u64).inspect(|&x| {
            if x == 2 && PANICKED.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the input iterator panics at 2");
            }
        });
        let mut map = pool.map_with_chunksize(identity, inputs, 4);
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map.next()));
        assert!(first.is_err(), "the iterator's panic reaches the caller");
        let rest: Vec<_> = map.collect();
        // Item 2 is the one the iterator's own panic threw away.
        let expected: Vec<_> = [0, 1, 3, 4, 5, 6, 7, 8, 9].into_iter().map(Ok).collect();
        assert_eq!(rest, expected);
        pool.shutdown();
    });
}

/// A string of `length` bytes, the item's own; panics for every seventh
/// length, after building the string (so a result half-made is dropped).
fn sized_text(length: usize) -> String {
    let text: String = (0..length)
        .map(|index| char::from(b'a' + ((index + length) % 26) as u8))
        .collect();
    assert!(length % 7 != 3, "length {length} panicked on purpose");
    text
}

fn expected_text(length: usize) -> Result<String, String> {
    if length % 7 == 3 {
        Err(format!("length {length} panicked on purpose"))
    } else {
        Ok((0..length)
            .map(|index| char::from(b'a' + ((index + length) % 26) as u8))
            .collect())
    }
}

/// Items and results of every size (lengths across the boundaries of
/// their encoded length prefixes: 127/128 and 16383/16384 bytes), some
/// failing, travel in chunks of many items and come back whole, each at
/// its place — for a `fn` item and for a function pointer (whose identity
/// goes in front of every chunk, also a chunk sent again after a budget
/// stopped it).
#[test]
fn items_and_results_of_every_size_cross_in_chunks() {
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(2)
            .max_frame_size(64 << 10)
            .build()
            .unwrap();
        let lengths: Vec<usize> = [0, 1, 2, 126, 127, 128, 129, 300, 16_383, 16_384, 16_385]
            .into_iter()
            .cycle()
            .take(44)
            .enumerate()
            .map(|(index, length)| length + index / 11)
            .collect();
        let pointer: fn(usize) -> String = sized_text;
        for chunk_size in [1, 5, 44] {
            let by_item: Vec<_> = pool
                .map_with_chunksize(sized_text, lengths.clone(), chunk_size)
                .collect();
            let by_pointer: Vec<_> = pool
                .map_with_chunksize(pointer, lengths.clone(), chunk_size)
                .collect();
            for results in [by_item, by_pointer] {
                assert_eq!(results.len(), lengths.len());
                for (result, &length) in results.into_iter().zip(&lengths) {
                    match (result, expected_text(length)) {
                        (Ok(text), Ok(expected)) => {
                            assert!(text == expected, "length {length}, chunks of {chunk_size}")
                        }
                        (Err(TaskError::Panicked(message)), Err(expected)) => {
                            assert!(message.contains(&expected), "{message}")
                        }
                        (result, expected) => panic!(
                            "length {length}, chunks of {chunk_size}: {result:?} for {expected:?}"
                        ),
                    }
                }
            }
        }
        pool.shutdown();
    });
}
