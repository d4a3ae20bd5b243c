//! `process::JoinableQueue`: a FIFO work queue shared by processes, items
//! encoded with postcard into a ring of bytes in the arena. The state
//! machine (ring layout, journal, who wakes whom) is in
//! `raw/process_queue.rs`.
//!
//! # Layout in the arena
//!
//! ```text
//!  0      object header                                   (16 bytes)
//!  16     state lock word (robust.rs)                     (4 bytes)
//!  20     QueueState: futex words, live words, journal    (80 bytes)
//!  128    holdings: one per process-table slot            (SLOTS × 8 bytes)
//!  RING   the ring: `capacity` bytes
//! ```
//!
//! The header records the byte capacity and the element type's identity
//! (`pod.rs`'s `element_identity`, so a handle opens only as its own `T`);
//! the handle carries the byte capacity and the item bound, which the
//! opener checks against the header and the state, and keeps in its own
//! memory from then on.
//!
//! # Where user code runs
//!
//! An item's `Serialize` runs before the state lock is taken (into a buffer
//! of this process), its `Deserialize` after it is released (from a copy):
//! a panicking, failing or slow serde impl fails its own call and never
//! holds up or corrupts the queue. The copy into and out of the ring is a
//! `memcpy` under the lock.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, Object, KIND_QUEUE, LINE};
use super::error::{open_failed, SharedError};
use super::pod::element_identity;
use super::queue_error::{GetError, PutError, TasksLost, Undecodable};
use super::robust::{RobustLock, Wait};
use super::table::SLOTS;
use crate::panic_payload::take_panic_message;
use crate::pool::process::{decode, encode_into};
use crate::queue::TaskDoneError;
use crate::raw::process_queue::{
    GetRefused, Holding, Joined, PutRefused, QueueState, RawQueue, RingBytes, RECORD_HEADER,
};
use crate::sys::time::deadline_after;

/// Where the state sits in the object (after the state lock word).
const STATE_AT: usize = 20;
/// Where the holdings start: the third line.
const HOLDINGS_AT: usize = 2 * LINE;
/// Where the ring starts.
const RING_AT: usize = HOLDINGS_AT + SLOTS * std::mem::size_of::<Holding>();
/// No item bound.
const UNBOUNDED: u32 = u32::MAX;
/// The smallest byte capacity.
const MIN_BYTES: usize = 16;

/// The largest encode or record buffer a thread keeps between puts or
/// gets (one that grew past it for a large item is freed after that call).
const KEPT_BUFFER: usize = 64 << 10;

thread_local! {
    /// This thread's encode buffer for puts, reused so that a put of a
    /// small item allocates nothing (`put_waiting`).
    static ENCODE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// This thread's buffer for the records gets copy out of the ring,
    /// reused so that a get allocates nothing and zeroes nothing under the
    /// queue's lock (`get_waiting`; the item's `Deserialize` may allocate).
    static RECORD_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `call` with this thread's buffer `kept`, taken for the call (a
/// call from inside the item's `Serialize`/`Deserialize`, or from a
/// thread-local destructor, finds none and starts a fresh one) and kept
/// afterwards, cut back to [`KEPT_BUFFER`] bytes if it grew past them.
fn with_kept_buffer<R>(
    kept: &'static std::thread::LocalKey<Cell<Vec<u8>>>,
    call: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    let mut buffer = kept.try_with(Cell::take).unwrap_or_default();
    let result = call(&mut buffer);
    if buffer.capacity() > KEPT_BUFFER {
        // Grown past what is kept (a large item, or a doubling past the
        // limit by one of 32–64 KiB): keep `KEPT_BUFFER` of it, so items up
        // to that size never allocate again (review 17).
        buffer.truncate(KEPT_BUFFER);
        buffer.shrink_to(KEPT_BUFFER);
    }
    let _ = kept.try_with(|slot| slot.set(buffer));
    result
}

const _STATE_FITS: () = assert!(STATE_AT + std::mem::size_of::<QueueState>() <= HOLDINGS_AT);

/// The ring's bytes in the arena.
#[derive(Clone, Copy)]
struct Ring {
    object: Object,
    capacity: usize,
}

impl RingBytes for Ring {
    fn write(&self, at: usize, data: &[u8]) {
        assert!(at <= self.capacity && data.len() <= self.capacity - at);
        // SAFETY: `RING_AT + at .. + data.len()` lies inside the object's
        // checked extent (`RING_AT + capacity`: asserted above), which the
        // arena keeps mapped for the process's life; the state lock (held
        // by the caller, `raw/process_queue.rs`) excludes every other
        // writer and reader that follows the protocol, and `data` is this
        // process's own memory, so the two do not overlap. (A process that
        // ignores the protocol can race these bytes: see the module docs of
        // `process_shared`; bytes are valid whatever their values.)
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.object.bytes(RING_AT + at),
                data.len(),
            );
        }
    }

    fn read(&self, at: usize, out: &mut [u8]) {
        assert!(at <= self.capacity && out.len() <= self.capacity - at);
        // SAFETY: as `write`, the other way.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.object.bytes(RING_AT + at).cast_const(),
                out.as_mut_ptr(),
                out.len(),
            );
        }
    }
}

