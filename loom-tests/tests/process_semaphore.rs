//! The process-shared semaphore (`raw/process_semaphore.rs`) under the loom
//! model of the futex seam: threads play processes 1..=3, each with its
//! own holding, and a process may die holding permits (the seam's death
//! step) or in the middle of a transition (the state it leaves is set up
//! directly, one model per cut point).

use std::time::Instant;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::__loom::process_lock::{RawProcessLock, Wait, Word};
use verisync::__loom::process_semaphore::{Counts, Holding, RawProcessSemaphore};
use verisync_loom_tests::processes::{Processes, StateLockOf};

/// A semaphore's shared state, the processes, and how many hold permits
/// now (checked against the permits).
struct World {
    lock: Word,
    counts: Counts,
    holdings: [Holding; 3],
    processes: Processes,
    limit: u32,
    /// `limit` is a bound (`RawProcessSemaphore::bounded`).
    bounded: bool,
    inside: AtomicUsize,
}

impl World {
    fn new(permits: u32, limit: u32) -> Arc<Self> {
        Arc::new(Self {
            lock: Word::new(0),
            counts: Counts::new(permits),
            holdings: std::array::from_fn(|_| Holding::new()),
            processes: Processes::new(),
            limit,
            bounded: false,
            inside: AtomicUsize::new(0),
        })
    }

    /// A bounded semaphore of `bound` permits.
    fn bounded(bound: u32) -> Arc<Self> {
        Arc::new(Self {
            lock: Word::new(0),
            counts: Counts::new(bound),
            holdings: std::array::from_fn(|_| Holding::new()),
            processes: Processes::new(),
            limit: bound,
            bounded: true,
            inside: AtomicUsize::new(0),
        })
    }

    fn semaphore(&self) -> RawProcessSemaphore<'_> {
        if self.bounded {
            RawProcessSemaphore::bounded(&self.counts, &self.holdings, self.limit)
        } else {
            RawProcessSemaphore::new(&self.counts, &self.holdings, self.limit)
        }
    }

    /// Process `me`'s view of the state lock.
    fn process(&self, me: u32) -> StateLockOf<'_> {
        StateLockOf {
            me,
            word: &self.lock,
            processes: &self.processes,
        }
    }

    fn acquire(&self, me: u32, count: u32, wait: Wait) -> bool {
        self.semaphore().acquire(count, wait, &self.process(me))
    }

    fn give_back(&self, me: u32, count: u32) {
        self.semaphore().give_back(count, &self.process(me));
    }

    /// Takes one permit of a one-permit semaphore (as `wait` says), checks
    /// it is alone inside, and gives it back; `false` if it timed out.
    fn use_the_only_permit(&self, me: u32, wait: Wait) -> bool {
        if !self.acquire(me, 1, wait) {
            return false;
        }
        assert_eq!(self.inside.fetch_add(1, Ordering::SeqCst), 0, "two inside");
        self.inside.fetch_sub(1, Ordering::SeqCst);
        self.give_back(me, 1);
        true
    }

    /// The permits available, after reclaiming the dead's (asked as
    /// process `me`).
    fn available(&self, me: u32) -> u32 {
        self.semaphore().available(&self.process(me))
    }
}

#[test]
fn two_processes_never_both_hold_the_only_permit_and_it_is_conserved() {
    loom::model(|| {
        let world = World::new(1, 1);
        let other = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert!(world.use_the_only_permit(2, Wait::Until(None))))
        };
        assert!(world.use_the_only_permit(1, Wait::Until(None)));
        other.join().unwrap();
        assert_eq!(world.available(1), 1);
        assert!(world.holdings.iter().all(|holding| holding.count() == 0));
    });
}

#[test]
fn no_lost_wake_up_with_two_waiters() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new(1, 1);
        assert!(world.acquire(1, 1, Wait::Until(None)));
        let waiters: Vec<_> = [2, 3]
            .into_iter()
            .map(|me| {
                let world = Arc::clone(&world);
                thread::spawn(move || assert!(world.use_the_only_permit(me, Wait::Until(None))))
            })
            .collect();
        world.give_back(1, 1);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(world.available(1), 1);
    });
}

#[test]
fn a_timeout_racing_a_give_back_loses_no_permit_and_no_wake_up() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new(1, 1);
        assert!(world.acquire(1, 1, Wait::Until(None)));
        let timed = {
            let world = Arc::clone(&world);
            // Any deadline: the model may let it pass at any point.
            thread::spawn(move || world.use_the_only_permit(2, Wait::Until(Some(Instant::now()))))
        };
        let patient = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert!(world.use_the_only_permit(3, Wait::Until(None))))
        };
        world.give_back(1, 1);
        timed.join().unwrap();
        // Had the timed waiter spent the only wake-up and then given up,
        // loom would report the patient one blocked forever.
        patient.join().unwrap();
        assert_eq!(world.available(1), 1);
    });
}

