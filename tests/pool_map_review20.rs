//! Adversarial review (review20) of the hand-out cursor of `ThreadPool::map`
//! and `map_unordered` (a raw pointer and count kept beside the boxed state)
//! and of the 64× chunk growth.
//!
//! Each test attacks one way the cursor could outlive, or point past, the
//! run of values it walks, or a result be dropped twice or never:
//!
//! - the map moved, swapped, boxed and sent to another thread between calls;
//! - results that own heap memory (`String`), are zero-sized, or are
//!   over-aligned;
//! - results whose `Drop` panics, left in a half-consumed map;
//! - a `for_each` whose closure panics mid-run;
//! - `next` after `None`; `size_hint` at every step;
//! - the documented read-ahead, counted by a lazy input;
//! - items alternating fast and slow on a one-worker pool (the chunk size's
//!   arithmetic).
//!
//! Run under `valgrind --error-exitcode=1 --leak-check=full` to check the
//! memory side too.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verisync::{TaskError, ThreadPool};

use common::{quiet_deliberate_panics, with_watchdog, PATIENCE};

/// The documented cap of a chunk of small items (`ThreadPool::map`).
const MAX_CHUNK: usize = 16_384;

/// A result that counts its drops, checks it is dropped only while alive,
/// and panics in `Drop` if asked to.
struct Tracked {
    number: usize,
    /// A heap value, so a use after free or a double drop shows under
    /// valgrind, and a stale read shows as a wrong text.
    text: String,
    drops: Arc<AtomicUsize>,
    panic_on_drop: bool,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert_eq!(
            self.text,
            format!("result {}", self.number),
            "a stale result"
        );
        self.drops.fetch_add(1, SeqCst);
        if self.panic_on_drop {
            panic!("deliberate panic dropping result {}", self.number);
        }
    }
}

/// Counters of the results a map made and dropped.
#[derive(Clone, Default)]
struct Counts {
    made: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Counts {
    /// A map function: fails the items `fails` picks, else makes a
    /// `Tracked` for the item.
    fn function(
        &self,
        fails: fn(usize) -> bool,
        panic_on_drop: bool,
    ) -> impl Fn(usize) -> Tracked + Send + Sync + 'static {
        let counts = self.clone();
        move |number| {
            if fails(number) {
                panic!("deliberate panic in item {number}");
            }
            counts.made.fetch_add(1, SeqCst);
            Tracked {
                number,
                text: format!("result {number}"),
                drops: Arc::clone(&counts.dropped),
                panic_on_drop,
            }
        }
    }

    fn assert_balanced(&self, what: &str) {
        assert_eq!(
            self.dropped.load(SeqCst),
            self.made.load(SeqCst),
            "{what}: results dropped vs made"
        );
    }
}

/// Checks one result of item `number` against `fails`, and drops it.
fn check(result: Result<Tracked, TaskError>, number: usize, fails: fn(usize) -> bool) {
    match result {
        Ok(value) => {
            assert!(!fails(number), "item {number} should have failed");
            assert_eq!(value.number, number);
            assert_eq!(value.text, format!("result {number}"));
        }
        Err(error) => {
            assert!(fails(number), "item {number} failed: {error:?}");
            assert_eq!(
                error,
                TaskError::Panicked(format!("deliberate panic in item {number}"))
            );
        }
    }
}

fn every_ninth(number: usize) -> bool {
    number % 9 == 4
}

