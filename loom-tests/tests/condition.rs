//! loom: `verisync::Condition` loses no wake-up, wakes exactly as many
//! threads as `notify` reports, never wakes spuriously, and restores a
//! reentrant lock's full depth after waiting.

use std::cell::Cell;
use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::{Condition, Mutex, ReentrantLock};

/// Producer/consumer: the consumer waits while nothing is there; the
/// producer adds under the lock and notifies. A lost wake-up is a deadlock.
#[test]
fn wait_while_sees_the_notified_change() {
    loom::model(|| {
        let shared = Arc::new((Mutex::new(0usize), Condition::new()));
        let consumer = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let (items, ready) = &*shared;
                let mut items = items.lock();
                ready.wait_while(&mut items, |items| *items == 0);
                *items -= 1;
            })
        };
        let (items, ready) = &*shared;
        *items.lock() += 1;
        ready.notify_one();
        consumer.join().unwrap();
        assert_eq!(*items.lock(), 0);
    });
}

/// Every return from `wait` is accounted for by a notification: the number
/// of wake-ups the waiter saw equals the sum of what `notify_*` returned.
/// A spurious wake-up or a miscount breaks the equality.
#[test]
fn notify_returns_exactly_the_threads_it_woke() {
    loom::model(|| {
        let shared = Arc::new((Mutex::new(false), Condition::new()));
        let wakeups = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (shared, wakeups) = (Arc::clone(&shared), Arc::clone(&wakeups));
            thread::spawn(move || {
                let (done, condition) = &*shared;
                let mut done = done.lock();
                while !*done {
                    condition.wait(&mut done);
                    wakeups.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let (done, condition) = &*shared;
        let first = condition.notify_one();
        *done.lock() = true;
        let second = condition.notify_all();
        assert!(first <= 1 && second <= 1);
        waiter.join().unwrap();
        assert_eq!(wakeups.load(Ordering::Relaxed), first + second);
    });
}

/// The timeout-versus-notify race: if `notify_one` says it woke the waiter,
/// the waiter must not report a timeout, and the other way round.
#[test]
fn a_timed_wait_and_notify_agree_on_what_happened() {
    loom::model(|| {
        let shared = Arc::new((Mutex::new(()), Condition::new()));
        let waiter = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let (lock, condition) = &*shared;
                let mut guard = lock.lock();
                condition
                    .wait_timeout(&mut guard, Duration::from_secs(1))
                    .timed_out()
            })
        };
        let (lock, condition) = &*shared;
        let woken = {
            let _guard = lock.lock();
            condition.notify_one()
        };
        let timed_out = waiter.join().unwrap();
        assert_eq!(
            woken == 1,
            !timed_out,
            "notify_one returned {woken}, waiter timed_out = {timed_out}"
        );
    });
}

/// Two waiters, `notify(1)` twice: each wakes one, both finish.
#[test]
fn notify_one_at_a_time_wakes_each_waiter() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let shared = Arc::new((Mutex::new(0usize), Condition::new()));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let (items, ready) = &*shared;
                    let mut items = items.lock();
                    ready.wait_while(&mut items, |items| *items == 0);
                    *items -= 1;
                })
            })
            .collect();
        let (items, ready) = &*shared;
        for _ in 0..2 {
            *items.lock() += 1;
            assert!(ready.notify(1) <= 1);
        }
        for consumer in consumers {
            consumer.join().unwrap();
        }
        assert_eq!(*items.lock(), 0);
    });
}

/// A reentrant lock held twice is fully released while waiting (so the
/// notifier can take it) and held twice again afterwards.
#[test]
fn waiting_with_a_reentrant_guard_releases_and_restores_every_level() {
    loom::model(|| {
        let shared = Arc::new((ReentrantLock::new(Cell::new(false)), Condition::new()));
        let waiter = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let (lock, condition) = &*shared;
                let outer = lock.lock();
                let mut inner = lock.lock();
                condition.wait_while(&mut inner, |ready| !ready.get());
                drop(inner);
                assert!(
                    lock.is_owned_by_current_thread(),
                    "the outer level was lost"
                );
                drop(outer);
                assert!(!lock.is_owned_by_current_thread());
            })
        };
        let (lock, condition) = &*shared;
        {
            let guard = lock.lock();
            guard.set(true);
        }
        condition.notify_all();
        waiter.join().unwrap();
        assert!(!lock.is_locked());
    });
}
