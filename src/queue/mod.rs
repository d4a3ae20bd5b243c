//! [`JoinableQueue`]: Python's `queue.Queue` / `multiprocessing.JoinableQueue`
//! — FIFO, LIFO and priority orders, `task_done`/`join`, and shutdown.
//!
//! # Implementation
//!
//! Storage (where the items are):
//! - bounded FIFO: a lock-free ring of slots with per-slot stamps
//!   ([`ring`]); the hot path is one CAS and one store per put or get;
//! - unbounded FIFO: a lock-free linked list of blocks of slots ([`list`]);
//! - LIFO and priority: a `Vec` or min-heap behind this crate's `Mutex`
//!   ([`locked`], [`heap`]).
//!
//! Blocking: getters wait while the storage is empty and open, putters
//! while it is full and open, joiners while tasks are unfinished. Every put
//! wakes one getter, every get wakes one putter, the last `task_done` wakes
//! every joiner, and a shutdown wakes everyone. A woken thread retries its
//! operation, so a wake-up that another thread "stole" costs a retry, never
//! an item. The lock-free storages and the joiners wait on wait lists
//! ([`WaitList`]); the locked storages check and sleep under their own
//! mutex, as with a condition variable, so their puts and gets need no
//! `SeqCst` handshake ([`locked`]).
//!
//! Counting ([`tasks`]): a put is counted when it claims its slot, before
//! the item becomes visible to getters, so `task_done` can never run ahead
//! of the put it answers; producers and consumers count on separate cache
//! lines. Items handed back by `shutdown_now` count as done.
//!
//! Shutdown is a mark in the storage set atomically with respect to claims:
//! a put either claimed its place before the mark (and its item is got or
//! handed back like any other) or is refused with its item. Getters drain
//! what is left, then get `ShutDown`.

mod drop_all;
mod error;
mod heap;
mod list;
mod locked;
mod ring;
mod tasks;

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

pub use error::{GetError, PutError, ShutDown, TaskDoneError};

use heap::Heap;
use list::List;
use locked::{Drained, Locked, Order};
use ring::{PopError, PushError, Ring};
use tasks::TaskCount;

use crate::deadlock::hooks::BlockedIn;
use crate::raw::wait_list::WaitList;
use crate::sys::spin::{self, SpinWait};
use crate::sys::time::deadline_after;

/// Where the items are.
// The ring is large because its head and tail sit on cache lines of their
// own (that is the point); boxing it would add a pointer chase to every put
// and get, and a queue is built once.
#[allow(clippy::large_enum_variant)]
enum Storage<T> {
    Ring(Ring<T>),
    List(List<T>),
    Locked(Locked<T>),
}

impl<T> Storage<T> {
    fn shut_down(&self) {
        match self {
            Storage::Ring(ring) => ring.shut_down(),
            Storage::List(list) => list.shut_down(),
            Storage::Locked(locked) => locked.shut_down(),
        }
    }

