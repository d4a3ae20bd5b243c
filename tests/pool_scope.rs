//! `ThreadPool::scope` (issue 16, item 3): tasks that borrow from the
//! caller's stack. The scope returns only after every task submitted in it
//! has finished and what nobody joined was dropped — when the body
//! returns, when it panics, when a task panics, when the pool shuts down
//! meanwhile — and a scope opened on the pool's own worker does not
//! deadlock, even with one worker.
//!
//! Borrowed counters stand for the borrowed data: each test checks, at the
//! moment `scope` returns, that nothing could still touch them. Tasks are
//! held by gates, never by sleeps; every test runs under a watchdog.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex as StdMutex};
use std::thread;

use verisync::{Event, Scope, ScopedTaskHandle, TaskError, ThreadPool};

use common::{
    kernel_thread_id, opens_when_asleep, quiet_deliberate_panics, wait_until_asleep, with_watchdog,
    PATIENCE,
};

/// Counts its drops in a borrowed counter (so a drop after the scope
/// ended would touch a dead stack slot), and may panic when dropped.
struct CountsDrops<'a> {
    drops: &'a AtomicUsize,
    panics: bool,
}

impl Drop for CountsDrops<'_> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.panics {
            panic!("deliberate panic dropping a leftover");
        }
    }
}

#[test]
fn tasks_borrow_shared_and_mutable_data_from_the_callers_stack() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(3);
        let words = ["pear".to_owned(), "fig".to_owned(), "quince".to_owned()];
        let mut lengths = vec![0usize; words.len()];
        let total = pool.scope(|s| {
            for (word, length) in words.iter().zip(lengths.iter_mut()) {
                s.submit(move || *length = word.len());
            }
            let total = s.submit(|| words.iter().map(String::len).sum::<usize>());
            total.join().unwrap()
        });
        assert_eq!(total, 13);
        assert_eq!(lengths, [4, 3, 6], "every task ran before scope returned");
    });
}

/// The body returns at once, its tasks still blocked: `scope` must not
/// return until they finish (checked with the scope's thread asleep).
#[test]
fn scope_waits_for_unjoined_tasks_after_the_body_returns() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let gate = Arc::new(Event::new());
        let (send_tid, opener) = opens_when_asleep(&gate);
        let finished = AtomicUsize::new(0);
        pool.scope(|s| {
            for _ in 0..6 {
                s.submit(|| {
                    gate.wait();
                    finished.fetch_add(1, SeqCst);
                });
            }
            send_tid.send(kernel_thread_id()).unwrap();
        });
        assert_eq!(finished.load(SeqCst), 6, "scope returned before its tasks");
        opener.join().unwrap();
    });
}

#[test]
fn a_panicking_body_still_waits_for_every_task_then_passes_the_panic_on() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let gate = Arc::new(Event::new());
        let (send_tid, opener) = opens_when_asleep(&gate);
        let finished = AtomicUsize::new(0);
        let panic = catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                for _ in 0..4 {
                    s.submit(|| {
                        gate.wait();
                        finished.fetch_add(1, SeqCst);
                    });
                }
                // The gate opens only once the scope's thread waits.
                send_tid.send(kernel_thread_id()).unwrap();
                panic!("deliberate panic in the scope's body");
            })
        }))
        .expect_err("the body's panic is passed on");
        assert_eq!(
            panic.downcast_ref::<&str>(),
            Some(&"deliberate panic in the scope's body")
        );
        assert_eq!(finished.load(SeqCst), 4, "the panic skipped the waiting");
        opener.join().unwrap();
        assert_eq!(pool.submit(|| 1).join(), Ok(1), "the pool serves on");
    });
}

#[test]
fn a_panicking_task_fails_only_its_handle_not_the_scope_or_the_pool() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let ran = AtomicUsize::new(0);
        let (failed, fine) = pool.scope(|s| {
            let handles: Vec<_> = (0..20)
                .map(|n| {
                    let ran = &ran;
                    s.submit(move || {
                        if n % 3 == 0 {
                            panic!("deliberate panic in scoped task {n}");
                        }
                        ran.fetch_add(1, SeqCst);
                        n
                    })
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
            let failed = results.iter().filter(|r| r.is_err()).count();
            for (n, result) in results.iter().enumerate() {
                if n % 3 == 0 {
                    assert_eq!(
                        *result,
                        Err(TaskError::Panicked(format!(
                            "deliberate panic in scoped task {n}"
                        )))
                    );
                } else {
                    assert_eq!(*result, Ok(n));
                }
            }
            // One more, never joined, that panics: the scope still returns.
            s.submit(|| panic!("deliberate unjoined panic"));
            (failed, results.len() - failed)
        });
        assert_eq!((failed, fine), (7, 13));
        assert_eq!(ran.load(SeqCst), 13);
        assert_eq!(pool.submit(|| 2).join(), Ok(2));
    });
}