/// A FIFO work queue shared by processes — Python's
/// `multiprocessing.JoinableQueue` — whose items live in shared memory,
/// encoded with postcard: no feeder thread, no pipe, so a `join` never
/// deadlocks on a full pipe, and a put is a copy into memory.
///
/// Create it before starting the processes that use it, and pass it to
/// them as a task argument; clones name the same queue. The methods are
/// the thread [`JoinableQueue`](crate::JoinableQueue)'s, with these
/// differences:
///
/// - **Bounded by bytes** as well as (optionally) by items: the encoded
///   items, 4 bytes more each, share [`byte_capacity`](Self::byte_capacity)
///   bytes ([`JoinableQueue::DEFAULT_BYTES`] unless
///   [`with_capacity`](Self::with_capacity) says otherwise). A put waits
///   for room for its item; an item that could never fit is refused with
///   [`PutError::TooLarge`], which hands it back. The bytes come from the
///   process tree's shared memory (64 MiB for all its objects, never
///   freed).
/// - **Encoding can fail**: an item whose `Serialize` fails or panics is
///   handed back in [`PutError::Unserializable`]; one whose bytes do not
///   decode leaves the queue as [`GetError::Undecodable`], carrying its
///   bytes, and its task counts as done.
/// - **Dead processes**: a producer killed in the middle of a put never
///   delivers a half-written item (nothing is visible until one final
///   commit), and the queue's internal lock recovers from a holder killed
///   at any point. A consumer that exits or is killed holding tasks (got
///   with `get`, not yet marked done) cannot mark them done: instead of
///   hanging, [`join`](Self::join) returns [`TasksLost`] once every other
///   task is done. So `join` returns a `Result`. Another process may mark
///   them done instead, before or after they are counted lost.
/// - **`task_done` marks a taken task**: one the caller took, else one of
///   another process's (see [`task_done`](Self::task_done)); a task still
///   queued cannot be marked done, so a `task_done` before the `get` is
///   refused with [`TaskDoneError`] (the thread queue accepts it).
/// - FIFO only; `T: Serialize + DeserializeOwned`.
/// - The try forms do not wait for items or room, but do wait (at most
///   100 ms) for the queue's internal lock, which whoever updates it holds
///   for a copy.
/// - A process that writes garbage over the queue's memory can lose items
///   (the queue then resets, counting them lost) or make them undecodable;
///   never undefined behaviour, an out-of-bounds access, or a hang past a
///   timeout *under the queue's lock*. The record a get copies out is at
///   most the byte capacity. Decoding it (after the lock is released, so
///   outside any timeout) trusts its lengths as serde does:
///   - a garbage sequence or map length makes serde preallocate at most
///     1 MiB of elements for each collection being decoded at once (one
///     per level of nesting in `T`; a `HashMap`'s table for that many is
///     about twice that), whatever the byte capacity, before the decode
///     fails at the record's end;
///   - a sequence whose elements take no bytes (`Vec<()>`, a `Vec` of a
///     unit struct or of `PhantomData`, a map of such keys and values) is
///     decoded element by element for as long as its garbage length says,
///     up to 2^64: the get does not return (and spins a core). Types
///     without such sequences consume at least one byte per element, so
///     their decode ends within the record's length.
///
/// ```
/// verisync::process::init();
/// use verisync::process::JoinableQueue;
///
/// fn eat(dishes: JoinableQueue<u64>) -> u64 {
///     let mut eaten = 0;
///     for dish in dishes.iter() {
///         eaten += dish.expect("every dish decodes");
///         dishes.task_done().unwrap();
///     }
///     eaten
/// }
///
/// let dishes = JoinableQueue::bounded(8)?;
/// let eater = verisync::process::spawn(eat, dishes.clone()).unwrap();
/// for dish in 1..=10 {
///     dishes.put(dish).unwrap();
/// }
/// dishes.join().unwrap(); // every dish eaten
/// dishes.shutdown(); // lets the eater's loop end
/// assert_eq!(eater.join().unwrap(), 55);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
pub struct JoinableQueue<T> {
    robust: RobustLock,
    ring: Ring,
    /// The ring's bytes (the caller's own copy).
    capacity: u32,
    /// The most items at once, or `UNBOUNDED`.
    max_items: u32,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        Self {
            robust: self.robust,
            ring: self.ring,
            capacity: self.capacity,
            max_items: self.max_items,
            _items: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> JoinableQueue<T> {
    /// The byte capacity of [`new`](Self::new) and
    /// [`bounded`](Self::bounded) queues: 1 MiB.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<u8>::new()?;
    /// assert_eq!(queue.byte_capacity(), verisync::process::JoinableQueue::<u8>::DEFAULT_BYTES);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub const DEFAULT_BYTES: usize = 1 << 20;

    /// A queue with no item bound, [`DEFAULT_BYTES`](Self::DEFAULT_BYTES)
    /// of room.
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](super::Lock::new), and
    /// [`SharedError::ArenaFull`] if the tree's shared memory has no room
    /// left for it.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put('a').unwrap();
    /// queue.put('b').unwrap();
    /// assert_eq!(queue.get(), Ok('a'));
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn new() -> Result<Self, SharedError> {
        Self::with_capacity(None, Self::DEFAULT_BYTES)
    }

    /// A queue holding at most `items` items (and
    /// [`DEFAULT_BYTES`](Self::DEFAULT_BYTES) of them).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Panics
    ///
    /// If `items` is 0 (there is no rendezvous mode, as for the thread
    /// queue).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::bounded(2)?;
    /// queue.put(1).unwrap();
    /// queue.put(2).unwrap();
    /// assert!(queue.is_full());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    #[track_caller]
    pub fn bounded(items: usize) -> Result<Self, SharedError> {
        Self::with_capacity(Some(items), Self::DEFAULT_BYTES)
    }

    /// A queue holding at most `items` items (`None`: no item bound) in
    /// `bytes` bytes of shared memory. Each item takes its postcard
    /// encoding and 4 bytes more (a `u64` takes 5 to 14 bytes in all).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Panics
    ///
    /// If `items` is `Some(0)` or `bytes` is under 16.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<Vec<u8>>::with_capacity(None, 64 << 10)?;
    /// queue.put(vec![7; 1024]).unwrap();
    /// assert_eq!(queue.byte_capacity(), 64 << 10);
    /// assert_eq!(queue.capacity(), None);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    #[track_caller]
    pub fn with_capacity(items: Option<usize>, bytes: usize) -> Result<Self, SharedError> {
        let max_items = match items {
            None => UNBOUNDED,
            Some(0) => zero_capacity(),
            Some(items) => u32::try_from(items)
                .unwrap_or(UNBOUNDED - 1)
                .min(UNBOUNDED - 1),
        };
        if bytes < MIN_BYTES {
            too_few_bytes(bytes);
        }
        let full = || SharedError::ArenaFull {
            requested: bytes.saturating_add(RING_AT),
            capacity: arena::ARENA_LEN,
        };
        let capacity = u32::try_from(bytes)
            .ok()
            .filter(|_| bytes.saturating_add(RING_AT) <= arena::ARENA_LEN)
            .ok_or_else(full)?;
        let object = arena::for_new_object()?.allocate(
            KIND_QUEUE,
            element_identity::<T>(),
            RING_AT + bytes,
            capacity,
            |object| {
                state(object).reset(max_items);
                holdings(object).iter().for_each(Holding::reset);
                RobustLock::reset(object);
            },
        )?;
        Ok(Self::from_object(object, capacity, max_items))
    }

    fn from_object(object: Object, capacity: u32, max_items: u32) -> Self {
        Self {
            robust: RobustLock::new(object),
            ring: Ring {
                object,
                capacity: capacity as usize,
            },
            capacity,
            max_items,
            _items: PhantomData,
        }
    }

    fn raw(&self) -> RawQueue<'_, Ring> {
        let object = self.robust.object();
        RawQueue::new(
            state(object),
            holdings(object),
            &self.ring,
            self.capacity,
            self.max_items,
        )
    }

