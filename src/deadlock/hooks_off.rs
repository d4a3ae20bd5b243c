//! The diagnostics hooks with the `deadlock-detection` feature off: a
//! zero-sized tracking field and `#[inline(always)]` forwarding functions,
//! so a lock compiles to exactly what it would without the hooks (no field,
//! no call, no branch). `hooks_on.rs` has the same items with bookkeeping.

/// What a lock knows about itself for the diagnostics: nothing, here.
pub(crate) struct LockTracking;

/// What a condition wait keeps of the locks it released: nothing, here.
/// (`pub` in a private module, like `SavedDepth`: it appears in the sealed
/// `ConditionGuard` plumbing.)
pub struct SavedHolds;

/// Marks the current thread as blocked in a primitive until dropped:
/// nothing, here.
pub(crate) struct BlockedIn;

impl LockTracking {
    /// Tracking for a lock created by the user.
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        Self
    }

    /// No tracking: for the crate's own internal locks.
    #[inline(always)]
    pub(crate) const fn untracked() -> Self {
        Self
    }

    /// A blocking or timed acquisition: runs `wait`, which takes the lock
    /// (also without waiting) and says whether it got it.
    #[inline(always)]
    pub(crate) fn acquire(
        &self,
        _name: Option<&'static str>,
        _kind: LockKind,
        _deadline: Option<std::time::Instant>,
        _attempt: impl FnOnce() -> bool,
        wait: impl FnOnce() -> bool,
    ) -> bool {
        wait()
    }

    /// A non-blocking acquisition: runs `attempt`.
    #[inline(always)]
    pub(crate) fn try_acquire(
        &self,
        _name: Option<&'static str>,
        _kind: LockKind,
        attempt: impl FnOnce() -> bool,
    ) -> bool {
        attempt()
    }

    /// One level of the lock is about to be released.
    #[inline(always)]
    pub(crate) fn release(&self) {}

    /// Every level is about to be released for a condition wait.
    #[inline(always)]
    pub(crate) fn release_for_wait(&self) -> SavedHolds {
        SavedHolds
    }

    /// Takes the lock again after a condition wait: runs `relock`.
    #[inline(always)]
    pub(crate) fn reacquire_after_wait(
        &self,
        _name: Option<&'static str>,
        _kind: LockKind,
        _saved: SavedHolds,
        relock: impl FnOnce(),
    ) {
        relock()
    }
}

/// Which kind of lock a hook is called for.
#[derive(Clone, Copy)]
pub(crate) enum LockKind {
    /// [`crate::Mutex`].
    Mutex,
    /// [`crate::ReentrantLock`].
    ReentrantLock,
}

impl BlockedIn {
    /// The current thread is about to block in `primitive` (e.g.
    /// `"Event::wait"`), named `name` if the primitive has a name.
    #[inline(always)]
    pub(crate) fn new(_primitive: &'static str, _name: Option<&'static str>) -> Self {
        Self
    }

    /// As [`new`](Self::new), unless `done()` says the call returns at once.
    #[inline(always)]
    pub(crate) fn unless(
        _primitive: &'static str,
        _name: Option<&'static str>,
        _done: impl FnOnce() -> bool,
    ) -> Self {
        Self
    }

    /// Runs `wait` (which tries first itself).
    #[inline(always)]
    pub(crate) fn attempt_or_wait(
        _primitive: &'static str,
        _name: Option<&'static str>,
        _attempt: impl FnOnce() -> bool,
        wait: impl FnOnce() -> bool,
    ) -> bool {
        wait()
    }

    /// Marks only at [`mark`](Self::mark), when about to park.
    #[inline(always)]
    pub(crate) fn later(_primitive: &'static str, _name: Option<&'static str>) -> Self {
        Self
    }

    /// Never marks (the crate's own internal waits).
    #[inline(always)]
    pub(crate) const fn never() -> Self {
        Self
    }

    /// The thread is about to park.
    #[inline(always)]
    pub(crate) fn mark(&mut self) {}
}
