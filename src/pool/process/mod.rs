//! Process-based parallelism: [`ProcessPool`] and [`process::spawn`](spawn)
//! — Python's `multiprocessing.Pool`, `ProcessPoolExecutor` and `Process`.
//!
//! The parent re-executes its own binary in worker mode; `init()` at the top
//! of `main` recognises worker mode and serves tasks instead of returning.
//! A task is a function identity (`function.rs`) plus its serde-encoded
//! argument, in framed messages over the worker's stdin/stdout pipes
//! (`wire.rs`); the worker side is `worker.rs`, starting a worker
//! `child.rs`, the pool `pool.rs`, a single process `single.rs`.

mod board;
mod child;
mod chunk;
mod crossing;
mod encode;
mod function;
mod map;
mod pool;
mod single;
mod wire;
mod worker;

#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub(crate) use crossing::decode;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub(crate) use encode::encode_into;
pub use map::{ProcessMap, ProcessMapUnordered};
pub use pool::{ProcessPool, ProcessPoolBuilder};
pub use single::{spawn, Process};
pub use worker::write_raw_to_parent;

/// Call first in `main`: in a worker process started by a [`ProcessPool`]
/// or [`spawn`], this serves tasks and exits the process — it never
/// returns; in any other process it returns at once.
///
/// What a worker sees:
///
/// - **its command line**: the parent's own, `argv[0]` included, so code
///   that parses arguments runs the same in both. Code before `init()` runs
///   in every worker too (like Python's module-level code without the
///   `if __name__ == "__main__":` guard), so keep it to that;
/// - **its environment**: the parent's, as it was when the worker started.
///   Worker mode travels in `VERISYNC_*` variables, which `init()` removes
///   before any task runs, so tasks, and programs they start, never see
///   them. (Removing variables races with threads reading the environment:
///   call `init()` before the program starts threads.)
/// - **its executable**: the parent's running image (on Linux
///   `/proc/self/exe`), even if the file was replaced or deleted since;
/// - stdin reads nothing, stdout goes to stderr (a task's `println!` shows
///   up on the parent's stderr), and the working directory is the parent's.
///
/// A task may itself start processes (a [`ProcessPool`] or [`spawn`]);
/// they are the worker's children, reaped by it, and die with it.
///
/// In tests (where `main` is the test harness's), use
/// [`process_test_support!`](crate::process_test_support) instead.
///
/// ```
/// verisync::process::init(); // the first line of main
/// // ... the program, which may create process pools
/// ```
pub fn init() {
    if worker::is_worker_process() {
        crate::process_shared::attach_inherited();
        worker::run_worker();
    }
}

/// Unit tests in a library, laid out as a user's would be: the macro inside
/// `#[cfg(test)] mod tests`.
#[cfg(test)]
mod tests {
    crate::process_test_support!();

    use crate::ProcessPool;

    fn square(x: u64) -> u64 {
        x * x
    }

    #[test]
    fn a_pool_works_in_a_librarys_unit_tests() {
        let pool = ProcessPool::new(1).unwrap();
        assert_eq!(pool.submit(square, 3).join(), Ok(9));
        assert_eq!(super::spawn(square, 4).unwrap().join(), Ok(16));
    }
}
