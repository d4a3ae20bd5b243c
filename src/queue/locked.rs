//! The lock-based storages: LIFO and priority, each behind this crate's
//! [`Mutex`], with the same push/pop contract as the ring — and their own
//! blocking, shaped like a condition variable's.
//!
//! # Sleeping and waking
//!
//! ```text
//!  waiter (get on empty; put on full)        notifier (put; get that made room)
//!  ---------------------------------         ----------------------------------
//!  lock                                       lock
//!  still empty/full and open?                 push / pop
//!    no: unlock, retry the operation          sleepers? = condition.has_waiters()
//!    yes: enqueue on the condition,           unlock
//!         unlock (while enqueued), sleep      if sleepers?: condition.notify_one()
//! ```
//!
//! The check and the enqueueing happen under the mutex, and the waiter lets
//! go of the mutex only once it is in the seam's queue (the [`Condition`]
//! unlocks in `before_sleep`). A notifier changes the items under the same
//! mutex, so either it ran first and the waiter's check sees its item (or
//! room), or the waiter is already queued and flagged when the notifier
//! looks: no wake-up is lost, and a put or get needs no `SeqCst` access and
//! no fence — only the mutex's own lock and unlock, and a plain load of the
//! flag. (The lock-free storages cannot do this: their waiters check state
//! that no lock guards, hence the wait lists' `SeqCst` handshake in
//! `raw/wait_list.rs`.)
//!
//! A woken thread retries its operation from the start, so a wake-up that
//! another thread "stole" costs a retry. A timed-out waiter retries once as
//! well: a notify that raced with its timeout found nobody (or another
//! waiter), and the item it announced is then still there for the retry.
//! `shut_down` sets its flag under the mutex and then wakes every waiter;
//! a waiter that checks after it sees the flag and does not sleep.
//!
//! An item's `Ord` may panic inside a heap push or pop; the heap keeps the
//! item then. A panicking push wakes a getter for the item it left; a
//! panicking pop passes on the wake-up it may have been given.
//!
//! # Mirrors
//!
//! `len` and `shut_down` are mirrored in atomics (written only while the
//! mutex is held), so `len`/`is_empty`/`is_full` and a getter polling an
//! empty queue need not take the mutex (a poller would otherwise fight the
//! putters for it). They are `Release` stores and `Acquire` loads: nothing
//! waits on them (the waits check under the mutex), so they take part in no
//! `SeqCst` handshake. `len` is stored when the locked order is released
//! ([`LenSync`]), so an item's `Ord` panicking inside a heap push or pop
//! cannot leave it stale.

use std::time::Instant;

use super::drop_all::DropAll;
use super::heap::{Heap, Unordered};
use super::ring::{PopError, PushError};
use crate::condition::Condition;
use crate::mutex::{Mutex, MutexGuard};
use crate::sys::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The order items leave in.
pub(crate) enum Order<T> {
    Lifo(Vec<T>),
    Priority(Heap<T>),
}

impl<T> Order<T> {
    fn push(&mut self, item: T) {
        match self {
            Order::Lifo(items) => items.push(item),
            Order::Priority(items) => items.push(item),
        }
    }

    fn pop(&mut self) -> Option<T> {
        match self {
            Order::Lifo(items) => items.pop(),
            Order::Priority(items) => items.pop(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Order::Lifo(items) => items.len(),
            Order::Priority(items) => items.len(),
        }
    }

    /// Every item, out at once and without running any user code.
    fn take_all(&mut self) -> Drained<T> {
        match self {
            Order::Lifo(items) => {
                let mut items = std::mem::take(items);
                items.reverse();
                Drained::InGetOrder(items)
            }
            Order::Priority(items) => Drained::Priority(items.take_all()),
        }
    }
}

/// Every item a storage held, taken out by `shutdown_now`.
///
/// Taking them out runs no user code, so the storage is empty and its
/// length right before anything can panic; only putting priority items in
/// order runs their `Ord`, which [`into_get_order`](Self::into_get_order)
/// does last.
pub(crate) enum Drained<T> {
    /// Already in the order gets would have taken them.
    InGetOrder(Vec<T>),
    /// Priority items, to be sorted.
    Priority(Unordered<T>),
}

impl<T> Drained<T> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Drained::InGetOrder(items) => items.len(),
            Drained::Priority(items) => items.len(),
        }
    }

    /// The items in get order. For priority items this runs their `Ord`:
    /// if it panics, they come back in insertion order (see
    /// [`Unordered::into_sorted`](super::heap::Unordered::into_sorted)).
    pub(crate) fn into_get_order(self) -> Vec<T> {
        match self {
            Drained::InGetOrder(items) => items,
            Drained::Priority(items) => items.into_sorted(),
        }
    }
}