    fn is_shut_down(&self) -> bool {
        match self {
            Storage::Ring(ring) => ring.is_shut_down(),
            Storage::List(list) => list.is_shut_down(),
            Storage::Locked(locked) => locked.is_shut_down(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Storage::Ring(ring) => ring.len(),
            Storage::List(list) => list.len(),
            Storage::Locked(locked) => locked.len(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Storage::Ring(ring) => ring.is_empty(),
            Storage::List(list) => list.is_empty(),
            Storage::Locked(locked) => locked.is_empty(),
        }
    }

    fn is_full(&self) -> bool {
        match self {
            Storage::Ring(ring) => ring.is_full(),
            Storage::List(_) => false,
            Storage::Locked(locked) => locked.is_full(),
        }
    }

    /// Takes every item out of a shut-down storage, running no user code:
    /// the storage is empty afterwards.
    fn take_all(&self) -> Drained<T> {
        match self {
            Storage::Ring(ring) => {
                Drained::InGetOrder(std::iter::from_fn(|| ring.pop().ok()).collect())
            }
            Storage::List(list) => {
                Drained::InGetOrder(std::iter::from_fn(|| list.pop().ok()).collect())
            }
            Storage::Locked(locked) => locked.take_all(),
        }
    }
}

/// A work queue with task accounting — Python's `queue.Queue` and
/// `multiprocessing.JoinableQueue`, done the Rust way.
///
/// - Orders: FIFO ([`new`](Self::new), [`bounded`](Self::bounded)), LIFO
///   ([`lifo`](Self::lifo)) and priority, smallest first with ties in
///   insertion order ([`priority`](Self::priority)); each unbounded or
///   bounded.
/// - Every put that cannot be done hands the item back inside the error.
/// - [`task_done`](Self::task_done) / [`join`](Self::join): `join` returns
///   once every item put has been marked done. [`get_task`](Self::get_task)
///   marks it for you when its guard drops, even while unwinding from a
///   panic — a failing consumer cannot leave `join` hanging.
/// - [`shutdown`](Self::shutdown) refuses new puts and lets getters drain;
///   [`shutdown_now`](Self::shutdown_now) hands back everything queued.
///   Blocked putters, getters and joiners all wake.
///
/// ```
/// use std::sync::Arc;
/// use verisync::JoinableQueue;
///
/// let queue = Arc::new(JoinableQueue::bounded(16));
/// let worker = {
///     let queue = Arc::clone(&queue);
///     std::thread::spawn(move || {
///         let mut total = 0;
///         for dish in queue.iter() {
///             total += dish;
///             queue.task_done().unwrap();
///         }
///         total
///     })
/// };
/// for dish in 1..=10 {
///     queue.put(dish).unwrap();
/// }
/// queue.join(); // every dish eaten
/// queue.shutdown(); // let the worker's loop end
/// assert_eq!(worker.join().unwrap(), 55);
/// ```
pub struct JoinableQueue<T> {
    storage: Storage<T>,
    /// Whether a get must wake the `putters` wait list: puts can wait for
    /// room (a bounded ring). A locked storage wakes its own putters.
    putters_wait_here: bool,
    // Each on a cache line of its own: producers and consumers touch
    // different ones on every put and get.
    tasks: TaskCount,
    /// Getters and putters waiting on a lock-free storage (a locked storage
    /// has its own, see `locked`'s module docs).
    getters: CachePadded<WaitList>,
    putters: CachePadded<WaitList>,
    joiners: WaitList,
}

#[track_caller]
fn check_capacity(capacity: usize) {
    assert!(
        capacity > 0,
        "verisync: a JoinableQueue bounded to 0 items could never accept one (there is no \
         rendezvous mode); use a capacity of at least 1"
    );
}

impl<T> JoinableQueue<T> {
    fn with_storage(storage: Storage<T>) -> Self {
        let putters_wait_here = matches!(storage, Storage::Ring(_));
        Self {
            storage,
            putters_wait_here,
            tasks: TaskCount::new(),
            getters: CachePadded::new(WaitList::new()),
            putters: CachePadded::new(WaitList::new()),
            joiners: WaitList::new(),
        }
    }

    /// An unbounded FIFO queue.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put('a').unwrap();
    /// queue.put('b').unwrap();
    /// assert_eq!(queue.get(), Ok('a'));
    /// ```
    pub fn new() -> Self {
        Self::with_storage(Storage::List(List::new()))
    }

    /// A FIFO queue holding at most `capacity` items: `put` blocks while it
    /// is full.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 (there is no rendezvous mode).
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::bounded(2);
    /// queue.put(1).unwrap();
    /// queue.put(2).unwrap();
    /// assert!(queue.is_full());
    /// ```
    #[track_caller]
    pub fn bounded(capacity: usize) -> Self {
        check_capacity(capacity);
        Self::with_storage(Storage::Ring(Ring::new(capacity)))
    }

    /// An unbounded LIFO queue (a stack): the newest item leaves first.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::lifo();
    /// queue.put(1).unwrap();
    /// queue.put(2).unwrap();
    /// assert_eq!(queue.get(), Ok(2));
    /// ```
    pub fn lifo() -> Self {
        Self::with_storage(Storage::Locked(Locked::new(Order::Lifo(Vec::new()), None)))
    }

    /// A LIFO queue holding at most `capacity` items.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::lifo_bounded(1);
    /// queue.put(1).unwrap();
    /// assert!(queue.try_put(2).is_err());
    /// ```
    #[track_caller]
    pub fn lifo_bounded(capacity: usize) -> Self {
        check_capacity(capacity);
        Self::with_storage(Storage::Locked(Locked::new(
            Order::Lifo(Vec::new()),
            Some(capacity),
        )))
    }

    /// Puts `item` at the back, waiting while a bounded queue is full.
    /// After [`shutdown`](Self::shutdown) the item is handed back in
    /// `Err(ShutDown(item))`.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// assert!(queue.put(7).is_ok());
    /// assert_eq!(queue.unfinished_tasks(), 1);
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn put(&self, item: T) -> Result<(), ShutDown<T>> {
        let waiting = BlockedIn::later("JoinableQueue::put", None);
        self.put_until(item, None, waiting)
            .map_err(|error| match error {
                PutError::ShutDown(item) | PutError::Full(item) => ShutDown(item),
            })
    }

    /// Puts `item`, waiting at most `timeout` for room. A zero timeout tries
    /// once; `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// use verisync::{JoinableQueue, PutError};
    /// let queue = JoinableQueue::bounded(1);
    /// queue.put(1).unwrap();
    /// let refused = queue.put_timeout(2, Duration::from_millis(5));
    /// assert_eq!(refused, Err(PutError::Full(2)));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        if timeout.is_zero() {
            return self.try_put(item);
        }
        let waiting = BlockedIn::later("JoinableQueue::put_timeout", None);
        self.put_until(item, deadline_after(timeout), waiting)
    }

