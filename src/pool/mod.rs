//! The pools: [`ThreadPool`] and the process pool, both resolving the same
//! [`TaskHandle`] completion cell (`task.rs`).

mod completed;
mod hand_out;
mod map;
mod map_unordered;
#[cfg(all(unix, not(verisync_loom)))]
pub(crate) mod process;
#[cfg(all(not(unix), not(verisync_loom)))]
pub(crate) mod process_unsupported;
mod scope;
mod scope_tasks;
mod scoped_task;
mod task;
mod thread;
mod wait;
mod watch;

pub use completed::{
    as_completed, as_completed_timeout, wait_all, AsCompleted, AsCompletedTimedOut,
    AsCompletedTimeout,
};
pub use map::PoolMap;
pub use map_unordered::PoolMapUnordered;
pub use scope::Scope;
pub use scoped_task::ScopedTaskHandle;
pub use task::{TaskError, TaskHandle};
pub use thread::{ThreadPool, ThreadPoolBuilder};
pub use wait::{wait, ReturnWhen};

/// Lets tests that use process pools run under the normal `cargo test`
/// harness: put `verisync::process_test_support!();` anywhere in the test
/// crate — at the top of an integration test file, inside a
/// `#[cfg(test)] mod tests` of a library (at any depth), or in a doc test.
/// Once per test binary is enough; more are harmless.
///
/// A test binary's `main` belongs to the test harness, so it cannot call
/// [`process::init()`](crate::process::init) first. This macro registers a
/// constructor, run before `main`, that calls `init()`: in a worker process
/// it serves tasks and exits before the harness starts (so workers do not
/// depend on which tests the command line selects); in any other process
/// it returns at once and the harness runs as usual. Supported where
/// constructors are (Linux, Android, the BSDs, illumos, Solaris, macOS and
/// iOS); elsewhere it does nothing, like `init()` on platforms without
/// process support.
///
/// Such a worker runs its tasks before the Rust runtime's own start-up in
/// `main`, so two things differ from a worker of a program's `main`:
/// SIGPIPE keeps its default action (writing to a closed pipe ends the
/// worker instead of returning an error), and a stack overflow is a plain
/// SIGSEGV without std's message. Both end only that worker's task.
///
/// ```
/// verisync::process_test_support!();
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// // In a doc test too: no `init()` needed.
/// let pool = verisync::ProcessPool::new(1)?;
/// assert_eq!(pool.submit(square, 3).join()?, 9);
/// # Ok::<(), verisync::TaskError>(())
/// ```
///
/// In a library's unit tests:
///
/// ```ignore
/// #[cfg(test)]
/// mod tests {
///     verisync::process_test_support!();
///
///     fn square(x: u64) -> u64 { x * x }
///
///     #[test]
///     fn squares_in_a_worker() {
///         let pool = verisync::ProcessPool::new(1).unwrap();
///         assert_eq!(pool.submit(square, 3).join(), Ok(9));
///     }
/// }
/// ```
#[macro_export]
macro_rules! process_test_support {
    () => {
        const _: () = {
            /// Runs before `main`: serves tasks in a worker process.
            extern "C" fn verisync_serve_if_worker() {
                $crate::process::init();
            }

            // An entry in the table of functions the loader runs before
            // `main` (ELF `.init_array`, Mach-O `__mod_init_func`).
            // `#[used]` keeps it though nothing refers to it.
            #[used]
            #[cfg_attr(
                any(
                    target_os = "linux",
                    target_os = "android",
                    target_os = "freebsd",
                    target_os = "netbsd",
                    target_os = "openbsd",
                    target_os = "dragonfly",
                    target_os = "illumos",
                    target_os = "solaris"
                ),
                unsafe(link_section = ".init_array")
            )]
            #[cfg_attr(
                any(target_os = "macos", target_os = "ios"),
                unsafe(link_section = "__DATA,__mod_init_func")
            )]
            static VERISYNC_SERVE_IF_WORKER: extern "C" fn() = verisync_serve_if_worker;
        };
    };
}
