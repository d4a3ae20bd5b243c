//! The futex seam in production: Linux `futex(2)` on a 32-bit word in
//! memory shared between processes.
//!
//! The operations are the *shared* ones (no `FUTEX_PRIVATE_FLAG`): the
//! kernel keys a waiter by the physical page and offset of the word, so a
//! waker in another process, which maps the same memory at another address,
//! finds it.
//!
//! # Polling for dead holders (a known gap, written where it bites)
//!
//! Linux tells nobody when a process dies holding a word of ours: its
//! robust-futex list (`set_robust_list`) belongs to the C library's
//! pthread mutexes, one list per thread, which we must not replace. So a
//! wait never sleeps longer than [`HOLDER_POLL`]: it returns
//! [`Wake::Recheck`] and the caller looks again whether the holder it
//! waits for is alive (`still_valid`). That is the one place verisync
//! sleeps on a timer to check again; the loom model replaces it with a
//! wake-up of every waiter when a modelled process dies
//! (`futex_loom::process_died`).

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use super::futex_common::Wake;

/// A futex word: a `u32` in shared memory.
pub(crate) type Word = AtomicU32;

/// The longest a waiter sleeps before it checks again whether the holder it
/// waits for is alive: the bound on noticing a dead holder.
pub(crate) const HOLDER_POLL: Duration = Duration::from_millis(10);

/// Sleeps while `*word == expected`, until [`wake`] wakes it, `deadline`
/// passes, or [`HOLDER_POLL`] passes (then [`Wake::Recheck`]).
///
/// `still_valid` runs first: if it says `false` (the holder is gone), the
/// call returns [`Wake::Invalid`] without sleeping. It must not call into
/// the seam. A wait may also return [`Wake::Woken`] spuriously (a signal,
/// or the word already differed): callers re-read the word in a loop.
pub(crate) fn wait(
    word: &Word,
    expected: u32,
    deadline: Option<Instant>,
    still_valid: impl FnOnce() -> bool,
) -> Wake {
    if !still_valid() {
        return Wake::Invalid;
    }
    let now = Instant::now();
    let poll = now + HOLDER_POLL;
    let (until, is_callers_deadline) = match deadline {
        Some(deadline) if deadline <= poll => (deadline, true),
        _ => (poll, false),
    };
    let left = until.saturating_duration_since(now);
    if left.is_zero() && is_callers_deadline {
        return Wake::TimedOut;
    }
    let timeout = rustix::time::Timespec {
        tv_sec: left.as_secs() as _,
        tv_nsec: left.subsec_nanos() as _,
    };
    // `Flags::empty()`: a shared futex (see the module docs).
    match futex::wait(word, futex::Flags::empty(), expected, Some(&timeout)) {
        Err(Errno::TIMEDOUT) if is_callers_deadline => Wake::TimedOut,
        Err(Errno::TIMEDOUT) => Wake::Recheck,
        // Woken, or the word had changed (`EAGAIN`), or a signal (`EINTR`):
        // the caller re-reads the word.
        Ok(()) | Err(_) => Wake::Woken,
    }
}

/// Wakes up to `count` waiters on `word` (in any process); returns how many.
pub(crate) fn wake(word: &Word, count: u32) -> usize {
    futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
}
