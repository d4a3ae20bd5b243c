//! shuttle: `verisync::Barrier` with 3–5 parties over several rounds.
//!
//! - With `wait` only: every round trips for all parties, exactly one of
//!   them is the leader, and nobody leaves a round before all arrived.
//! - With `wait_timeout` mixed in (the model lets a deadline pass at a
//!   random moment): each round is all or nothing — every party passes it
//!   (with one leader) or every party gets `BrokenBarrier` — and once a
//!   round breaks, every later one fails too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shuttle::sync::Arc;
use shuttle::thread;
use verisync::Barrier;
use verisync_shuttle_tests::{check, random_below};

/// Rounds each party goes through.
const ROUNDS: usize = 3;

/// A timeout long in name only: the model has no clock, and a timed wait
/// ends after a random number of scheduling rounds.
const TIMEOUT: Duration = Duration::from_secs(1);

/// How one party's `wait` of one round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Leader,
    Follower,
    Broken,
}

/// Runs `parties` threads through `ROUNDS` rounds; returns each party's
/// outcomes. `arrived[round]` counts the parties that reached the round
/// (plain std atomics: bookkeeping outside the model).
fn run_rounds(parties: usize, timed: bool) -> Vec<Vec<Outcome>> {
    let barrier = Arc::new(Barrier::new(parties));
    let arrived: Arc<Vec<AtomicUsize>> =
        Arc::new((0..ROUNDS).map(|_| AtomicUsize::new(0)).collect());
    let threads: Vec<_> = (0..parties)
        .map(|_| {
            let (barrier, arrived) = (Arc::clone(&barrier), Arc::clone(&arrived));
            thread::spawn(move || {
                (0..ROUNDS)
                    .map(|round| {
                        arrived[round].fetch_add(1, Ordering::Relaxed);
                        let result = if timed && random_below(2) == 0 {
                            barrier.wait_timeout(TIMEOUT)
                        } else {
                            barrier.wait()
                        };
                        match result {
                            Ok(passed) => {
                                assert_eq!(
                                    arrived[round].load(Ordering::Relaxed),
                                    parties,
                                    "a party left round {round} before all arrived"
                                );
                                if passed.is_leader() {
                                    Outcome::Leader
                                } else {
                                    Outcome::Follower
                                }
                            }
                            Err(_) => Outcome::Broken,
                        }
                    })
                    .collect()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|party| party.join().unwrap())
        .collect()
}

/// Round by round: all passed with exactly one leader, or all broken; and
/// no round passes after a broken one.
fn assert_rounds_all_or_nothing(outcomes: &[Vec<Outcome>]) {
    let mut broken_before = false;
    for round in 0..ROUNDS {
        let of_round: Vec<Outcome> = outcomes.iter().map(|party| party[round]).collect();
        let broken = of_round.iter().filter(|&&o| o == Outcome::Broken).count();
        let leaders = of_round.iter().filter(|&&o| o == Outcome::Leader).count();
        if broken == 0 {
            assert!(!broken_before, "round {round} passed after a broken round");
            assert_eq!(leaders, 1, "round {round}: {of_round:?}");
        } else {
            assert_eq!(
                broken,
                of_round.len(),
                "round {round} half broken: {of_round:?}"
            );
            broken_before = true;
        }
    }
}

#[test]
fn every_round_trips_with_one_leader() {
    check(|| {
        let parties = 3 + random_below(3);
        let outcomes = run_rounds(parties, false);
        assert!(outcomes.iter().flatten().all(|&o| o != Outcome::Broken));
        assert_rounds_all_or_nothing(&outcomes);
    });
}

#[test]
fn timed_rounds_are_all_or_nothing() {
    check(|| {
        let parties = 3 + random_below(2);
        assert_rounds_all_or_nothing(&run_rounds(parties, true));
    });
}
