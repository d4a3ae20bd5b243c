//! The process-shared condition (`raw/process_condition.rs`) under the
//! loom model of the futex seam: threads play processes 1..=3, each with
//! its own records and its own local list of waiters. A waiter registers
//! while it holds the user's lock (another robust lock word here) and
//! releases it after; a notify under that lock is never lost; a timeout
//! racing a notify gives the notifier's count and the waiter's answer
//! together; and a notification handed to a process that dies before its
//! thread takes it (the seam's death step) passes to a live waiter, or is
//! dropped by a notify that finds nobody waiting.

use std::time::Instant;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::__loom::process_condition::{
    ConditionState, Holding, LocalWaiters, RawProcessCondition,
};
use verisync::__loom::process_lock::{StateLock, Wait, Word};
use verisync_loom_tests::processes::{Processes, StateLockOf};

/// The user's lock's identity, as the condition records it.
const USER_LOCK: u32 = 64;

/// A condition's shared state, the user's lock, the processes and their
/// local lists (index: process - 1).
struct World {
    state_lock: Word,
    user_lock: Word,
    state: ConditionState,
    waiting: [Holding; 3],
    granted: [Holding; 3],
    locals: [LocalWaiters; 3],
    processes: Processes,
    /// The user's data: "there is something", written under the user's lock.
    ready: AtomicBool,
}

impl World {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state_lock: Word::new(0),
            user_lock: Word::new(0),
            state: ConditionState::new(),
            waiting: std::array::from_fn(|_| Holding::new()),
            granted: std::array::from_fn(|_| Holding::new()),
            locals: std::array::from_fn(|_| LocalWaiters::new()),
            processes: Processes::new(),
            ready: AtomicBool::new(false),
        })
    }

    /// Process `me`'s view of the condition.
    fn condition(&self, me: u32) -> RawProcessCondition<'_> {
        RawProcessCondition::new(
            &self.state,
            &self.waiting,
            &self.granted,
            &self.locals[me as usize - 1],
        )
    }

    /// Process `me`'s view of the condition's state lock.
    fn state_lock(&self, me: u32) -> StateLockOf<'_> {
        StateLockOf {
            me,
            word: &self.state_lock,
            processes: &self.processes,
        }
    }

    /// Process `me`'s view of the user's lock.
    fn user_lock(&self, me: u32) -> StateLockOf<'_> {
        StateLockOf {
            me,
            word: &self.user_lock,
            processes: &self.processes,
        }
    }

    fn lock_user(&self, me: u32) {
        self.user_lock(me)
            .lock(Wait::Until(None))
            .expect("an untimed lock ends holding it");
    }

    /// What `Condition::wait` does, holding the user's lock: register,
    /// release the user's lock, wait, take it again. Whether notified.
    fn wait(&self, me: u32, deadline: Option<Instant>) -> bool {
        let registered = self
            .condition(me)
            .register(USER_LOCK, &self.state_lock(me))
            .expect("one lock only");
        self.user_lock(me).unlock();
        let notified =
            self.condition(me)
                .await_notification(registered, deadline, &self.state_lock(me));
        self.lock_user(me);
        notified
    }

    fn notify(&self, me: u32, count: u64) -> u64 {
        self.condition(me).notify(count, &self.state_lock(me))
    }
}

#[test]
fn a_notify_under_the_lock_is_never_lost() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new();
        let producer = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world.lock_user(2);
                world.ready.store(true, Ordering::Relaxed);
                let woken = world.notify(2, 1);
                world.user_lock(2).unlock();
                woken
            })
        };
        // `wait_while(|| !ready)`, untimed: a lost notify leaves this
        // thread asleep for ever, which loom reports as a deadlock.
        world.lock_user(1);
        let mut waits = 0;
        while !world.ready.load(Ordering::Relaxed) {
            assert!(world.wait(1, None), "an untimed wait returned unnotified");
            waits += 1;
        }
        world.user_lock(1).unlock();
        let woken = producer.join().unwrap();
        // The producer woke exactly the waits that slept before it came.
        assert_eq!(woken, waits, "notify's count and the wake-ups disagree");
        assert!(waits <= 1, "a wait returned without a notification");
    });
}

/// How often the timed waiter was notified and timed out, over every
/// execution loom explores (outside the model: plain atomics).
static OUTCOMES: [std::sync::atomic::AtomicUsize; 2] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

