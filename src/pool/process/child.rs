//! Starting a worker process and waiting for its `Ready`.
//!
//! # How a worker is started
//!
//! The worker is this same program, started from its running image (on
//! Linux `/proc/self/exe`, which stays valid when the file on disk is
//! replaced or deleted, as by a deploy or a `cargo build`), with the
//! parent's own command line (argv[0] included), so a program that parses
//! its arguments before `init()` sees what it expects. Worker mode travels
//! in environment variables (`worker.rs`), which the worker removes before
//! any user code can see them.
//!
//! # The handshake
//!
//! ```text
//!  worker:  [stray output] PREAMBLE  (initializer runs)  Ready { init_error }
//!  parent:  ├─ READY_TIMEOUT ───────┤├─ no limit: the worker is alive and initializing ─┤
//! ```
//!
//! The preamble says the worker reached `init()`; a worker that does not
//! say so within [`READY_TIMEOUT`] never will (its `main` does not call
//! `init()` early enough). After the preamble the initializer runs for as
//! long as it takes: the parent waits for `Ready`, or for the pipe to close
//! if the worker dies, which is reported with its exit status. A start
//! the caller abandons (a pool being terminated while it replaces a worker)
//! kills the worker, whatever stage it is at.

use std::ffi::OsString;
use std::io::{BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wire::{read_frame, skip_to_preamble, FromWorker, ReadError, DEFAULT_MAX_FRAME};
use super::worker::{
    INITIALIZER_VARIABLE, MAX_FRAME_VARIABLE, MAX_TASKS_VARIABLE, PARENT_VARIABLE, WORKER_VARIABLE,
};
use crate::pool::task::TaskError;
use crate::queue::JoinableQueue;

/// How long a new worker may take to reach `init()` (its preamble).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a worker process is started.
#[derive(Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) max_tasks: Option<u64>,
    pub(crate) initializer: Option<i64>,
    /// The largest frame either side may send.
    pub(crate) max_frame: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_tasks: None,
            initializer: None,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// What the handshake thread reports, in this order.
enum Handshake {
    /// The preamble came (the worker is in `init()`), or why it did not.
    Started(Result<(), ReadError>),
    /// The first frame after it, with the result pipe handed back.
    Answered(BufReader<ChildStdout>, Result<FromWorker, ReadError>),
}

/// A started, ready worker process and its two pipes.
pub(crate) struct WorkerProcess {
    pub(crate) child: Child,
    pub(crate) tasks: BufWriter<ChildStdin>,
    pub(crate) results: BufReader<ChildStdout>,
}

/// The program to start as a worker: this process's running image.
fn worker_executable() -> Result<OsString, TaskError> {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        // Names the running image even after its file was replaced or
        // deleted. Resolved by the child as it executes, while it still is
        // a copy of this process.
        return Ok("/proc/self/exe".into());
    }
    std::env::current_exe()
        .map(OsString::from)
        .map_err(|error| TaskError::Spawn(format!("cannot find the current executable: {error}")))
}

/// How often a start that waits for its worker looks whether it was
/// abandoned.
const ABANDON_POLL: Duration = Duration::from_millis(20);

/// What waiting for the next handshake event gave.
enum Waited {
    Event(Handshake),
    TimedOut,
    /// `abandon` was set: the pool is being terminated.
    Abandoned,
}

/// Waits for the handshake's next event, at most `timeout` (`None`: no
/// limit), giving up early once `abandon` is set.
fn next_event(
    events: &JoinableQueue<Handshake>,
    timeout: Option<Duration>,
    abandon: &AtomicBool,
) -> Waited {
    let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
    loop {
        if abandon.load(Ordering::SeqCst) {
            return Waited::Abandoned;
        }
        let wait = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Waited::TimedOut;
                }
                left.min(ABANDON_POLL)
            }
            None => ABANDON_POLL,
        };
        if let Ok(event) = events.get_timeout(wait) {
            return Waited::Event(event);
        }
    }
}