/// A task of a one-worker pool opens a scope: its tasks can only run if the
/// waiting worker runs them itself. Nested scopes and tasks that submit
/// more tasks (borrowing the scope) too.
#[test]
fn a_scope_on_the_pools_only_worker_runs_its_tasks_inline_instead_of_deadlocking() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::builder().workers(1).thread_name("only").build());
        let inner_pool = Arc::clone(&pool);
        let outer = pool.submit(move || {
            let pool = &*inner_pool;
            let count = AtomicUsize::new(0);
            let ran_on = pool.scope(|s| {
                let count = &count;
                for _ in 0..3 {
                    s.submit(move || {
                        count.fetch_add(1, SeqCst);
                        // A grandchild task, and a nested scope.
                        s.submit(move || count.fetch_add(10, SeqCst));
                        pool.scope(|inner| {
                            inner.submit(move || count.fetch_add(100, SeqCst));
                        });
                    });
                }
                s.submit(|| thread::current().name().map(str::to_owned))
                    .join()
            });
            (count.load(SeqCst), ran_on)
        });
        assert_eq!(outer.join(), Ok((333, Ok(Some("only-0".to_owned())))));
        assert_eq!(pool.submit(|| 5).join(), Ok(5));
    });
}

/// Results nobody joined are dropped before `scope` returns, on the
/// scope's thread; a panicking drop is reported and the others are still
/// dropped.
#[test]
fn unjoined_results_are_dropped_before_scope_returns_even_if_a_drop_panics() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let drops = AtomicUsize::new(0);
        pool.scope(|s| {
            for n in 0..8 {
                let drops = &drops;
                s.submit(move || CountsDrops {
                    drops,
                    panics: n == 3,
                });
            }
            // A joined one is the caller's to drop, inside the scope.
            drop(
                s.submit(|| CountsDrops {
                    drops: &drops,
                    panics: false,
                })
                .join(),
            );
        });
        assert_eq!(drops.load(SeqCst), 9);
        assert_eq!(pool.submit(|| 1).join(), Ok(1));
    });
}

/// `shutdown_now` on another thread cancels the scope's queued tasks: the
/// scope does not wait for them forever, their closures (which borrow) are
/// dropped before it returns, and tasks submitted after the shutdown are
/// refused and dropped too.
#[test]
fn shutdown_now_meanwhile_cancels_queued_scoped_tasks_and_scope_drops_their_closures() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        let started = Event::new();
        let release = Event::new();
        let drops = AtomicUsize::new(0);
        let outcomes = pool.scope(|s| {
            let blocker = s.submit(|| {
                started.set();
                release.wait();
            });
            started.wait();
            let queued: Vec<_> = (0..5)
                .map(|n| {
                    let guard = CountsDrops {
                        drops: &drops,
                        panics: n == 2,
                    };
                    s.submit(move || {
                        let _guard = guard;
                        n
                    })
                })
                .collect();
            let stopper = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.shutdown_now())
            };
            let cancelled: Vec<_> = queued.into_iter().map(|h| h.join()).collect();
            release.set();
            let late_guard = CountsDrops {
                drops: &drops,
                panics: false,
            };
            let late = s.submit(move || {
                let _guard = late_guard;
            });
            (
                cancelled,
                blocker.join(),
                late.join(),
                stopper.join().unwrap(),
            )
        });
        let (cancelled, blocker, late, count) = outcomes;
        assert!(cancelled.iter().all(|r| *r == Err(TaskError::Cancelled)));
        assert_eq!(count, 5);
        assert_eq!(blocker, Ok(()));
        assert_eq!(late, Err(TaskError::ShutDown));
        assert_eq!(drops.load(SeqCst), 6, "every unrun closure was dropped");
    });
}

/// Cancelling a scoped task: it never runs, and its closure is dropped by
/// the time the scope ends.
#[test]
fn a_cancelled_scoped_tasks_closure_is_dropped_before_scope_returns() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let gate = Event::new();
        let drops = AtomicUsize::new(0);
        let ran = AtomicBool::new(false);
        pool.scope(|s| {
            let blocker = s.submit(|| gate.wait());
            let guard = CountsDrops {
                drops: &drops,
                panics: false,
            };
            let cancelled = s.submit(|| {
                let _guard = guard;
                ran.store(true, SeqCst);
            });
            assert!(cancelled.cancel());
            assert!(cancelled.is_finished());
            drop(cancelled);
            gate.set();
            blocker.wait();
        });
        assert!(!ran.load(SeqCst));
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// A leftover result whose `Drop` submits to the scope (it holds the
/// scope): the scope has closed, so the task is refused at once and its
/// closure dropped, never run after the scope ended. (A result is left for
/// the scope's end only if its handle outlives every task: forgotten here.)
struct SubmitsOnDrop<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    ran: &'env AtomicBool,
    refused: &'env AtomicBool,
}

