//! [`Condition`]: a condition variable for [`Mutex`](crate::Mutex) and
//! [`ReentrantLock`](crate::ReentrantLock) guards, like Python's
//! `threading.Condition`.
//!
//! # Implementation
//!
//! Waiters park in the seam's queue keyed by the condition's address, so
//! notifications go in arrival order and a notified waiter is one that was
//! really removed from the queue (no spurious wake-ups: `park` only returns
//! on an unpark or a timeout).
//!
//! ## State word
//!
//! `lock`: the address of the lock whose guard the current waiters hold, or
//! 0 when nobody waits. It is written only under the seam's queue lock: set
//! in `validate` by the first waiter, cleared when the queue empties (in the
//! notify callback or in `timed_out` of the last waiter). A waiter that
//! finds another lock's address there refuses to park and panics after
//! `park` returns (panicking inside `validate` would leave the queue locked).
//!
//! ## Who wakes whom
//!
//! A waiter is enqueued while it still holds the lock and releases the lock
//! in `before_sleep`; a notifier that changed the shared state under the
//! same lock therefore either sees the waiter in the queue or the waiter
//! sees the change before it waits — the classic lost wake-up cannot happen.
//! `notify(n)` wakes the first `n` waiters and returns how many it woke;
//! each woken waiter takes the lock again before returning.
//!
//! ## Memory orderings
//!
//! `lock` is `Relaxed`: the notifier's load is ordered after the waiter's
//! store by the user's lock (the waiter stores while holding it and releases
//! it afterwards). The data itself is ordered by that lock.

use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

use crate::deadlock::hooks::{BlockedIn, SavedHolds};
use crate::mutex::MutexGuard;
use crate::raw::reentrant::SavedDepth;
use crate::reentrant::ReentrantLockGuard;
use crate::sys::atomic::{AtomicUsize, Ordering};
use crate::sys::park::DEFAULT_UNPARK_TOKEN;
use crate::sys::park::{self, ParkResult, UnparkResult, DEFAULT_PARK_TOKEN};
use crate::sys::time::deadline_after;

/// A condition variable: threads wait on it, releasing a lock, until
/// another thread notifies them — Python's `threading.Condition`.
///
/// It works with a [`MutexGuard`] and with a [`ReentrantLockGuard`]; a
/// reentrant lock held *k* times is fully released while waiting and taken
/// again *k* times before the wait returns (Python's default `Condition()`
/// is built on an `RLock`). A wait returns only when notified or timed out
/// (no spurious wake-ups), but another thread may have changed the data
/// between the notification and the re-lock: prefer
/// [`wait_while`](Self::wait_while), which re-checks for you.
///
/// One condition may serve one lock at a time; waiting on it with two
/// different locks at once panics.
///
/// ```
/// use std::sync::Arc;
/// use verisync::{Condition, Mutex};
///
/// let shared = Arc::new((Mutex::new(Vec::new()), Condition::new()));
/// let consumer = {
///     let shared = Arc::clone(&shared);
///     std::thread::spawn(move || {
///         let (items, ready) = &*shared;
///         let mut items = items.lock();
///         ready.wait_while(&mut items, |items| items.is_empty());
///         items.pop().unwrap()
///     })
/// };
/// let (items, ready) = &*shared;
/// items.lock().push("dish");
/// ready.notify_one();
/// assert_eq!(consumer.join().unwrap(), "dish");
/// ```
pub struct Condition {
    lock: AtomicUsize,
    /// Whether its waits are listed by `deadlock::blocked_threads` (not
    /// for the waits of the pools' own threads).
    #[cfg(feature = "deadlock-detection")]
    reported: bool,
}

/// A guard that a [`Condition`] can wait with: [`MutexGuard`] or
/// [`ReentrantLockGuard`]. Sealed: the condition must be able to release
/// and retake the lock exactly.
///
/// ```
/// use verisync::{Condition, ConditionGuard, Mutex, ReentrantLock};
///
/// fn wait_briefly<G: ConditionGuard>(condition: &Condition, guard: &mut G) {
///     condition.wait_timeout(guard, std::time::Duration::from_millis(1));
/// }
/// let condition = Condition::new();
/// let mutex = Mutex::new(0);
/// wait_briefly(&condition, &mut mutex.lock());
/// let reentrant = ReentrantLock::new(0);
/// wait_briefly(&condition, &mut reentrant.lock());
/// ```
pub trait ConditionGuard: Deref + private::Sealed {}

