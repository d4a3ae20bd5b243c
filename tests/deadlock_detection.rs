//! `verisync::deadlock` on real threads: real deadlocks (ABBA, a ring of
//! three, a condition waiter that cannot take its lock back, reentrant
//! locks, timed and untimed waits mixed) are reported with the right
//! threads, lock names and source lines, and then end — every blocked
//! thread here either times out or is released by the test.
//!
//! The tests of one binary share the process-wide registry, so each test
//! names its threads uniquely and looks only at reports about them.
#![cfg(feature = "deadlock-detection")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{with_watchdog, PATIENCE};
use verisync::deadlock::{self, Deadlock, DeadlockedThread};
use verisync::{Barrier, Condition, Mutex, ReentrantLock};

/// How long a timed wait in a deadlock lasts: long enough for the test to
/// see the deadlock on a loaded machine, short enough to keep the suite fast.
const TIMED_WAIT: Duration = Duration::from_secs(3);

fn spawn_named<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .unwrap()
}

/// The names of a deadlock's threads, in report order.
fn names(deadlock: &Deadlock) -> Vec<String> {
    deadlock
        .threads
        .iter()
        .map(|member| member.thread.name.clone().unwrap_or_default())
        .collect()
}

/// Polls `detect()` until it reports a deadlock of exactly the threads
/// named `members` (in some rotation), and returns it with how many
/// deadlocks among those threads that call reported.
fn wait_for_deadlock(members: &[&str]) -> (Deadlock, usize) {
    let mut wanted: Vec<&str> = members.to_vec();
    wanted.sort_unstable();
    loop {
        let ours: Vec<Deadlock> = deadlock::detect()
            .into_iter()
            .filter(|found| {
                names(found)
                    .iter()
                    .any(|name| members.contains(&name.as_str()))
            })
            .collect();
        if let Some(found) = ours.iter().find(|found| {
            let mut got = names(found);
            got.sort_unstable();
            got == wanted
        }) {
            return (found.clone(), ours.len());
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn member<'a>(deadlock: &'a Deadlock, name: &str) -> &'a DeadlockedThread {
    deadlock
        .threads
        .iter()
        .find(|member| member.thread.name.as_deref() == Some(name))
        .unwrap()
}

/// Checks one member: it waits for `waits_for` at `wait_line` of this file
/// and holds exactly `holds`, taken at `held_line`.
fn check_member(
    member: &DeadlockedThread,
    waits_for: &str,
    wait_line: u32,
    holds: &[&str],
    held_line: u32,
) {
    assert_eq!(member.waits_for.name, Some(waits_for), "{member}");
    assert_eq!(member.waiting_at.file(), file!(), "{member}");
    assert_eq!(member.waiting_at.line(), wait_line, "{member}");
    let held: Vec<_> = member
        .holds
        .iter()
        .map(|held| held.lock.name.unwrap())
        .collect();
    assert_eq!(held, holds, "{member}");
    for held in &member.holds {
        assert_eq!(held.taken_at.file(), file!(), "{member}");
        assert_eq!(held.taken_at.line(), held_line, "{member}");
    }
}

/// Each thread takes `first`, waits at the barrier until all hold theirs,
/// then waits for `second` with a timeout. Returns the lines of the two
/// acquisitions and whether the second succeeded.
fn hold_then_wait_timed(
    first: &Mutex<()>,
    second: &Mutex<()>,
    all_hold_one: &Barrier,
) -> (u32, u32, bool) {
    let first_line = line!() + 1;
    let _first = first.lock();
    all_hold_one.wait().unwrap();
    let second_line = line!() + 1;
    let got = second.try_lock_for(TIMED_WAIT).is_some();
    (first_line, second_line, got)
}

#[test]
fn abba_is_reported_with_threads_names_and_lines_then_times_out() {
    with_watchdog(PATIENCE, || {
        let a = Arc::new(Mutex::with_name("abba-A", ()));
        let b = Arc::new(Mutex::with_name("abba-B", ()));
        let barrier = Arc::new(Barrier::new(2));
        let one = {
            let (a, b, barrier) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&barrier));
            spawn_named("abba-1", move || hold_then_wait_timed(&a, &b, &barrier))
        };
        let two = {
            let (a, b, barrier) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&barrier));
            spawn_named("abba-2", move || hold_then_wait_timed(&b, &a, &barrier))
        };
        let (found, count) = wait_for_deadlock(&["abba-1", "abba-2"]);
        assert_eq!(count, 1, "one cycle, reported once: {found}");
        let (first_line, second_line, got_one) = one.join().unwrap();
        let (_, _, got_two) = two.join().unwrap();
        // The first to time out releases its lock, so the other may then get
        // its second lock; at least one timed out.
        assert!(!(got_one && got_two), "the deadlock ended by a timeout");
        check_member(
            member(&found, "abba-1"),
            "abba-B",
            second_line,
            &["abba-A"],
            first_line,
        );
        check_member(
            member(&found, "abba-2"),
            "abba-A",
            second_line,
            &["abba-B"],
            first_line,
        );
        let text = found.to_string();
        let here = file!();
        assert!(
            text.contains(&format!(
                "abba-1 holds abba-A (taken at {here}:{first_line}) and waits for abba-B (at {here}:{second_line})"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "abba-2 holds abba-B (taken at {here}:{first_line}) and waits for abba-A (at {here}:{second_line})"
            )),
            "{text}"
        );
        // Timed out and released: no deadlock among them any more.
        assert!(deadlock::detect()
            .iter()
            .all(|found| !names(found).iter().any(|name| name.starts_with("abba-"))));
    });
}

