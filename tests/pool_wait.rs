//! `verisync::wait(handles, timeout, return_when)` and
//! `as_completed_timeout` (issue 16, item 3) — Python's
//! `concurrent.futures.wait` and `as_completed(fs, timeout)`.
//!
//! Tasks are held by gates the tests open; the only timeouts are the ones
//! under test, and they are asserted only to return what is done so far.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verisync::{as_completed_timeout, wait, Event, ReturnWhen, TaskError, TaskHandle, ThreadPool};

use common::{quiet_deliberate_panics, with_watchdog, PATIENCE};

/// Counts, per thread, the bytes a thread allocated minus those it freed
/// while counting is on (see [`bytes_kept_by`]).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static BYTES_KEPT: Cell<i64> = const { Cell::new(0) };
}

// SAFETY: every call is passed straight on to `System`; the counting only
// touches `const`-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            BYTES_KEPT.with(|kept| kept.set(kept.get() + layout.size() as i64));
        }
        // SAFETY: as the caller promised for this call.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if COUNTING.with(Cell::get) {
            BYTES_KEPT.with(|kept| kept.set(kept.get() - layout.size() as i64));
        }
        // SAFETY: as the caller promised for this call.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes `body` allocated on this thread and did not free on it: what
/// it left allocated (or handed to another thread to free later).
fn bytes_kept_by(body: impl FnOnce()) -> i64 {
    BYTES_KEPT.with(|kept| kept.set(0));
    COUNTING.with(|counting| counting.set(true));
    body();
    COUNTING.with(|counting| counting.set(false));
    BYTES_KEPT.with(Cell::get)
}

/// A task that waits for `gate`, then returns `value`.
fn gated(pool: &ThreadPool, gate: &Arc<Event>, value: u32) -> TaskHandle<u32> {
    let gate = Arc::clone(gate);
    pool.submit(move || {
        gate.wait();
        value
    })
}

const SHORT: Duration = Duration::from_millis(30);

#[test]
fn first_completed_returns_as_soon_as_one_is_done() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(3);
        let gate = Arc::new(Event::new());
        let handles = vec![
            gated(&pool, &gate, 0),
            gated(&pool, &gate, 1),
            pool.submit(|| 2),
        ];
        let (done, not_done) = wait(&handles, None, ReturnWhen::FirstCompleted);
        assert_eq!((done, not_done), (vec![2], vec![0, 1]));
        gate.set();
        let results: Vec<_> = handles.into_iter().map(TaskHandle::join).collect();
        assert_eq!(results, [Ok(0), Ok(1), Ok(2)], "wait took nothing");
        // No handles: nothing to wait for.
        let none: [TaskHandle<u32>; 0] = [];
        for mode in [
            ReturnWhen::FirstCompleted,
            ReturnWhen::FirstException,
            ReturnWhen::AllCompleted,
        ] {
            assert_eq!(wait(&none, None, mode), (vec![], vec![]));
        }
    });
}

/// A panic is an exception; a cancellation is not (as in Python). Without
/// any failure, `FirstException` waits for all.
#[test]
fn first_exception_returns_at_the_first_failure_but_not_at_a_cancellation() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let gate = Arc::new(Event::new());
        let panic_gate = Arc::new(Event::new());
        let blocker = gated(&pool, &gate, 0);
        let failing = {
            let panic_gate = Arc::clone(&panic_gate);
            pool.submit(move || -> u32 {
                panic_gate.wait();
                panic!("deliberate failure");
            })
        };
        let cancelled = pool.submit(|| 2);
        // Both workers are busy, so the third is still queued.
        assert!(cancelled.cancel());
        let handles = vec![blocker, failing, cancelled];
        // Only a cancellation so far: not an exception; times out.
        let (done, not_done) = wait(&handles, Some(SHORT), ReturnWhen::FirstException);
        assert_eq!((done, not_done), (vec![2], vec![0, 1]));
        panic_gate.set();
        let (done, not_done) = wait(&handles, None, ReturnWhen::FirstException);
        assert_eq!((done, not_done), (vec![1, 2], vec![0]));
        gate.set();
        let results: Vec<_> = handles.into_iter().map(TaskHandle::join).collect();
        assert_eq!(
            results,
            [
                Ok(0),
                Err(TaskError::Panicked("deliberate failure".into())),
                Err(TaskError::Cancelled)
            ]
        );
        // No failure at all: FirstException means all completed.
        let gate = Arc::new(Event::new());
        let handles = vec![gated(&pool, &gate, 0), pool.submit(|| 1)];
        let opener = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || gate.set())
        };
        let (done, not_done) = wait(&handles, None, ReturnWhen::FirstException);
        assert_eq!((done, not_done), (vec![0, 1], vec![]));
        opener.join().unwrap();
    });
}

