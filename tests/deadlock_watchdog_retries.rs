//! The watchdog reports a deadlock whose threads retry short timed waits
//! once, however the retries fall between its scans (it re-reported one
//! such deadlock 7 times in 2 s, forgetting it whenever two scans missed a
//! thread between retries); and a deadlock that really ends and forms
//! again is still reported again — also when both threads gave up, released
//! their locks and formed it again (review 8: reported once in three).
#![cfg(feature = "deadlock-detection")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier as StdBarrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{with_watchdog, PATIENCE};
use verisync::deadlock::{self, Deadlock};
use verisync::Mutex;

fn spawn_named<T: Send + 'static>(
    name: String,
    body: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    thread::Builder::new().name(name).spawn(body).unwrap()
}

/// A watchdog every `period` that sends the deadlocks among the threads
/// whose names start with `prefix`, with the time of each report.
fn watch(
    period: Duration,
    prefix: &'static str,
) -> (
    deadlock::WatchdogHandle,
    mpsc::Receiver<(Instant, Deadlock)>,
) {
    let (sender, reports) = mpsc::channel();
    let handle = deadlock::watchdog(period, move |found| {
        for deadlock in found {
            let ours = deadlock.threads.iter().any(|member| {
                member
                    .thread
                    .name
                    .as_deref()
                    .is_some_and(|name| name.starts_with(prefix))
            });
            if ours {
                let _ = sender.send((Instant::now(), deadlock.clone()));
            }
        }
    });
    (handle, reports)
}

/// ABBA whose two threads, each holding its first lock throughout, retry
/// `retry`-long timed waits for the other lock for `lasts`: one deadlock
/// the whole time.
fn retrying_abba(prefix: &str, retry: Duration, lasts: Duration) -> [JoinHandle<()>; 2] {
    let a = Arc::new(Mutex::with_name("retry-A", ()));
    let b = Arc::new(Mutex::with_name("retry-B", ()));
    let both_hold_one = Arc::new(StdBarrier::new(2));
    let spawn = |first: Arc<Mutex<()>>, second: Arc<Mutex<()>>, name: String| {
        let both_hold_one = Arc::clone(&both_hold_one);
        spawn_named(name, move || {
            let _first = first.lock();
            both_hold_one.wait();
            let started = Instant::now();
            while started.elapsed() < lasts {
                // A try that succeeds means the other one already left.
                if second.try_lock_for(retry).is_some() {
                    break;
                }
            }
        })
    };
    [
        spawn(Arc::clone(&a), Arc::clone(&b), format!("{prefix}1")),
        spawn(b, a, format!("{prefix}2")),
    ]
}

/// Runs a retrying ABBA for 1 s under a watchdog; the times of its reports.
fn reports_of_retrying_abba(
    prefix: &'static str,
    retry: Duration,
    period: Duration,
) -> Vec<Duration> {
    let (watchdog, reports) = watch(period, prefix);
    for thread in retrying_abba(prefix, retry, Duration::from_secs(1)) {
        thread.join().unwrap();
    }
    drop(watchdog);
    let got: Vec<Instant> = reports.try_iter().map(|(at, _)| at).collect();
    got.iter().map(|at| at.duration_since(got[0])).collect()
}

#[test]
fn a_deadlock_retried_every_2ms_is_reported_once() {
    with_watchdog(PATIENCE, || {
        let reports = reports_of_retrying_abba(
            "retry-2ms-",
            Duration::from_millis(2),
            Duration::from_millis(1),
        );
        assert_eq!(reports.len(), 1, "reported at {reports:?}");
    });
}

#[test]
fn a_deadlock_retried_every_5ms_is_reported_once() {
    with_watchdog(PATIENCE, || {
        let reports = reports_of_retrying_abba(
            "retry-5ms-",
            Duration::from_millis(5),
            Duration::from_millis(5),
        );
        assert_eq!(reports.len(), 1, "reported at {reports:?}");
    });
}

/// Rounds of a retrying ABBA between the same two threads and locks: in
/// each, once it is reported, one thread gives up and the other gets its
/// lock by a plain retry, which ends the deadlock; the same cycle formed
/// again is a new deadlock, reported again, even if no scan came between
/// the two rounds. (The rounds are separated by `std` barriers, which the
/// diagnostics do not see.)
#[test]
fn a_retried_deadlock_that_ends_and_forms_again_is_reported_again() {
    const ROUNDS: usize = 3;
    with_watchdog(PATIENCE, || {
        let (watchdog, reports) = watch(Duration::from_millis(1), "again-");
        let a = Arc::new(Mutex::with_name("again-A", ()));
        let b = Arc::new(Mutex::with_name("again-B", ()));
        let in_step = Arc::new(StdBarrier::new(2));
        // How many rounds the giver may give up (one per report).
        let rounds_ended = Arc::new(AtomicUsize::new(0));
        let giver = spawn_named("again-1".into(), {
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            let (in_step, rounds_ended) = (Arc::clone(&in_step), Arc::clone(&rounds_ended));
            move || {
                for round in 0..ROUNDS {
                    let held = a.lock();
                    in_step.wait();
                    while rounds_ended.load(Ordering::Relaxed) == round {
                        // The other thread holds `b` until it gets `a`.
                        assert!(b.try_lock_for(Duration::from_millis(2)).is_none());
                    }
                    drop(held);
                    in_step.wait();
                }
            }
        });
        let taker = spawn_named("again-2".into(), {
            let in_step = Arc::clone(&in_step);
            move || {
                for _ in 0..ROUNDS {
                    let held = b.lock();
                    in_step.wait();
                    while a.try_lock_for(Duration::from_millis(2)).is_none() {}
                    drop(held);
                    in_step.wait();
                }
            }
        });
        for round in 0..ROUNDS {
            let (_, deadlock) = reports
                .recv_timeout(PATIENCE / 4)
                .unwrap_or_else(|_| panic!("round {round}'s deadlock was not reported"));
            assert_eq!(deadlock.threads.len(), 2);
            rounds_ended.store(round + 1, Ordering::Relaxed);
        }
        giver.join().unwrap();
        taker.join().unwrap();
        drop(watchdog);
        let more: Vec<_> = reports.try_iter().collect();
        assert!(more.is_empty(), "{} reports more than rounds", more.len());
    });
}

