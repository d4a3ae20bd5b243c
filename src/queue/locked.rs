//! The lock-based storages: LIFO and priority, each behind
//! this crate's [`Mutex`], with the same push/pop contract as the ring.
//!
//! `len` and `shut_down` are mirrored in atomics (written only while the
//! mutex is held), so a waiter can check "empty?"/"full?" from inside the
//! seam's `validate`, where taking the mutex is not allowed. The `len`
//! stores are `SeqCst`: they are this storage's half of the wait lists'
//! handshake, ordered before the notifier's check for sleepers (see
//! `raw/wait_list.rs`). They are made when the locked order is released
//! ([`LenSync`]), so an item's `Ord` panicking inside a heap push or pop
//! (the heap keeps every item then) cannot leave the mirror stale.

use super::drop_all::DropAll;
use super::heap::{Heap, Unordered};
use super::ring::{PopError, PushError};
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
        self.len.store(self.items.len(), Ordering::SeqCst);
    }
}

/// Items in some [`Order`] behind a mutex, with an optional capacity.
pub(crate) struct Locked<T> {
    items: Mutex<Order<T>>,
    capacity: Option<usize>,
    len: AtomicUsize,
    shut_down: AtomicBool,
}

impl<T> Locked<T> {
    pub(crate) fn new(order: Order<T>, capacity: Option<usize>) -> Self {
        Self {
            items: Mutex::new_untracked(order),
            capacity,
            len: AtomicUsize::new(0),
            shut_down: AtomicBool::new(false),
        }
    }

    /// Adds `item`; `claimed` runs (under the lock) just before it is added.
    pub(crate) fn push(&self, item: T, claimed: impl FnOnce()) -> Result<(), PushError<T>> {
        let items = self.items.lock();
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(PushError::ShutDown(item));
        }
        if self
            .capacity
            .is_some_and(|capacity| items.len() >= capacity)
        {
            return Err(PushError::Full(item));
        }
        claimed();
        let mut items = LenSync {
            items,
            len: &self.len,
        };
        items.order().push(item);
        Ok(())
    }

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
        let mut items = LenSync {
            items: self.items.lock(),
            len: &self.len,
        };
        match items.order().pop() {
            Some(item) => Ok(item),
            None if self.shut_down.load(Ordering::Relaxed) => Err(PopError::ShutDown),
            None => Err(PopError::Empty),
        }
    }

    /// Refuses later pushes (again: no change).
    pub(crate) fn shut_down(&self) {
        let _items = self.items.lock();
        self.shut_down.store(true, Ordering::SeqCst);
    }

    /// Removes every item at once (no user code runs under the lock).
    pub(crate) fn take_all(&self) -> Drained<T> {
        let mut items = self.items.lock();
        let taken = items.take_all();
        self.len.store(0, Ordering::SeqCst);
        taken
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    pub(crate) fn is_full(&self) -> bool {
        self.capacity.is_some_and(|capacity| self.len() >= capacity)
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
