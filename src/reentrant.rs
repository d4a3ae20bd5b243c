//! [`ReentrantLock`]: a lock the owning thread may take again, like Python's
//! `threading.RLock`. The state machine is in `raw/reentrant.rs`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::time::{Duration, Instant};

use crate::deadlock::hooks::{LockKind, LockTracking, SavedHolds};
use crate::raw::reentrant::{RawReentrantLock, SavedDepth};
use crate::sys::cell::{SharedAccess, UnsafeCell};
use crate::sys::time::deadline_after;

/// A lock that the thread holding it may take again without deadlocking —
/// Python's `threading.RLock`, with the data inside.
///
/// The guard gives shared access (`&T`) only, because two guards of the same
/// thread can be alive at once; put a `Cell`/`RefCell` inside for mutation.
/// No poisoning. Taking it more than `usize::MAX` times without releasing
/// panics with a message instead of wrapping.
///
/// ```
/// use std::cell::RefCell;
/// use verisync::ReentrantLock;
///
/// let log = ReentrantLock::new(RefCell::new(Vec::new()));
/// let outer = log.lock();
/// let inner = log.lock(); // same thread: no deadlock
/// inner.borrow_mut().push("inner");
/// outer.borrow_mut().push("outer");
/// drop(inner);
/// drop(outer);
/// assert_eq!(*log.lock().borrow(), ["inner", "outer"]);
/// ```
pub struct ReentrantLock<T: ?Sized> {
    raw: RawReentrantLock,
    name: Option<&'static str>,
    /// Zero-sized unless the `deadlock-detection` feature is on.
    tracking: LockTracking,
    data: UnsafeCell<T>,
}

// SAFETY: like `std::sync::ReentrantLock`: the value is only touched by the
// owning thread, so sending or sharing the lock needs `T: Send`.
unsafe impl<T: ?Sized + Send> Send for ReentrantLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for ReentrantLock<T> {}

impl<T> ReentrantLock<T> {
    /// A new, free lock holding `value`.
    ///
    /// ```
    /// let r = verisync::ReentrantLock::new(5);
    /// assert_eq!(*r.lock(), 5);
    /// ```
    #[cfg(not(verisync_loom))]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub const fn new(value: T) -> Self {
        Self {
            raw: RawReentrantLock::new(),
            name: None,
            tracking: LockTracking::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A new, free lock holding `value`.
    #[cfg(verisync_loom)]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn new(value: T) -> Self {
        Self {
            raw: RawReentrantLock::new(),
            name: None,
            tracking: LockTracking::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A new, free lock with a name that diagnostics and `Debug` show.
    ///
    /// ```
    /// let r = verisync::ReentrantLock::with_name("ledger", ());
    /// assert_eq!(r.name(), Some("ledger"));
    /// ```
    #[cfg(not(verisync_loom))]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub const fn with_name(name: &'static str, value: T) -> Self {
        Self {
            raw: RawReentrantLock::new(),
            name: Some(name),
            tracking: LockTracking::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A new, free lock with a name that diagnostics and `Debug` show.
    #[cfg(verisync_loom)]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn with_name(name: &'static str, value: T) -> Self {
        Self {
            raw: RawReentrantLock::new(),
            name: Some(name),
            tracking: LockTracking::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A lock the deadlock diagnostics never track: for the crate's own
    /// internal locks.
    #[cfg(not(verisync_loom))]
    pub(crate) const fn new_untracked(value: T) -> Self {
        Self {
            raw: RawReentrantLock::new(),
            name: None,
            tracking: LockTracking::untracked(),
            data: UnsafeCell::new(value),
        }
    }

    /// A lock the deadlock diagnostics never track.
    #[cfg(verisync_loom)]
    pub(crate) fn new_untracked(value: T) -> Self {
        Self {
            raw: RawReentrantLock::new(),
            name: None,
            tracking: LockTracking::untracked(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the value.
    ///
    /// ```
    /// assert_eq!(verisync::ReentrantLock::new(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> ReentrantLock<T> {
    /// Blocks until the current thread owns the lock (returns at once if it
    /// already does) and returns a guard for one level.
    ///
    /// ```
    /// let r = verisync::ReentrantLock::new(0);
    /// let a = r.lock();
    /// let b = r.lock();
    /// assert_eq!(*a + *b, 0);
    /// ```
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> ReentrantLockGuard<'_, T> {
        self.tracking.acquire(
            self.name,
            LockKind::ReentrantLock,
            None,
            || self.raw.try_lock(),
            || {
                self.raw.lock();
                true
            },
        );
        // SAFETY: the current thread now owns one more level.
        unsafe { ReentrantLockGuard::new(self) }
    }

    /// Takes the lock if it is free or already owned by this thread.
    ///
    /// ```
    /// let r = verisync::ReentrantLock::new(0);
    /// assert!(r.try_lock().is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_lock(&self) -> Option<ReentrantLockGuard<'_, T>> {
        // SAFETY: on success the current thread owns one more level.
        self.tracking
            .try_acquire(self.name, LockKind::ReentrantLock, || self.raw.try_lock())
            .then(|| unsafe { ReentrantLockGuard::new(self) })
    }

    /// Waits at most `timeout` for the lock. A zero timeout tries once;
    /// `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = verisync::ReentrantLock::new(0);
    /// let _held = r.lock();
    /// // The owner may always re-enter:
    /// assert!(r.try_lock_for(Duration::from_millis(1)).is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<ReentrantLockGuard<'_, T>> {
        if timeout.is_zero() {
            return self.try_lock();
        }
        self.lock_until(deadline_after(timeout))
    }

    /// Waits until `deadline` for the lock.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let r = verisync::ReentrantLock::new(0);
    /// assert!(r.try_lock_until(Instant::now() + Duration::from_millis(1)).is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_lock_until(&self, deadline: Instant) -> Option<ReentrantLockGuard<'_, T>> {
        // A deadline already past tries once, as `try_lock` does (and, for
        // the deadlock diagnostics, is no blocking acquisition either).
        if deadline <= Instant::now() {
            return self.try_lock();
        }
        self.lock_until(Some(deadline))
    }

    #[inline]
    #[track_caller]
    fn lock_until(&self, deadline: Option<Instant>) -> Option<ReentrantLockGuard<'_, T>> {
        let acquired = self.tracking.acquire(
            self.name,
            LockKind::ReentrantLock,
            deadline,
            || self.raw.try_lock(),
            || self.raw.try_lock_until(deadline),
        );
        // SAFETY: on success the current thread owns one more level.
        acquired.then(|| unsafe { ReentrantLockGuard::new(self) })
    }

    /// Whether any thread owns the lock (a snapshot).
    ///
    /// ```
    /// let r = verisync::ReentrantLock::new(());
    /// let guard = r.lock();
    /// assert!(r.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Whether the calling thread owns the lock.
    ///
    /// ```
    /// let r = verisync::ReentrantLock::new(());
    /// assert!(!r.is_owned_by_current_thread());
    /// let guard = r.lock();
    /// assert!(r.is_owned_by_current_thread());
    /// ```
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.raw.is_owned_by_current_thread()
    }

    /// Mutable access without locking: `&mut self` proves nobody else has it.
    ///
    /// ```
    /// let mut r = verisync::ReentrantLock::new(1);
    /// *r.get_mut() += 1;
    /// assert_eq!(*r.lock(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The name given by [`ReentrantLock::with_name`], if any.
    ///
    /// ```
    /// assert_eq!(verisync::ReentrantLock::new(0).name(), None);
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }

