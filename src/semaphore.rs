//! [`Semaphore`]: a counting semaphore with RAII permits, waiters served in
//! arrival order with eventual fairness, and a bounded variant. The state machine is in
//! `raw/semaphore.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadlock::hooks::BlockedIn;
use crate::raw::semaphore::{RawSemaphore, MAX_PERMITS};
use crate::sys::time::deadline_after;

pub use crate::raw::semaphore::TooManyReleases;

/// A counting semaphore — Python's `threading.Semaphore`, and with
/// [`Semaphore::bounded`] its `BoundedSemaphore`.
///
/// Acquiring returns a permit guard that gives the permits back when
/// dropped. Waiters are woken in arrival order, and a thread waiting for
/// many permits is never overtaken by later threads asking for few: once it
/// waits for permits that are partly there, nobody else may take them. As
/// with [`Mutex`](crate::Mutex), a running thread may otherwise take a
/// just-released permit before a woken waiter gets to run (that avoids a
/// context switch per acquire under contention), and a waiter that has
/// waited about a millisecond is handed its permits directly, so nobody
/// starves.
///
/// ```
/// use std::sync::Arc;
/// use verisync::Semaphore;
///
/// // Five parking spaces, twenty cars.
/// let spaces = Arc::new(Semaphore::new(5));
/// let cars: Vec<_> = (0..20)
///     .map(|_| {
///         let spaces = Arc::clone(&spaces);
///         std::thread::spawn(move || {
///             let _space = spaces.acquire();
///             assert!(spaces.available_permits() <= 4);
///         })
///     })
///     .collect();
/// for car in cars {
///     car.join().unwrap();
/// }
/// assert_eq!(spaces.available_permits(), 5);
/// ```
pub struct Semaphore {
    raw: RawSemaphore,
    bounded: bool,
}

impl Semaphore {
    /// The most permits a semaphore can hold.
    ///
    /// ```
    /// let s = verisync::Semaphore::new(verisync::Semaphore::MAX_PERMITS);
    /// assert!(s.release(1).is_err());
    /// ```
    pub const MAX_PERMITS: usize = MAX_PERMITS;

    /// A semaphore with `permits` available. [`release`](Self::release) may
    /// raise the count above `permits` (up to [`Semaphore::MAX_PERMITS`]).
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// let s = verisync::Semaphore::new(2);
    /// assert_eq!(s.available_permits(), 2);
    /// ```
    pub fn new(permits: usize) -> Self {
        Self {
            raw: RawSemaphore::new(permits, MAX_PERMITS),
            bounded: false,
        }
    }

    /// A semaphore whose count can never exceed `permits` — Python's
    /// `BoundedSemaphore`: releasing more than was acquired is an error.
    ///
    /// ```
    /// let s = verisync::Semaphore::bounded(1);
    /// let permit = s.acquire();
    /// drop(permit);
    /// assert!(s.release(1).is_err()); // count would exceed 1
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn bounded(permits: usize) -> Self {
        Self {
            raw: RawSemaphore::new(permits, permits),
            bounded: true,
        }
    }