impl<T: ?Sized> ConditionGuard for MutexGuard<'_, T> {}
impl<T: ?Sized> ConditionGuard for ReentrantLockGuard<'_, T> {}

mod private {
    /// Releasing and retaking the lock behind a guard.
    pub trait Sealed {
        /// What must be remembered while the lock is released.
        type Saved;
        /// Identifies the lock.
        fn lock_address(&self) -> usize;
        /// Releases the lock completely.
        ///
        /// # Safety
        ///
        /// The guard is not dereferenced until `relock`.
        unsafe fn unlock_for_wait(&mut self) -> Self::Saved;
        /// Takes the lock again as it was.
        #[cfg_attr(feature = "deadlock-detection", track_caller)]
        fn relock(&mut self, saved: Self::Saved);
    }
}

impl<T: ?Sized> private::Sealed for MutexGuard<'_, T> {
    type Saved = SavedHolds;

    fn lock_address(&self) -> usize {
        MutexGuard::mutex(self).raw() as *const _ as usize
    }

    unsafe fn unlock_for_wait(&mut self) -> SavedHolds {
        // SAFETY: forwarded from our caller.
        unsafe { MutexGuard::unlock_for_wait(self) }
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn relock(&mut self, saved: SavedHolds) {
        MutexGuard::relock(self, saved);
    }
}

impl<T: ?Sized> private::Sealed for ReentrantLockGuard<'_, T> {
    type Saved = (SavedDepth, SavedHolds);

    fn lock_address(&self) -> usize {
        ReentrantLockGuard::lock(self).raw().address()
    }

    unsafe fn unlock_for_wait(&mut self) -> (SavedDepth, SavedHolds) {
        // SAFETY: forwarded from our caller.
        unsafe { ReentrantLockGuard::unlock_for_wait(self) }
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn relock(&mut self, saved: (SavedDepth, SavedHolds)) {
        ReentrantLockGuard::relock(self, saved);
    }
}

