//! Deadlock diagnostics at run time (cargo feature `deadlock-detection`,
//! off by default; without it this module does not exist — using it is a
//! "could not find `deadlock` in `verisync`" error — and the locks carry no
//! extra field, call or branch).
//!
//! With the feature on, every [`Mutex`](crate::Mutex) and
//! [`ReentrantLock`](crate::ReentrantLock) the program creates is tracked
//! (the crate's own internal locks are not):
//!
//! - [`detect`]: the cycles of threads blocked right now, each waiting for
//!   a lock the next one holds — blocking and timed waits, and a
//!   [`Condition`](crate::Condition) waiter re-taking its lock.
//! - [`watchdog`]: a background thread that reports each new deadlock once.
//! - [`lock_order_violations`]: locks taken in orders that *can* deadlock,
//!   even if this run did not; [`panic_on_lock_order_violation`] turns them
//!   into panics at the acquisition that closes the cycle (for test suites).
//! - [`blocked_threads`]: a dump of every thread blocked in a verisync
//!   primitive, what it waits for, where, how long, and what it holds.
//!
//! Locks are named by `with_name`, or else by the place they were created;
//! each acquisition is named by the `lock()` call's source line. Detection
//! never wakes or disturbs a thread: a program whose waits have timeouts
//! carries on. Lock identities are stable ids ([`LockId`]), never addresses.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use verisync::{deadlock, Barrier, Mutex};
//!
//! let a = Arc::new(Mutex::with_name("A", ()));
//! let b = Arc::new(Mutex::with_name("B", ()));
//! let both_hold_one = Arc::new(Barrier::new(2));
//! let spawn = |first: Arc<Mutex<()>>, second: Arc<Mutex<()>>, name: &str| {
//!     let both_hold_one = Arc::clone(&both_hold_one);
//!     std::thread::Builder::new()
//!         .name(name.into())
//!         .spawn(move || {
//!             let _first = first.lock();
//!             both_hold_one.wait();
//!             // The other thread holds `second` and waits for `first`: one
//!             // of the two times out, which ends the deadlock.
//!             second.try_lock_for(Duration::from_millis(500)).is_some()
//!         })
//!         .unwrap()
//! };
//! let one = spawn(Arc::clone(&a), Arc::clone(&b), "thread-1");
//! let two = spawn(Arc::clone(&b), Arc::clone(&a), "thread-2");
//! let mut found = deadlock::detect();
//! while found.is_empty() && !one.is_finished() {
//!     std::thread::yield_now();
//!     found = deadlock::detect();
//! }
//! // The report reads like the lesson (unless the machine was so slow that
//! // the waits timed out before it was made).
//! for cycle in &found {
//!     eprintln!("{cycle}");
//!     assert_eq!(cycle.threads.len(), 2);
//! }
//! let (got_one, got_two) = (one.join().unwrap(), two.join().unwrap());
//! assert!(!(got_one && got_two));
//! ```
//!
//! # Limits
//!
//! - A guard leaked with `mem::forget` leaves its lock held in the reports
//!   (the lock really stays locked) for as long as its thread lives (no
//!   report shows a thread that has ended); dropping the lock removes every
//!   trace of it.
//! - A lock taken while its thread is being torn down (in a thread-local's
//!   destructor, after the diagnostics' own thread-local is gone) is not
//!   tracked; one released then is simply forgotten with its thread.
//! - With [`panic_on_lock_order_violation`] on, a violation closed inside a
//!   thread-local's destructor aborts the process (a panic there always
//!   does); see that function for the workaround.
//! - A lock taken while the diagnostics' own code runs on the same thread
//!   is not tracked: a lock inside the program's `#[global_allocator]` (a
//!   counting allocator with a `verisync::Mutex`) works, but its
//!   acquisitions made for the diagnostics' allocations (their bookkeeping
//!   growing, a report being built) are not tracked, and one dropped then
//!   leaves its traces. The diagnostics make room for a lock's entry before
//!   taking the lock, so they never allocate while holding it. One case
//!   is not handled: a report (`detect`, `blocked_threads`) holds every
//!   thread record's lock while it allocates, so with a tracked lock inside
//!   the allocator, a thread published as blocked that runs user code
//!   taking its record's lock while it holds the allocator's lock (a
//!   priority item's `Ord` inside a blocked `JoinableQueue::get`) can
//!   deadlock with the report. Keep allocator locks untracked (a
//!   `std::sync::Mutex` there) when using the reports.
//! - Cost: an acquisition that does not block touches only thread-local
//!   bookkeeping (a push on the thread's held list, and a hash lookup per
//!   lock already held; the first time a thread takes a new pair, an update
//!   of the global lock-order graph); a release pops. Only a thread about
//!   to block takes a lock: its own record's, to publish what it waits for
//!   and what it holds.

// Under loom the lock-free parts (lock ids, holders) are loom atomics and
// the thread-locals loom's (see `hooks_on.rs`, "Under loom"); shuttle has
// no model of them.
#[cfg(verisync_shuttle)]
compile_error!(
    "the `deadlock-detection` feature is not modelled under shuttle (its lock-free \
     parts are modelled by the loom suite); build the shuttle suite without it"
);

/// The hooks the locks call (`hooks_off.rs` has the same items as
/// `#[inline]` no-ops, used when the feature is off).
#[path = "hooks_on.rs"]
pub(crate) mod hooks;

mod api;
mod order;
mod registry;
mod report;
mod watchdog;

pub use api::*;
