//! Property tests for `Semaphore`.
//!
//! - Model-based: random operation sequences on one thread against a plain
//!   count (and bound), checking every observable result.
//! - Concurrent: 2–4 threads run random scripts; never more than `k`
//!   permits are held at once, manual releases of consumed permits always
//!   succeed, and the count is back where it started at the end (no permit
//!   lost or duplicated, timeouts included).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use verisync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit, TooManyReleases};

use common::{
    concurrent_config, join, join_scoped, kernel_thread_id, wait_until_asleep, with_watchdog, work,
    CASE_PATIENCE, PATIENCE,
};

/// How long a timed call waits.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// `Duration::ZERO`: try once.
    Zero,
    /// A millisecond: a real, bounded wait.
    Short,
    /// `Duration::MAX`: forever (only issued when the model says the call
    /// succeeds at once, since nothing else runs).
    Forever,
}

impl Wait {
    fn duration(self) -> Duration {
        match self {
            Wait::Zero => Duration::ZERO,
            Wait::Short => Duration::from_millis(1),
            Wait::Forever => Duration::MAX,
        }
    }
}

fn wait_strategy() -> impl Strategy<Value = Wait> {
    prop_oneof![6 => Just(Wait::Zero), 1 => Just(Wait::Short), 3 => Just(Wait::Forever)]
}

#[derive(Clone, Debug)]
enum Op {
    TryAcquire,
    TryAcquireMany(usize),
    TryAcquireManyFor(usize, Wait),
    /// `try_acquire_many_until` with a deadline already past: tries once.
    TryAcquireManyUntilPast(usize),
    /// `try_acquire_until` a millisecond ahead.
    TryAcquireUntilSoon,
    /// Blocking `acquire_many` (issued only when it succeeds at once).
    AcquireMany(usize),
    AcquireManyOwned(usize),
    TryAcquireOwned,
    Release(usize),
    /// Release exactly up to the limit, plus `extra` (0: fills it; 1: refused).
    ReleaseToLimit {
        extra: usize,
    },
    /// Drop the held permit at `index % held.len()`.
    DropPermit(usize),
    /// Forget the held permit at `index % held.len()`.
    ForgetPermit(usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::TryAcquire),
        3 => (0..=7usize).prop_map(Op::TryAcquireMany),
        3 => (0..=7usize, wait_strategy()).prop_map(|(n, w)| Op::TryAcquireManyFor(n, w)),
        1 => (0..=7usize).prop_map(Op::TryAcquireManyUntilPast),
        1 => Just(Op::TryAcquireUntilSoon),
        3 => (0..=7usize).prop_map(Op::AcquireMany),
        2 => (0..=4usize).prop_map(Op::AcquireManyOwned),
        1 => Just(Op::TryAcquireOwned),
        3 => (0..=4usize).prop_map(Op::Release),
        1 => (0..=1usize).prop_map(|extra| Op::ReleaseToLimit { extra }),
        5 => any::<usize>().prop_map(Op::DropPermit),
        2 => any::<usize>().prop_map(Op::ForgetPermit),
    ]
}

/// A permit of either kind, as the test holds it.
enum Held<'a> {
    Borrowed(SemaphorePermit<'a>),
    Owned(OwnedSemaphorePermit),
}

impl Held<'_> {
    fn count(&self) -> usize {
        match self {
            Held::Borrowed(permit) => permit.count(),
            Held::Owned(permit) => permit.count(),
        }
    }

    fn forget(self) {
        match self {
            Held::Borrowed(permit) => permit.forget(),
            Held::Owned(permit) => permit.forget(),
        }
    }
}

/// The sequential model: how many permits are available, and the bound.
#[derive(Debug)]
struct Model {
    available: usize,
    bound: Option<usize>,
}

impl Model {
    fn limit(&self) -> usize {
        self.bound.unwrap_or(Semaphore::MAX_PERMITS)
    }

    /// One thread, nobody queued: an acquire of `n` succeeds iff `n` are free.
    fn try_take(&mut self, n: usize) -> bool {
        if self.available >= n {
            self.available -= n;
            true
        } else {
            false
        }
    }

