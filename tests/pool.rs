//! `ThreadPool` and `TaskHandle`, behaviour by behaviour (issue 4):
//!
//! - panic isolation: hundreds of panicking tasks among normal ones, every
//!   handle gets its own outcome, and both workers live on;
//! - `map`: input order (also when items finish out of order), panicking
//!   items, laziness over an endless iterator with a bounded read-ahead, and
//!   dropping it early;
//! - `as_completed` in completion order with input indexes, `wait_all`;
//! - `on_done`: on the finishing worker, at once on the caller once
//!   finished, on the cancelling thread for a cancelled task; a panicking
//!   callback neither kills its worker nor stops the next callback;
//! - the builder's options, and `TaskHandle<R>: Send + Sync` for `R: Send`;
//! - bad input: `ThreadPool::new(0)`, `wait_timeout(Duration::MAX)`, a
//!   blocked task during `shutdown_now`, submit (and map) after shutdown,
//!   concurrent shutdowns, and `TaskError`'s sentences;
//! - hostile user code (issues 12 and 13): a result or an unrun closure whose
//!   `Drop` panics after its handle is gone, a panic payload whose `Drop`
//!   panics, a panicking late callback, a panicking `on_worker_start` hook,
//!   the pool dropped or shut down inside its own task, `cancel` twice,
//!   `try_build` with 0 workers.
//!
//! Tasks are held by gates (`Event`s the test opens), never by sleeps. Where
//! a test must know that a thread is blocked, it asks the kernel
//! (`wait_until_asleep`). Every test that blocks runs under a watchdog.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex as StdMutex};
use std::thread;
use std::time::Duration;

use verisync::{as_completed, wait_all, Event, TaskError, TaskHandle, ThreadPool};

use common::{join_scoped, kernel_thread_id, wait_until_asleep, with_watchdog, PATIENCE};

/// The deliberate panics of these tests would flood the output; only they
/// (and `PanicsOnDrop`'s) are silenced.
fn quiet_deliberate_panics() {
    common::quiet_panics(|payload| {
        common::panic_text(payload).is_some_and(|text| text.starts_with("deliberate"))
            || payload.is::<PanicsOnDrop>()
    });
}

fn current_name() -> Option<String> {
    thread::current().name().map(str::to_owned)
}

/// Submits a task that says it started, then waits for `gate`.
fn gated<R: Send + 'static>(
    pool: &ThreadPool,
    gate: &Arc<Event>,
    value: R,
) -> (TaskHandle<R>, Arc<Event>) {
    let started = Arc::new(Event::new());
    let handle = {
        let (gate, started) = (Arc::clone(gate), Arc::clone(&started));
        pool.submit(move || {
            started.set();
            gate.wait();
            value
        })
    };
    (handle, started)
}

/// A value whose `Drop` panics (hostile user code); also used as a panic
/// payload (`panic_any`), so that dropping the payload panics too.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("deliberate panic in a drop");
    }
}

/// Opens the gate when dropped, so a failing assertion never leaves a task
/// (and the pool's drop, which waits for it) blocked forever.
struct OpenOnDrop(Arc<Event>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

// ---------------------------------------------------------------------------
// Panic isolation

#[test]
fn hundreds_of_panics_fail_only_their_own_handles_and_the_workers_live_on() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder()
            .workers(2)
            .thread_name("survivor")
            .build();
        let handles: Vec<_> = (0..1000u64)
            .map(|n| {
                pool.submit(move || {
                    if n % 2 == 1 {
                        panic!("deliberate panic {n}");
                    }
                    n * 3
                })
            })
            .collect();
        let mut panics = 0;
        for (n, handle) in (0u64..).zip(handles) {
            match handle.join() {
                Ok(value) => {
                    assert_eq!(n % 2, 0, "task {n} should have panicked");
                    assert_eq!(value, n * 3);
                }
                Err(TaskError::Panicked(message)) => {
                    assert_eq!(n % 2, 1, "task {n} should have returned");
                    assert_eq!(message, format!("deliberate panic {n}"));
                    panics += 1;
                }
                Err(other) => panic!("task {n}: unexpected {other:?}"),
            }
        }
        assert_eq!(panics, 500);

        // A panic whose payload is not a string is reported too.
        let odd = pool.submit(|| -> u8 { std::panic::resume_unwind(Box::new(42_u32)) });
        match odd.join() {
            Err(TaskError::Panicked(message)) => assert!(!message.is_empty()),
            other => panic!("unexpected {other:?}"),
        }

        // Both workers still serve: two tasks that can only finish together
        // (a barrier of two) run on two distinct, living workers.
        let barrier = Arc::new(Barrier::new(2));
        let names: BTreeSet<_> = (0..2)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                pool.submit(move || {
                    barrier.wait();
                    current_name()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|handle| handle.join().unwrap().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["survivor-0".to_owned(), "survivor-1".to_owned()])
        );
    });
}

// ---------------------------------------------------------------------------
// map

#[test]
fn map_gives_results_in_input_order_even_when_they_finish_out_of_order() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        // Item 0 finishes only after item 1 has: a map that yielded in
        // completion order would give 1 first.
        let second_done = Arc::new(Event::new());
        let finished = Arc::new(StdMutex::new(Vec::new()));
        let results: Vec<_> = {
            let (second_done, finished) = (Arc::clone(&second_done), Arc::clone(&finished));
            pool.map(0..6u64, move |n| {
                if n == 0 {
                    assert!(
                        second_done.wait_timeout(PATIENCE),
                        "item 1 never ran while item 0 was running: the first items \
                         are not spread over the workers"
                    );
                }
                finished.lock().unwrap().push(n);
                if n == 1 {
                    second_done.set();
                }
                n * 10
            })
            .collect()
        };
        assert_eq!(
            results,
            (0..6u64).map(|n| Ok(n * 10)).collect::<Vec<_>>(),
            "map must follow the input order"
        );
        let finished = finished.lock().unwrap();
        let position = |n| finished.iter().position(|&m| m == n).unwrap();
        assert!(position(1) < position(0), "finished: {finished:?}");
    });
}

#[test]
fn map_over_many_items_keeps_order_and_reports_each_panicking_item() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(3);
        let results: Vec<_> = pool
            .map(0..20_000u64, |n| {
                if n % 997 == 0 {
                    panic!("deliberate panic on item {n}");
                }
                n * n
            })
            .collect();
        assert_eq!(results.len(), 20_000);
        for (n, result) in (0u64..).zip(&results) {
            if n % 997 == 0 {
                assert_eq!(
                    *result,
                    Err(TaskError::Panicked(format!("deliberate panic on item {n}")))
                );
            } else {
                assert_eq!(*result, Ok(n * n), "item {n}");
            }
        }
        // Empty input: nothing at all.
        assert_eq!(pool.map(Vec::<u8>::new(), |n| n).count(), 0);
    });
}

