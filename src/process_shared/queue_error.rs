//! The errors of [`process::JoinableQueue`](super::JoinableQueue): the
//! thread queue's, plus what crossing a process boundary adds (an item
//! that does not encode, does not fit, or does not decode) and tasks lost
//! with a process that died holding them.

use std::fmt;

/// Why a put refused an item; the item comes back inside.
///
/// ```
/// verisync::process::init();
/// use verisync::process::{JoinableQueue, PutError};
/// let queue = JoinableQueue::<u32>::bounded(1)?;
/// queue.put(1).unwrap();
/// assert!(matches!(queue.try_put(2), Err(PutError::Full(2))));
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum PutError<T> {
    /// The queue stayed full until the timeout (never from the blocking
    /// [`put`](super::JoinableQueue::put)).
    Full(T),
    /// The queue is shut down.
    ShutDown(T),
    /// The item's encoding is larger than the queue's whole byte capacity:
    /// it could never be put.
    TooLarge {
        /// The item.
        item: T,
        /// The bytes it takes in the queue (its postcard encoding and a
        /// 4-byte length).
        encoded: usize,
        /// The queue's byte capacity.
        capacity: usize,
    },
    /// The item's `Serialize` failed or panicked; the queue is unchanged.
    Unserializable {
        /// The item (as the failed `Serialize` left it).
        item: T,
        /// What failed, in words.
        reason: String,
    },
}

impl<T> PutError<T> {
    /// The item that was refused.
    ///
    /// ```
    /// assert_eq!(verisync::process::PutError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(item)
            | PutError::ShutDown(item)
            | PutError::TooLarge { item, .. }
            | PutError::Unserializable { item, .. } => item,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => formatter.write_str("Full(..)"),
            PutError::ShutDown(_) => formatter.write_str("ShutDown(..)"),
            PutError::TooLarge {
                encoded, capacity, ..
            } => formatter
                .debug_struct("TooLarge")
                .field("encoded", encoded)
                .field("capacity", capacity)
                .finish_non_exhaustive(),
            PutError::Unserializable { reason, .. } => formatter
                .debug_struct("Unserializable")
                .field("reason", reason)
                .finish_non_exhaustive(),
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
            PutError::TooLarge {
                encoded, capacity, ..
            } => write!(
                formatter,
                "the item takes {encoded} bytes encoded, more than the queue's whole capacity of \
                 {capacity} bytes (the item is handed back; create the queue with \
                 `JoinableQueue::with_capacity` for larger items)"
            ),
            PutError::Unserializable { reason, .. } => write!(
                formatter,
                "the item could not be encoded: {reason} (the item is handed back; the queue is \
                 unchanged)"
            ),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

/// An item taken out of the queue whose bytes did not decode as `T` (its
/// `Deserialize` failed or panicked, or another process wrote garbage
/// over it). It left the queue, and its task counts as done: its bytes
/// are here, for the caller to log or inspect.
///
/// ```
/// verisync::process::init();
/// let queue = verisync::process::JoinableQueue::<String>::new()?;
/// queue.put("fine".to_string()).unwrap();
/// if let Err(verisync::process::GetError::Undecodable(undecodable)) = queue.get() {
///     eprintln!("{undecodable}: {:?}", undecodable.bytes());
/// }
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    bytes: Vec<u8>,
    reason: String,
}

impl Undecodable {
    // Unused where the queue is unsupported (no item is ever taken there).
    #[cfg_attr(
        not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))),
        allow(dead_code)
    )]
    pub(crate) fn new(bytes: Vec<u8>, reason: String) -> Self {
        Self { bytes, reason }
    }

    /// The item's bytes as they were in the queue (postcard's encoding).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<u8>::new()?;
    /// queue.put(1).unwrap();
    /// assert!(queue.get().is_ok()); // decodes: no `Undecodable` to look at
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Why they did not decode.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<u8>::new()?;
    /// for left in queue.shutdown_now() {
    ///     if let Err(undecodable) = left {
    ///         eprintln!("{}", undecodable.reason());
    ///     }
    /// }
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The bytes, taken out.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<u8>::new()?;
    /// assert!(queue.shutdown_now().into_iter().all(|left| left.is_ok()));
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl fmt::Display for Undecodable {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "an item of {} bytes left the queue but did not decode: {}",
            self.bytes.len(),
            self.reason
        )
    }
}

impl std::error::Error for Undecodable {}

/// Why a get returned no item.
///
/// ```
/// verisync::process::init();
/// use verisync::process::{GetError, JoinableQueue};
/// let queue = JoinableQueue::<u8>::new()?;
/// assert_eq!(queue.try_get(), Err(GetError::Empty));
/// queue.shutdown();
/// assert_eq!(queue.try_get(), Err(GetError::ShutDown));
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetError {
    /// Nothing arrived before the timeout (never from the blocking
    /// [`get`](super::JoinableQueue::get)).
    Empty,
    /// The queue is shut down and drained.
    ShutDown,
    /// The next item left the queue but did not decode (its task counts
    /// as done).
    Undecodable(Undecodable),
}

impl fmt::Display for GetError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => formatter.write_str("the queue stayed empty until the timeout"),
            GetError::ShutDown => {
                formatter.write_str("the queue is shut down and every item has been taken")
            }
            GetError::Undecodable(undecodable) => undecodable.fmt(formatter),
        }
    }
}

impl std::error::Error for GetError {}

/// [`join`](super::JoinableQueue::join) found every task done or lost
/// (none queued or held by a live process), and some lost: taken by a
/// process that exited or was killed before anyone marked them done (or
/// discarded with garbage found in the queue's memory). `lost` counts
/// every task lost since the queue was created, less one for each later
/// [`task_done`](super::JoinableQueue::task_done) that found no other task
/// to mark (it marks a lost one done), so every later join reports them
/// too.
///
/// ```
/// verisync::process::init();
/// let queue = verisync::process::JoinableQueue::<u8>::new()?;
/// match queue.join() {
///     Ok(()) => {}
///     Err(lost) => eprintln!("{lost}"),
/// }
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TasksLost {
    /// Tasks lost since the queue was created and not marked done since.
    pub lost: usize,
}

impl fmt::Display for TasksLost {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} task(s) can never be marked done: a process took them and exited or died \
             before calling task_done (or they were discarded with garbage found in the \
             queue's shared memory); every other task is done",
            self.lost
        )
    }
}

impl std::error::Error for TasksLost {}