/// The map (a plain struct with the cursor outside its box) is moved,
/// swapped with another half-consumed map, boxed and sent to another thread
/// between calls; every result still comes out once, in order, intact.
#[test]
fn a_map_moved_swapped_and_sent_between_calls_hands_out_each_result_once() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let pool_ref = &pool;
        let counts = Counts::default();
        let len = 5_000;
        {
            let mut first = pool_ref.map(0..len, counts.function(every_ninth, false));
            let mut second = pool_ref.map(len..2 * len, counts.function(every_ninth, false));
            let mut next_first = 0;
            let mut next_second = len;
            // Mid-run in both, then swap the maps (cursor and box together).
            for _ in 0..1_234 {
                check(first.next().unwrap(), next_first, every_ninth);
                next_first += 1;
            }
            for _ in 0..17 {
                check(second.next().unwrap(), next_second, every_ninth);
                next_second += 1;
            }
            std::mem::swap(&mut first, &mut second);
            std::mem::swap(&mut next_first, &mut next_second);
            for _ in 0..100 {
                check(first.next().unwrap(), next_first, every_ninth);
                next_first += 1;
            }
            // Moved into a box, then to another thread, and back.
            let mut boxed = Box::new(first);
            check(boxed.next().unwrap(), next_first, every_ninth);
            next_first += 1;
            let (boxed, next_first) = std::thread::scope(|scope| {
                scope
                    .spawn(move || {
                        let mut next_first = next_first;
                        for _ in 0..500 {
                            check(boxed.next().unwrap(), next_first, every_ninth);
                            next_first += 1;
                        }
                        (boxed, next_first)
                    })
                    .join()
                    .unwrap()
            });
            let mut moved = *boxed;
            let rest: Vec<_> = moved.by_ref().collect();
            assert_eq!(
                next_first + rest.len(),
                2 * len,
                "the swapped-in map's rest"
            );
            for (offset, result) in rest.into_iter().enumerate() {
                check(result, next_first + offset, every_ninth);
            }
            assert!(moved.next().is_none());
            // The other map dropped half-consumed, after a move.
            let moved_second = second;
            drop(moved_second);
            pool_ref.shutdown();
        }
        counts.assert_balanced("ordered, moved and swapped");
    });
}

/// The same for `map_unordered`: swapped, sent, dropped half-consumed.
#[test]
fn an_unordered_map_moved_swapped_and_sent_between_calls_drops_each_result_once() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let counts = Counts::default();
        let len = 5_000;
        let mut seen = vec![false; 2 * len];
        let mut mark = |result: Result<Tracked, TaskError>| {
            if let Ok(value) = &result {
                assert!(!seen[value.number], "result {} twice", value.number);
                seen[value.number] = true;
                assert_eq!(value.text, format!("result {}", value.number));
            }
        };
        let mut first = pool.map_unordered(0..len, counts.function(every_ninth, false));
        let mut second = pool.map_unordered(len..2 * len, counts.function(every_ninth, false));
        for _ in 0..1_234 {
            mark(first.next().unwrap());
        }
        for _ in 0..17 {
            mark(second.next().unwrap());
        }
        std::mem::swap(&mut first, &mut second);
        for _ in 0..100 {
            mark(first.next().unwrap());
        }
        let first = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let mut first = first;
                    let taken: Vec<_> = first.by_ref().take(300).collect();
                    (first, taken)
                })
                .join()
                .unwrap()
        });
        let (mut first, taken) = first;
        for result in taken {
            mark(result);
        }
        for result in first.by_ref() {
            mark(result);
        }
        assert!(first.next().is_none());
        assert!(first.next().is_none());
        drop(second);
        drop(first);
        pool.shutdown();
        counts.assert_balanced("unordered, moved and swapped");
    });
}

/// A result type with a larger alignment than any allocator default.
#[derive(Debug, PartialEq)]
#[repr(align(128))]
struct OverAligned(u64, [u8; 5]);

/// A zero-sized result that counts its drops.
struct ZeroSized(Arc<AtomicUsize>);

impl Drop for ZeroSized {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn zero_sized_over_aligned_and_heap_results_come_out_intact() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let len = 20_000u64;
        let fails = |n: u64| n % 97 == 5;
        // Over-aligned: every value at an aligned address, intact.
        let mut count = 0;
        for (n, result) in pool
            .map(0..len, move |n| {
                if fails(n) {
                    panic!("deliberate panic in item {n}");
                }
                OverAligned(n, [n as u8; 5])
            })
            .enumerate()
        {
            let n = n as u64;
            match result {
                Ok(value) => {
                    assert_eq!((&value as *const OverAligned as usize) % 128, 0);
                    assert_eq!(value, OverAligned(n, [n as u8; 5]));
                }
                Err(_) => assert!(fails(n)),
            }
            count += 1;
        }
        assert_eq!(count, len as usize);