/// How far `map` may read ahead of what was consumed: a few chunks per
/// worker (chunks grow to at most 16,384 cheap items, `ThreadPool::map`'s
/// documented cap; 1,024 before issue 16), plus the results of one chunk
/// being handed out. Generous on purpose: the point is that the read-ahead
/// is bounded, not its exact size.
fn read_ahead_bound(workers: usize) -> usize {
    (4 * workers + 2) * 16_384
}

#[test]
fn map_is_lazy_over_an_endless_iterator() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        for wanted in [1usize, 10, 200_000] {
            let read = Arc::new(AtomicUsize::new(0));
            let inputs = {
                let read = Arc::clone(&read);
                (0u64..).inspect(move |_| {
                    read.fetch_add(1, SeqCst);
                })
            };
            let mut map = pool.map(inputs, |n| n + 1);
            assert_eq!(read.load(SeqCst), 0, "map read input before being asked");
            let got: Vec<u64> = map.by_ref().take(wanted).map(Result::unwrap).collect();
            assert_eq!(got, (1..=wanted as u64).collect::<Vec<_>>());
            let read_now = read.load(SeqCst);
            assert!(
                read_now >= wanted && read_now - wanted <= read_ahead_bound(2),
                "consumed {wanted} results but read {read_now} inputs"
            );
            // Reading happens only when results are asked for.
            assert_eq!(read.load(SeqCst), read_now);
            drop(map);
            assert_eq!(read.load(SeqCst), read_now, "dropping the map read more");
        }
    });
}

#[test]
fn dropping_a_map_early_runs_no_more_items_than_it_read_and_the_pool_serves_on() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let (read, ran) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let inputs = {
            let read = Arc::clone(&read);
            (0u64..).inspect(move |_| {
                read.fetch_add(1, SeqCst);
            })
        };
        let first: Vec<_> = {
            let ran = Arc::clone(&ran);
            pool.map(inputs, move |n| {
                ran.fetch_add(1, SeqCst);
                n
            })
            .take(50)
            .collect()
        };
        assert_eq!(first, (0..50).map(Ok).collect::<Vec<_>>());
        assert_eq!(pool.submit(|| "still serving").join(), Ok("still serving"));
        pool.shutdown();
        let (read, ran) = (read.load(SeqCst), ran.load(SeqCst));
        assert!(ran >= 50 && ran <= read, "read {read} inputs, ran {ran}");
    });
}

/// An input iterator that panics after 2,000 items, once: `map` and
/// `map_unordered` pass the panic on, and every item read before it is
/// still run and reported, whether the map goes on afterwards or is read
/// to the end (review d1: the items already collected into the chunk being
/// built were dropped unreported, 974 of them here).
#[test]
fn a_panicking_input_iterator_loses_no_item_already_read_by_map_or_map_unordered() {
    quiet_deliberate_panics();
    for unordered in [false, true] {
        with_watchdog(PATIENCE, move || {
            let pool = ThreadPool::new(2);
            let panicked = Arc::new(AtomicBool::new(false));
            let inputs = {
                let panicked = Arc::clone(&panicked);
                let mut next = 0u64;
                std::iter::from_fn(move || {
                    if next == 3000 {
                        return None;
                    }
                    if next == 2000 && !panicked.swap(true, SeqCst) {
                        panic!("deliberate input panic");
                    }
                    next += 1;
                    Some(next)
                })
            };
            let mut results: Box<dyn Iterator<Item = Result<u64, TaskError>>> = if unordered {
                Box::new(pool.map_unordered(inputs, |n| n))
            } else {
                Box::new(pool.map(inputs, |n| n))
            };
            let mut got = Vec::new();
            let mut panics = 0;
            loop {
                match catch_unwind(AssertUnwindSafe(|| results.next())) {
                    Ok(Some(result)) => got.push(result.unwrap()),
                    Ok(None) => break,
                    Err(payload) => {
                        assert_eq!(
                            payload.downcast_ref::<&str>(),
                            Some(&"deliberate input panic")
                        );
                        panics += 1;
                    }
                }
            }
            assert_eq!(panics, 1, "unordered={unordered}");
            if !unordered {
                assert!(got.is_sorted(), "map keeps the input order");
            }
            got.sort_unstable();
            let lost: Vec<u64> = (1..=3000)
                .filter(|n| got.binary_search(n).is_err())
                .collect();
            assert!(
                lost.is_empty() && got.len() == 3000,
                "unordered={unordered}: {} items read but never reported (the first: {:?}), \
                 {} results",
                lost.len(),
                lost.first(),
                got.len()
            );
        });
    }
}

/// Issue 16: `map`'s results whose `Drop` panics, left unconsumed when the
/// iterator is dropped (or when their chunk finishes after it), used to be
/// dropped as one `Vec` per chunk: the second panic, raised while unwinding
/// from the first, aborted the whole process. They are dropped one by one
/// now, each panic caught and reported; no worker dies.
#[test]
fn map_results_whose_drop_panics_abort_nothing_and_kill_no_worker() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder()
            .workers(2)
            .thread_name("hostile")
            .build();
        for take in [0usize, 1, 5, 40] {
            let mut results = pool.map(0..64u32, |_| PanicsOnDrop);
            for _ in 0..take {
                let result = results.next().expect("64 results");
                assert!(catch_unwind(AssertUnwindSafe(move || drop(result))).is_err());
            }
            drop(results);
            let names: Vec<_> = (0..4)
                .map(|_| pool.submit(current_name))
                .map(|handle| handle.join().unwrap().unwrap())
                .collect();
            assert!(names.iter().all(|name| name.starts_with("hostile-")));
        }
        assert_eq!(pool.map(0..10u32, |n| n).count(), 10);
    });
}

// ---------------------------------------------------------------------------
// as_completed and wait_all

#[test]
fn as_completed_yields_in_completion_order_with_input_indexes() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(3);
        let gates: Vec<_> = (0..3).map(|_| Arc::new(Event::new())).collect();
        let _open: Vec<_> = gates
            .iter()
            .map(|gate| OpenOnDrop(Arc::clone(gate)))
            .collect();
        let handles: Vec<_> = gates
            .iter()
            .enumerate()
            .map(|(index, gate)| gated(&pool, gate, format!("task {index}")).0)
            .collect();
        let mut completed = as_completed(handles);
        assert_eq!(completed.size_hint(), (3, Some(3)));
        // Each gate opened lets exactly one task finish: the next one out.
        for index in [2, 0, 1] {
            gates[index].set();
            assert_eq!(completed.next(), Some((index, Ok(format!("task {index}")))));
        }
        assert_eq!(completed.next(), None);
    });
}

