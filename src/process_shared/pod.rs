//! Plain-old-data in shared memory under a robust lock: what `Value<T>`
//! (one `T`) and `Array<T>` (`len` of them) are made of.
//!
//! # Layout
//!
//! ```text
//!  0    object header                  (16 bytes)
//!  16   lock word (robust.rs)          (4 bytes)
//!  64   payload: len × T               (T aligned to at most 64)
//! ```
//!
//! The length comes from the creator, or (opening a handle) from the
//! handle's `recorded` field checked against the object's header and the
//! arena's bounds (`Object::open`); from then on it lives in this process's
//! memory, so no shared byte can change the extent a guard derefs to.

use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytemuck::Pod;

use super::arena::{self, Handle, Object, LINE};
use super::error::{OwnerDied, SharedError, TryLockError};
use super::lock::guard_result;
use super::robust::{RobustLock, Wait};
use crate::raw::process_lock::Acquired;

/// Where the payload sits in its object: the second line.
const PAYLOAD_AT: usize = LINE;

/// The identity of the element type `T`, recorded in the object's header
/// and checked when a handle is opened (`arena.rs`), so that a handle opens
/// only as its own element type: an `Array<u32>` never as an `Array<f32>`
/// or an `Array<[u8; 4]>`, whose sizes match.
///
/// It is a hash of `T`'s `TypeId`: the
/// processes that share the arena all run the same executable (children
/// are started from it by `process::spawn` and the pools), and within one
/// executable a type's `TypeId` is fixed and unique to it, where
/// `type_name` is only best-effort (two types may share a name, and the
/// name leaves out lifetimes and may vary with the compiler) — both are
/// meaningless across different builds, which never share an arena. The
/// hasher is `DefaultHasher::new()`, whose keys are fixed (not random per
/// process), so every process computes the same value. 32 bits: two types
/// of one program collide with odds of one in four billion, and a
/// collision only lets a handle open as another type of the same size
/// (checked apart from this), whose bytes are valid for it too (`Pod`).
/// Never [`NO_ELEMENT`](arena::NO_ELEMENT).
pub(crate) fn element_identity<T: ?Sized + 'static>() -> u32 {
    let mut hasher = std::hash::DefaultHasher::new();
    std::any::TypeId::of::<T>().hash(&mut hasher);
    let hash = hasher.finish();
    (hash ^ hash >> 32) as u32 | 1
}

/// `len` elements of `T` in one arena object, with its robust lock.
pub(crate) struct PodCells<T: Pod> {
    robust: RobustLock,
    len: usize,
    _elements: PhantomData<fn() -> T>,
}

impl<T: Pod> Clone for PodCells<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Pod> Copy for PodCells<T> {}

impl<T: Pod> PodCells<T> {
    const ALIGNED: () = assert!(
        std::mem::align_of::<T>() <= LINE,
        "process::Value/Array: T is aligned to more than 64 bytes"
    );

    /// The object's extent for `len` elements, if it fits the arena at all.
    fn size(len: usize) -> Option<usize> {
        let size = len
            .checked_mul(std::mem::size_of::<T>())?
            .checked_add(PAYLOAD_AT)?;
        (size <= arena::ARENA_LEN).then_some(size)
    }

    /// New cells of `kind`, `len` elements, written by `init` (given the
    /// payload's first element; it must write all `len`, and run no user
    /// code: `T: Pod` copies only). `recorded` goes into the header.
    pub(crate) fn create(
        kind: u32,
        len: usize,
        recorded: u32,
        init: impl FnOnce(*mut T),
    ) -> Result<Self, SharedError> {
        let () = Self::ALIGNED;
        let full = || SharedError::ArenaFull {
            requested: len.saturating_mul(std::mem::size_of::<T>()),
            capacity: arena::ARENA_LEN,
        };
        let size = Self::size(len).ok_or_else(full)?;
        let element = element_identity::<T>();
        let object =
            arena::for_new_object()?.allocate(kind, element, size, recorded, |object| {
                init(Self::payload(object));
                RobustLock::reset(object);
            })?;
        Ok(Self {
            robust: RobustLock::new(object),
            len,
            _elements: PhantomData,
        })
    }

    /// Opens `handle` as cells of `kind` with `len` elements and `recorded`
    /// in the header (both from the handle, checked here and by
    /// `Object::open`).
    pub(crate) fn open(
        handle: Handle,
        kind: u32,
        len: usize,
        recorded: u32,
    ) -> Result<Self, SharedError> {
        let () = Self::ALIGNED;
        let size = Self::size(len).ok_or_else(|| {
            SharedError::InvalidHandle(format!("{len} elements do not fit the shared memory"))
        })?;
        let object = Object::open(handle, kind, element_identity::<T>(), size, recorded)?;
        Ok(Self {
            robust: RobustLock::new(object),
            len,
            _elements: PhantomData,
        })
    }

