//! Hostile inputs of `ThreadPool::map` and `map_unordered`: items whose
//! `Drop` panics, left in a chunk that never runs (cancelled by dropping
//! the map, or refused after a shutdown), and an input whose exact
//! `size_hint` lies. Before the fix the first aborted the process ("panic
//! in a destructor during cleanup"), or let a panic escape `next` and lose
//! the chunk's `Err(ShutDown)` results; the lying hint kept every chunk at
//! 2 items.
//!
//! Each scenario runs in a child process (this same test binary, the
//! scenario picked by an environment variable), so an abort is observed
//! as the child's exit status instead of killing the test run.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use verisync::{Event, TaskError, ThreadPool};

const SCENARIO: &str = "VERISYNC_HOSTILE_INPUT_SCENARIO";

/// An input item whose `Drop` panics unless `function` ran on it (and
/// disarmed it). Counts its drops.
struct Armed {
    id: usize,
    armed: AtomicBool,
    drops: Arc<AtomicUsize>,
}

impl Armed {
    fn new(id: usize, drops: &Arc<AtomicUsize>) -> Self {
        Self {
            id,
            armed: AtomicBool::new(true),
            drops: Arc::clone(drops),
        }
    }
    fn disarm(self) -> usize {
        self.armed.store(false, SeqCst);
        self.id
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.armed.load(SeqCst) {
            panic!("deliberate: an unrun input item {} dropped", self.id);
        }
    }
}

