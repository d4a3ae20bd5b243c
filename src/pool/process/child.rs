//! Starting a worker process and waiting for its `Ready`.

use std::io::{BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::wire::{read_frame, skip_to_preamble, FromWorker, ReadError};
use super::worker::{INITIALIZER_VARIABLE, MAX_TASKS_VARIABLE, PARENT_VARIABLE, WORKER_VARIABLE};
use crate::pool::task::TaskError;
use crate::queue::JoinableQueue;

/// Arguments for the worker's command line: in a test binary they select
/// the one test that calls `init()` (see `process_test_support!`); a normal
/// `main` that calls `init()` first never looks at them.
const WORKER_ARGUMENTS: [&str; 6] = [
    "__verisync_process_worker",
    "--exact",
    "--include-ignored",
    "--nocapture",
    "--quiet",
    "--test-threads=1",
];

/// How long a new worker may take to report `Ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a worker process is started.
#[derive(Clone, Default)]
pub(crate) struct WorkerConfig {
    pub(crate) max_tasks: Option<u64>,
    pub(crate) initializer: Option<i64>,
}

/// The handshake's outcome: the result pipe back, and what came on it.
type Handshake = (BufReader<ChildStdout>, Result<FromWorker, ReadError>);

/// A started, ready worker process and its two pipes.
pub(crate) struct WorkerProcess {
    pub(crate) child: Child,
    pub(crate) tasks: BufWriter<ChildStdin>,
    pub(crate) results: BufReader<ChildStdout>,
}

/// Starts a worker and waits for its `Ready`.
#[track_caller]
pub(crate) fn start_worker(config: &WorkerConfig) -> Result<WorkerProcess, TaskError> {
    let executable = std::env::current_exe().map_err(|error| {
        TaskError::Spawn(format!("cannot find the current executable: {error}"))
    })?;
    let mut command = Command::new(executable);
    command
        .args(WORKER_ARGUMENTS)
        .env(WORKER_VARIABLE, "1")
        .env(PARENT_VARIABLE, std::process::id().to_string())
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
    let mut child = spawn_from_long_lived_thread(command)
        .map_err(|error| TaskError::Spawn(format!("cannot start a worker process: {error}")))?;
    let tasks = BufWriter::new(child.stdin.take().expect("stdin is piped"));
    let results = BufReader::new(child.stdout.take().expect("stdout is piped"));

    // Read `Ready` on a helper thread, so a worker that never answers (its
    // main never called init()) costs a timeout, not a hang. A one-item
    // queue carries the answer back.
    let answer = Arc::new(JoinableQueue::<Handshake>::bounded(1));
    let handshake = {
        let answer = Arc::clone(&answer);
        let mut results = results;
        std::thread::Builder::new()
            .name("verisync-worker-handshake".into())
            .spawn(move || {
                let message = skip_to_preamble(&mut results).and_then(|stray| {
                    // Printed before init() took over stdout: show it, except
                    // the test harness's own header in a test binary.
                    let harness_header = String::from_utf8_lossy(&stray).trim() == "running 1 test";
                    if !stray.is_empty() && !harness_header {
                        let _ = std::io::stderr().write_all(&stray);
                    }
                    read_frame::<FromWorker>(&mut results)
                });
                let _ = answer.put((results, message));
            })
    };
    if let Err(error) = handshake {
        // The child was started: kill and reap it, leaving no zombie.
        let _ = child.kill();
        let _ = child.wait();
        return Err(TaskError::Spawn(format!("cannot start a thread: {error}")));
    }
    let Ok((results, message)) = answer.get_timeout(READY_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(TaskError::Spawn(format!(
            "the worker process did not report ready within {} s; is \
             `verisync::process::init()` the first line of main?",
            READY_TIMEOUT.as_secs()
        )));
    };
    match message {
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
                "the worker process exited before it was ready ({}); is \
                 `verisync::process::init()` the first line of main (in tests: \
                 `verisync::process_test_support!();`)? Its stderr says more.",
                describe_status(status)
            )))
        }
    }
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
                for mut request in served.iter() {
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
