//! `process::Array<T>`: plain-old-data elements shared by processes, with
//! their own robust lock (`pod.rs`'s cells; the handle records the length).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, KIND_ARRAY};
use super::error::{open_failed, AcknowledgeOwnerDeath, OwnerDied, SharedError, TryLockError};
use super::pod::{PodCells, PodGuard};

/// A fixed-length array shared by processes — Python's
/// `multiprocessing.Array` — with one robust lock for all its elements:
/// `array.lock()` gives a guard that derefs to `[T]`, and [`OwnerDied`] if
/// a holder died (the elements may be half-updated).
///
/// `T` is plain old data ([`bytemuck::Pod`]), as for
/// [`Value`](super::Value). The length is fixed at creation, carried by
/// the handle and checked against the object when a handle is opened; so
/// is the element type: a handle opens only as an `Array` of its own `T`
/// (not of another type of the same size).
/// [`load`](Self::load), [`store`](Self::store) and
/// [`to_vec`](Self::to_vec) each take the lock for one step (and, like
/// `Value`'s, neither report nor acknowledge a dead holder); hold the
/// guard across a read-modify-write.
///
/// ```
/// verisync::process::init();
/// use verisync::process::Array;
///
/// fn add_up((totals, worker): (Array<u64>, usize)) {
///     for step in 0..100u64 {
///         let mut totals = totals.lock().unwrap_or_else(|owner_died| owner_died.into_guard());
///         totals[worker] += step;
///         totals[2] += 1;
///     }
/// }
///
/// let totals = Array::new(3, 0u64)?;
/// let children: Vec<_> = (0..2)
///     .map(|worker| verisync::process::spawn(add_up, (totals.clone(), worker)).unwrap())
///     .collect();
/// for child in children {
///     child.join().unwrap();
/// }
/// assert_eq!(totals.to_vec(), [4950, 4950, 200]);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
pub struct Array<T: Pod> {
    cells: PodCells<T>,
}

impl<T: Pod> Array<T> {
    /// The length as the header records it (`None` past `u32`).
    fn recorded(len: usize) -> Option<u32> {
        u32::try_from(len).ok()
    }

    /// The object's kind: arrays of different element sizes are different
    /// kinds, so a handle opens only as an array of its element size (and
    /// the element type itself is checked too: `pod.rs`).
    /// (`None` for elements of 16 MiB or more, which never fit the arena.)
    fn kind() -> Option<u32> {
        let size = u32::try_from(std::mem::size_of::<T>())
            .ok()
            .filter(|&size| size < 1 << 24)?;
        Some(KIND_ARRAY | size << 8)
    }

