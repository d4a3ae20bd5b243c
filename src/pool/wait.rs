//! [`wait`] and [`ReturnWhen`]: Python's `concurrent.futures.wait(fs,
//! timeout, return_when)`, for handles of either pool.
//!
//! # Implementation
//!
//! A handle counts as done when [`TaskHandle::is_finished`] says so: its
//! result is stored and its callbacks ran, so `join` would not block.
//! `AllCompleted` waits for the handles one after the
//! other (each wait bounded by the one deadline), so it registers nothing.
//! `FirstCompleted` and `FirstException` must wake at whichever finishes
//! first: the call subscribes a queue of its own to each unfinished
//! handle's watch, which queues the handle's index when its task finishes
//! (as [`as_completed`](crate::as_completed) does with a callback), and the
//! call takes indexes off that queue until its condition holds or the
//! deadline passes. The watch is notified by a callback, which runs before
//! the callbacks registered after it and before the handle is marked
//! finished, so after taking an index the call also waits (within the
//! deadline) for that handle to be finished: otherwise its condition,
//! checked too early, would miss the one wake-up that handle gives.
//!
//! A handle's callbacks cannot be removed, so the watch is one callback per
//! handle, registered by the first call that watches it and shared by the
//! later ones; a call that returned leaves only a dead subscription, pruned
//! by the next (see `watch.rs`). Polling `wait` in a loop thus does not pile
//! up memory on a handle whose task runs on.
//!
//! **On a worker of the tasks' pool.** Without a timeout, before it
//! blocks, the call runs the handles' unstarted tasks inline one by one, in
//! index order, until its condition holds — `AllCompleted` through
//! [`TaskHandle::wait`], the first-modes directly — since the worker they
//! wait for may be this one. With a timeout nothing runs inline (the call
//! returns in time), as for [`TaskHandle::wait_timeout`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::task::TaskHandle;
use crate::deadlock::hooks::BlockedIn;
use crate::queue::JoinableQueue;
use crate::sys::time::deadline_after;

/// When [`wait`] returns — Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`
/// and `ALL_COMPLETED`. In every case it also returns when the timeout
/// passes.
///
/// ```
/// use verisync::{wait, ReturnWhen, ThreadPool};
/// let pool = ThreadPool::new(2);
/// let handles = [pool.submit(|| 1), pool.submit(|| 2)];
/// let (done, not_done) = wait(&handles, None, ReturnWhen::AllCompleted);
/// assert_eq!((done, not_done), (vec![0, 1], vec![]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any task is done (or there are none).
    FirstCompleted,
    /// As soon as any task is done with an error other than `Cancelled` (a
    /// panic, a dead worker, a timeout, `ShutDown`...), or when all are
    /// done if none fails — Python's `FIRST_EXCEPTION`, for which a
    /// cancelled future is not an exception either.
    FirstException,
    /// When every task is done.
    AllCompleted,
}

/// Waits for the tasks of `handles` until `return_when` holds or `timeout`
/// passes (`None` or `Duration::MAX`: no timeout), and returns the indexes
/// (positions in `handles`, ascending) of the tasks that are done and of
/// those that are not — Python's `wait(fs, timeout, return_when)`, which
/// returns two sets of futures. Nothing is taken: `join` each handle for
/// its result.
///
/// A task is **done** when it [is finished](TaskHandle::is_finished): it
/// ran, panicked, was cancelled or refused, and its `on_done` callbacks
/// ran (so `join` returns at once). A timeout is not an error: the
/// unfinished tasks are simply in `not_done`.
///
/// Without a timeout (`None` or `Duration::MAX`), on a worker of the
/// tasks' own pool, the call runs their unstarted tasks inline, in index
/// order, until `return_when` holds (`FirstCompleted`: at most one), as
/// [`TaskHandle::wait`] does; otherwise a pool whose workers all wait so
/// would never run them. With a timeout it only waits.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use verisync::{wait, Event, ReturnWhen, ThreadPool};
///
/// let pool = ThreadPool::new(2);
/// let gate = Arc::new(Event::new());
/// let slow = {
///     let gate = Arc::clone(&gate);
///     pool.submit(move || { gate.wait(); "slow" })
/// };
/// let handles = [slow, pool.submit(|| "fast")];
/// let (done, not_done) = wait(&handles, None, ReturnWhen::FirstCompleted);
/// assert_eq!((done, not_done), (vec![1], vec![0]));
///
/// // A timeout returns what is done so far.
/// let (done, not_done) = wait(&handles, Some(Duration::from_millis(10)), ReturnWhen::AllCompleted);
/// assert_eq!((done, not_done), (vec![1], vec![0]));
/// gate.set();
/// let (done, _) = wait(&handles, None, ReturnWhen::AllCompleted);
/// assert_eq!(done, [0, 1]);
/// ```
pub fn wait<R: Send + 'static>(
    handles: &[TaskHandle<R>],
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> (Vec<usize>, Vec<usize>) {
    let deadline = timeout.and_then(deadline_after);
    if !satisfied(handles, return_when) {
        match return_when {
            ReturnWhen::AllCompleted => wait_for_all(handles, deadline),
            ReturnWhen::FirstCompleted | ReturnWhen::FirstException => {
                wait_for_first(handles, deadline, return_when);
            }
        }
    }
    (0..handles.len()).partition(|&index| handles[index].is_finished())
}

