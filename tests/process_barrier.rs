//! `process::Barrier` across real processes (Linux): rounds over many
//! generations, a party SIGKILLed while waiting breaking it for the
//! others, reset after a break, timeouts, garbage in its shared state, and
//! a model-based property test against the thread `Barrier`.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::arena::{arena_base, offset_of, u32_at, SLOTS, WORD_AT};
use common::{wait_for, with_watchdog, PATIENCE};
use proptest::prelude::*;
use verisync::process::{self, Array, Barrier, BrokenBarrier, Lock};

/// How long the others may take to notice a dead party (production looks
/// every 10 ms; generous for a loaded machine).
const NOTICE_DEATH: Duration = Duration::from_secs(5);

/// The barrier object's layout (`src/process_shared/barrier.rs`).
const PHASE_AT: usize = 24;
const COUNT_AT: usize = 28;
const INSIDE_AT: usize = 64;

const ROUNDS: u32 = 200;

/// Party `me` of 3: before each round's wait it records the round in its
/// cell; after it, every party must have reached the round (nobody leaves
/// a round before all arrived). Returns how many rounds it led.
fn pass_rounds((barrier, reached, me): (Barrier, Array<u32>, usize)) -> u32 {
    let mut led = 0;
    for round in 1..=ROUNDS {
        reached.store(me, round);
        let result = if round % 2 == 0 {
            barrier.wait()
        } else {
            barrier.wait_timeout(PATIENCE)
        };
        let result = result.expect("nobody breaks this barrier");
        for party in 0..3 {
            assert!(
                reached.load(party) >= round,
                "party {me} left round {round} before party {party} arrived"
            );
        }
        led += u32::from(result.is_leader());
    }
    led
}

#[test]
fn three_processes_pass_many_generations_with_one_leader_each() {
    with_watchdog(PATIENCE * 3, || {
        let barrier = Barrier::new(3).unwrap();
        let reached = Array::new(3, 0u32).unwrap();
        let parties: Vec<_> = (0..3)
            .map(|me| process::spawn(pass_rounds, (barrier.clone(), reached.clone(), me)).unwrap())
            .collect();
        let leaders: u32 = parties.into_iter().map(|party| party.join().unwrap()).sum();
        assert_eq!(leaders, ROUNDS, "exactly one leader per round");
        assert!(!barrier.is_broken());
        assert_eq!(barrier.n_waiting(), 0);
    });
}

/// Waits on the barrier (untimed) and reports what it got.
fn wait_and_report(barrier: Barrier) -> Result<bool, String> {
    barrier
        .wait()
        .map(|result| result.is_leader())
        .map_err(|broken| broken.to_string())
}

/// Waits forever (killed while waiting).
fn wait_until_killed(barrier: Barrier) {
    let _ = barrier.wait();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn a_party_killed_while_waiting_breaks_the_barrier_for_the_others() {
    with_watchdog(PATIENCE * 2, || {
        let barrier = Barrier::new(3).unwrap();
        let doomed = process::spawn(wait_until_killed, barrier.clone()).unwrap();
        let survivor = process::spawn(wait_and_report, barrier.clone()).unwrap();
        wait_for("both children to wait", || barrier.n_waiting() == 2);
        doomed.kill();
        let killed = Instant::now();
        // The survivor, asleep in an untimed wait, is told.
        let told = survivor.join().unwrap();
        assert!(told.is_err(), "the survivor passed a round a party died in");
        assert!(
            killed.elapsed() < NOTICE_DEATH,
            "the survivor noticed after {:?}",
            killed.elapsed()
        );
        assert!(barrier.is_broken());
        assert_eq!(barrier.wait(), Err(BrokenBarrier), "broken for later waits");
        assert_eq!(barrier.n_waiting(), 0);
        assert!(doomed.join().is_err());
        // Reset after the break: a whole round passes again.
        barrier.reset();
        assert!(!barrier.is_broken());
        let leaders = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..3)
                .map(|_| scope.spawn(|| barrier.wait().unwrap().is_leader()))
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().unwrap())
                .filter(|&leader| leader)
                .count()
        });
        assert_eq!(leaders, 1);
    });
}