#[test]
fn a_ring_of_three_threads_is_one_deadlock() {
    with_watchdog(PATIENCE, || {
        let locks: Arc<Vec<Mutex<()>>> = Arc::new(vec![
            Mutex::with_name("ring-A", ()),
            Mutex::with_name("ring-B", ()),
            Mutex::with_name("ring-C", ()),
        ]);
        let barrier = Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..3)
            .map(|index| {
                let (locks, barrier) = (Arc::clone(&locks), Arc::clone(&barrier));
                spawn_named(&format!("ring-{}", index + 1), move || {
                    hold_then_wait_timed(&locks[index], &locks[(index + 1) % 3], &barrier)
                })
            })
            .collect();
        let (found, count) = wait_for_deadlock(&["ring-1", "ring-2", "ring-3"]);
        assert_eq!(count, 1, "{found}");
        let lines: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let (first_line, second_line, _) = lines[0];
        assert!(lines.iter().any(|(_, _, got)| !got), "ended by a timeout");
        check_member(
            member(&found, "ring-1"),
            "ring-B",
            second_line,
            &["ring-A"],
            first_line,
        );
        check_member(
            member(&found, "ring-2"),
            "ring-C",
            second_line,
            &["ring-B"],
            first_line,
        );
        check_member(
            member(&found, "ring-3"),
            "ring-A",
            second_line,
            &["ring-C"],
            first_line,
        );
        // Cycle order: each waits for a lock the next one holds.
        for (index, this) in found.threads.iter().enumerate() {
            let next = &found.threads[(index + 1) % 3];
            assert_eq!(this.waits_for.id, next.holds[0].lock.id, "{found}");
        }
    });
}

#[test]
fn a_condition_waiter_that_cannot_take_its_lock_back_is_in_the_cycle() {
    with_watchdog(PATIENCE, || {
        let shared = Arc::new((
            Mutex::with_name("cond-items", false),
            Mutex::with_name("cond-log", ()),
            Condition::new(),
        ));
        let (waiting_tx, waiting) = mpsc::channel();
        let waiter = {
            let shared = Arc::clone(&shared);
            spawn_named("cond-waiter", move || {
                let (items, log, changed) = &*shared;
                let log_line = line!() + 1;
                let _log = log.lock();
                let items_line = line!() + 1;
                let mut ready = items.lock();
                waiting_tx.send(()).unwrap();
                let wait_line = line!() + 1;
                changed.wait_while(&mut ready, |ready| !*ready);
                (log_line, items_line, wait_line)
            })
        };
        waiting.recv().unwrap();
        let notifier = {
            let shared = Arc::clone(&shared);
            spawn_named("cond-notifier", move || {
                let (items, log, changed) = &*shared;
                let items_line = line!() + 1;
                let mut ready = items.lock(); // free once the waiter waits
                *ready = true;
                changed.notify_all();
                // The waiter holds `log` and now waits for `items`: ABBA.
                let log_line = line!() + 1;
                let got = log.try_lock_for(TIMED_WAIT).is_some();
                (items_line, log_line, got)
            })
        };
        let (found, count) = wait_for_deadlock(&["cond-waiter", "cond-notifier"]);
        assert_eq!(count, 1, "{found}");
        let (items_line, log_line, got) = notifier.join().unwrap();
        assert!(!got);
        let (waiter_log_line, _, wait_line) = waiter.join().unwrap();
        check_member(
            member(&found, "cond-notifier"),
            "cond-log",
            log_line,
            &["cond-items"],
            items_line,
        );
        let waiter = member(&found, "cond-waiter");
        check_member(
            waiter,
            "cond-items",
            wait_line,
            &["cond-log"],
            waiter_log_line,
        );
    });
}