#[test]
fn all_completed_with_a_timeout_returns_what_is_done_so_far() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let gate = Arc::new(Event::new());
        let handles = vec![pool.submit(|| 0), gated(&pool, &gate, 1), pool.submit(|| 2)];
        let started = Instant::now();
        let (done, not_done) = wait(&handles, Some(SHORT), ReturnWhen::AllCompleted);
        assert!(started.elapsed() >= SHORT, "returned before the timeout");
        assert_eq!((done, not_done), (vec![0, 2], vec![1]));
        // A zero timeout only looks.
        assert_eq!(
            wait(&handles, Some(Duration::ZERO), ReturnWhen::FirstCompleted),
            (vec![0, 2], vec![1])
        );
        gate.set();
        // Duration::MAX waits forever, like None.
        let (done, not_done) = wait(&handles, Some(Duration::MAX), ReturnWhen::AllCompleted);
        assert_eq!((done, not_done), (vec![0, 1, 2], vec![]));
    });
}

/// Done means finished, as `is_finished`: the result is stored and the
/// callbacks ran. A callback registered before `wait` and still blocked
/// keeps the task in `not_done`; once it returns, `wait` sees the task
/// done (its own wake-up comes after that callback).
#[test]
fn a_task_is_done_for_wait_once_it_is_finished_with_its_callbacks() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Event::new());
        let callback_gate = Arc::new(Event::new());
        let handle = gated(&pool, &gate, 7);
        {
            let callback_gate = Arc::clone(&callback_gate);
            handle.on_done(move |_| callback_gate.wait());
        }
        let handles = [handle];
        gate.set();
        let (done, not_done) = wait(&handles, Some(SHORT), ReturnWhen::FirstCompleted);
        assert_eq!(
            (done, not_done),
            (vec![], vec![0]),
            "its callback is blocked"
        );
        let opener = {
            let callback_gate = Arc::clone(&callback_gate);
            std::thread::spawn(move || callback_gate.set())
        };
        let (done, _) = wait(&handles, None, ReturnWhen::FirstCompleted);
        assert_eq!(done, [0]);
        assert!(handles[0].is_finished());
        opener.join().unwrap();
        let [handle] = handles;
        assert_eq!(handle.join(), Ok(7));
    });
}

/// On the one worker of a pool, waiting for all of its own queued tasks
/// runs them inline instead of deadlocking.
#[test]
fn all_completed_on_the_pools_only_worker_runs_queued_tasks_inline() {
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        let inner = Arc::clone(&pool);
        let outer = pool.submit(move || {
            let handles: Vec<_> = (0..3u32).map(|n| inner.submit(move || n * 10)).collect();
            let split = wait(&handles, None, ReturnWhen::AllCompleted);
            let values: Vec<_> = handles.into_iter().map(TaskHandle::join).collect();
            (split, values)
        });
        assert_eq!(
            outer.join(),
            Ok(((vec![0, 1, 2], vec![]), vec![Ok(0), Ok(10), Ok(20)]))
        );
    });
}