    fn payload(object: &Object) -> *mut T {
        object.bytes(PAYLOAD_AT).cast::<T>()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn object(&self) -> &Object {
        self.robust.object()
    }

    /// Locks the cells (as `wait` says) and wraps the guard: `None` if it
    /// did not lock, `Err(OwnerDied)` if a holder died.
    pub(crate) fn lock_as<'a, G>(
        &'a self,
        wait: Wait,
        wrap: impl FnOnce(PodGuard<'a, T>) -> G,
    ) -> Option<Result<G, OwnerDied<G>>> {
        let acquired = self.robust.acquire(wait)?;
        let guard = PodGuard {
            cells: self,
            keep_owner_died: acquired == Acquired::OwnerDied,
            _not_send: PhantomData,
        };
        Some(guard_result(wrap(guard), acquired))
    }

    /// Locks the cells, waiting as long as it takes, and wraps the guard
    /// (`lock()` of `Value` and `Array`).
    pub(crate) fn lock_wrapped<'a, G>(
        &'a self,
        wrap: impl FnOnce(PodGuard<'a, T>) -> G,
    ) -> Result<G, OwnerDied<G>> {
        match self.lock_as(Wait::Until(None), wrap) {
            Some(guarded) => guarded,
            None => unreachable!("a wait without deadline ends holding the lock"),
        }
    }

    /// Locks the cells if no live process holds them within `timeout`
    /// (`None`: not at all, the `try_lock` form), and wraps the guard.
    pub(crate) fn try_lock_wrapped<'a, G>(
        &'a self,
        timeout: Option<Duration>,
        wrap: impl FnOnce(PodGuard<'a, T>) -> G,
    ) -> Result<G, TryLockError<G>> {
        let wait = match timeout {
            Some(timeout) if !timeout.is_zero() => {
                Wait::Until(crate::sys::time::deadline_after(timeout))
            }
            _ => Wait::Try,
        };
        match self.lock_as(wait, wrap) {
            Some(guarded) => guarded.map_err(TryLockError::OwnerDied),
            None => Err(TryLockError::WouldBlock),
        }
    }

    /// Locks for one step, whether or not a holder died (the death stays
    /// reported to the next `lock()`).
    pub(crate) fn step(&self) -> PodGuard<'_, T> {
        match self.lock_as(Wait::Until(None), |guard| guard) {
            Some(guarded) => guarded.unwrap_or_else(OwnerDied::into_unacknowledged),
            None => unreachable!("a wait without deadline ends holding the lock"),
        }
    }
}

/// Holds the cells' lock and derefs to the elements; unlocks when dropped.
/// Not `Send`: it is unlocked by the thread that locked it.
pub(crate) struct PodGuard<'a, T: Pod> {
    cells: &'a PodCells<T>,
    /// The locker was told a holder died and has not acknowledged it.
    keep_owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> PodGuard<'_, T> {
    /// From now on, dropping it clears the "owner died" mark.
    pub(crate) fn acknowledge_owner_death(&mut self) {
        self.keep_owner_died = false;
    }
}

impl<T: Pod> Deref for PodGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the payload (`len` elements) is inside the object's
        // checked extent and aligned (the object is 64-byte aligned, and
        // T's alignment is at most 64); `len` is this process's own copy,
        // not a shared byte; the arena lives for the process's life; this
        // guard holds the object's in-process lock, so no other guard of it
        // exists in this process (`robust.rs`), and no other object this
        // process uses overlaps it (`known.rs`); it holds the shared word,
        // so no cooperating process writes it now (one that ignores the
        // lock is the limit the module docs of `process_shared` describe);
        // and any bytes are a valid `T` (`Pod`), whatever another process
        // left there.
        unsafe {
            std::slice::from_raw_parts(PodCells::<T>::payload(self.cells.object()), self.cells.len)
        }
    }
}

impl<T: Pod> DerefMut for PodGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as `deref`; the lock gives this guard exclusive access.
        unsafe {
            std::slice::from_raw_parts_mut(
                PodCells::<T>::payload(self.cells.object()),
                self.cells.len,
            )
        }
    }
}

impl<T: Pod> Drop for PodGuard<'_, T> {
    fn drop(&mut self) {
        self.cells.robust.release(self.keep_owner_died);
    }
}