    pub(crate) fn raw(&self) -> &RawReentrantLock {
        &self.raw
    }
}

impl<T: Default> Default for ReentrantLock<T> {
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for ReentrantLock<T> {
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantLock<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = formatter.debug_struct("ReentrantLock");
        if let Some(name) = self.name {
            out.field("name", &name);
        }
        match self.try_lock() {
            Some(guard) => out.field("data", &&*guard),
            None => out.field("data", &format_args!("<locked>")),
        };
        out.finish()
    }
}

/// One level of ownership of a [`ReentrantLock`]; gives `&T` and releases
/// the level when dropped. Not `Send`: the lock belongs to its thread.
///
/// ```
/// let r = verisync::ReentrantLock::new(String::from("x"));
/// let guard = r.lock();
/// assert_eq!(guard.len(), 1);
/// ```
#[must_use = "the level is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct ReentrantLockGuard<'a, T: ?Sized> {
    lock: &'a ReentrantLock<T>,
    access: SharedAccess<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard gives out `&T`, fine across threads if `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for ReentrantLockGuard<'_, T> {}

impl<'a, T: ?Sized> ReentrantLockGuard<'a, T> {
    /// # Safety
    ///
    /// The current thread has just taken one more level of `lock`.
    #[inline]
    unsafe fn new(lock: &'a ReentrantLock<T>) -> Self {
        Self {
            lock,
            access: lock.data.access_shared(),
            _not_send: PhantomData,
        }
    }

    /// The lock this guard holds a level of.
    ///
    /// ```
    /// use verisync::{ReentrantLock, ReentrantLockGuard};
    /// let r = ReentrantLock::with_name("r", 0);
    /// let guard = r.lock();
    /// assert_eq!(ReentrantLockGuard::lock(&guard).name(), Some("r"));
    /// ```
    pub fn lock(guard: &Self) -> &'a ReentrantLock<T> {
        guard.lock
    }

    /// Releases every level the thread holds, for a condition wait.
    ///
    /// # Safety
    ///
    /// No guard of this lock is dereferenced until [`relock`](Self::relock).
    pub(crate) unsafe fn unlock_for_wait(&mut self) -> (SavedDepth, SavedHolds) {
        self.access.suspend();
        let holds = self.lock.tracking.release_for_wait();
        // SAFETY: the guard proves the current thread owns the lock.
        (unsafe { self.lock.raw.release_all() }, holds)
    }

    /// Takes the lock again at the depth it had.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn relock(&mut self, (depth, holds): (SavedDepth, SavedHolds)) {
        let lock = self.lock;
        lock.tracking
            .reacquire_after_wait(lock.name, LockKind::ReentrantLock, holds, || {
                lock.raw.restore(depth)
            });
        self.access.resume(&self.lock.data);
    }
}

impl<T: ?Sized> Deref for ReentrantLockGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the current thread owns the lock; only shared access is
        // ever given out, so other guards of this thread do not conflict.
        unsafe { &*self.access.pointer() }
    }
}

impl<T: ?Sized> Drop for ReentrantLockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.access.suspend();
        self.lock.tracking.release();
        // SAFETY: the guard proves the current thread owns this level.
        unsafe { self.lock.raw.unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantLockGuard<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, formatter)
    }
}