    /// Calls that panic on an unsatisfiable count (more than the limit).
    fn satisfiable(&self, n: usize) -> bool {
        n <= self.limit()
    }

    fn release(&mut self, n: usize) -> Result<(), TooManyReleases> {
        if n > self.limit() - self.available {
            Err(TooManyReleases {
                released: n,
                available: self.available,
                limit: self.limit(),
            })
        } else {
            self.available += n;
            Ok(())
        }
    }

    /// A dropped permit gives its permits back, capped at the bound.
    fn give_back(&mut self, n: usize) {
        self.available = (self.available + n).min(self.limit());
    }
}

fn run_model(initial: usize, bounded: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let semaphore = Arc::new(if bounded {
        Semaphore::bounded(initial)
    } else {
        Semaphore::new(initial)
    });
    let mut model = Model {
        available: initial,
        bound: bounded.then_some(initial),
    };
    let mut held: Vec<Held<'_>> = Vec::new();
    prop_assert_eq!(semaphore.bound(), model.bound);

    for (step, op) in ops.into_iter().enumerate() {
        let acquired: Option<(bool, usize, Option<Held<'_>>)> = match op {
            Op::TryAcquire => Some((model.try_take(1), 1, {
                semaphore.try_acquire().map(Held::Borrowed)
            })),
            Op::TryAcquireMany(n) => {
                // Never panics: an unsatisfiable count simply fails.
                let got = semaphore.try_acquire_many(n).map(Held::Borrowed);
                Some((model.try_take(n), n, got))
            }
            Op::TryAcquireManyFor(n, wait) => {
                if !model.satisfiable(n) {
                    None
                } else if matches!(wait, Wait::Forever) && model.available < n {
                    // Would wait forever on this lone thread; try once instead.
                    let got = semaphore
                        .try_acquire_many_for(n, Duration::ZERO)
                        .map(Held::Borrowed);
                    Some((false, n, got))
                } else {
                    let got = semaphore
                        .try_acquire_many_for(n, wait.duration())
                        .map(Held::Borrowed);
                    Some((model.try_take(n), n, got))
                }
            }
            Op::TryAcquireManyUntilPast(n) => {
                if model.satisfiable(n) {
                    let past = Instant::now() - Duration::from_millis(1);
                    let got = semaphore
                        .try_acquire_many_until(n, past)
                        .map(Held::Borrowed);
                    Some((model.try_take(n), n, got))
                } else {
                    None
                }
            }
            Op::TryAcquireUntilSoon => {
                if model.satisfiable(1) {
                    let soon = Instant::now() + Duration::from_millis(1);
                    let got = semaphore.try_acquire_until(soon).map(Held::Borrowed);
                    Some((model.try_take(1), 1, got))
                } else {
                    None
                }
            }
            Op::AcquireMany(n) => {
                if model.satisfiable(n) && model.available >= n {
                    let got = Some(Held::Borrowed(semaphore.acquire_many(n)));
                    Some((model.try_take(n), n, got))
                } else {
                    None
                }
            }
            Op::AcquireManyOwned(n) => {
                if model.satisfiable(n) && model.available >= n {
                    let permit = Arc::clone(&semaphore).acquire_many_owned(n);
                    prop_assert!(Arc::ptr_eq(permit.semaphore(), &semaphore));
                    Some((model.try_take(n), n, Some(Held::Owned(permit))))
                } else {
                    None
                }
            }
            Op::TryAcquireOwned => {
                let got = Arc::clone(&semaphore).try_acquire_owned().map(Held::Owned);
                Some((model.try_take(1), 1, got))
            }
            Op::Release(n) => {
                let expected = model.release(n);
                prop_assert_eq!(
                    semaphore.release(n),
                    expected,
                    "step {}: release({})",
                    step,
                    n
                );
                None
            }
            Op::ReleaseToLimit { extra } => {
                let n = model.limit() - model.available + extra;
                let expected = model.release(n);
                let actual = semaphore.release(n);
                prop_assert_eq!(actual, expected, "step {}: release({})", step, n);
                if let Err(error) = actual {
                    prop_assert!(error.to_string().contains("unchanged"));
                }
                None
            }
            Op::DropPermit(index) => {
                if !held.is_empty() {
                    let permit = held.swap_remove(index % held.len());
                    model.give_back(permit.count());
                    drop(permit);
                }
                None
            }
            Op::ForgetPermit(index) => {
                if !held.is_empty() {
                    held.swap_remove(index % held.len()).forget();
                }
                None
            }
        };

        if let Some((expected, n, got)) = acquired {
            prop_assert_eq!(
                got.is_some(),
                expected,
                "step {}: acquiring {} with {:?} permits available (model {:?})",
                step,
                n,
                semaphore.available_permits(),
                model
            );
            if let Some(permit) = got {
                prop_assert_eq!(permit.count(), n);
                held.push(permit);
            }
        }
        prop_assert_eq!(
            semaphore.available_permits(),
            model.available,
            "step {}: available permits",
            step
        );
        prop_assert!(model.available <= model.limit());
    }

    for permit in held.drain(..) {
        model.give_back(permit.count());
        drop(permit);
        prop_assert_eq!(semaphore.available_permits(), model.available);
    }
    Ok(())
}