/// Starts a worker and waits for its `Ready`; gives up (killing it) once
/// `abandon` is set, so terminating a pool does not wait for a replacement
/// worker's initializer.
#[track_caller]
pub(crate) fn start_worker(
    config: &WorkerConfig,
    abandon: &AtomicBool,
) -> Result<WorkerProcess, TaskError> {
    use std::os::unix::process::CommandExt;

    let mut command = Command::new(worker_executable()?);
    let mut arguments = std::env::args_os();
    if let Some(program_name) = arguments.next() {
        command.arg0(program_name);
    }
    command
        .args(arguments)
        .env(WORKER_VARIABLE, "1")
        .env(PARENT_VARIABLE, std::process::id().to_string())
        .env(MAX_FRAME_VARIABLE, config.max_frame.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match config.max_tasks {
        Some(limit) => command.env(MAX_TASKS_VARIABLE, limit.to_string()),
        None => command.env_remove(MAX_TASKS_VARIABLE),
    };
    match config.initializer {
        Some(identity) => command.env(INITIALIZER_VARIABLE, identity.to_string()),
        None => command.env_remove(INITIALIZER_VARIABLE),
    };
    // The process tree's shared memory, if this process has created (or
    // inherited) it: the child attaches it in `init()`.
    crate::process_shared::pass_to_child(&mut command);
    let mut child = spawn_from_long_lived_thread(command)
        .map_err(|error| TaskError::Spawn(format!("cannot start a worker process: {error}")))?;
    let tasks = BufWriter::new(child.stdin.take().expect("stdin is piped"));
    let results = BufReader::new(child.stdout.take().expect("stdout is piped"));

    // Read the handshake on a helper thread, so a worker that never
    // reaches init() costs a timeout, not a hang.
    let events = Arc::new(JoinableQueue::<Handshake>::bounded(2));
    {
        let events = Arc::clone(&events);
        let mut results = results;
        std::thread::Builder::new()
            .name("verisync-worker-handshake".into())
            .spawn(move || {
                let started = skip_to_preamble(&mut results).map(|stray| {
                    // Printed before init() took over stdout: show it.
                    if !stray.is_empty() {
                        let _ = std::io::stderr().write_all(&stray);
                    }
                });
                let reached_init = started.is_ok();
                let _ = events.put(Handshake::Started(started));
                if reached_init {
                    let answer = read_frame::<FromWorker>(&mut results, DEFAULT_MAX_FRAME);
                    let _ = events.put(Handshake::Answered(results, answer));
                }
            })
            .map_err(|error| {
                let _ = child.kill();
                let _ = child.wait();
                TaskError::Spawn(format!("cannot start a thread: {error}"))
            })?;
    }
    let started = match next_event(&events, Some(READY_TIMEOUT), abandon) {
        Waited::Event(Handshake::Started(started)) => started,
        Waited::Event(Handshake::Answered(..)) => {
            unreachable!("the handshake reports Started first")
        }
        Waited::Abandoned => return Err(abandoned(child)),
        Waited::TimedOut => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TaskError::Spawn(format!(
                "the worker process did not reach `verisync::process::init()` within {} s; is \
                 it the first line of main (in tests: `verisync::process_test_support!();`)?",
                READY_TIMEOUT.as_secs()
            )));
        }
    };
    match started {
        Ok(()) => {}
        Err(ReadError::Closed) => {
            let status = child.wait().ok();
            return Err(TaskError::Spawn(format!(
                "the worker process exited before it reached `verisync::process::init()` ({}); \
                 is it the first line of main (in tests: \
                 `verisync::process_test_support!();`)? Its stderr says more.",
                describe_status(status)
            )));
        }
        Err(ReadError::Garbled(reason)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TaskError::Spawn(format!(
                "the worker process never announced itself: {reason}"
            )));
        }
    }
    // The worker is in init(), running the initializer: wait as long as
    // that takes (a worker that dies closes the pipe).
    let (results, answer) = match next_event(&events, None, abandon) {
        Waited::Event(Handshake::Answered(results, answer)) => (results, answer),
        Waited::Abandoned => return Err(abandoned(child)),
        Waited::Event(Handshake::Started(_)) | Waited::TimedOut => {
            unreachable!("the handshake reports its answer after Started(Ok), with no limit")
        }
    };
    match answer {
        Ok(FromWorker::Ready { init_error: None }) => Ok(WorkerProcess {
            child,
            tasks,
            results,
        }),
        Ok(FromWorker::Ready {
            init_error: Some(message),
        }) => {
            let _ = child.wait();
            Err(TaskError::Spawn(format!(
                "the pool's initializer panicked in the worker: {message}"
            )))
        }
        Ok(FromWorker::Done { .. } | FromWorker::Skipped { .. }) | Err(ReadError::Garbled(_)) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(TaskError::Spawn(
                "the worker process answered with garbage instead of `Ready`".into(),
            ))
        }
        Err(ReadError::Closed) => {
            let status = child.wait().ok();
            Err(TaskError::Spawn(format!(
                "the worker process died while it was starting (running the pool's \
                 initializer, if any): {}. Its stderr says more.",
                describe_status(status)
            )))
        }
    }
}

/// Kills and reaps a worker whose start was abandoned.
#[cold]
fn abandoned(mut child: Child) -> TaskError {
    let _ = child.kill();
    let _ = child.wait();
    TaskError::Spawn("the pool was terminated while this worker was starting".into())
}

/// A request to the spawner thread: a command, and where to put the child.
struct SpawnRequest {
    command: Command,
    answer: Arc<JoinableQueue<std::io::Result<Child>>>,
}

/// Starts `command` on one thread that lives as long as the program.
///
/// Linux's parent-death signal (which workers ask for) fires when the
/// *thread* that started the child exits, not the process: a worker started
/// from a short-lived thread (a pool's reader replacing a dead worker, or a
/// user thread that built the pool) would be killed with it. So every child
/// is started from this one thread.
fn spawn_from_long_lived_thread(command: Command) -> std::io::Result<Child> {
    use std::sync::OnceLock;

    static SPAWNER: OnceLock<std::io::Result<Arc<JoinableQueue<SpawnRequest>>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let requests = Arc::new(JoinableQueue::<SpawnRequest>::new());
        let served = Arc::clone(&requests);
        std::thread::Builder::new()
            .name("verisync-spawner".into())
            .spawn(move || {
                // An idle spawner is no hang of the user's program: its
                // wait is not reported by the deadlock diagnostics.
                while let Ok(mut request) = served.get_unreported() {
                    let _ = request.answer.put(request.command.spawn());
                }
            })
            .map(|_| requests)
    });
    let requests = spawner
        .as_ref()
        .map_err(|error| std::io::Error::new(error.kind(), error.to_string()))?;
    let answer = Arc::new(JoinableQueue::bounded(1));
    requests
        .put(SpawnRequest {
            command,
            answer: Arc::clone(&answer),
        })
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer
        .get()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

/// "exit code 101", "killed by signal 9", ...
pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "unknown status".into(),
        },
        None => "status unknown".into(),
    }
}

/// The `WorkerDied` error for a worker that ended with `status`.
pub(crate) fn worker_died(pid: u32, status: Option<ExitStatus>) -> TaskError {
    use std::os::unix::process::ExitStatusExt;
    TaskError::WorkerDied {
        pid,
        signal: status.and_then(|status| status.signal()),
        exit_code: status.and_then(|status| status.code()),
    }
}