        // Zero-sized, with `Drop`: each made one dropped once, both when
        // collected and when dropped half-consumed.
        for take in [0, 1, 5_000, 20_000] {
            let drops = Arc::new(AtomicUsize::new(0));
            let made = Arc::new(AtomicUsize::new(0));
            let mut map = {
                let drops = Arc::clone(&drops);
                let made = Arc::clone(&made);
                pool.map(0..len, move |n| {
                    if fails(n) {
                        panic!("deliberate panic in item {n}");
                    }
                    made.fetch_add(1, SeqCst);
                    ZeroSized(Arc::clone(&drops))
                })
            };
            let taken = map.by_ref().take(take).count();
            assert_eq!(taken, take);
            let hint = map.size_hint();
            assert_eq!(hint, (len as usize - take, Some(len as usize - take)));
            drop(map);
            pool.wait_completion_for_test();
            assert_eq!(
                drops.load(SeqCst),
                made.load(SeqCst),
                "zero-sized, {take} taken"
            );
        }

        // Strings, unordered: every value once.
        let mut texts: Vec<String> = pool
            .map_unordered(0..len, |n| format!("text {n}"))
            .map(Result::unwrap)
            .collect();
        texts.sort_by_key(|text| text[5..].parse::<u64>().unwrap());
        assert_eq!(
            texts,
            (0..len).map(|n| format!("text {n}")).collect::<Vec<_>>()
        );
    });
}

/// Waits for the pool's queued and running tasks (the chunks of a map
/// dropped early) by sending one task per worker behind them.
trait WaitForTest {
    fn wait_completion_for_test(&self);
}

impl WaitForTest for ThreadPool {
    fn wait_completion_for_test(&self) {
        // A chunk already running finishes before the worker takes another
        // task, and the queue is FIFO: once a barrier task per worker ran
        // everywhere, every earlier task is done.
        let barrier = Arc::new(std::sync::Barrier::new(self.workers()));
        let handles: Vec<_> = (0..self.workers())
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                self.submit(move || {
                    barrier.wait();
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }
}

/// Results whose `Drop` panics, left behind in a half-consumed map (in the
/// run being handed out, after a failure in it, in chunks in flight): each
/// dropped exactly once, the panics caught, nothing aborts.
#[test]
fn panicking_result_drops_in_a_half_consumed_map_are_each_dropped_once() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        for unordered in [false, true] {
            for take in [0usize, 1, 3, 40, 900, 2_999] {
                let pool = ThreadPool::new(2);
                let counts = Counts::default();
                let function = counts.function(every_ninth, true);
                let mut map: Box<dyn Iterator<Item = Result<Tracked, TaskError>>> = if unordered {
                    Box::new(pool.map_unordered(0..3_000, function))
                } else {
                    Box::new(pool.map(0..3_000, function))
                };
                let mut handed_out = 0;
                while handed_out < take {
                    let result = map.next().unwrap();
                    // The caller's own drop panics: caught here.
                    let _ = catch_unwind(AssertUnwindSafe(|| drop(result)));
                    handed_out += 1;
                }
                drop(map);
                pool.shutdown();
                counts.assert_balanced(&format!("unordered {unordered}, {take} taken"));
            }
        }
    });
}

