//! `process::Value<T>`: a plain-old-data value shared by processes, with
//! its own robust lock.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, Object, KIND_VALUE, LINE};
use super::error::{AcknowledgeOwnerDeath, OwnerDied, SharedError, TryLockError};
use super::lock::guard_result;
use super::robust::{RobustLock, Wait};
use crate::raw::process_lock::Acquired;

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
    robust: RobustLock,
    _value: PhantomData<fn() -> T>,
}

/// Where the value sits in its object: the second line.
const PAYLOAD_AT: usize = LINE;

impl<T: Pod> Value<T> {
    const SIZE: usize = PAYLOAD_AT + std::mem::size_of::<T>();

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
        const {
            assert!(
                std::mem::align_of::<T>() <= LINE,
                "process::Value: T is aligned to more than 64 bytes"
            )
        };
        let recorded = Self::recorded().ok_or(SharedError::ArenaFull {
            requested: Self::SIZE,
            capacity: arena::ARENA_LEN,
        })?;
        let object = arena::for_new_object()?.allocate(KIND_VALUE, Self::SIZE, recorded)?;
        let robust = RobustLock::new(object);
        // SAFETY: the payload lies inside the freshly allocated object's
        // extent, aligned (64-byte aligned, and T's alignment is at most
        // 64); no other process has the handle yet.
        unsafe { Self::payload(&object).write(value) };
        robust.reset();
        Ok(Self {
            robust,
            _value: PhantomData,
        })
    }

    fn payload(object: &Object) -> *mut T {
        object.bytes(PAYLOAD_AT).cast::<T>()
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
        match self.robust.acquire(Wait::Until(None)) {
            Some(acquired) => guard_result(ValueGuard::new(self, acquired), acquired),
            None => unreachable!("a wait without deadline ends holding the lock"),
        }
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
        self.acquire_or_not(Wait::Try)
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
        if timeout.is_zero() {
            return self.try_lock();
        }
        self.acquire_or_not(Wait::Until(crate::sys::time::deadline_after(timeout)))
    }

    fn acquire_or_not(
        &self,
        wait: Wait,
    ) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        match self.robust.acquire(wait) {
            Some(acquired) => guard_result(ValueGuard::new(self, acquired), acquired)
                .map_err(TryLockError::OwnerDied),
            None => Err(TryLockError::WouldBlock),
        }
    }

    /// Locks the value for one step, whether or not a holder died (the
    /// death stays reported to the next `lock()`).
    fn step(&self) -> ValueGuard<'_, T> {
        self.lock().unwrap_or_else(OwnerDied::into_unacknowledged)
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
        Self {
            robust: self.robust,
            _value: PhantomData,
        }
    }
}

impl<T: Pod> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("handle", &self.robust.object().handle())
            .finish()
    }
}

impl<T: Pod> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.robust.object().handle().serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not a value of this size in this process tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const {
            assert!(
                std::mem::align_of::<T>() <= LINE,
                "process::Value: T is aligned to more than 64 bytes"
            )
        };
        let handle = Handle::deserialize(deserializer)?;
        let recorded = Self::recorded()
            .ok_or_else(|| serde::de::Error::custom("process::Value: the type is too large"))?;
        let object = Object::open(handle, KIND_VALUE, Self::SIZE, recorded)
            .map_err(serde::de::Error::custom)?;
        Ok(Self {
            robust: RobustLock::new(object),
            _value: PhantomData,
        })
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
    value: &'a Value<T>,
    keep_owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: Pod> ValueGuard<'a, T> {
    fn new(value: &'a Value<T>, acquired: Acquired) -> Self {
        Self {
            value,
            keep_owner_died: acquired == Acquired::OwnerDied,
            _not_send: PhantomData,
        }
    }
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the payload is inside the object's checked extent and
        // aligned (see `new`); the arena lives for the process's life; this
        // guard holds the lock, so no cooperating process or thread writes
        // it now; and any bytes are a valid `T` (`Pod`), whatever a
        // scribbling process left there.
        unsafe { &*Value::payload(self.value.robust.object()) }
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as `deref`; the lock gives this guard exclusive access.
        unsafe { &mut *Value::payload(self.value.robust.object()) }
    }
}

impl<T: Pod> AcknowledgeOwnerDeath for ValueGuard<'_, T> {
    fn acknowledge_owner_death(&mut self) {
        self.keep_owner_died = false;
    }
}

impl<T: Pod> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        self.value.robust.release(self.keep_owner_died);
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}
