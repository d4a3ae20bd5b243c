//! Property tests for `Condition`.
//!
//! - Model-based, one thread: notifying nobody wakes nobody; timed waits
//!   time out and give the lock back at the depth it was held (Mutex, and
//!   ReentrantLock held 1–4 times); `_while` forms do not wait when the
//!   predicate is false.
//! - Exact notify counts: with W threads parked, each `notify_one`,
//!   `notify(n)` and `notify_all` returns exactly how many of them are still
//!   waiting, capped at what it asked for.
//! - Producer/consumer: every item consumed exactly once; a notify never
//!   reports more than the threads waiting; a wait that reports a
//!   notification was notified (no spurious wake-ups).
//! - A reentrant lock held k times is fully released during a wait (another
//!   thread can take it) and held k times again afterwards.

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use verisync::{Condition, ConditionGuard, Event, Mutex, ReentrantLock};

use common::{
    concurrent_config, join_scoped, wait_for, with_watchdog, work, CASE_PATIENCE, PATIENCE,
};

/// A timed wait in the single-thread model (nobody will notify).
#[derive(Clone, Debug)]
enum Op {
    NotifyOne,
    Notify(usize),
    NotifyAll,
    WaitTimeoutZero,
    WaitTimeoutShort(u64),
    WaitUntilPast,
    WaitUntilSoon(u64),
    /// `wait_timeout_while` with a predicate that is false: no wait at all.
    WaitTimeoutWhileFalse(u64),
    /// `wait_timeout_while` with a predicate that stays true: times out.
    WaitTimeoutWhileTrue(u64),
    /// `wait_while` with a false predicate: returns at once.
    WaitWhileFalse,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::NotifyOne),
        (0..5usize).prop_map(Op::Notify),
        Just(Op::NotifyAll),
        Just(Op::WaitTimeoutZero),
        (1..=500u64).prop_map(Op::WaitTimeoutShort),
        Just(Op::WaitUntilPast),
        (1..=500u64).prop_map(Op::WaitUntilSoon),
        (0..=500u64).prop_map(Op::WaitTimeoutWhileFalse),
        (0..=500u64).prop_map(Op::WaitTimeoutWhileTrue),
        Just(Op::WaitWhileFalse),
    ]
}

/// Runs one op with `guard`; checks what a lone thread must see.
fn run_op<G: ConditionGuard>(
    condition: &Condition,
    guard: &mut G,
    op: &Op,
) -> Result<(), TestCaseError> {
    let micros = Duration::from_micros;
    match *op {
        Op::NotifyOne => prop_assert_eq!(condition.notify_one(), 0),
        Op::Notify(n) => prop_assert_eq!(condition.notify(n), 0),
        Op::NotifyAll => prop_assert_eq!(condition.notify_all(), 0),
        Op::WaitTimeoutZero => {
            prop_assert!(condition.wait_timeout(guard, Duration::ZERO).timed_out());
        }
        Op::WaitTimeoutShort(us) => {
            let started = Instant::now();
            prop_assert!(condition.wait_timeout(guard, micros(us)).timed_out());
            prop_assert!(
                started.elapsed() >= micros(us),
                "returned before its timeout"
            );
        }
        Op::WaitUntilPast => {
            let past = Instant::now() - Duration::from_millis(1);
            prop_assert!(condition.wait_until(guard, past).timed_out());
        }
        Op::WaitUntilSoon(us) => {
            let deadline = Instant::now() + micros(us);
            prop_assert!(condition.wait_until(guard, deadline).timed_out());
            prop_assert!(Instant::now() >= deadline, "returned before its deadline");
        }
        Op::WaitTimeoutWhileFalse(us) => {
            let result = condition.wait_timeout_while(guard, micros(us), |_| false);
            prop_assert!(!result.timed_out());
        }
        Op::WaitTimeoutWhileTrue(us) => {
            let mut checks = 0;
            let result = condition.wait_timeout_while(guard, micros(us), |_| {
                checks += 1;
                true
            });
            prop_assert!(result.timed_out());
            prop_assert!(checks >= 1);
        }
        Op::WaitWhileFalse => condition.wait_while(guard, |_| false),
    }
    Ok(())
}

