//! The raw reentrant lock: a [`RawMutex`] plus the owner's identity and how
//! many times the owner has taken it.
//!
//! # State
//!
//! | field   | written by                     | meaning                           |
//! |---------|--------------------------------|-----------------------------------|
//! | `mutex` | lock/unlock of depth 1         | held while `depth > 0`            |
//! | `owner` | the owner, while holding `mutex` | `sys::thread::current_id()` of the owner, 0 when free |
//! | `depth` | the owner only                 | nesting depth, ≥ 1 while owned    |
//!
//! A thread that finds `owner == its own id` is the owner (only it can have
//! stored that value, and it clears it before releasing `mutex`), so it just
//! increments `depth`. Any other thread goes through `mutex`.
//!
//! # Memory orderings
//!
//! `owner` is `Relaxed`: a thread only ever compares it with its own id, and
//! a thread always sees its own latest store. Data is ordered by `mutex`.

use std::time::Instant;

use super::mutex::RawMutex;
use crate::sys::atomic::{AtomicUsize, Ordering};
use crate::sys::cell::UnsafeCell;
use crate::sys::thread;

/// A recursive lock without data.
pub(crate) struct RawReentrantLock {
    mutex: RawMutex,
    owner: AtomicUsize,
    depth: UnsafeCell<usize>,
}

// SAFETY: `depth` is only read or written by the thread whose id is in
// `owner`, which holds `mutex`; every other field is atomic.
unsafe impl Sync for RawReentrantLock {}
// SAFETY: no field is tied to a thread.
unsafe impl Send for RawReentrantLock {}

/// What a condition wait saves while it has fully released the lock.
pub struct SavedDepth(usize);

impl RawReentrantLock {
    #[cfg(not(verisync_loom))]
    pub(crate) const fn new() -> Self {
        Self {
            mutex: RawMutex::new(),
            owner: AtomicUsize::new(0),
            depth: UnsafeCell::new(0),
        }
    }

    #[cfg(verisync_loom)]
    pub(crate) fn new() -> Self {
        Self {
            mutex: RawMutex::new(),
            owner: AtomicUsize::new(0),
            depth: UnsafeCell::new(0),
        }
    }

    /// Blocks until the caller owns the lock (at one more level).
    #[inline]
    pub(crate) fn lock(&self) {
        let me = thread::current_id();
        if self.owner.load(Ordering::Relaxed) == me {
            self.deepen();
        } else {
            self.mutex.lock();
            self.take_ownership(me, 1);
        }
    }

    /// Takes the lock if free or already owned; never blocks.
    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        self.try_lock_until_inner(|mutex| mutex.try_lock())
    }

    /// Takes the lock, or gives up at `deadline` (`None`: never).
    #[inline]
    pub(crate) fn try_lock_until(&self, deadline: Option<Instant>) -> bool {
        self.try_lock_until_inner(|mutex| mutex.try_lock_until(deadline))
    }

    #[inline]
    fn try_lock_until_inner(&self, acquire: impl FnOnce(&RawMutex) -> bool) -> bool {
        let me = thread::current_id();
        if self.owner.load(Ordering::Relaxed) == me {
            self.deepen();
            true
        } else if acquire(&self.mutex) {
            self.take_ownership(me, 1);
            true
        } else {
            false
        }
    }

    /// Releases one level; the last level releases the lock.
    ///
    /// # Safety
    ///
    /// The calling thread owns the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller owns the lock, so it alone touches `depth`.
        let remaining = self.depth.with_mut(|depth| unsafe {
            *depth -= 1;
            *depth
        });
        if remaining == 0 {
            self.owner.store(0, Ordering::Relaxed);
            // SAFETY: depth reached zero, so this thread holds `mutex`.
            unsafe { self.mutex.unlock() };
        }
    }

    /// Whether any thread owns the lock (a snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.mutex.is_locked()
    }

    /// Whether the calling thread owns the lock.
    pub(crate) fn is_owned_by_current_thread(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread::current_id()
    }

    /// Releases every level at once, for a condition wait.
    ///
    /// # Safety
    ///
    /// The calling thread owns the lock.
    pub(crate) unsafe fn release_all(&self) -> SavedDepth {
        // SAFETY: the caller owns the lock, so it alone touches `depth`.
        let depth = self
            .depth
            .with_mut(|depth| unsafe { std::mem::replace(&mut *depth, 0) });
        self.owner.store(0, Ordering::Relaxed);
        // SAFETY: the caller owned the lock, so this thread holds `mutex`.
        unsafe { self.mutex.unlock() };
        SavedDepth(depth)
    }

    /// Takes the lock again at the depth [`release_all`](Self::release_all) saved.
    pub(crate) fn restore(&self, saved: SavedDepth) {
        self.mutex.lock();
        self.take_ownership(thread::current_id(), saved.0);
    }

    /// The lock's address, which identifies it to a `Condition`.
    pub(crate) fn address(&self) -> usize {
        &self.mutex as *const RawMutex as usize
    }

    fn take_ownership(&self, me: usize, depth: usize) {
        self.owner.store(me, Ordering::Relaxed);
        // SAFETY: this thread just took `mutex`, so it alone touches `depth`.
        self.depth.with_mut(|slot| unsafe { *slot = depth });
    }

    fn deepen(&self) {
        // SAFETY: `owner` is this thread, so it alone touches `depth`.
        self.depth
            .with_mut(|depth| unsafe { *depth = increment_depth(*depth) });
    }
}

/// `depth + 1`, or a panic that says what happened: the count never wraps.
fn increment_depth(depth: usize) -> usize {
    depth.checked_add(1).unwrap_or_else(|| {
        panic!(
            "verisync: ReentrantLock taken more than usize::MAX times by one thread \
             without being released; the nesting count would overflow"
        )
    })
}

#[cfg(all(test, not(verisync_loom)))]
mod tests {
    use super::increment_depth;

    #[test]
    fn depth_increments() {
        assert_eq!(increment_depth(1), 2);
    }

    #[test]
    #[should_panic(expected = "nesting count would overflow")]
    fn depth_overflow_panics_instead_of_wrapping() {
        increment_depth(usize::MAX);
    }
}
