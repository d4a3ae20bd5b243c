//! The "Bad input" contract of issue 2, item by item:
//!
//! - `Semaphore::bounded(n).release` beyond `n` → `Err(TooManyReleases)`,
//!   count unchanged, and the error reads as a sentence.
//! - `acquire_many` beyond a bounded semaphore's size → a panic with a message.
//! - `Barrier::new(0)` → a panic with a message.
//! - A zero timeout tries once, on every primitive with a timeout.
//! - `Duration::MAX` (or a timeout whose deadline overflows `Instant`) waits
//!   forever instead of panicking: such a wait, satisfied by another thread,
//!   returns normally.
//! - A `Condition` used with two different locks at once panics with a message.
//!
//! (A reentrant lock's count overflow needs `usize::MAX` nested locks; it is
//! unit-tested next to the counter in `src/raw/reentrant.rs`.)

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verisync::{Barrier, Condition, Event, Mutex, ReentrantLock, Semaphore, TooManyReleases};

use common::{join_scoped, kernel_thread_id, wait_for, wait_until_asleep, with_watchdog, PATIENCE};

// ---------------------------------------------------------------------------
// Releasing too many permits

#[test]
fn bounded_release_beyond_its_size_is_refused_and_changes_nothing() {
    let semaphore = Semaphore::bounded(3);
    assert_eq!(
        semaphore.release(1),
        Err(TooManyReleases {
            released: 1,
            available: 3,
            limit: 3
        })
    );
    assert_eq!(semaphore.available_permits(), 3);

    let permit = semaphore.acquire_many(2);
    assert_eq!(semaphore.available_permits(), 1);
    assert_eq!(
        semaphore.release(3),
        Err(TooManyReleases {
            released: 3,
            available: 1,
            limit: 3
        })
    );
    assert_eq!(
        semaphore.available_permits(),
        1,
        "a refused release changed the count"
    );
    assert_eq!(
        semaphore.release(2),
        Ok(()),
        "releasing up to the bound is fine"
    );
    assert_eq!(semaphore.available_permits(), 3);
    // The permit guard now finds the semaphore full: the bound holds.
    drop(permit);
    assert_eq!(semaphore.available_permits(), 3);
    assert!(semaphore.release(1).is_err());
    assert_eq!(semaphore.available_permits(), 3);
}

#[test]
fn unbounded_release_past_max_permits_is_refused() {
    let semaphore = Semaphore::new(1);
    let error = semaphore.release(Semaphore::MAX_PERMITS).unwrap_err();
    assert_eq!(error.limit, Semaphore::MAX_PERMITS);
    assert_eq!(semaphore.available_permits(), 1);
    assert_eq!(semaphore.release(Semaphore::MAX_PERMITS - 1), Ok(()));
    assert_eq!(semaphore.available_permits(), Semaphore::MAX_PERMITS);
}

#[test]
fn too_many_releases_reads_as_a_sentence() {
    let error = Semaphore::bounded(2).release(5).unwrap_err();
    let message = error.to_string();
    // Says what was asked, what it would have made, what the bound is, and
    // that nothing changed; a real sentence, not a Debug dump.
    for needle in ["5", "7", "2", "unchanged"] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message:?}"
        );
    }
    assert!(message.split_whitespace().count() >= 8, "{message:?}");
    assert!(
        !message.contains('{') && !message.contains("TooManyReleases"),
        "{message:?}"
    );
    // And it is a std error, usable with `?` into `Box<dyn Error>`.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(error);
    assert_eq!(boxed.to_string(), message);
}

// ---------------------------------------------------------------------------
// Asking a bounded semaphore for more than it can ever hold

#[test]
#[should_panic(expected = "can never hold more than 3")]
fn acquire_many_beyond_a_bounded_size_panics() {
    let semaphore = Semaphore::bounded(3);
    let _never = semaphore.acquire_many(4);
}

#[test]
#[should_panic(expected = "can never hold more than 3")]
fn timed_acquire_many_beyond_a_bounded_size_panics() {
    let semaphore = Semaphore::bounded(3);
    let _never = semaphore.try_acquire_many_for(4, Duration::from_millis(1));
}