    /// Puts `item` if there is room now.
    ///
    /// ```
    /// use verisync::{JoinableQueue, PutError};
    /// let queue = JoinableQueue::bounded(1);
    /// assert!(queue.try_put(1).is_ok());
    /// assert_eq!(queue.try_put(2), Err(PutError::Full(2)));
    /// ```
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        match self.push(item) {
            Ok(()) => Ok(()),
            Err(PushError::Full(item)) => Err(PutError::Full(item)),
            Err(PushError::ShutDown(item)) => Err(PutError::ShutDown(item)),
        }
    }

    /// Puts, waiting for room until `deadline`; `waiting` marks the thread
    /// blocked (for the deadlock diagnostics) once it is about to park.
    #[inline]
    fn put_until(
        &self,
        item: T,
        deadline: Option<Instant>,
        waiting: BlockedIn,
    ) -> Result<(), PutError<T>> {
        // The first attempt inline, the waiting loop out of line: a put
        // that finds room runs no more than `push`.
        match self.push(item) {
            Ok(()) => Ok(()),
            Err(PushError::ShutDown(refused)) => Err(PutError::ShutDown(refused)),
            Err(PushError::Full(refused)) => self.put_waiting(refused, deadline, waiting),
        }
    }

    /// `put_until` after an attempt found the queue full: lets the getters
    /// drain a quarter, then spins, then sleeps, retrying after each.
    #[cold]
    #[inline(never)]
    fn put_waiting(
        &self,
        mut item: T,
        deadline: Option<Instant>,
        mut waiting: BlockedIn,
    ) -> Result<(), PutError<T>> {
        self.let_getters_drain(deadline);
        let mut spin = SpinWait::default();
        let mut timed_out = false;
        loop {
            // The last attempt found the queue full.
            if timed_out {
                return Err(PutError::Full(item));
            }
            if !spin.spin_before(deadline) {
                waiting.mark();
                if !self.wait_while_full(deadline) {
                    // Re-try once: a wake-up may have raced with the timeout.
                    timed_out = true;
                }
            }
            match self.push(item) {
                Ok(()) => return Ok(()),
                Err(PushError::ShutDown(refused)) => return Err(PutError::ShutDown(refused)),
                Err(PushError::Full(refused)) => item = refused,
            }
        }
    }

    /// A putter that found the queue full first yields while it is more
    /// than three quarters full (at most [`spin::yield_while`]'s bound, and
    /// not past `deadline` or a shutdown), instead of retrying as soon as
    /// one slot frees.
    ///
    /// Retrying at once makes every get free a slot that the putter fills
    /// right away: with one producer and one consumer on two cores each
    /// message then moves the queue's lines (the lock, or the ring's slot
    /// and positions) between the cores twice, and the putter's attempts
    /// take them from the getter in between. Waiting for room for a quarter
    /// of the capacity lets the getters drain that quarter with the lines
    /// in their own cache, then the putter refills it in a run of its own:
    /// the way a `Mutex` + `Condvar` queue's threads take turns, without
    /// sleeping. The getters lose nothing: three quarters of the capacity
    /// are still queued. Measured with one producer and one consumer on two
    /// cores (capacity 1024): LIFO with `task_done` 36–46 → 28–30 ns per
    /// message, FIFO with `task_done` 21 → 11 ns; on one core, where the
    /// yields hand the CPU to the getter, no change.
    ///
    /// The wait ends as soon as a yield went by without the queue getting
    /// shorter: a putter does not wait on getters that have stopped, or
    /// that do not run (beside a busy thread on the same CPU each yield may
    /// give that thread a whole scheduler slice; review 21 measured a put
    /// into a freed slot taking 64 of them, about 180 ms, before this
    /// rule). It then retries as before and takes the slot there is. The
    /// number of yields is bounded as well.
    #[cold]
    fn let_getters_drain(&self, deadline: Option<Instant>) {
        let Some(capacity) = self.capacity() else {
            return;
        };
        let low_water = capacity - capacity / 4;
        let mut length_at_last_look = None;
        spin::yield_while(|| {
            let length = self.storage.len();
            let draining = length_at_last_look.is_none_or(|last| length < last);
            length_at_last_look = Some(length);
            draining
                && length > low_water
                && !self.storage.is_shut_down()
                && deadline.is_none_or(|deadline| Instant::now() < deadline)
        });
    }

    /// Sleeps while the queue is full and open, until woken or `deadline`;
    /// `false` only on a timeout.
    #[cold]
    fn wait_while_full(&self, deadline: Option<Instant>) -> bool {
        match &self.storage {
            Storage::Locked(locked) => locked.wait_while_full(deadline),
            storage => {
                let still_full = || storage.is_full() && !storage.is_shut_down();
                self.putters.wait(still_full, deadline)
            }
        }
    }

    /// One attempt to put; wakes a getter on success.
    #[inline]
    fn push(&self, item: T) -> Result<(), PushError<T>> {
        // Counted before the item is visible, so task_done can't run ahead.
        let pushed = match &self.storage {
            Storage::Ring(ring) => ring.push(item, || self.tasks.put_one()),
            Storage::List(list) => list.push(item, || self.tasks.put_one()),
            // Wakes its own getters (`locked`'s module docs); its pushes
            // all hold its lock, so the count needs no read-modify-write.
            Storage::Locked(locked) => {
                return locked.push(item, || self.tasks.put_one_serialized())
            }
        };
        pushed?;
        self.getters.notify_one();
        Ok(())
    }

    /// Takes the next item, waiting while the queue is empty. Once the
    /// queue is shut down and drained, returns `Err(ShutDown(()))`.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put("job").unwrap();
    /// assert_eq!(queue.get(), Ok("job"));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn get(&self) -> Result<T, ShutDown> {
        let waiting = BlockedIn::later("JoinableQueue::get", None);
        self.get_until(None, waiting).map_err(|_| ShutDown(()))
    }

    /// As [`get`](Self::get), but never reported by the deadlock
    /// diagnostics: for the pools' idle workers, whose wait for a job is
    /// the crate's own business, not a hang of the user's program.
    pub(crate) fn get_unreported(&self) -> Result<T, ShutDown> {
        self.get_until(None, BlockedIn::never())
            .map_err(|_| ShutDown(()))
    }

    /// Takes the next item, waiting at most `timeout`. A zero timeout tries
    /// once; `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// use verisync::{GetError, JoinableQueue};
    /// let queue = JoinableQueue::<u32>::new();
    /// assert_eq!(queue.get_timeout(Duration::from_millis(5)), Err(GetError::Empty));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        if timeout.is_zero() {
            return self.try_get();
        }
        let waiting = BlockedIn::later("JoinableQueue::get_timeout", None);
        self.get_until(deadline_after(timeout), waiting)
    }

    /// Takes the next item if there is one now.
    ///
    /// ```
    /// use verisync::{GetError, JoinableQueue};
    /// let queue = JoinableQueue::new();
    /// assert_eq!(queue.try_get(), Err(GetError::Empty));
    /// queue.put(1).unwrap();
    /// assert_eq!(queue.try_get(), Ok(1));
    /// ```
    pub fn try_get(&self) -> Result<T, GetError> {
        self.pop()
    }

    /// Gets, waiting for an item until `deadline`; `waiting` marks the
    /// thread blocked (for the deadlock diagnostics) once it is about to
    /// park.
    #[inline]
    pub(crate) fn get_until(
        &self,
        deadline: Option<Instant>,
        waiting: BlockedIn,
    ) -> Result<T, GetError> {
        // The first attempt inline, the waiting loop out of line: a get
        // that finds an item runs no more than `pop`.
        match self.pop() {
            Err(GetError::Empty) => self.get_waiting(deadline, waiting),
            result => result,
        }
    }

    /// `get_until` after an attempt found the queue empty: spins, then
    /// sleeps, retrying after each.
    #[cold]
    #[inline(never)]
    fn get_waiting(
        &self,
        deadline: Option<Instant>,
        mut waiting: BlockedIn,
    ) -> Result<T, GetError> {
        let mut spin = SpinWait::default();
        let mut timed_out = false;
        loop {
            // The last attempt found the queue empty.
            if timed_out {
                return Err(GetError::Empty);
            }
            if !spin.spin_before(deadline) {
                waiting.mark();
                if !self.wait_while_empty(deadline) {
                    // Re-try once: a wake-up may have raced with the timeout.
                    timed_out = true;
                }
            }
            match self.pop() {
                Err(GetError::Empty) => {}
                result => return result,
            }
        }
    }

    /// Sleeps while the queue is empty and open, until woken or
    /// `deadline`; `false` only on a timeout.
    #[cold]
    fn wait_while_empty(&self, deadline: Option<Instant>) -> bool {
        match &self.storage {
            Storage::Locked(locked) => locked.wait_while_empty(deadline),
            storage => {
                let still_empty = || storage.is_empty() && !storage.is_shut_down();
                self.getters.wait(still_empty, deadline)
            }
        }
    }

    /// One attempt to get; wakes a putter on success.
    #[inline]
    fn pop(&self) -> Result<T, GetError> {
        let popped = match &self.storage {
            Storage::Ring(ring) => ring.pop(),
            Storage::List(list) => list.pop(),
            // Wakes its own putters (`locked`'s module docs).
            Storage::Locked(locked) => locked.pop(),
        };
        match popped {
            Ok(item) => {
                // Putters only ever wait on a bounded queue, and those of a
                // locked storage were woken by it.
                if self.putters_wait_here {
                    self.putters.notify_one();
                }
                Ok(item)
            }
            Err(PopError::Empty) => Err(GetError::Empty),
            Err(PopError::ShutDown) => Err(GetError::ShutDown),
        }
    }

    /// Takes the next item inside a guard that calls
    /// [`task_done`](Self::task_done) when dropped — also when the consumer
    /// panics — so `join` can never be left hanging.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(2).unwrap();
    /// {
    ///     let task = queue.get_task().unwrap();
    ///     assert_eq!(*task * 21, 42);
    /// } // marked done here
    /// assert_eq!(queue.unfinished_tasks(), 0);
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn get_task(&self) -> Result<QueueTask<'_, T>, ShutDown> {
        let waiting = BlockedIn::later("JoinableQueue::get_task", None);
        let item = self.get_until(None, waiting).map_err(|_| ShutDown(()))?;
        Ok(QueueTask {
            item,
            pending: PendingTask { queue: self },
        })
    }

    /// Marks one item taken with `get` as processed. When every item put
    /// has been marked, [`join`](Self::join) returns. Calling it more often
    /// than items were put is an error and changes nothing.
    ///
    /// Not for items taken with [`get_task`](Self::get_task): their guard
    /// marks them, and a second mark is taken from some other unfinished
    /// task, so `join` could return early (see [`QueueTask`]).
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(1).unwrap();
    /// queue.get().unwrap();
    /// assert!(queue.task_done().is_ok());
    /// assert!(queue.task_done().is_err());
    /// ```
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.tasks.done_one()? {
            self.joiners.notify_all();
        }
        Ok(())
    }

    /// Blocks until every item put has been marked done (with `task_done`,
    /// a dropped [`QueueTask`], or `shutdown_now`).
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::<u8>::new();
    /// queue.join(); // nothing unfinished: returns at once
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn join(&self) {
        let waiting = BlockedIn::later("JoinableQueue::join", None);
        self.join_until(None, waiting);
    }

    /// As [`join`](Self::join), for at most `timeout`; `true` if every task
    /// is done. `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(1).unwrap();
    /// assert!(!queue.join_timeout(Duration::from_millis(5)));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        let waiting = BlockedIn::later("JoinableQueue::join_timeout", None);
        self.join_until(deadline_after(timeout), waiting)
    }

    /// Waits until every task is done or `deadline`; `waiting` marks the
    /// thread blocked (for the deadlock diagnostics) once it is about to
    /// park.
    fn join_until(&self, deadline: Option<Instant>, mut waiting: BlockedIn) -> bool {
        let mut timed_out = false;
        loop {
            if self.tasks.all_done() {
                return true;
            }
            if timed_out {
                return false;
            }
            let tasks = &self.tasks;
            let still_unfinished = || !tasks.all_done();
            waiting.mark();
            if !self.joiners.wait(still_unfinished, deadline) {
                timed_out = true;
            }
        }
    }

    /// Graceful shutdown: later puts are refused (the item comes back),
    /// getters take what is left and then get `ShutDown`. Wakes every
    /// blocked putter and getter. Idempotent.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(1).unwrap();
    /// queue.shutdown();
    /// assert_eq!(queue.get(), Ok(1)); // drains
    /// assert!(queue.get().is_err());
    /// ```
    pub fn shutdown(&self) {
        self.storage.shut_down();
        self.putters.notify_all();
        self.getters.notify_all();
    }

    /// Immediate shutdown: refuses later puts and hands back every item
    /// still queued, in get order. Their tasks count as done, so `join`
    /// wakes if nothing else is unfinished.
    ///
    /// A priority item's `Ord` runs last, after the queue is shut down and
    /// empty, every blocked putter, getter and joiner woken and the items
    /// counted done. If it panics, no item is lost: the panic is caught and
    /// reported on stderr, and the items come back in insertion order.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(1).unwrap();
    /// queue.put(2).unwrap();
    /// assert_eq!(queue.shutdown_now(), vec![1, 2]);
    /// assert_eq!(queue.unfinished_tasks(), 0);
    /// ```
    pub fn shutdown_now(&self) -> Vec<T> {
        self.storage.shut_down();
        // Out at once, running no user code: from here the storage is empty
        // whatever the items do.
        let left = self.storage.take_all();
        // Saturating: `task_done` may legally have run ahead of `get`, so
        // fewer tasks than items can be unfinished.
        if left.len() > 0 && self.tasks.done_handed_back(left.len()) {
            self.joiners.notify_all();
        }
        self.putters.notify_all();
        self.getters.notify_all();
        // Last, the one step that runs user code (a priority item's `Ord`).
        left.into_get_order()
    }

    /// An iterator that gets items until the queue is shut down and drained.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(1).unwrap();
    /// queue.put(2).unwrap();
    /// queue.shutdown();
    /// assert_eq!(queue.iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn iter(&self) -> QueueIter<'_, T> {
        QueueIter { queue: self }
    }

    /// Items waiting in the queue (a snapshot).
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(1).unwrap();
    /// assert_eq!(queue.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.storage.len()
    }

    /// Whether no item is waiting (a snapshot).
    ///
    /// ```
    /// assert!(verisync::JoinableQueue::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
    }

    /// Whether a bounded queue is at capacity (a snapshot); never for an
    /// unbounded one.
    ///
    /// ```
    /// assert!(!verisync::JoinableQueue::<u8>::bounded(1).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.storage.is_full()
    }

    /// The bound, or `None` for an unbounded queue.
    ///
    /// ```
    /// assert_eq!(verisync::JoinableQueue::<u8>::bounded(8).capacity(), Some(8));
    /// assert_eq!(verisync::JoinableQueue::<u8>::new().capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        match &self.storage {
            Storage::Ring(ring) => Some(ring.capacity()),
            Storage::List(_) => None,
            Storage::Locked(locked) => locked.capacity(),
        }
    }

    /// Items put but not yet marked done.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(1).unwrap();
    /// assert_eq!(queue.unfinished_tasks(), 1);
    /// ```
    pub fn unfinished_tasks(&self) -> usize {
        self.tasks.unfinished()
    }

    /// Whether [`shutdown`](Self::shutdown) or
    /// [`shutdown_now`](Self::shutdown_now) was called.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::<u8>::new();
    /// queue.shutdown();
    /// assert!(queue.is_shut_down());
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.storage.is_shut_down()
    }
}

