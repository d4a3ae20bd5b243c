//! `PoolMap`'s `fold` (behind `for_each`, `count`, `last` and a `fold` of
//! one's own) walks each chunk's values in one go: it must give exactly
//! the results a loop of `next` gives, in the same order — failures
//! included, wherever they fall (chunk starts and ends, runs of them, every
//! item), also when `next` took part of the map first (stopping inside a
//! chunk, or just before a failure). And `size_hint` stays exact while the
//! failures cut a chunk's values into runs.

mod common;

use verisync::{TaskError, ThreadPool};

use common::{with_watchdog, PATIENCE};

fn quiet_deliberate_panics() {
    common::quiet_panics(|payload| {
        common::panic_text(payload).is_some_and(|text| text.starts_with("deliberate"))
    });
}

const PATTERNS: [fn(usize) -> bool; 6] = [
    |_| false,
    |n| n % 7 == 0 || n % 7 == 6,
    |n| (n / 5) % 3 == 0,          // runs of five panics
    |n| n.is_power_of_two(),       // chunk starts while chunks double
    |n| (n + 1).is_power_of_two(), // chunk ends while chunks double
    |_| true,                      // every item
];

fn expected(len: usize, fails: fn(usize) -> bool) -> Vec<Result<usize, TaskError>> {
    (0..len)
        .map(|n| {
            if fails(n) {
                Err(TaskError::Panicked(format!("deliberate panic on item {n}")))
            } else {
                Ok(n * 3)
            }
        })
        .collect()
}

fn mapped(
    pool: &ThreadPool,
    len: usize,
    fails: fn(usize) -> bool,
) -> impl Iterator<Item = Result<usize, TaskError>> + '_ {
    pool.map(0..len, move |n| {
        if fails(n) {
            panic!("deliberate panic on item {n}");
        }
        n * 3
    })
}

#[test]
fn for_each_fold_count_and_last_agree_with_next() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        for fails in PATTERNS {
            for (workers, len) in [(1, 0), (1, 1), (2, 100), (3, 40_000)] {
                let pool = ThreadPool::new(workers);
                let expected = expected(len, fails);
                let mut by_for_each = Vec::new();
                mapped(&pool, len, fails).for_each(|result| by_for_each.push(result));
                assert_eq!(by_for_each, expected, "for_each, {len} items");
                let by_fold = mapped(&pool, len, fails).fold(Vec::new(), |mut all, result| {
                    all.push(result);
                    all
                });
                assert_eq!(by_fold, expected, "fold, {len} items");
                assert_eq!(mapped(&pool, len, fails).count(), len, "count");
                assert_eq!(mapped(&pool, len, fails).last(), expected.last().cloned());
            }
        }
    });
}

#[test]
fn fold_after_next_goes_on_where_next_stopped() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let len = 20_000;
        let pool = ThreadPool::new(2);
        for fails in PATTERNS {
            let expected = expected(len, fails);
            // Stops inside the first chunks, at and around the failures of
            // each pattern, and deep inside large chunks.
            for taken in [1, 2, 3, 6, 7, 8, 16, 17, 100, 1_000, 9_999, 19_999] {
                let mut map = mapped(&pool, len, fails);
                let mut results: Vec<_> = map.by_ref().take(taken).collect();
                map.for_each(|result| results.push(result));
                assert_eq!(results, expected, "{taken} taken by next first");
            }
        }
    });
}

#[test]
fn size_hint_stays_exact_while_failures_cut_the_chunks() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let len = 5_000;
        let pool = ThreadPool::new(2);
        for fails in PATTERNS {
            let mut map = mapped(&pool, len, fails);
            for handed_out in 0..len {
                assert_eq!(map.size_hint(), (len - handed_out, Some(len - handed_out)));
                assert!(map.next().is_some(), "item {handed_out}");
            }
            assert_eq!(map.size_hint(), (0, Some(0)));
            assert!(map.next().is_none());
        }
    });
}