    /// A new array of `len` copies of `value` in the process tree's shared
    /// memory.
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](super::Lock::new); [`SharedError::ArenaFull`] if
    /// the array does not fit.
    ///
    /// ```
    /// verisync::process::init();
    /// let a = verisync::process::Array::new(4, 7u8)?;
    /// assert_eq!(a.to_vec(), [7; 4]);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn new(len: usize, value: T) -> Result<Self, SharedError> {
        Self::create(len, |payload| {
            for index in 0..len {
                // SAFETY: `payload` is the new object's first element, and
                // its `len` elements are inside its extent, aligned
                // (`PodCells::create`); `T: Pod`: a plain copy.
                unsafe { payload.add(index).write(value) };
            }
        })
    }

    /// A new array holding a copy of `values`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// ```
    /// verisync::process::init();
    /// let a = verisync::process::Array::from_slice(&[1i32, 2, 3])?;
    /// assert_eq!(a.len(), 3);
    /// assert_eq!(a.load(1), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<Self, SharedError> {
        Self::create(values.len(), |payload| {
            // SAFETY: as in `new`: `values.len()` elements fit the new
            // object's payload, which no slice of this process overlaps.
            unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), payload, values.len()) };
        })
    }

    fn create(len: usize, init: impl FnOnce(*mut T)) -> Result<Self, SharedError> {
        let recorded = Self::recorded(len).ok_or(SharedError::ArenaFull {
            requested: len.saturating_mul(std::mem::size_of::<T>()),
            capacity: arena::ARENA_LEN,
        })?;
        let kind = Self::kind().ok_or(SharedError::ArenaFull {
            requested: std::mem::size_of::<T>(),
            capacity: arena::ARENA_LEN,
        })?;
        let cells = PodCells::create(kind, len, recorded, init)?;
        Ok(Self { cells })
    }

    /// How many elements it has.
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::Array::new(5, 0u16)?.len(), 5);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether it has no elements.
    ///
    /// ```
    /// verisync::process::init();
    /// assert!(verisync::process::Array::<u8>::from_slice(&[])?.is_empty());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Locks the array, waiting as long as a live process holds it.
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
    /// let a = verisync::process::Array::new(2, 0u32)?;
    /// a.lock().unwrap().copy_from_slice(&[3, 4]);
    /// assert_eq!(a.to_vec(), [3, 4]);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, OwnerDied<ArrayGuard<'_, T>>> {
        self.cells.lock_wrapped(ArrayGuard::new)
    }

    /// Locks the array if no live process holds it now.
    ///
    /// # Errors
    ///
    /// As [`Lock::try_lock`](super::Lock::try_lock).
    ///
    /// ```
    /// verisync::process::init();
    /// let a = verisync::process::Array::new(2, 1u32)?;
    /// assert_eq!(a.try_lock().unwrap().iter().sum::<u32>(), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        self.cells.try_lock_wrapped(None, ArrayGuard::new)
    }

    /// Locks the array, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Lock::lock_timeout`](super::Lock::lock_timeout).
    ///
    /// ```
    /// verisync::process::init();
    /// let a = verisync::process::Array::new(1, 9u8)?;
    /// let guard = a.lock_timeout(std::time::Duration::from_secs(1)).unwrap();
    /// assert_eq!(guard[0], 9);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        self.cells.try_lock_wrapped(Some(timeout), ArrayGuard::new)
    }

    /// Element `index` (locking for the copy).
    ///
    /// # Panics
    ///
    /// If `index` is out of bounds (as slice indexing).
    ///
    /// ```
    /// verisync::process::init();
    /// let a = verisync::process::Array::from_slice(&[5u8, 6])?;
    /// assert_eq!(a.load(1), 6);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn load(&self, index: usize) -> T {
        self.cells.step()[index]
    }

    /// Replaces element `index` (locking for the write).
    ///
    /// # Panics
    ///
    /// If `index` is out of bounds (as slice indexing).
    ///
    /// ```
    /// verisync::process::init();
    /// let a = verisync::process::Array::new(2, 0i64)?;
    /// a.store(0, -1);
    /// assert_eq!(a.to_vec(), [-1, 0]);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn store(&self, index: usize, value: T) {
        self.cells.step()[index] = value;
    }

    /// A copy of every element (locking once).
    ///
    /// ```
    /// verisync::process::init();
    /// let a = verisync::process::Array::from_slice(&[1u32, 2])?;
    /// assert_eq!(a.to_vec(), vec![1, 2]);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.cells.step().to_vec()
    }
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Self { cells: self.cells }
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("handle", &self.cells.object().handle())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Pod> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.cells.object().handle().serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not an array of this element type and length in this process tree
    /// (the length it carries must fit the arena and match the object).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(deserializer)?;
        let recorded = handle.recorded();
        let kind = Self::kind()
            .ok_or_else(|| open_failed("process::Array: the element type is too large"))?;
        let cells =
            PodCells::open(handle, kind, recorded as usize, recorded).map_err(open_failed)?;
        Ok(Self { cells })
    }
}

/// Holds an [`Array`]'s lock and derefs to its elements; unlocks when
/// dropped. Not `Send`.
///
/// ```
/// verisync::process::init();
/// let a = verisync::process::Array::new(3, 1u32)?;
/// {
///     let mut guard = a.lock().unwrap();
///     guard.iter_mut().for_each(|element| *element *= 2);
/// }
/// assert_eq!(a.to_vec(), [2, 2, 2]);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct ArrayGuard<'a, T: Pod> {
    guard: PodGuard<'a, T>,
}

impl<'a, T: Pod> ArrayGuard<'a, T> {
    fn new(guard: PodGuard<'a, T>) -> Self {
        Self { guard }
    }
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.guard
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.guard
    }
}

impl<T: Pod> AcknowledgeOwnerDeath for ArrayGuard<'_, T> {
    fn acknowledge_owner_death(&mut self) {
        self.guard.acknowledge_owner_death();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}