#[test]
fn a_holder_that_dies_holding_permits_gives_them_back() {
    loom::model(|| {
        let world = World::new(2, 2);
        let holder = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                assert!(world.acquire(1, 2, Wait::Until(None)));
                world.processes.die(1);
            })
        };
        // Process 2 takes both: before 1 (then gives them back), or after
        // 1 died holding them (reclaimed): never a hang.
        assert!(world.acquire(2, 2, Wait::Until(None)));
        world.give_back(2, 2);
        holder.join().unwrap();
        assert_eq!(world.available(2), 2, "permits conserved");
        assert!(world.holdings.iter().all(|holding| holding.count() == 0));
    });
}

#[test]
fn a_holder_that_dies_between_giving_back_and_waking_loses_no_waiter() {
    loom::model(|| {
        let world = World::new(1, 1);
        assert!(world.acquire(1, 1, Wait::Until(None)));
        let waiter = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert!(world.use_the_only_permit(2, Wait::Until(None))))
        };
        // Dies mid-give-back: the permit is back, but nobody was woken.
        world
            .semaphore()
            .give_back_without_waking(1, &world.process(1));
        world.processes.die(1);
        waiter.join().unwrap();
        assert_eq!(world.available(2), 1);
    });
}

/// What process 1 leaves when killed holding the state lock between the
/// writes of a transition (`raw/process_semaphore.rs`'s table), and the
/// permits the semaphore must end with.
#[derive(Clone, Copy)]
struct CutShort {
    what: &'static str,
    /// `[total, available]`, and process 1's holding's count.
    counts: [u32; 2],
    held: u32,
    expected: u32,
}

const CUT_SHORT: [CutShort; 4] = [
    // Two permits, acquiring one: its holding says 1, `A` still 2.
    CutShort {
        what: "acquire",
        counts: [2, 2],
        held: 1,
        expected: 2,
    },
    // Holding one of two, giving it back: its holding says 0, `A` still 1.
    CutShort {
        what: "give back",
        counts: [2, 1],
        held: 0,
        expected: 2,
    },
    // Two permits, releasing one: `T` says 3, `A` still 2.
    CutShort {
        what: "release",
        counts: [3, 2],
        held: 0,
        expected: 3,
    },
    // Holding one of two, forgetting it: `T` says 1, its holding still 1.
    CutShort {
        what: "forget",
        counts: [1, 1],
        held: 1,
        expected: 1,
    },
];

#[test]
fn a_process_killed_mid_transition_leaves_a_state_that_is_repaired() {
    for cut in CUT_SHORT {
        loom::model(move || {
            // A limit above every count, so an over-count would show.
            let world = World::new(0, 10);
            let [_, total, available] = world.counts.words();
            total.store(cut.counts[0], Ordering::Relaxed);
            available.store(cut.counts[1], Ordering::Relaxed);
            let [holder, count] = world.holdings[0].words();
            holder.store(1, Ordering::Relaxed);
            count.store(cut.held, Ordering::Relaxed);
            world.lock.store(1, Ordering::Relaxed); // held by process 1 ...
            world.processes.die(1); // ... which is dead
            let other = {
                let world = Arc::clone(&world);
                thread::spawn(move || {
                    assert!(world.acquire(3, cut.expected, Wait::Until(None)));
                    world.give_back(3, cut.expected);
                })
            };
            assert!(
                world.acquire(2, cut.expected, Wait::Until(None)),
                "{}",
                cut.what
            );
            world.give_back(2, cut.expected);
            other.join().unwrap();
            assert_eq!(world.available(2), cut.expected, "{}", cut.what);
        });
    }
}

/// A process dies holding the state lock mid-give-back (its holding
/// emptied; `A` not raised, no bump, no wake) while another waits for the
/// permit, asleep already or queuing only after the death. The waiter's
/// pre-sleep check looks at the state lock's holder too, so it takes the
/// lock (recovering and repairing it) instead of sleeping with nobody left
/// to wake it. (Before that check, loom found the deadlock: a waiter that
/// queued after the death step slept forever; production got out only
/// through its 10 ms poll, which the model does not have.)
#[test]
fn a_waiter_gets_the_permit_when_the_holder_dies_holding_the_state_lock_mid_give_back() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new(1, 1);
        assert!(world.acquire(1, 1, Wait::Until(None)));
        let waiter = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert!(world.use_the_only_permit(2, Wait::Until(None))))
        };
        // Process 1 gives back: takes the state lock, empties its holding,
        // and dies before raising `A`, bumping or waking.
        let acquired = RawProcessLock::new(&world.lock).lock(1, &world.processes, None);
        assert!(acquired.is_some());
        let [_, count] = world.holdings[0].words();
        count.store(0, Ordering::Relaxed);
        world.processes.die(1);
        waiter.join().unwrap();
        assert_eq!(world.available(2), 1);
    });
}