/// The order, locked, for a push or pop: dropping it stores the order's
/// length into the `len` mirror, then unlocks — also when the item's `Ord`
/// panicked inside a heap push or pop (the heap keeps the item then), so
/// the mirror never disagrees with what is queued.
struct LenSync<'a, T> {
    items: MutexGuard<'a, Order<T>>,
    len: &'a AtomicUsize,
}

impl<T> LenSync<'_, T> {
    fn order(&mut self) -> &mut Order<T> {
        &mut self.items
    }
}

impl<T> Drop for LenSync<'_, T> {
    fn drop(&mut self) {
        // `Release`: a poller that reads the new length also sees the items
        // (and, for a getter, takes the mutex before touching them anyway).
        self.len.store(self.items.len(), Ordering::Release);
    }
}

/// Wakes one waiter of a condition if dropped, which only happens while
/// unwinding (the normal path forgets it): after an item's `Ord` panicked.
struct NotifyOneOnUnwind<'a>(&'a Condition);

impl Drop for NotifyOneOnUnwind<'_> {
    #[cold]
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// Items in some [`Order`] behind a mutex, with an optional capacity, and
/// the getters and putters waiting on it.
pub(crate) struct Locked<T> {
    items: Mutex<Order<T>>,
    /// Getters waiting for an item (or the shutdown).
    not_empty: Condition,
    /// Putters waiting for room (or the shutdown); only with a capacity.
    not_full: Condition,
    capacity: Option<usize>,
    len: AtomicUsize,
    shut_down: AtomicBool,
}

impl<T> Locked<T> {
    pub(crate) fn new(order: Order<T>, capacity: Option<usize>) -> Self {
        Self {
            items: Mutex::new_untracked(order),
            not_empty: Condition::new_unreported(),
            not_full: Condition::new_unreported(),
            capacity,
            len: AtomicUsize::new(0),
            shut_down: AtomicBool::new(false),
        }
    }

    fn is_at_capacity(&self, len: usize) -> bool {
        self.capacity.is_some_and(|capacity| len >= capacity)
    }

    /// Adds `item` and wakes a getter if one sleeps; `claimed` runs (under
    /// the lock) just before it is added.
    #[inline]
    pub(crate) fn push(&self, item: T, claimed: impl FnOnce()) -> Result<(), PushError<T>> {
        // A priority push runs the item's `Ord`, which may panic; the heap
        // keeps the item then, so a getter must still be woken for it.
        let wake_a_getter = NotifyOneOnUnwind(&self.not_empty);
        let items = self.items.lock();
        if self.shut_down.load(Ordering::Relaxed) {
            drop(items);
            std::mem::forget(wake_a_getter);
            return Err(PushError::ShutDown(item));
        }
        if self.is_at_capacity(items.len()) {
            drop(items);
            std::mem::forget(wake_a_getter);
            return Err(PushError::Full(item));
        }
        claimed();
        let mut items = LenSync {
            items,
            len: &self.len,
        };
        items.order().push(item);
        // Read under the lock: a getter that found the queue empty is
        // enqueued and flagged before it let go of the lock (module docs).
        let getters_wait = self.not_empty.has_waiters();
        drop(items);
        std::mem::forget(wake_a_getter);
        if getters_wait {
            self.not_empty.notify_one();
        }
        Ok(())
    }