proptest! {
    #[test]
    fn semaphore_matches_sequential_model(
        initial in 0..=5usize,
        bounded in any::<bool>(),
        ops in prop::collection::vec(op_strategy(), 1..40),
    ) {
        run_model(initial, bounded, ops)?;
    }
}

/// One step of a thread's script in the concurrent test.
#[derive(Clone, Debug)]
enum Step {
    /// Blocking `acquire_many`.
    Acquire,
    /// `try_acquire_many`: may fail.
    Try,
    /// `try_acquire_many_for` with a timeout in microseconds (0: try once).
    For(u64),
    /// `try_acquire_many_until` a deadline this many microseconds ahead.
    Until(u64),
    /// `try_acquire_many_for(Duration::MAX)`: waits forever.
    Forever,
    /// `acquire_many_owned`, dropped on another thread.
    Owned,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Acquire),
        2 => Just(Step::Try),
        3 => (0..=2_000u64).prop_map(Step::For),
        1 => (0..=2_000u64).prop_map(Step::Until),
        1 => Just(Step::Forever),
        1 => Just(Step::Owned),
    ]
}

/// (what, how many permits (folded into 1..=k), how long to hold, give them
/// back by `forget` + `release` instead of drop)
type Script = Vec<(Step, usize, u8, bool)>;

fn script_strategy() -> impl Strategy<Value = Script> {
    prop::collection::vec((step_strategy(), 1..=4usize, 0..40u8, any::<bool>()), 1..16)
}