impl Drop for SubmitsOnDrop<'_, '_> {
    fn drop(&mut self) {
        let ran = self.ran;
        let late = self.scope.submit(move || ran.store(true, SeqCst));
        self.refused
            .store(late.join() == Err(TaskError::ShutDown), SeqCst);
    }
}

#[test]
fn a_submit_from_a_leftovers_drop_after_the_scope_closed_is_refused() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let ran = AtomicBool::new(false);
        let refused = AtomicBool::new(false);
        pool.scope(|s| {
            let (ran, refused) = (&ran, &refused);
            std::mem::forget(s.submit(move || SubmitsOnDrop {
                scope: s,
                ran,
                refused,
            }));
        });
        assert!(refused.load(SeqCst));
        assert!(!ran.load(SeqCst));
    });
}

/// A result whose handle was dropped before the task finished is dropped
/// as the task finishes, by the thread that ran it, inside the scope: a
/// `Drop` that submits to the scope then is accepted, and its task runs
/// before the scope returns (a one-worker pool: joined inline).
#[test]
fn a_submit_from_the_drop_of_a_result_whose_handle_went_first_runs_in_the_scope() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let ran = AtomicBool::new(false);
        let refused = AtomicBool::new(true);
        let gate = Event::new();
        pool.scope(|s| {
            let (ran, refused, gate) = (&ran, &refused, &gate);
            let handle = s.submit(move || {
                gate.wait();
                SubmitsOnDrop {
                    scope: s,
                    ran,
                    refused,
                }
            });
            drop(handle); // before the task finishes: the gate holds it
            gate.set();
        });
        assert!(!refused.load(SeqCst), "the late submit was refused");
        assert!(ran.load(SeqCst), "the late task never ran");
    });
}

#[test]
fn a_scope_on_a_shut_down_pool_refuses_its_tasks_and_returns() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        pool.shutdown();
        let drops = AtomicUsize::new(0);
        let result = pool.scope(|s| {
            let guard = CountsDrops {
                drops: &drops,
                panics: false,
            };
            s.submit(move || {
                let _guard = guard;
            })
            .join()
        });
        assert_eq!(result, Err(TaskError::ShutDown));
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// A scope opened on a worker of a two-worker pool (review of issue 16,
/// a5): task A runs on the other worker and waits for task B, queued after
/// it. Nobody but the scope's own thread is free to run B, so the scope's
/// wait must run B inline although it is waiting for A, which started.
#[test]
fn a_scope_on_a_worker_runs_a_queued_task_that_its_running_task_waits_for() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(2));
        let inner = Arc::clone(&pool);
        let outer = pool.submit(move || {
            let pool = &*inner;
            let gate = Event::new();
            let a_started = Event::new();
            pool.scope(|s| {
                let a = s.submit(|| {
                    a_started.set();
                    gate.wait();
                    "a"
                });
                // A runs on the other worker before B is queued.
                a_started.wait();
                let b = s.submit(|| {
                    gate.set();
                    "b"
                });
                // Not joined: the scope's own wait must run B.
                drop((a, b));
            });
            gate.is_set()
        });
        assert_eq!(outer.join(), Ok(true));
    });
}

/// As above, but B is submitted by A itself while the scope's thread is
/// already asleep waiting: a submit must wake the scope's wait so that it
/// runs the new task inline.
#[test]
fn a_scope_on_a_worker_wakes_for_a_task_submitted_while_it_sleeps_and_runs_it() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(2));
        let inner = Arc::clone(&pool);
        let outer = pool.submit(move || {
            let pool = &*inner;
            let gate = Event::new();
            let a_started = Event::new();
            let (send_tid, scope_thread) = mpsc::channel();
            pool.scope(|s| {
                let (gate, a_started) = (&gate, &a_started);
                let a = s.submit(move || {
                    a_started.set();
                    // Submit B only once the scope's thread sleeps in its wait.
                    wait_until_asleep(scope_thread.recv().unwrap());
                    let b = s.submit(move || gate.set());
                    gate.wait();
                    b.join()
                });
                a_started.wait();
                send_tid.send(kernel_thread_id()).unwrap();
                drop(a);
            });
            gate.is_set()
        });
        assert_eq!(outer.join(), Ok(true));
    });
}

