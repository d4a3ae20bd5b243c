//! review19: attacks on the scope's counting ahead ("credit", 64 tasks at a
//! time on the scope's own thread, given back before the wait) and on the
//! ownership word that now holds the submission number. Each test checks,
//! as `scope` returns, that every task ran exactly once (a borrowed counter
//! short of its total would mean the scope returned with a task unsettled),
//! around the credit's boundaries (63, 64, 65, 128, 129 tasks), with tasks
//! submitting from workers, inline on the scope's thread, after the body
//! returned, in nested scopes, after a panic, and on a shut-down pool.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;

use verisync::{Event, Scope, TaskError, ThreadPool};

use common::{
    kernel_thread_id, opens_when_asleep, quiet_deliberate_panics, with_watchdog, PATIENCE,
};

/// Task counts around the credit batch of 64.
const AROUND_THE_BATCH: [usize; 9] = [1, 2, 63, 64, 65, 127, 128, 129, 200];

/// The number in a scope's `Debug` (`unfinished_tasks: N`).
fn shown_unfinished(scope: &Scope<'_, '_>) -> usize {
    let shown = format!("{scope:?}");
    shown
        .split("unfinished_tasks: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no count of unfinished tasks in {shown}"))
}

/// The body submits `n` tasks; every seventh submits a child from its
/// worker (one at a time, not from the credit). Repeated, so that settles
/// race the give-back of the credit and the last settle races the wait.
#[test]
fn every_task_is_waited_for_around_the_credit_batch() {
    with_watchdog(PATIENCE, || {
        for workers in [1, 2, 3] {
            let pool = ThreadPool::new(workers);
            for _round in 0..20 {
                for n in AROUND_THE_BATCH {
                    let ran = AtomicUsize::new(0);
                    pool.scope(|s| {
                        let ran = &ran;
                        for index in 0..n {
                            s.submit(move || {
                                ran.fetch_add(1, SeqCst);
                                if index % 7 == 0 {
                                    s.submit(move || ran.fetch_add(1, SeqCst));
                                }
                            });
                        }
                    });
                    let children = n.div_ceil(7);
                    assert_eq!(
                        ran.load(SeqCst),
                        n + children,
                        "{n} tasks, {workers} workers"
                    );
                }
            }
        }
    });
}

/// A scope on the only worker of its pool: the body joins every third task
/// (run inline on the scope's thread, which holds credit), each of which
/// submits a child from that same thread; the helping wait then runs the
/// rest inline, and their children are counted one at a time.
#[test]
fn a_scope_on_the_only_worker_counts_inline_submits_with_and_without_credit() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        for n in AROUND_THE_BATCH {
            let inner_pool = Arc::clone(&pool);
            let outer = pool.submit(move || {
                let ran = AtomicUsize::new(0);
                inner_pool.scope(|s| {
                    let ran = &ran;
                    let mut joined = 0;
                    for index in 0..n {
                        let handle = s.submit(move || {
                            ran.fetch_add(1, SeqCst);
                            s.submit(move || ran.fetch_add(1, SeqCst));
                            index
                        });
                        if index % 3 == 0 {
                            assert_eq!(handle.join(), Ok(index));
                            joined += 1;
                        }
                    }
                    assert!(shown_unfinished(s) >= n - joined, "{s:?}");
                });
                ran.load(SeqCst)
            });
            assert_eq!(outer.join(), Ok(2 * n), "{n} tasks");
        }
    });
}

/// Two scopes open on one thread at once (the inner in the outer's body):
/// both count ahead on it. The inner body and the inner tasks (on workers)
/// submit into the outer scope too.
#[test]
fn nested_scopes_on_one_thread_both_counting_ahead() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        for n in AROUND_THE_BATCH {
            let outer_ran = AtomicUsize::new(0);
            let inner_ran = AtomicUsize::new(0);
            pool.scope(|outer| {
                let outer_ran = &outer_ran;
                let inner_ran = &inner_ran;
                pool.scope(|inner| {
                    for _ in 0..n {
                        outer.submit(move || outer_ran.fetch_add(1, SeqCst));
                        inner.submit(move || {
                            inner_ran.fetch_add(1, SeqCst);
                            outer.submit(move || outer_ran.fetch_add(1, SeqCst));
                        });
                    }
                });
                assert_eq!(inner_ran.load(SeqCst), n, "the inner scope returned early");
            });
            assert_eq!(outer_ran.load(SeqCst), 2 * n, "{n} tasks");
        }
    });
}