#[test]
#[should_panic(expected = "can never hold more than 3")]
fn acquire_many_until_beyond_a_bounded_size_panics() {
    let semaphore = Semaphore::bounded(3);
    let _never = semaphore.try_acquire_many_until(4, Instant::now() + Duration::from_millis(1));
}

#[test]
#[should_panic(expected = "can never hold more than 0")]
fn acquire_beyond_a_bounded_size_of_zero_panics() {
    let semaphore = Semaphore::bounded(0);
    let _never = semaphore.acquire();
}

#[test]
#[should_panic(expected = "can never hold more than 3")]
fn owned_acquire_many_beyond_a_bounded_size_panics() {
    let semaphore = Arc::new(Semaphore::bounded(3));
    let _never = semaphore.acquire_many_owned(4);
}

#[test]
fn try_acquire_many_beyond_a_bounded_size_just_fails() {
    let semaphore = Semaphore::bounded(3);
    assert!(semaphore.try_acquire_many(4).is_none());
    assert_eq!(semaphore.available_permits(), 3);
}

#[test]
fn acquire_many_beyond_the_current_count_of_an_unbounded_semaphore_waits() {
    with_watchdog(PATIENCE, || {
        let semaphore = Semaphore::new(2);
        let got = satisfied_later(
            || semaphore.acquire_many(5).count(),
            || semaphore.release(3).unwrap(),
        );
        assert_eq!(got, 5);
        assert_eq!(semaphore.available_permits(), 5);
    });
}

#[test]
#[should_panic(expected = "at most")]
fn a_semaphore_larger_than_max_permits_panics() {
    let _ = Semaphore::new(usize::MAX);
}

// ---------------------------------------------------------------------------
// Barrier::new(0)

#[test]
#[should_panic(expected = "Barrier::new(0)")]
fn a_barrier_for_no_threads_panics() {
    let _ = Barrier::new(0);
}

#[test]
fn the_barrier_panic_message_says_what_to_do() {
    let panic = catch_unwind(|| Barrier::new(0)).unwrap_err();
    let message = panic_message(&*panic);
    assert!(message.contains("at least 1"), "{message:?}");
}

// ---------------------------------------------------------------------------
// A zero timeout tries once

/// How long "at once" may take on a loaded machine; a zero-timeout call
/// that blocked would wait for the holder, which here never lets go.
const AT_ONCE: Duration = Duration::from_secs(2);

/// Runs `check` on another thread while this thread holds `hold`'s result.
fn elsewhere<R: Send>(check: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| join_scoped(scope.spawn(check)))
}

#[test]
fn zero_timeout_tries_a_mutex_once() {
    let mutex = Mutex::new(0);
    let past = Instant::now() - Duration::from_secs(1);
    assert!(
        mutex.try_lock_for(Duration::ZERO).is_some(),
        "free: succeeds"
    );
    assert!(mutex.try_lock_until(past).is_some(), "free: succeeds");
    let held = mutex.lock();
    let started = Instant::now();
    elsewhere(|| {
        assert!(mutex.try_lock_for(Duration::ZERO).is_none());
        assert!(mutex.try_lock_until(past).is_none());
    });
    assert!(started.elapsed() < AT_ONCE);
    drop(held);
}

#[test]
fn zero_timeout_tries_a_reentrant_lock_once() {
    let lock = ReentrantLock::new(());
    let past = Instant::now() - Duration::from_secs(1);
    let first = lock.try_lock_for(Duration::ZERO).expect("free: succeeds");
    let second = lock.try_lock_until(past).expect("the owner re-enters");
    let started = Instant::now();
    elsewhere(|| {
        assert!(lock.try_lock_for(Duration::ZERO).is_none());
        assert!(lock.try_lock_until(past).is_none());
    });
    assert!(started.elapsed() < AT_ONCE);
    drop((first, second));
    assert!(!lock.is_locked());
}