/// `ScopedTaskHandle::wait_timeout(Duration::MAX)` waits forever, as
/// `wait` does, so on the pool's only worker it runs the unstarted task
/// inline as `wait` and `TaskHandle::wait_timeout(MAX)` do (review g1: it
/// deadlocked).
#[test]
fn a_scoped_wait_timeout_of_duration_max_on_the_only_worker_runs_the_task_inline() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        let inner = Arc::clone(&pool);
        let outer = pool.submit(move || {
            inner.scope(|s| {
                let handle = s.submit(|| 1);
                let finished = handle.wait_timeout(std::time::Duration::MAX);
                (finished, handle.join())
            })
        });
        assert_eq!(outer.join(), Ok((true, Ok(1))));
        // The plain handle agrees.
        let inner = Arc::clone(&pool);
        let plain = pool.submit(move || inner.submit(|| 2).wait_timeout(std::time::Duration::MAX));
        assert_eq!(plain.join(), Ok(true));
    });
}

/// A scoped task's result holding the handle of the task before it, which
/// it joins when dropped, noting what it got.
struct Link<'a> {
    value: u32,
    previous: Option<ScopedTaskHandle<'a, Link<'a>>>,
    joined: &'a StdMutex<Vec<Result<u32, TaskError>>>,
}

impl Drop for Link<'_> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            // The joined link is dropped here too: it joins the one before.
            let joined = previous.join().map(|link| link.value);
            self.joined.lock().unwrap().push(joined);
        }
    }
}

/// Submits a chain of 50 links (each task's result holds the previous
/// handle) and lets go of the last handle (dropped, or forgotten if
/// `forget`); returns what the links' drops joined, in order.
fn joins_of_a_chain_of_links(workers: usize, forget: bool) -> Vec<Result<u32, TaskError>> {
    let pool = ThreadPool::new(workers);
    let joined = StdMutex::new(Vec::new());
    pool.scope(|s| {
        let joined = &joined;
        let mut previous = None;
        for value in 0..50u32 {
            let link = Link {
                value,
                previous: previous.take(),
                joined,
            };
            previous = Some(s.submit(move || link));
        }
        let last = previous.unwrap();
        if forget {
            std::mem::forget(last);
        } else {
            drop(last);
        }
    });
    joined.into_inner().unwrap()
}

/// Each task's result holds the handle of the task before it and joins it
/// when dropped; only the last handle is dropped in the body. The scope
/// drops those leftovers while the other handles still live inside them:
/// every join must find its result (review e1: the scope had already
/// dropped it, and the join panicked "a task's result is taken once").
#[test]
fn leftover_results_whose_drop_joins_other_handles_of_the_scope_get_their_results() {
    with_watchdog(PATIENCE, || {
        for workers in [1, 2] {
            let expected: Vec<Result<u32, TaskError>> = (0..49).map(Ok).collect();
            assert_eq!(
                joins_of_a_chain_of_links(workers, false),
                expected,
                "workers={workers}"
            );
        }
    });
}

/// As above, but the last handle is forgotten: the scope still drops every
/// result before it returns (those of live handles last, newest first), so
/// the chain is joined link by link from its forgotten end.
#[test]
fn results_of_forgotten_handles_are_dropped_newest_first_before_scope_returns() {
    with_watchdog(PATIENCE, || {
        for workers in [1, 2] {
            let expected: Vec<Result<u32, TaskError>> = (0..49).map(Ok).collect();
            assert_eq!(
                joins_of_a_chain_of_links(workers, true),
                expected,
                "workers={workers}"
            );
        }
    });
}

/// A scope's `Debug` counts the tasks that have not finished — not the
/// tasks its thread counted ahead of its submits (`scope_tasks.rs`).
#[test]
fn a_scopes_debug_counts_exactly_its_unfinished_tasks() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let gate = Event::new();
        pool.scope(|s| {
            let gate = &gate;
            let held: Vec<_> = (0..3).map(|_| s.submit(move || gate.wait())).collect();
            let shown = format!("{s:?}");
            assert!(shown.contains("unfinished_tasks: 3"), "{shown}");
            gate.set();
            for handle in held {
                handle.join().unwrap();
            }
            // A joined task counts until its worker has settled it, a
            // moment after `join` returns (see `Scope`'s `Debug`): the
            // count must reach 0 (without the credit subtracted it stays
            // at 61 and the watchdog fails the test).
            loop {
                let shown = format!("{s:?}");
                if shown.contains("unfinished_tasks: 0") {
                    break;
                }
                assert!(
                    ["1", "2", "3"]
                        .iter()
                        .any(|n| shown.contains(&format!("unfinished_tasks: {n},"))),
                    "{shown}"
                );
                std::thread::yield_now();
            }
        });
    });
}
