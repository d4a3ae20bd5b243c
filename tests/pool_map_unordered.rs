//! `ThreadPool::map_unordered` (issue 16, item 3) — Python's
//! `imap_unordered`: results in completion order (a slow item holds back
//! only its own chunk), the same `Result` per item as `map` (panics fail
//! only their item), lazy with a bounded read-ahead, cancels on drop, works
//! from inside a task of its own one-worker pool, and — the property — yields
//! a permutation of `map`'s results.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use proptest::prelude::*;
use verisync::{Event, TaskError, ThreadPool};

use common::{with_watchdog, CASE_PATIENCE, PATIENCE};

/// The deliberate panics of these tests would flood the output; only they
/// (and `PanicsOnDrop`'s) are silenced.
fn quiet_deliberate_panics() {
    common::quiet_panics(|payload| {
        common::panic_text(payload).is_some_and(|text| text.starts_with("deliberate"))
            || payload.is::<PanicsOnDrop>()
    });
}

/// A result whose `Drop` panics (hostile user code).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("deliberate panic dropping a result");
    }
}

/// As in `tests/pool.rs`: at most the chunks in flight (two per worker, of
/// at most 16,384 items) plus one chunk being handed out, generously.
fn read_ahead_bound(workers: usize) -> usize {
    (4 * workers + 2) * 16_384
}

/// Item 0 is held by a gate; every other item comes out before it.
#[test]
fn a_slow_item_holds_back_only_its_own_chunk() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let gate = Arc::new(Event::new());
        let mut results = {
            let gate = Arc::clone(&gate);
            pool.map_unordered(0..40u64, move |n| {
                if n == 0 {
                    gate.wait();
                }
                n * n
            })
        };
        // The first chunk is item 0 alone (chunks start at one item).
        let mut early: Vec<u64> = results.by_ref().take(39).map(Result::unwrap).collect();
        early.sort_unstable();
        assert_eq!(early, (1..40u64).map(|n| n * n).collect::<Vec<_>>());
        gate.set();
        assert_eq!(results.next(), Some(Ok(0)));
        assert_eq!(results.next(), None);
    });
}

#[test]
fn a_panicking_item_fails_only_itself_like_map() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let mut results: Vec<Result<u64, TaskError>> = pool
            .map_unordered(0..500u64, |n| {
                if n.is_multiple_of(7) {
                    panic!("deliberate panic at {n}");
                }
                n
            })
            .collect();
        assert_eq!(results.len(), 500);
        let expected = |n: u64| {
            if n.is_multiple_of(7) {
                Err(TaskError::Panicked(format!("deliberate panic at {n}")))
            } else {
                Ok(n)
            }
        };
        let key = |result: &Result<u64, TaskError>| match result {
            Ok(n) => *n,
            Err(TaskError::Panicked(message)) => message["deliberate panic at ".len()..]
                .parse()
                .expect("a panic message names its item"),
            Err(other) => panic!("unexpected {other:?}"),
        };
        results.sort_by_key(key);
        assert_eq!(results, (0..500).map(expected).collect::<Vec<_>>());
    });
}

#[test]
fn map_unordered_is_lazy_over_an_endless_iterator() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        for wanted in [1usize, 10, 100_000] {
            let read = Arc::new(AtomicUsize::new(0));
            let inputs = {
                let read = Arc::clone(&read);
                (0u64..).inspect(move |_| {
                    read.fetch_add(1, SeqCst);
                })
            };
            let mut map = pool.map_unordered(inputs, |n| n + 1);
            assert_eq!(read.load(SeqCst), 0, "read input before being asked");
            let got = map.by_ref().take(wanted).map(Result::unwrap).count();
            assert_eq!(got, wanted);
            let read_now = read.load(SeqCst);
            assert!(
                read_now >= wanted && read_now - wanted <= read_ahead_bound(2),
                "consumed {wanted} results but read {read_now} inputs"
            );
            drop(map);
            assert_eq!(read.load(SeqCst), read_now, "dropping the map read more");
        }
    });
}

