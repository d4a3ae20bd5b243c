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
//!  ------------------------------------------------   ------------------------------
//!  sleepers += 1            (SeqCst read-modify-write) change the watched state
//!                                                        (SeqCst store or RMW)
//!  still blocked?           (SeqCst loads)            sleepers > 0 ?   (SeqCst load)
//!    yes: park   no: sleepers -= 1                      yes: unpark   no: skip
//! ```
//!
//! This is a Dekker handshake: all four accesses are `SeqCst`, so they
//! take places in one total order that respects each thread's program
//! order. If the notifier's load comes before the waiter's increment, its
//! change comes before the waiter's check, which therefore sees it and
//! does not park; otherwise the notifier sees the sleeper and wakes it. So
//! a change is never missed. **Every caller must keep its half:** the
//! watched state is changed with a `SeqCst` store or read-modify-write
//! (a ring's or list's claiming CAS, the task counter's `fetch_add`) and
//! `still_blocked` reads it with `SeqCst` loads. (The LIFO and priority
//! orders' getters and putters use no wait list: they check and sleep
//! under the queue's own mutex, see `queue/locked.rs`.)
//!
//! No fence is needed for that in a real build; this used to run a
//! `fence(SeqCst)` on both sides, and the notifier's fence — one per put
//! and per get — was most of a put's or get's cost: it waits for the
//! store that published the item to reach the other core (a bounded FIFO
//! round trip went from 55 to 26 ns without it). Loom models `SeqCst`
//! accesses as `AcqRel`, so under loom both sides add a `fence(SeqCst)`
//! ([`seq_cst_fence_under_loom`]); the loom queue tests fail without it,
//! which shows the model depends on exactly this ordering.
//!
//! `sleepers` is changed only under the seam's queue lock (in `validate`,
//! `timed_out`, and the unpark callbacks), so it equals the number of
//! threads in the queue whenever that lock is free.
//!
//! A woken waiter must re-check its state and, if still blocked, wait
//! again; it must not give up on a timeout without re-checking once, or the
//! change that woke it could be left for nobody.

use std::time::Instant;

use crate::sys::atomic::{seq_cst_fence_under_loom, AtomicUsize, Ordering};
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
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            seq_cst_fence_under_loom();
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
        seq_cst_fence_under_loom();
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            self.wake(1);
        }
    }

    /// Wakes every waiter. Call after changing the watched state.
    #[inline]
    pub(crate) fn notify_all(&self) {
        seq_cst_fence_under_loom();
        if self.sleepers.load(Ordering::SeqCst) != 0 {
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