#[test]
fn a_timeout_racing_a_notify_agrees_with_the_notifiers_count() {
    loom::model(|| {
        let world = World::new();
        // Process 1 registers (holding the user's lock), then waits with
        // a deadline the model may let pass at any point.
        world.lock_user(1);
        let registered = world
            .condition(1)
            .register(USER_LOCK, &world.state_lock(1))
            .expect("one lock only");
        world.user_lock(1).unlock();
        let notifier = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.notify(2, 1))
        };
        let notified = world.condition(1).await_notification(
            registered,
            Some(Instant::now()),
            &world.state_lock(1),
        );
        let woken = notifier.join().unwrap();
        // A notify counted this waiter exactly when it reports notified: a
        // notification racing the deadline is taken, never dropped.
        assert_eq!(
            notified,
            woken == 1,
            "the waiter says notified={notified}, the notifier woke {woken}"
        );
        // Nobody is left registered: a later notify wakes nobody.
        assert_eq!(world.notify(2, 1), 0, "a waiter was left registered");
        OUTCOMES[usize::from(notified)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let [timed_out, notified] = OUTCOMES
        .each_ref()
        .map(|outcome| outcome.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        timed_out > 0 && notified > 0,
        "timed out {timed_out} times, notified {notified} times: both must be explored"
    );
}

#[test]
fn a_notification_held_by_a_process_that_died_passes_to_a_live_waiter() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new();
        // Process 1 registers and is killed asleep (it never takes what it
        // is handed); process 2 registers after it.
        let doomed = world
            .condition(1)
            .register(USER_LOCK, &world.state_lock(1))
            .expect("one lock only");
        let _ = doomed;
        let registered = world
            .condition(2)
            .register(USER_LOCK, &world.state_lock(2))
            .expect("one lock only");
        let survivor = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world
                    .condition(2)
                    .await_notification(registered, None, &world.state_lock(2))
            })
        };
        // Process 3 notifies once: the turn is process 1's (the cursor
        // starts at slot 0), alive now, so it holds the notification...
        assert_eq!(world.notify(3, 1), 1, "a live waiter was there to wake");
        let held_by_the_doomed = world
            .condition(1)
            .holds_a_notification(&world.state_lock(1));
        // ...unless process 2 had taken it over already (it cannot: process
        // 1 is alive until now).
        assert!(held_by_the_doomed, "the notify skipped the first in turn");
        // ...and dies holding it.
        world.processes.die(1);
        // The survivor, asleep untimed, must get it: a lost notification
        // leaves it asleep for ever (loom: deadlock).
        assert!(
            survivor.join().unwrap(),
            "the survivor's untimed wait returned unnotified"
        );
        assert_eq!(world.notify(3, 1), 0, "nobody is left waiting");
    });
}

#[test]
fn a_notification_held_by_a_dead_process_is_dropped_by_a_notify_of_nobody() {
    loom::model(|| {
        let world = World::new();
        // Process 1 registers, is handed the notification and dies with it.
        let _doomed = world
            .condition(1)
            .register(USER_LOCK, &world.state_lock(1))
            .expect("one lock only");
        assert_eq!(world.notify(3, 1), 1, "a live waiter was there to wake");
        world.processes.die(1);
        // A notify that finds nobody waiting drops it, as a notify of
        // nobody is...
        assert_eq!(world.notify(3, u64::MAX), 0, "nobody waits");
        // ...so a thread that starts waiting after it is not handed it.
        let registered = world
            .condition(2)
            .register(USER_LOCK, &world.state_lock(2))
            .expect("one lock only");
        let notified = world.condition(2).await_notification(
            registered,
            Some(Instant::now()),
            &world.state_lock(2),
        );
        assert!(
            !notified,
            "a later waiter was handed the dead process's notification"
        );
        assert_eq!(world.notify(3, 1), 0, "nobody is left waiting");
    });
}

#[test]
fn a_waiter_that_dies_at_any_point_never_swallows_a_notification() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new();
        let _doomed = world
            .condition(1)
            .register(USER_LOCK, &world.state_lock(1))
            .expect("one lock only");
        let registered = world
            .condition(2)
            .register(USER_LOCK, &world.state_lock(2))
            .expect("one lock only");
        let killer = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.processes.die(1))
        };
        let survivor = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world
                    .condition(2)
                    .await_notification(registered, None, &world.state_lock(2))
            })
        };
        // Process 1 dies at any point relative to the notify: before it
        // (the notify skips it), or after (its notification passes on).
        let woken = world.notify(3, 1);
        killer.join().unwrap();
        assert_eq!(woken, 1, "a live waiter was there to wake");
        assert!(survivor.join().unwrap(), "the survivor was not notified");
    });
}

/// Process 1 notifies process 2's waiter and dies holding the state lock
/// after its whole transition (the notification handed to process 2's
/// records, the wake word bumped, so `SLEEPERS` cleared) but before it
/// unlocks and wakes, and nobody polls (`die_unnoticed`). Process 3 then
/// takes the state lock from the dead holder (a notify of nobody): the
/// waiter must be woken and take its notification (review 18:
/// `lock_state`'s wake on `OwnerDied`; the repair hands nothing out, so
/// nothing else bumps).
#[test]
fn a_locker_recovering_a_dead_notifiers_state_lock_wakes_the_notified_waiter() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = World::new();
        let waiter = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world.lock_user(2);
                world.ready.store(true, Ordering::Release);
                assert!(world.wait(2, None));
                world.user_lock(2).unlock();
            })
        };
        while !world.ready.load(Ordering::Acquire) {
            thread::yield_now();
        }
        // The waiter registered before it released the user's lock.
        world.lock_user(1);
        world.user_lock(1).unlock();
        // Process 1's whole notify of process 2's waiter, short of its
        // unlock and wake-up.
        assert!(world.state_lock(1).lock(Wait::Until(None)).is_some());
        let [_, waiting_count] = world.waiting[1].words();
        assert_eq!(waiting_count.load(Ordering::Relaxed), 1);
        waiting_count.store(0, Ordering::Relaxed);
        let [granted_holder, granted_count] = world.granted[1].words();
        granted_holder.store(2, Ordering::Relaxed);
        granted_count.store(1, Ordering::Relaxed);
        let [wake, _, waiting, _] = world.state.words();
        waiting.store(0, Ordering::Relaxed);
        wake.store(
            wake.load(Ordering::Relaxed).wrapping_add(1) & !(1 << 31),
            Ordering::Relaxed,
        );
        world.processes.die_unnoticed(1);
        assert_eq!(world.notify(3, 0), 0);
        waiter.join().unwrap();
    });
}