#[test]
fn as_completed_timeout_yields_the_finished_then_hands_the_unfinished_back() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(3);
        let gate = Arc::new(Event::new());
        let handles = vec![
            gated(&pool, &gate, 0),
            pool.submit(|| 1),
            gated(&pool, &gate, 2),
        ];
        let mut results = as_completed_timeout(handles, SHORT);
        assert_eq!(results.next().map(Result::unwrap), Some((1, Ok(1))));
        let timed_out = results
            .next()
            .expect("the timeout is reported")
            .expect_err("the others are still gated");
        assert!(results.next().is_none(), "it ends after the timeout");
        assert_eq!(timed_out.unfinished(), 2);
        assert_eq!(
            format!("{timed_out:?}"),
            "AsCompletedTimedOut { unfinished: [0, 2] }"
        );
        let message = timed_out.to_string();
        assert!(
            message.contains("2 task(s) unfinished") && message.contains("into_unfinished"),
            "{message}"
        );
        gate.set();
        let late: Vec<_> = timed_out
            .into_unfinished()
            .into_iter()
            .map(|(index, handle)| (index, handle.join()))
            .collect();
        assert_eq!(late, [(0, Ok(0)), (2, Ok(2))], "nothing was lost");
    });
}

#[test]
fn as_completed_timeout_without_a_timeout_passing_yields_everything() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        let seen = AtomicUsize::new(0);
        for timeout in [PATIENCE, Duration::MAX] {
            let handles: Vec<_> = (0..20u32)
                .map(|n| {
                    pool.submit(move || {
                        if n == 5 {
                            panic!("deliberate panic in task 5");
                        }
                        n
                    })
                })
                .collect();
            let mut indexes: Vec<usize> = as_completed_timeout(handles, timeout)
                .map(|item| {
                    let (index, result) = item.expect("no timeout");
                    seen.fetch_add(1, SeqCst);
                    if index == 5 {
                        assert_eq!(
                            result,
                            Err(TaskError::Panicked("deliberate panic in task 5".into()))
                        );
                    } else {
                        assert_eq!(result, Ok(index as u32));
                    }
                    index
                })
                .collect();
            indexes.sort_unstable();
            assert_eq!(indexes, (0..20).collect::<Vec<_>>());
        }
        assert_eq!(seen.load(SeqCst), 40);
    });
}

/// Polling with `wait(…, FirstCompleted)` and a zero timeout while a task
/// runs leaves nothing behind per call (review c1: each call left a
/// callback and a queue on the handle, about 2 KB, until the task ended:
/// 400 MB over these calls).
#[test]
fn polling_wait_first_completed_does_not_pile_up_memory_on_an_unfinished_handle() {
    with_watchdog(PATIENCE * 3, || {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Event::new());
        let handles = [gated(&pool, &gate, 7)];
        let calls = 200_000;
        let poll = |calls| {
            for _ in 0..calls {
                let (done, not_done) =
                    wait(&handles, Some(Duration::ZERO), ReturnWhen::FirstCompleted);
                assert!(done.is_empty() && not_done == [0]);
            }
        };
        // Warm up (the handle's first wait sets up what later ones reuse).
        poll(10);
        let kept = bytes_kept_by(|| poll(calls));
        assert!(
            kept < 64 * 1024,
            "{calls} wait(FirstCompleted) calls on an unfinished handle kept {kept} bytes"
        );
        gate.set();
        let [handle] = handles;
        assert_eq!(handle.join(), Ok(7));
    });
}

/// `wait(…, FirstCompleted)` without a timeout on the pool's only worker,
/// its tasks still queued: it runs the first unstarted one inline, as
/// `AllCompleted` and `map_unordered` do, instead of waiting for a worker
/// that is itself (review c2: it hung).
#[test]
fn first_completed_on_the_pools_only_worker_runs_the_first_queued_task_inline() {
    quiet_deliberate_panics();
    with_watchdog(PATIENCE, || {
        let pool = Arc::new(ThreadPool::new(1));
        let inner = Arc::clone(&pool);
        let outer = pool.submit(move || {
            let handles = [inner.submit(|| 1), inner.submit(|| 2)];
            let first = wait(&handles, None, ReturnWhen::FirstCompleted);
            let exception = {
                let failing = [
                    inner.submit(|| 3),
                    inner.submit(|| -> u32 { panic!("deliberate") }),
                ];
                wait(&failing, Some(Duration::MAX), ReturnWhen::FirstException)
            };
            let values: Vec<_> = handles.into_iter().map(TaskHandle::join).collect();
            (first, exception, values)
        });
        assert_eq!(
            outer.join(),
            Ok(((vec![0], vec![1]), (vec![0, 1], vec![]), vec![Ok(1), Ok(2)]))
        );
    });
}
