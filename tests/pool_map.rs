//! `ThreadPool::map` at scale (issue 16): chunks of many items.
//!
//! A chunk runs its items in one loop that a panic interrupts and the
//! worker re-enters at the next item, and its results travel as values
//! plus a list of failures; these tests pin what that must keep exact:
//!
//! - every item runs exactly once and its result lands at its own place,
//!   whatever the panics around chunk boundaries (first, last, several in a
//!   row, every item);
//! - the read-ahead stays bounded also when the length is known but
//!   endless in practice (`0..u64::MAX`), and for large items;
//! - dropping the map early leaves the rest of a long input unread and
//!   unrun;
//! - `size_hint` counts the results certain to come.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use verisync::{TaskError, ThreadPool};

use common::{with_watchdog, PATIENCE};

/// The documented cap of a chunk of small items (`ThreadPool::map`).
const MAX_CHUNK: usize = 16_384;

/// At most two chunks per worker in flight, plus the one being handed out.
fn read_ahead_bound(workers: usize, chunk: usize) -> usize {
    (2 * workers + 1) * chunk
}

fn quiet_deliberate_panics() {
    common::quiet_panics(|payload| {
        common::panic_text(payload).is_some_and(|text| text.starts_with("deliberate"))
    });
}

/// Items `0..len`, of which those `fails` picks panic; every item must run
/// once, and come out at its place with its own outcome.
fn check_each_item_once(workers: usize, len: usize, fails: fn(usize) -> bool) {
    let pool = ThreadPool::new(workers);
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..len).map(|_| AtomicU8::new(0)).collect());
    let results: Vec<Result<usize, TaskError>> = {
        let runs = Arc::clone(&runs);
        pool.map(0..len, move |n| {
            runs[n].fetch_add(1, SeqCst);
            if fails(n) {
                panic!("deliberate panic on item {n}");
            }
            n * 3
        })
        .collect()
    };
    assert_eq!(results.len(), len);
    for (n, result) in results.into_iter().enumerate() {
        let expected = if fails(n) {
            Err(TaskError::Panicked(format!("deliberate panic on item {n}")))
        } else {
            Ok(n * 3)
        };
        assert_eq!(result, expected, "item {n} of {len}");
        assert_eq!(runs[n].load(SeqCst), 1, "item {n} of {len} ran this often");
    }
}

#[test]
fn panics_anywhere_in_a_chunk_fail_only_their_items_and_every_item_runs_once() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        // Chunks grow 1, 2, 4, ...: these patterns put panics at chunk
        // starts and ends, in runs, and in the middle of large chunks.
        let patterns: [fn(usize) -> bool; 6] = [
            |n| n % 7 == 0 || n % 7 == 6,
            |n| (n / 5) % 3 == 0,          // runs of five panics
            |n| n.is_power_of_two(),       // chunk starts while chunks double
            |n| (n + 1).is_power_of_two(), // chunk ends while chunks double
            |n| n % 1_000 == 999,          // deep inside large chunks
            |_| true,                      // every item
        ];
        for fails in patterns {
            for (workers, len) in [(1, 1), (1, 3), (2, 100), (3, 60_000)] {
                check_each_item_once(workers, len, fails);
            }
        }
    });
}

#[test]
fn a_panic_on_the_last_item_of_a_large_chunk_is_reported_after_every_value() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        check_each_item_once(1, 50_000, |n| n == 49_999);
        check_each_item_once(2, 50_000, |n| n == 0);
    });
}

#[test]
fn an_exact_but_endless_length_is_still_read_lazily() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let read = Arc::new(AtomicUsize::new(0));
        let inputs = {
            let read = Arc::clone(&read);
            // `size_hint` says exactly u64::MAX items.
            (0..u64::MAX).inspect(move |_| {
                read.fetch_add(1, SeqCst);
            })
        };
        let mut map = pool.map(inputs, |n| n + 1);
        let wanted = 100_000;
        let got: Vec<u64> = map.by_ref().take(wanted).map(Result::unwrap).collect();
        assert_eq!(got, (1..=wanted as u64).collect::<Vec<_>>());
        let read_now = read.load(SeqCst);
        assert!(
            read_now - wanted <= read_ahead_bound(2, MAX_CHUNK),
            "consumed {wanted} results but read {read_now} inputs"
        );
        drop(map);
        assert_eq!(read.load(SeqCst), read_now, "dropping the map read more");
    });
}

#[test]
fn large_items_make_smaller_chunks_so_the_read_ahead_stays_small_in_bytes() {
    /// 8 KiB: at most 512 KiB / 8 KiB = 64 of them per chunk.
    struct Big([u64; 1024]);
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let read = Arc::new(AtomicUsize::new(0));
        let inputs = {
            let read = Arc::clone(&read);
            (0u64..).map(move |n| {
                read.fetch_add(1, SeqCst);
                Big([n; 1024])
            })
        };
        let mut map = pool.map(inputs, |big: Big| big.0[7]);
        let wanted = 20_000;
        assert_eq!(
            map.by_ref().take(wanted).filter(|r| r.is_ok()).count(),
            wanted
        );
        let read_now = read.load(SeqCst);
        assert!(
            read_now - wanted <= read_ahead_bound(2, 64),
            "consumed {wanted} results of 8 KiB items but read {read_now} inputs"
        );
    });
}

