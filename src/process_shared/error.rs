//! The errors of the process-shared primitives.

use std::fmt;

/// Why a process-shared object could not be created or opened.
///
/// ```
/// verisync::process::init();
/// match verisync::process::Lock::new() {
///     Ok(_lock) => {}
///     Err(error) => eprintln!("no process-shared lock here: {error}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedError {
    /// Process-shared primitives need Linux (futexes on shared memory).
    Unsupported,
    /// This process cannot reach the process tree's shared memory; the
    /// text says why.
    Unavailable(String),
    /// A handle that does not name a live object of its type in this
    /// tree's shared memory (garbage, another tree's, or the wrong type).
    InvalidHandle(String),
    /// The shared memory has no room left for the object.
    ArenaFull {
        /// Bytes the object needs.
        requested: usize,
        /// Bytes the arena holds in all.
        capacity: usize,
    },
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported => f.write_str(
                "process-shared primitives are not supported on this platform (they need Linux \
                 futexes on shared memory)",
            ),
            Self::Unavailable(why) => write!(f, "no process-shared memory in this process: {why}"),
            Self::InvalidHandle(why) => write!(f, "not a valid process-shared handle: {why}"),
            Self::ArenaFull {
                requested,
                capacity,
            } => write!(
                f,
                "the process tree's shared memory ({capacity} bytes) has no room left for an \
                 object of {requested} bytes; objects are never freed, so create them once and \
                 pass handles around"
            ),
        }
    }
}

impl std::error::Error for SharedError {}

/// The process that held the lock died holding it: you have the lock now,
/// and the data it guards may be half-updated. Inspect or repair it, then
/// take the guard with [`into_guard`](Self::into_guard), which marks the
/// lock consistent again once that guard is dropped. Dropping this value
/// without calling `into_guard` unlocks too, but the next locker is told
/// the same thing.
///
/// Like `std::sync::PoisonError`, but for a holder that died instead of
/// one that panicked (a panicking holder's guard unlocks normally).
///
/// ```
/// verisync::process::init();
/// let lock = verisync::process::Lock::new()?;
/// let guard = match lock.lock() {
///     Ok(guard) => guard,
///     Err(owner_died) => {
///         // repair the data here
///         owner_died.into_guard()
///     }
/// };
/// drop(guard);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    // Unused where the types are unsupported (no guard ever exists there).
    #[cfg_attr(
        not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))),
        allow(dead_code)
    )]
    pub(crate) fn new(guard: G) -> Self {
        Self { guard }
    }

    /// The guard, leaving the death reported to the next locker.
    #[cfg_attr(
        not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))),
        allow(dead_code)
    )]
    pub(crate) fn into_unacknowledged(self) -> G {
        self.guard
    }

    /// The guard, with the lock's consistency restored on its drop.
    ///
    /// ```
    /// verisync::process::init();
    /// let lock = verisync::process::Lock::new()?;
    /// let guard = lock.lock().unwrap_or_else(|owner_died| owner_died.into_guard());
    /// drop(guard);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn into_guard(self) -> G
    where
        G: AcknowledgeOwnerDeath,
    {
        let mut guard = self.guard;
        guard.acknowledge_owner_death();
        guard
    }

    /// The guard, to look at the data before deciding.
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(7u32)?;
    /// match hits.lock() {
    ///     Ok(guard) => assert_eq!(*guard, 7),
    ///     Err(owner_died) => assert_eq!(**owner_died.get_ref(), 7),
    /// }
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// The guard, mutably, to repair the data before deciding.
    ///
    /// ```
    /// verisync::process::init();
    /// let hits = verisync::process::Value::new(7u32)?;
    /// if let Err(mut owner_died) = hits.lock() {
    ///     **owner_died.get_mut() = 0;
    /// }
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

/// A guard that can mark its lock consistent again after a holder died
/// (what [`OwnerDied::into_guard`] calls). Implemented by this crate's
/// process-shared guards.
pub trait AcknowledgeOwnerDeath {
    /// From now on, dropping this guard clears the "owner died" mark.
    fn acknowledge_owner_death(&mut self);
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the process that held this lock died while holding it; you hold the lock now, and \
             the data it guards may be half-updated",
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// Why `try_lock` or `lock_timeout` did not lock normally.
///
/// ```
/// verisync::process::init();
/// let lock = verisync::process::Lock::new()?;
/// let _held = lock.lock().unwrap();
/// std::thread::scope(|scope| {
///     scope.spawn(|| {
///         assert!(matches!(
///             lock.lock_timeout(std::time::Duration::from_millis(10)),
///             Err(verisync::process::TryLockError::WouldBlock)
///         ));
///     });
/// });
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Debug)]
pub enum TryLockError<G> {
    /// Another holder (alive) held it throughout (the whole timeout, for
    /// `lock_timeout`).
    WouldBlock,
    /// You have the lock, and the previous holder died holding it.
    OwnerDied(OwnerDied<G>),
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("the lock is held by another (live) holder"),
            Self::OwnerDied(owner_died) => owner_died.fmt(f),
        }
    }
}

impl<G: fmt::Debug> std::error::Error for TryLockError<G> {}
