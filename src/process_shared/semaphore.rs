//! `process::Semaphore`: a counting semaphore for processes, whose permits
//! come back when a process dies holding them. The state machine is in
//! `raw/process_semaphore.rs`.
//!
//! # Layout in the arena
//!
//! ```text
//!  0    object header                                       (16 bytes)
//!  16   state lock word (robust.rs)                         (4 bytes)
//!  20   counts: wake, total, available                      (12 bytes)
//!  64   holdings: one per process-table slot, SLOTS × (holder, count)
//! ```
//!
//! 8 KiB and a line per semaphore. The header records the bound and
//! whether the semaphore is bounded (`limit | BOUNDED`), and so does the
//! handle: an opener knows the bound from its own memory from then on.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, Object, KIND_SEMAPHORE, LINE, NO_ELEMENT};
use super::error::{open_failed, SharedError};
use super::robust::{RobustLock, Wait};
use super::table::SLOTS;
use crate::raw::process_semaphore::{Counts, Holding, RawProcessSemaphore, MAX_PERMITS};
use crate::sys::time::deadline_after;
use crate::TooManyReleases;

/// Where the counts sit in the object (after the state lock word).
const COUNTS_AT: usize = 20;
/// Where the holdings start: the second line.
const HOLDINGS_AT: usize = LINE;
/// The object's extent.
const SEMAPHORE_SIZE: usize = HOLDINGS_AT + SLOTS * std::mem::size_of::<Holding>();
/// In the recorded parameter: the semaphore is bounded.
const BOUNDED: u32 = 1 << 31;

/// A counting semaphore shared by processes — Python's
/// `multiprocessing.Semaphore`, and with [`Semaphore::bounded`] its
/// `BoundedSemaphore` — except that **the permits a process holds come
/// back when it dies**, instead of being lost for good.
///
/// Create it before starting the processes that use it and pass it to them
/// as a task argument; clones name the same semaphore. The methods are the
/// thread [`Semaphore`](crate::Semaphore)'s, with these differences:
///
/// - **Dead holders.** Every process's permits are counted in the
///   semaphore's shared memory under its process-table identity. A waiter
///   that finds too few permits looks for holders that died, and takes
///   their permits back; a waiter wakes at least every 10 ms to look again,
///   so a dead holder's permits return within about that.
///   [`available_permits`](Self::available_permits) looks too. There is
///   no limit on how many processes hold permits at once beyond the
///   process tree's (1024 processes).
/// - Permits belong to the *process*: a [`SemaphorePermit`] forgotten with
///   `mem::forget` (or held by a thread that exited without dropping it)
///   stays held until its process exits. [`SemaphorePermit::forget`] keeps
///   permits consumed even after the process exits.
/// - No arrival order: a release wakes every waiter, and they compete.
/// - The try forms do not wait for permits, but do wait (at most 100 ms)
///   for the semaphore's internal lock, which whoever updates the counts
///   holds for a few instructions.
/// - At most [`Semaphore::MAX_PERMITS`] permits in all, held or available.
/// - A process that writes garbage over the semaphore's shared memory can
///   make the counts wrong for a while, never unsafe, never a hang past a
///   deadline. A bounded semaphore gets all its permits back once the
///   writing stops (the bound is known from each process's handle); on an
///   unbounded one, the count of permits that exist is only in the shared
///   memory, so garbage written there can change it for good.
///
/// ```
/// verisync::process::init();
/// use verisync::process::Semaphore;
///
/// fn park(spaces: Semaphore) -> usize {
///     let _space = spaces.acquire();
///     spaces.available_permits()
/// }
///
/// let spaces = Semaphore::new(2)?;
/// let cars: Vec<_> = (0..3)
///     .map(|_| verisync::process::spawn(park, spaces.clone()).unwrap())
///     .collect();
/// for car in cars {
///     assert!(car.join().unwrap() <= 1);
/// }
/// assert_eq!(spaces.available_permits(), 2);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    robust: RobustLock,
    /// The most permits available at once (the bound, or `MAX_PERMITS`).
    limit: u32,
    bounded: bool,
}

