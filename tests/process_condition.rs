//! `process::Condition` across real processes (Linux): producers and
//! consumers over a bounded buffer with nothing lost, notify counts,
//! timeouts, a waiter SIGKILLed holding a notification (it passes to a
//! live waiter), the lock's holder dying while a waiter takes it back,
//! garbage in its shared state, and a model-based property test against
//! the thread `Condition`.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::arena::{offset_of, scribble_in_child};
use common::{concurrent_config, wait_for, with_watchdog, CASE_PATIENCE, PATIENCE};
use proptest::prelude::*;
use verisync::process::{self, Array, Condition, Lock, Value};

/// How long a live waiter may take to get a dead process's notification
/// (production looks every 10 ms; generous for a loaded machine).
const NOTICE_DEATH: Duration = Duration::from_secs(5);

/// The condition object's layout (`src/process_shared/condition.rs`).
const STATE_AT: usize = 20;
const WAITING_AT: usize = 64;
const GRANTED_AT: usize = WAITING_AT + 1024 * 8;

/// The bounded buffer: `CAPACITY` cells, then head, count, taken.
const CAPACITY: usize = 4;
const HEAD: usize = CAPACITY;
const COUNT: usize = CAPACITY + 1;
const TAKEN: usize = CAPACITY + 2;
const PER_PRODUCER: u64 = 300;
const PRODUCERS: u64 = 2;
const ITEMS: u64 = PER_PRODUCER * PRODUCERS;

type Buffer = (Lock, Condition, Condition, Array<u64>);

/// Puts `first..first + PER_PRODUCER` into the buffer.
fn produce(((lock, not_empty, not_full, cells), first): (Buffer, u64)) {
    for item in first..first + PER_PRODUCER {
        let mut guard = lock.lock().unwrap();
        not_full
            .wait_while(&mut guard, || cells.load(COUNT) == CAPACITY as u64)
            .unwrap();
        let (head, count) = (cells.load(HEAD), cells.load(COUNT));
        cells.store(((head + count) % CAPACITY as u64) as usize, item);
        cells.store(COUNT, count + 1);
        not_empty.notify_one();
    }
}

/// Takes items until all `ITEMS` are taken; returns what it took.
fn consume((lock, not_empty, not_full, cells): Buffer) -> Vec<u64> {
    let mut taken = Vec::new();
    let mut guard = lock.lock().unwrap();
    loop {
        not_empty
            .wait_while(&mut guard, || {
                cells.load(COUNT) == 0 && cells.load(TAKEN) < ITEMS
            })
            .unwrap();
        if cells.load(TAKEN) == ITEMS {
            return taken;
        }
        let (head, count) = (cells.load(HEAD), cells.load(COUNT));
        taken.push(cells.load(head as usize));
        cells.store(HEAD, (head + 1) % CAPACITY as u64);
        cells.store(COUNT, count - 1);
        cells.store(TAKEN, cells.load(TAKEN) + 1);
        not_full.notify_one();
        if cells.load(TAKEN) == ITEMS {
            // The others wait for an item that will not come: tell them.
            not_empty.notify_all();
        }
    }
}

#[test]
fn producers_and_consumers_in_four_processes_lose_nothing() {
    with_watchdog(PATIENCE * 3, || {
        let buffer: Buffer = (
            Lock::new().unwrap(),
            Condition::new().unwrap(),
            Condition::new().unwrap(),
            Array::new(CAPACITY + 3, 0u64).unwrap(),
        );
        let consumers: Vec<_> = (0..2)
            .map(|_| process::spawn(consume, buffer.clone()).unwrap())
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| process::spawn(produce, (buffer.clone(), 1 + p * PER_PRODUCER)).unwrap())
            .collect();
        for producer in producers {
            producer.join().unwrap();
        }
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|consumer| consumer.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (1..=ITEMS).collect::<Vec<_>>(),
            "lost or doubled items"
        );
    });
}

/// Counts itself in `arrived` under the lock, waits (timed, generously),
/// and reports whether it was notified.
fn wait_counted((lock, condition, arrived): (Lock, Condition, Value<u32>)) -> bool {
    let mut guard = lock.lock().unwrap();
    arrived.fetch_add(1);
    let result = condition.wait_timeout(&mut guard, PATIENCE).unwrap();
    !result.timed_out()
}

/// Waits until `count` waiters counted themselves in `arrived`, then takes
/// the lock: each counted itself under it and registered before releasing
/// it, so all are registered once the lock is ours.
fn until_registered<'l>(
    lock: &'l Lock,
    arrived: &Value<u32>,
    count: u32,
) -> process::LockGuard<'l> {
    wait_for("the waiters to register", || arrived.load() == count);
    lock.lock().unwrap()
}

