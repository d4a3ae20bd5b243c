//! Property tests for `Mutex` and `ReentrantLock`.
//!
//! - Model-based: random sequences of lock/try_lock/timed lock/unlock on one
//!   thread against "held or not" (Mutex) and a nesting depth
//!   (ReentrantLock), with probes from a second thread.
//! - Concurrent: 2–4 threads run random scripts; an "inside" flag proves
//!   mutual exclusion on every entry, a counter under the lock equals the
//!   sum of increments, and a reentrant owner sees its own depth while
//!   others contend.

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use verisync::{Mutex, MutexGuard, ReentrantLock, ReentrantLockGuard};

use common::{concurrent_config, join_scoped, with_watchdog, work, CASE_PATIENCE};

/// How a lock is asked for.
#[derive(Clone, Copy, Debug)]
enum How {
    Lock,
    TryLock,
    /// `try_lock_for(Duration::ZERO)`: tries once.
    ForZero,
    /// `try_lock_for(1 ms)`.
    ForShort,
    /// `try_lock_for(Duration::MAX)`: waits forever.
    ForMax,
    /// `try_lock_until` a deadline already past: tries once.
    UntilPast,
    /// `try_lock_until` a millisecond ahead.
    UntilSoon,
}

fn how_strategy() -> impl Strategy<Value = How> {
    prop_oneof![
        3 => Just(How::Lock),
        3 => Just(How::TryLock),
        2 => Just(How::ForZero),
        1 => Just(How::ForShort),
        1 => Just(How::ForMax),
        1 => Just(How::UntilPast),
        1 => Just(How::UntilSoon),
    ]
}

impl How {
    /// Whether this way may block forever when the lock is held elsewhere.
    fn blocks_forever(self) -> bool {
        matches!(self, How::Lock | How::ForMax)
    }

    fn mutex<T>(self, mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
        match self {
            How::Lock => Some(mutex.lock()),
            How::TryLock => mutex.try_lock(),
            How::ForZero => mutex.try_lock_for(Duration::ZERO),
            How::ForShort => mutex.try_lock_for(Duration::from_millis(1)),
            How::ForMax => mutex.try_lock_for(Duration::MAX),
            How::UntilPast => mutex.try_lock_until(Instant::now() - Duration::from_millis(1)),
            How::UntilSoon => mutex.try_lock_until(Instant::now() + Duration::from_millis(1)),
        }
    }

    fn reentrant<T>(self, lock: &ReentrantLock<T>) -> Option<ReentrantLockGuard<'_, T>> {
        match self {
            How::Lock => Some(lock.lock()),
            How::TryLock => lock.try_lock(),
            How::ForZero => lock.try_lock_for(Duration::ZERO),
            How::ForShort => lock.try_lock_for(Duration::from_millis(1)),
            How::ForMax => lock.try_lock_for(Duration::MAX),
            How::UntilPast => lock.try_lock_until(Instant::now() - Duration::from_millis(1)),
            How::UntilSoon => lock.try_lock_until(Instant::now() + Duration::from_millis(1)),
        }
    }
}

#[derive(Clone, Debug)]
enum MutexOp {
    Acquire(How),
    Unlock,
    UnlockFair,
    Add(u8),
    /// Another thread tries the lock and reads the state.
    Probe(How),
}

fn mutex_op_strategy() -> impl Strategy<Value = MutexOp> {
    prop_oneof![
        4 => how_strategy().prop_map(MutexOp::Acquire),
        3 => Just(MutexOp::Unlock),
        1 => Just(MutexOp::UnlockFair),
        3 => any::<u8>().prop_map(MutexOp::Add),
        1 => how_strategy().prop_map(MutexOp::Probe),
    ]
}