#[test]
fn as_completed_reports_failed_and_already_finished_tasks_by_index() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let done = pool.submit(|| 1);
        done.wait();
        let (blocker, started) = gated(&pool, &gate, 2);
        started.wait();
        let cancelled = pool.submit(|| 3);
        assert!(cancelled.cancel());
        let panicked = pool.submit(|| -> i32 { panic!("deliberate panic in as_completed") });
        let mut completed = as_completed([blocker, done, cancelled, panicked]);
        // Finished before as_completed was called: the already finished
        // ones come first (in some order), the blocked one is not among them.
        let early: BTreeSet<_> = (0..2)
            .map(|_| completed.next().unwrap())
            .map(|(index, result)| (index, format!("{result:?}")))
            .collect();
        assert_eq!(
            early,
            BTreeSet::from([
                (1, "Ok(1)".to_owned()),
                (2, format!("{:?}", Err::<i32, _>(TaskError::Cancelled))),
            ])
        );
        gate.set();
        let rest: BTreeSet<_> = completed
            .map(|(index, result)| (index, format!("{result:?}")))
            .collect();
        assert_eq!(
            rest,
            BTreeSet::from([
                (0, "Ok(2)".to_owned()),
                (
                    3,
                    format!(
                        "{:?}",
                        Err::<i32, _>(TaskError::Panicked(
                            "deliberate panic in as_completed".to_owned()
                        ))
                    )
                ),
            ])
        );
        assert_eq!(as_completed(Vec::<TaskHandle<u8>>::new()).next(), None);
    });
}

#[test]
fn wait_all_returns_once_every_task_has_finished() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let mut handles = vec![pool.submit(|| 0)];
        handles.extend((1..5).map(|n| gated(&pool, &gate, n).0));
        let cancel_me = pool.submit(|| 5);
        assert!(cancel_me.cancel());
        handles.push(cancel_me);
        let returned = AtomicBool::new(false);
        thread::scope(|scope| {
            let (tids, tid) = mpsc::channel();
            let (handles, returned) = (&handles, &returned);
            let waiter = scope.spawn(move || {
                tids.send(kernel_thread_id()).unwrap();
                wait_all(handles);
                returned.store(true, SeqCst);
                assert!(handles.iter().all(TaskHandle::is_finished));
            });
            wait_until_asleep(tid.recv().unwrap());
            assert!(
                !returned.load(SeqCst),
                "wait_all returned with tasks blocked"
            );
            gate.set();
            join_scoped(waiter);
        });
        assert!(returned.load(SeqCst));
        let results: Vec<_> = handles.into_iter().map(TaskHandle::join).collect();
        assert_eq!(
            results,
            [Ok(0), Ok(1), Ok(2), Ok(3), Ok(4), Err(TaskError::Cancelled)]
        );
        wait_all(Vec::<&TaskHandle<u8>>::new()); // nothing to wait for
    });
}

// ---------------------------------------------------------------------------
// Callbacks

/// Records where a callback ran and what it saw.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    thread: StdMutex<Option<String>>,
    result: StdMutex<Option<String>>,
}

impl Seen {
    fn callback<R: std::fmt::Debug>(
        self: &Arc<Self>,
    ) -> impl FnOnce(&Result<R, TaskError>) + Send + 'static {
        let seen = Arc::clone(self);
        move |result| {
            *seen.thread.lock().unwrap() = current_name();
            *seen.result.lock().unwrap() = Some(format!("{result:?}"));
            seen.calls.fetch_add(1, SeqCst);
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    fn thread(&self) -> Option<String> {
        self.thread.lock().unwrap().clone()
    }

    fn result(&self) -> Option<String> {
        self.result.lock().unwrap().clone()
    }
}

#[test]
fn callbacks_run_on_the_finishing_worker_or_at_once_on_the_caller() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder()
            .workers(1)
            .thread_name("finisher")
            .build();
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));

        // Registered while the task runs: runs on the worker that finishes it,
        // before join returns.
        let (running, started) = gated(&pool, &gate, 7);
        started.wait();
        let on_worker = Arc::new(Seen::default());
        running.on_done(on_worker.callback());
        // Queued behind it: cancelled here, so its callback runs here, now.
        let queued = pool.submit(|| 8);
        let on_cancel = Arc::new(Seen::default());
        queued.on_done(on_cancel.callback());
        assert_eq!(on_cancel.calls(), 0);
        assert!(queued.cancel());
        assert_eq!(
            on_cancel.calls(),
            1,
            "a cancelled task's callbacks run at cancel"
        );
        assert_eq!(on_cancel.thread(), current_name());
        assert_eq!(on_cancel.result().as_deref(), Some("Err(Cancelled)"));
        assert_eq!(on_worker.calls(), 0, "ran before the task finished");

        gate.set();
        running.wait();
        assert_eq!(
            on_worker.calls(),
            1,
            "wait returned before the callback ran"
        );
        assert_eq!(on_worker.thread().as_deref(), Some("finisher-0"));
        assert_eq!(on_worker.result().as_deref(), Some("Ok(7)"));

        // Registered after it finished: runs at once, on this thread.
        let late = Arc::new(Seen::default());
        running.on_done(late.callback());
        assert_eq!(
            late.calls(),
            1,
            "a late callback must run before on_done returns"
        );
        assert_eq!(late.thread(), current_name());
        assert_eq!(late.result().as_deref(), Some("Ok(7)"));
        let late_cancelled = Arc::new(Seen::default());
        queued.on_done(late_cancelled.callback());
        assert_eq!(late_cancelled.calls(), 1);
        assert_eq!(late_cancelled.result().as_deref(), Some("Err(Cancelled)"));

        // Callbacks do not take the result away from join.
        assert_eq!(running.join(), Ok(7));
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        for seen in [&on_worker, &on_cancel, &late, &late_cancelled] {
            assert_eq!(seen.calls(), 1, "a callback ran more than once");
        }
    });
}

