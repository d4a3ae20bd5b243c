//! The raw semaphore: a permit count with strict first-come, first-served
//! service and direct hand-off of released permits to waiters.
//!
//! # State word
//!
//! ```text
//!  usize:  [ permits available (bits 1..) | QUEUED (bit 0) ]
//! ```
//!
//! | `QUEUED` | meaning                                                      |
//! |----------|--------------------------------------------------------------|
//! | 0        | nobody waits; acquire and release are one CAS each           |
//! | 1        | threads wait in the seam's queue for this semaphore; the     |
//! |          | first of them wants more permits than are available          |
//!
//! Invariants:
//! - `QUEUED` is set only inside `validate` (under the seam's queue lock, by
//!   the thread that then enqueues) and cleared only under that lock when the
//!   queue becomes empty. So `QUEUED` ⇔ "the queue is non-empty".
//! - While `QUEUED` is set no thread takes permits on the fast path: new
//!   arrivals queue behind the waiters (FIFO; a waiter for many permits is
//!   never overtaken by later waiters for few). Permits go to waiters only in
//!   [`RawSemaphore::serve_waiters`], under the queue lock, in queue order,
//!   stopping at the first waiter that cannot be satisfied.
//!
//! # Who wakes whom
//!
//! A release that finds `QUEUED` set adds its permits and then serves the
//! queue: each waiter served has its permits subtracted for it and is woken
//! owning them (hand-off; it never competes again). A waiter that times out
//! leaves the queue and serves it too, because the waiter behind it may now
//! be satisfiable. Acquiring never wakes anyone.
//!
//! # Memory orderings
//!
//! Taking permits is `Acquire` and adding them `Release`, so what a thread
//! did before releasing happens-before what the next holder does after
//! acquiring. Permits handed off under the queue lock are taken with
//! `AcqRel` (synchronising with the releaser) and the seam's queue lock
//! orders the hand-off with the woken waiter.

use std::fmt;
use std::time::Instant;

use crate::sys::atomic::{AtomicUsize, Ordering};
use crate::sys::park::{self, FilterOp, ParkResult, ParkToken, UnparkToken};
use crate::sys::spin::SpinWait;

/// Threads are queued in the seam for this semaphore.
const QUEUED: usize = 0b1;
/// One permit in the state word.
const ONE_PERMIT: usize = 0b10;

/// Permits were handed to the woken waiter.
const TOKEN_HANDOFF: UnparkToken = UnparkToken(1);

/// The most permits a semaphore can count.
pub(crate) const MAX_PERMITS: usize = usize::MAX >> 1;

#[inline]
fn permits(state: usize) -> usize {
    state >> 1
}

/// A release was refused because it would raise the count above the limit.
///
/// ```
/// let s = verisync::Semaphore::bounded(2);
/// let error = s.release(1).unwrap_err();
/// assert_eq!((error.released, error.available, error.limit), (1, 2, 2));
/// assert!(error.to_string().contains("at most 2"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyReleases {
    /// How many permits the refused call tried to release.
    pub released: usize,
    /// How many permits were available when it was refused.
    pub available: usize,
    /// The most permits the semaphore may hold (its bound, or the count limit).
    pub limit: usize,
}

impl fmt::Display for TooManyReleases {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "releasing {} permit(s) would raise the semaphore to {} but it may hold at most {}; \
             release only permits that were acquired (the count is unchanged)",
            self.released,
            self.available.saturating_add(self.released),
            self.limit
        )
    }
}

impl std::error::Error for TooManyReleases {}

/// A counting semaphore without guards.
pub(crate) struct RawSemaphore {
    state: AtomicUsize,
    limit: usize,
}

impl RawSemaphore {
    /// `permits` available, never more than `limit`.
    pub(crate) fn new(permits: usize, limit: usize) -> Self {
        assert!(
            permits <= limit && limit <= MAX_PERMITS,
            "verisync: a semaphore starts with at most its limit of permits \
             (asked for {permits}, limit {limit}, and no more than {MAX_PERMITS})"
        );
        Self {
            state: AtomicUsize::new(permits << 1),
            limit,
        }
    }

    /// The bound given at construction (`MAX_PERMITS` for an unbounded one).
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Permits available now (a snapshot).
    pub(crate) fn available(&self) -> usize {
        permits(self.state.load(Ordering::Relaxed))
    }