impl Semaphore {
    /// The most permits a process-shared semaphore has in all, held and
    /// available together.
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(verisync::process::Semaphore::MAX_PERMITS)?;
    /// assert!(s.release(1).is_err());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub const MAX_PERMITS: usize = MAX_PERMITS as usize;

    /// A semaphore with `permits` available, in the process tree's shared
    /// memory. [`release`](Self::release) may raise the count above
    /// `permits` (up to [`Semaphore::MAX_PERMITS`]).
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](super::Lock::new).
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(2)?;
    /// assert_eq!(s.available_permits(), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn new(permits: usize) -> Result<Self, SharedError> {
        Self::create(permits, MAX_PERMITS, false)
    }

    /// A semaphore whose count can never exceed `permits` — Python's
    /// `BoundedSemaphore`: releasing more than was acquired is an error.
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](super::Lock::new).
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::bounded(1)?;
    /// drop(s.acquire());
    /// assert!(s.release(1).is_err()); // the count would exceed 1
    /// assert_eq!(s.available_permits(), 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn bounded(permits: usize) -> Result<Self, SharedError> {
        let limit = u32::try_from(permits).unwrap_or(u32::MAX);
        Self::create(permits, limit, true)
    }

    fn create(permits: usize, limit: u32, bounded: bool) -> Result<Self, SharedError> {
        let start = u32::try_from(permits)
            .ok()
            .filter(|&permits| permits <= MAX_PERMITS);
        let Some(start) = start else {
            too_many_permits(permits);
        };
        let recorded = limit | if bounded { BOUNDED } else { 0 };
        let object = arena::for_new_object()?.allocate(
            KIND_SEMAPHORE,
            NO_ELEMENT,
            SEMAPHORE_SIZE,
            recorded,
            |object| {
                counts(object).reset(start);
                holdings(object).iter().for_each(Holding::reset);
                RobustLock::reset(object);
            },
        )?;
        Ok(Self {
            robust: RobustLock::new(object),
            limit,
            bounded,
        })
    }

    fn raw(&self) -> RawProcessSemaphore<'static> {
        let object = self.robust.object();
        let (counts, holdings) = (counts(object), holdings(object));
        if self.bounded {
            RawProcessSemaphore::bounded(counts, holdings, self.limit)
        } else {
            RawProcessSemaphore::new(counts, holdings, self.limit)
        }
    }

    /// Takes one permit, waiting for it (and taking back the permits of
    /// holders that died).
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(1)?;
    /// let permit = s.acquire();
    /// assert_eq!(s.available_permits(), 0);
    /// drop(permit);
    /// assert_eq!(s.available_permits(), 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `count` permits at once, waiting until all are free.
    ///
    /// # Panics
    ///
    /// If `count` exceeds the bound of a bounded semaphore (the call could
    /// never succeed) or [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(5)?;
    /// let three = s.acquire_many(3);
    /// assert_eq!(three.count(), 3);
    /// assert_eq!(s.available_permits(), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn acquire_many(&self, count: usize) -> SemaphorePermit<'_> {
        let count = self.satisfiable(count);
        let acquired = self.raw().acquire(count, Wait::Until(None), &self.robust);
        assert!(acquired, "a wait without deadline ends holding the permits");
        self.permit(count)
    }

    /// Takes one permit if one is free now.
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(1)?;
    /// let first = s.try_acquire();
    /// assert!(first.is_some());
    /// assert!(s.try_acquire().is_none());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `count` permits if they are free now. A count the semaphore
    /// could never hold (more than its bound) simply fails, as with the
    /// thread [`Semaphore`](crate::Semaphore).
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(2)?;
    /// assert!(s.try_acquire_many(3).is_none());
    /// assert!(s.try_acquire_many(2).is_some());
    /// assert!(verisync::process::Semaphore::bounded(0)?.try_acquire().is_none());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_acquire_many(&self, count: usize) -> Option<SemaphorePermit<'_>> {
        let count = u32::try_from(count)
            .ok()
            .filter(|&count| count <= self.limit)?;
        self.raw()
            .acquire(count, Wait::Try, &self.robust)
            .then(|| self.permit(count))
    }

    /// Waits at most `timeout` for one permit. A zero timeout tries once;
    /// `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(0)?;
    /// assert!(s.try_acquire_for(Duration::from_millis(5)).is_none());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
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
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(4)?;
    /// assert!(s.try_acquire_many_for(4, Duration::from_millis(5)).is_some());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_acquire_many_for(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Option<SemaphorePermit<'_>> {
        if timeout.is_zero() {
            // Checked first: an unsatisfiable count panics here, as in
            // every form that may wait.
            self.satisfiable(count);
            return self.try_acquire_many(count);
        }
        self.acquire_until(count, deadline_after(timeout))
    }

    /// Waits until `deadline` for one permit.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(1)?;
    /// assert!(s.try_acquire_until(Instant::now() + Duration::from_millis(5)).is_some());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_acquire_until(&self, deadline: Instant) -> Option<SemaphorePermit<'_>> {
        self.acquire_until(1, Some(deadline))
    }

    /// Waits until `deadline` for `count` permits.
    ///
    /// # Panics
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(1)?;
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(s.try_acquire_many_until(2, deadline).is_none());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_acquire_many_until(
        &self,
        count: usize,
        deadline: Instant,
    ) -> Option<SemaphorePermit<'_>> {
        self.acquire_until(count, Some(deadline))
    }

    fn acquire_until(
        &self,
        count: usize,
        deadline: Option<Instant>,
    ) -> Option<SemaphorePermit<'_>> {
        let count = self.satisfiable(count);
        self.raw()
            .acquire(count, Wait::Until(deadline), &self.robust)
            .then(|| self.permit(count))
    }

    /// Adds `count` permits (nobody's: Python's `release`), waking the
    /// waiters. A permit acquired in one process and released by another:
    /// [`forget`](SemaphorePermit::forget) it in the first, `release` it in
    /// the second.
    ///
    /// # Errors
    ///
    /// [`TooManyReleases`] (changing nothing) if the count would exceed the
    /// bound of a bounded semaphore, or the permits in all would exceed
    /// [`Semaphore::MAX_PERMITS`] — Python's `ValueError`.
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(0)?;
    /// s.release(2).unwrap();
    /// assert_eq!(s.available_permits(), 2);
    ///
    /// let b = verisync::process::Semaphore::bounded(2)?;
    /// let error = b.release(1).unwrap_err();
    /// println!("{error}");
    /// assert_eq!(b.available_permits(), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn release(&self, count: usize) -> Result<(), TooManyReleases> {
        let Ok(count) = u32::try_from(count) else {
            return Err(TooManyReleases {
                released: count,
                available: self.raw().available_now() as usize,
                limit: self.limit as usize,
            });
        };
        self.raw().release(count, &self.robust)
    }

    /// Permits available right now (a snapshot), after taking back the
    /// permits of holders that died.
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::Semaphore::new(3)?.available_permits(), 3);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn available_permits(&self) -> usize {
        self.raw().available(&self.robust) as usize
    }

    /// The bound of a [`bounded`](Self::bounded) semaphore; `None` if
    /// unbounded.
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::Semaphore::bounded(4)?.bound(), Some(4));
    /// assert_eq!(verisync::process::Semaphore::new(4)?.bound(), None);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn bound(&self) -> Option<usize> {
        self.bounded.then_some(self.limit as usize)
    }

    /// `count` as the state machine takes it.
    ///
    /// # Panics
    ///
    /// If it could never be satisfied.
    #[track_caller]
    fn satisfiable(&self, count: usize) -> u32 {
        match u32::try_from(count) {
            Ok(count) if count <= self.limit => count,
            _ => unsatisfiable(count, self.limit, self.bounded),
        }
    }

    fn permit(&self, count: u32) -> SemaphorePermit<'_> {
        SemaphorePermit {
            semaphore: self,
            count,
        }
    }
}