#[test]
fn a_panicking_callback_does_not_kill_the_worker_or_skip_the_next_callback() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder().workers(1).thread_name("lone").build();
        for round in 0..200u32 {
            let gate = Arc::new(Event::new());
            let (handle, _) = gated(&pool, &gate, round);
            handle.on_done(move |_| panic!("deliberate panic in callback {round}"));
            let after = Arc::new(Seen::default());
            handle.on_done(after.callback());
            gate.set();
            assert_eq!(handle.join(), Ok(round));
            assert_eq!(
                after.calls(),
                1,
                "round {round}: the next callback was skipped"
            );
            assert_eq!(after.thread().as_deref(), Some("lone-0"));
        }
        // The one worker is still the same, living thread.
        assert_eq!(
            pool.submit(current_name).join(),
            Ok(Some("lone-0".to_owned()))
        );
    });
}

// ---------------------------------------------------------------------------
// Builder options

/// Runs one task on each of the pool's `workers` workers at once (a barrier
/// holds them until all have started) and returns what each returned.
fn on_every_worker<R: Send + 'static>(
    pool: &ThreadPool,
    task: impl Fn() -> R + Send + Sync + 'static,
) -> Vec<R> {
    let barrier = Arc::new(Barrier::new(pool.workers()));
    let task = Arc::new(task);
    let handles: Vec<_> = (0..pool.workers())
        .map(|_| {
            let (barrier, task) = (Arc::clone(&barrier), Arc::clone(&task));
            pool.submit(move || {
                barrier.wait();
                task()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect()
}

#[test]
fn builder_thread_names_workers_name_dash_index() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder().workers(3).thread_name("cook").build();
        assert_eq!(pool.workers(), 3);
        let names: BTreeSet<_> = on_every_worker(&pool, || current_name().unwrap())
            .into_iter()
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["cook-0", "cook-1", "cook-2"].map(String::from))
        );

        let plain = ThreadPool::new(1);
        assert_eq!(
            plain.submit(current_name).join(),
            Ok(Some("verisync-worker-0".to_owned()))
        );
    });
}

/// Uses about `depth` KiB of stack.
#[inline(never)]
fn deep(depth: u32) -> u64 {
    let frame = std::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        0
    } else {
        deep(depth - 1) + u64::from(frame[depth as usize % 1024])
    }
}

#[test]
fn builder_stack_size_gives_tasks_the_stack_asked_for() {
    with_watchdog(PATIENCE, || {
        // 8,000 frames of over 1 KiB: far beyond a default 2 MiB thread
        // stack, fine in 64 MiB.
        let pool = ThreadPool::builder()
            .workers(1)
            .stack_size(64 << 20)
            .build();
        let expected: u64 = (1..=8_000u32).map(|depth| u64::from(depth as u8)).sum();
        assert_eq!(pool.submit(|| deep(8_000)).join(), Ok(expected));
        let small = ThreadPool::builder()
            .workers(1)
            .stack_size(256 << 10)
            .try_build()
            .unwrap();
        assert_eq!(small.submit(|| deep(10)).join(), Ok((1..=10).sum()));
    });
}

thread_local! {
    static STARTED_AS: Cell<Option<usize>> = const { Cell::new(None) };
}

#[test]
fn builder_on_worker_start_runs_once_per_worker_before_its_tasks() {
    with_watchdog(PATIENCE, || {
        let starts = Arc::new(StdMutex::new(Vec::new()));
        let pool = {
            let starts = Arc::clone(&starts);
            ThreadPool::builder()
                .workers(3)
                .thread_name("hooked")
                .on_worker_start(move |index| {
                    STARTED_AS.with(|started| started.set(Some(index)));
                    starts
                        .lock()
                        .unwrap()
                        .push((index, current_name().unwrap()));
                })
                .build()
        };
        // Every task finds its worker's hook already run, on that worker.
        let seen: BTreeSet<_> = on_every_worker(&pool, || {
            (STARTED_AS.with(Cell::get), current_name().unwrap())
        })
        .into_iter()
        .collect();
        let expected: BTreeSet<_> = (0..3)
            .map(|index| (Some(index), format!("hooked-{index}")))
            .collect();
        assert_eq!(seen, expected);
        pool.shutdown();
        let mut starts = starts.lock().unwrap().clone();
        starts.sort();
        assert_eq!(
            starts,
            (0..3)
                .map(|index| (index, format!("hooked-{index}")))
                .collect::<Vec<_>>(),
            "the hook runs exactly once per worker, on it"
        );
    });
}

// ---------------------------------------------------------------------------
// Send + Sync

/// Compile-time: `TaskHandle<R>` is `Send + Sync` whenever `R: Send`, even
/// when `R` is not `Sync`.
const _: () = {
    fn send_sync<T: Send + Sync>() {}
    #[allow(dead_code)]
    fn task_handles_are_send_and_sync() {
        send_sync::<TaskHandle<u64>>();
        send_sync::<TaskHandle<String>>();
        send_sync::<TaskHandle<Cell<u8>>>();
        send_sync::<TaskHandle<RefCell<Vec<u8>>>>();
        send_sync::<TaskHandle<mpsc::Receiver<u8>>>();
        send_sync::<TaskHandle<Box<dyn std::any::Any + Send>>>();
        send_sync::<ThreadPool>();
    }
};

#[test]
fn one_thread_waits_on_a_handle_while_others_add_a_callback_and_cancel_it() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let (_blocker, started) = gated(&pool, &gate, ());
        started.wait();
        // (`on_done` needs a `Sync` result; the handle itself is `Sync` for
        // any `Send` result, see above.)
        let handle: TaskHandle<u8> = pool.submit(|| 1);
        let seen = Arc::new(Seen::default());
        thread::scope(|scope| {
            let (tids, tid) = mpsc::channel();
            let handle = &handle;
            let waiter = scope.spawn(move || {
                tids.send(kernel_thread_id()).unwrap();
                assert!(handle.wait_timeout(Duration::MAX));
                handle.is_finished()
            });
            let seen = &seen;
            scope
                .spawn(move || handle.on_done(seen.callback()))
                .join()
                .unwrap();
            wait_until_asleep(tid.recv().unwrap());
            let canceller = scope.spawn(move || handle.cancel());
            assert!(join_scoped(canceller), "the task had not started");
            assert!(join_scoped(waiter));
        });
        assert_eq!(seen.calls(), 1);
        assert_eq!(seen.result().as_deref(), Some("Err(Cancelled)"));
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
    });
}

// ---------------------------------------------------------------------------
// Bad input

#[test]
#[should_panic(expected = "a ThreadPool with 0 workers could never run a task")]
fn a_pool_of_zero_workers_panics_saying_why() {
    let _ = ThreadPool::new(0);
}

#[test]
#[should_panic(expected = "a ThreadPool with 0 workers could never run a task")]
fn a_built_pool_of_zero_workers_panics_saying_why() {
    let _ = ThreadPool::builder().workers(0).build();
}