/// The body takes credit (65 tasks: 63 left) and panics; the tasks are
/// held until the scope's thread sleeps. The scope must still wait for all
/// of them, give its credit back (or it would sleep forever) and pass the
/// panic on.
#[test]
fn a_body_that_panics_holding_credit_still_waits_and_does_not_hang() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        for n in [65, 64, 1, 129] {
            let gate = Arc::new(Event::new());
            let (send_tid, opener) = opens_when_asleep(&gate);
            let ran = AtomicUsize::new(0);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                pool.scope(|s| {
                    let ran = &ran;
                    for _ in 0..n {
                        let gate = Arc::clone(&gate);
                        s.submit(move || {
                            gate.wait();
                            ran.fetch_add(1, SeqCst);
                        });
                    }
                    send_tid.send(kernel_thread_id()).unwrap();
                    panic!("deliberate panic in the body holding credit");
                })
            }));
            assert!(outcome.is_err(), "the body's panic was lost");
            assert_eq!(
                ran.load(SeqCst),
                n,
                "the scope returned before its tasks finished"
            );
            opener.join().unwrap();
        }
    });
}

/// Tasks submit after the body returned, from workers, while the scope's
/// thread sleeps (it gave its credit back): counted one at a time.
#[test]
fn tasks_submitting_after_the_body_returned_are_waited_for() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        for n in [63, 64, 65, 128] {
            let gate = Arc::new(Event::new());
            let (send_tid, opener) = opens_when_asleep(&gate);
            let ran = AtomicUsize::new(0);
            pool.scope(|s| {
                let ran = &ran;
                for _ in 0..n {
                    let gate = Arc::clone(&gate);
                    s.submit(move || {
                        gate.wait();
                        for _ in 0..2 {
                            s.submit(move || ran.fetch_add(1, SeqCst));
                        }
                        ran.fetch_add(1, SeqCst);
                    });
                }
                send_tid.send(kernel_thread_id()).unwrap();
            });
            assert_eq!(ran.load(SeqCst), 3 * n, "{n} tasks");
            opener.join().unwrap();
        }
    });
}

/// A pool shut down inside the body refuses the body's later submits: each
/// refused task settles at once on the scope's thread, which holds credit
/// meanwhile. The scope returns (no count left over) and drops every
/// refused closure.
#[test]
fn refused_submits_settle_on_the_scope_thread_while_it_holds_credit() {
    with_watchdog(PATIENCE, || {
        for before in [0, 1, 63, 64, 65] {
            let pool = ThreadPool::new(2);
            let dropped = AtomicUsize::new(0);
            let ran = AtomicUsize::new(0);
            struct CountsDrop<'a>(&'a AtomicUsize);
            impl Drop for CountsDrop<'_> {
                fn drop(&mut self) {
                    self.0.fetch_add(1, SeqCst);
                }
            }
            pool.scope(|s| {
                let ran = &ran;
                for _ in 0..before {
                    s.submit(move || ran.fetch_add(1, SeqCst)).join().unwrap();
                }
                pool.shutdown();
                for _ in 0..130 {
                    let guard = CountsDrop(&dropped);
                    let handle = s.submit(move || {
                        let _guard = guard;
                        ran.fetch_add(1000, SeqCst);
                    });
                    assert_eq!(handle.join(), Err(TaskError::ShutDown));
                }
            });
            assert_eq!(ran.load(SeqCst), before);
            assert_eq!(
                dropped.load(SeqCst),
                130,
                "a refused closure was not dropped"
            );
        }
    });
}

/// Another thread submits into the scope (one at a time) while the scope's
/// thread submits from its credit: the count is shared, never drifts.
#[test]
fn a_plain_thread_submits_while_the_scopes_thread_holds_credit() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        for _round in 0..20 {
            let ran = AtomicUsize::new(0);
            pool.scope(|s| {
                let ran = &ran;
                thread::scope(|threads| {
                    threads.spawn(|| {
                        for _ in 0..150 {
                            s.submit(move || ran.fetch_add(1, SeqCst));
                        }
                    });
                    for _ in 0..150 {
                        s.submit(move || ran.fetch_add(1, SeqCst));
                    }
                });
            });
            assert_eq!(ran.load(SeqCst), 300);
        }
    });
}
