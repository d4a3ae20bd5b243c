//! The raw mutex: one byte of state, a fast path of one compare-exchange,
//! and a parked slow path with eventual fairness.
//!
//! # State word
//!
//! | `PARKED` | `LOCKED` | meaning                                          |
//! |----------|----------|--------------------------------------------------|
//! | 0        | 0        | free, nobody waiting                             |
//! | 0        | 1        | held, nobody parked (unlock is one CAS)          |
//! | 1        | 0        | free, threads parked (one was just woken and will retry) |
//! | 1        | 1        | held, threads parked (unlock goes to the slow path) |
//!
//! Invariants:
//! - `PARKED` is set only by a thread about to park, with a compare-exchange
//!   while `LOCKED` is set, before it calls `park` (whose `validate` then
//!   checks that both bits are still set), and cleared only under the seam's
//!   queue lock (in `timed_out` of the last waiter, or in the unlock callback
//!   when no waiter is left). So a set `PARKED` bit always means the queue
//!   for this lock may be non-empty, or a thread is about to join it.
//! - A hand-off (`TOKEN_HANDOFF`) passes the lock without ever clearing
//!   `LOCKED`: the woken thread owns the lock when `park` returns.
//!
//! # Who wakes whom
//!
//! Unlock with `PARKED` set wakes exactly one waiter (the longest-waiting).
//! Normally the lock is released and the woken thread competes for it again
//! (throughput: a running thread can re-take it without a context switch).
//! When the seam reports `be_fair` (a waiter has been queued for about a
//! millisecond — parking_lot_core's eventual-fairness timer) or on
//! `unlock_fair`, the lock is handed to the woken thread directly, so no
//! thread can be starved by others hammering lock/unlock.
//!
//! # Memory orderings
//!
//! Taking the lock is an `Acquire` on the state word and releasing it a
//! `Release`, so everything written under the lock happens-before the next
//! holder's reads. On a hand-off the state is not released at all; the
//! seam's queue lock (released by the unlocker after it chose the waiter,
//! acquired by the waiter before it returns from `park`) orders the two
//! critical sections. Bits changed only to coordinate parking (`PARKED`)
//! use `Relaxed`: the queue lock orders them.

use std::time::Instant;

use crate::sys::atomic::{AtomicU8, Ordering};
use crate::sys::park::{self, ParkResult, UnparkResult, UnparkToken, DEFAULT_PARK_TOKEN};
use crate::sys::spin::SpinWait;

/// Held by some thread.
const LOCKED: u8 = 0b01;
/// Some thread may be parked waiting for the lock.
const PARKED: u8 = 0b10;

/// The unlocker released the lock; the woken thread must compete for it.
const TOKEN_NORMAL: UnparkToken = UnparkToken(0);
/// The unlocker kept `LOCKED` set and handed the lock to the woken thread.
const TOKEN_HANDOFF: UnparkToken = UnparkToken(1);

/// A mutual-exclusion lock without data.
pub(crate) struct RawMutex {
    state: AtomicU8,
}

impl RawMutex {
    #[cfg(not(verisync_loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
        }
    }

    #[cfg(verisync_loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
        }
    }

    /// Blocks until the lock is held by the caller.
    #[inline]
    pub(crate) fn lock(&self) {
        if self
            .state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended(None);
        }
    }

    /// Takes the lock if nobody holds it and nobody is parked: one
    /// compare-exchange, for a caller's fast path; `false` says nothing
    /// (it may be free with threads parked): fall back to
    /// [`try_lock`](Self::try_lock) or [`try_lock_until`](Self::try_lock_until).
    // Only `process_shared/robust.rs` uses it: unused where that is not built.
    #[cfg_attr(
        not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))),
        allow(dead_code)
    )]
    #[inline]
    pub(crate) fn try_lock_uncontended(&self) -> bool {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock if it is free; never blocks.
    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
    }

    /// Blocks until the lock is held (`true`) or `deadline` passes (`false`);
    /// `None` waits forever.
    #[inline]
    pub(crate) fn try_lock_until(&self, deadline: Option<Instant>) -> bool {
        self.try_lock() || self.lock_contended(deadline)
    }

    /// Whether some thread holds the lock (a snapshot).
    #[inline]
    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// Releases the lock.
    ///
    /// # Safety
    ///
    /// The caller holds the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_contended(false);
        }
    }

    /// Releases the lock, handing it directly to the longest waiter if any.
    ///
    /// # Safety
    ///
    /// The caller holds the lock.
    #[inline]
    pub(crate) unsafe fn unlock_fair(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_contended(true);
        }
    }

    fn key(&self) -> usize {
        self as *const Self as usize
    }

    #[cold]
    fn lock_contended(&self, deadline: Option<Instant>) -> bool {
        let mut spin = SpinWait::default();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            // Free: take it, even if others are parked (they were woken or
            // will be; eventual fairness bounds how long they can lose).
            if state & LOCKED == 0 {
                match self.state.compare_exchange_weak(
                    state,
                    state | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(actual) => state = actual,
                }
                continue;
            }

            // Held and nobody parked yet: the holder is probably about to let
            // go, so spin a little before paying for a park.
            if state & PARKED == 0 && spin.spin_before(deadline) {
                state = self.state.load(Ordering::Relaxed);
                continue;
            }

            if state & PARKED == 0 {
                if let Err(actual) = self.state.compare_exchange_weak(
                    state,
                    state | PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = actual;
                    continue;
                }
            }

            let validate = || self.state.load(Ordering::Relaxed) == LOCKED | PARKED;
            let timed_out = |_key, was_last_thread: bool| {
                // We were the last waiter: nobody is parked any more. The lock
                // may be held or free; keep LOCKED as it is.
                if was_last_thread {
                    self.state.fetch_and(!PARKED, Ordering::Relaxed);
                }
            };
            // SAFETY: `validate` and `timed_out` only touch this lock's state
            // word (no panics, no seam calls); `before_sleep` does nothing.
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
            match result {
                ParkResult::Unparked(TOKEN_HANDOFF) => return true,
                ParkResult::Unparked(_) | ParkResult::Invalid => {}
                ParkResult::TimedOut => return false,
            }

            spin = SpinWait::default();
            state = self.state.load(Ordering::Relaxed);
        }
    }

    #[cold]
    fn unlock_contended(&self, force_fair: bool) {
        let callback = |result: UnparkResult| {
            if result.unparked_threads != 0 && (force_fair || result.be_fair) {
                // Hand off: LOCKED stays set; PARKED only if others remain.
                if !result.have_more_threads {
                    self.state.store(LOCKED, Ordering::Relaxed);
                }
                return TOKEN_HANDOFF;
            }
            let remaining = if result.have_more_threads { PARKED } else { 0 };
            self.state.store(remaining, Ordering::Release);
            TOKEN_NORMAL
        };
        // SAFETY: the callback only stores to this lock's state word.
        unsafe {
            park::unpark_one(self.key(), callback);
        }
    }
}
