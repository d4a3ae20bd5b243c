//! Data-free state machines: the part of each primitive that loom checks.
//!
//! Each type here is an atomic state word plus calls into the parking seam
//! (`sys::park`); the safe types in the crate root put data and guards on top.

pub(crate) mod event;
pub(crate) mod mutex;
#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
pub(crate) mod process_barrier;
#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
pub(crate) mod process_condition;
#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
pub(crate) mod process_event;
#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
pub(crate) mod process_lock;
#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
pub(crate) mod process_queue;
#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
pub(crate) mod process_semaphore;
#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
pub(crate) mod process_state;
pub(crate) mod reentrant;
pub(crate) mod semaphore;
pub(crate) mod wait_list;