/// Two deaths in one run: a holder of one permit, and a process killed
/// holding the state lock mid-acquire (its holding raised, `A` not yet
/// lowered). A waiter for both permits gets them: each death is found.
#[test]
fn a_waiter_gets_the_permits_of_two_deaths_a_holder_and_a_state_lock_holder_mid_acquire() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new(2, 2);
        let holder = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                assert!(world.acquire(1, 1, Wait::Until(None)));
                world.processes.die(1);
            })
        };
        let cut = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                let acquired = RawProcessLock::new(&world.lock).lock(3, &world.processes, None);
                assert!(acquired.is_some());
                let [holder, count] = world.holdings[2].words();
                holder.store(3, Ordering::Relaxed);
                count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                world.processes.die(3);
            })
        };
        assert!(world.acquire(2, 2, Wait::Until(None)));
        world.give_back(2, 2);
        holder.join().unwrap();
        cut.join().unwrap();
        assert_eq!(world.available(2), 2);
        assert!(world.holdings.iter().all(|holding| holding.count() == 0));
    });
}

/// A bounded semaphore (bound 1) hands a permit over: process 1 holds the
/// only permit and a `release` adds one (`T = 2`, `A = 1`); then process 3
/// dies holding the state lock. Process 2's acquire recovers the lock and
/// repairs the counts, and gets the released permit while process 1 still
/// holds its own (the repair used to count `bound - Σ holdings` = 0). Both
/// give back, in either order: the bound caps the count at 1.
#[test]
fn a_bounded_repair_keeps_a_permit_released_while_another_was_held() {
    loom::model(|| {
        let world = World::bounded(1);
        assert!(world.acquire(1, 1, Wait::Try));
        assert!(world.semaphore().release(1, &world.process(1)).is_ok());
        world.lock.store(3, Ordering::Relaxed); // held by process 3 ...
        world.processes.die(3); // ... which is dead
        assert!(world.acquire(2, 1, Wait::Try), "the released permit");
        assert!(!world.acquire(2, 1, Wait::Try), "past the bound");
        let first = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.give_back(1, 1))
        };
        world.give_back(2, 1);
        first.join().unwrap();
        assert_eq!(world.available(2), 1);
        assert!(world.holdings.iter().all(|holding| holding.count() == 0));
    });
}

/// A process gives its permit back and dies holding the state lock after
/// its whole transition (holding emptied, `A` raised, the wake word bumped,
/// so `SLEEPERS` cleared) but before it unlocks and wakes, and nobody polls
/// (`die_unnoticed`: production's `HOLDER_POLL` left out). Process 3 then
/// takes the state lock from the dead holder: it must wake the waiter the
/// dead process owed a wake-up (and a waiter asleep on the state lock
/// itself, which process 1 held, is woken by that lock's unlock). (Before, a locker told `OwnerDied` repaired
/// the counts and woke nobody, and its own bumps found no `SLEEPERS`: the
/// waiter slept until the poll, loom's deadlock here. Review 17 found this
/// in the queue; `process_state::lock_state` now wakes for all three.)
#[test]
fn a_locker_recovering_a_dead_holders_state_lock_wakes_the_waiter_it_owed() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new(1, 1);
        assert!(world.acquire(1, 1, Wait::Until(None)));
        let waiter = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert!(world.use_the_only_permit(2, Wait::Until(None))))
        };
        // Process 1's whole give-back, short of its unlock and wake-up.
        let acquired = RawProcessLock::new(&world.lock).lock(1, &world.processes, None);
        assert!(acquired.is_some());
        let [_, count] = world.holdings[0].words();
        count.store(0, Ordering::Relaxed);
        let [wake, _, available] = world.counts.words();
        available.store(1, Ordering::Relaxed);
        wake.store(
            wake.load(Ordering::Relaxed).wrapping_add(1) & !(1 << 31),
            Ordering::Relaxed,
        );
        world.processes.die_unnoticed(1);
        // Process 3 takes the state lock (and finds the dead holder): a
        // try for the permit, given back at once if it got it. (Without
        // the wake on recovery, that give-back's bump finds no `SLEEPERS`,
        // cleared by the dead process, and wakes nobody either.)
        if world.acquire(3, 1, Wait::Try) {
            world.give_back(3, 1);
        }
        waiter.join().unwrap();
        assert_eq!(world.available(3), 1);
    });
}
