//! `process::Lock`: a mutual-exclusion lock for processes, robust to the
//! death of its holder.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, Object, KIND_LOCK, LINE, NO_ELEMENT};
use super::error::{open_failed, AcknowledgeOwnerDeath, OwnerDied, SharedError, TryLockError};
use super::robust::{RobustLock, Wait};
use crate::raw::process_lock::Acquired;

/// A lock shared by processes — Python's `multiprocessing.Lock`, except
/// that when the process holding it dies, the next locker gets the lock
/// *and is told* ([`OwnerDied`]), instead of everyone waiting forever.
///
/// Create it before starting the processes that use it, and pass it to
/// them as a task argument (it serializes to a handle into the process
/// tree's shared memory). Clones name the same lock.
///
/// - Not reentrant: a thread that locks it again while holding it panics
///   (instead of waiting forever). Threads of one process exclude each
///   other as processes do.
/// - A holder that dies is noticed within about 10 ms by a waiting
///   locker: while it waits, a locker wakes every 10 ms and reads the
///   holder's `/proc/<pid>/stat` (Linux tells nobody when a process dies
///   holding a word of ours; see `sys/futex_linux.rs`).
/// - After an [`OwnerDied`], the lock is marked consistent again once the
///   guard from [`OwnerDied::into_guard`] is dropped; until then, every
///   locker is told.
/// - Death is a *process's*: a thread that exits holding the guard (it
///   was `mem::forget`-ed, or the thread was killed some other way) leaves
///   the lock held for the life of its process, as `std::sync::Mutex`
///   does. The guard is released normally when it is dropped during the
///   thread's exit (kept in a `thread_local!`, say).
/// - A process whose main thread called `pthread_exit` while its other
///   threads run on shows in `/proc` as a zombie, and is judged dead: its
///   locks are taken over. Keep the main thread alive in programs that
///   share these locks.
///
/// ```
/// verisync::process::init();
/// use verisync::process::Lock;
///
/// fn buy(lock: Lock) -> u32 {
///     let _guard = lock.lock().unwrap_or_else(|owner_died| owner_died.into_guard());
///     std::process::id()
/// }
///
/// let lock = Lock::new()?;
/// let buyer = verisync::process::spawn(buy, lock.clone()).unwrap();
/// assert_ne!(buyer.join().unwrap(), std::process::id());
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    robust: RobustLock,
}

/// The lock object's extent: header, word (one line).
const LOCK_SIZE: usize = LINE;

impl Lock {
    /// A new, unlocked lock in the process tree's shared memory (created
    /// with the first object).
    ///
    /// # Errors
    ///
    /// [`SharedError::Unsupported`] off Linux; [`SharedError::Unavailable`]
    /// if this process has no shared memory (a worker started before its
    /// parent created any shared object); [`SharedError::ArenaFull`].
    ///
    /// ```
    /// verisync::process::init();
    /// let lock = verisync::process::Lock::new()?;
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn new() -> Result<Self, SharedError> {
        let object = arena::for_new_object()?.allocate(
            KIND_LOCK,
            NO_ELEMENT,
            LOCK_SIZE,
            0,
            RobustLock::reset,
        )?;
        Ok(Self {
            robust: RobustLock::new(object),
        })
    }

    /// Takes the lock, waiting as long as a live process holds it.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (holding the guard: you have the lock) if a holder
    /// died holding it.
    ///
    /// # Panics
    ///
    /// If this thread holds it already.
    ///
    /// ```
    /// verisync::process::init();
    /// let lock = verisync::process::Lock::new()?;
    /// let guard = lock.lock().unwrap();
    /// drop(guard); // unlocks
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> Result<LockGuard<'_>, OwnerDied<LockGuard<'_>>> {
        match self.robust.acquire(Wait::Until(None)) {
            Some(acquired) => guard_result(LockGuard::new(self, acquired), acquired),
            None => unreachable!("a wait without deadline ends holding the lock"),
        }
    }