impl<T: Ord> JoinableQueue<T> {
    /// An unbounded priority queue: the smallest item leaves first; equal
    /// items leave in the order they were put.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::priority();
    /// for job in [3, 1, 2] {
    ///     queue.put(job).unwrap();
    /// }
    /// assert_eq!(queue.get(), Ok(1));
    /// ```
    pub fn priority() -> Self {
        Self::with_storage(Storage::Locked(Locked::new(
            Order::Priority(Heap::new()),
            None,
        )))
    }

    /// A priority queue holding at most `capacity` items.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::priority_bounded(2);
    /// queue.put((2, "later")).unwrap();
    /// queue.put((1, "first")).unwrap();
    /// assert_eq!(queue.get(), Ok((1, "first")));
    /// ```
    #[track_caller]
    pub fn priority_bounded(capacity: usize) -> Self {
        check_capacity(capacity);
        Self::with_storage(Storage::Locked(Locked::new(
            Order::Priority(Heap::new()),
            Some(capacity),
        )))
    }
}

impl<T> Default for JoinableQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("JoinableQueue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("unfinished_tasks", &self.unfinished_tasks())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

impl<'a, T> IntoIterator for &'a JoinableQueue<T> {
    type Item = T;
    type IntoIter = QueueIter<'a, T>;

    fn into_iter(self) -> QueueIter<'a, T> {
        self.iter()
    }
}