fn run_mutex_model(ops: Vec<MutexOp>) -> Result<(), TestCaseError> {
    let mut mutex = Mutex::with_name("model", 0u64);
    let mut value = 0u64; // the model's copy of the data
    {
        let mut guard: Option<MutexGuard<'_, u64>> = None;
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                MutexOp::Acquire(how) => {
                    if guard.is_some() {
                        // Not reentrant: locking again would deadlock, so
                        // only the calls that give up are tried.
                        if !how.blocks_forever() {
                            prop_assert!(how.mutex(&mutex).is_none(), "step {}: {:?}", step, how);
                        }
                    } else {
                        let got = how.mutex(&mutex);
                        prop_assert!(got.is_some(), "step {}: {:?} on a free mutex", step, how);
                        guard = got;
                    }
                }
                MutexOp::Unlock => guard = None,
                MutexOp::UnlockFair => {
                    if let Some(held) = guard.take() {
                        MutexGuard::unlock_fair(held);
                    }
                }
                MutexOp::Add(amount) => {
                    if let Some(held) = guard.as_mut() {
                        **held += u64::from(amount);
                        value += u64::from(amount);
                    }
                }
                MutexOp::Probe(how) => {
                    let held = guard.is_some();
                    let seen = std::thread::scope(|scope| {
                        join_scoped(scope.spawn(|| {
                            if held && how.blocks_forever() {
                                return (mutex.is_locked(), None);
                            }
                            (mutex.is_locked(), how.mutex(&mutex).map(|guard| *guard))
                        }))
                    });
                    prop_assert_eq!(seen.0, held, "step {}: is_locked from another thread", step);
                    if held {
                        prop_assert_eq!(
                            seen.1,
                            None,
                            "step {}: another thread got a held mutex",
                            step
                        );
                    } else {
                        prop_assert_eq!(seen.1, Some(value), "step {}: free mutex refused", step);
                    }
                }
            }
            prop_assert_eq!(
                mutex.is_locked(),
                guard.is_some(),
                "step {}: is_locked",
                step
            );
            if let Some(held) = &guard {
                prop_assert_eq!(**held, value);
            }
            let debug = format!("{mutex:?}");
            prop_assert!(debug.contains("model"), "{}", debug);
            prop_assert_eq!(debug.contains("<locked>"), guard.is_some(), "{}", debug);
        }
    }
    prop_assert!(!mutex.is_locked());
    prop_assert_eq!(*mutex.get_mut(), value);
    prop_assert_eq!(mutex.into_inner(), value);
    Ok(())
}

#[derive(Clone, Debug)]
enum ReentrantOp {
    Acquire(How),
    /// Drop the guard at `index % guards.len()` (any order, not just LIFO).
    Release(usize),
    Set(u8),
    /// Another thread tries the lock and looks at it.
    Probe(How),
}

fn reentrant_op_strategy() -> impl Strategy<Value = ReentrantOp> {
    prop_oneof![
        4 => how_strategy().prop_map(ReentrantOp::Acquire),
        4 => any::<usize>().prop_map(ReentrantOp::Release),
        2 => any::<u8>().prop_map(ReentrantOp::Set),
        1 => how_strategy().prop_map(ReentrantOp::Probe),
    ]
}

fn run_reentrant_model(ops: Vec<ReentrantOp>) -> Result<(), TestCaseError> {
    let lock = ReentrantLock::with_name("model", Cell::new(0u8));
    let mut value = 0u8;
    let mut guards: Vec<ReentrantLockGuard<'_, Cell<u8>>> = Vec::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            ReentrantOp::Acquire(how) => {
                // The owner (or a thread finding it free) always gets it at once.
                let got = how.reentrant(&lock);
                prop_assert!(
                    got.is_some(),
                    "step {}: {:?} at depth {}",
                    step,
                    how,
                    guards.len()
                );
                guards.extend(got);
            }
            ReentrantOp::Release(index) => {
                if !guards.is_empty() {
                    drop(guards.swap_remove(index % guards.len()));
                }
            }
            ReentrantOp::Set(new) => {
                if let Some(guard) = guards.first() {
                    guard.set(new);
                    value = new;
                }
            }
            ReentrantOp::Probe(how) => {
                let depth = guards.len();
                let seen = std::thread::scope(|scope| {
                    join_scoped(scope.spawn(|| {
                        let owned_here = lock.is_owned_by_current_thread();
                        let locked = lock.is_locked();
                        if depth > 0 && how.blocks_forever() {
                            return (owned_here, locked, None);
                        }
                        let got = how.reentrant(&lock).map(|guard| {
                            assert!(lock.is_owned_by_current_thread());
                            guard.get()
                        });
                        (owned_here, locked, got)
                    }))
                });
                prop_assert!(
                    !seen.0,
                    "step {}: another thread thinks it owns the lock",
                    step
                );
                prop_assert_eq!(
                    seen.1,
                    depth > 0,
                    "step {}: is_locked from another thread",
                    step
                );
                if depth > 0 {
                    prop_assert_eq!(
                        seen.2,
                        None,
                        "step {}: another thread got an owned lock",
                        step
                    );
                } else {
                    prop_assert_eq!(seen.2, Some(value), "step {}: free lock refused", step);
                }
            }
        }
        let depth = guards.len();
        prop_assert_eq!(
            lock.is_locked(),
            depth > 0,
            "step {}: is_locked at depth {}",
            step,
            depth
        );
        prop_assert_eq!(
            lock.is_owned_by_current_thread(),
            depth > 0,
            "step {}: is_owned_by_current_thread at depth {}",
            step,
            depth
        );
        for guard in &guards {
            prop_assert_eq!(guard.get(), value);
        }
        prop_assert_eq!(format!("{lock:?}").contains("model"), true);
    }
    drop(guards);
    prop_assert!(!lock.is_locked());
    prop_assert_eq!(lock.into_inner().get(), value);
    Ok(())
}

proptest! {
    #[test]
    fn mutex_matches_sequential_model(ops in prop::collection::vec(mutex_op_strategy(), 1..40)) {
        run_mutex_model(ops)?;
    }

    #[test]
    fn reentrant_lock_matches_depth_model(
        ops in prop::collection::vec(reentrant_op_strategy(), 1..40),
    ) {
        run_reentrant_model(ops)?;
    }
}

