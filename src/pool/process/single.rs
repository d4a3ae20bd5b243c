//! [`spawn`] and [`Process`]: one function in one child process — Python's
//! `multiprocessing.Process(target=..., args=...)`.

use std::fmt;
use std::io::{BufReader, Write};
use std::marker::PhantomData;
use std::process::{Child, ChildStdout, ExitStatus};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::child::{start_worker, worker_died, WorkerConfig};
use super::crossing::{check_argument_size, decode_result};
use super::function::prepare_task;
use super::wire::{read_frame, write_frame, FromWorker, ReadError, ToWorker, DEFAULT_MAX_FRAME};
use super::worker::refuse_nested_start;
use crate::mutex::Mutex;
use crate::pool::task::TaskError;

/// Runs `function(argument)` in a new child process and returns at once
/// with a handle to it. `function` is a `fn` item, a function pointer
/// `fn(A) -> R`, or a closure that captures nothing (see
/// [`ProcessPool::submit`](crate::ProcessPool::submit) for what happens to
/// one that captures data); the argument and the result cross with serde.
///
/// The child is the current executable in worker mode, so `main` must call
/// [`init()`](super::init) first.
///
/// ```
/// fn count_to(n: u64) -> u64 {
///     (1..=n).sum()
/// }
/// fn main() -> Result<(), verisync::TaskError> {
///     verisync::process::init();
///     let child = verisync::process::spawn(count_to, 100)?;
///     println!("started process {}", child.pid());
///     assert_eq!(child.join()?, 5050);
///     Ok(())
/// }
/// ```
#[track_caller]
pub fn spawn<F, A, R>(function: F, argument: A) -> Result<Process<R>, TaskError>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    refuse_nested_start();
    let task = prepare_task(function, &argument)?;
    check_argument_size(&task.argument, DEFAULT_MAX_FRAME)?;
    let config = WorkerConfig {
        max_tasks: Some(1),
        ..WorkerConfig::default()
    };
    let mut worker = start_worker(&config, &AtomicBool::new(false))?;
    let task = ToWorker::Task {
        id: 0,
        function: task.function,
        argument: task.argument,
    };
    // A write error means the child is already gone; `join` reports how.
    let _ = write_frame(&mut worker.tasks, &task).and_then(|()| worker.tasks.flush());
    drop(worker.tasks);
    Ok(Process {
        pid: worker.child.id(),
        child: Arc::new(Mutex::new_untracked(Some(worker.child))),
        results: Some(worker.results),
        status: Mutex::new_untracked(None),
        _result: PhantomData,
    })
}

/// A child process running one function; from [`spawn`].
///
/// Dropping it without [`join`](Self::join) *detaches* the child: it runs
/// to its end undisturbed and silently (a background thread reads and
/// discards its answer, so the child never writes into a closed pipe), and
/// is reaped when it ends (no zombie). Like every verisync child it still
/// dies with this process (no orphans): a detached child outlives its
/// handle, not its parent. To stop it instead, call [`kill`](Self::kill)
/// or [`terminate`](Self::terminate) before dropping.
pub struct Process<R> {
    pid: u32,
    /// `None` once reaped or handed to the background reaper.
    child: Arc<Mutex<Option<Child>>>,
    /// `None` once handed to the background reaper.
    results: Option<BufReader<ChildStdout>>,
    status: Mutex<Option<ExitStatus>>,
    _result: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> Process<R> {
    /// The child's process id.
    ///
    /// ```
    /// fn idle(_: ()) {}
    /// # verisync::process::init();
    /// let child = verisync::process::spawn(idle, ())?;
    /// assert!(child.pid() > 0);
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the child is still running.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// # verisync::process::init();
    /// let child = verisync::process::spawn(nap, 1_000)?;
    /// assert!(child.is_alive());
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        self.exit_status().is_none()
    }

    /// The child's exit status once it has ended (reaping it), else `None`.
    ///
    /// ```
    /// fn nothing(_: ()) {}
    /// # verisync::process::init();
    /// let child = verisync::process::spawn(nothing, ())?;
    /// let _ = child.exit_status(); // None while it runs
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut status = self.status.lock();
        if status.is_none() {
            if let Some(child) = self.child.lock().as_mut() {
                *status = child.try_wait().ok().flatten();
            }
        }
        *status
    }

    /// Asks the child to stop (SIGTERM), like Python's `terminate()`.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// # verisync::process::init();
    /// let child = verisync::process::spawn(nap, 60_000)?;
    /// child.terminate();
    /// assert!(child.join().is_err());
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn terminate(&self) {
        // The child's lock is held from the liveness check to the signal:
        // only a holder of it can reap the child (`try_wait`/`wait`), so the
        // pid cannot be reaped, and reused by another process, in between.
        let mut child = self.child.lock();
        if let Some(child) = child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        }
    }

    /// Kills the child (SIGKILL), like Python's `kill()`.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// # verisync::process::init();
    /// let child = verisync::process::spawn(nap, 60_000)?;
    /// child.kill();
    /// assert!(matches!(child.join(), Err(verisync::TaskError::WorkerDied { .. })));
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn kill(&self) {
        if let Some(child) = self.child.lock().as_mut() {
            let _ = child.kill();
        }
    }

    /// Waits for the child and returns the function's result, or why there
    /// is none (`WorkerDied` with the signal or exit code if it died,
    /// `Panicked` if the function panicked). The child is reaped.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// # verisync::process::init();
    /// assert_eq!(verisync::process::spawn(square, 9)?.join()?, 81);
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn join(mut self) -> Result<R, TaskError> {
        let answer = match self.results.as_mut() {
            Some(results) => read_frame::<FromWorker>(results, DEFAULT_MAX_FRAME),
            None => Err(ReadError::Closed),
        };
        let status = {
            let mut child = self.child.lock();
            let status = child.as_mut().and_then(|child| child.wait().ok());
            *child = None;
            status.or(*self.status.lock())
        };
        match answer {
            Ok(FromWorker::Done { outcome, .. }) => decode_result(outcome.map_err(TaskError::from)),
            Ok(FromWorker::Ready { .. } | FromWorker::Skipped { .. })
            | Err(ReadError::Garbled(_)) => Err(TaskError::Serialization(
                "the child process answered with garbage".into(),
            )),
            Err(ReadError::Closed) => Err(worker_died(self.pid, status)),
        }
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        // Not joined: detach. The child runs on; a background thread reads
        // (and discards) its answer, so its write never meets a closed pipe,
        // then reaps it.
        let results = self.results.take();
        let child = self.child.lock().take();
        if let Some(mut child) = child {
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = std::thread::Builder::new()
                    .name("verisync-reaper".into())
                    .spawn(move || {
                        if let Some(mut results) = results {
                            let _ = std::io::copy(&mut results, &mut std::io::sink());
                        }
                        let _ = child.wait();
                    });
            }
        }
    }
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Process")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}