#[test]
fn notify_counts_the_waiters_it_wakes_across_processes() {
    with_watchdog(PATIENCE * 2, || {
        let (lock, condition, arrived) = (
            Lock::new().unwrap(),
            Condition::new().unwrap(),
            Value::new(0u32).unwrap(),
        );
        assert_eq!(condition.notify_all(), 0, "nobody waits yet");
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                process::spawn(
                    wait_counted,
                    (lock.clone(), condition.clone(), arrived.clone()),
                )
                .unwrap()
            })
            .collect();
        let guard = until_registered(&lock, &arrived, 3);
        assert_eq!(condition.notify(0), 0);
        assert_eq!(condition.notify(2), 2);
        assert_eq!(condition.notify_all(), 1);
        assert_eq!(condition.notify_one(), 0, "every waiter was woken already");
        drop(guard);
        for waiter in waiters {
            assert!(waiter.join().unwrap(), "a woken waiter reported a timeout");
        }
    });
}

#[test]
fn threads_of_one_process_are_counted_and_woken_one_by_one() {
    with_watchdog(PATIENCE * 2, || {
        let (lock, condition, arrived) = (
            Lock::new().unwrap(),
            Condition::new().unwrap(),
            Value::new(0u32).unwrap(),
        );
        let woken = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (lock, condition, arrived, woken) = (
                    lock.clone(),
                    condition.clone(),
                    arrived.clone(),
                    Arc::clone(&woken),
                );
                std::thread::spawn(move || {
                    if wait_counted((lock, condition, arrived)) {
                        woken.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        drop(until_registered(&lock, &arrived, 3));
        for expected in 1..=3 {
            assert_eq!(condition.notify_one(), 1);
            wait_for("a notified thread to return", || {
                woken.load(Ordering::SeqCst) == expected
            });
        }
        assert_eq!(condition.notify_one(), 0);
        threads
            .into_iter()
            .for_each(|thread| thread.join().unwrap());
    });
}

#[test]
fn timed_waits_time_out_holding_the_lock_again() {
    with_watchdog(PATIENCE, || {
        let (lock, condition) = (Lock::new().unwrap(), Condition::new().unwrap());
        let mut guard = lock.lock().unwrap();
        let start = Instant::now();
        let result = condition
            .wait_timeout(&mut guard, Duration::from_millis(30))
            .unwrap();
        assert!(result.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(30));
        let held_elsewhere =
            std::thread::scope(|scope| scope.spawn(|| lock.try_lock().is_err()).join().unwrap());
        assert!(held_elsewhere, "the lock is held again");
        let deadline = Instant::now() + Duration::from_millis(10);
        assert!(condition
            .wait_until(&mut guard, deadline)
            .unwrap()
            .timed_out());
        assert!(Instant::now() >= deadline);
        let result = condition
            .wait_timeout_while(&mut guard, Duration::from_millis(10), || true)
            .unwrap();
        assert!(result.timed_out());
        let result = condition
            .wait_timeout_while(&mut guard, Duration::from_millis(10), || false)
            .unwrap();
        assert!(!result.timed_out(), "the condition did not hold");
        assert!(condition
            .wait_timeout(&mut guard, Duration::ZERO)
            .unwrap()
            .timed_out());
        // Timed-out waiters left: nobody is woken by a later notify.
        assert_eq!(condition.notify_all(), 0);
        drop(guard);
        assert!(lock.try_lock().is_ok());
    });
}

/// Waits untimed (stopped, then killed while waiting).
fn wait_until_killed((lock, condition, arrived): (Lock, Condition, Value<u32>)) {
    let mut guard = lock.lock().unwrap();
    arrived.fetch_add(1);
    let _ = condition.wait(&mut guard);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_notification_for_a_waiter_killed_before_it_took_it_passes_to_a_live_waiter() {
    with_watchdog(PATIENCE * 2, || {
        let (lock, condition, arrived) = (
            Lock::new().unwrap(),
            Condition::new().unwrap(),
            Value::new(0u32).unwrap(),
        );
        let shared = (lock.clone(), condition.clone(), arrived.clone());
        let doomed = process::spawn(wait_until_killed, shared.clone()).unwrap();
        let guard = until_registered(&lock, &arrived, 1);
        // Stopped, it is alive but cannot take what it is handed.
        signal(doomed.pid(), "-STOP");
        assert_eq!(condition.notify_one(), 1, "the stopped waiter is alive");
        drop(guard);
        // A live waiter comes, then the holder of the notification dies.
        let survivor = process::spawn(wait_counted, shared).unwrap();
        drop(until_registered(&lock, &arrived, 2));
        doomed.kill();
        let killed = Instant::now();
        assert!(
            survivor.join().unwrap(),
            "the live waiter was never handed the dead waiter's notification"
        );
        assert!(
            killed.elapsed() < NOTICE_DEATH,
            "the live waiter got it after {:?}",
            killed.elapsed()
        );
        assert_eq!(condition.notify_one(), 0, "nobody waits any more");
        assert!(doomed.join().is_err());
    });
}

#[test]
fn a_dead_waiters_notification_is_dropped_by_a_notify_that_finds_nobody_waiting() {
    with_watchdog(PATIENCE * 2, || {
        let (lock, condition, arrived) = (
            Lock::new().unwrap(),
            Condition::new().unwrap(),
            Value::new(0u32).unwrap(),
        );
        let shared = (lock.clone(), condition.clone(), arrived.clone());
        let doomed = process::spawn(wait_until_killed, shared).unwrap();
        let guard = until_registered(&lock, &arrived, 1);
        // Stopped, it is alive but cannot take what it is handed.
        signal(doomed.pid(), "-STOP");
        assert_eq!(condition.notify_one(), 1, "the stopped waiter is alive");
        drop(guard);
        doomed.kill();
        assert!(doomed.join().is_err());
        // The dead process's notification has nobody to pass to: this
        // notify reaps it first and drops it, as a notify of nobody is.
        assert_eq!(condition.notify_all(), 0, "nobody waits");
        // So a wait that starts after that is not handed it.
        let mut guard = lock.lock().unwrap();
        let result = condition
            .wait_timeout(&mut guard, Duration::from_millis(300))
            .unwrap();
        assert!(
            result.timed_out(),
            "a wait started after a notify_all that found nobody waiting was handed the dead \
             waiter's stale notification"
        );
    });
}

/// Takes the lock, notifies, and dies holding the lock.
fn notify_and_die_holding_the_lock((lock, condition): (Lock, Condition)) {
    let guard = lock.lock().unwrap();
    assert_eq!(condition.notify_one(), 1);
    std::mem::forget(guard);
    std::process::exit(0);
}

#[test]
fn a_waiter_that_takes_the_lock_back_from_a_dead_holder_is_told() {
    with_watchdog(PATIENCE * 2, || {
        let (lock, condition) = (Lock::new().unwrap(), Condition::new().unwrap());
        let mut guard = lock.lock().unwrap();
        // Started under the lock: it can notify only once this thread
        // waits (and released it).
        let notifier = process::spawn(
            notify_and_die_holding_the_lock,
            (lock.clone(), condition.clone()),
        )
        .unwrap();
        let died = condition
            .wait_timeout(&mut guard, PATIENCE)
            .expect_err("the lock's holder died holding it");
        // Acknowledged: the lock is consistent once the guard is dropped.
        let _: &mut process::LockGuard<'_> = died.into_guard();
        drop(guard);
        assert!(lock.lock().is_ok(), "the death was acknowledged");
        assert!(notifier.join().is_err(), "the notifier died");
        // The `_while` forms report it too, without running the predicate
        // again.
        let mut guard = lock.lock().unwrap();
        let notifier = process::spawn(
            notify_and_die_holding_the_lock,
            (lock.clone(), condition.clone()),
        )
        .unwrap();
        let mut calls = 0;
        let died = condition.wait_while(&mut guard, || {
            calls += 1;
            true
        });
        assert!(died.is_err());
        assert_eq!(
            calls, 1,
            "the predicate ran over data its holder may have half-updated"
        );
        drop(died);
        drop(guard);
        assert!(
            lock.lock().is_err(),
            "not acknowledged: the next locker is told"
        );
        assert!(notifier.join().is_err(), "the notifier died");
    });
}

#[test]
#[should_panic(expected = "two different locks")]
fn waiting_with_two_locks_at_once_panics() {
    let (first, second) = (Lock::new().unwrap(), Lock::new().unwrap());
    let condition = Condition::new().unwrap();
    let arrived = Value::new(0u32).unwrap();
    let waiter = {
        let (first, condition, arrived) = (first.clone(), condition.clone(), arrived.clone());
        std::thread::spawn(move || wait_counted((first, condition, arrived)))
    };
    drop(until_registered(&first, &arrived, 1));
    let mut guard = second.lock().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = condition.wait_timeout(&mut guard, PATIENCE);
    }));
    drop(guard);
    condition.notify_all();
    waiter.join().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Garbage a child writes over the condition: every state word, and
/// records that name nobody, do not stop a wait and a notify from meeting
/// (the garbage is recounted or reaped), and nothing hangs.
#[test]
fn garbage_in_the_shared_state_is_recovered() {
    with_watchdog(PATIENCE * 2, || {
        let (lock, condition, arrived) = (
            Lock::new().unwrap(),
            Condition::new().unwrap(),
            Value::new(0u32).unwrap(),
        );
        let at = offset_of(&condition);
        for word in 0..4 {
            scribble_in_child(at + STATE_AT + word * 4, u32::MAX);
        }
        for records in [WAITING_AT, GRANTED_AT] {
            scribble_in_child(at + records + 8 * 5, 0xDEAD_BEEF);
            scribble_in_child(at + records + 8 * 5 + 4, 7);
        }
        // A garbage count for slot 9 naming slot 9's (absent) process.
        scribble_in_child(at + WAITING_AT + 8 * 9, 10);
        scribble_in_child(at + WAITING_AT + 8 * 9 + 4, u32::MAX);
        let waiter = {
            let (lock, condition, arrived) = (lock.clone(), condition.clone(), arrived.clone());
            std::thread::spawn(move || wait_counted((lock, condition, arrived)))
        };
        let guard = until_registered(&lock, &arrived, 1);
        assert_eq!(condition.notify_one(), 1, "the live waiter is found");
        drop(guard);
        assert!(waiter.join().unwrap(), "the waiter was not notified");
        let mut guard = lock.lock().unwrap();
        let result = condition
            .wait_timeout(&mut guard, Duration::from_millis(20))
            .unwrap();
        assert!(result.timed_out());
        assert_eq!(condition.notify_all(), 0);
    });
}

/// One step of a script run against both conditions.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A thread waits (timed, generously) until notified.
    Wait,
    /// A thread waits briefly, and the script waits until it timed out.
    Expire,
    /// `notify(n)`.
    Notify(usize),
    /// `notify_all()`.
    NotifyAll,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Wait),
        1 => Just(Step::Expire),
        2 => (0usize..4).prop_map(Step::Notify),
        1 => Just(Step::NotifyAll),
    ]
}