    /// Takes one permit, waiting in line for it.
    ///
    /// ```
    /// let s = verisync::Semaphore::new(1);
    /// let permit = s.acquire();
    /// assert_eq!(s.available_permits(), 0);
    /// drop(permit);
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    #[inline]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `count` permits at once, waiting in line until all are free.
    ///
    /// # Panics
    ///
    /// On a bounded semaphore, if `count` exceeds its bound: the call could
    /// never succeed. (An unbounded semaphore waits: a release may raise it.)
    ///
    /// ```
    /// let s = verisync::Semaphore::new(5);
    /// let three = s.acquire_many(3);
    /// assert_eq!(three.count(), 3);
    /// assert_eq!(s.available_permits(), 2);
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    #[inline]
    pub fn acquire_many(&self, count: usize) -> SemaphorePermit<'_> {
        self.check_satisfiable(count);
        BlockedIn::attempt_or_wait(
            "Semaphore::acquire",
            None,
            || self.raw.try_acquire(count),
            || self.raw.acquire_until(count, None),
        );
        SemaphorePermit {
            semaphore: self,
            count,
        }
    }

    /// Takes one permit if one is free and no starving waiter is owed it.
    ///
    /// ```
    /// let s = verisync::Semaphore::new(1);
    /// let first = s.try_acquire();
    /// assert!(first.is_some());
    /// assert!(s.try_acquire().is_none());
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `count` permits if they are free and no starving waiter is
    /// owed them.
    ///
    /// ```
    /// let s = verisync::Semaphore::new(2);
    /// assert!(s.try_acquire_many(3).is_none());
    /// assert!(s.try_acquire_many(2).is_some());
    /// ```
    #[inline]
    pub fn try_acquire_many(&self, count: usize) -> Option<SemaphorePermit<'_>> {
        // `then`, not `then_some`: a permit built eagerly would be dropped,
        // and so released, when the acquire fails.
        self.raw.try_acquire(count).then(|| SemaphorePermit {
            semaphore: self,
            count,
        })
    }

    /// Waits at most `timeout` for one permit. A zero timeout tries once;
    /// `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = verisync::Semaphore::new(0);
    /// assert!(s.try_acquire_for(Duration::from_millis(5)).is_none());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_acquire_for(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many_for(1, timeout)
    }

    /// Waits at most `timeout` for `count` permits.
    ///
    /// # Panics
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = verisync::Semaphore::new(4);
    /// assert!(s.try_acquire_many_for(4, Duration::from_millis(5)).is_some());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_acquire_many_for(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Option<SemaphorePermit<'_>> {
        self.check_satisfiable(count);
        if timeout.is_zero() {
            return self.try_acquire_many(count);
        }
        self.acquire_many_until(count, deadline_after(timeout))
    }

    /// Waits until `deadline` for one permit.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let s = verisync::Semaphore::new(1);
    /// assert!(s.try_acquire_until(Instant::now() + Duration::from_millis(5)).is_some());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_acquire_until(&self, deadline: Instant) -> Option<SemaphorePermit<'_>> {
        self.acquire_many_until(1, Some(deadline))
    }

    /// Waits until `deadline` for `count` permits.
    ///
    /// # Panics
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let s = verisync::Semaphore::new(1);
    /// assert!(s.try_acquire_many_until(2, Instant::now() + Duration::from_millis(5)).is_none());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_acquire_many_until(
        &self,
        count: usize,
        deadline: Instant,
    ) -> Option<SemaphorePermit<'_>> {
        self.acquire_many_until(count, Some(deadline))
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn acquire_many_until(
        &self,
        count: usize,
        deadline: Option<Instant>,
    ) -> Option<SemaphorePermit<'_>> {
        self.check_satisfiable(count);
        BlockedIn::attempt_or_wait(
            "Semaphore::acquire (timed)",
            None,
            || self.raw.try_acquire(count),
            || self.raw.acquire_until(count, deadline),
        )
        .then(|| SemaphorePermit {
            semaphore: self,
            count,
        })
    }

    /// Takes one permit through an `Arc`, returning a permit that owns a
    /// handle to the semaphore: `'static`, so it can move to another thread.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(verisync::Semaphore::new(1));
    /// let permit = Arc::clone(&s).acquire_owned();
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire_owned(self: Arc<Self>) -> OwnedSemaphorePermit {
        self.acquire_many_owned(1)
    }

    /// Takes `count` permits through an `Arc`; see [`acquire_owned`](Self::acquire_owned).
    ///
    /// # Panics
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(verisync::Semaphore::new(3));
    /// let permit = Arc::clone(&s).acquire_many_owned(2);
    /// assert_eq!(permit.count(), 2);
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire_many_owned(self: Arc<Self>, count: usize) -> OwnedSemaphorePermit {
        self.acquire_many(count).forget();
        OwnedSemaphorePermit {
            semaphore: self,
            count,
        }
    }

    /// Takes one permit through an `Arc` if one is free (as
    /// [`try_acquire`](Self::try_acquire)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(verisync::Semaphore::new(0));
    /// assert!(Arc::clone(&s).try_acquire_owned().is_none());
    /// ```
    pub fn try_acquire_owned(self: Arc<Self>) -> Option<OwnedSemaphorePermit> {
        self.raw.try_acquire(1).then(|| OwnedSemaphorePermit {
            semaphore: self,
            count: 1,
        })
    }

    /// Adds `count` permits, waking waiters in order.
    ///
    /// On a bounded semaphore (or past [`Semaphore::MAX_PERMITS`]) a release
    /// that would raise the count above the bound is refused with
    /// [`TooManyReleases`] and changes nothing — Python's `ValueError`.
    ///
    /// ```
    /// let s = verisync::Semaphore::new(0);
    /// s.release(2).unwrap();
    /// assert_eq!(s.available_permits(), 2);
    ///
    /// let b = verisync::Semaphore::bounded(2);
    /// let err = b.release(1).unwrap_err();
    /// println!("{err}");
    /// assert_eq!(b.available_permits(), 2);
    /// ```
    pub fn release(&self, count: usize) -> Result<(), TooManyReleases> {
        self.raw.release(count)
    }

    /// Permits available right now (a snapshot).
    ///
    /// ```
    /// assert_eq!(verisync::Semaphore::new(3).available_permits(), 3);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.raw.available()
    }

    /// The bound of a [`bounded`](Self::bounded) semaphore; `None` if unbounded.
    ///
    /// ```
    /// assert_eq!(verisync::Semaphore::bounded(4).bound(), Some(4));
    /// assert_eq!(verisync::Semaphore::new(4).bound(), None);
    /// ```
    pub fn bound(&self) -> Option<usize> {
        self.bounded.then(|| self.raw.limit())
    }

    #[inline]
    #[track_caller]
    fn check_satisfiable(&self, count: usize) {
        if count > self.raw.limit() {
            unsatisfiable(count, self.raw.limit(), self.bounded);
        }
    }

    /// Gives back the permits of a dropped guard. A bounded semaphore that
    /// was already refilled by manual `release`s keeps its bound: the
    /// surplus permits are discarded (the bound is a hard cap).
    #[inline]
    fn give_back(&self, count: usize) {
        self.raw.release_up_to_limit(count);
    }
}

