//! The pools: [`ThreadPool`] and the process pool, both resolving the same
//! [`TaskHandle`] completion cell (`task.rs`).

mod completed;
mod map;
#[cfg(all(unix, not(verisync_loom)))]
pub(crate) mod process;
#[cfg(all(not(unix), not(verisync_loom)))]
pub(crate) mod process_unsupported;
mod task;
mod thread;

pub use completed::{as_completed, wait_all, AsCompleted};
pub use map::PoolMap;
pub use task::{TaskError, TaskHandle};
pub use thread::{ThreadPool, ThreadPoolBuilder};