/// What a script observed: every notify's count, then how many waits were
/// notified and how many timed out.
type Observed = (Vec<usize>, usize, usize);

/// Runs `script` on the process `Condition` with threads.
fn run_process(script: &[Step]) -> Observed {
    let (lock, condition, arrived) = (
        Lock::new().unwrap(),
        Condition::new().unwrap(),
        Value::new(0u32).unwrap(),
    );
    let (mut counts, mut waiters, mut timed_out) = (Vec::new(), Vec::new(), 0);
    let wait = |timeout: Duration| {
        let (lock, condition, arrived) = (lock.clone(), condition.clone(), arrived.clone());
        std::thread::spawn(move || {
            let mut guard = lock.lock().unwrap();
            arrived.fetch_add(1);
            !condition
                .wait_timeout(&mut guard, timeout)
                .unwrap()
                .timed_out()
        })
    };
    let mut expected = 0;
    for &step in script {
        match step {
            Step::Wait => {
                waiters.push(wait(CASE_PATIENCE));
                expected += 1;
                drop(until_registered(&lock, &arrived, expected));
            }
            Step::Expire => {
                expected += 1;
                if !wait(Duration::from_millis(1)).join().unwrap() {
                    timed_out += 1;
                }
            }
            Step::Notify(n) => counts.push(condition.notify(n)),
            Step::NotifyAll => counts.push(condition.notify_all()),
        }
    }
    counts.push(condition.notify_all());
    let notified = waiters
        .into_iter()
        .map(|w| w.join().unwrap())
        .filter(|&n| n)
        .count();
    (counts, notified, timed_out)
}