#[cold]
#[track_caller]
fn unsatisfiable(count: usize, limit: usize, bounded: bool) -> ! {
    if bounded {
        panic!(
            "verisync: asked a bounded semaphore for {count} permits but it can never hold more \
             than {limit}; this wait could never end (ask for at most {limit})"
        )
    }
    panic!("verisync: asked for {count} permits, more than a semaphore can hold ({limit})")
}

#[cfg(verisync_loom)]
impl Semaphore {
    pub(crate) fn has_queued_waiters(&self) -> bool {
        self.raw.has_queued_waiters()
    }

    pub(crate) fn parked_waiters(&self) -> usize {
        self.raw.parked_waiters()
    }
}

impl Default for Semaphore {
    /// A semaphore with one permit, like Python's `Semaphore()`.
    fn default() -> Self {
        Self::new(1)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .field("bound", &self.bound())
            .finish()
    }
}

/// Permits taken from a [`Semaphore`]; given back when dropped.
///
/// ```
/// let s = verisync::Semaphore::new(2);
/// {
///     let _permit = s.acquire();
///     assert_eq!(s.available_permits(), 1);
/// }
/// assert_eq!(s.available_permits(), 2);
/// ```
#[must_use = "the permits are given back as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
    count: usize,
}

impl SemaphorePermit<'_> {
    /// How many permits this guard holds.
    ///
    /// ```
    /// let s = verisync::Semaphore::new(2);
    /// assert_eq!(s.acquire_many(2).count(), 2);
    /// ```
    pub fn count(&self) -> usize {
        self.count
    }

    /// Keeps the permits consumed: dropping nothing gives them back.
    ///
    /// ```
    /// let s = verisync::Semaphore::new(2);
    /// s.acquire().forget();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn forget(mut self) {
        self.count = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.count != 0 {
            self.semaphore.give_back(self.count);
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SemaphorePermit")
            .field("count", &self.count)
            .finish()
    }
}

/// Permits taken through an `Arc<Semaphore>`; `'static`, movable between
/// threads, given back when dropped.
///
/// ```
/// use std::sync::Arc;
/// let s = Arc::new(verisync::Semaphore::new(1));
/// let permit = Arc::clone(&s).acquire_owned();
/// assert_eq!(s.available_permits(), 0);
/// drop(permit);
/// assert_eq!(s.available_permits(), 1);
/// ```
#[must_use = "the permits are given back as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct OwnedSemaphorePermit {
    semaphore: Arc<Semaphore>,
    count: usize,
}

impl OwnedSemaphorePermit {
    /// How many permits this guard holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(verisync::Semaphore::new(1));
    /// assert_eq!(s.acquire_owned().count(), 1);
    /// ```
    pub fn count(&self) -> usize {
        self.count
    }

    /// The semaphore the permits came from.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(verisync::Semaphore::new(1));
    /// let permit = Arc::clone(&s).acquire_owned();
    /// assert!(Arc::ptr_eq(permit.semaphore(), &s));
    /// ```
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.semaphore
    }

    /// Keeps the permits consumed: dropping nothing gives them back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(verisync::Semaphore::new(1));
    /// Arc::clone(&s).acquire_owned().forget();
    /// assert_eq!(s.available_permits(), 0);
    /// ```
    pub fn forget(mut self) {
        self.count = 0;
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        if self.count != 0 {
            self.semaphore.give_back(self.count);
        }
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OwnedSemaphorePermit")
            .field("count", &self.count)
            .finish()
    }
}
