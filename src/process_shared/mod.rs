//! Process-shared primitives: [`Lock`] and [`Value`] (first landing; the
//! rest of issue 14 — `Semaphore`, `Event`, `Condition`, `Barrier`,
//! `JoinableQueue`, `Array` — builds on the same pieces).
//!
//! # Implementation details
//!
//! - **Where objects live** (`arena.rs`): one block of shared memory per
//!   process tree (a sealed `memfd`), created by the first object and
//!   inherited by every process that `process::spawn` or a `ProcessPool`
//!   starts afterwards, which attaches it in `process::init()`. An object
//!   is a 64-byte-aligned piece of it; a handle (what `Lock` and `Value`
//!   serialize to) is `(arena id, offset, kind, tag)`, checked when it is
//!   opened. Objects are never freed.
//! - **Who holds a lock** (`table.rs`): each process claims a slot in the
//!   arena's process table (pid and start time, against pid reuse); a lock
//!   word names its holder by slot and generation. A holder is alive while
//!   its slot is still its own and `/proc/<pid>/stat` shows the same
//!   process, not a zombie.
//! - **The lock** (`raw/process_lock.rs`, state table there): a 32-bit word
//!   (holder, `WAITERS`, `OWNER_DIED`) and the futex seam (`sys::futex`:
//!   shared `futex(2)` in production, a loom model with a "process died"
//!   step under `--cfg verisync_loom`). A waiter checks the holder's
//!   liveness before each sleep and sleeps at most 10 ms at a time, so a
//!   holder that died is noticed within about that; the waiter that takes
//!   the lock from it is told ([`OwnerDied`]). The mark stays on the lock
//!   until a locker acknowledges it with [`OwnerDied::into_guard`] (like
//!   `pthread_mutex_consistent`, folded into taking the guard).
//! - **Shared memory is untrusted**: every number read from it is checked
//!   before use (the allocation pointer, an object's header, a lock word's
//!   holder); a garbage lock word counts as a dead holder's (the next locker
//!   recovers it and is told). A process that writes a *live* process's
//!   identity into a free lock word makes it look held by that process: a
//!   timed lock then times out; nothing reads out of bounds.
//! - Limits: processes forked without `exec` share their parent's identity
//!   (start them with `process::spawn` or a pool); 1024 processes at once
//!   per tree; 4 MiB of objects per tree.

#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod arena;
mod error;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod lock;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod robust;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod table;
#[cfg(not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))))]
mod unsupported;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod value;

#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub(crate) use arena::{attach_inherited, pass_to_child};
pub use error::{AcknowledgeOwnerDeath, OwnerDied, SharedError, TryLockError};
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use lock::{__lock_words, Lock, LockGuard};
#[cfg(not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))))]
pub use unsupported::{__lock_words, Lock, LockGuard, Value, ValueGuard, ValueInteger};
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use value::{Value, ValueGuard, ValueInteger};

#[cfg(all(
    unix,
    not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))
))]
pub(crate) use unsupported::{attach_inherited, pass_to_child};