#[test]
fn reentrant_locks_deadlock_too_and_every_level_is_listed() {
    with_watchdog(PATIENCE, || {
        let a = Arc::new(ReentrantLock::with_name("re-A", ()));
        let b = Arc::new(ReentrantLock::with_name("re-B", ()));
        let barrier = Arc::new(Barrier::new(2));
        let spawn = |first: Arc<ReentrantLock<()>>, second: Arc<ReentrantLock<()>>, name| {
            let barrier = Arc::clone(&barrier);
            spawn_named(name, move || {
                let first_line = line!() + 1;
                let _outer = first.lock();
                let _inner = first.lock(); // a re-lock: a second level, no edge
                barrier.wait().unwrap();
                let second_line = line!() + 1;
                let got = second.try_lock_for(TIMED_WAIT).is_some();
                (first_line, second_line, got)
            })
        };
        let one = spawn(Arc::clone(&a), Arc::clone(&b), "re-1");
        let two = spawn(Arc::clone(&b), Arc::clone(&a), "re-2");
        let (found, _) = wait_for_deadlock(&["re-1", "re-2"]);
        let (first_line, second_line, got_one) = one.join().unwrap();
        let (_, _, got_two) = two.join().unwrap();
        assert!(!(got_one && got_two), "ended by a timeout");
        let re_1 = member(&found, "re-1");
        assert_eq!(re_1.waits_for.name, Some("re-B"));
        assert_eq!(re_1.waiting_at.line(), second_line);
        assert_eq!(re_1.holds.len(), 2, "two levels of re-A: {found}");
        assert_eq!(re_1.holds[0].taken_at.line(), first_line);
        assert_eq!(re_1.holds[1].taken_at.line(), first_line + 1);
        assert_eq!(member(&found, "re-2").waits_for.name, Some("re-A"));
    });
}

#[test]
fn mixed_timed_and_untimed_waits_end_when_the_timed_one_gives_up() {
    with_watchdog(PATIENCE, || {
        let a = Arc::new(Mutex::with_name("mix-A", ()));
        let b = Arc::new(Mutex::with_name("mix-B", ()));
        let barrier = Arc::new(Barrier::new(2));
        let untimed = {
            let (a, b, barrier) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&barrier));
            spawn_named("mix-untimed", move || {
                let _a = a.lock();
                barrier.wait().unwrap();
                let line = line!() + 1;
                let _b = b.lock(); // untimed: released when mix-timed gives up
                line
            })
        };
        let timed = {
            let (a, b, barrier) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&barrier));
            spawn_named("mix-timed", move || hold_then_wait_timed(&b, &a, &barrier))
        };
        let (found, _) = wait_for_deadlock(&["mix-untimed", "mix-timed"]);
        let (_, timed_line, got) = timed.join().unwrap();
        assert!(!got);
        let untimed_line = untimed.join().unwrap();
        assert_eq!(
            member(&found, "mix-untimed").waiting_at.line(),
            untimed_line
        );
        assert_eq!(member(&found, "mix-timed").waiting_at.line(), timed_line);
    });
}