#[test]
fn wait_timeout_duration_max_waits_until_the_task_finishes() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let (handle, started) = gated(&pool, &gate, "done");
        started.wait();
        assert!(
            !handle.wait_timeout(Duration::ZERO),
            "a zero timeout tries once"
        );
        assert!(!handle.wait_timeout(Duration::from_millis(1)));
        thread::scope(|scope| {
            let (tids, tid) = mpsc::channel();
            let handle = &handle;
            let waiter = scope.spawn(move || {
                tids.send(kernel_thread_id()).unwrap();
                let finished = handle.wait_timeout(Duration::MAX);
                (finished, handle.is_finished())
            });
            wait_until_asleep(tid.recv().unwrap());
            assert!(!handle.is_finished());
            gate.set();
            assert_eq!(join_scoped(waiter), (true, true));
        });
        // Finished: returns at once, and the result is still there.
        assert!(handle.wait_timeout(Duration::MAX));
        assert_eq!(handle.join(), Ok("done"));
    });
}

#[test]
fn a_blocked_task_does_not_stop_shutdown_now_cancelling_the_queued_ones() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let running: Vec<_> = (0..2)
            .map(|n| {
                let (handle, started) = gated(&pool, &gate, n);
                started.wait();
                handle
            })
            .collect();
        // Both workers are busy: these stay queued.
        let runs = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = (0..10)
            .map(|n| {
                let runs = Arc::clone(&runs);
                pool.submit(move || {
                    runs.fetch_add(1, SeqCst);
                    n
                })
            })
            .collect();
        // Release the running tasks only once every queued one resolved:
        // shutdown_now cancels them while the workers are still blocked.
        let watcher = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                let results: Vec<_> = queued.into_iter().map(TaskHandle::join).collect();
                gate.set();
                results
            })
        };
        assert_eq!(pool.shutdown_now(), 10);
        let results = common::join(watcher);
        assert!(
            results
                .iter()
                .all(|result| *result == Err(TaskError::Cancelled)),
            "{results:?}"
        );
        assert_eq!(runs.load(SeqCst), 0, "a cancelled task ran");
        let running: Vec<_> = running.into_iter().map(TaskHandle::join).collect();
        assert_eq!(running, [Ok(0), Ok(1)], "running tasks are not interrupted");
        // Nothing left to cancel.
        assert_eq!(pool.shutdown_now(), 0);
    });
}

#[test]
fn submit_after_shutdown_resolves_to_shut_down_at_once_and_never_runs() {
    with_watchdog(PATIENCE, || {
        for now in [false, true] {
            let pool = ThreadPool::new(2);
            assert_eq!(pool.submit(|| 1).join(), Ok(1));
            if now {
                assert_eq!(pool.shutdown_now(), 0);
            } else {
                pool.shutdown();
            }
            let ran = Arc::new(AtomicBool::new(false));
            let refused = {
                let ran = Arc::clone(&ran);
                pool.submit(move || ran.store(true, SeqCst))
            };
            assert!(refused.is_finished(), "a refused task is finished at once");
            let seen = Arc::new(Seen::default());
            refused.on_done(seen.callback());
            assert_eq!(seen.calls(), 1);
            assert_eq!(seen.thread(), current_name());
            assert!(!refused.cancel(), "nothing to cancel: it never queued");
            assert_eq!(refused.join(), Err(TaskError::ShutDown));
            // map refuses every item the same way, and still ends.
            let mapped: Vec<_> = pool.map(0..5, |n| n).collect();
            assert_eq!(mapped, vec![Err(TaskError::ShutDown); 5]);
            let endless: Vec<_> = pool.map(0.., |n: u32| n).take(3).collect();
            assert_eq!(endless, vec![Err(TaskError::ShutDown); 3]);
            // Shutting down again is harmless.
            pool.shutdown();
            assert_eq!(pool.shutdown_now(), 0);
            drop(pool);
            assert!(!ran.load(SeqCst), "a refused task ran");
        }
    });
}

/// Calls `shutdown_call` on `pool` while another thread's `shutdown` is
/// already waiting for a running (gated) task, and returns whether that
/// task had finished when `shutdown_call` returned.
fn second_shutdown_waits(shutdown_call: fn(&ThreadPool)) -> bool {
    let pool = ThreadPool::new(1);
    let gate = Arc::new(Event::new());
    let _open = OpenOnDrop(Arc::clone(&gate));
    let (handle, started) = gated(&pool, &gate, 1);
    started.wait();
    thread::scope(|scope| {
        let (tids, tid) = mpsc::channel();
        let pool = &pool;
        let first = scope.spawn(move || {
            tids.send(kernel_thread_id()).unwrap();
            pool.shutdown();
        });
        wait_until_asleep(tid.recv().unwrap());
        // The gate opens once this thread is asleep: inside `shutdown_call`
        // if that waits (as it must), or else in the joins below.
        let this_thread = kernel_thread_id();
        let opener = {
            let gate = Arc::clone(&gate);
            scope.spawn(move || {
                wait_until_asleep(this_thread);
                gate.set();
            })
        };
        shutdown_call(pool);
        let finished = handle.is_finished();
        join_scoped(opener);
        join_scoped(first);
        finished
    })
}

#[test]
fn a_concurrent_second_shutdown_also_waits_for_the_running_task() {
    with_watchdog(PATIENCE, || {
        assert!(
            second_shutdown_waits(ThreadPool::shutdown),
            "shutdown returned while a task was still running (another thread's \
             shutdown was already joining the workers)"
        );
    });
}

#[test]
fn a_concurrent_shutdown_now_also_waits_for_the_running_task() {
    with_watchdog(PATIENCE, || {
        assert!(
            second_shutdown_waits(|pool| {
                pool.shutdown_now();
            }),
            "shutdown_now returned while a task was still running (another thread's \
             shutdown was already joining the workers)"
        );
    });
}

