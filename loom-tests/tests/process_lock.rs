//! The robust process-shared lock (`raw/process_lock.rs`) under the loom
//! model of the futex seam: threads play processes, each with its own
//! holder identity, and a "process" may die — mark itself dead, call the
//! model's `process_died` step (production's poll) and return without
//! unlocking — at the points where a holder can die.

use std::time::Instant;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::__loom::process_lock::{Acquired, RawProcessLock, Word};
use verisync_loom_tests::processes::Processes;

/// One lock, the processes, and a shadow value the lock guards (loom
/// reports any unexcluded access to it).
struct World {
    word: Word,
    processes: Processes,
    shadow: UnsafeCell<u32>,
    /// How many lockers were told the owner died.
    told: AtomicUsize,
}

impl World {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            word: Word::new(0),
            processes: Processes::new(),
            shadow: UnsafeCell::new(0),
            told: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> RawProcessLock<'_> {
        RawProcessLock::new(&self.word)
    }

    /// Locks as process `me` (`timed`: with a deadline the model may let
    /// pass at any point), bumps the shadow, and unlocks acknowledging any
    /// death. `false` if it timed out.
    fn critical_section(&self, me: u32, timed: bool) -> bool {
        let deadline = timed.then(Instant::now);
        let Some(acquired) = self.lock().lock(me, &self.processes, deadline) else {
            return false;
        };
        if acquired == Acquired::OwnerDied {
            self.told.fetch_add(1, Ordering::Relaxed);
        }
        self.shadow.with_mut(|value| unsafe { *value += 1 });
        self.lock().unlock(me, false);
        true
    }

    fn shadow(&self) -> u32 {
        self.shadow.with(|value| unsafe { *value })
    }
}

#[test]
fn two_processes_exclude_each_other() {
    loom::model(|| {
        let world = World::new();
        let other = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert!(world.critical_section(2, false)))
        };
        assert!(world.critical_section(1, false));
        other.join().unwrap();
        assert_eq!(world.shadow(), 2);
        assert_eq!(world.told.load(Ordering::Relaxed), 0);
        assert_eq!(world.word.load(Ordering::Relaxed), 0, "left unlocked");
    });
}

#[test]
fn no_lost_wake_up_with_two_waiters() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new();
        let waiters: Vec<_> = [2, 3]
            .into_iter()
            .map(|me| {
                let world = Arc::clone(&world);
                thread::spawn(move || assert!(world.critical_section(me, false)))
            })
            .collect();
        assert!(world.critical_section(1, false));
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(world.shadow(), 3);
    });
}

#[test]
fn a_timeout_racing_the_unlock_loses_no_wake_up() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new();
        let held = world.lock().lock(1, &world.processes, None);
        assert_eq!(held, Some(Acquired::Clean));
        let timed = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.critical_section(2, true))
        };
        let patient = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert!(world.critical_section(3, false)))
        };
        world.lock().unlock(1, false);
        let timed_got_it = timed.join().unwrap();
        // The patient locker always gets it: had the timed one been woken
        // and then timed out, the wake-up would be lost and loom would
        // report a deadlock here.
        patient.join().unwrap();
        assert_eq!(world.shadow(), 1 + u32::from(timed_got_it));
    });
}

#[test]
fn a_holder_that_dies_is_reported_to_the_next_locker() {
    loom::model(|| {
        let world = World::new();
        let holder = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                let acquired = world.lock().lock(1, &world.processes, None);
                assert_eq!(acquired, Some(Acquired::Clean));
                world.shadow.with_mut(|value| unsafe { *value += 10 });
                world.processes.die(1);
            })
        };
        let next = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                let acquired = world.lock().lock(2, &world.processes, None).unwrap();
                let seen = world.shadow();
                world.lock().unlock(2, false);
                (acquired, seen)
            })
        };
        holder.join().unwrap();
        let (acquired, seen) = next.join().unwrap();
        // Process 2 went first (and 1 then died holding the lock), or it
        // went after 1 died: then it is told, and sees what 1 wrote.
        match seen {
            0 => assert_eq!(acquired, Acquired::Clean),
            10 => assert_eq!(acquired, Acquired::OwnerDied),
            other => panic!("shadow {other}"),
        }
    });
}

#[test]
fn a_holder_that_dies_while_the_other_waits_or_not_never_hangs_it() {
    loom::model(|| {
        let world = World::new();
        let holder = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                if world.lock().lock(1, &world.processes, None).is_some() {
                    world.shadow.with_mut(|value| unsafe { *value += 1 });
                    world.processes.die(1);
                }
            })
        };
        // Process 2 locks and unlocks: either before process 1 (which then
        // takes the lock and dies) or after it died (told).
        assert!(world.critical_section(2, false));
        holder.join().unwrap();
        assert_eq!(world.shadow(), 2);
        let told = world.told.load(Ordering::Relaxed);
        let final_word = world.word.load(Ordering::Relaxed);
        // Either 2 went second and was told (the word is free), or 2 went
        // first and 1 died holding the lock (the word still names 1).
        assert!(
            (told == 1 && final_word == 0) || (told == 0 && final_word & 0x0FFF_FFFF == 1),
            "told {told}, word {final_word:#x}"
        );
    });
}

#[test]
fn a_holder_that_dies_between_freeing_the_word_and_waking_loses_no_waiter() {
    loom::model(|| {
        let world = World::new();
        let held = world.lock().lock(1, &world.processes, None);
        assert_eq!(held, Some(Acquired::Clean));
        let waiter = {
            let world = Arc::clone(&world);
            thread::spawn(move || assert!(world.critical_section(2, false)))
        };
        // Dies mid-unlock: the word is free, but no futex wake was sent.
        let _must_wake = world.lock().release(1, false);
        world.processes.die(1);
        waiter.join().unwrap();
        assert_eq!(world.told.load(Ordering::Relaxed), 0, "1 had unlocked");
        assert_eq!(world.shadow(), 1);
    });
}

#[test]
fn an_unacknowledged_death_is_told_again_and_an_acknowledged_one_is_not() {
    loom::model(|| {
        let world = World::new();
        let holder = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world.lock().lock(1, &world.processes, None);
                world.processes.die(1);
            })
        };
        holder.join().unwrap();
        let racing = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                let acquired = world.lock().lock(2, &world.processes, None).unwrap();
                // Told, and not acknowledging: the mark stays (as the safe
                // guard does: it keeps the mark only if it was told).
                world.lock().unlock(2, acquired == Acquired::OwnerDied);
                acquired
            })
        };
        let mine = world.lock().lock(3, &world.processes, None).unwrap();
        world.lock().unlock(3, false);
        let theirs = racing.join().unwrap();
        // 3 is told whether it goes first or after 2 (who left the mark);
        // 2 is told only if it goes first (3 acknowledges the death).
        assert_eq!(
            mine,
            Acquired::OwnerDied,
            "3 is told whether first or second"
        );
        let after = world.lock().try_lock(2, &world.processes);
        // If 2 went last it left the mark; otherwise 3 acknowledged it.
        let two_went_last = theirs == Acquired::OwnerDied && after == Some(Acquired::OwnerDied);
        let three_went_last = after == Some(Acquired::Clean);
        assert!(two_went_last || three_went_last, "{theirs:?} {after:?}");
    });
}
