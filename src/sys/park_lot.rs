//! Production parking seam: `#[inline]` forwards to `parking_lot_core`.
//!
//! Each function has exactly `parking_lot_core`'s signature and contract, so
//! the loom model in `park_loom.rs` can stand in for it.

use std::time::Instant;

use parking_lot_core::{FilterOp, ParkResult, ParkToken, UnparkResult, UnparkToken};

/// Parks the calling thread in the queue for `key`; see `parking_lot_core::park`.
///
/// # Safety
///
/// `validate` and `timed_out` run while a queue lock is held: they must not
/// panic or call into the parking seam. `before_sleep` may not park.
#[inline]
pub(crate) unsafe fn park(
    key: usize,
    validate: impl FnOnce() -> bool,
    before_sleep: impl FnOnce(),
    timed_out: impl FnOnce(usize, bool),
    park_token: ParkToken,
    deadline: Option<Instant>,
) -> ParkResult {
    // SAFETY: our caller upholds exactly parking_lot_core's contract (above).
    unsafe { parking_lot_core::park(key, validate, before_sleep, timed_out, park_token, deadline) }
}

/// Wakes the longest-waiting thread parked on `key`; see `parking_lot_core::unpark_one`.
///
/// # Safety
///
/// `callback` runs while a queue lock is held: it must not panic or call
/// into the parking seam.
#[inline]
pub(crate) unsafe fn unpark_one(
    key: usize,
    callback: impl FnOnce(UnparkResult) -> UnparkToken,
) -> UnparkResult {
    // SAFETY: our caller upholds parking_lot_core's contract (above).
    unsafe { parking_lot_core::unpark_one(key, callback) }
}

/// Wakes the threads parked on `key` that `filter` selects, in queue order;
/// see `parking_lot_core::unpark_filter`.
///
/// # Safety
///
/// `filter` and `callback` run while a queue lock is held: they must not
/// panic or call into the parking seam.
#[inline]
pub(crate) unsafe fn unpark_filter(
    key: usize,
    filter: impl FnMut(ParkToken) -> FilterOp,
    callback: impl FnOnce(UnparkResult) -> UnparkToken,
) -> UnparkResult {
    // SAFETY: our caller upholds parking_lot_core's contract (above).
    unsafe { parking_lot_core::unpark_filter(key, filter, callback) }
}
