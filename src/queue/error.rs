//! The queue's errors. An error that refuses an item carries it back.

use std::fmt;

/// The queue is shut down. From [`put`](crate::JoinableQueue::put) it
/// carries the refused item back (`ShutDown(item)`); from
/// [`get`](crate::JoinableQueue::get) it means "shut down and drained"
/// (`ShutDown(())`).
///
/// ```
/// use verisync::{JoinableQueue, ShutDown};
/// let queue = JoinableQueue::new();
/// queue.shutdown();
/// assert_eq!(queue.put("late"), Err(ShutDown("late")));
/// assert_eq!(queue.get(), Err(ShutDown(())));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShutDown<T = ()>(pub T);

impl<T> ShutDown<T> {
    /// The item that was refused.
    ///
    /// ```
    /// assert_eq!(verisync::ShutDown(5).into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for ShutDown<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("ShutDown(..)")
    }
}

impl<T> fmt::Display for ShutDown<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(
            "the queue is shut down: it accepts no more items, and getters receive only what \
             was queued before the shutdown",
        )
    }
}

impl<T> std::error::Error for ShutDown<T> {}

/// Why [`try_put`](crate::JoinableQueue::try_put) or
/// [`put_timeout`](crate::JoinableQueue::put_timeout) refused an item; the
/// item comes back inside.
///
/// ```
/// use verisync::{JoinableQueue, PutError};
/// let queue = JoinableQueue::bounded(1);
/// queue.put(1).unwrap();
/// assert_eq!(queue.try_put(2), Err(PutError::Full(2)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PutError<T> {
    /// The queue stayed full until the timeout.
    Full(T),
    /// The queue is shut down.
    ShutDown(T),
}

impl<T> PutError<T> {
    /// The item that was refused.
    ///
    /// ```
    /// assert_eq!(verisync::PutError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(item) | PutError::ShutDown(item) => item,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => formatter.write_str("Full(..)"),
            PutError::ShutDown(_) => formatter.write_str("ShutDown(..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => formatter.write_str(
                "the queue is full: no getter made room in time (the item is handed back)",
            ),
            PutError::ShutDown(_) => formatter.write_str(
                "the queue is shut down and accepts no more items (the item is handed back)",
            ),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why [`try_get`](crate::JoinableQueue::try_get) or
/// [`get_timeout`](crate::JoinableQueue::get_timeout) returned no item.
///
/// ```
/// use verisync::{GetError, JoinableQueue};
/// let queue = JoinableQueue::<u8>::new();
/// assert_eq!(queue.try_get(), Err(GetError::Empty));
/// queue.shutdown();
/// assert_eq!(queue.try_get(), Err(GetError::ShutDown));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetError {
    /// Nothing arrived before the timeout.
    Empty,
    /// The queue is shut down and drained.
    ShutDown,
}

impl fmt::Display for GetError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            GetError::Empty => "the queue stayed empty until the timeout",
            GetError::ShutDown => "the queue is shut down and every item has been taken",
        })
    }
}

impl std::error::Error for GetError {}

/// [`task_done`](crate::JoinableQueue::task_done) was called more times than
/// items were put; the count of unfinished tasks is unchanged (zero).
///
/// ```
/// let queue = verisync::JoinableQueue::<u8>::new();
/// assert_eq!(queue.task_done(), Err(verisync::TaskDoneError));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(
            "task_done() was called more times than items were put: no task is unfinished; \
             call it once per item taken with get() (or use get_task(), which does it for you)",
        )
    }
}

impl std::error::Error for TaskDoneError {}