#[test]
fn task_errors_display_sentences_a_user_can_act_on() {
    let cases = [
        (
            TaskError::Panicked("no more tickets".to_owned()),
            vec!["panicked", "no more tickets"],
        ),
        (TaskError::Cancelled, vec!["cancelled", "never ran"]),
        (
            TaskError::WorkerDied {
                pid: 4242,
                signal: Some(9),
                exit_code: None,
            },
            vec!["4242", "died", "signal 9"],
        ),
        (
            TaskError::WorkerDied {
                pid: 17,
                signal: None,
                exit_code: Some(3),
            },
            vec!["17", "died", "code 3"],
        ),
        (
            TaskError::WorkerDied {
                pid: 18,
                signal: None,
                exit_code: None,
            },
            vec!["18", "died"],
        ),
        (TaskError::TimedOut, vec!["timeout"]),
        (
            TaskError::Serialization("bad utf-8".to_owned()),
            vec!["encoded", "bad utf-8"],
        ),
        (
            TaskError::Spawn("out of threads".to_owned()),
            vec!["started", "out of threads"],
        ),
        (
            TaskError::ShutDown,
            vec!["shutting down", "never ran", "submit before"],
        ),
    ];
    for (error, needles) in cases {
        let text = error.to_string();
        for needle in needles {
            assert!(text.contains(needle), "{needle:?} missing from {text:?}");
        }
        assert!(
            text.split_whitespace().count() >= 5,
            "{text:?}: not a sentence"
        );
        assert!(
            text.starts_with("the ") || text.starts_with("a "),
            "{text:?}"
        );
        assert!(
            !text.contains("TaskError") && !text.contains('{'),
            "{text:?}: a Debug dump"
        );
        assert!(
            !text.ends_with('.'),
            "{text:?}: std style has no final period"
        );
        let as_error: &dyn std::error::Error = &error;
        assert!(as_error.source().is_none());
    }
}

/// Callbacks registered before the task finishes run on the worker in the
/// order they were registered, each once; one registered afterwards runs
/// at once, after them.
#[test]
fn callbacks_run_once_each_in_registration_order() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let (handle, started) = gated(&pool, &gate, 7u32);
        started.wait();
        let order = Arc::new(StdMutex::new(Vec::new()));
        for index in 0..5 {
            let order = Arc::clone(&order);
            handle.on_done(move |result| {
                assert_eq!(result, &Ok(7));
                order.lock().unwrap().push(index);
            });
        }
        gate.set();
        handle.wait();
        let late = Arc::clone(&order);
        handle.on_done(move |_| late.lock().unwrap().push(5));
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
        assert_eq!(handle.join(), Ok(7));
    });
}

/// A one-worker pool whose worker is busy with a task waiting for the
/// returned gate (opened at the latest when the guard drops), so tasks
/// submitted next stay queued.
fn pool_with_busy_worker() -> (Arc<ThreadPool>, Arc<Event>, OpenOnDrop, TaskHandle<()>) {
    let pool = Arc::new(ThreadPool::new(1));
    let gate = Arc::new(Event::new());
    let open = OpenOnDrop(Arc::clone(&gate));
    let (running, started) = gated(&pool, &gate, ());
    started.wait();
    (pool, gate, open, running)
}

/// A cancelled task's callback runs inside `shutdown_now`; if it shuts the
/// same pool down again, that nested call returns instead of deadlocking.
#[test]
fn a_callback_of_a_cancelled_task_may_shut_the_pool_down_again() {
    with_watchdog(PATIENCE, || {
        let (pool, gate, _open, running) = pool_with_busy_worker();
        let queued = pool.submit(|| 1);
        let nested = Arc::new(AtomicBool::new(false));
        {
            let (pool, nested) = (Arc::clone(&pool), Arc::clone(&nested));
            queued.on_done(move |result| {
                assert_eq!(result, &Err(TaskError::Cancelled));
                // The queue is drained: let the running task end, so the
                // nested calls can join the worker.
                gate.set();
                pool.shutdown_now();
                pool.shutdown();
                nested.store(true, SeqCst);
            });
        }
        assert_eq!(pool.shutdown_now(), 1);
        assert!(
            nested.load(SeqCst),
            "the callback did not run inside shutdown_now"
        );
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        assert_eq!(running.join(), Ok(()));
    });
}

/// Two `shutdown_now` calls at once: the second returns only after every
/// task the first drained is resolved (found by prop_pool when the first
/// was still cancelling its share while the second joined the workers).
#[test]
fn a_second_shutdown_now_waits_for_the_first_ones_cancellations() {
    with_watchdog(PATIENCE, || {
        let (pool, gate, _open, running) = pool_with_busy_worker();
        let first_cancelled = Arc::new(Event::new());
        let queued: Vec<_> = (0..20)
            .map(|n| {
                let handle = pool.submit(move || n);
                let first_cancelled = Arc::clone(&first_cancelled);
                // Slow callbacks: the first shutdown_now cancels slowly.
                handle.on_done(move |_| {
                    first_cancelled.set();
                    thread::sleep(Duration::from_millis(2));
                });
                handle
            })
            .collect();
        let first = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.shutdown_now())
        };
        first_cancelled.wait();
        gate.set(); // the worker may exit now
        pool.shutdown_now();
        for (index, handle) in queued.iter().enumerate() {
            assert!(
                handle.is_finished(),
                "task {index} was not resolved when the second shutdown_now returned"
            );
        }
        assert_eq!(first.join().unwrap(), 20);
        assert_eq!(running.join(), Ok(()));
    });
}

// ---------------------------------------------------------------------------
// Hostile user code (issues 12 and 13)

/// Issue 12 defect 3: a finished task's result whose `Drop` panics, dropped
/// by the worker because the handle was dropped first, used to kill the
/// worker: later tasks never ran and `join` hung.
#[test]
fn a_result_whose_drop_panics_after_its_handle_was_dropped_kills_no_worker() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder()
            .workers(1)
            .thread_name("dropper")
            .build();
        for round in 0..20u32 {
            let gate = Arc::new(Event::new());
            let _open = OpenOnDrop(Arc::clone(&gate));
            let (handle, started) = gated(&pool, &gate, PanicsOnDrop);
            started.wait();
            // The worker now holds the only reference: it drops the result.
            drop(handle);
            gate.set();
            assert_eq!(
                pool.submit(move || round).join(),
                Ok(round),
                "round {round}: the next task did not run"
            );
        }
        assert_eq!(
            pool.submit(current_name).join(),
            Ok(Some("dropper-0".to_owned())),
            "the one worker is still the same, living thread"
        );
        pool.shutdown();
    });
}

/// The same for a cancelled task's closure: its handle cancelled and
/// dropped, the worker that takes the job out of the queue drops it.
#[test]
fn an_unrun_closure_whose_drop_panics_kills_no_worker() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let (pool, gate, _open, running) = pool_with_busy_worker();
        let armed = PanicsOnDrop;
        let cancelled = pool.submit(move || {
            let _armed = armed;
        });
        assert!(cancelled.cancel());
        drop(cancelled); // the queued job is now the closure's last owner
        let next = pool.submit(|| 2);
        gate.set();
        assert_eq!(running.join(), Ok(()));
        assert_eq!(next.join(), Ok(2), "the worker died dropping the closure");
        assert_eq!(pool.submit(|| 3).join(), Ok(3));
        pool.shutdown();
    });
}

