//! Process-based parallelism: [`ProcessPool`] and [`process::spawn`](spawn)
//! — Python's `multiprocessing.Pool`, `ProcessPoolExecutor` and `Process`.
//!
//! The parent re-executes its own binary in worker mode; `init()` at the top
//! of `main` recognises worker mode and serves tasks instead of returning.
//! A task is a function identity (`function.rs`) plus its serde-encoded
//! argument, in framed messages over the worker's stdin/stdout pipes
//! (`wire.rs`); the worker side is `worker.rs`, starting a worker
//! `child.rs`, the pool `pool.rs`, a single process `single.rs`.

mod child;
mod function;
mod pool;
mod single;
mod wire;
mod worker;

pub use pool::{ProcessMap, ProcessPool, ProcessPoolBuilder};
pub use single::{spawn, Process};
pub use worker::write_raw_to_parent;

/// Call first in `main`: in a worker process started by a [`ProcessPool`]
/// or [`spawn`], this serves tasks and exits the process — it never
/// returns; in any other process it returns at once.
///
/// ```
/// verisync::process::init(); // the first line of main
/// // ... the program, which may create process pools
/// ```
pub fn init() {
    if worker::is_worker_process() {
        worker::run_worker();
    }
}

/// Lets tests that use process pools run under the normal `cargo test`
/// harness: put `verisync::process_test_support!();` at the top level of
/// the test file. It adds the hidden test `__verisync_process_worker`,
/// which is what a worker process runs instead of `main`.
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
