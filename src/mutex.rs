//! [`Mutex`]: mutual exclusion with an RAII guard, no poisoning, timed
//! locking and eventual fairness. The state machine is in `raw/mutex.rs`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crate::deadlock::hooks::{LockKind, LockTracking, SavedHolds};
use crate::raw::mutex::RawMutex;
use crate::sys::cell::{MutAccess, UnsafeCell};
use crate::sys::time::deadline_after;

/// A mutual-exclusion lock protecting a `T`, like Python's `threading.Lock`
/// with the data inside.
///
/// - No poisoning: if a thread panics while holding the guard, the lock is
///   simply released (as in parking_lot).
/// - Starvation-free: a waiter that has waited about a millisecond is handed
///   the lock directly, so a thread hammering `lock`/`unlock` cannot keep
///   another out forever. [`MutexGuard::unlock_fair`] hands it over at once.
/// - Every blocking call has a non-blocking and a bounded form:
///   [`try_lock`](Self::try_lock), [`try_lock_for`](Self::try_lock_for),
///   [`try_lock_until`](Self::try_lock_until).
/// - A mutex can carry a name for diagnostics ([`Mutex::with_name`]).
///
/// ```
/// use std::sync::Arc;
/// use verisync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0u64));
/// let workers: Vec<_> = (0..4)
///     .map(|_| {
///         let counter = Arc::clone(&counter);
///         std::thread::spawn(move || {
///             for _ in 0..1000 {
///                 *counter.lock() += 1;
///             }
///         })
///     })
///     .collect();
/// for worker in workers {
///     worker.join().unwrap();
/// }
/// assert_eq!(*counter.lock(), 4000);
/// ```
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    name: Option<&'static str>,
    /// Zero-sized unless the `deadlock-detection` feature is on.
    tracking: LockTracking,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands the `T` to one thread at a time, so it needs only
// `T: Send` to be shared or sent, exactly like `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    ///
    /// ```
    /// static TOTAL: verisync::Mutex<u64> = verisync::Mutex::new(0);
    /// *TOTAL.lock() += 5;
    /// assert_eq!(*TOTAL.lock(), 5);
    /// ```
    #[cfg(not(verisync_loom))]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub const fn new(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            name: None,
            tracking: LockTracking::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A new, unlocked mutex holding `value`.
    #[cfg(verisync_loom)]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn new(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            name: None,
            tracking: LockTracking::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A new, unlocked mutex with a name that diagnostics and `Debug` show.
    ///
    /// ```
    /// let accounts = verisync::Mutex::with_name("accounts", vec![100, 250]);
    /// assert_eq!(accounts.name(), Some("accounts"));
    /// ```
    #[cfg(not(verisync_loom))]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub const fn with_name(name: &'static str, value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            name: Some(name),
            tracking: LockTracking::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A new, unlocked mutex with a name that diagnostics and `Debug` show.
    #[cfg(verisync_loom)]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn with_name(name: &'static str, value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            name: Some(name),
            tracking: LockTracking::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A mutex the deadlock diagnostics never track: for the crate's own
    /// internal locks.
    #[cfg(not(verisync_loom))]
    pub(crate) const fn new_untracked(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            name: None,
            tracking: LockTracking::untracked(),
            data: UnsafeCell::new(value),
        }
    }

    /// A mutex the deadlock diagnostics never track.
    #[cfg(verisync_loom)]
    pub(crate) fn new_untracked(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            name: None,
            tracking: LockTracking::untracked(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value.
    ///
    /// ```
    /// let m = verisync::Mutex::new(String::from("hi"));
    /// assert_eq!(m.into_inner(), "hi");
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks until the lock is free, takes it, and returns the guard.
    ///
    /// Locking a mutex the current thread already holds deadlocks (use a
    /// [`ReentrantLock`](crate::ReentrantLock) for that).
    ///
    /// ```
    /// let m = verisync::Mutex::new(1);
    /// *m.lock() += 1;
    /// assert_eq!(*m.lock(), 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.tracking.acquire(
            self.name,
            LockKind::Mutex,
            None,
            || self.raw.try_lock(),
            || {
                self.raw.lock();
                true
            },
        );
        // SAFETY: we just took the lock.
        unsafe { MutexGuard::new(self) }
    }

    /// Takes the lock if it is free at once; `None` if it is held.
    ///
    /// ```
    /// let m = verisync::Mutex::new(0);
    /// let held = m.lock();
    /// assert!(m.try_lock().is_none());
    /// drop(held);
    /// assert!(m.try_lock().is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        if self
            .tracking
            .try_acquire(self.name, LockKind::Mutex, || self.raw.try_lock())
        {
            // SAFETY: we just took the lock.
            Some(unsafe { MutexGuard::new(self) })
        } else {
            None
        }
    }

    /// Waits at most `timeout` for the lock. A zero timeout tries once;
    /// `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = verisync::Mutex::new(0);
    /// let held = m.lock();
    /// assert!(m.try_lock_for(Duration::from_millis(5)).is_none());
    /// drop(held);
    /// assert!(m.try_lock_for(Duration::from_millis(5)).is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<MutexGuard<'_, T>> {
        if timeout.is_zero() {
            return self.try_lock();
        }
        self.lock_until(deadline_after(timeout))
    }

    /// Waits until `deadline` for the lock; a deadline in the past tries once.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let m = verisync::Mutex::new(0);
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(m.try_lock_until(deadline).is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_lock_until(&self, deadline: Instant) -> Option<MutexGuard<'_, T>> {
        // A deadline already past tries once, as `try_lock` does (and, for
        // the deadlock diagnostics, is no blocking acquisition either).
        if deadline <= Instant::now() {
            return self.try_lock();
        }
        self.lock_until(Some(deadline))
    }

    #[inline]
    #[track_caller]
    fn lock_until(&self, deadline: Option<Instant>) -> Option<MutexGuard<'_, T>> {
        if self.tracking.acquire(
            self.name,
            LockKind::Mutex,
            deadline,
            || self.raw.try_lock(),
            || self.raw.try_lock_until(deadline),
        ) {
            // SAFETY: we just took the lock.
            Some(unsafe { MutexGuard::new(self) })
        } else {
            None
        }
    }

    /// Whether some thread holds the lock right now (a snapshot that may be
    /// stale by the time you act on it).
    ///
    /// ```
    /// let m = verisync::Mutex::new(());
    /// let guard = m.lock();
    /// assert!(m.is_locked());
    /// drop(guard);
    /// assert!(!m.is_locked());
    /// ```
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Mutable access without locking: `&mut self` proves nobody else has it.
    ///
    /// ```
    /// let mut m = verisync::Mutex::new(1);
    /// *m.get_mut() = 7;
    /// assert_eq!(*m.lock(), 7);
    /// ```
    #[inline]
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The name given by [`Mutex::with_name`], if any.
    ///
    /// ```
    /// assert_eq!(verisync::Mutex::new(0).name(), None);
    /// ```
    #[inline]
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }

    /// The lock's address, which identifies it to a `Condition`.
    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
    }
}