    /// Puts `item` at the back, waiting for room (for ever).
    ///
    /// # Errors
    ///
    /// [`PutError::ShutDown`], [`PutError::TooLarge`] or
    /// [`PutError::Unserializable`], each handing the item back.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put("soup".to_string()).unwrap();
    /// assert_eq!(queue.len(), 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_waiting(item, Wait::Until(None))
    }

    /// As [`put`](Self::put), waiting at most `timeout` for room. A zero
    /// timeout tries once; `Duration::MAX` waits forever.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put), and [`PutError::Full`] if no room came in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::bounded(1)?;
    /// queue.put(1).unwrap();
    /// let refused = queue.put_timeout(2, Duration::from_millis(5)).unwrap_err();
    /// assert_eq!(refused.into_inner(), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_waiting(item, wait_for(timeout))
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::bounded(1)?;
    /// assert!(queue.try_put(1).is_ok());
    /// assert!(queue.try_put(2).is_err());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_waiting(item, Wait::Try)
    }

    fn put_waiting(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        with_kept_buffer(&ENCODE_BUFFER, |buffer| {
            self.put_encoding(item, wait, buffer)
        })
    }

    fn put_encoding(&self, item: T, wait: Wait, buffer: &mut Vec<u8>) -> Result<(), PutError<T>> {
        match catch_unwind(AssertUnwindSafe(|| encode_into(&item, buffer))) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(PutError::Unserializable { item, reason }),
            Err(payload) => {
                let reason = format!(
                    "`Serialize` for `{}` panicked: {}",
                    std::any::type_name::<T>(),
                    take_panic_message(payload)
                );
                return Err(PutError::Unserializable { item, reason });
            }
        }
        let encoded = buffer.as_slice();
        let raw = self.raw();
        if raw.record_size(encoded.len()).is_none() {
            return Err(PutError::TooLarge {
                item,
                encoded: encoded.len().saturating_add(RECORD_HEADER as usize),
                capacity: self.capacity as usize,
            });
        }
        match raw.put(encoded, wait, &self.robust) {
            Ok(()) => Ok(()),
            Err(PutRefused::Full) => Err(PutError::Full(item)),
            Err(PutRefused::ShutDown) => Err(PutError::ShutDown(item)),
        }
    }

    /// Takes the item at the front, waiting for one (for ever). Mark it
    /// done with [`task_done`](Self::task_done) when processed.
    ///
    /// # Errors
    ///
    /// [`GetError::ShutDown`] once the queue is shut down and drained;
    /// [`GetError::Undecodable`] if the item's bytes did not decode (it
    /// left the queue; its task counts as done).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(5u8).unwrap();
    /// assert_eq!(queue.get(), Ok(5));
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn get(&self) -> Result<T, GetError> {
        self.get_waiting(Wait::Until(None))
    }

    /// As [`get`](Self::get), waiting at most `timeout`. A zero timeout
    /// tries once; `Duration::MAX` waits forever.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), and [`GetError::Empty`] if nothing came in
    /// time.
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<u8>::new()?;
    /// assert_eq!(
    ///     queue.get_timeout(Duration::from_millis(5)),
    ///     Err(verisync::process::GetError::Empty)
    /// );
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_waiting(wait_for(timeout))
    }

    /// Takes the item at the front if there is one now.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// assert!(queue.try_get().is_err());
    /// queue.put(1u8).unwrap();
    /// assert_eq!(queue.try_get(), Ok(1));
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_waiting(Wait::Try)
    }

    fn get_waiting(&self, wait: Wait) -> Result<T, GetError> {
        with_kept_buffer(&RECORD_BUFFER, |buffer| self.get_decoding(wait, buffer))
    }

    fn get_decoding(&self, wait: Wait, buffer: &mut Vec<u8>) -> Result<T, GetError> {
        let len = match self.raw().get_into(wait, &self.robust, buffer) {
            Ok(len) => len,
            Err(GetRefused::Empty) => return Err(GetError::Empty),
            Err(GetRefused::ShutDown) => return Err(GetError::ShutDown),
        };
        self.decode_taken(&buffer[..len]).map_err(|undecodable| {
            // Its task counts as done: nobody will process it.
            let _ = self.task_done();
            GetError::Undecodable(undecodable)
        })
    }

    /// Decodes an item's bytes (catching a panicking `Deserialize`).
    fn decode_taken(&self, bytes: &[u8]) -> Result<T, Undecodable> {
        match catch_unwind(AssertUnwindSafe(|| decode::<T>(bytes))) {
            Ok(Ok(item)) => Ok(item),
            Ok(Err(reason)) => Err(Undecodable::new(
                bytes.to_vec(),
                format!("as `{}`: {reason}", std::any::type_name::<T>()),
            )),
            Err(payload) => {
                let reason = format!(
                    "`Deserialize` for `{}` panicked: {}",
                    std::any::type_name::<T>(),
                    take_panic_message(payload)
                );
                Err(Undecodable::new(bytes.to_vec(), reason))
            }
        }
    }

    /// Takes the next item inside a guard that marks its task done when
    /// dropped — also when the consumer panics — so `join` is never left
    /// waiting for it (a consumer *killed* with it still loses it:
    /// [`TasksLost`]).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(2u32).unwrap();
    /// {
    ///     let task = queue.get_task().unwrap();
    ///     assert_eq!(*task * 21, 42);
    /// } // marked done here
    /// assert_eq!(queue.unfinished_tasks(), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn get_task(&self) -> Result<QueueTask<'_, T>, GetError> {
        let item = self.get()?;
        Ok(QueueTask {
            item,
            pending: PendingTask { queue: self },
        })
    }

    /// Marks one task done (an item taken with `get`, by any process of
    /// the tree). When every task is done, [`join`](Self::join) returns.
    ///
    /// The task marked is the calling process's own if it holds one (took
    /// it and has not marked it); else one held by a process that has
    /// ended; else one already counted lost (see [`TasksLost`]); else one
    /// held by another live process, which then holds one fewer. Unlike
    /// the thread queue, a task still queued (not yet got) is never
    /// marked. The queue counts how many tasks each process holds, not
    /// which: a task marked done twice can use up a live process's task
    /// (whose own `task_done` is then refused), and marking done for a
    /// live process while one that died still holds a task charges the
    /// dead one, so `join` waits until the live one exits. Mark each task
    /// done once, in the process that took it (as [`get_task`](Self::get_task)
    /// does), and every count is the task's own.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] if there is no such task (every unfinished task
    /// is still queued); nothing changes.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(1u8).unwrap();
    /// queue.get().unwrap();
    /// assert!(queue.task_done().is_ok());
    /// assert!(queue.task_done().is_err());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.raw().task_done(&self.robust) {
            Ok(())
        } else {
            Err(TaskDoneError)
        }
    }

    /// Waits until every task is done or lost.
    ///
    /// # Errors
    ///
    /// [`TasksLost`] if tasks were lost with processes that took them and
    /// exited or died before anyone marked them done (since the queue was
    /// created, less those marked done later), once every other task is
    /// done: none is queued or held by a live process.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<u8>::new()?;
    /// assert_eq!(queue.join(), Ok(())); // nothing unfinished
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn join(&self) -> Result<(), TasksLost> {
        match self.raw().join(Wait::Until(None), &self.robust) {
            Joined::Done { lost: 0 } => Ok(()),
            Joined::Done { lost } => Err(TasksLost {
                lost: lost as usize,
            }),
            Joined::TimedOut => unreachable!("a join without deadline ends with every task done"),
        }
    }

    /// As [`join`](Self::join), for at most `timeout`: `Ok(true)` if every
    /// task is done, `Ok(false)` if some were still unfinished at the
    /// timeout. `Duration::MAX` waits forever.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join).
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(1u8).unwrap();
    /// assert_eq!(queue.join_timeout(Duration::from_millis(5)), Ok(false));
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, TasksLost> {
        match self.raw().join(wait_for(timeout), &self.robust) {
            Joined::Done { lost: 0 } => Ok(true),
            Joined::Done { lost } => Err(TasksLost {
                lost: lost as usize,
            }),
            Joined::TimedOut => Ok(false),
        }
    }

    /// Graceful shutdown: later puts are refused (the item comes back),
    /// getters take what is left and then get [`GetError::ShutDown`].
    /// Wakes every blocked putter and getter, in every process.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(1u8).unwrap();
    /// queue.shutdown();
    /// assert_eq!(queue.get(), Ok(1)); // drains
    /// assert!(queue.get().is_err());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn shutdown(&self) {
        self.raw().shutdown(&self.robust);
    }

    /// Immediate shutdown: refuses later puts and hands back every item
    /// still queued, oldest first; their tasks count as done. An item
    /// whose bytes do not decode comes back as its [`Undecodable`] bytes.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(1u8).unwrap();
    /// queue.put(2u8).unwrap();
    /// assert_eq!(queue.shutdown_now(), vec![Ok(1), Ok(2)]);
    /// assert_eq!(queue.unfinished_tasks(), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn shutdown_now(&self) -> Vec<Result<T, Undecodable>> {
        let records = self.raw().shutdown_now(&self.robust);
        records
            .into_iter()
            .map(|bytes| self.decode_taken(&bytes))
            .collect()
    }

    /// Gets items until the queue is shut down and drained (an item that
    /// does not decode comes as its `Err`).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(1u8).unwrap();
    /// queue.put(2u8).unwrap();
    /// queue.shutdown();
    /// let items: Result<Vec<u8>, _> = queue.iter().collect();
    /// assert_eq!(items.unwrap(), [1, 2]);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn iter(&self) -> QueueIter<'_, T> {
        QueueIter { queue: self }
    }

    /// Items waiting in the queue (a snapshot).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(1u8).unwrap();
    /// assert_eq!(queue.len(), 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.raw().len() as usize
    }

    /// Whether no item is waiting (a snapshot).
    ///
    /// ```
    /// verisync::process::init();
    /// assert!(verisync::process::JoinableQueue::<u8>::new()?.is_empty());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the item bound is reached or no byte is left for even an
    /// empty item (a snapshot). A put of a large item may wait while this
    /// is `false`.
    ///
    /// ```
    /// verisync::process::init();
    /// assert!(!verisync::process::JoinableQueue::<u8>::bounded(1)?.is_full());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.raw().is_full()
    }

    /// The item bound, or `None` if only bytes bound the queue.
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::JoinableQueue::<u8>::bounded(8)?.capacity(), Some(8));
    /// assert_eq!(verisync::process::JoinableQueue::<u8>::new()?.capacity(), None);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        (self.max_items != UNBOUNDED).then_some(self.max_items as usize)
    }

    /// The bytes the queued items share (their encodings, 4 bytes more each).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<u8>::with_capacity(Some(4), 4096)?;
    /// assert_eq!(queue.byte_capacity(), 4096);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn byte_capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Tasks put but neither marked done nor lost (a snapshot, after
    /// counting the tasks of processes that died as lost).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(1u8).unwrap();
    /// assert_eq!(queue.unfinished_tasks(), 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn unfinished_tasks(&self) -> usize {
        self.raw().unfinished(&self.robust) as usize
    }

    /// Tasks lost since the queue was created (see [`TasksLost`]; a
    /// snapshot, after counting the tasks of processes that died).
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::JoinableQueue::<u8>::new()?.lost_tasks(), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn lost_tasks(&self) -> usize {
        self.raw().lost(&self.robust) as usize
    }

    /// Whether [`shutdown`](Self::shutdown) or
    /// [`shutdown_now`](Self::shutdown_now) was called (a snapshot).
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::<u8>::new()?;
    /// queue.shutdown();
    /// assert!(queue.is_shut_down());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.raw().is_shut_down()
    }
}