/// An item taken with [`JoinableQueue::get_task`]; marks its task done when
/// dropped, even while unwinding from a panic (after the item itself is
/// dropped).
///
/// ```
/// let queue = verisync::JoinableQueue::new();
/// queue.put(String::from("dish")).unwrap();
/// let mut task = queue.get_task().unwrap();
/// task.push_str(" (eaten)");
/// assert_eq!(*task, "dish (eaten)");
/// drop(task);
/// queue.join();
/// ```
///
/// # Taking the item out
///
/// [`into_parts`](Self::into_parts) moves the item out and keeps the task
/// open in a [`PendingTask`] until that is dropped, so `join` still waits
/// for the work; [`into_inner`](Self::into_inner) moves the item out and
/// marks the task done at once.
///
/// # Do not also call `task_done` for it
///
/// The guard marks its task done; a manual
/// [`task_done`](JoinableQueue::task_done) for the same item counts it
/// twice. Counts are not tied to items, so the extra count is taken from
/// another unfinished task and `join` may return while that one is still
/// queued or being worked on. Only when no task is left to take it from
/// can the guard notice: in debug builds its drop then panics (unless the
/// thread is already panicking) saying so; in release builds the count
/// stays at zero and nothing else happens, as with a refused `task_done`.
/// (A panic rather than a silent error, because the mistake is in the
/// program, not in its input; only in debug builds, because a panic from
/// a destructor in production would turn a miscount into a crash.)
pub struct QueueTask<'a, T> {
    // Dropped in this order: the item first, then the task is marked done,
    // so `join` returns only after the item's own `Drop` ran.
    item: T,
    pending: PendingTask<'a, T>,
}