impl<T: Default> Default for Mutex<T> {
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = formatter.debug_struct("Mutex");
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

/// Proof that the current thread holds a [`Mutex`]; gives `&T` and `&mut T`
/// and releases the lock when dropped (also while unwinding from a panic).
///
/// The guard cannot be sent to another thread: the lock belongs to the
/// thread that took it.
///
/// ```
/// let m = verisync::Mutex::new(vec![1]);
/// {
///     let mut guard = m.lock();
///     guard.push(2);
/// } // released here
/// assert_eq!(*m.lock(), [1, 2]);
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    access: MutAccess<T>,
    /// Not `Send`: unlocking must happen on the locking thread.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard only gives out `&T`, which is fine across
// threads when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// # Safety
    ///
    /// The calling thread has just taken `mutex.raw`.
    #[inline]
    unsafe fn new(mutex: &'a Mutex<T>) -> Self {
        Self {
            mutex,
            access: mutex.data.access_mut(),
            _not_send: PhantomData,
        }
    }

    /// Releases the lock and hands it directly to the longest-waiting
    /// thread, if any, instead of letting a running thread barge in.
    ///
    /// ```
    /// use verisync::{Mutex, MutexGuard};
    /// let m = Mutex::new(0);
    /// let guard = m.lock();
    /// MutexGuard::unlock_fair(guard);
    /// assert!(!m.is_locked());
    /// ```
    pub fn unlock_fair(mut guard: Self) {
        guard.access.suspend();
        guard.mutex.tracking.release();
        // SAFETY: the guard proves the lock is held; forgetting the guard
        // afterwards stops `Drop` from unlocking a second time.
        unsafe { guard.mutex.raw.unlock_fair() };
        std::mem::forget(guard);
    }

    /// The mutex this guard locks.
    ///
    /// ```
    /// use verisync::{Mutex, MutexGuard};
    /// let m = Mutex::with_name("m", 0);
    /// let guard = m.lock();
    /// assert_eq!(MutexGuard::mutex(&guard).name(), Some("m"));
    /// ```
    pub fn mutex(guard: &Self) -> &'a Mutex<T> {
        guard.mutex
    }

    /// Releases the lock for a condition wait (the guard stays alive).
    ///
    /// # Safety
    ///
    /// The guard is not dereferenced until [`relock`](Self::relock).
    pub(crate) unsafe fn unlock_for_wait(&mut self) -> SavedHolds {
        self.access.suspend();
        let saved = self.mutex.tracking.release_for_wait();
        // SAFETY: the guard proves the lock is held.
        unsafe { self.mutex.raw.unlock() };
        saved
    }

    /// Takes the lock again after [`unlock_for_wait`](Self::unlock_for_wait).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn relock(&mut self, saved: SavedHolds) {
        let mutex = self.mutex;
        mutex
            .tracking
            .reacquire_after_wait(mutex.name, LockKind::Mutex, saved, || mutex.raw.lock());
        self.access.resume(&self.mutex.data);
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held, so no other access exists.
        unsafe { &*self.access.pointer() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, so no other access exists.
        unsafe { &mut *self.access.pointer() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // End the (loom-tracked) access before another thread can start one.
        self.access.suspend();
        self.mutex.tracking.release();
        // SAFETY: the guard proves the lock is held.
        unsafe { self.mutex.raw.unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, formatter)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, formatter)
    }
}
