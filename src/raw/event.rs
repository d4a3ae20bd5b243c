//! The raw event: a flag, a generation count of `set`s, and parked waiters.
//!
//! # State word
//!
//! ```text
//!  usize:  [ generation (bits 2..) | PARKED (bit 1) | SET (bit 0) ]
//! ```
//!
//! - `SET`: the flag Python's `Event.is_set()` reports.
//! - `PARKED`: threads may be parked on this event. Set inside `validate`
//!   (under the seam's queue lock) by a thread about to park; cleared under
//!   that lock when the queue empties.
//! - `generation`: how many times the flag went from clear to set (wrapping).
//!   A waiter remembers the generation it saw when it started: if it has
//!   changed, a `set` happened during the wait, whatever the flag says now.
//!
//! | transition | who        | effect                                             |
//! |------------|------------|----------------------------------------------------|
//! | set        | any thread | clear → set: generation + 1; wakes every waiter of the old generation |
//! | clear      | any thread | set → clear; wakes nobody                           |
//! | wait       | any thread | returns at once if set; else parks, token = generation |
//!
//! Python's rule "a waiter present at `set` returns true even if `clear`
//! follows at once" holds because `set` wakes waiters by generation (the
//! flag may already be clear again when they run), and a waiter that times
//! out still returns `true` when the generation moved on.
//!
//! # Memory orderings
//!
//! `set` publishes with `Release`; every reader of `SET` or of the
//! generation uses `Acquire`, so what the setter did before `set` is visible
//! to every waiter that returns `true`. `PARKED` changes are ordered by the
//! seam's queue lock and use `Relaxed`.

use std::time::Instant;

use crate::sys::atomic::{AtomicUsize, Ordering};
use crate::sys::park::{self, FilterOp, ParkResult, ParkToken, UnparkToken};
use crate::sys::spin::SpinWait;

/// The flag is set.
const SET: usize = 0b01;
/// Threads may be parked on this event.
const PARKED: usize = 0b10;
/// One step of the generation count.
const ONE_GENERATION: usize = 0b100;

#[inline]
fn generation(state: usize) -> usize {
    state >> 2
}

/// A set/clear flag that threads can wait on.
pub(crate) struct RawEvent {
    state: AtomicUsize,
}

impl RawEvent {
    #[cfg(not(verisync_loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicUsize::new(0),
        }
    }

    #[cfg(verisync_loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicUsize::new(0),
        }
    }

    /// Whether the flag is set.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) & SET != 0
    }

    /// Sets the flag and wakes every thread waiting now.
    pub(crate) fn set(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & SET != 0 {
                // Already set: nobody can be waiting for this generation.
                return;
            }
            let next = (state.wrapping_add(ONE_GENERATION)) | SET;
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        if state & PARKED != 0 {
            self.wake_generation(generation(state));
        }
    }

    /// Clears the flag.
    pub(crate) fn clear(&self) {
        self.state.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Waits until the flag is set or `deadline` passes (`None`: forever).
    /// Returns whether the flag was set at the call or became set before it
    /// returned.
    #[inline]
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let state = self.state.load(Ordering::Acquire);
        state & SET != 0 || self.wait_contended(generation(state), deadline)
    }

    #[cold]
    fn wait_contended(&self, seen: usize, deadline: Option<Instant>) -> bool {
        // A set often follows within microseconds (a task finishing): look
        // again a few times before paying for a park and an unpark.
        let mut spin = SpinWait::default();
        while spin.spin_before(deadline) {
            if generation(self.state.load(Ordering::Acquire)) != seen {
                return true;
            }
        }
        let validate = || {
            let mut state = self.state.load(Ordering::Acquire);
            loop {
                if generation(state) != seen {
                    return false; // a set happened since we looked
                }
                if state & PARKED != 0 {
                    return true;
                }
                match self.state.compare_exchange_weak(
                    state,
                    state | PARKED,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return true,
                    Err(actual) => state = actual,
                }
            }
        };
        let timed_out = |_key, was_last_thread: bool| {
            if was_last_thread {
                self.state.fetch_and(!PARKED, Ordering::Relaxed);
            }
        };
        // SAFETY: `validate` and `timed_out` only touch this event's state
        // word (no panics, no seam calls); `before_sleep` does nothing.
        let result = unsafe {
            park::park(
                self.key(),
                validate,
                || {},
                timed_out,
                ParkToken(seen),
                deadline,
            )
        };
        match result {
            ParkResult::Unparked(_) | ParkResult::Invalid => true,
            // A set may have bumped the generation while we were timing out.
            ParkResult::TimedOut => generation(self.state.load(Ordering::Acquire)) != seen,
        }
    }

    /// Wakes every waiter that parked during generation `ended`.
    #[cold]
    fn wake_generation(&self, ended: usize) {
        let filter = |token: ParkToken| {
            if token.0 == ended {
                FilterOp::Unpark
            } else {
                FilterOp::Skip
            }
        };
        let callback = |result: park::UnparkResult| {
            if !result.have_more_threads {
                self.state.fetch_and(!PARKED, Ordering::Relaxed);
            }
            UnparkToken(0)
        };
        // SAFETY: `filter` and `callback` only touch this event's state word;
        // neither panics nor calls into the seam.
        unsafe {
            park::unpark_filter(self.key(), filter, callback);
        }
    }

    /// Whether the `PARKED` bit is set (for the loom suite).
    #[cfg(verisync_loom)]
    pub(crate) fn has_parked_waiters(&self) -> bool {
        self.state.load(Ordering::Acquire) & PARKED != 0
    }

    fn key(&self) -> usize {
        self as *const Self as usize
    }
}
