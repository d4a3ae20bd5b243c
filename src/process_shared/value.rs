//! `process::Value<T>`: a plain-old-data value shared by processes, with
//! its own robust lock (one element of `pod.rs`'s cells).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, KIND_VALUE};
use super::error::{open_failed, AcknowledgeOwnerDeath, OwnerDied, SharedError, TryLockError};
use super::pod::{PodCells, PodGuard};

/// A value shared by processes — Python's `multiprocessing.Value` — with
/// its own robust lock: `value.lock()` gives a guard that derefs to `T`,
/// and [`OwnerDied`] if a holder died (the value may be half-updated).
///
/// `T` is plain old data ([`bytemuck::Pod`]): any bytes are a valid `T`, so
/// whatever another process leaves in the shared memory can be read
/// safely. A type that is not `Pod` does not compile; nor does one aligned
/// to more than 64 bytes.
///
/// [`load`](Self::load), [`store`](Self::store) and
/// [`fetch_add`](Self::fetch_add) each take the lock for one step. Two
/// steps (a `load` then a `store`) are two lockings: another process may
/// update the value in between (a lost update); hold the guard across a
/// read-modify-write, or use `fetch_add`. These one-step operations do not
/// report a dead holder (each leaves the value consistent by itself) and do
/// not acknowledge one either: the next `lock()` is still told.
///
/// ```
/// verisync::process::init();
/// use verisync::process::Value;
///
/// fn count(hits: Value<u64>) {
///     for _ in 0..100 {
///         let mut hits = hits.lock().unwrap_or_else(|owner_died| owner_died.into_guard());
///         *hits += 1;
///     }
/// }
///
/// let hits = Value::new(0u64)?;
/// let children: Vec<_> = (0..2)
///     .map(|_| verisync::process::spawn(count, hits.clone()).unwrap())
///     .collect();
/// for child in children {
///     child.join().unwrap();
/// }
/// assert_eq!(hits.load(), 200);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
pub struct Value<T: Pod> {
    cells: PodCells<T>,
}

impl<T: Pod> Value<T> {
    /// `size_of::<T>()`, recorded in the object's header and checked when
    /// a handle is opened (`None` if it does not fit a `u32`).
    fn recorded() -> Option<u32> {
        u32::try_from(std::mem::size_of::<T>()).ok()
    }

    /// A new value in the process tree's shared memory.
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](super::Lock::new).
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(0u64)?;
    /// assert_eq!(hits.load(), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn new(value: T) -> Result<Self, SharedError> {
        let recorded = Self::recorded().ok_or(SharedError::ArenaFull {
            requested: std::mem::size_of::<T>(),
            capacity: arena::ARENA_LEN,
        })?;
        let cells = PodCells::create(KIND_VALUE, 1, recorded, |payload: *mut T| {
            // SAFETY: `payload` is the new object's one element, inside
            // its extent and aligned (`PodCells::create`); `T: Pod`: a
            // plain copy, no user code.
            unsafe { payload.write(value) }
        })?;
        Ok(Self { cells })
    }

    /// Locks the value, waiting as long as a live process holds it.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (holding the guard) if a holder died holding it.
    ///
    /// # Panics
    ///
    /// If this thread holds it already.
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(1u32)?;
    /// *hits.lock().unwrap() += 1;
    /// assert_eq!(hits.load(), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, OwnerDied<ValueGuard<'_, T>>> {
        self.cells.lock_wrapped(ValueGuard::new)
    }

    /// Locks the value if no live process holds it now.
    ///
    /// # Errors
    ///
    /// As [`Lock::try_lock`](super::Lock::try_lock).
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(1u32)?;
    /// assert_eq!(*hits.try_lock().unwrap(), 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        self.cells.try_lock_wrapped(None, ValueGuard::new)
    }

    /// Locks the value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Lock::lock_timeout`](super::Lock::lock_timeout).
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(1u32)?;
    /// let guard = hits.lock_timeout(std::time::Duration::from_secs(1)).unwrap();
    /// assert_eq!(*guard, 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        self.cells.try_lock_wrapped(Some(timeout), ValueGuard::new)
    }

    /// Locks the value for one step, whether or not a holder died (the
    /// death stays reported to the next `lock()`).
    fn step(&self) -> ValueGuard<'_, T> {
        ValueGuard::new(self.cells.step())
    }

    /// The value (locking for the copy).
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(5i32)?;
    /// assert_eq!(hits.load(), 5);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn load(&self) -> T {
        *self.step()
    }

    /// Replaces the value (locking for the write).
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(5i32)?;
    /// hits.store(6);
    /// assert_eq!(hits.load(), 6);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn store(&self, value: T) {
        *self.step() = value;
    }
}

impl<T: ValueInteger> Value<T> {
    /// Adds `delta` (wrapping on overflow) in one locked step; returns the
    /// previous value.
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(u8::MAX)?;
    /// assert_eq!(hits.fetch_add(2), u8::MAX);
    /// assert_eq!(hits.load(), 1);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn fetch_add(&self, delta: T) -> T {
        let mut guard = self.step();
        let previous = *guard;
        *guard = previous.wrapping_add(delta);
        previous
    }
}

/// The integer types [`Value::fetch_add`] works on. Sealed.
///
/// ```
/// verisync::process::init();
/// fn bump<T: verisync::process::ValueInteger>(value: &verisync::process::Value<T>, by: T) -> T {
///     value.fetch_add(by)
/// }
/// let hits = verisync::process::Value::new(1i64)?;
/// assert_eq!(bump(&hits, -2), 1);
/// assert_eq!(hits.load(), -1);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
pub trait ValueInteger: Pod + sealed::Sealed {
    /// `self + rhs`, wrapping around on overflow.
    fn wrapping_add(self, rhs: Self) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! value_integer {
    ($($integer:ty),*) => {$(
        impl sealed::Sealed for $integer {}
        impl ValueInteger for $integer {
            #[inline]
            fn wrapping_add(self, rhs: Self) -> Self {
                <$integer>::wrapping_add(self, rhs)
            }
        }
    )*};
}

value_integer!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Self { cells: self.cells }
    }
}

impl<T: Pod> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("handle", &self.cells.object().handle())
            .finish()
    }
}

impl<T: Pod> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.cells.object().handle().serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not a value of this type `T` in this process tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(deserializer)?;
        let recorded =
            Self::recorded().ok_or_else(|| open_failed("process::Value: the type is too large"))?;
        let cells = PodCells::open(handle, KIND_VALUE, 1, recorded).map_err(open_failed)?;
        Ok(Self { cells })
    }
}

/// Holds a [`Value`]'s lock and derefs to the value; unlocks when dropped.
///
/// ```
/// verisync::process::init();
/// let scores = verisync::process::Value::new([0u32; 4])?;
/// scores.lock().unwrap()[2] = 7;
/// assert_eq!(scores.load(), [0, 0, 7, 0]);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct ValueGuard<'a, T: Pod> {
    guard: PodGuard<'a, T>,
}

impl<'a, T: Pod> ValueGuard<'a, T> {
    fn new(guard: PodGuard<'a, T>) -> Self {
        Self { guard }
    }
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard[0]
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard[0]
    }
}

impl<T: Pod> AcknowledgeOwnerDeath for ValueGuard<'_, T> {
    fn acknowledge_owner_death(&mut self) {
        self.guard.acknowledge_owner_death();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}