#[cold]
#[track_caller]
fn too_many_permits(permits: usize) -> ! {
    panic!(
        "verisync: a process-shared semaphore holds at most {MAX_PERMITS} permits (asked for \
         {permits})"
    )
}

#[cold]
#[track_caller]
fn unsatisfiable(count: usize, limit: u32, bounded: bool) -> ! {
    if bounded {
        panic!(
            "verisync: asked a bounded semaphore for {count} permits but it can never hold more \
             than {limit}; this wait could never end (ask for at most {limit})"
        )
    }
    panic!("verisync: asked for {count} permits, more than a semaphore can hold ({limit})")
}

/// The counts of the semaphore `object`.
fn counts(object: &Object) -> &'static Counts {
    // SAFETY: `COUNTS_AT..COUNTS_AT + 12` lies inside the object's checked
    // extent (`SEMAPHORE_SIZE`), 4-aligned (the object is 64-aligned);
    // `Counts` is `repr(C)` atomics only, valid for any bytes; the arena
    // lives for the process's life.
    unsafe { &*object.bytes(COUNTS_AT).cast::<Counts>() }
}

/// The holdings of the semaphore `object`, one per process-table slot.
fn holdings(object: &Object) -> &'static [Holding] {
    // SAFETY: `HOLDINGS_AT..SEMAPHORE_SIZE` (SLOTS holdings) lies inside
    // the object's checked extent, 64-aligned; `Holding` is `repr(C)`
    // atomics only, valid for any bytes; the arena lives for the process's
    // life.
    unsafe { std::slice::from_raw_parts(object.bytes(HOLDINGS_AT).cast::<Holding>(), SLOTS) }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("handle", &self.robust.object().handle())
            .field("available_permits", &self.raw().available_now())
            .field("bound", &self.bound())
            .finish()
    }
}

