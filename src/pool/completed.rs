//! [`as_completed`] and [`wait_all`]: Python's `concurrent.futures`
//! helpers, for handles of either pool.

use std::fmt;
use std::sync::Arc;

use super::task::{TaskError, TaskHandle};
use crate::queue::JoinableQueue;

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

impl<R> Iterator for AsCompleted<R> {
    type Item = (usize, Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let index = self
            .finished
            .get()
            .expect("the completion queue is never shut down");
        self.remaining -= 1;
        let handle = self.handles[index].take().expect("each task finishes once");
        Some((index, handle.join()))
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
