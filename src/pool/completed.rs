//! [`as_completed`], [`as_completed_timeout`] and [`wait_all`]: Python's
//! `concurrent.futures` helpers, for handles of either pool.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::task::{TaskError, TaskHandle};
use crate::deadlock::hooks::BlockedIn;
use crate::queue::JoinableQueue;
use crate::sys::time::deadline_after;

/// Yields each task's `(index, result)` as it finishes, fastest first —
/// Python's `as_completed`. `index` is the handle's position in `handles`.
///
/// Each handle gets an `on_done` callback that queues its index; the
/// iterator takes indexes off that queue, so it never polls.
///
/// ```
/// use std::time::Duration;
/// use verisync::{as_completed, ThreadPool};
///
/// let pool = ThreadPool::new(2);
/// let slow = pool.submit(|| { std::thread::sleep(Duration::from_millis(50)); "slow" });
/// let fast = pool.submit(|| "fast");
/// let order: Vec<_> = as_completed([slow, fast]).collect();
/// assert_eq!(order, [(1, Ok("fast")), (0, Ok("slow"))]);
/// ```
pub fn as_completed<R: Send + 'static>(
    handles: impl IntoIterator<Item = TaskHandle<R>>,
) -> AsCompleted<R> {
    let finished = Arc::new(JoinableQueue::new());
    let handles: Vec<Option<TaskHandle<R>>> = handles
        .into_iter()
        .enumerate()
        .map(|(index, handle)| {
            let finished = Arc::clone(&finished);
            // The queue is never shut down, so the put cannot be refused.
            handle.on_done_notify(move || {
                let _ = finished.put(index);
            });
            Some(handle)
        })
        .collect();
    AsCompleted {
        remaining: handles.len(),
        handles,
        finished,
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<R> {
    handles: Vec<Option<TaskHandle<R>>>,
    finished: Arc<JoinableQueue<usize>>,
    remaining: usize,
}

/// A finished task: its index and its result.
type Finished<R> = (usize, Result<R, TaskError>);

/// The deadline passed before the next task finished.
struct DeadlinePassed;

impl<R> AsCompleted<R> {
    /// The next task to finish, waiting until `deadline` (`None`: forever).
    fn next_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Option<Result<Finished<R>, DeadlinePassed>> {
        if self.remaining == 0 {
            return None;
        }
        let Ok(index) = self
            .finished
            .get_until(deadline, BlockedIn::later("as_completed_timeout", None))
        else {
            return Some(Err(DeadlinePassed));
        };
        self.remaining -= 1;
        let handle = self.handles[index].take().expect("each task finishes once");
        Some(Ok((index, handle.join())))
    }

    /// The handles that have not been yielded, with their indexes.
    fn take_unfinished(&mut self) -> Vec<(usize, TaskHandle<R>)> {
        self.remaining = 0;
        self.handles
            .iter_mut()
            .enumerate()
            .filter_map(|(index, handle)| Some((index, handle.take()?)))
            .collect()
    }
}

impl<R> Iterator for AsCompleted<R> {
    type Item = (usize, Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_until(None)? {
            Ok(finished) => Some(finished),
            Err(DeadlinePassed) => unreachable!("a wait without a deadline does not time out"),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<R> fmt::Debug for AsCompleted<R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AsCompleted")
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// [`as_completed`] with a deadline `timeout` from now — Python's
/// `as_completed(fs, timeout)`: yields `Ok((index, result))` as tasks
/// finish; if the deadline passes first, yields one
/// `Err(`[`AsCompletedTimedOut`]`)` carrying the unfinished handles back
/// (with their indexes), then ends. Nothing is lost: those handles can
/// still be joined or waited on. `Duration::MAX` never times out.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use verisync::{as_completed_timeout, Event, ThreadPool};
///
/// let pool = ThreadPool::new(2);
/// let gate = Arc::new(Event::new());
/// let stuck = {
///     let gate = Arc::clone(&gate);
///     pool.submit(move || { gate.wait(); "late" })
/// };
/// let mut results = as_completed_timeout([stuck, pool.submit(|| "quick")], Duration::from_millis(50));
/// assert_eq!(results.next().unwrap().unwrap(), (1, Ok("quick")));
/// let timed_out = results.next().unwrap().unwrap_err();
/// assert_eq!(timed_out.unfinished(), 1);
/// assert!(results.next().is_none());
///
/// gate.set();
/// let (index, late) = timed_out.into_unfinished().pop().unwrap();
/// assert_eq!((index, late.join()), (0, Ok("late")));
/// ```
pub fn as_completed_timeout<R: Send + 'static>(
    handles: impl IntoIterator<Item = TaskHandle<R>>,
    timeout: Duration,
) -> AsCompletedTimeout<R> {
    AsCompletedTimeout {
        inner: as_completed(handles),
        deadline: deadline_after(timeout),
    }
}

/// The iterator of [`as_completed_timeout`].
pub struct AsCompletedTimeout<R> {
    inner: AsCompleted<R>,
    /// `None`: no deadline.
    deadline: Option<Instant>,
}

impl<R> Iterator for AsCompletedTimeout<R> {
    type Item = Result<(usize, Result<R, TaskError>), AsCompletedTimedOut<R>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner.next_until(self.deadline)? {
            Ok(finished) => Some(Ok(finished)),
            Err(DeadlinePassed) => Some(Err(AsCompletedTimedOut {
                unfinished: self.inner.take_unfinished(),
            })),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Each remaining task, or one timeout error for all of them.
        let remaining = self.inner.remaining;
        (remaining.min(1), Some(remaining))
    }
}

impl<R> fmt::Debug for AsCompletedTimeout<R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AsCompletedTimeout")
            .field("remaining", &self.inner.remaining)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// [`as_completed_timeout`]'s deadline passed with tasks unfinished: their
/// handles, handed back with their indexes, in index order.
pub struct AsCompletedTimedOut<R> {
    unfinished: Vec<(usize, TaskHandle<R>)>,
}

impl<R> AsCompletedTimedOut<R> {
    /// How many tasks had not finished (or not been yielded) at the deadline.
    ///
    /// See [`as_completed_timeout`] for an example.
    pub fn unfinished(&self) -> usize {
        self.unfinished.len()
    }

    /// The unfinished tasks' `(index, handle)` pairs, in index order.
    ///
    /// See [`as_completed_timeout`] for an example.
    pub fn into_unfinished(self) -> Vec<(usize, TaskHandle<R>)> {
        self.unfinished
    }
}

impl<R> fmt::Display for AsCompletedTimedOut<R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "as_completed timed out with {} task(s) unfinished; their handles are handed back \
             (into_unfinished) and can still be joined",
            self.unfinished.len()
        )
    }
}

impl<R> fmt::Debug for AsCompletedTimedOut<R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indexes: Vec<usize> = self.unfinished.iter().map(|(index, _)| *index).collect();
        formatter
            .debug_struct("AsCompletedTimedOut")
            .field("unfinished", &indexes)
            .finish()
    }
}

impl<R> std::error::Error for AsCompletedTimedOut<R> {}

/// Waits until every handle's task has finished — Python's `wait(fs)`.
///
/// ```
/// let pool = verisync::ThreadPool::new(2);
/// let handles: Vec<_> = (0..4).map(|n| pool.submit(move || n)).collect();
/// verisync::wait_all(&handles);
/// assert!(handles.iter().all(|handle| handle.is_finished()));
/// ```
pub fn wait_all<'a, R: 'a>(handles: impl IntoIterator<Item = &'a TaskHandle<R>>) {
    for handle in handles {
        handle.wait();
    }
}
