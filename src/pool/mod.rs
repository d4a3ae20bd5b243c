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

/// Lets tests that use process pools run under the normal `cargo test`
/// harness: put `verisync::process_test_support!();` at the top level of
/// the test file. It adds the hidden test `__verisync_process_worker`,
/// which is what a worker process runs instead of `main` (on platforms
/// without process support it is harmless: `init()` does nothing there).
///
/// ```ignore
/// verisync::process_test_support!();
///
/// fn square(x: u64) -> u64 { x * x }
///
/// #[test]
/// fn squares_in_a_worker() {
///     let pool = verisync::ProcessPool::new(1).unwrap();
///     assert_eq!(pool.submit(square, 3).join(), Ok(9));
/// }
/// ```
#[macro_export]
macro_rules! process_test_support {
    () => {
        #[test]
        #[ignore = "the entry point of verisync worker processes; it runs only inside them"]
        fn __verisync_process_worker() {
            $crate::process::init();
        }
    };
}