    /// Takes the lock if no live process holds it now.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it is held; [`TryLockError::OwnerDied`]
    /// if you got it from a holder that died.
    ///
    /// # Panics
    ///
    /// If this thread holds it already.
    ///
    /// ```
    /// verisync::process::init();
    /// let lock = verisync::process::Lock::new()?;
    /// let held = lock.try_lock().unwrap();
    /// drop(held);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    #[inline]
    pub fn try_lock(&self) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        self.acquire_or_not(Wait::Try)
    }

    /// Takes the lock, waiting at most `timeout` (zero: tries once;
    /// `Duration::MAX`: forever).
    ///
    /// # Errors
    ///
    /// As [`try_lock`](Self::try_lock), `WouldBlock` meaning it stayed held
    /// for the whole timeout.
    ///
    /// # Panics
    ///
    /// If this thread holds it already.
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let lock = verisync::process::Lock::new()?;
    /// let guard = lock.lock_timeout(Duration::from_secs(1)).unwrap();
    /// drop(guard);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        if timeout.is_zero() {
            return self.try_lock();
        }
        self.acquire_or_not(Wait::Until(crate::sys::time::deadline_after(timeout)))
    }

    #[inline]
    fn acquire_or_not(&self, wait: Wait) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        match self.robust.acquire(wait) {
            Some(acquired) => guard_result(LockGuard::new(self, acquired), acquired)
                .map_err(TryLockError::OwnerDied),
            None => Err(TryLockError::WouldBlock),
        }
    }
}

/// `Ok(guard)`, or `Err(OwnerDied(guard))` if a holder died.
#[inline]
pub(crate) fn guard_result<G>(guard: G, acquired: Acquired) -> Result<G, OwnerDied<G>> {
    match acquired {
        Acquired::Clean => Ok(guard),
        Acquired::OwnerDied => Err(OwnerDied::new(guard)),
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("handle", &self.robust.object().handle())
            .finish()
    }
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.robust.object().handle().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Lock {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not a lock of this process tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(deserializer)?;
        let object =
            Object::open(handle, KIND_LOCK, NO_ELEMENT, LOCK_SIZE, 0).map_err(open_failed)?;
        Ok(Self {
            robust: RobustLock::new(object),
        })
    }
}

/// Holds a [`Lock`]; unlocks it when dropped. Not `Send`: it is unlocked
/// by the thread that locked it.
///
/// ```
/// verisync::process::init();
/// let lock = verisync::process::Lock::new()?;
/// {
///     let _guard = lock.lock().unwrap();
///     // exclusive here, across every process of the tree
/// }
/// assert!(lock.try_lock().is_ok());
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    /// The locker was told a holder died and has not acknowledged it.
    keep_owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a> LockGuard<'a> {
    #[inline]
    fn new(lock: &'a Lock, acquired: Acquired) -> Self {
        Self {
            lock,
            keep_owner_died: acquired == Acquired::OwnerDied,
            _not_send: PhantomData,
        }
    }
}

impl LockGuard<'_> {
    /// Names its lock for a `Condition` (the lock object's offset: unique
    /// in the tree's arena, and non-zero).
    pub(crate) fn lock_id(&self) -> u32 {
        self.lock.robust.object().handle().offset()
    }

    /// Releases the lock for a `Condition`'s wait, keeping the guard: the
    /// caller takes it again with [`relock`](Self::relock) before the guard
    /// is used or dropped.
    pub(crate) fn unlock_for_wait(&mut self) {
        self.lock.robust.release(self.keep_owner_died);
    }

    /// Takes the lock again after [`unlock_for_wait`](Self::unlock_for_wait);
    /// how it got it (a holder that died meanwhile: the guard keeps the
    /// death unacknowledged, as a fresh locker's would).
    pub(crate) fn relock(&mut self) -> Acquired {
        let acquired = self
            .lock
            .robust
            .acquire(Wait::Until(None))
            .expect("a wait without deadline ends holding the lock");
        self.keep_owner_died = acquired == Acquired::OwnerDied;
        acquired
    }
}

impl AcknowledgeOwnerDeath for LockGuard<'_> {
    fn acknowledge_owner_death(&mut self) {
        self.keep_owner_died = false;
    }
}

/// What a `Condition`'s wait hands back when the lock's holder died while
/// it waited: the caller's guard, acknowledged through it.
impl AcknowledgeOwnerDeath for &mut LockGuard<'_> {
    fn acknowledge_owner_death(&mut self) {
        self.keep_owner_died = false;
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.robust.release(self.keep_owner_died);
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

/// Test support, outside semver: the lock object's 16 words in shared
/// memory (its header, then its state word), so a test can scribble over
/// them as a buggy process could.
#[doc(hidden)]
pub fn __lock_words(lock: &Lock) -> &'static [std::sync::atomic::AtomicU32; 16] {
    let first = lock.robust.object().word(16);
    // SAFETY: the object is one 64-byte line inside the mapping (checked
    // when created or opened), aligned to 64; the mapping lives for the
    // process's life, and atomics are valid for any bytes. `word(16)` is
    // 16 bytes (4 words) into it.
    unsafe { &*std::ptr::from_ref(first).sub(4).cast() }
}