#[test]
fn dropping_it_early_runs_no_more_than_it_read_and_the_pool_serves_on() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let (read, ran) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let inputs = {
            let read = Arc::clone(&read);
            (0u64..).inspect(move |_| {
                read.fetch_add(1, SeqCst);
            })
        };
        let first = {
            let ran = Arc::clone(&ran);
            pool.map_unordered(inputs, move |n| {
                ran.fetch_add(1, SeqCst);
                n
            })
            .take(50)
            .count()
        };
        assert_eq!(first, 50);
        assert_eq!(pool.submit(|| "still serving").join(), Ok("still serving"));
        pool.shutdown();
        let (read, ran) = (read.load(SeqCst), ran.load(SeqCst));
        assert!(ran >= 50 && ran <= read, "read {read} inputs, ran {ran}");
    });
}

/// After a shutdown the items report why they never ran, as with `map`.
#[test]
fn after_shutdown_every_item_reports_shut_down() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        pool.shutdown();
        let results: Vec<_> = pool.map_unordered(0..5u32, |n| n).collect();
        assert_eq!(results, vec![Err(TaskError::ShutDown); 5]);
    });
}

/// A task of a one-worker pool iterating a map of its own pool: the chunks
/// can only run on the worker that waits for them, so it runs them inline.
/// (`map` too, through the inline join.)
#[test]
fn maps_from_inside_the_pools_only_worker_do_not_deadlock() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        let inner = Arc::clone(&pool);
        let sums = pool.submit(move || {
            let unordered: u64 = inner
                .map_unordered(1..=100u64, |n| n)
                .map(Result::unwrap)
                .sum();
            let ordered: Vec<u64> = inner.map(1..=4u64, |n| n).map(Result::unwrap).collect();
            (unordered, ordered)
        });
        assert_eq!(sums.join(), Ok((5050, vec![1, 2, 3, 4])));
    });
}

/// Results whose `Drop` panics: consumed ones panic where the caller drops
/// them; unconsumed ones are dropped one by one, each panic caught and
/// reported — with the iterator (on the caller's thread, which sees no
/// panic) or by the worker when their chunk finishes after it. Neither
/// kills a worker nor aborts the process (a chunk's results dropped as one
/// `Vec` aborted it at the second panic).
#[test]
fn unordered_results_whose_drop_panics_abort_nothing_and_kill_no_worker() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder()
            .workers(2)
            .thread_name("hostile")
            .build();
        for take in [0usize, 1, 5, 40] {
            let mut results = pool.map_unordered(0..64u32, |_| PanicsOnDrop);
            for _ in 0..take {
                let result = results.next().expect("64 results");
                assert!(catch_unwind(AssertUnwindSafe(move || drop(result))).is_err());
            }
            drop(results);
            let names: Vec<_> = (0..4)
                .map(|_| pool.submit(|| std::thread::current().name().map(str::to_owned)))
                .map(|handle| handle.join().unwrap().unwrap())
                .collect();
            assert!(names.iter().all(|name| name.starts_with("hostile-")));
        }
        assert_eq!(pool.map_unordered(0..10u32, |n| n).count(), 10);
    });
}

fn outcome_key(result: &Result<u64, TaskError>) -> (bool, u64, String) {
    match result {
        Ok(value) => (true, *value, String::new()),
        Err(error) => (false, 0, error.to_string()),
    }
}

proptest! {
    #![proptest_config(common::concurrent_config())]

    /// `map_unordered` yields exactly `map`'s results, each once, in some
    /// order (a multiset equality), whatever the workers, inputs and panics.
    #[test]
    fn map_unordered_yields_a_permutation_of_maps_results(
        workers in 1usize..4,
        inputs in proptest::collection::vec(0u64..1_000, 0..300),
        panic_every in 2u64..20,
    ) {
        quiet_deliberate_panics();
        let (mut ordered, mut unordered) = with_watchdog(CASE_PATIENCE, move || {
            let pool = ThreadPool::new(workers);
            let function = move |n: u64| {
                if n.is_multiple_of(panic_every) {
                    panic!("deliberate panic at {n}");
                }
                n * 3
            };
            let ordered: Vec<_> = pool.map(inputs.clone(), function).collect();
            let unordered: Vec<_> = pool.map_unordered(inputs, function).collect();
            (ordered, unordered)
        });
        ordered.sort_by_key(outcome_key);
        unordered.sort_by_key(outcome_key);
        prop_assert_eq!(ordered, unordered);
    }
}