#[test]
fn zero_timeout_tries_a_semaphore_once() {
    let semaphore = Semaphore::new(2);
    let past = Instant::now() - Duration::from_secs(1);
    let two = semaphore
        .try_acquire_many_for(2, Duration::ZERO)
        .expect("available: succeeds");
    let started = Instant::now();
    assert!(semaphore.try_acquire_for(Duration::ZERO).is_none());
    assert!(semaphore.try_acquire_many_for(2, Duration::ZERO).is_none());
    assert!(semaphore.try_acquire_until(past).is_none());
    assert!(semaphore.try_acquire_many_until(1, past).is_none());
    assert!(started.elapsed() < AT_ONCE);
    assert_eq!(semaphore.available_permits(), 0);
    drop(two);
    assert!(
        semaphore.try_acquire_until(past).is_some(),
        "available: succeeds"
    );
    assert_eq!(
        semaphore.available_permits(),
        2,
        "failed tries took nothing"
    );
}

#[test]
fn zero_timeout_reads_an_event_once() {
    let event = Event::new();
    let past = Instant::now() - Duration::from_secs(1);
    let started = Instant::now();
    assert!(!event.wait_timeout(Duration::ZERO));
    assert!(!event.wait_until(past));
    assert!(started.elapsed() < AT_ONCE);
    event.set();
    assert!(event.wait_timeout(Duration::ZERO));
    assert!(event.wait_until(past));
}

#[test]
fn zero_timeout_condition_waits_return_at_once_holding_the_lock() {
    let mutex = Mutex::new(1);
    let condition = Condition::new();
    let mut guard = mutex.lock();
    let started = Instant::now();
    assert!(condition
        .wait_timeout(&mut guard, Duration::ZERO)
        .timed_out());
    let past = Instant::now() - Duration::from_secs(1);
    assert!(condition.wait_until(&mut guard, past).timed_out());
    assert!(condition
        .wait_timeout_while(&mut guard, Duration::ZERO, |value| *value == 1)
        .timed_out());
    assert!(!condition
        .wait_timeout_while(&mut guard, Duration::ZERO, |value| *value == 2)
        .timed_out());
    assert!(started.elapsed() < AT_ONCE);
    assert!(mutex.is_locked());
    *guard += 1;
    assert!(elsewhere(|| mutex.try_lock().is_none()), "still held");
}

#[test]
fn zero_timeout_barrier_wait_tries_once() {
    // Completing the round needs nobody else: it succeeds.
    let one = Barrier::new(1);
    assert!(one.wait_timeout(Duration::ZERO).unwrap().is_leader());
    assert!(one
        .wait_until(Instant::now() - Duration::from_secs(1))
        .unwrap()
        .is_leader());
    // Otherwise it gives up at once, which (as any timeout) breaks it.
    let two = Barrier::new(2);
    let started = Instant::now();
    assert!(two.wait_timeout(Duration::ZERO).is_err());
    assert!(started.elapsed() < AT_ONCE);
    assert!(two.is_broken());
    two.reset();
    assert!(two
        .wait_until(Instant::now() - Duration::from_secs(1))
        .is_err());
    assert!(two.is_broken());
}

// ---------------------------------------------------------------------------
// Timeouts too long for an `Instant` wait forever

/// Timeouts that overflow an `Instant` deadline (or come close): each must
/// behave as "forever", never panic, and never give up early.
fn endless_timeouts() -> Vec<Duration> {
    vec![
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(i64::MAX as u64),
        Duration::from_secs(u64::MAX / 1_000),
        // Fits in an `Instant` on most platforms: simply far away.
        Duration::from_secs(100 * 365 * 24 * 60 * 60),
    ]
}

/// Starts `wait` on another thread, waits until that thread is asleep in
/// it, then runs `satisfy`; returns what the wait returned.
fn satisfied_later<R: Send>(wait: impl FnOnce() -> R + Send, satisfy: impl FnOnce()) -> R {
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::channel();
        let waiter = scope.spawn(move || {
            send.send(kernel_thread_id()).unwrap();
            wait()
        });
        let tid = receive.recv().unwrap();
        wait_until_asleep(tid);
        satisfy();
        join_scoped(waiter)
    })
}