/// `timeout` as a wait: zero tries once.
fn wait_for(timeout: Duration) -> Wait {
    if timeout.is_zero() {
        Wait::Try
    } else {
        Wait::Until(deadline_after(timeout))
    }
}

#[cold]
#[track_caller]
fn zero_capacity() -> ! {
    panic!("verisync: a process::JoinableQueue bounded to 0 items could never hold one")
}

#[cold]
#[track_caller]
fn too_few_bytes(bytes: usize) -> ! {
    panic!(
        "verisync: a process::JoinableQueue needs at least {MIN_BYTES} bytes of room (asked \
         for {bytes})"
    )
}

/// The state of the queue `object`.
fn state(object: &Object) -> &'static QueueState {
    // SAFETY: `STATE_AT..STATE_AT + size_of::<QueueState>()` lies inside
    // the object's checked extent (before `HOLDINGS_AT`: `_STATE_FITS`),
    // 4-aligned (the object is 64-aligned); `QueueState` is `repr(C)`
    // atomics only, valid for any bytes; the arena lives for the process's
    // life.
    unsafe { &*object.bytes(STATE_AT).cast::<QueueState>() }
}

/// The holdings of the queue `object`, one per process-table slot.
fn holdings(object: &Object) -> &'static [Holding] {
    // SAFETY: `HOLDINGS_AT..RING_AT` (SLOTS holdings) lies inside the
    // object's checked extent, 64-aligned; `Holding` is `repr(C)` atomics
    // only, valid for any bytes; the arena lives for the process's life.
    unsafe { std::slice::from_raw_parts(object.bytes(HOLDINGS_AT).cast::<Holding>(), SLOTS) }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("handle", &self.robust.object().handle())
            .field("byte_capacity", &self.capacity)
            .field(
                "capacity",
                &(self.max_items != UNBOUNDED).then_some(self.max_items),
            )
            .finish_non_exhaustive()
    }
}

