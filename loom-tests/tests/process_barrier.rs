//! The process-shared barrier (`raw/process_barrier.rs`) under the loom
//! model of the futex seam: threads play processes 1..=3, each with its
//! own record; a round trips exactly once per generation with one leader,
//! no waiter is left asleep, a timeout racing the last arrival gives every
//! party the same answer, and a party that dies while waiting (the seam's
//! death step) breaks the barrier for the others.

use std::time::Instant;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::__loom::process_barrier::{BarrierState, Broken, Holding, RawProcessBarrier};
use verisync::__loom::process_lock::{RawProcessLock, Word};
use verisync_loom_tests::processes::{Processes, StateLockOf};

/// A barrier's shared state and the processes.
struct World {
    lock: Word,
    state: BarrierState,
    inside: [Holding; 3],
    processes: Processes,
    parties: u32,
}

impl World {
    fn new(parties: u32) -> Arc<Self> {
        Arc::new(Self {
            lock: Word::new(0),
            state: BarrierState::new(),
            inside: std::array::from_fn(|_| Holding::new()),
            processes: Processes::new(),
            parties,
        })
    }

    fn barrier(&self) -> RawProcessBarrier<'_> {
        RawProcessBarrier::new(&self.state, &self.inside, self.parties)
    }

    /// Process `me`'s view of the state lock.
    fn process(&self, me: u32) -> StateLockOf<'_> {
        StateLockOf {
            me,
            word: &self.lock,
            processes: &self.processes,
        }
    }

    fn wait(&self, me: u32, deadline: Option<Instant>) -> Result<bool, Broken> {
        self.barrier().wait(deadline, &self.process(me))
    }
}

#[test]
fn two_processes_trip_once_per_generation_with_one_leader_each() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new(2);
        let leaders = Arc::new(AtomicUsize::new(0));
        let other = {
            let (world, leaders) = (Arc::clone(&world), Arc::clone(&leaders));
            thread::spawn(move || {
                for _ in 0..2 {
                    let leader = world.wait(2, None).expect("nobody breaks it");
                    leaders.fetch_add(usize::from(leader), Ordering::Relaxed);
                }
            })
        };
        for _ in 0..2 {
            let leader = world.wait(1, None).expect("nobody breaks it");
            leaders.fetch_add(usize::from(leader), Ordering::Relaxed);
        }
        other.join().unwrap();
        assert_eq!(leaders.load(Ordering::Relaxed), 2, "one leader per round");
        assert!(!world.barrier().is_broken(&world.process(1)));
        assert_eq!(world.barrier().n_waiting(&world.process(1)), 0);
    });
}

/// How often the timed party's round passed and broke, over every
/// execution loom explores (outside the model: plain atomics).
static OUTCOMES: [std::sync::atomic::AtomicUsize; 2] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

#[test]
fn a_timeout_racing_the_last_arrival_gives_both_parties_the_same_answer() {
    loom::model(|| {
        let world = World::new(2);
        let timed = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.wait(1, Some(Instant::now())))
        };
        let patient = world.wait(2, None);
        let timed = timed.join().unwrap();
        // Either the round tripped (both pass, one leads) or the timeout
        // broke it first (both fail): never one of each, nobody asleep.
        match (timed, patient) {
            (Ok(a), Ok(b)) => assert!(a != b, "exactly one leader"),
            (Err(Broken), Err(Broken)) => assert!(world.barrier().is_broken(&world.process(2))),
            outcome => panic!("the parties disagree: {outcome:?}"),
        }
        OUTCOMES[usize::from(patient.is_ok())].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let [broke, passed] = OUTCOMES
        .each_ref()
        .map(|outcome| outcome.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        broke > 0 && passed > 0,
        "the round broke {broke} times and passed {passed} times: both must be explored"
    );
}

#[test]
fn a_party_that_dies_while_waiting_breaks_the_barrier_for_the_others() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new(3);
        let doomed = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                // Process 1 arrives as `wait` does, then dies without
                // leaving (killed asleep), its record still counting it.
                let arrived = world.barrier().arrive_for_the_model(&world.process(1));
                assert!(arrived);
                world.processes.die(1);
            })
        };
        // Process 2 waits untimed: only the death can end its wait.
        let told = world.wait(2, None);
        doomed.join().unwrap();
        assert_eq!(told, Err(Broken), "a round a party died in passed");
        assert!(world.barrier().is_broken(&world.process(2)));
        assert_eq!(world.barrier().n_waiting(&world.process(2)), 0);
    });
}

#[test]
fn a_party_of_a_tripped_round_that_dies_before_leaving_breaks_nothing() {
    loom::model(|| {
        let world = World::new(2);
        let doomed = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                // Process 1 arrives and the round trips while it "waits";
                // it dies before leaving.
                assert!(world.barrier().arrive_for_the_model(&world.process(1)));
                world.processes.die(1);
            })
        };
        let leader = world.wait(2, None);
        doomed.join().unwrap();
        // The round tripped (whoever arrived last led it) unless process
        // 2 found process 1 dead before it arrived, which breaks it.
        match leader {
            Ok(_) => {
                // The drain completes without the dead party: the next
                // arrival is not kept waiting, and nothing is broken.
                assert!(!world.barrier().is_broken(&world.process(2)));
                assert_eq!(world.barrier().n_waiting(&world.process(2)), 0);
            }
            Err(Broken) => assert!(world.barrier().is_broken(&world.process(2))),
        }
    });
}

/// Process 1 aborts the barrier and dies holding the state lock after its
/// whole transition (`phase = BROKEN`, the wake word bumped, so `SLEEPERS`
/// cleared) but before it unlocks and wakes, and nobody polls
/// (`die_unnoticed`). Process 3 then takes the state lock from the dead
/// holder (`is_broken`): process 2, asleep in `wait`, must be woken and
/// fail with `Broken` (review 18: `lock_state`'s wake on `OwnerDied` is
/// what wakes it; the barrier's own repair bump finds no `SLEEPERS`).
#[test]
fn a_locker_recovering_a_dead_aborters_state_lock_wakes_the_waiting_party() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new(2);
        let waiter = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert_eq!(world.wait(2, None), Err(Broken)))
        };
        let acquired = RawProcessLock::new(&world.lock).lock(1, &world.processes, None);
        assert!(acquired.is_some());
        let [wake, phase, _, _] = world.state.words();
        phase.store(3, Ordering::Relaxed);
        wake.store(
            wake.load(Ordering::Relaxed).wrapping_add(1) & !(1 << 31),
            Ordering::Relaxed,
        );
        world.processes.die_unnoticed(1);
        assert!(world.barrier().is_broken(&world.process(3)));
        waiter.join().unwrap();
    });
}