/// Whether `return_when` holds for `handles` now.
fn satisfied<R>(handles: &[TaskHandle<R>], return_when: ReturnWhen) -> bool {
    let all_done = || handles.iter().all(TaskHandle::is_finished);
    match return_when {
        ReturnWhen::FirstCompleted => {
            handles.is_empty() || handles.iter().any(TaskHandle::is_finished)
        }
        ReturnWhen::FirstException => {
            let failed = |handle: &TaskHandle<R>| handle.is_finished() && handle.failed();
            handles.iter().any(failed) || all_done()
        }
        ReturnWhen::AllCompleted => all_done(),
    }
}

/// Waits for each handle in turn, all before `deadline` (`None`: forever).
fn wait_for_all<R>(handles: &[TaskHandle<R>], deadline: Option<Instant>) {
    for handle in handles {
        match deadline {
            None => handle.wait(),
            Some(deadline) => {
                if !handle.wait_until(deadline) {
                    return;
                }
            }
        }
    }
}

/// Waits until `return_when` holds or `deadline` passes, woken by each
/// task's completion callback.
fn wait_for_first<R: Send + 'static>(
    handles: &[TaskHandle<R>],
    deadline: Option<Instant>,
    return_when: ReturnWhen,
) {
    if deadline.is_none() && run_unstarted_inline_until(handles, return_when) {
        return;
    }
    let finished = Arc::new(JoinableQueue::new());
    for (index, handle) in handles.iter().enumerate() {
        if !handle.is_finished() {
            handle.notify_when_finished(&finished, index);
        }
    }
    // Every completion queues an index, so each one re-checks the condition
    // — once that handle is finished (its later callbacks may still run).
    while !satisfied(handles, return_when) {
        let Ok(index) = finished.get_until(deadline, BlockedIn::later("verisync::wait", None))
        else {
            return; // the deadline passed
        };
        let finished_in_time = match deadline {
            None => {
                handles[index].wait();
                true
            }
            Some(deadline) => handles[index].wait_until(deadline),
        };
        if !finished_in_time {
            return;
        }
    }
}

/// On a worker of the handles' pool: runs their unstarted tasks inline, in
/// index order, until one that ran makes `return_when` hold (a first-mode:
/// it finished, or failed). Elsewhere it runs nothing. Returns whether
/// `return_when` holds.
fn run_unstarted_inline_until<R>(handles: &[TaskHandle<R>], return_when: ReturnWhen) -> bool {
    for handle in handles {
        if handle.is_resolved() {
            continue;
        }
        handle.run_inline_if_unstarted_here();
        // Run here, it is finished on return (its callbacks ran here too).
        let decides = match return_when {
            ReturnWhen::FirstCompleted => handle.is_finished(),
            ReturnWhen::FirstException => handle.is_finished() && handle.failed(),
            ReturnWhen::AllCompleted => false,
        };
        if decides {
            return true;
        }
    }
    satisfied(handles, return_when)
}