#[test]
fn endless_mutex_waits_are_satisfied_normally() {
    with_watchdog(PATIENCE, || {
        let mutex = Mutex::new(0);
        for timeout in endless_timeouts() {
            let held = mutex.lock();
            let got = satisfied_later(|| mutex.try_lock_for(timeout).map(|g| *g), || drop(held));
            assert_eq!(got, Some(0), "{timeout:?}");
        }
        // A deadline far in the future works too.
        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 60 * 60);
        let held = mutex.lock();
        let got = satisfied_later(|| mutex.try_lock_until(far).is_some(), || drop(held));
        assert!(got);
    });
}

#[test]
fn endless_reentrant_lock_waits_are_satisfied_normally() {
    with_watchdog(PATIENCE, || {
        let lock = ReentrantLock::new(());
        for timeout in endless_timeouts() {
            // The owner re-enters at once whatever the timeout.
            let first = lock.try_lock_for(timeout).unwrap();
            let second = lock.try_lock_for(timeout).unwrap();
            let got = satisfied_later(
                || lock.try_lock_for(timeout).is_some(),
                || drop((first, second)),
            );
            assert!(got, "{timeout:?}");
        }
    });
}

#[test]
fn endless_semaphore_waits_are_satisfied_normally() {
    with_watchdog(PATIENCE, || {
        let semaphore = Semaphore::new(0);
        for timeout in endless_timeouts() {
            let got = satisfied_later(
                || {
                    semaphore
                        .try_acquire_many_for(2, timeout)
                        .map(|permit| permit.count())
                },
                || semaphore.release(2).unwrap(),
            );
            assert_eq!(got, Some(2), "{timeout:?}");
            let got = satisfied_later(
                || {
                    semaphore
                        .try_acquire_for(timeout)
                        .map(|permit| permit.count())
                },
                || semaphore.release(1).unwrap(),
            );
            assert_eq!(got, Some(1), "{timeout:?}");
        }
        assert_eq!(semaphore.available_permits(), 3 * endless_timeouts().len());
    });
}

#[test]
fn endless_event_waits_are_satisfied_normally() {
    with_watchdog(PATIENCE, || {
        for timeout in endless_timeouts() {
            let event = Event::new();
            assert!(
                satisfied_later(|| event.wait_timeout(timeout), || event.set()),
                "{timeout:?}"
            );
        }
    });
}

#[test]
fn endless_condition_waits_are_satisfied_normally() {
    with_watchdog(PATIENCE, || {
        let mutex = Mutex::new(false);
        let condition = Condition::new();
        for timeout in endless_timeouts() {
            *mutex.lock() = false;
            let waited = satisfied_later(
                || {
                    let mut guard = mutex.lock();
                    let plain = condition.wait_timeout(&mut guard, timeout);
                    let looped = condition.wait_timeout_while(&mut guard, timeout, |ready| !*ready);
                    (plain.timed_out(), looped.timed_out(), *guard)
                },
                || {
                    // First wake the plain wait, then satisfy the predicate.
                    assert_eq!(condition.notify_one(), 1);
                    wait_for("the predicate wait", || {
                        format!("{condition:?}").contains("has_waiters: true")
                    });
                    *mutex.lock() = true;
                    assert_eq!(condition.notify_all(), 1);
                },
            );
            assert_eq!(waited, (false, false, true), "{timeout:?}");
        }
    });
}

#[test]
fn endless_barrier_waits_are_satisfied_normally() {
    with_watchdog(PATIENCE, || {
        let barrier = Barrier::new(2);
        for timeout in endless_timeouts() {
            let results = std::thread::scope(|scope| {
                let other = scope.spawn(|| barrier.wait_timeout(timeout));
                wait_for("the first party to wait", || barrier.n_waiting() == 1);
                let mine = barrier.wait_timeout(timeout);
                (mine, join_scoped(other))
            });
            let (mine, theirs) = results;
            assert!(
                mine.is_ok() && theirs.is_ok(),
                "{timeout:?}: {mine:?} {theirs:?}"
            );
            assert!(mine.unwrap().is_leader() ^ theirs.unwrap().is_leader());
            assert!(!barrier.is_broken());
        }
    });
}

// ---------------------------------------------------------------------------
// One Condition, two locks at once

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        String::from("<not a string>")
    }
}