fn run_model_mutex(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mutex = Mutex::new(7u32);
    let condition = Condition::new();
    let mut guard = mutex.lock();
    for op in &ops {
        run_op(&condition, &mut guard, op)?;
        prop_assert!(mutex.is_locked(), "{:?} gave the lock back unlocked", op);
        prop_assert_eq!(*guard, 7, "{:?}", op);
        *guard += 1;
        *guard -= 1;
        let debug = format!("{condition:?}");
        prop_assert!(debug.contains("has_waiters: false"), "{}", debug);
    }
    let other_sees_locked =
        std::thread::scope(|scope| join_scoped(scope.spawn(|| mutex.try_lock().is_none())));
    prop_assert!(other_sees_locked);
    drop(guard);
    prop_assert!(!mutex.is_locked());
    Ok(())
}

fn run_model_reentrant(depth: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let lock = ReentrantLock::new(RefCell::new(7u32));
    let condition = Condition::new();
    let mut guards: Vec<_> = (0..depth).map(|_| lock.lock()).collect();
    for (step, op) in ops.iter().enumerate() {
        let which = step % depth;
        run_op(&condition, &mut guards[which], op)?;
        prop_assert!(lock.is_owned_by_current_thread(), "{:?}", op);
        prop_assert_eq!(*guards[which].borrow(), 7);
    }
    // The depth is what it was: the lock stays held until the last guard goes.
    while let Some(guard) = guards.pop() {
        let free_elsewhere =
            std::thread::scope(|scope| join_scoped(scope.spawn(|| lock.try_lock().is_some())));
        prop_assert!(
            !free_elsewhere,
            "free with {} levels still held",
            guards.len() + 1
        );
        drop(guard);
        prop_assert_eq!(lock.is_owned_by_current_thread(), !guards.is_empty());
    }
    prop_assert!(!lock.is_locked());
    Ok(())
}

proptest! {
    #[test]
    fn lone_thread_condition_with_mutex(ops in prop::collection::vec(op_strategy(), 1..20)) {
        run_model_mutex(ops)?;
    }

    #[test]
    fn lone_thread_condition_with_reentrant_lock(
        depth in 1..=4usize,
        ops in prop::collection::vec(op_strategy(), 1..20),
    ) {
        run_model_reentrant(depth, ops)?;
    }
}