/// What a queue serializes to: its object's handle and its item bound.
#[derive(Serialize, Deserialize)]
struct QueueHandle {
    handle: Handle,
    max_items: u32,
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        QueueHandle {
            handle: self.robust.object().handle(),
            max_items: self.max_items,
        }
        .serialize(serializer)
    }
}

impl<'de, T: Serialize + DeserializeOwned + 'static> Deserialize<'de> for JoinableQueue<T> {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not a queue of `T` of this process tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let QueueHandle { handle, max_items } = QueueHandle::deserialize(deserializer)?;
        let capacity = handle.recorded();
        let bytes = capacity as usize;
        if bytes < MIN_BYTES || max_items == 0 || bytes.saturating_add(RING_AT) > arena::ARENA_LEN {
            return Err(open_failed(SharedError::InvalidHandle(format!(
                "a queue of {bytes} bytes and {max_items} items cannot exist"
            ))));
        }
        let object = Object::open(
            handle,
            KIND_QUEUE,
            element_identity::<T>(),
            RING_AT + bytes,
            capacity,
        )
        .map_err(open_failed)?;
        if state(&object).recorded_max_items() != max_items {
            return Err(open_failed(SharedError::InvalidHandle(
                "no such queue (its item bound does not match)".into(),
            )));
        }
        Ok(Self::from_object(object, capacity, max_items))
    }
}

