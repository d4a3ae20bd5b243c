//! Defects an adversarial review of the deadlock diagnostics found, each
//! fixed with its test here: a `Condition` waiter re-taking its lock while
//! holding another is an order edge; the panic switch never panics while
//! a thread unwinds (a second panic aborted the process); locks made by
//! `Default`/`From` are named by the user's line, not verisync's; a
//! `try_lock_until` whose deadline has passed only tries, as `try_lock`,
//! and records no order edge; a guard kept in a thread-local and dropped
//! as its thread ends leaves no phantom holder; the watchdog reports a
//! deadlock whose waits time out and are retried once, not once a retry.
#![cfg(feature = "deadlock-detection")]

mod common;

use std::cell::RefCell;
use std::sync::{mpsc, Arc, Barrier as StdBarrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{with_watchdog, PATIENCE};
use verisync::deadlock::{self, LockOrderViolation};
use verisync::{Condition, Mutex, MutexGuard, ReentrantLock};

fn violations_naming(names: &[&str]) -> Vec<LockOrderViolation> {
    deadlock::lock_order_violations()
        .into_iter()
        .filter(|v| {
            names.iter().all(|n| {
                v.steps
                    .iter()
                    .any(|s| s.first.lock.name == Some(*n) || s.then.lock.name == Some(*n))
            })
        })
        .collect()
}

fn violations_mentioning(name: &str) -> usize {
    deadlock::lock_order_violations()
        .iter()
        .filter(|v| {
            v.steps
                .iter()
                .any(|s| s.first.lock.name == Some(name) || s.then.lock.name == Some(name))
        })
        .count()
}

/// A Condition waiter holding N re-takes M after the wait: a real N → M
/// dependency (another thread doing M then N deadlocks with it). The
/// acquisition M then N on the same thread gives M → N, so the pair is a
/// cycle that lock_order_violations() should report.
#[test]
fn condition_relock_is_an_order_edge() {
    let m = Mutex::with_name("rv-cond-M", ());
    let n = Mutex::with_name("rv-cond-N", ());
    let cond = Condition::new();
    let mut gm = m.lock();
    let _gn = n.lock(); // M -> N
    cond.wait_timeout(&mut gm, Duration::from_millis(5)); // re-takes M holding N: N -> M
    drop(gm);
    let found = violations_naming(&["rv-cond-M", "rv-cond-N"]);
    assert_eq!(
        found.len(),
        1,
        "re-locking M after a condition wait while holding N is not an edge: \
         M->N / N->M goes unreported"
    );
}

/// With the panic switch on, a Drop that runs during unwinding and closes a
/// lock-order cycle panics while panicking: the process aborts.
#[test]
fn the_panic_switch_does_not_panic_while_unwinding() {
    if std::env::var_os("RV_CHILD").is_some() {
        let a = Mutex::with_name("rv-unw-A", ());
        let b = Mutex::with_name("rv-unw-B", ());
        drop((a.lock(), b.lock()));
        deadlock::panic_on_lock_order_violation(true);
        struct Cleanup<'a>(&'a Mutex<()>, &'a Mutex<()>);
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                let _b = self.1.lock();
                let _a = self.0.lock();
            }
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _c = Cleanup(&a, &b);
            panic!("rv-unw-first-panic");
        }));
        assert!(r.is_err());
        println!("rv-unw-survived");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_panic_switch_does_not_panic_while_unwinding",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RV_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "child status {:?}\nstderr tail: {}",
        out.status,
        &stderr[stderr.len().saturating_sub(600)..]
    );
    assert!(
        stdout.contains("rv-unw-survived"),
        "the process aborted: the panic switch fired inside a Drop during unwinding"
    );
}

/// Unnamed locks from `Default` / `From` (e.g. `#[derive(Default)]`
/// structs) are named by the site where they were created: the user's line.
#[test]
fn default_and_from_locks_are_named_by_the_users_line() {
    let a: Mutex<u8> = Mutex::default();
    let b: Mutex<u8> = Mutex::from(7);
    let r: ReentrantLock<u8> = ReentrantLock::default();
    drop((a.lock(), b.lock(), r.lock()));
    drop((r.lock(), a.lock()));
    drop((b.lock(), a.lock()));
    let sites: Vec<String> = deadlock::lock_order_violations()
        .iter()
        .flat_map(|v| v.steps.iter())
        .filter(|s| s.thread.name.as_deref() == thread::current().name())
        .flat_map(|s| [s.first.lock.created_at, s.then.lock.created_at])
        .map(|l| l.to_string())
        .collect();
    eprintln!("created_at of Default/From locks: {sites:?}");
    assert!(!sites.is_empty());
    assert!(
        sites
            .iter()
            .all(|s| s.starts_with("tests/deadlock_review_fixes.rs")),
        "{sites:?}"
    );
}

/// `try_lock_until` with a deadline already past "tries once" like
/// `try_lock`, which records no order edge; yet it closes a cycle here.
#[test]
fn past_deadline_try_lock_until_is_like_try_lock() {
    let a = Mutex::with_name("rv-past-A", ());
    let b = Mutex::with_name("rv-past-B", ());
    drop((a.lock(), b.lock()));
    {
        let _b = b.lock();
        let past = Instant::now() - Duration::from_secs(1);
        assert!(a.try_lock_until(past).is_some());
    }
    assert_eq!(
        violations_mentioning("rv-past-A"),
        0,
        "a past-deadline try_lock_until cannot block but was counted as an order edge"
    );
}