impl<'a, T> QueueTask<'a, T> {
    /// Moves the item out, leaving the task unfinished until the returned
    /// [`PendingTask`] is dropped — for work that outlives the guard (the
    /// item moved into a function that consumes it, say) but should still
    /// hold `join` back.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(vec![1, 2, 3]).unwrap();
    /// let (numbers, pending) = queue.get_task().unwrap().into_parts();
    /// let total: i32 = numbers.into_iter().sum(); // consumes the item
    /// assert_eq!(queue.unfinished_tasks(), 1); // still being worked on
    /// drop(pending);
    /// assert_eq!(queue.unfinished_tasks(), 0);
    /// assert_eq!(total, 6);
    /// ```
    pub fn into_parts(self) -> (T, PendingTask<'a, T>) {
        (self.item, self.pending)
    }

    /// Moves the item out and marks its task done now: `join` no longer
    /// waits for whatever is done with the item afterwards. Use
    /// [`into_parts`](Self::into_parts) if it should.
    ///
    /// ```
    /// let queue = verisync::JoinableQueue::new();
    /// queue.put(String::from("done with it")).unwrap();
    /// let item = queue.get_task().unwrap().into_inner();
    /// assert_eq!(queue.unfinished_tasks(), 0); // already marked done
    /// queue.join(); // returns at once
    /// assert_eq!(item, "done with it");
    /// ```
    pub fn into_inner(self) -> T {
        let (item, pending) = self.into_parts();
        drop(pending);
        item
    }
}