/// An item taken with [`JoinableQueue::get_task`]; marks its task done when
/// dropped, even while unwinding from a panic (after the item itself is
/// dropped). Do not also call [`task_done`](JoinableQueue::task_done) for
/// it: that would count it twice.
///
/// ```
/// verisync::process::init();
/// let queue = verisync::process::JoinableQueue::new()?;
/// queue.put(String::from("dish")).unwrap();
/// let mut task = queue.get_task().unwrap();
/// task.push_str(" (eaten)");
/// assert_eq!(*task, "dish (eaten)");
/// drop(task);
/// queue.join().unwrap();
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
pub struct QueueTask<'a, T: Serialize + DeserializeOwned + 'static> {
    // Dropped in this order: the item first, then the task is marked done.
    item: T,
    pending: PendingTask<'a, T>,
}

impl<T: Serialize + DeserializeOwned + 'static> QueueTask<'_, T> {
    /// Moves the item out and marks its task done now.
    ///
    /// ```
    /// verisync::process::init();
    /// let queue = verisync::process::JoinableQueue::new()?;
    /// queue.put(String::from("done with it")).unwrap();
    /// let item = queue.get_task().unwrap().into_inner();
    /// assert_eq!(queue.unfinished_tasks(), 0);
    /// assert_eq!(item, "done with it");
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn into_inner(self) -> T {
        let Self { item, pending } = self;
        drop(pending);
        item
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Deref for QueueTask<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.item
    }
}

