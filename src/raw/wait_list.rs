//! A wait list: threads sleep until "some state they watch" changes, without
//! a lock around that state (an event count).
//!
//! The state lives elsewhere (a ring's head and tail, a task counter); the
//! wait list only counts sleepers and parks them through the seam.
//!
//! # Protocol
//!
//! ```text
//!  waiter (inside `validate`, under the queue lock)   notifier
//!  ------------------------------------------------   --------------------------
//!  sleepers += 1                                       change the watched state
//!  fence(SeqCst)                                       fence(SeqCst)
//!  still blocked?  yes: park   no: sleepers -= 1       sleepers > 0 ? unpark : skip
//! ```
//!
//! The two `SeqCst` fences make this a Dekker handshake: either the waiter
//! sees the change (and does not park), or the notifier sees the sleeper
//! (and wakes it). So a change is never missed.
//!
//! `sleepers` is changed only under the seam's queue lock (in `validate`,
//! `timed_out`, and the unpark callbacks), so it equals the number of
//! threads in the queue whenever that lock is free.
//!
//! A woken waiter must re-check its state and, if still blocked, wait
//! again; it must not give up on a timeout without re-checking once, or the
//! change that woke it could be left for nobody.

use std::time::Instant;

use crate::sys::atomic::{fence, AtomicUsize, Ordering};
use crate::sys::park::{self, ParkResult, DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN};

/// Threads waiting for a condition on lock-free state.
pub(crate) struct WaitList {
    sleepers: AtomicUsize,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        Self {
            sleepers: AtomicUsize::new(0),
        }
    }

    /// Parks the caller while `still_blocked()` holds, until a notify or
    /// `deadline` (`None`: never). Returns `false` only on a timeout.
    ///
    /// `still_blocked` runs under the seam's queue lock: it must only read
    /// atomics (no locks, no panics).
    pub(crate) fn wait(
        &self,
        still_blocked: impl FnOnce() -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        let validate = || {
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if still_blocked() {
                true
            } else {
                self.sleepers.fetch_sub(1, Ordering::Relaxed);
                false
            }
        };
        let timed_out = |_key, _was_last_thread| {
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        };
        // SAFETY: `validate` and `timed_out` only touch atomics (the caller
        // promises the same of `still_blocked`); `before_sleep` does nothing.
        let result = unsafe {
            park::park(
                self.key(),
                validate,
                || {},
                timed_out,
                DEFAULT_PARK_TOKEN,
                deadline,
            )
        };
        !matches!(result, ParkResult::TimedOut)
    }

    /// Wakes one waiter, if any. Call after changing the watched state.
    #[inline]
    pub(crate) fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake(1);
        }
    }

    /// Wakes every waiter. Call after changing the watched state.
    #[inline]
    pub(crate) fn notify_all(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake(usize::MAX);
        }
    }

    #[cold]
    fn wake(&self, count: usize) {
        let callback = |result: park::UnparkResult| {
            self.sleepers
                .fetch_sub(result.unparked_threads, Ordering::Relaxed);
            DEFAULT_UNPARK_TOKEN
        };
        // SAFETY: `callback` updates an atomic; it neither panics nor calls
        // into the seam.
        unsafe {
            park::unpark_up_to(self.key(), count, callback);
        }
    }

    fn key(&self) -> usize {
        self as *const Self as usize
    }
}
