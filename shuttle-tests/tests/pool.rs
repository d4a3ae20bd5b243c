//! shuttle: `verisync::ThreadPool` with 1–3 workers, two submitting threads
//! and a main thread that shuts the pool down (gracefully or with
//! `shutdown_now`) at a random moment, while submitters cancel some tasks
//! and register callbacks on others.
//!
//! Every task runs at most once; its handle's `join` returns, with the
//! task's value if it ran and `Cancelled` or `ShutDown` if it did not; a
//! successful `cancel` means `Cancelled`; every callback runs exactly once;
//! the tasks `shutdown_now` reports cancelled are exactly the cancelled
//! ones nobody else cancelled; and nobody stays blocked.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use shuttle::sync::Arc;
use shuttle::thread;
use verisync::{TaskError, ThreadPool};
use verisync_shuttle_tests::{check, let_others_run, random_below};

/// Submitting threads.
const SUBMITTERS: usize = 2;
/// Tasks each submitter submits.
const PER_SUBMITTER: usize = 3;
const TASKS: usize = SUBMITTERS * PER_SUBMITTER;

/// Shadow counts per task (plain std atomics: bookkeeping outside the model).
struct Counts {
    runs: Vec<AtomicUsize>,
    callbacks: Vec<AtomicUsize>,
}

/// What a submitter saw of one task.
#[derive(Debug)]
struct Seen {
    task: usize,
    cancelled_by_handle: bool,
    registered_callback: bool,
    result: Result<usize, TaskError>,
}

fn submit_some(pool: &ThreadPool, counts: &Arc<Counts>, submitter: usize) -> Vec<Seen> {
    let handles: Vec<_> = (0..PER_SUBMITTER)
        .map(|n| {
            let task = submitter * PER_SUBMITTER + n;
            let runs = Arc::clone(counts);
            let handle = pool.submit(move || {
                runs.runs[task].fetch_add(1, Ordering::Relaxed);
                task * 10
            });
            (task, handle)
        })
        .collect();
    handles
        .into_iter()
        .map(|(task, handle)| {
            let registered_callback = random_below(2) == 0;
            if registered_callback {
                let callbacks = Arc::clone(counts);
                handle.on_done(move |result| {
                    if let Ok(value) = result {
                        assert_eq!(*value, task * 10, "a callback saw another task's value");
                    }
                    callbacks.callbacks[task].fetch_add(1, Ordering::Relaxed);
                });
            }
            // `cancel` is also true when the task was cancelled before (by
            // `shutdown_now`), so a probe tells whether this very call won:
            // then the probe runs here, inside `cancel`, and not at its
            // registration (which would mean the task had finished).
            let cancelled_by_handle = random_below(3) == 0 && {
                let me = thread::current().id();
                let probe = Arc::new(std::sync::Mutex::new(None));
                let registering = Arc::new(AtomicBool::new(true));
                {
                    let (probe, registering) = (Arc::clone(&probe), Arc::clone(&registering));
                    handle.on_done(move |_| {
                        *probe.lock().unwrap() =
                            Some((thread::current().id(), registering.load(Ordering::Relaxed)));
                    });
                }
                registering.store(false, Ordering::Relaxed);
                let cancelled = handle.cancel();
                let won = *probe.lock().unwrap() == Some((me, false));
                assert!(
                    !won || cancelled,
                    "{task}: cancelled by this call, which said false"
                );
                won
            };
            Seen {
                task,
                cancelled_by_handle,
                registered_callback,
                result: handle.join(),
            }
        })
        .collect()
}

#[test]
fn every_task_resolves_once_and_runs_at_most_once() {
    check(|| {
        let pool = Arc::new(ThreadPool::new(1 + random_below(3)));
        let counts = Arc::new(Counts {
            runs: (0..TASKS).map(|_| AtomicUsize::new(0)).collect(),
            callbacks: (0..TASKS).map(|_| AtomicUsize::new(0)).collect(),
        });
        let submitters: Vec<_> = (0..SUBMITTERS)
            .map(|submitter| {
                let (pool, counts) = (Arc::clone(&pool), Arc::clone(&counts));
                thread::spawn(move || submit_some(&pool, &counts, submitter))
            })
            .collect();
        for _ in 0..random_below(8) {
            let_others_run();
        }
        let cancelled_by_shutdown = match random_below(3) {
            0 => {
                pool.shutdown();
                0
            }
            1 => pool.shutdown_now(),
            _ => 0, // the pool shuts down when dropped, after the submitters
        };
        let seen: Vec<Seen> = submitters
            .into_iter()
            .flat_map(|submitter| submitter.join().unwrap())
            .collect();
        drop(pool);

        let mut cancelled_by_others = 0;
        for seen in &seen {
            let runs = counts.runs[seen.task].load(Ordering::Relaxed);
            match &seen.result {
                Ok(value) => {
                    assert_eq!(*value, seen.task * 10);
                    assert_eq!(runs, 1, "{seen:?} ran {runs} times");
                }
                Err(TaskError::Cancelled) | Err(TaskError::ShutDown) => {
                    assert_eq!(runs, 0, "{seen:?} ran although it resolved unrun");
                }
                Err(other) => panic!("{seen:?}: unexpected {other:?}"),
            }
            if seen.cancelled_by_handle {
                assert_eq!(seen.result, Err(TaskError::Cancelled), "{seen:?}");
            } else if seen.result == Err(TaskError::Cancelled) {
                cancelled_by_others += 1;
            }
            let callbacks = counts.callbacks[seen.task].load(Ordering::Relaxed);
            assert_eq!(
                callbacks,
                usize::from(seen.registered_callback),
                "{seen:?}: the callback ran {callbacks} times"
            );
        }
        assert_eq!(
            cancelled_by_others, cancelled_by_shutdown,
            "shutdown_now miscounted the tasks it cancelled"
        );
    });
}