/// A step of a thread's script: how to ask, what to add, how long to hold,
/// and whether to let go with `unlock_fair`.
type MutexScript = Vec<(How, u8, u8, bool)>;

fn mutex_script_strategy() -> impl Strategy<Value = MutexScript> {
    prop::collection::vec((how_strategy(), any::<u8>(), 0..30u8, any::<bool>()), 1..40)
}

fn run_concurrent_mutex(scripts: Vec<MutexScript>) {
    let counter = Mutex::new(0u64);
    let inside = AtomicBool::new(false);
    let expected: u64 = std::thread::scope(|scope| {
        let threads: Vec<_> = scripts
            .into_iter()
            .map(|script| {
                let (counter, inside) = (&counter, &inside);
                scope.spawn(move || {
                    let mut added = 0u64;
                    for (how, amount, hold, fair) in script {
                        let Some(mut guard) = how.mutex(counter) else {
                            continue;
                        };
                        assert!(
                            !inside.swap(true, Ordering::SeqCst),
                            "two threads inside the mutex at once"
                        );
                        assert!(counter.is_locked());
                        *guard += u64::from(amount);
                        added += u64::from(amount);
                        work(hold);
                        inside.store(false, Ordering::SeqCst);
                        if fair {
                            MutexGuard::unlock_fair(guard);
                        } else {
                            drop(guard);
                        }
                    }
                    added
                })
            })
            .collect();
        threads.into_iter().map(join_scoped).sum()
    });
    assert!(!counter.is_locked());
    assert_eq!(counter.into_inner(), expected, "increments were lost");
}

/// A step: how to take the outermost level, how deep to nest (1..=4) and
/// how to take each inner level, how long to hold.
type ReentrantScript = Vec<(How, Vec<How>, u8)>;

fn reentrant_script_strategy() -> impl Strategy<Value = ReentrantScript> {
    prop::collection::vec(
        (
            how_strategy(),
            prop::collection::vec(how_strategy(), 0..4),
            0..20u8,
        ),
        1..25,
    )
}

fn run_concurrent_reentrant(scripts: Vec<ReentrantScript>) {
    let lock = ReentrantLock::new(Cell::new(0u64));
    // Which thread (1-based script index) is inside; 0 when none.
    let owner = AtomicUsize::new(0);
    let expected: u64 = std::thread::scope(|scope| {
        let threads: Vec<_> = scripts
            .into_iter()
            .enumerate()
            .map(|(index, script)| {
                let me = index + 1;
                let (lock, owner) = (&lock, &owner);
                scope.spawn(move || {
                    let mut entries = 0u64;
                    for (outer, inner, hold) in script {
                        assert!(!lock.is_owned_by_current_thread());
                        let Some(first) = outer.reentrant(lock) else {
                            continue;
                        };
                        let previous = owner.swap(me, Ordering::SeqCst);
                        assert_eq!(
                            previous, 0,
                            "thread {previous} still inside when {me} got in"
                        );
                        let mut guards = vec![first];
                        for how in inner {
                            // The owner re-enters at once, whatever the call.
                            let guard = how.reentrant(lock);
                            assert!(guard.is_some(), "owner refused re-entry with {how:?}");
                            guards.extend(guard);
                            assert!(lock.is_owned_by_current_thread());
                            assert_eq!(owner.load(Ordering::SeqCst), me);
                        }
                        guards[0].set(guards[0].get() + 1);
                        entries += 1;
                        work(hold);
                        // Let go of all but one level, in no particular order:
                        // still the owner.
                        while guards.len() > 1 {
                            let last = guards.len() - 1;
                            drop(guards.swap_remove(usize::from(hold) % last));
                            assert!(lock.is_owned_by_current_thread());
                            assert_eq!(owner.load(Ordering::SeqCst), me);
                        }
                        assert_eq!(owner.swap(0, Ordering::SeqCst), me);
                        drop(guards);
                        assert!(!lock.is_owned_by_current_thread());
                    }
                    entries
                })
            })
            .collect();
        threads.into_iter().map(join_scoped).sum()
    });
    assert!(!lock.is_locked());
    assert_eq!(lock.into_inner().get(), expected, "entries were lost");
}

proptest! {
    #![proptest_config(concurrent_config())]

    #[test]
    fn concurrent_mutex_scripts_exclude_and_conserve(
        scripts in prop::collection::vec(mutex_script_strategy(), 2..=4),
    ) {
        with_watchdog(CASE_PATIENCE, move || run_concurrent_mutex(scripts));
    }

    #[test]
    fn concurrent_reentrant_scripts_keep_depth_and_exclusion(
        scripts in prop::collection::vec(reentrant_script_strategy(), 2..=4),
    ) {
        with_watchdog(CASE_PATIENCE, move || run_concurrent_reentrant(scripts));
    }
}
