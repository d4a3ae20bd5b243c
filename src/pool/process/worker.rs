//! The worker side: what `verisync::process::init()` does in a process the
//! pool started.
//!
//! The parent starts this program again (`child.rs`), with its own command
//! line, the worker-mode variables below in the environment, the task pipe
//! on stdin and the result pipe on stdout. `init()` sees `VERISYNC_WORKER`
//! and never returns: it reads the variables and removes them (so the
//! tasks, and any program a task starts, see the parent's environment and
//! not worker mode), keeps the two pipes on private descriptors, points
//! stdin at nothing and stdout at stderr (so a task's `println!` cannot
//! corrupt the protocol), arranges to die with the parent, writes the
//! preamble (the parent's "it started"), runs the initializer, says
//! `Ready`, and then runs tasks until the parent closes the task pipe (or
//! dies), or the task limit is reached.
//!
//! A task may start processes of its own (`spawn`, a `ProcessPool`): the
//! worker-mode variables are gone by then, so its children are workers of
//! the worker, started and reaped by it, and they die with it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::board::Board;
use super::function::{initializer_at, trampoline_at};
use super::wire::{
    encode_message, read_frame, write_encoded_frame, write_frame, Failure, FromWorker, ReadError,
    ToWorker, DEFAULT_MAX_FRAME, PREAMBLE,
};
use crate::panic_payload::take_panic_message;

/// Set in a worker's environment: "you are a worker".
pub(crate) const WORKER_VARIABLE: &str = "VERISYNC_WORKER";
/// The parent's pid, to notice a parent that died before we could watch it.
pub(crate) const PARENT_VARIABLE: &str = "VERISYNC_PARENT_PID";
/// How many tasks to run before exiting (absent: no limit).
pub(crate) const MAX_TASKS_VARIABLE: &str = "VERISYNC_MAX_TASKS";
/// The initializer's identity (absent: none).
pub(crate) const INITIALIZER_VARIABLE: &str = "VERISYNC_INITIALIZER";
/// The largest frame either side may send (absent: `DEFAULT_MAX_FRAME`).
pub(crate) const MAX_FRAME_VARIABLE: &str = "VERISYNC_MAX_FRAME";

/// Every worker-mode variable: `init()` removes them all.
const ALL_VARIABLES: [&str; 5] = [
    WORKER_VARIABLE,
    PARENT_VARIABLE,
    MAX_TASKS_VARIABLE,
    INITIALIZER_VARIABLE,
    MAX_FRAME_VARIABLE,
];

/// What the parent told this worker, through the variables.
struct Settings {
    parent: Option<i32>,
    max_tasks: Option<u64>,
    initializer: Option<i64>,
    max_frame: u32,
}

/// Reads the worker-mode variables and removes them from the environment.
///
/// Removing an environment variable races with any other thread reading
/// the environment (`getenv` in C code is not synchronised with it). This
/// runs in `init()`, which must come before the program starts threads,
/// or in the constructor of `process_test_support!`, before `main`: either
/// way on the only thread there is. And only in a worker process: in any
/// other process `init()` touches nothing.
fn take_settings() -> Settings {
    fn read<T: std::str::FromStr>(name: &str) -> Option<T> {
        std::env::var(name).ok()?.parse().ok()
    }
    let settings = Settings {
        parent: read(PARENT_VARIABLE),
        max_tasks: read(MAX_TASKS_VARIABLE),
        initializer: read(INITIALIZER_VARIABLE),
        max_frame: read(MAX_FRAME_VARIABLE).unwrap_or(DEFAULT_MAX_FRAME),
    };
    for name in ALL_VARIABLES {
        std::env::remove_var(name);
    }
    settings
}

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

    let settings = take_settings();
    use rustix::stdio::{dup2_stdin, dup2_stdout, stderr, stdin, stdout};

    // Keep the pipes on private descriptors (closed on exec), then make
    // fd 0 read nothing and fd 1 write to stderr.
    let tasks = File::from(fcntl_dupfd_cloexec(stdin(), 3)?);
    let results = File::from(fcntl_dupfd_cloexec(stdout(), 3)?);
    dup2_stdin(File::open("/dev/null")?)?;
    dup2_stdout(stderr())?;
    std::io::stdout().flush()?;

    watch_parent(settings.parent);

    RESULT_CHANNEL.get_or_init(|| results.try_clone().ok());
    let mut tasks = BufReader::new(tasks);
    let mut results = BufWriter::new(results);

    // "Started": from here the parent waits for `Ready` as long as the
    // initializer takes.
    results.write_all(PREAMBLE)?;
    results.flush()?;
    let init_error = settings.initializer.and_then(|identity| {
        // SAFETY: the parent computed this identity in this executable.
        let initializer = unsafe { initializer_at(identity) };
        catch_unwind(AssertUnwindSafe(initializer))
            .err()
            .map(take_panic_message)
    });
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

    let Settings {
        max_tasks,
        max_frame,
        ..
    } = settings;
    let mut done = 0u64;
    // A pool's worker gets a task board first (`board.rs`); `spawn`'s child
    // runs its one task without one.
    let mut board: Option<Board> = None;
    loop {
        if max_tasks.is_some_and(|limit| done >= limit) {
            return Ok(0);
        }
        let task = match read_frame::<ToWorker>(&mut tasks, max_frame) {
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
        let answer = answer_within(id, outcome, max_frame)?;
        write_encoded_frame(&mut results, &answer)?;
        // Every answer leaves before the next task starts: if that task
        // crashes the worker, the parent must already have this one, or it
        // would blame (and lose) a task that finished.
        results.flush()?;
        done += 1;
    }
}

/// The encoded `Done` frame for task `id`; if the result makes it larger
/// than the parent accepts, a `Done` saying so instead (the task fails, the
/// worker lives on, and the parent never reads the oversized frame).
fn answer_within(
    id: u64,
    outcome: Result<Vec<u8>, Failure>,
    max_frame: u32,
) -> std::io::Result<Vec<u8>> {
    let answer = encode_message(&FromWorker::Done { id, outcome })?;
    if answer.len() <= max_frame as usize {
        return Ok(answer);
    }
    encode_message(&FromWorker::Done {
        id,
        outcome: Err(Failure::Serialization(format!(
            "the result is {} bytes encoded, more than the pool's frame limit of {max_frame} \
             bytes; raise it with ProcessPoolBuilder::max_frame_size, or return less",
            answer.len()
        ))),
    })
}

/// Dies with the parent: Linux's parent-death signal, plus a check that
/// the parent did not die before it was set. (Elsewhere the closed task
/// pipe ends the worker when it next reads.)
fn watch_parent(expected: Option<i32>) {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getppid, set_parent_process_death_signal, Signal};
        let _ = set_parent_process_death_signal(Some(Signal::KILL));
        let actual = getppid().map(|pid| pid.as_raw_nonzero().get());
        if expected.is_some() && expected != actual {
            std::process::exit(0);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = expected;
}

/// Panics if this process is a worker whose `main` did not call `init()`
/// first: without this, a worker would run the program's `main` and could
/// start pools of its own, and so on (a fork bomb). A task running in a
/// worker passes: `init()` removed the worker-mode variables before it, so
/// a task may start processes of its own.
#[track_caller]
pub(crate) fn refuse_nested_start() {
    if is_worker_process() {
        panic!(
            "verisync: this process was started as a worker of a process pool, but its main() \
             did not call verisync::process::init() first, so it ran main() instead of serving \
             tasks. Make `verisync::process::init();` the first line of main (in tests: \
             `verisync::process_test_support!();` anywhere in the test crate)."
        );
    }
}