/// `shutdown_now` drops the jobs it cancels; one whose closure panics on
/// drop used to abort it half-way, leaving the other drained tasks
/// unresolved forever.
#[test]
fn shutdown_now_cancels_every_task_even_if_a_dropped_closure_panics() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let (pool, gate, _open, running) = pool_with_busy_worker();
        let armed = PanicsOnDrop;
        drop(pool.submit(move || {
            let _armed = armed;
        }));
        let queued: Vec<_> = (0..3).map(|n| pool.submit(move || n)).collect();
        let watcher = thread::spawn(move || {
            let results: Vec<_> = queued.into_iter().map(TaskHandle::join).collect();
            gate.set(); // all resolved: let the running task end
            results
        });
        assert_eq!(pool.shutdown_now(), 4);
        assert_eq!(
            common::join(watcher),
            vec![Err(TaskError::Cancelled); 3],
            "every queued task is cancelled"
        );
        assert_eq!(running.join(), Ok(()));
    });
}

/// A panic payload is user data too (`panic_any`): one whose `Drop` panics
/// used to escape from the pool after the task was claimed (the worker
/// died, the handle never resolved). Now the task, a `map` item and a
/// callback each fail only themselves.
#[test]
fn a_panic_payload_whose_drop_panics_fails_only_its_own_task() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder()
            .workers(1)
            .thread_name("payload")
            .build();
        let not_a_string = || TaskError::Panicked("a panic whose payload is not a string".into());
        let task = pool.submit(|| -> u32 { std::panic::panic_any(PanicsOnDrop) });
        assert_eq!(task.join(), Err(not_a_string()));

        let items: Vec<_> = pool
            .map(0..4u32, |n| {
                if n == 2 {
                    std::panic::panic_any(PanicsOnDrop);
                }
                n
            })
            .collect();
        assert_eq!(items, [Ok(0), Ok(1), Err(not_a_string()), Ok(3)]);

        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let (handle, _) = gated(&pool, &gate, 5u32);
        handle.on_done(|_| std::panic::panic_any(PanicsOnDrop));
        let after = Arc::new(Seen::default());
        handle.on_done(after.callback());
        gate.set();
        assert_eq!(handle.join(), Ok(5));
        assert_eq!(after.calls(), 1);

        assert_eq!(
            pool.submit(current_name).join(),
            Ok(Some("payload-0".to_owned()))
        );
    });
}

/// Issue 12 defect 7: `cancel()` is `true` whenever the task ends up
/// cancelled — also a second time, and after `shutdown_now` cancelled it —
/// and `false` for a task that ran.
#[test]
fn cancel_is_true_whenever_the_task_ends_up_cancelled() {
    with_watchdog(PATIENCE, || {
        let (pool, gate, _open, running) = pool_with_busy_worker();
        let by_cancel = pool.submit(|| 1);
        assert!(by_cancel.cancel());
        assert!(by_cancel.cancel(), "a second cancel must say true too");
        let by_shutdown = Arc::new(pool.submit(|| 2));
        let watcher = {
            let by_shutdown = Arc::clone(&by_shutdown);
            thread::spawn(move || {
                by_shutdown.wait();
                gate.set();
            })
        };
        assert_eq!(pool.shutdown_now(), 1, "by_cancel was already cancelled");
        common::join(watcher);
        assert!(by_shutdown.cancel(), "cancelled by shutdown_now");
        assert!(!running.cancel(), "it ran");
        assert_eq!(running.join(), Ok(()));
        assert_eq!(by_cancel.join(), Err(TaskError::Cancelled));
        let by_shutdown = Arc::try_unwrap(by_shutdown).unwrap();
        assert_eq!(by_shutdown.join(), Err(TaskError::Cancelled));
    });
}

/// Issue 12 defect 8: a callback registered after the task finished runs on
/// the caller's thread; its panic used to propagate out of `on_done`. Now it
/// is caught and reported, as on a worker (also one run by `cancel`).
#[test]
fn a_panicking_callback_never_reaches_the_caller_of_on_done_or_cancel() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let (pool, gate, _open, running) = pool_with_busy_worker();
        let queued = pool.submit(|| 2);
        queued.on_done(|_| panic!("deliberate panic in a callback run by cancel"));
        let cancel = catch_unwind(AssertUnwindSafe(|| queued.cancel()));
        assert_eq!(cancel.ok(), Some(true), "cancel passed the panic on");
        gate.set();
        running.wait();
        let late = catch_unwind(AssertUnwindSafe(|| {
            running.on_done(|_| panic!("deliberate panic in a late callback"));
        }));
        assert!(late.is_ok(), "on_done passed the late callback's panic on");
        let after = Arc::new(Seen::default());
        running.on_done(after.callback());
        assert_eq!(after.calls(), 1, "the next callback still runs");
        assert_eq!(running.join(), Ok(()));
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
    });
}

/// Issue 13: `try_build` with 0 workers returns an error (it panicked);
/// `build` and `new` still panic, with the same sentence.
#[test]
fn try_build_with_zero_workers_returns_an_error_saying_why() {
    let error = ThreadPool::builder().workers(0).try_build().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        error
            .to_string()
            .contains("a ThreadPool with 0 workers could never run a task"),
        "{error}"
    );
}

/// Issue 13 item 7: dropping the last `Arc<ThreadPool>` inside one of its
/// own tasks used to turn that task's result into `Panicked("failed to join
/// thread: Resource deadlock avoided")`. Now the pool shuts down without
/// joining that worker, the task keeps its result, and the tasks queued
/// behind it still run.
#[test]
fn dropping_the_last_arc_of_a_pool_inside_its_own_task_keeps_the_result() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::builder().workers(2).thread_name("own").build());
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let last_owner = {
            let (inner, gate) = (Arc::clone(&pool), Arc::clone(&gate));
            pool.submit(move || {
                gate.wait();
                drop(inner); // the last Arc: the pool shuts down right here
                "kept"
            })
        };
        let behind: Vec<_> = (0..8u32).map(|n| pool.submit(move || n)).collect();
        drop(pool); // not the last: the task holds one
        gate.set();
        assert_eq!(last_owner.join(), Ok("kept"));
        for (n, handle) in (0u32..).zip(behind) {
            assert_eq!(handle.join(), Ok(n), "task {n} queued behind it");
        }
    });
}