/// How a thread waits when it expects to be notified.
#[derive(Clone, Copy, Debug)]
enum WaitKind {
    Wait,
    /// A timeout that never expires in a healthy run.
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
    /// Waits once; `true` if notified.
    fn wait<G: ConditionGuard>(self, condition: &Condition, guard: &mut G) -> bool {
        match self {
            WaitKind::Wait => {
                condition.wait(guard);
                true
            }
            WaitKind::Timeout => !condition.wait_timeout(guard, PATIENCE).timed_out(),
            WaitKind::Forever => !condition.wait_timeout(guard, Duration::MAX).timed_out(),
            WaitKind::Until => !condition
                .wait_until(guard, Instant::now() + PATIENCE)
                .timed_out(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Notify {
    One,
    Many(usize),
    All,
}

fn notify_strategy() -> impl Strategy<Value = Notify> {
    prop_oneof![
        Just(Notify::One),
        (0..5usize).prop_map(Notify::Many),
        Just(Notify::All),
    ]
}

impl Notify {
    /// Notifies; returns (how many it woke, the most it may wake).
    fn run(self, condition: &Condition) -> (usize, usize) {
        match self {
            Notify::One => (condition.notify_one(), 1),
            Notify::Many(n) => (condition.notify(n), n),
            Notify::All => (condition.notify_all(), usize::MAX),
        }
    }
}

/// `waiters` threads wait once each; when all are parked, `notifies` run;
/// each must report exactly min(asked, still waiting).
fn run_exact_counts(waiters: Vec<WaitKind>, notifies: Vec<Notify>, under_lock: bool) {
    let parked = Mutex::new(0usize); // threads that entered their wait
    let condition = Condition::new();
    let woke = AtomicUsize::new(0);
    let total = waiters.len();
    std::thread::scope(|scope| {
        let threads: Vec<_> = waiters
            .into_iter()
            .map(|kind| {
                let (parked, condition, woke) = (&parked, &condition, &woke);
                scope.spawn(move || {
                    let mut guard = parked.lock();
                    *guard += 1;
                    assert!(kind.wait(condition, &mut guard), "{kind:?} timed out");
                    woke.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        // A waiter counts itself and waits without letting go of the lock
        // in between, so once the count is complete under the lock, every
        // waiter is in the condition's queue.
        wait_for("every waiter to park", || *parked.lock() == total);
        let mut remaining = total;
        for notify in notifies {
            let guard = under_lock.then(|| parked.lock());
            let (woken, asked) = notify.run(&condition);
            drop(guard);
            assert_eq!(
                woken,
                asked.min(remaining),
                "{notify:?} with {remaining} waiting"
            );
            remaining -= woken;
        }
        assert_eq!(condition.notify_all(), remaining, "the rest");
        assert_eq!(condition.notify_all(), 0, "nobody is left");
        for thread in threads {
            join_scoped(thread);
        }
    });
    assert_eq!(woke.load(Ordering::SeqCst), total);
}

#[derive(Default)]
struct Shelf {
    items: VecDeque<u64>,
    /// Consumers inside a wait (counted under the lock).
    waiting: usize,
    /// Of those, how many a notify reported waking that have not yet
    /// returned from their wait.
    woken: usize,
    done: bool,
}

/// Producers push items and notify (under the lock); consumers take items,
/// waiting when the shelf is empty. Checks exactly-once consumption, that
/// a notify never reports more than the threads waiting and not yet woken,
/// and that a wait reporting a wake-up really was woken by a notify.
fn run_producer_consumer(producers: Vec<Vec<(u8, Notify, u8)>>, consumers: Vec<(WaitKind, u8)>) {
    let shelf = Mutex::new(Shelf::default());
    let condition = Condition::new();
    let mut produced: Vec<u64> = Vec::new();
    let mut consumed: Vec<u64> = std::thread::scope(|scope| {
        let consumer_threads: Vec<_> = consumers
            .into_iter()
            .map(|(kind, pause)| {
                let (shelf, condition) = (&shelf, &condition);
                scope.spawn(move || {
                    let mut got = Vec::new();
                    let mut guard = shelf.lock();
                    loop {
                        if let Some(item) = guard.items.pop_front() {
                            got.push(item);
                            drop(guard);
                            work(pause);
                            guard = shelf.lock();
                            continue;
                        }
                        if guard.done {
                            return got;
                        }
                        guard.waiting += 1;
                        let notified = match kind {
                            // A short timeout: may time out, and then must
                            // not have been counted as woken.
                            WaitKind::Until => !condition
                                .wait_timeout(
                                    &mut guard,
                                    Duration::from_micros(50 + u64::from(pause)),
                                )
                                .timed_out(),
                            kind => kind.wait(condition, &mut guard),
                        };
                        guard.waiting -= 1;
                        if notified {
                            assert!(guard.woken > 0, "woke without being notified");
                            guard.woken -= 1;
                        }
                    }
                })
            })
            .collect();

        let producer_threads: Vec<_> = producers
            .into_iter()
            .enumerate()
            .map(|(index, script)| {
                let (shelf, condition) = (&shelf, &condition);
                scope.spawn(move || {
                    let mut made = Vec::new();
                    for (batch, notify, pause) in script {
                        let mut guard = shelf.lock();
                        for _ in 0..batch {
                            let item = (index as u64) << 32 | made.len() as u64;
                            guard.items.push_back(item);
                            made.push(item);
                        }
                        let (woken, asked) = notify.run(condition);
                        assert!(woken <= asked);
                        assert!(
                            woken <= guard.waiting - guard.woken,
                            "{notify:?} woke {woken}, but only {} were waiting un-notified",
                            guard.waiting - guard.woken
                        );
                        guard.woken += woken;
                        drop(guard);
                        work(pause);
                    }
                    made
                })
            })
            .collect();
        for thread in producer_threads {
            produced.extend(join_scoped(thread));
        }
        {
            let mut guard = shelf.lock();
            guard.done = true;
            let woken = condition.notify_all();
            assert!(woken <= guard.waiting - guard.woken);
            guard.woken += woken;
        }
        consumer_threads.into_iter().flat_map(join_scoped).collect()
    });
    let shelf = shelf.into_inner();
    assert!(shelf.items.is_empty(), "items left on the shelf");
    assert_eq!((shelf.waiting, shelf.woken), (0, 0));
    produced.sort_unstable();
    consumed.sort_unstable();
    assert_eq!(consumed, produced, "items lost or consumed twice");
}

/// A consumer holding a reentrant lock `depth` times waits; the producer
/// can take the lock meanwhile (all levels were released), and the consumer
/// holds exactly `depth` levels again when the wait returns.
fn run_reentrant_wait(depth: usize, kind: WaitKind, notify: Notify) {
    let lock = ReentrantLock::new(RefCell::new(false));
    let condition = Condition::new();
    let holding = Event::new();
    std::thread::scope(|scope| {
        let consumer = scope.spawn(|| {
            let mut guards: Vec<_> = (0..depth).map(|_| lock.lock()).collect();
            holding.set();
            let mut notified = 0;
            while !*guards[0].borrow() {
                assert!(
                    kind.wait(&condition, &mut guards[depth - 1]),
                    "{kind:?} timed out"
                );
                notified += 1;
            }
            assert_eq!(notified, 1, "no spurious wake-ups");
            for level in (1..=depth).rev() {
                assert!(
                    lock.is_owned_by_current_thread(),
                    "level {level} lost in the wait"
                );
                drop(guards.pop());
            }
            assert!(!lock.is_owned_by_current_thread());
        });
        assert!(holding.wait_timeout(PATIENCE));
        // This lock() only succeeds once the consumer released every level,
        // which it does only inside its wait (after entering the queue).
        let guard = lock.lock();
        *guard.borrow_mut() = true;
        let (woken, _) = match notify {
            Notify::Many(0) => Notify::One.run(&condition),
            notify => notify.run(&condition),
        };
        assert_eq!(woken, 1, "the consumer was waiting");
        drop(guard);
        join_scoped(consumer);
    });
    assert!(!lock.is_locked());
}

proptest! {
    #![proptest_config(concurrent_config())]

    #[test]
    fn notify_reports_exactly_how_many_it_woke(
        waiters in prop::collection::vec(wait_kind_strategy(), 1..=4),
        notifies in prop::collection::vec(notify_strategy(), 0..6),
        under_lock in any::<bool>(),
    ) {
        with_watchdog(CASE_PATIENCE, move || run_exact_counts(waiters, notifies, under_lock));
    }

    #[test]
    fn producers_and_consumers_lose_and_duplicate_nothing(
        producers in prop::collection::vec(
            prop::collection::vec((1..=3u8, notify_strategy(), 0..20u8), 1..12),
            1..=2,
        ),
        consumers in prop::collection::vec((wait_kind_strategy(), 0..40u8), 1..=3),
    ) {
        with_watchdog(CASE_PATIENCE, move || run_producer_consumer(producers, consumers));
    }

    #[test]
    fn reentrant_levels_are_released_and_restored_by_a_wait(
        depth in 1..=4usize,
        kind in wait_kind_strategy(),
        notify in notify_strategy(),
    ) {
        with_watchdog(CASE_PATIENCE, move || run_reentrant_wait(depth, kind, notify));
    }
}