/// Parks a thread on a condition with `first`'s lock, then runs
/// `wait_with_second` (a wait on the same condition with another lock),
/// which must panic with a message; the parked thread is released
/// afterwards, so nothing is left blocked. Returns the condition.
fn two_locks_at_once<B: Sync>(
    first: &Mutex<()>,
    second: &B,
    wait_with_second: impl FnOnce(&Condition, &B),
) -> Condition {
    let condition = Condition::new();
    let holding = Event::new();
    std::thread::scope(|scope| {
        let parked = scope.spawn(|| {
            let mut guard = first.lock();
            holding.set();
            condition.wait_timeout(&mut guard, PATIENCE).timed_out()
        });
        assert!(holding.wait_timeout(PATIENCE));
        // The parked thread lets the lock go only inside its wait, once it
        // is in the condition's queue.
        drop(first.lock());
        let outcome = catch_unwind(AssertUnwindSafe(|| wait_with_second(&condition, second)));
        let message = panic_message(&*outcome.expect_err("a second lock was accepted"));
        assert!(message.contains("two different locks"), "{message:?}");
        assert!(message.contains("one Condition per lock"), "{message:?}");
        assert_eq!(
            condition.notify_all(),
            1,
            "the first waiter is still queued"
        );
        assert!(!join_scoped(parked), "the first waiter was notified");
    });
    condition
}

#[test]
fn a_condition_waited_on_with_two_mutexes_at_once_panics() {
    with_watchdog(PATIENCE, || {
        let first = Mutex::new(());
        let second = Mutex::new(());
        let condition = two_locks_at_once(&first, &second, |condition, second| {
            let mut other = second.lock();
            let refused = catch_unwind(AssertUnwindSafe(|| {
                condition.wait_timeout(&mut other, PATIENCE);
            }));
            // The refused wait kept its lock (it never waited).
            assert!(second.is_locked());
            drop(other);
            if let Err(panic) = refused {
                std::panic::resume_unwind(panic);
            }
        });
        assert!(!second.is_locked());
        // Once nobody waits, the condition may serve another lock.
        let mut guard = second.lock();
        assert!(condition
            .wait_timeout(&mut guard, Duration::from_millis(1))
            .timed_out());
    });
}

#[test]
fn a_condition_waited_on_with_a_mutex_and_a_reentrant_lock_at_once_panics() {
    with_watchdog(PATIENCE, || {
        let first = Mutex::new(());
        let second = ReentrantLock::new(());
        two_locks_at_once(&first, &second, |condition, second| {
            let _outer = second.lock();
            let mut inner = second.lock();
            condition.wait(&mut inner);
        });
        assert!(!second.is_locked(), "the panic unwound through the guards");
    });
}

/// Two reentrant locks must tell apart as well: the condition tells locks
/// by their address, and two `ReentrantLock`s at different addresses are
/// two locks (this is what the mutex-and-reentrant-lock test above cannot
/// see: there the two locks differ in kind as well as in address).
#[test]
fn a_condition_waited_on_with_two_reentrant_locks_at_once_panics() {
    with_watchdog(PATIENCE, || {
        let first = ReentrantLock::new(());
        let second = ReentrantLock::new(());
        let condition = Condition::new();
        let holding = Event::new();
        std::thread::scope(|scope| {
            let parked = scope.spawn(|| {
                let mut guard = first.lock();
                holding.set();
                condition.wait_timeout(&mut guard, PATIENCE).timed_out()
            });
            assert!(holding.wait_timeout(PATIENCE));
            // The parked thread lets the lock go only inside its wait, once
            // it is in the condition's queue.
            drop(first.lock());
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let mut other = second.lock();
                // Short: if the wait is wrongly accepted, it fails quickly.
                condition.wait_timeout(&mut other, Duration::from_millis(100));
            }));
            let message =
                panic_message(&*outcome.expect_err("a second reentrant lock was accepted"));
            assert!(message.contains("two different locks"), "{message:?}");
            assert_eq!(
                condition.notify_all(),
                1,
                "the first waiter is still queued"
            );
            assert!(!join_scoped(parked), "the first waiter was notified");
        });
        assert!(!second.is_locked(), "the panic unwound through the guard");
    });
}
