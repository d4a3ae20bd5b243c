//! Property tests for `Barrier`.
//!
//! - Model-based: random single-thread operations against a model of
//!   "parties, broken": with one party every wait leads; with more, a lone
//!   timed wait times out and breaks the barrier; abort breaks, reset heals.
//! - Concurrent: 2–4 threads pass random numbers of generations with random
//!   pauses and wait flavours; every round has exactly one leader and no
//!   thread leaves a round before every thread arrived in it.
//! - Deterministic concurrent checks of abort, reset and timeout with
//!   threads really waiting (observed through `n_waiting`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use verisync::{Barrier, BarrierWaitResult, BrokenBarrier};

use common::{
    concurrent_config, join, join_scoped, wait_for, with_watchdog, work, CASE_PATIENCE, PATIENCE,
};

#[derive(Clone, Debug)]
enum Op {
    /// `wait()` (issued only when it cannot block: one party, or broken).
    Wait,
    /// `wait_timeout(Duration::ZERO)`.
    WaitZero,
    /// `wait_timeout` of this many microseconds (≤ 1 ms).
    WaitShort(u64),
    /// `wait_timeout(Duration::MAX)` (issued only when it cannot block).
    WaitForever,
    /// `wait_until` a deadline already past.
    WaitUntilPast,
    Abort,
    Reset,
    IsBroken,
    NWaiting,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Wait),
        2 => Just(Op::WaitZero),
        1 => (1..=1_000u64).prop_map(Op::WaitShort),
        2 => Just(Op::WaitForever),
        1 => Just(Op::WaitUntilPast),
        2 => Just(Op::Abort),
        3 => Just(Op::Reset),
        1 => Just(Op::IsBroken),
        1 => Just(Op::NWaiting),
    ]
}

/// What one lone thread's wait must return.
fn expected_wait(parties: usize, broken: &mut bool) -> Result<BarrierWaitResult, BrokenBarrier> {
    if *broken {
        Err(BrokenBarrier)
    } else if parties == 1 {
        // The lone arrival completes the round: it is the leader.
        Ok(leader())
    } else {
        // Nobody else comes: a bounded wait times out and breaks it.
        *broken = true;
        Err(BrokenBarrier)
    }
}

fn leader() -> BarrierWaitResult {
    Barrier::new(1)
        .wait()
        .expect("a one-party barrier never breaks by itself")
}