    /// Takes `count` permits if they are available and nobody is queued.
    #[inline]
    pub(crate) fn try_acquire(&self, count: usize) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & QUEUED != 0 || permits(state) < count {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state - count * ONE_PERMIT,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
    }

    /// Takes `count` permits, waiting in line until `deadline` (`None`: forever).
    #[inline]
    pub(crate) fn acquire_until(&self, count: usize, deadline: Option<Instant>) -> bool {
        self.try_acquire(count) || self.acquire_contended(count, deadline)
    }

    #[cold]
    fn acquire_contended(&self, count: usize, deadline: Option<Instant>) -> bool {
        // Nobody queued: the permits may come back within a few hundred
        // nanoseconds, far sooner than a park round trip.
        let mut spin = SpinWait::default();
        while self.state.load(Ordering::Relaxed) & QUEUED == 0 && spin.spin() {
            if self.try_acquire(count) {
                return true;
            }
        }

        let mut acquired_without_parking = false;
        let validate = || {
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                if state & QUEUED == 0 && permits(state) >= count {
                    match self.state.compare_exchange_weak(
                        state,
                        state - count * ONE_PERMIT,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            acquired_without_parking = true;
                            return false;
                        }
                        Err(actual) => state = actual,
                    }
                } else if state & QUEUED != 0 {
                    return true;
                } else {
                    match self.state.compare_exchange_weak(
                        state,
                        state | QUEUED,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return true,
                        Err(actual) => state = actual,
                    }
                }
            }
        };
        let timed_out = |_key, was_last_thread: bool| {
            if was_last_thread {
                self.state.fetch_and(!QUEUED, Ordering::Relaxed);
            }
        };
        // SAFETY: `validate` and `timed_out` only touch this semaphore's state
        // word (no panics, no seam calls); `before_sleep` does nothing.
        let result = unsafe {
            park::park(
                self.key(),
                validate,
                || {},
                timed_out,
                ParkToken(count),
                deadline,
            )
        };
        match result {
            // Served: `serve_waiters` subtracted our permits for us.
            ParkResult::Unparked(_) => true,
            // `validate` refused to park only after taking the permits.
            ParkResult::Invalid => {
                debug_assert!(acquired_without_parking);
                true
            }
            ParkResult::TimedOut => {
                // We may have been the head that blocked the queue.
                self.serve_waiters();
                false
            }
        }
    }

    /// Adds `count` permits, or refuses (count unchanged) past the limit.
    #[inline]
    pub(crate) fn release(&self, count: usize) -> Result<(), TooManyReleases> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let available = permits(state);
            if count > self.limit - available {
                return Err(TooManyReleases {
                    released: count,
                    available,
                    limit: self.limit,
                });
            }
            match self.state.compare_exchange_weak(
                state,
                state + count * ONE_PERMIT,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        if state & QUEUED != 0 {
            self.serve_waiters();
        }
        Ok(())
    }

    /// Adds up to `count` permits, never beyond the limit; returns how many
    /// were added. Used when a permit guard is dropped.
    pub(crate) fn release_up_to_limit(&self, count: usize) -> usize {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let added = count.min(self.limit - permits(state));
            match self.state.compare_exchange_weak(
                state,
                state + added * ONE_PERMIT,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if state & QUEUED != 0 {
                        self.serve_waiters();
                    }
                    return added;
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Hands available permits to queued waiters, first come first served,
    /// stopping at the first one that cannot be satisfied.
    #[cold]
    fn serve_waiters(&self) {
        let filter = |token: ParkToken| {
            let wanted = token.0;
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                if permits(state) < wanted {
                    return FilterOp::Stop;
                }
                match self.state.compare_exchange_weak(
                    state,
                    state - wanted * ONE_PERMIT,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return FilterOp::Unpark,
                    Err(actual) => state = actual,
                }
            }
        };
        let callback = |result: park::UnparkResult| {
            if !result.have_more_threads {
                self.state.fetch_and(!QUEUED, Ordering::Relaxed);
            }
            TOKEN_HANDOFF
        };
        // SAFETY: `filter` and `callback` only touch this semaphore's state
        // word; neither panics nor calls into the seam.
        unsafe {
            park::unpark_filter(self.key(), filter, callback);
        }
    }

    fn key(&self) -> usize {
        self as *const Self as usize
    }
}