/// A `for_each` (the map's own `fold`) whose closure panics mid-run: the
/// values after it are dropped once by the map's `Drop`.
#[test]
fn a_panicking_for_each_mid_run_leaves_each_result_dropped_once() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        for stop_at in [0usize, 1, 2, 63, 64, 500, 4_321] {
            let pool = ThreadPool::new(2);
            let counts = Counts::default();
            let mut map = pool.map(0..6_000, counts.function(every_ninth, false));
            // Some `next`s first, so the fold starts mid-run.
            for number in 0..stop_at / 2 {
                check(map.next().unwrap(), number, every_ninth);
            }
            let mut expected = stop_at / 2;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                map.for_each(|result| {
                    check(result, expected, every_ninth);
                    if expected == stop_at {
                        panic!("deliberate panic in the for_each at {expected}");
                    }
                    expected += 1;
                });
            }));
            assert!(outcome.is_err(), "the closure's panic comes through");
            pool.shutdown();
            counts.assert_balanced(&format!("for_each stopped at {stop_at}"));
        }
    });
}

/// `size_hint` is exact at every step for an input of known length (with
/// failures cutting chunks), and `next` after `None` stays `None`.
#[test]
fn size_hint_is_exact_at_every_step_and_next_after_none_stays_none() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        for len in [0usize, 1, 2, 5, 100, 7_000] {
            let counts = Counts::default();
            let mut map = pool.map(0..len, counts.function(every_ninth, false));
            for number in 0..len {
                assert_eq!(
                    map.size_hint(),
                    (len - number, Some(len - number)),
                    "len {len}, before item {number}"
                );
                check(map.next().unwrap(), number, every_ninth);
            }
            assert_eq!(map.size_hint(), (0, Some(0)));
            for _ in 0..3 {
                assert!(map.next().is_none());
                assert_eq!(map.size_hint(), (0, Some(0)));
            }
            drop(map);
            counts.assert_balanced(&format!("len {len}"));
            // Unordered: the same count, `None` stays `None`.
            let mut unordered = pool.map_unordered(0..len, counts.function(every_ninth, false));
            assert_eq!(unordered.by_ref().count(), len);
            for _ in 0..3 {
                assert!(unordered.next().is_none());
            }
        }
        // A lower bound only, for an input of unknown length: never more
        // than what comes.
        let mut filtered = pool.map((0..1_000usize).filter(|n| n % 3 == 0), |n| n);
        let mut left = 334;
        loop {
            let (low, high) = filtered.size_hint();
            assert!(
                low <= left && high.is_none_or(|high| high >= left),
                "{low} {high:?} {left}"
            );
            if filtered.next().is_none() {
                break;
            }
            left -= 1;
        }
        assert_eq!(left, 0);
    });
}

/// The read-ahead stays within the documented `(2 × workers + 1) × 16,384`
/// at every step, and the first result needs only the first chunks (of one
/// item each); an endless input is read lazily.
#[test]
fn the_read_ahead_stays_within_the_documented_bound_at_every_step() {
    with_watchdog(PATIENCE, || {
        for workers in [1usize, 2, 3] {
            for unordered in [false, true] {
                let pool = ThreadPool::new(workers);
                let read = Arc::new(AtomicUsize::new(0));
                let inputs = {
                    let read = Arc::clone(&read);
                    (0u64..).inspect(move |_| {
                        read.fetch_add(1, SeqCst);
                    })
                };
                let mut map: Box<dyn Iterator<Item = Result<u64, TaskError>>> = if unordered {
                    Box::new(pool.map_unordered(inputs, |n| n))
                } else {
                    Box::new(pool.map(inputs, |n| n))
                };
                assert_eq!(read.load(SeqCst), 0, "read before the first `next`");
                map.next().unwrap().unwrap();
                assert!(
                    read.load(SeqCst) <= 2 * workers,
                    "{workers} workers: {} read for the first result",
                    read.load(SeqCst)
                );
                let bound = (2 * workers + 1) * MAX_CHUNK;
                let mut max_ahead = 0;
                for consumed in 2..=300_000usize {
                    map.next().unwrap().unwrap();
                    let ahead = read.load(SeqCst) - consumed;
                    max_ahead = max_ahead.max(ahead);
                    assert!(
                        ahead <= bound,
                        "{workers} workers, unordered {unordered}: {ahead} read ahead after \
                         {consumed} consumed"
                    );
                }
                eprintln!("{workers} workers, unordered {unordered}: max read-ahead {max_ahead}");
            }
        }
    });
}