impl<T> Deref for QueueTask<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.item
    }
}

impl<T> DerefMut for QueueTask<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.item
    }
}

/// A task taken from the queue and not yet marked done; marks it done when
/// dropped, even while unwinding. From [`QueueTask::into_parts`]. The same
/// warning holds as for [`QueueTask`]: do not also call
/// [`task_done`](JoinableQueue::task_done) for it.
///
/// ```
/// let queue = verisync::JoinableQueue::new();
/// queue.put(7).unwrap();
/// let (item, pending) = queue.get_task().unwrap().into_parts();
/// assert_eq!(item, 7);
/// assert!(!queue.join_timeout(std::time::Duration::from_millis(1)));
/// drop(pending); // the task is done
/// queue.join();
/// ```
#[must_use = "dropping it at once marks the task done at once (QueueTask::into_inner says so)"]
pub struct PendingTask<'a, T> {
    queue: &'a JoinableQueue<T>,
}

impl<T> Drop for PendingTask<'_, T> {
    fn drop(&mut self) {
        // Refused only if every task was already done: this task was then
        // also marked by hand (see `QueueTask`'s docs).
        let counted = self.queue.task_done();
        debug_assert!(
            counted.is_ok() || std::thread::panicking(),
            "verisync: a task taken with get_task() was marked done twice: its guard marks it \
             when dropped, so do not also call task_done() for it"
        );
    }
}

impl<T> fmt::Debug for PendingTask<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PendingTask")
            .finish_non_exhaustive()
    }
}

impl<T: fmt::Debug> fmt::Debug for QueueTask<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_tuple("QueueTask").field(&**self).finish()
    }
}

/// Gets items until the queue is shut down and drained; from
/// [`JoinableQueue::iter`].
///
/// ```
/// let queue = verisync::JoinableQueue::new();
/// queue.put(1).unwrap();
/// queue.shutdown();
/// let mut items = queue.iter();
/// assert_eq!(items.next(), Some(1));
/// assert_eq!(items.next(), None);
/// ```
pub struct QueueIter<'a, T> {
    queue: &'a JoinableQueue<T>,
}

impl<T> Iterator for QueueIter<'_, T> {
    type Item = T;

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn next(&mut self) -> Option<T> {
        let waiting = BlockedIn::later("JoinableQueue::iter", None);
        self.queue.get_until(None, waiting).ok()
    }
}

impl<T> fmt::Debug for QueueIter<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("QueueIter").finish_non_exhaustive()
    }
}
