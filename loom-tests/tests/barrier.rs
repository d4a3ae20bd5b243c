//! loom: `verisync::Barrier` releases a full round with exactly one leader,
//! is reusable across generations, and a timeout or abort breaks it for
//! every party consistently.

use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::Barrier;

#[test]
fn one_leader_per_round_across_two_generations() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let barrier = Arc::new(Barrier::new(2));
        let leaders = Arc::new(AtomicUsize::new(0));
        let other = {
            let (barrier, leaders) = (Arc::clone(&barrier), Arc::clone(&leaders));
            thread::spawn(move || {
                for _ in 0..2 {
                    if barrier.wait().unwrap().is_leader() {
                        leaders.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        for _ in 0..2 {
            if barrier.wait().unwrap().is_leader() {
                leaders.fetch_add(1, Ordering::Relaxed);
            }
        }
        other.join().unwrap();
        assert_eq!(leaders.load(Ordering::Relaxed), 2, "one leader per round");
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.is_broken());
    });
}

/// A timed wait racing with the other party's arrival: both pass, or the
/// barrier broke and both fail. Never one passing alone.
#[test]
fn a_timeout_breaks_the_round_for_everyone_or_for_no_one() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let barrier = Arc::new(Barrier::new(2));
        let timed = {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || barrier.wait_timeout(Duration::from_secs(1)).is_ok())
        };
        let patient = barrier.wait().is_ok();
        let timed = timed.join().unwrap();
        assert_eq!(timed, patient, "one party passed a round the other did not");
        assert_eq!(barrier.is_broken(), !patient);
    });
}

#[test]
fn abort_releases_a_waiter_with_an_error() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new(2));
        let waiter = {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || barrier.wait().is_err())
        };
        barrier.abort();
        assert!(waiter.join().unwrap(), "a wait passed a broken barrier");
        assert!(barrier.is_broken());
        barrier.reset();
        assert!(!barrier.is_broken());
    });
}

/// `reset` while a party waits: that party fails with `BrokenBarrier`, and
/// the barrier is whole again for the next round.
#[test]
fn reset_fails_the_current_waiter_and_reopens_the_barrier() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new(2));
        let waiter = {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || barrier.wait().is_err())
        };
        barrier.reset();
        // The waiter either arrived before the reset (and fails) or after
        // it (and is still waiting for a partner): complete its round.
        let result = barrier.wait_timeout(Duration::from_secs(1));
        let waiter_failed = waiter.join().unwrap();
        assert_eq!(
            result.is_ok(),
            !waiter_failed,
            "the two parties disagree on the round"
        );
        if waiter_failed {
            // Broken by our timeout (nobody to meet), never by the reset.
            assert!(barrier.is_broken());
        }
    });
}

/// Each party calls `after_the_trip` on the barrier if it led the round,
/// the moment its `wait` returns; the other party may not have left `wait`
/// yet. A tripped round is complete (SPEC), so both parties pass.
fn a_tripped_round_survives(after_the_trip: fn(&Barrier)) {
    loom::model(move || {
        let barrier = Arc::new(Barrier::new(2));
        let party = move |barrier: &Barrier| {
            let result = barrier.wait();
            if result.is_ok_and(|result| result.is_leader()) {
                after_the_trip(barrier);
            }
            result.is_ok()
        };
        let other = {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || party(&barrier))
        };
        let mine = party(&barrier);
        let theirs = other.join().unwrap();
        assert!(
            mine && theirs,
            "a round that had tripped was broken (this party passed: {mine}, the other: {theirs})"
        );
    });
}

#[test]
fn reset_right_after_a_round_trips_leaves_that_round_whole() {
    a_tripped_round_survives(|barrier| {
        barrier.reset();
    });
}

#[test]
fn abort_right_after_a_round_trips_leaves_that_round_whole() {
    a_tripped_round_survives(|barrier| {
        barrier.abort();
    });
}