impl<T: Serialize + DeserializeOwned + 'static> DerefMut for QueueTask<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.item
    }
}

impl<T: Serialize + DeserializeOwned + 'static + fmt::Debug> fmt::Debug for QueueTask<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("QueueTask")
            .field(&self.item)
            .finish()
    }
}

/// The task of a [`QueueTask`], marked done when dropped.
struct PendingTask<'a, T: Serialize + DeserializeOwned + 'static> {
    queue: &'a JoinableQueue<T>,
}

impl<T: Serialize + DeserializeOwned + 'static> Drop for PendingTask<'_, T> {
    fn drop(&mut self) {
        // Refused only if every task was already done (marked by hand too,
        // or another process marked this one): nothing to count.
        let _ = self.queue.task_done();
    }
}

/// Gets items until the queue is shut down and drained; from
/// [`JoinableQueue::iter`].
///
/// ```
/// verisync::process::init();
/// let queue = verisync::process::JoinableQueue::new()?;
/// queue.put(1u8).unwrap();
/// queue.shutdown();
/// let mut items = queue.iter();
/// assert_eq!(items.next(), Some(Ok(1)));
/// assert_eq!(items.next(), None);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
pub struct QueueIter<'a, T> {
    queue: &'a JoinableQueue<T>,
}

impl<T: Serialize + DeserializeOwned + 'static> Iterator for QueueIter<'_, T> {
    type Item = Result<T, Undecodable>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.queue.get() {
            Ok(item) => Some(Ok(item)),
            Err(GetError::Undecodable(undecodable)) => Some(Err(undecodable)),
            Err(GetError::ShutDown | GetError::Empty) => None,
        }
    }
}

impl<T> fmt::Debug for QueueIter<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("QueueIter").finish_non_exhaustive()
    }
}