    /// Takes the next item and wakes a putter if one sleeps for room.
    #[inline]
    pub(crate) fn pop(&self) -> Result<T, PopError> {
        // Nothing to take: say so without the lock, or a getter polling an
        // empty queue fights the putters for it. `shut_down` first: once it
        // reads true, every push happened before and `len` shows them all,
        // so a drained queue is never reported shut down too early.
        let shut_down = self.shut_down.load(Ordering::Acquire);
        if self.len.load(Ordering::Acquire) == 0 {
            return Err(if shut_down {
                PopError::ShutDown
            } else {
                PopError::Empty
            });
        }
        // A priority pop runs the items' `Ord`, which may panic; the heap
        // keeps the item then, and the wake-up this getter may have been
        // given for it must go on to another getter, or one could sleep
        // beside a queued item.
        let pass_wake_up_on = NotifyOneOnUnwind(&self.not_empty);
        let mut items = LenSync {
            items: self.items.lock(),
            len: &self.len,
        };
        let popped = items.order().pop();
        // Putters only ever wait on a bounded queue.
        let putters_wait =
            popped.is_some() && self.capacity.is_some() && self.not_full.has_waiters();
        let shut_down = self.shut_down.load(Ordering::Relaxed);
        drop(items);
        std::mem::forget(pass_wake_up_on);
        match popped {
            Some(item) => {
                if putters_wait {
                    self.not_full.notify_one();
                }
                Ok(item)
            }
            None if shut_down => Err(PopError::ShutDown),
            None => Err(PopError::Empty),
        }
    }

    /// Sleeps while the queue is empty and open, until woken or `deadline`
    /// (`None`: never). Returns `false` only on a timeout; the caller then
    /// retries once (see the module docs).
    #[cold]
    pub(crate) fn wait_while_empty(&self, deadline: Option<Instant>) -> bool {
        let mut items = self.items.lock();
        if items.len() != 0 || self.shut_down.load(Ordering::Relaxed) {
            return true;
        }
        wait(&self.not_empty, &mut items, deadline)
    }

    /// Sleeps while the queue is full and open, until woken or `deadline`
    /// (`None`: never). Returns `false` only on a timeout.
    #[cold]
    pub(crate) fn wait_while_full(&self, deadline: Option<Instant>) -> bool {
        let mut items = self.items.lock();
        if !self.is_at_capacity(items.len()) || self.shut_down.load(Ordering::Relaxed) {
            return true;
        }
        wait(&self.not_full, &mut items, deadline)
    }

    /// Refuses later pushes (again: no change) and wakes every waiter.
    pub(crate) fn shut_down(&self) {
        let items = self.items.lock();
        self.shut_down.store(true, Ordering::Release);
        drop(items);
        // After the flag, under the lock: a waiter either was enqueued
        // before (and is woken here) or checks after and sees it.
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Removes every item at once (no user code runs under the lock).
    pub(crate) fn take_all(&self) -> Drained<T> {
        let mut items = self.items.lock();
        let taken = items.take_all();
        self.len.store(0, Ordering::Release);
        drop(items);
        // Room for every putter (none waits once the queue is shut down,
        // which `shutdown_now` does first; this keeps `take_all` right on
        // its own).
        if self.capacity.is_some() {
            self.not_full.notify_all();
        }
        taken
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    pub(crate) fn is_full(&self) -> bool {
        self.is_at_capacity(self.len())
    }
}

/// Parks on `condition`, releasing `items`' lock meanwhile; `false` on a
/// timeout.
fn wait<T>(
    condition: &Condition,
    items: &mut MutexGuard<'_, Order<T>>,
    deadline: Option<Instant>,
) -> bool {
    match deadline {
        None => {
            condition.wait(items);
            true
        }
        Some(deadline) => !condition.wait_until(items, deadline).timed_out(),
    }
}

impl<T> Drop for Locked<T> {
    /// Drops the items left one by one: if one's `Drop` panics, the rest
    /// are still dropped, then the first panic goes on. (Left to the `Vec`,
    /// a second panicking item would panic during that unwinding and abort
    /// the process; the ring and the list drop theirs the same way.)
    fn drop(&mut self) {
        let mut drops = DropAll::new();
        match self.items.get_mut().take_all() {
            Drained::InGetOrder(items) => drops.drop_each(items),
            Drained::Priority(items) => drops.drop_each(items.into_unsorted()),
        }
        drops.finish();
    }
}
