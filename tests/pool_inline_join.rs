//! Inline join (issue 16, item 3): a task that joins or waits for another
//! task of its own pool that has not started yet runs that task inline, on
//! its own worker, instead of waiting for a worker that may never come (a
//! one-worker pool used to hang here). The task runs exactly once, and a
//! `cancel` racing the inline run agrees with the outcome.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;

use verisync::{Event, TaskError, TaskHandle, ThreadPool};

use common::{quiet_deliberate_panics, with_watchdog, PATIENCE};

fn current_name() -> Option<String> {
    thread::current().name().map(str::to_owned)
}

/// A one-worker pool: the outer task submits an inner one (queued behind
/// it, with no other worker to take it) and joins it.
#[test]
fn a_task_joining_an_unstarted_task_of_its_one_worker_pool_runs_it_inline() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::builder().workers(1).thread_name("solo").build());
        let runs = Arc::new(AtomicUsize::new(0));
        let outer = {
            let (pool, runs) = (Arc::clone(&pool), Arc::clone(&runs));
            pool.clone().submit(move || {
                let inner = pool.submit(move || {
                    runs.fetch_add(1, SeqCst);
                    (current_name(), 21)
                });
                let (ran_on, half) = inner.join().expect("the inner task ran");
                (ran_on, half * 2)
            })
        };
        let (ran_on, answer) = outer.join().expect("the outer task ran");
        assert_eq!(answer, 42);
        assert_eq!(
            ran_on.as_deref(),
            Some("solo-0"),
            "inline, on the one worker"
        );
        // The job is still in the queue: the worker must skip it, not run it again.
        assert_eq!(pool.submit(|| 1).join(), Ok(1));
        pool.shutdown();
        assert_eq!(runs.load(SeqCst), 1, "the inner task ran exactly once");
    });
}

/// The same through `wait` (then `join` takes the kept result), nested
/// three deep, and with a panicking inner task: the panic fails only the
/// inner handle, and the outer task carries on.
#[test]
fn wait_runs_unstarted_tasks_inline_too_and_an_inline_panic_fails_only_its_handle() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        let outer = {
            let pool = Arc::clone(&pool);
            pool.clone().submit(move || {
                let middle = {
                    let pool = Arc::clone(&pool);
                    pool.clone().submit(move || {
                        let failing = pool.submit(|| -> u32 { panic!("deliberate inner panic") });
                        failing.wait();
                        assert!(failing.is_finished());
                        failing.join()
                    })
                };
                middle.wait();
                middle.join()
            })
        };
        assert_eq!(
            outer.join(),
            Ok(Ok(Err(TaskError::Panicked(
                "deliberate inner panic".into()
            ))))
        );
        pool.shutdown();
    });
}

/// A task joining a cancelled task gets `Cancelled` and never runs it; a
/// task that was run inline cannot be cancelled afterwards.
#[test]
fn an_inline_run_and_cancel_agree() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        let runs = Arc::new(AtomicUsize::new(0));
        let outcome = {
            let (pool, runs) = (Arc::clone(&pool), Arc::clone(&runs));
            pool.clone().submit(move || {
                let count = Arc::clone(&runs);
                let cancelled = pool.submit(move || count.fetch_add(1, SeqCst));
                assert!(cancelled.cancel());
                let count = Arc::clone(&runs);
                let inline = pool.submit(move || count.fetch_add(1, SeqCst));
                inline.wait();
                let cancel_after_run = inline.cancel();
                (cancelled.join(), inline.join(), cancel_after_run)
            })
        };
        let (cancelled, inline, cancel_after_run) = outcome.join().unwrap();
        assert_eq!(cancelled, Err(TaskError::Cancelled));
        assert_eq!(inline, Ok(0));
        assert!(!cancel_after_run, "a task that ran cannot be cancelled");
        pool.shutdown();
        assert_eq!(runs.load(SeqCst), 1);
    });
}

/// Only the pool's own workers run a task inline: a thread outside the
/// pool (and a worker of another pool) waits for a worker of the task's
/// pool, so the task still runs there.
#[test]
fn outside_threads_and_other_pools_wait_for_the_tasks_own_workers() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder()
            .workers(1)
            .thread_name("owner")
            .build();
        let other = ThreadPool::builder()
            .workers(1)
            .thread_name("other")
            .build();
        let gate = Arc::new(Event::new());
        let blocker = {
            let gate = Arc::clone(&gate);
            pool.submit(move || gate.wait())
        };
        let queued: TaskHandle<Option<String>> = pool.submit(current_name);
        let queued = Arc::new(queued);
        let from_other = {
            let queued = Arc::clone(&queued);
            other.submit(move || queued.wait())
        };
        // Neither the other pool's worker nor this thread may take it.
        assert!(!queued.wait_timeout(std::time::Duration::from_millis(50)));
        gate.set();
        from_other.join().unwrap();
        blocker.join().unwrap();
        let queued = Arc::try_unwrap(queued).expect("the other pool's task is done");
        assert_eq!(queued.join(), Ok(Some("owner-0".to_owned())));
    });
}