#[test]
fn a_killed_waiter_is_noticed_by_is_broken_without_any_other_waiter() {
    with_watchdog(PATIENCE * 2, || {
        let barrier = Barrier::new(2).unwrap();
        let doomed = process::spawn(wait_until_killed, barrier.clone()).unwrap();
        wait_for("the child to wait", || barrier.n_waiting() == 1);
        doomed.kill();
        wait_for("the barrier to break", || barrier.is_broken());
        assert_eq!(barrier.n_waiting(), 0);
        assert!(doomed.join().is_err());
    });
}

/// Waits `millis` at most; what it got and how long it took.
fn wait_for_millis((barrier, millis): (Barrier, u64)) -> (bool, u128) {
    let started = Instant::now();
    let passed = barrier.wait_timeout(Duration::from_millis(millis)).is_ok();
    (passed, started.elapsed().as_millis())
}

#[test]
fn a_timed_wait_breaks_the_barrier_for_every_process() {
    with_watchdog(PATIENCE, || {
        let barrier = Barrier::new(2).unwrap();
        let child = process::spawn(wait_for_millis, (barrier.clone(), 50)).unwrap();
        let (passed, took) = child.join().unwrap();
        assert!(!passed);
        assert!(took >= 50, "timed out after {took} ms");
        assert!(barrier.is_broken());
        assert_eq!(
            barrier.wait_timeout(Duration::from_secs(5)),
            Err(BrokenBarrier)
        );
        barrier.reset();
        // A party that dies before it arrives cannot be noticed: the timed
        // form ends at its deadline (and breaks the barrier).
        let started = Instant::now();
        assert!(barrier.wait_timeout(Duration::from_millis(30)).is_err());
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(barrier.is_broken());
    });
}

#[test]
fn abort_from_another_process_wakes_the_waiters() {
    with_watchdog(PATIENCE, || {
        let barrier = Barrier::new(3).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| process::spawn(wait_and_report, barrier.clone()).unwrap())
            .collect();
        wait_for("both children to wait", || barrier.n_waiting() == 2);
        barrier.abort();
        for waiter in waiters {
            assert!(waiter.join().unwrap().is_err());
        }
        assert!(barrier.is_broken());
    });
}

#[test]
#[should_panic(expected = "no group of parties can pass")]
fn a_barrier_for_no_party_panics() {
    let _ = Barrier::new(0);
}

#[test]
fn garbage_barrier_handles_are_errors() {
    let barrier = Barrier::new(2).unwrap();
    let json = serde_json::to_value(&barrier).unwrap();
    assert!(serde_json::from_value::<Barrier>(json.clone()).is_ok());
    for (field, garbage) in [("recorded", 0u64), ("recorded", 3), ("kind", 1), ("tag", 5)] {
        let mut forged = json.clone();
        forged[field] = garbage.into();
        let error = serde_json::from_value::<Barrier>(forged).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not a valid process-shared handle"),
            "{field} = {garbage}: {error}"
        );
    }
    assert!(serde_json::from_value::<Lock>(json).is_err());
}