/// Runs `scenario` in a child process; fails with the child's status and
/// stderr if it did not exit successfully.
fn in_child(name: &str, scenario: fn()) {
    if std::env::var(SCENARIO).as_deref() == Ok(name) {
        common::quiet_deliberate_panics();
        scenario();
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scenario {name}: child exited with {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}

/// Dropping the map while its later chunks (of several items, chunks having
/// grown) are still queued behind a busy worker: the cancelled chunks'
/// items were dropped as one `Vec`; the second panicking `Drop` aborted.
///
/// One worker, FIFO queue: the chunks sent before `blocker` run before it,
/// those sent after wait behind it. Taking exactly the results of the items
/// read before `blocker` never waits for a chunk queued behind it. With
/// `ordered`, `map`, whose results are checked in order; else
/// `map_unordered`.
fn cancelled_chunk_of_armed_items(ordered: bool) {
    common::with_watchdog(common::PATIENCE, move || {
        let pool = ThreadPool::new(1);
        let (drops, read) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let gate = Arc::new(Event::new());
        let inputs = {
            let (drops, read) = (Arc::clone(&drops), Arc::clone(&read));
            (0..100_000).map(move |id| {
                read.fetch_add(1, SeqCst);
                Armed::new(id, &drops)
            })
        };
        let mut map: Box<dyn Iterator<Item = Result<usize, TaskError>>> = if ordered {
            Box::new(pool.map(inputs, |item: Armed| item.disarm()))
        } else {
            Box::new(pool.map_unordered(inputs, |item: Armed| item.disarm()))
        };
        let mut take = |expected: usize| {
            let result = map.next().expect("a result for every item read");
            if ordered {
                assert_eq!(result, Ok(expected));
            } else {
                assert!(result.is_ok(), "{result:?}");
            }
        };
        (0..40).for_each(&mut take);
        let blocker = {
            let gate = Arc::clone(&gate);
            pool.submit(move || gate.wait())
        };
        (40..read.load(SeqCst)).for_each(&mut take);
        drop(map); // the chunks behind `blocker` are cancelled
        gate.set();
        blocker.join().unwrap();
        pool.shutdown();
        assert_eq!(read.load(SeqCst), drops.load(SeqCst));
    });
}

#[test]
fn dropping_a_map_with_queued_chunks_of_items_whose_drop_panics_does_not_abort() {
    in_child(
        "dropping_a_map_with_queued_chunks_of_items_whose_drop_panics_does_not_abort",
        || cancelled_chunk_of_armed_items(true),
    );
}

/// After a shutdown, the map's next chunks are refused: their items are
/// dropped (inside `next`, on the caller's thread, as the refused handle is
/// joined and dropped). One item per chunk: the panic escapes `next` and
/// that item's `Err(ShutDown)` is lost.
fn refused_single_item_chunks() {
    common::with_watchdog(common::PATIENCE, || {
        let pool = ThreadPool::new(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let inputs = {
            let drops = Arc::clone(&drops);
            (0..3).map(move |id| Armed::new(id, &drops))
        };
        let mut map = pool.map(inputs, |item: Armed| item.disarm());
        pool.shutdown();
        let (mut results, mut escaped) = (Vec::new(), Vec::new());
        loop {
            match catch_unwind(AssertUnwindSafe(|| map.next())) {
                Ok(Some(result)) => results.push(result),
                Ok(None) => break,
                Err(payload) => escaped.push(common::panic_text(&*payload).map(str::to_owned)),
            }
        }
        assert!(
            escaped.is_empty() && results == vec![Err(TaskError::ShutDown); 3],
            "3 items after shutdown: results {results:?}, panics out of next(): {escaped:?}"
        );
    });
}

#[test]
fn items_refused_after_shutdown_each_give_shut_down_and_no_panic_escapes_next() {
    in_child(
        "items_refused_after_shutdown_each_give_shut_down_and_no_panic_escapes_next",
        refused_single_item_chunks,
    );
}

/// The same with chunks that grew to several items before the shutdown:
/// the refused chunk's `Vec` of items is dropped whole on the caller's
/// thread; its second panicking `Drop` aborts.
fn refused_multi_item_chunk() {
    common::with_watchdog(common::PATIENCE, || {
        let pool = ThreadPool::new(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let inputs = {
            let drops = Arc::clone(&drops);
            (0..100_000).map(move |id| Armed::new(id, &drops))
        };
        let mut map = pool.map(inputs, |item: Armed| item.disarm());
        for expected in 0..40 {
            assert_eq!(map.next(), Some(Ok(expected)));
        }
        pool.shutdown();
        let (mut shut_down, mut escaped) = (0, Vec::new());
        loop {
            match catch_unwind(AssertUnwindSafe(|| map.next())) {
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(error))) => {
                    assert_eq!(error, TaskError::ShutDown);
                    shut_down += 1;
                }
                Ok(None) => break,
                Err(payload) => escaped.push(common::panic_text(&*payload).map(str::to_owned)),
            }
            if shut_down > 100 {
                break;
            }
        }
        assert!(escaped.is_empty(), "panics out of next(): {escaped:?}");
        assert!(shut_down > 100, "only {shut_down} items reported ShutDown");
    });
}

#[test]
fn refused_chunks_of_several_items_whose_drop_panics_do_not_abort() {
    in_child(
        "refused_chunks_of_several_items_whose_drop_panics_do_not_abort",
        refused_multi_item_chunk,
    );
}

#[test]
fn unordered_dropped_with_queued_chunks_of_items_whose_drop_panics_does_not_abort() {
    in_child(
        "unordered_dropped_with_queued_chunks_of_items_whose_drop_panics_does_not_abort",
        || cancelled_chunk_of_armed_items(false),
    );
}

/// An input whose exact `size_hint` says 10 but yields 200,000 items: every
/// item comes back in order, and the chunks grow past the 2 items that the
/// claimed length set (`10 / (4 × 1)`, rounded up, for one worker).
#[test]
fn an_input_longer_than_its_exact_size_hint_still_gets_large_chunks() {
    struct Lying(std::ops::Range<u64>);
    impl Iterator for Lying {
        type Item = u64;
        fn next(&mut self) -> Option<u64> {
            self.0.next()
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (10, Some(10))
        }
    }
    common::with_watchdog(common::PATIENCE, || {
        let pool = ThreadPool::new(1);
        let mut map = pool.map(Lying(0..200_000), |x| x + 1);
        let mut largest_chunk = 0;
        for expected in 1..=200_000u64 {
            assert_eq!(map.next(), Some(Ok(expected)));
            let shown = format!("{map:?}");
            let size: usize = shown
                .split("chunk_size: ")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|digits| digits.parse().ok())
                .expect("PoolMap's Debug shows its chunk size");
            largest_chunk = largest_chunk.max(size);
        }
        assert_eq!(map.next(), None);
        assert!(
            largest_chunk > 64,
            "the chunks never grew past {largest_chunk} items"
        );
    });
}
