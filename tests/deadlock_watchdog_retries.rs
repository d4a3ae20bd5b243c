//! The watchdog reports a deadlock whose threads retry short timed waits
//! once, however the retries fall between its scans (it re-reported one
//! such deadlock 7 times in 2 s, forgetting it whenever two scans missed a
//! thread between retries); and a deadlock that really ends and forms
//! again is still reported again.
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