#[test]
fn garbage_in_the_shared_state_ends_every_call_within_its_bound() {
    with_watchdog(PATIENCE * 2, || {
        let barrier = Barrier::new(2).unwrap();
        let lock = Lock::new().unwrap();
        let (base, at) = (arena_base(&lock), offset_of(&barrier));
        // Out of bounds: repaired as broken, never trusted.
        u32_at(base, at + PHASE_AT).store(77, Ordering::SeqCst);
        assert!(barrier.is_broken());
        barrier.reset();
        u32_at(base, at + COUNT_AT).store(u32::MAX, Ordering::SeqCst);
        assert!(barrier.is_broken());
        assert_eq!(barrier.n_waiting(), 0);
        barrier.reset();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let word = (seed % 8) as usize;
            let place = match word {
                0..=4 => at + WORD_AT + word * 4,
                _ => at + INSIDE_AT + (((seed >> 8) as usize) % (SLOTS * 2)) * 4,
            };
            u32_at(base, place).store((seed >> 32) as u32, Ordering::SeqCst);
            let started = Instant::now();
            let _ = barrier.wait_timeout(Duration::from_millis(20));
            let _ = (barrier.is_broken(), barrier.n_waiting());
            assert!(
                started.elapsed() < NOTICE_DEATH,
                "round {round}: a timed wait overran"
            );
            assert!(barrier.n_waiting() <= 1, "round {round}");
        }
        // Once the scribbling stops, a reset heals it.
        for holding in 0..SLOTS * 2 {
            u32_at(base, at + INSIDE_AT + holding * 4).store(0, Ordering::SeqCst);
        }
        u32_at(base, at + WORD_AT).store(0, Ordering::SeqCst);
        barrier.reset();
        let passed = std::thread::scope(|scope| {
            let other = scope.spawn(|| barrier.wait_timeout(PATIENCE).is_ok());
            barrier.wait_timeout(PATIENCE).is_ok() && other.join().unwrap()
        });
        assert!(passed);
    });
}

/// One step of the model test: `arrivals` threads (at most `parties`) wait
/// at once with a timeout, or a call.
#[derive(Clone, Debug)]
enum Op {
    Round {
        arrivals: usize,
        timeout_millis: u64,
    },
    Abort,
    Reset,
}

/// What one step showed: how many passed and led, then `is_broken` and
/// `n_waiting`.
type Seen = (usize, usize, bool, usize);

/// Runs `arrivals` threads through `wait_timeout` at once.
fn round<R: Send>(arrivals: usize, wait: impl Fn() -> Option<R> + Sync) -> Vec<Option<R>> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..arrivals).map(|_| scope.spawn(&wait)).collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

fn tally(results: &[Option<bool>]) -> (usize, usize) {
    let passed = results.iter().filter(|r| r.is_some()).count();
    let led = results.iter().filter(|r| **r == Some(true)).count();
    (passed, led)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A random sequence of rounds (each with every arrival at once, so
    /// the outcome is determined), aborts and resets gives the same
    /// results as the thread `Barrier`.
    #[test]
    fn behaves_as_the_thread_barrier(
        parties in 1usize..=3,
        ops in proptest::collection::vec(
            prop_oneof![
                4 => (1usize..=3, 1u64..=20)
                    .prop_map(|(arrivals, timeout_millis)| Op::Round { arrivals, timeout_millis }),
                1 => Just(Op::Abort),
                1 => Just(Op::Reset),
            ],
            1..8,
        ),
    ) {
        let seen = with_watchdog(PATIENCE * 2, move || {
            let shared = Barrier::new(parties).unwrap();
            let model = verisync::Barrier::new(parties);
            let mut seen: Vec<(Seen, Seen)> = Vec::new();
            for op in ops {
                let (ours, theirs) = match op {
                    Op::Round { arrivals, timeout_millis } => {
                        let arrivals = arrivals.min(parties);
                        // A full round gets the patience (it trips at once);
                        // a short one times out.
                        let timeout = if arrivals == parties {
                            PATIENCE
                        } else {
                            Duration::from_millis(timeout_millis)
                        };
                        let ours = tally(&round(arrivals, || {
                            shared.wait_timeout(timeout).ok().map(|r| r.is_leader())
                        }));
                        let theirs = tally(&round(arrivals, || {
                            model.wait_timeout(timeout).ok().map(|r| r.is_leader())
                        }));
                        (ours, theirs)
                    }
                    Op::Abort => {
                        shared.abort();
                        model.abort();
                        ((0, 0), (0, 0))
                    }
                    Op::Reset => {
                        shared.reset();
                        model.reset();
                        ((0, 0), (0, 0))
                    }
                };
                seen.push((
                    (ours.0, ours.1, shared.is_broken(), shared.n_waiting()),
                    (theirs.0, theirs.1, model.is_broken(), model.n_waiting()),
                ));
            }
            seen
        });
        for (step, (ours, theirs)) in seen.into_iter().enumerate() {
            prop_assert_eq!(ours, theirs, "step {}", step);
        }
    }
}