fn run_model(parties: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let barrier = Barrier::new(parties);
    let mut broken = false;
    prop_assert_eq!(barrier.parties(), parties);
    for (step, op) in ops.into_iter().enumerate() {
        let cannot_block = parties == 1 || broken;
        match op {
            Op::Wait if cannot_block => {
                let result = barrier.wait();
                prop_assert_eq!(result, expected_wait(parties, &mut broken), "step {}", step);
                if let Ok(result) = result {
                    prop_assert!(result.is_leader());
                }
            }
            Op::WaitForever if cannot_block => {
                let result = barrier.wait_timeout(Duration::MAX);
                prop_assert_eq!(result, expected_wait(parties, &mut broken), "step {}", step);
            }
            Op::Wait | Op::WaitForever => {}
            Op::WaitZero => {
                let result = barrier.wait_timeout(Duration::ZERO);
                prop_assert_eq!(result, expected_wait(parties, &mut broken), "step {}", step);
            }
            Op::WaitShort(micros) => {
                let result = barrier.wait_timeout(Duration::from_micros(micros));
                prop_assert_eq!(result, expected_wait(parties, &mut broken), "step {}", step);
            }
            Op::WaitUntilPast => {
                let result = barrier.wait_until(Instant::now() - Duration::from_millis(1));
                prop_assert_eq!(result, expected_wait(parties, &mut broken), "step {}", step);
            }
            Op::Abort => {
                barrier.abort();
                broken = true;
            }
            Op::Reset => {
                barrier.reset();
                broken = false;
            }
            Op::IsBroken => prop_assert_eq!(barrier.is_broken(), broken),
            Op::NWaiting => prop_assert_eq!(barrier.n_waiting(), 0),
        }
        prop_assert_eq!(barrier.is_broken(), broken, "step {}: is_broken", step);
        prop_assert_eq!(
            barrier.n_waiting(),
            0,
            "step {}: nobody is left waiting",
            step
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn barrier_matches_single_thread_model(
        parties in 1..=4usize,
        ops in prop::collection::vec(op_strategy(), 1..30),
    ) {
        run_model(parties, ops)?;
    }
}

/// How a thread waits at the barrier in one round.
#[derive(Clone, Copy, Debug)]
enum WaitKind {
    Wait,
    /// A timeout long enough never to expire in a healthy run.
    Timeout,
    Forever,
    Until,
}

fn wait_kind_strategy() -> impl Strategy<Value = WaitKind> {
    prop_oneof![
        Just(WaitKind::Wait),
        Just(WaitKind::Timeout),
        Just(WaitKind::Forever),
        Just(WaitKind::Until),
    ]
}

impl WaitKind {
    fn wait(self, barrier: &Barrier) -> Result<BarrierWaitResult, BrokenBarrier> {
        match self {
            WaitKind::Wait => barrier.wait(),
            WaitKind::Timeout => barrier.wait_timeout(PATIENCE),
            WaitKind::Forever => barrier.wait_timeout(Duration::MAX),
            WaitKind::Until => barrier.wait_until(Instant::now() + PATIENCE),
        }
    }
}

/// Each thread's plan: per round, how it waits and how long it dawdles first.
type Plan = Vec<(WaitKind, u8)>;

fn run_generations(plans: Vec<Plan>, rounds: usize) {
    let parties = plans.len();
    let barrier = Barrier::new(parties);
    let arrived: Vec<AtomicUsize> = (0..rounds).map(|_| AtomicUsize::new(0)).collect();
    let leaders: Vec<AtomicUsize> = (0..rounds).map(|_| AtomicUsize::new(0)).collect();
    let passed: Vec<AtomicUsize> = (0..rounds).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|scope| {
        let threads: Vec<_> = plans
            .into_iter()
            .map(|plan| {
                let (barrier, arrived, leaders, passed) = (&barrier, &arrived, &leaders, &passed);
                scope.spawn(move || {
                    for round in 0..rounds {
                        let (kind, pause) = plan[round % plan.len()];
                        work(pause);
                        arrived[round].fetch_add(1, Ordering::SeqCst);
                        let result = kind.wait(barrier).unwrap_or_else(|broken| {
                            panic!("round {round}: {kind:?} failed: {broken}")
                        });
                        // Nobody leaves a round before everyone arrived in it.
                        assert_eq!(
                            arrived[round].load(Ordering::SeqCst),
                            parties,
                            "round {round}: left before every thread arrived"
                        );
                        if result.is_leader() {
                            leaders[round].fetch_add(1, Ordering::SeqCst);
                        }
                        passed[round].fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            join_scoped(thread);
        }
    });
    for round in 0..rounds {
        assert_eq!(
            leaders[round].load(Ordering::SeqCst),
            1,
            "round {round}: leaders"
        );
        assert_eq!(
            passed[round].load(Ordering::SeqCst),
            parties,
            "round {round}: passed"
        );
    }
    assert!(!barrier.is_broken());
    assert_eq!(barrier.n_waiting(), 0);
}

proptest! {
    #![proptest_config(concurrent_config())]

    #[test]
    fn every_generation_has_one_leader_and_everyone_passes(
        plans in prop::collection::vec(
            prop::collection::vec((wait_kind_strategy(), 0..40u8), 1..6),
            2..=4,
        ),
        rounds in 1..25usize,
    ) {
        with_watchdog(CASE_PATIENCE, move || run_generations(plans, rounds));
    }
}

/// Starts `count` threads waiting at `barrier` (with `Duration::MAX`
/// timeouts, which must not break it) and returns once all are waiting.
fn start_waiters(
    barrier: &Arc<Barrier>,
    count: usize,
) -> Vec<std::thread::JoinHandle<Result<BarrierWaitResult, BrokenBarrier>>> {
    let before = barrier.n_waiting();
    let threads = (0..count)
        .map(|_| {
            let barrier = Arc::clone(barrier);
            std::thread::spawn(move || barrier.wait_timeout(Duration::MAX))
        })
        .collect();
    wait_for("the threads to wait at the barrier", || {
        barrier.n_waiting() == before + count
    });
    threads
}

#[test]
fn abort_fails_current_and_later_waits_until_reset() {
    with_watchdog(PATIENCE, || {
        let barrier = Arc::new(Barrier::new(3));
        let waiters = start_waiters(&barrier, 2);
        barrier.abort();
        for waiter in waiters {
            assert_eq!(join(waiter), Err(BrokenBarrier));
        }
        assert!(barrier.is_broken());
        assert_eq!(barrier.n_waiting(), 0);
        assert_eq!(
            barrier.wait(),
            Err(BrokenBarrier),
            "a later wait fails at once"
        );
        barrier.reset();
        assert!(!barrier.is_broken());
        // A full round works again.
        let waiters = start_waiters(&barrier, 2);
        assert!(barrier.wait().unwrap().is_leader());
        for waiter in waiters {
            assert!(!join(waiter).unwrap().is_leader());
        }
    });
}

#[test]
fn reset_with_waiters_fails_them_and_leaves_the_barrier_usable() {
    with_watchdog(PATIENCE, || {
        let barrier = Arc::new(Barrier::new(3));
        let waiters = start_waiters(&barrier, 2);
        barrier.reset();
        for waiter in waiters {
            assert_eq!(join(waiter), Err(BrokenBarrier));
        }
        assert!(!barrier.is_broken(), "reset does not leave it broken");
        wait_for("the reset to drain", || barrier.n_waiting() == 0);
        let waiters = start_waiters(&barrier, 2);
        assert!(barrier.wait_timeout(PATIENCE).unwrap().is_leader());
        for waiter in waiters {
            assert!(join(waiter).is_ok());
        }
    });
}

#[test]
fn a_timeout_breaks_the_barrier_for_everyone() {
    with_watchdog(PATIENCE, || {
        let barrier = Arc::new(Barrier::new(3));
        let waiters = start_waiters(&barrier, 1);
        let started = Instant::now();
        assert_eq!(
            barrier.wait_timeout(Duration::from_millis(5)),
            Err(BrokenBarrier)
        );
        assert!(started.elapsed() >= Duration::from_millis(5));
        for waiter in waiters {
            assert_eq!(join(waiter), Err(BrokenBarrier));
        }
        assert!(barrier.is_broken());
        assert_eq!(barrier.wait_timeout(PATIENCE), Err(BrokenBarrier));
    });
}

#[test]
fn zero_timeout_completes_a_round_that_only_lacks_this_thread() {
    with_watchdog(PATIENCE, || {
        let barrier = Arc::new(Barrier::new(2));
        let waiters = start_waiters(&barrier, 1);
        // Trying once is enough when this arrival completes the round.
        assert!(barrier.wait_timeout(Duration::ZERO).unwrap().is_leader());
        for waiter in waiters {
            assert!(!join(waiter).unwrap().is_leader());
        }
        assert!(!barrier.is_broken());
    });
}

#[test]
fn broken_barrier_error_is_a_sentence() {
    let message = BrokenBarrier.to_string();
    assert!(
        message.contains("broken") && message.contains("reset"),
        "{message}"
    );
}

/// What the leader of a round does the moment its `wait` returns.
#[derive(Clone, Copy, Debug)]
enum RightAfterTheTrip {
    Reset,
    Abort,
}

/// Two parties: the other one is asleep in `wait` when this thread arrives,
/// trips the round as its leader and at once calls `reset` or `abort`,
/// before the other has woken and left `wait`. SPEC: a tripped round is
/// complete, so the other party still returns `Ok`.
fn a_tripped_round_survives(after_the_trip: RightAfterTheTrip) {
    with_watchdog(PATIENCE, move || {
        for run in 0..50 {
            let barrier = Arc::new(Barrier::new(2));
            let other = start_waiters(&barrier, 1);
            let mine = barrier.wait();
            assert!(
                mine.unwrap().is_leader(),
                "run {run}: the last arrival leads"
            );
            match after_the_trip {
                RightAfterTheTrip::Reset => barrier.reset(),
                RightAfterTheTrip::Abort => barrier.abort(),
            }
            for other in other {
                assert_eq!(
                    join(other).map(|result| result.is_leader()),
                    Ok(false),
                    "run {run}: {after_the_trip:?} right after the trip broke the round \
                     that had already tripped"
                );
            }
            // The call still acts on later waits.
            match after_the_trip {
                RightAfterTheTrip::Reset => {
                    assert!(!barrier.is_broken());
                    let other = start_waiters(&barrier, 1);
                    assert!(barrier.wait_timeout(PATIENCE).unwrap().is_leader());
                    assert!(join(other.into_iter().next().unwrap()).is_ok());
                }
                RightAfterTheTrip::Abort => {
                    assert!(barrier.is_broken());
                    assert_eq!(barrier.wait(), Err(BrokenBarrier));
                }
            }
        }
    });
}

#[test]
fn reset_right_after_a_round_trips_leaves_that_round_whole() {
    a_tripped_round_survives(RightAfterTheTrip::Reset);
}

#[test]
fn abort_right_after_a_round_trips_leaves_that_round_whole() {
    a_tripped_round_survives(RightAfterTheTrip::Abort);
}