/// Whether a timed condition wait ended by timing out.
///
/// ```
/// use std::time::Duration;
/// let (m, c) = (verisync::Mutex::new(true), verisync::Condition::new());
/// let mut ready = m.lock();
/// let result = c.wait_timeout_while(&mut ready, Duration::from_millis(1), |ready| !*ready);
/// assert!(!result.timed_out()); // the condition already held
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// The result of a wait that timed out (`true`) or was notified.
    #[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
    pub(crate) fn new(timed_out: bool) -> Self {
        Self(timed_out)
    }

    /// `true` if the wait timed out (for the `_while` forms: and the
    /// condition still held when it did).
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = verisync::Mutex::new(());
    /// let c = verisync::Condition::new();
    /// let mut guard = m.lock();
    /// assert!(c.wait_timeout(&mut guard, Duration::from_millis(1)).timed_out());
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condition {
    /// A condition nobody waits on.
    ///
    /// ```
    /// let c = verisync::Condition::new();
    /// assert_eq!(c.notify_all(), 0);
    /// ```
    #[cfg(not(verisync_loom))]
    pub const fn new() -> Self {
        Self {
            lock: AtomicUsize::new(0),
            #[cfg(feature = "deadlock-detection")]
            reported: true,
        }
    }

    /// A condition whose waits the deadlock diagnostics do not list: for
    /// the pools' own threads (a process pool's writer waiting for room,
    /// its watcher waiting for a deadline), whose waits are the crate's
    /// business, not a hang of the user's program, and for primitives
    /// built on it that mark their own waits (`JoinableQueue`'s LIFO and
    /// priority orders).
    #[cfg(not(verisync_loom))]
    pub(crate) const fn new_unreported() -> Self {
        Self {
            lock: AtomicUsize::new(0),
            #[cfg(feature = "deadlock-detection")]
            reported: false,
        }
    }

    /// As in the real build (loom's atomics are not `const`).
    #[cfg(verisync_loom)]
    pub(crate) fn new_unreported() -> Self {
        Self {
            lock: AtomicUsize::new(0),
            #[cfg(feature = "deadlock-detection")]
            reported: false,
        }
    }

    /// Whether some thread may be waiting: read it while holding the lock
    /// the waiters use, then notify after unlocking only if it says so.
    ///
    /// Exact for waiters that parked before the caller took the lock (a
    /// waiter sets it while still holding that lock, so the caller's
    /// acquisition orders the `Relaxed` load after the store); it may still
    /// say `true` for a waiter an unpark or timeout is just removing, which
    /// costs one `notify_one` that finds nobody.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.lock.load(Ordering::Relaxed) != 0
    }

    /// A condition nobody waits on.
    #[cfg(verisync_loom)]
    pub fn new() -> Self {
        Self {
            lock: AtomicUsize::new(0),
            #[cfg(feature = "deadlock-detection")]
            reported: true,
        }
    }

    /// Releases the guard's lock, waits until notified, and takes the lock
    /// again before returning.
    ///
    /// # Panics
    ///
    /// If other threads are waiting on this condition with a different lock.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use verisync::{Condition, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(false), Condition::new()));
    /// let waiter = {
    ///     let pair = Arc::clone(&pair);
    ///     std::thread::spawn(move || {
    ///         let (ready, condition) = &*pair;
    ///         let mut ready = ready.lock();
    ///         while !*ready {
    ///             condition.wait(&mut ready);
    ///         }
    ///     })
    /// };
    /// *pair.0.lock() = true;
    /// pair.1.notify_all();
    /// waiter.join().unwrap();
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait<G: ConditionGuard>(&self, guard: &mut G) {
        self.wait_internal(guard, None);
    }

    /// As [`wait`](Self::wait), giving up after `timeout`. A zero timeout
    /// returns timed out at once without releasing the lock;
    /// `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = verisync::Mutex::new(0);
    /// let c = verisync::Condition::new();
    /// let mut guard = m.lock();
    /// let result = c.wait_timeout(&mut guard, Duration::from_millis(2));
    /// assert!(result.timed_out());
    /// *guard += 1; // the lock is held again
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_timeout<G: ConditionGuard>(
        &self,
        guard: &mut G,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        if timeout.is_zero() {
            return WaitTimeoutResult(true);
        }
        WaitTimeoutResult(!self.wait_internal(guard, deadline_after(timeout)))
    }

    /// As [`wait`](Self::wait), giving up at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let m = verisync::Mutex::new(());
    /// let c = verisync::Condition::new();
    /// let mut guard = m.lock();
    /// let deadline = Instant::now() + Duration::from_millis(2);
    /// assert!(c.wait_until(&mut guard, deadline).timed_out());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_until<G: ConditionGuard>(
        &self,
        guard: &mut G,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        WaitTimeoutResult(!self.wait_internal(guard, Some(deadline)))
    }

    /// Waits while `condition` holds — Python's `wait_for(predicate)`.
    /// Returns at once if it does not hold. The predicate sees the data
    /// shared (`&T`), with the lock held.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use verisync::{Condition, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(0), Condition::new()));
    /// let producer = {
    ///     let pair = Arc::clone(&pair);
    ///     std::thread::spawn(move || {
    ///         *pair.0.lock() = 3;
    ///         pair.1.notify_all();
    ///     })
    /// };
    /// let mut count = pair.0.lock();
    /// pair.1.wait_while(&mut count, |count| *count == 0);
    /// assert_eq!(*count, 3);
    /// # drop(count);
    /// # producer.join().unwrap();
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_while<G, F>(&self, guard: &mut G, mut condition: F)
    where
        G: ConditionGuard,
        F: FnMut(&G::Target) -> bool,
    {
        while condition(&**guard) {
            self.wait_internal(guard, None);
        }
    }

    /// Waits while `condition` holds, for at most `timeout`. The result
    /// says `timed_out` only if the condition still held at the timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = verisync::Mutex::new(Vec::<u32>::new());
    /// let c = verisync::Condition::new();
    /// let mut queue = m.lock();
    /// let result = c.wait_timeout_while(&mut queue, Duration::from_millis(2), |q| q.is_empty());
    /// assert!(result.timed_out());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_timeout_while<G, F>(
        &self,
        guard: &mut G,
        timeout: Duration,
        mut condition: F,
    ) -> WaitTimeoutResult
    where
        G: ConditionGuard,
        F: FnMut(&G::Target) -> bool,
    {
        let deadline = deadline_after(timeout);
        while condition(&**guard) {
            if timeout.is_zero() || !self.wait_internal(guard, deadline) {
                return WaitTimeoutResult(condition(&**guard));
            }
        }
        WaitTimeoutResult(false)
    }

    /// Wakes the longest-waiting thread; returns how many it woke (0 or 1).
    ///
    /// ```
    /// assert_eq!(verisync::Condition::new().notify_one(), 0);
    /// ```
    pub fn notify_one(&self) -> usize {
        if self.lock.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let callback = |result: UnparkResult| {
            if !result.have_more_threads {
                self.lock.store(0, Ordering::Relaxed);
            }
            DEFAULT_UNPARK_TOKEN
        };
        // SAFETY: the callback only stores to this condition's state word.
        unsafe { park::unpark_one(self.key(), callback) }.unparked_threads
    }

    /// Wakes up to `count` threads, longest-waiting first; returns how many
    /// it woke.
    ///
    /// ```
    /// assert_eq!(verisync::Condition::new().notify(3), 0);
    /// ```
    pub fn notify(&self, count: usize) -> usize {
        if count == 0 || self.lock.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let callback = |result: UnparkResult| {
            if !result.have_more_threads {
                self.lock.store(0, Ordering::Relaxed);
            }
            DEFAULT_UNPARK_TOKEN
        };
        // SAFETY: `callback` stores to this condition's state word; it
        // neither panics nor calls into the seam.
        unsafe { park::unpark_up_to(self.key(), count, callback) }.unparked_threads
    }

    /// Wakes every waiting thread; returns how many it woke.
    ///
    /// ```
    /// assert_eq!(verisync::Condition::new().notify_all(), 0);
    /// ```
    pub fn notify_all(&self) -> usize {
        self.notify(usize::MAX)
    }

    /// Parks until notified (`true`) or `deadline` (`false`), with the
    /// guard's lock released in between.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn wait_internal<G: ConditionGuard>(&self, guard: &mut G, deadline: Option<Instant>) -> bool {
        let lock_address = guard.lock_address();
        let mut other_lock = 0;
        let mut saved = None;
        let validate = || {
            let current = self.lock.load(Ordering::Relaxed);
            if current == 0 {
                self.lock.store(lock_address, Ordering::Relaxed);
            } else if current != lock_address {
                other_lock = current;
                return false;
            }
            true
        };
        let before_sleep = || {
            // SAFETY: the guard is not dereferenced until `relock` below.
            saved = Some(unsafe { guard.unlock_for_wait() });
        };
        let timed_out = |_key, was_last_thread: bool| {
            if was_last_thread {
                self.lock.store(0, Ordering::Relaxed);
            }
        };
        // SAFETY: `validate` and `timed_out` only touch this condition's
        // state word (no panics); `before_sleep` unlocks the user's lock,
        // which may unpark a thread but never parks.
        let result = {
            let _waiting = self.blocked_in();
            unsafe {
                park::park(
                    self.key(),
                    validate,
                    before_sleep,
                    timed_out,
                    DEFAULT_PARK_TOKEN,
                    deadline,
                )
            }
        };
        if let Some(saved) = saved {
            guard.relock(saved);
        }
        if other_lock != 0 {
            used_with_two_locks();
        }
        matches!(result, ParkResult::Unparked(_))
    }

    /// Marks the thread blocked in `Condition::wait` for the diagnostics,
    /// unless this condition's waits are not reported.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    #[inline]
    fn blocked_in(&self) -> BlockedIn {
        #[cfg(feature = "deadlock-detection")]
        if !self.reported {
            return BlockedIn::never();
        }
        BlockedIn::new("Condition::wait", None)
    }

    fn key(&self) -> usize {
        self as *const Self as usize
    }
}

#[cold]
#[track_caller]
fn used_with_two_locks() -> ! {
    panic!(
        "verisync: a Condition was waited on with two different locks at the same time; \
         a condition serves one lock at a time, so use one Condition per lock"
    )
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Condition")
            .field("has_waiters", &(self.lock.load(Ordering::Relaxed) != 0))
            .finish()
    }
}