impl Serialize for Semaphore {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.robust.object().handle().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Semaphore {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not a semaphore of this process tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(deserializer)?;
        let recorded = handle.recorded();
        let (limit, bounded) = (recorded & !BOUNDED, recorded & BOUNDED != 0);
        if limit > MAX_PERMITS || (!bounded && limit != MAX_PERMITS) {
            return Err(open_failed(SharedError::InvalidHandle(format!(
                "a semaphore's bound is {limit}, more than {MAX_PERMITS}"
            ))));
        }
        let object = Object::open(handle, KIND_SEMAPHORE, NO_ELEMENT, SEMAPHORE_SIZE, recorded)
            .map_err(open_failed)?;
        Ok(Self {
            robust: RobustLock::new(object),
            limit,
            bounded,
        })
    }
}

/// Permits taken from a [`Semaphore`]; given back when dropped. `Send`:
/// the permits are the process's, so any of its threads may give them
/// back.
///
/// ```
/// verisync::process::init();
/// let s = verisync::process::Semaphore::new(2)?;
/// {
///     let _permit = s.acquire();
///     assert_eq!(s.available_permits(), 1);
/// }
/// assert_eq!(s.available_permits(), 2);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[must_use = "the permits are given back as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
    count: u32,
}

impl SemaphorePermit<'_> {
    /// How many permits this guard holds.
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(2)?;
    /// assert_eq!(s.acquire_many(2).count(), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Keeps the permits consumed, even after this process exits: dropping
    /// nothing gives them back, and they no longer count as this
    /// process's.
    ///
    /// On a [`bounded`](Semaphore::bounded) semaphore, forgotten permits
    /// (not [`release`](Semaphore::release)d since) come back if its shared
    /// state is ever repaired — after a process died in the middle of
    /// updating it, or another process wrote garbage over it: the bound,
    /// which each process knows from its own handle, is then the truth.
    ///
    /// ```
    /// verisync::process::init();
    /// let s = verisync::process::Semaphore::new(2)?;
    /// s.acquire().forget();
    /// assert_eq!(s.available_permits(), 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn forget(mut self) {
        let count = std::mem::take(&mut self.count);
        self.semaphore.raw().forget(count, &self.semaphore.robust);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.count != 0 {
            self.semaphore
                .raw()
                .give_back(self.count, &self.semaphore.robust);
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("count", &self.count)
            .finish()
    }
}