/// Rounds of ABBA between the same two threads and locks. In each round
/// both threads hold their first lock and retry timed waits for the other
/// until the watchdog reported the deadlock; then BOTH give up (neither
/// gets its second lock), both release everything, and 100 ms pass with
/// nothing held (several scans see no deadlock at all); then the same
/// cycle forms again. Each round is a new deadlock: it must be reported
/// again.
fn rounds(prefix: &'static str, between: impl Fn(&Mutex<()>) + Send + Sync + 'static) {
    const ROUNDS: usize = 3;
    with_watchdog(PATIENCE, move || {
        let (watchdog, reports) = watch(Duration::from_millis(1), prefix);
        let a = Arc::new(Mutex::with_name("gave-up-A", ()));
        let b = Arc::new(Mutex::with_name("gave-up-B", ()));
        let other = Arc::new(Mutex::with_name("gave-up-other", ()));
        let in_step = Arc::new(StdBarrier::new(3));
        let reported = Arc::new(AtomicUsize::new(0));
        let between = Arc::new(between);
        let spawn = |first: Arc<Mutex<()>>, second: Arc<Mutex<()>>, name: String| {
            let (in_step, reported) = (Arc::clone(&in_step), Arc::clone(&reported));
            let (between, other) = (Arc::clone(&between), Arc::clone(&other));
            spawn_named(name, move || {
                for round in 0..ROUNDS {
                    let held = first.lock();
                    in_step.wait(); // both hold their first lock
                    let started = Instant::now();
                    while reported.load(Ordering::Relaxed) == round
                        && started.elapsed() < PATIENCE / 8
                    {
                        assert!(second.try_lock_for(Duration::from_millis(2)).is_none());
                    }
                    in_step.wait(); // both gave up, neither got its lock
                    drop(held);
                    between(&other);
                    in_step.wait(); // both released everything
                    in_step.wait(); // the main thread let time pass
                }
            })
        };
        let one = spawn(Arc::clone(&a), Arc::clone(&b), format!("{prefix}1"));
        let two = spawn(b, a, format!("{prefix}2"));
        let mut got = 0;
        for round in 0..ROUNDS {
            in_step.wait();
            if reports.recv_timeout(PATIENCE / 8).is_ok() {
                got += 1;
            } else {
                eprintln!("round {round}: the re-formed deadlock was NOT reported");
            }
            reported.store(round + 1, Ordering::Relaxed);
            in_step.wait();
            in_step.wait();
            // Nothing held, nobody blocked: many scans see no deadlock.
            thread::sleep(Duration::from_millis(100));
            let ours = deadlock::detect().into_iter().any(|found| {
                found.threads.iter().any(|member| {
                    member
                        .thread
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(prefix))
                })
            });
            assert!(!ours, "no deadlock of ours between rounds");
            in_step.wait();
        }
        one.join().unwrap();
        two.join().unwrap();
        drop(watchdog);
        assert_eq!(
            got, ROUNDS,
            "only {got} of {ROUNDS} distinct deadlocks reported"
        );
    });
}

#[test]
fn both_give_up_release_everything_and_deadlock_again_later() {
    rounds("gave-up-plain-", |_| {});
}

/// Same, with plenty of ordinary lock activity in between (the threads
/// take and release a third lock many times, uncontended).
#[test]
fn both_give_up_do_other_locking_and_deadlock_again_later() {
    rounds("gave-up-busy-", |other| {
        for _ in 0..1000 {
            drop(other.lock());
        }
    });
}

/// Control: a thread that, between rounds, waits for a *different* lock
/// (held elsewhere, timed out) starts a new episode: reported again.
#[test]
fn a_wait_for_another_lock_in_between_starts_a_new_episode() {
    rounds("gave-up-other-", |other| {
        let blocker = Mutex::with_name("gave-up-blocker", ());
        let (holding, held) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        thread::scope(|scope| {
            let blocker = &blocker;
            scope.spawn(move || {
                let _held = blocker.lock();
                holding.send(()).unwrap();
                released.recv().unwrap();
            });
            held.recv().unwrap();
            // This (deadlocked-before) thread itself waits for another lock.
            assert!(blocker.try_lock_for(Duration::from_millis(2)).is_none());
            release.send(()).unwrap();
        });
        drop(other.lock());
    });
}