#[test]
fn dropping_a_map_of_a_long_input_early_leaves_the_rest_unread_and_unrun() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let (read, ran) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let inputs = {
            let read = Arc::clone(&read);
            (0..10_000_000u64).inspect(move |_| {
                read.fetch_add(1, SeqCst);
            })
        };
        let taken: Vec<_> = {
            let ran = Arc::clone(&ran);
            pool.map(inputs, move |n| {
                ran.fetch_add(1, SeqCst);
                n
            })
            .take(70_000)
            .collect()
        };
        assert_eq!(taken.len(), 70_000);
        pool.shutdown(); // every chunk that was sent has run or was cancelled
        let (read, ran) = (read.load(SeqCst), ran.load(SeqCst));
        assert!(
            read - 70_000 <= read_ahead_bound(2, MAX_CHUNK),
            "took 70,000 results, read {read} inputs"
        );
        assert!(
            (70_000..=read).contains(&ran),
            "read {read} inputs, ran {ran}"
        );
    });
}

#[test]
fn an_input_that_panics_mid_chunk_keeps_the_items_read_before_it_in_order() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        // Panics once at every 10,000th item: the items of the chunk being
        // read are sent, the panic reaches the caller, the map goes on.
        let mut next = 0u64;
        let inputs = std::iter::from_fn(move || {
            next += 1;
            if next.is_multiple_of(10_000) {
                panic!("deliberate input panic at {next}");
            }
            (next <= 45_000).then_some(next)
        });
        let mut map = pool.map(inputs, |n| n);
        let (mut got, mut panics) = (Vec::new(), 0);
        loop {
            match catch_unwind(AssertUnwindSafe(|| map.next())) {
                Ok(Some(result)) => got.push(result.unwrap()),
                Ok(None) => break,
                Err(_) => panics += 1,
            }
        }
        assert_eq!(panics, 4);
        let expected: Vec<u64> = (1..=45_000)
            .filter(|n: &u64| !n.is_multiple_of(10_000))
            .collect();
        assert_eq!(got, expected);
    });
}

#[test]
fn size_hint_counts_the_results_certain_to_come() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let mut map = pool.map(0..1_000u32, |n| n);
        assert_eq!(map.size_hint(), (1_000, Some(1_000)));
        map.by_ref().take(10).for_each(drop);
        assert_eq!(map.size_hint(), (990, Some(990)));
        assert_eq!(map.count(), 990);

        // An input of unknown length: only what was read is certain; the
        // input's own bound adds to the upper one.
        let mut map = pool.map((0..1_000u32).filter(|n| n % 2 == 0), |n| n);
        assert_eq!(map.size_hint(), (0, Some(1_000)));
        map.next();
        let (low, high) = map.size_hint();
        let high = high.expect("a filtered range has an upper bound");
        assert!(
            (1..=499).contains(&low) && (499..1_000).contains(&high),
            "{low}, {high}"
        );
        assert_eq!(map.count(), 499);
    });
}

/// The same with an input whose length is trusted (`Map<Range>`), which
/// `extend` writes in place without pushing item by item: the items
/// written before the panic are still kept and sent.
#[test]
fn a_trusted_length_input_that_panics_mid_chunk_keeps_the_items_read_before_it() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let inputs = (0..40_000u64).map(|n| {
            if n % 9_000 == 8_999 {
                panic!("deliberate input panic at {n}");
            }
            n + 1
        });
        let mut map = pool.map(inputs, |n| n * 2);
        let (mut got, mut panics) = (Vec::new(), 0);
        loop {
            match catch_unwind(AssertUnwindSafe(|| map.next())) {
                Ok(Some(result)) => got.push(result.unwrap()),
                Ok(None) => break,
                Err(_) => panics += 1,
            }
        }
        assert_eq!(panics, 4);
        let expected: Vec<u64> = (0..40_000)
            .filter(|n| n % 9_000 != 8_999)
            .map(|n| (n + 1) * 2)
            .collect();
        assert_eq!(got, expected);
    });
}

/// A result that counts how many were made and how many dropped.
struct Counted {
    dropped: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
    }
}

/// Every result made is dropped exactly once — handed out, left behind the
/// map's cursor in the chunk being handed out, after a failure in it, or
/// in a chunk still in flight — wherever the map (ordered or not) is
/// dropped, and when it is run to its end.
#[test]
fn every_result_made_is_dropped_once_wherever_the_map_is_dropped() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        for unordered in [false, true] {
            for take in [0usize, 1, 2, 3, 7, 50, 300, 1000, 5000] {
                let made = Arc::new(AtomicUsize::new(0));
                let dropped = Arc::new(AtomicUsize::new(0));
                let pool = ThreadPool::new(2);
                let function = {
                    let made = Arc::clone(&made);
                    let dropped = Arc::clone(&dropped);
                    move |item: usize| {
                        if item % 7 == 3 {
                            panic!("deliberate panic in item {item}");
                        }
                        made.fetch_add(1, SeqCst);
                        Counted {
                            dropped: Arc::clone(&dropped),
                        }
                    }
                };
                let mut results: Box<dyn Iterator<Item = Result<Counted, TaskError>>> = if unordered
                {
                    Box::new(pool.map_unordered(0..3000, function))
                } else {
                    Box::new(pool.map(0..3000, function))
                };
                let mut handed_out = 0;
                for result in results.by_ref().take(take) {
                    handed_out += 1;
                    drop(result);
                }
                drop(results);
                // Waits for the chunks still running: their results are
                // dropped by the worker.
                pool.shutdown();
                assert_eq!(handed_out, take.min(3000), "unordered {unordered}");
                assert_eq!(
                    dropped.load(SeqCst),
                    made.load(SeqCst),
                    "unordered {unordered}, {take} taken: results made vs dropped"
                );
            }
        }
    });
}