/// Items alternating cheap and slow (and slow ones in bursts) on a
/// one-worker pool: the chunk size's arithmetic never panics and every
/// result comes, in order. Also zero-length items' `Instant` (a chunk's
/// time of 0 ns).
#[test]
fn items_alternating_fast_and_slow_on_one_worker_keep_every_result() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let patterns: [fn(usize) -> bool; 3] = [
            |n| n % 2 == 1,
            |n| (n / 64) % 2 == 1 && n % 16 == 0,
            |n| n.is_power_of_two(),
        ];
        for slow in patterns {
            let started = Instant::now();
            let got: Vec<usize> = pool
                .map(0..3_000usize, move |n| {
                    if slow(n) {
                        std::thread::sleep(Duration::from_micros(600));
                    }
                    n
                })
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, (0..3_000).collect::<Vec<_>>());
            assert!(started.elapsed() < PATIENCE);
        }
        // A chunk of a zero-cost item (the clock may read 0 ns).
        let got: Vec<()> = pool
            .map(0..100_000u32, |_| ())
            .map(Result::unwrap)
            .collect();
        assert_eq!(got.len(), 100_000);
    });
}

/// An endless input with `take`: only a bounded prefix is read, and the
/// map's drop leaves the rest unread.
#[test]
fn an_endless_input_with_take_is_read_lazily() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let read = Arc::new(AtomicUsize::new(0));
        let inputs = {
            let read = Arc::clone(&read);
            std::iter::repeat(7u8).inspect(move |_| {
                read.fetch_add(1, SeqCst);
            })
        };
        let got: Vec<u8> = pool
            .map(inputs, |n| n + 1)
            .take(10)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, [8; 10]);
        assert!(
            read.load(SeqCst) <= 5 * MAX_CHUNK,
            "{} read",
            read.load(SeqCst)
        );
    });
}

/// The maps are `Send` when their parts are (checked at compile time), so
/// a half-consumed map may continue on another thread (tested above).
#[test]
fn the_maps_are_send_when_their_parts_are() {
    fn assert_send<T: Send>(_: &T) {}
    let pool = ThreadPool::new(1);
    let map = pool.map(0..3, |n: i32| n.to_string());
    assert_send(&map);
    let unordered = pool.map_unordered(0..3, |n: i32| vec![n]);
    assert_send(&unordered);
}

/// `shutdown_now` in the middle of a map: the chunks it cancels report
/// `Cancelled` (or `ShutDown` for those sent after), one result per item,
/// `size_hint` still exact, and every value made dropped once.
#[test]
fn a_shutdown_now_mid_map_keeps_one_result_per_item_and_an_exact_size_hint() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        for unordered in [false, true] {
            let pool = ThreadPool::new(2);
            let counts = Counts::default();
            let len = 20_000;
            let function = counts.function(every_ninth, false);
            let mut map: Box<dyn Iterator<Item = Result<Tracked, TaskError>>> = if unordered {
                Box::new(pool.map_unordered(0..len, function))
            } else {
                Box::new(pool.map(0..len, function))
            };
            let mut got = 0;
            for result in map.by_ref().take(300) {
                if !unordered {
                    check(result, got, every_ninth);
                }
                got += 1;
            }
            pool.shutdown_now();
            loop {
                if !unordered {
                    assert_eq!(map.size_hint(), (len - got, Some(len - got)));
                }
                let Some(result) = map.next() else { break };
                match result {
                    Ok(value) if !unordered => assert_eq!(value.number, got),
                    Ok(_) => {}
                    Err(TaskError::Cancelled | TaskError::ShutDown) => {}
                    Err(TaskError::Panicked(_)) => {}
                    Err(other) => panic!("unexpected {other:?}"),
                }
                got += 1;
            }
            assert_eq!(got, len, "unordered {unordered}: one result per item");
            drop(map);
            counts.assert_balanced(&format!("unordered {unordered}, shut down mid-map"));
        }
    });
}