#[test]
fn a_thread_locking_a_mutex_it_holds_is_a_cycle_of_one() {
    with_watchdog(PATIENCE, || {
        let self_lock = spawn_named("self-1", || {
            let m = Mutex::with_name("self-M", ());
            let _held = m.lock();
            let got = m.try_lock_for(TIMED_WAIT).is_some();
            got
        });
        let (found, _) = wait_for_deadlock(&["self-1"]);
        assert!(!self_lock.join().unwrap());
        assert_eq!(found.threads.len(), 1);
        assert_eq!(found.threads[0].waits_for.name, Some("self-M"));
        assert_eq!(
            found.threads[0].holds[0].lock.id,
            found.threads[0].waits_for.id
        );
    });
}

#[test]
fn detection_does_not_disturb_the_threads_it_reports() {
    // Waiters that are not deadlocked keep waiting and get the lock as
    // usual while `detect` and `blocked_threads` run in a loop.
    with_watchdog(PATIENCE, || {
        let m = Arc::new(Mutex::with_name("calm-M", 0u32));
        let held = m.lock();
        let waiters: Vec<_> = (0..3)
            .map(|index| {
                let m = Arc::clone(&m);
                spawn_named(&format!("calm-{index}"), move || *m.lock() += 1)
            })
            .collect();
        loop {
            let ours = deadlock::blocked_threads()
                .into_iter()
                .filter(|blocked| {
                    blocked.lock.as_ref().and_then(|lock| lock.name) == Some("calm-M")
                })
                .count();
            assert!(deadlock::detect()
                .iter()
                .all(|found| !names(found).iter().any(|name| name.starts_with("calm-"))));
            if ours == 3 {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(*m.lock(), 3);
    });
}

#[test]
fn the_watchdog_reports_a_new_deadlock_once_within_two_periods() {
    with_watchdog(PATIENCE, || {
        const PERIOD: Duration = Duration::from_millis(250);
        let calls = Arc::new(AtomicUsize::new(0));
        let (report_tx, reports) = mpsc::channel();
        let watchdog = {
            let calls = Arc::clone(&calls);
            deadlock::watchdog(PERIOD, move |found| {
                let ours: Vec<Deadlock> = found
                    .iter()
                    .filter(|found| names(found).iter().any(|name| name.starts_with("dog-")))
                    .cloned()
                    .collect();
                if !ours.is_empty() {
                    calls.fetch_add(1, Ordering::SeqCst);
                    report_tx.send((Instant::now(), ours)).unwrap();
                }
            })
        };
        let a = Arc::new(Mutex::with_name("dog-A", ()));
        let b = Arc::new(Mutex::with_name("dog-B", ()));
        let barrier = Arc::new(Barrier::new(2));
        let one = {
            let (a, b, barrier) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&barrier));
            spawn_named("dog-1", move || hold_then_wait_timed(&a, &b, &barrier))
        };
        let two = {
            let (a, b, barrier) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&barrier));
            spawn_named("dog-2", move || hold_then_wait_timed(&b, &a, &barrier))
        };
        let (reported_at, ours) = reports.recv().unwrap();
        assert_eq!(ours.len(), 1);
        // The deadlock formed when its last member started to wait.
        let formed = ours[0]
            .threads
            .iter()
            .map(|member| member.since)
            .max()
            .unwrap();
        let delay = reported_at - formed;
        assert!(delay <= 2 * PERIOD, "reported {delay:?} after it formed");
        one.join().unwrap();
        two.join().unwrap();
        // Several more periods passed while the deadlock lasted: still one call.
        drop(watchdog);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_leaked_guard_stays_held_in_the_reports_and_the_lock_can_be_dropped() {
    with_watchdog(PATIENCE, || {
        let m = Arc::new(Mutex::with_name("leak-M", ()));
        let gate = Arc::new(Mutex::with_name("leak-gate", ()));
        let closed = gate.lock();
        let leaker = {
            let (m, gate) = (Arc::clone(&m), Arc::clone(&gate));
            spawn_named("leak-1", move || {
                std::mem::forget(m.lock());
                let got = gate.try_lock_for(TIMED_WAIT).is_some();
                got
            })
        };
        let blocked = loop {
            if let Some(found) = deadlock::blocked_threads()
                .into_iter()
                .find(|blocked| blocked.thread.name.as_deref() == Some("leak-1"))
            {
                break found;
            }
            thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(blocked.lock.as_ref().unwrap().name, Some("leak-gate"));
        let held: Vec<_> = blocked.holds.iter().map(|held| held.lock.name).collect();
        assert_eq!(held, [Some("leak-M")], "{blocked}");
        drop(closed);
        assert!(leaker.join().unwrap());
        assert!(m.is_locked(), "the leaked guard keeps the lock held");
        // Dropping a lock whose guard was leaked is allowed and clean.
        drop(Arc::into_inner(m).unwrap());
    });
}

#[test]
fn blocked_threads_explains_a_hang_that_is_not_a_lock_cycle() {
    with_watchdog(PATIENCE, || {
        let ready = Arc::new(verisync::Event::new());
        let meeting = Arc::new(Barrier::new(2));
        let permits = Arc::new(verisync::Semaphore::new(0));
        let config = Arc::new(Mutex::with_name("dump-config", ()));
        let (lines_tx, lines) = mpsc::channel();
        let event_waiter = {
            let (ready, config, lines_tx) =
                (Arc::clone(&ready), Arc::clone(&config), lines_tx.clone());
            spawn_named("dump-event", move || {
                let held_line = line!() + 1;
                let _config = config.lock();
                let wait_line = line!() + 2;
                lines_tx.send(("dump-event", held_line, wait_line)).unwrap();
                ready.wait();
            })
        };
        let barrier_waiter = {
            let (meeting, lines_tx) = (Arc::clone(&meeting), lines_tx.clone());
            spawn_named("dump-barrier", move || {
                lines_tx.send(("dump-barrier", 0, line!() + 1)).unwrap();
                meeting.wait().unwrap();
            })
        };
        let semaphore_waiter = {
            let permits = Arc::clone(&permits);
            spawn_named("dump-semaphore", move || {
                lines_tx.send(("dump-semaphore", 0, line!() + 1)).unwrap();
                drop(permits.acquire());
            })
        };
        let sent: HashMap<&str, (u32, u32)> = (0..3)
            .map(|_| {
                let (name, held, wait) = lines.recv().unwrap();
                (name, (held, wait))
            })
            .collect();
        let (held_line, event_line) = sent["dump-event"];
        let dump = loop {
            let dump: Vec<_> = deadlock::blocked_threads()
                .into_iter()
                .filter(|blocked| {
                    blocked
                        .thread
                        .name
                        .as_deref()
                        .is_some_and(|name| name.starts_with("dump-"))
                })
                .collect();
            if dump.len() == 3 {
                break dump;
            }
            thread::sleep(Duration::from_millis(1));
        };
        let find = |name: &str| {
            dump.iter()
                .find(|blocked| blocked.thread.name.as_deref() == Some(name))
                .unwrap()
        };
        let event = find("dump-event");
        assert_eq!(event.operation, "Event::wait");
        assert_eq!(
            (event.waiting_at.file(), event.waiting_at.line()),
            (file!(), event_line)
        );
        assert_eq!(event.holds.len(), 1);
        assert_eq!(event.holds[0].lock.name, Some("dump-config"));
        assert_eq!(event.holds[0].taken_at.line(), held_line);
        assert!(event.to_string().contains("in Event::wait"), "{event}");
        assert!(event.to_string().contains("holding dump-config"), "{event}");
        let barrier = find("dump-barrier");
        assert_eq!(
            barrier.operation, "Barrier::wait",
            "the user's call, not the inner Condition"
        );
        let semaphore = find("dump-semaphore");
        assert_eq!(semaphore.operation, "Semaphore::acquire");
        assert_eq!(barrier.waiting_at.line(), sent["dump-barrier"].1);
        assert_eq!(semaphore.waiting_at.line(), sent["dump-semaphore"].1);
        assert!(deadlock::detect()
            .iter()
            .all(|found| !names(found).iter().any(|name| name.starts_with("dump-"))));
        ready.set();
        meeting.wait().unwrap();
        permits.release(1).unwrap();
        event_waiter.join().unwrap();
        barrier_waiter.join().unwrap();
        semaphore_waiter.join().unwrap();
        // Nobody of this test is blocked any more.
        assert!(deadlock::blocked_threads().iter().all(|blocked| !blocked
            .thread
            .name
            .as_deref()
            .unwrap_or("")
            .starts_with("dump-")));
    });
}