fn run_concurrent(permits: usize, bounded: bool, scripts: Vec<Script>) {
    let semaphore = Arc::new(if bounded {
        Semaphore::bounded(permits)
    } else {
        Semaphore::new(permits)
    });
    let in_use = AtomicUsize::new(0);
    let most_in_use = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let threads: Vec<_> = scripts
            .into_iter()
            .map(|script| {
                let (semaphore, in_use, most_in_use) = (&semaphore, &in_use, &most_in_use);
                scope.spawn(move || {
                    for (step, count, hold, manual_release) in script {
                        let n = 1 + (count - 1) % permits;
                        let got: Option<Held<'_>> = match step {
                            Step::Acquire => Some(Held::Borrowed(semaphore.acquire_many(n))),
                            Step::Try => semaphore.try_acquire_many(n).map(Held::Borrowed),
                            Step::For(micros) => semaphore
                                .try_acquire_many_for(n, Duration::from_micros(micros))
                                .map(Held::Borrowed),
                            Step::Until(micros) => semaphore
                                .try_acquire_many_until(
                                    n,
                                    Instant::now() + Duration::from_micros(micros),
                                )
                                .map(Held::Borrowed),
                            Step::Forever => {
                                let permit = semaphore.try_acquire_many_for(n, Duration::MAX);
                                assert!(permit.is_some(), "Duration::MAX wait gave up");
                                permit.map(Held::Borrowed)
                            }
                            Step::Owned => {
                                Some(Held::Owned(Arc::clone(semaphore).acquire_many_owned(n)))
                            }
                        };
                        let Some(permit) = got else { continue };
                        assert_eq!(permit.count(), n);
                        let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                        assert!(
                            now <= permits,
                            "{now} permits held at once, only {permits} exist"
                        );
                        most_in_use.fetch_max(now, Ordering::Relaxed);
                        work(hold);
                        in_use.fetch_sub(n, Ordering::SeqCst);
                        if manual_release {
                            permit.forget();
                            // The permits were consumed, so giving them back by
                            // hand can never exceed the bound.
                            semaphore.release(n).expect("releasing consumed permits");
                        } else if let Held::Owned(permit) = permit {
                            // Owned permits move: give this one back elsewhere.
                            std::thread::spawn(move || drop(permit)).join().unwrap();
                        } else {
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            join_scoped(thread);
        }
    });
    assert_eq!(in_use.load(Ordering::SeqCst), 0);
    assert!(most_in_use.load(Ordering::Relaxed) <= permits);
    assert_eq!(
        semaphore.available_permits(),
        permits,
        "permits were lost or duplicated"
    );
}

proptest! {
    #![proptest_config(concurrent_config())]

    #[test]
    fn concurrent_scripts_conserve_permits(
        permits in 1..=4usize,
        bounded in any::<bool>(),
        scripts in prop::collection::vec(script_strategy(), 2..=4),
    ) {
        with_watchdog(CASE_PATIENCE, move || run_concurrent(permits, bounded, scripts));
    }
}

/// A request for 2 permits is asleep in the queue of an empty semaphore;
/// a release of 1 cannot satisfy it, but that permit is now partly what it
/// waits for: a later request for 1 must not take it (no overtaking a
/// waiting big request), and the big request gets both once the second
/// comes. Here the protection comes from the serve that stopped at the big
/// request, not from the request's own park.
#[test]
fn a_permit_released_to_a_waiting_big_request_is_kept_for_it() {
    with_watchdog(PATIENCE, || {
        let semaphore = Arc::new(Semaphore::new(0));
        let (send_tid, tid) = std::sync::mpsc::channel();
        let big = {
            let semaphore = Arc::clone(&semaphore);
            std::thread::spawn(move || {
                send_tid.send(kernel_thread_id()).unwrap();
                semaphore.acquire_many(2).count()
            })
        };
        wait_until_asleep(tid.recv().unwrap());
        semaphore.release(1).unwrap();
        assert!(
            semaphore.try_acquire().is_none(),
            "a later request for 1 took the permit a queued request for 2 waits for"
        );
        assert_eq!(semaphore.available_permits(), 1);
        semaphore.release(1).unwrap();
        assert_eq!(join(big), 2);
        assert_eq!(semaphore.available_permits(), 2);
    });
}

/// A request for 1 and then one for 2 are asleep in the queue; a release of
/// 2 serves the first and stops at the second with 1 permit left: the
/// first keeps its permit, the one left is kept for the second, and both
/// finish once the first gives its permit back.
#[test]
fn a_serve_that_stops_at_a_big_request_keeps_what_is_left_for_it() {
    with_watchdog(PATIENCE, || {
        let semaphore = Arc::new(Semaphore::new(0));
        let (send_tid, tid) = std::sync::mpsc::channel();
        let (send_go, go) = std::sync::mpsc::channel::<()>();
        let small = {
            let (semaphore, send_tid) = (Arc::clone(&semaphore), send_tid.clone());
            std::thread::spawn(move || {
                send_tid.send(kernel_thread_id()).unwrap();
                let permit = semaphore.acquire();
                // Hold it until the main thread has looked.
                go.recv().unwrap();
                permit.count()
            })
        };
        wait_until_asleep(tid.recv().unwrap());
        let big = {
            let semaphore = Arc::clone(&semaphore);
            std::thread::spawn(move || {
                send_tid.send(kernel_thread_id()).unwrap();
                semaphore.acquire_many(2).count()
            })
        };
        wait_until_asleep(tid.recv().unwrap());
        semaphore.release(2).unwrap();
        assert!(
            semaphore.try_acquire().is_none(),
            "a later request for 1 took the permit a queued request for 2 waits for"
        );
        send_go.send(()).unwrap();
        assert_eq!(join(small), 1);
        assert_eq!(join(big), 2);
        assert_eq!(semaphore.available_permits(), 2);
    });
}