/// The same for an explicit `shutdown` inside a task of a pool that lives
/// on: it returns (instead of failing the task), and a later `shutdown`
/// from outside still waits for that worker to finish the queue.
#[test]
fn shutdown_inside_its_own_task_returns_and_a_later_shutdown_joins_that_worker() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let shutter = {
            let (inner, gate) = (Arc::clone(&pool), Arc::clone(&gate));
            pool.submit(move || {
                inner.shutdown();
                gate.wait(); // the tasks behind stay queued until the test opens it
                "shut"
            })
        };
        let behind: Vec<_> = (0..4u32).map(|n| pool.submit(move || n)).collect();
        gate.set();
        assert_eq!(shutter.join(), Ok("shut"));
        pool.shutdown();
        assert!(
            behind.iter().all(TaskHandle::is_finished),
            "shutdown returned before the worker finished the queue"
        );
        for (n, handle) in (0u32..).zip(behind) {
            assert_eq!(handle.join(), Ok(n));
        }
    });
}

/// `shutdown_now`, its count ignored (to stand beside `ThreadPool::shutdown`).
fn shut_down_now(pool: &ThreadPool) {
    pool.shutdown_now();
}

/// Tasks on two workers each shut their pool down. The first to take the
/// workers' lock joins the other worker, whose own `shutdown` used to wait
/// for that lock: a deadlock, whichever came first. Now a shutdown on a
/// worker does not wait for a lock held by a thread that is joining it.
#[test]
fn tasks_on_two_workers_may_both_shut_their_pool_down() {
    for shut in [ThreadPool::shutdown, shut_down_now] {
        with_watchdog(PATIENCE, move || {
            let pool = Arc::new(ThreadPool::new(2));
            let both_running = Arc::new(Barrier::new(2));
            let shutters: Vec<_> = (0..2u32)
                .map(|n| {
                    let (inner, both_running) = (Arc::clone(&pool), Arc::clone(&both_running));
                    pool.submit(move || {
                        both_running.wait(); // one on each worker
                        shut(&inner);
                        n
                    })
                })
                .collect();
            for (n, handle) in (0u32..).zip(shutters) {
                assert_eq!(handle.join(), Ok(n));
            }
            pool.shutdown();
        });
    }
}

/// A task shuts its pool down while another thread's `shutdown` is already
/// joining that task's worker (holding the workers' lock): the task's call
/// used to wait for the lock, and the other thread for the task.
#[test]
fn a_task_may_shut_its_pool_down_while_another_thread_joins_its_worker() {
    for shut in [ThreadPool::shutdown, shut_down_now] {
        with_watchdog(PATIENCE, move || {
            let pool = Arc::new(ThreadPool::new(1));
            let gate = Arc::new(Event::new());
            let _open = OpenOnDrop(Arc::clone(&gate));
            let shutter = {
                let (inner, gate) = (Arc::clone(&pool), Arc::clone(&gate));
                pool.submit(move || {
                    gate.wait();
                    shut(&inner);
                    "shut"
                })
            };
            let (tids, tid) = mpsc::channel();
            let outside = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    tids.send(kernel_thread_id()).unwrap();
                    pool.shutdown(); // joins the worker, holding the lock
                })
            };
            wait_until_asleep(tid.recv().unwrap());
            gate.set();
            assert_eq!(shutter.join(), Ok("shut"));
            common::join(outside);
        });
    }
}

/// Issue 13: a panicking `on_worker_start` hook used to kill its worker while
/// `try_build` said `Ok`: queued handles never resolved. Now the build fails
/// with an error naming the worker and the panic, and leaves no worker
/// running (each holds the hook, so the hook's captures are released).
#[test]
fn a_panicking_on_worker_start_hook_fails_the_build() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let captured = Arc::new(());
        let hook_sees = Arc::clone(&captured);
        let error = ThreadPool::builder()
            .workers(3)
            .on_worker_start(move |index| {
                let _ = &hook_sees;
                if index == 1 {
                    panic!("deliberate panic in the hook");
                }
            })
            .try_build()
            .expect_err("the hook panicked on worker 1");
        assert!(
            error.to_string().contains(
                "the on_worker_start hook panicked on worker 1: deliberate panic in the hook"
            ),
            "{error}"
        );
        assert_eq!(
            Arc::strong_count(&captured),
            1,
            "a worker (holding the hook) is still running"
        );

        let built = catch_unwind(|| {
            ThreadPool::builder()
                .workers(2)
                .on_worker_start(|_| panic!("deliberate panic in every hook"))
                .build()
        });
        let payload = built.expect_err("build must panic");
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("on_worker_start hook panicked on worker")
                && message.contains("deliberate panic in every hook"),
            "{message}"
        );
    });
}

/// `on_done` needs `R: Sync`, but `as_completed` (which only needs to know
/// that a task finished) still takes any `Send` result.
#[test]
fn as_completed_takes_results_that_are_not_sync() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let handles: Vec<TaskHandle<Cell<u32>>> = (0..4u32)
            .map(|n| pool.submit(move || Cell::new(n)))
            .collect();
        let mut seen: Vec<_> = as_completed(handles)
            .map(|(index, result)| (index, result.unwrap().get()))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, [(0, 0), (1, 1), (2, 2), (3, 3)]);
    });
}

/// A `map` dropped early leaves chunks running; their results (here with a
/// panicking `Drop`) are dropped by the worker, which must live on.
#[test]
fn dropping_a_map_whose_results_panic_on_drop_leaves_the_pool_serving() {
    quiet_deliberate_panics();
    /// Panics when dropped if armed.
    struct Armed(bool);
    impl Drop for Armed {
        fn drop(&mut self) {
            if self.0 {
                panic!("deliberate panic in a map result's drop");
            }
        }
    }
    with_watchdog(PATIENCE, || {
        // One worker: if it died, nobody would run the tasks after.
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Event::new());
        let _open = OpenOnDrop(Arc::clone(&gate));
        let second_started = Arc::new(Event::new());
        {
            let (gate, started) = (Arc::clone(&gate), Arc::clone(&second_started));
            // The first chunks hold one item each (they grow only later).
            let mut results = pool.map(0..1_000u32, move |n| {
                if n == 0 {
                    return Armed(false);
                }
                if n == 1 {
                    started.set();
                }
                gate.wait();
                Armed(true)
            });
            assert!(!results.next().unwrap().unwrap().0);
            second_started.wait();
        } // dropped: queued chunks are cancelled; item 1's chunk still runs
        gate.set(); // item 1 returns an armed result nobody holds a handle to
        let handles: Vec<_> = (0..8u32).map(|n| pool.submit(move || n)).collect();
        for (n, handle) in (0u32..).zip(handles) {
            assert_eq!(handle.join(), Ok(n));
        }
        pool.shutdown();
    });
}
