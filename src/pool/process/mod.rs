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
mod encode;
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