/// A guard parked in a `thread_local!` is dropped as its thread ends, after
/// the diagnostics' own thread-locals are gone. Its release is still
/// recorded: the ended thread is not left "holding" the lock, so it is not
/// blamed for it and a real ABBA cycle on that lock afterwards is found.
#[test]
fn a_guard_dropped_at_thread_exit_leaves_no_phantom_holder() {
    static P: Mutex<()> = Mutex::with_name("tls-exit-P", ());
    static Q: Mutex<()> = Mutex::with_name("tls-exit-Q", ());
    thread_local! {
        static KEPT: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
    }
    with_watchdog(PATIENCE, || {
        // `KEPT` is first used before the lock is taken, so its destructor
        // runs after the diagnostics' own thread-local's.
        thread::Builder::new()
            .name("tls-exit-keeper".into())
            .spawn(|| KEPT.with(|kept| *kept.borrow_mut() = Some(P.lock())))
            .unwrap()
            .join()
            .unwrap();
        assert!(!P.is_locked(), "the guard was dropped as its thread ended");
        let both_hold_one = Arc::new(StdBarrier::new(2));
        let spawn = |name: &str, first: &'static Mutex<()>, second: &'static Mutex<()>| {
            let both_hold_one = Arc::clone(&both_hold_one);
            thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let _first = first.lock();
                    both_hold_one.wait();
                    second.try_lock_for(Duration::from_secs(3)).is_some()
                })
                .unwrap()
        };
        let one = spawn("tls-exit-1", &P, &Q);
        let two = spawn("tls-exit-2", &Q, &P);
        let ours = |name: &Option<String>| name.as_deref().is_some_and(|n| n.starts_with("tls-"));
        let mut found = Vec::new();
        while found.is_empty() && !one.is_finished() && !two.is_finished() {
            found = deadlock::detect()
                .into_iter()
                .filter(|cycle| cycle.threads.iter().any(|member| ours(&member.thread.name)))
                .collect();
            thread::sleep(Duration::from_millis(1));
        }
        let (got_one, got_two) = (one.join().unwrap(), two.join().unwrap());
        assert!(!(got_one && got_two), "the two threads were deadlocked");
        assert_eq!(found.len(), 1, "the real ABBA cycle on P and Q was missed");
        let names: Vec<_> = found[0]
            .threads
            .iter()
            .map(|member| member.thread.name.clone().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{}", found[0]);
        assert!(
            !names.contains(&"tls-exit-keeper".to_owned()),
            "{}",
            found[0]
        );
        assert!(deadlock::blocked_threads()
            .iter()
            .all(|blocked| !ours(&blocked.thread.name)));
    });
}

/// Two threads in an ABBA deadlock each retry a timed `try_lock_for` in a
/// loop (every retry is a new wait, with a new start time): the watchdog
/// reports the deadlock once, not once per retry. A different cycle formed
/// afterwards (other threads) is a new deadlock and is reported too.
#[test]
fn the_watchdog_reports_a_deadlock_of_retried_timed_waits_once() {
    const PERIOD: Duration = Duration::from_millis(20);
    const RETRY: Duration = Duration::from_millis(100);
    const RETRIES: usize = 6;
    with_watchdog(PATIENCE, || {
        let (reports_tx, reports) = mpsc::channel::<Vec<String>>();
        let watchdog = deadlock::watchdog(PERIOD, move |found| {
            for cycle in found {
                let mut names: Vec<String> = cycle
                    .threads
                    .iter()
                    .filter_map(|member| member.thread.name.clone())
                    .filter(|name| name.starts_with("retry-"))
                    .collect();
                if !names.is_empty() {
                    names.sort();
                    let _ = reports_tx.send(names);
                }
            }
        });
        let a: &'static Mutex<()> = Box::leak(Box::new(Mutex::with_name("retry-A", ())));
        let b: &'static Mutex<()> = Box::leak(Box::new(Mutex::with_name("retry-B", ())));
        // Each thread takes `first`, then retries `second` until both gave up.
        let deadlock_of = |names: [&str; 2]| {
            let both_hold_one = Arc::new(StdBarrier::new(2));
            let threads: Vec<_> = [(names[0], a, b), (names[1], b, a)]
                .into_iter()
                .map(|(name, first, second)| {
                    let both_hold_one = Arc::clone(&both_hold_one);
                    thread::Builder::new()
                        .name(name.into())
                        .spawn(move || {
                            let _first = first.lock();
                            both_hold_one.wait();
                            let gave_up =
                                (0..RETRIES).all(|_| second.try_lock_for(RETRY).is_none());
                            // Neither lets go before both gave up.
                            both_hold_one.wait();
                            gave_up
                        })
                        .unwrap()
                })
                .collect();
            for thread in threads {
                assert!(thread.join().unwrap(), "the other thread holds it");
            }
        };
        deadlock_of(["retry-1", "retry-2"]);
        deadlock_of(["retry-3", "retry-4"]);
        // Both deadlocks have ended; a scan in progress may still report.
        thread::sleep(3 * PERIOD);
        drop(watchdog);
        let all: Vec<Vec<String>> = reports.try_iter().collect();
        let count = |names: [&str; 2]| all.iter().filter(|found| **found == names).count();
        assert_eq!(count(["retry-1", "retry-2"]), 1, "{all:?}");
        assert_eq!(count(["retry-3", "retry-4"]), 1, "{all:?}");
        assert_eq!(all.len(), 2, "{all:?}");
    });
}
