//! The pools: [`ThreadPool`] now, the process pool later, both resolving
//! the same [`TaskHandle`] completion cell (`task.rs`).

mod completed;
mod map;
mod task;
mod thread;

pub use completed::{as_completed, wait_all, AsCompleted};
pub use map::PoolMap;
pub use task::{TaskError, TaskHandle};
pub use thread::{ThreadPool, ThreadPoolBuilder};
