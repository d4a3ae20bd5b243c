//! Timeouts as deadlines.
//!
//! Every bounded wait turns its `Duration` into an `Option<Instant>` once, at
//! the start, and passes the deadline down. `None` means "wait forever": a
//! `Duration::MAX` (or any duration that overflows `Instant`) waits forever
//! instead of panicking.

use std::time::{Duration, Instant};

/// The deadline `timeout` from now, or `None` if it does not fit in an `Instant`.
#[inline]
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
