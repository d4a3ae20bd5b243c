//! The worker side: what `verisync::process::init()` does in a process the
//! pool started.
//!
//! The parent starts the current executable with `VERISYNC_WORKER` set and
//! the task pipe on stdin, the result pipe on stdout. `init()` sees the
//! variable and never returns: it keeps the two pipes on private
//! descriptors, points stdin at nothing and stdout at stderr (so a task's
//! `println!` cannot corrupt the protocol), arranges to die with the parent,
//! runs the initializer, says `Ready`, and then runs tasks until the parent
//! closes the task pipe (or dies), or the task limit is reached.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::board::Board;
use super::function::{initializer_at, trampoline_at};
use super::wire::{read_frame, write_frame, FromWorker, ReadError, ToWorker, PREAMBLE};
use crate::pool::task::panic_message;

/// Set in a worker's environment: "you are a worker".
pub(crate) const WORKER_VARIABLE: &str = "VERISYNC_WORKER";
/// The parent's pid, to notice a parent that died before we could watch it.
pub(crate) const PARENT_VARIABLE: &str = "VERISYNC_PARENT_PID";
/// How many tasks to run before exiting (absent: no limit).
pub(crate) const MAX_TASKS_VARIABLE: &str = "VERISYNC_MAX_TASKS";
/// The initializer's identity (absent: none).
pub(crate) const INITIALIZER_VARIABLE: &str = "VERISYNC_INITIALIZER";

/// Exit code of a worker whose initializer panicked.
pub(crate) const INITIALIZER_FAILED_EXIT: i32 = 3;

/// The result pipe, for [`write_raw_to_parent`] (tests of the parent's
/// handling of a garbled stream).
static RESULT_CHANNEL: std::sync::OnceLock<Option<File>> = std::sync::OnceLock::new();

/// Writes `bytes` straight onto the worker's result pipe, bypassing the
/// framing. Only for tests: it lets a task simulate a corrupted stream.
/// Does nothing outside a worker process.
pub fn write_raw_to_parent(bytes: &[u8]) {
    if let Some(Some(mut channel)) = RESULT_CHANNEL.get().map(|file| file.as_ref()) {
        let _ = channel.write_all(bytes);
    }
}

/// Whether this process was started as a worker.
pub(crate) fn is_worker_process() -> bool {
    std::env::var_os(WORKER_VARIABLE).is_some()
}

/// Worker mode: runs tasks, then exits the process. Never returns.
pub(crate) fn run_worker() -> ! {
    let code = match serve() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("verisync worker {}: {error}", std::process::id());
            2
        }
    };
    std::process::exit(code)
}

fn serve() -> std::io::Result<i32> {
    use rustix::io::fcntl_dupfd_cloexec;
    use rustix::stdio::{dup2_stdin, dup2_stdout, stderr, stdin, stdout};

    // Keep the pipes on private descriptors (closed on exec), then make
    // fd 0 read nothing and fd 1 write to stderr.
    let tasks = File::from(fcntl_dupfd_cloexec(stdin(), 3)?);
    let results = File::from(fcntl_dupfd_cloexec(stdout(), 3)?);
    dup2_stdin(File::open("/dev/null")?)?;
    dup2_stdout(stderr())?;
    std::io::stdout().flush()?;

    watch_parent();

    RESULT_CHANNEL.get_or_init(|| results.try_clone().ok());
    let mut tasks = BufReader::new(tasks);
    let mut results = BufWriter::new(results);

    let init_error = std::env::var(INITIALIZER_VARIABLE)
        .ok()
        .and_then(|identity| identity.parse::<i64>().ok())
        .and_then(|identity| {
            // SAFETY: the parent computed this identity in this executable.
            let initializer = unsafe { initializer_at(identity) };
            catch_unwind(AssertUnwindSafe(initializer))
                .err()
                .map(|payload| panic_message(&*payload))
        });
    results.write_all(PREAMBLE)?;
    write_frame(
        &mut results,
        &FromWorker::Ready {
            init_error: init_error.clone(),
        },
    )?;
    results.flush()?;
    if init_error.is_some() {
        return Ok(INITIALIZER_FAILED_EXIT);
    }

    let max_tasks: Option<u64> = std::env::var(MAX_TASKS_VARIABLE)
        .ok()
        .and_then(|limit| limit.parse().ok());
    let mut done = 0u64;
    // A pool's worker gets a task board first (`board.rs`); `spawn`'s child
    // runs its one task without one.
    let mut board: Option<Board> = None;
    loop {
        if max_tasks.is_some_and(|limit| done >= limit) {
            return Ok(0);
        }
        let task = match read_frame::<ToWorker>(&mut tasks) {
            Ok(task) => task,
            Err(ReadError::Closed) => return Ok(0),
            Err(ReadError::Garbled(reason)) => {
                eprintln!("verisync worker {}: {reason}", std::process::id());
                return Ok(2);
            }
        };
        let (id, function, argument) = match task {
            ToWorker::Board { name } => {
                board = Some(Board::open(&name)?);
                continue;
            }
            ToWorker::Task {
                id,
                function,
                argument,
            } => (id, function, argument),
        };
        if board.as_ref().is_some_and(|board| !board.start(id)) {
            // Cancelled while it waited here: it never runs.
            write_frame(&mut results, &FromWorker::Skipped { id })?;
            results.flush()?;
            continue;
        }
        // SAFETY: the parent computed this identity in this executable.
        let trampoline = unsafe { trampoline_at(function) };
        let outcome = trampoline(&argument);
        if board.as_ref().is_some_and(|board| !board.finish(id)) {
            // Over its timeout: the parent is killing this worker and
            // reports the task `TimedOut`; no answer may follow.
            return Ok(0);
        }
        write_frame(&mut results, &FromWorker::Done { id, outcome })?;
        // Every answer leaves before the next task starts: if that task
        // crashes the worker, the parent must already have this one, or it
        // would blame (and lose) a task that finished.
        results.flush()?;
        done += 1;
    }
}

/// Dies with the parent: Linux's parent-death signal, plus a check that
/// the parent did not die before it was set. (Elsewhere the closed task
/// pipe ends the worker when it next reads.)
fn watch_parent() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getppid, set_parent_process_death_signal, Signal};
        let _ = set_parent_process_death_signal(Some(Signal::KILL));
        let expected: Option<i32> = std::env::var(PARENT_VARIABLE)
            .ok()
            .and_then(|pid| pid.parse().ok());
        let actual = getppid().map(|pid| pid.as_raw_nonzero().get());
        if expected.is_some() && expected != actual {
            std::process::exit(0);
        }
    }
}

/// Panics if this process is a worker whose `main` did not call `init()`
/// first: without this, a worker would run the program's `main` and could
/// start pools of its own, and so on (a fork bomb).
#[track_caller]
pub(crate) fn refuse_nested_start() {
    if is_worker_process() {
        panic!(
            "verisync: this process was started as a worker of a process pool, but its main() \
             did not call verisync::process::init() first, so it ran main() instead of serving \
             tasks. Make `verisync::process::init();` the first line of main (in tests: \
             `verisync::process_test_support!();` at the top of the test file)."
        );
    }
}