/// Runs `script` on the thread `Condition` with threads (the model).
fn run_thread(script: &[Step]) -> Observed {
    let shared = Arc::new((verisync::Mutex::new(0usize), verisync::Condition::new()));
    let (mut counts, mut waiters, mut timed_out) = (Vec::new(), Vec::new(), 0);
    let wait = |timeout: Duration| {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let (arrived, condition) = &*shared;
            let mut guard = arrived.lock();
            *guard += 1;
            !condition.wait_timeout(&mut guard, timeout).timed_out()
        })
    };
    let mut expected = 0;
    for &step in script {
        match step {
            Step::Wait => {
                waiters.push(wait(CASE_PATIENCE));
                expected += 1;
                wait_for("the waiter to register", || *shared.0.lock() == expected);
            }
            Step::Expire => {
                expected += 1;
                if !wait(Duration::from_millis(1)).join().unwrap() {
                    timed_out += 1;
                }
            }
            Step::Notify(n) => counts.push(shared.1.notify(n)),
            Step::NotifyAll => counts.push(shared.1.notify_all()),
        }
    }
    counts.push(shared.1.notify_all());
    let notified = waiters
        .into_iter()
        .map(|w| w.join().unwrap())
        .filter(|&n| n)
        .count();
    (counts, notified, timed_out)
}

proptest! {
    #![proptest_config(concurrent_config())]

    #[test]
    fn counts_match_the_thread_condition(script in prop::collection::vec(step(), 1..12)) {
        let (process, thread) = with_watchdog(CASE_PATIENCE * 2, move || {
            (run_process(&script), run_thread(&script))
        });
        prop_assert_eq!(process, thread);
    }
}