/// `count`, `last` and `nth` (through the map's own `fold` or `next`) on
/// inputs whose chunks end in failures: the same answers as a plain loop.
#[test]
fn count_last_and_nth_agree_with_a_loop_of_next() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let fails = |n: usize| n % 5 == 4 || n + 1 == 7_777;
        let function = move |n: usize| {
            if fails(n) {
                panic!("deliberate panic in item {n}");
            }
            n.to_string()
        };
        assert_eq!(pool.map(0..7_777, function).count(), 7_777);
        assert_eq!(
            pool.map(0..7_777, function).last(),
            Some(Err(TaskError::Panicked(
                "deliberate panic in item 7776".to_owned()
            )))
        );
        assert_eq!(
            pool.map(0..7_776, function).last(),
            Some(Ok("7775".to_owned()))
        );
        let mut map = pool.map(0..7_777, function);
        assert_eq!(map.nth(3), Some(Ok("3".to_owned())));
        assert!(map.next().unwrap().is_err());
        assert_eq!(map.nth(5_000), Some(Ok("5005".to_owned())));
        assert_eq!(map.count(), 7_777 - 5_006);
    });
}

/// A short input of unknown length whose first item is cheap and the rest
/// slow (2 ms each), on two workers: the rest should still spread over both
/// workers. Review 20: one cheap chunk of one item made the next chunk 64
/// items (64× growth), and those 64 slow items all ran on one worker (about
/// 2× the wall time of an even spread); a chunk now grows the next by at
/// most its own item count.
#[test]
fn slow_items_after_one_cheap_item_still_spread_over_the_workers() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let len = 68;
        let workers: Vec<std::thread::ThreadId> = pool
            .map((0..len).filter(|_| true), |n: usize| {
                if n > 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                std::thread::current().id()
            })
            .map(Result::unwrap)
            .collect();
        let busiest = workers[1..]
            .iter()
            .map(|id| workers[1..].iter().filter(|other| *other == id).count())
            .max()
            .unwrap();
        assert!(
            busiest <= (len - 1) * 3 / 4,
            "one worker ran {busiest} of the {} slow items",
            len - 1
        );
    });
}

/// Small enough for Miri (`cargo +nightly miri test --test pool_map_review20
/// -- small_`): two maps swapped mid-chunk, one moved to another thread,
/// failures cutting the chunks, both dropped half-consumed.
#[test]
fn small_maps_swapped_sent_and_dropped_half_consumed() {
    quiet_deliberate_panics();
    let pool = ThreadPool::new(2);
    let counts = Counts::default();
    for unordered in [false, true] {
        let function = || counts.function(|n| n % 5 == 2, n_panics_on_drop(unordered));
        let mut first: Box<dyn Iterator<Item = Result<Tracked, TaskError>> + Send> = if unordered {
            Box::new(pool.map_unordered(0..40, function()))
        } else {
            Box::new(pool.map(0..40, function()))
        };
        let mut second: Box<dyn Iterator<Item = Result<Tracked, TaskError>> + Send> =
            Box::new(pool.map(100..140, function()));
        for _ in 0..7 {
            // A result's panicking `Drop` (the unordered round) is caught.
            let _ = catch_unwind(AssertUnwindSafe(|| drop(first.next())));
            let _ = catch_unwind(AssertUnwindSafe(|| drop(second.next())));
        }
        std::mem::swap(&mut first, &mut second);
        let first = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let mut first = first;
                    for _ in 0..9 {
                        let _ = catch_unwind(AssertUnwindSafe(|| drop(first.next())));
                    }
                    first
                })
                .join()
                .unwrap()
        });
        drop(first);
        drop(second);
    }
    pool.shutdown();
    counts.assert_balanced("small maps");
}

/// The unordered round's results panic when dropped.
fn n_panics_on_drop(unordered: bool) -> bool {
    unordered
}
