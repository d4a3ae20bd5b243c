//! The life cycle of a `ProcessPool` and a `process::spawn` child, as a
//! user meets it: timeouts that measure the right task (and keep working
//! once the pool broke), cancelling tasks already sent to a worker,
//! recycling without leaking threads, `worker_pids` across crashes, `map`
//! on a pool that has shut down, error messages, and dropped handles.
//!
//! Every test that starts processes holds [`PROCESSES`] for reading; the one
//! that counts this process's threads holds it for writing, so no other
//! test starts or ends threads while it counts.

verisync::process_test_support!();

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::with_watchdog;
use rustix::process::{kill_process, Pid, Signal};
use serde::{Deserialize, Serialize, Serializer};
use verisync::{ProcessPool, TaskError};

// ---------------------------------------------------------------------------
// Harness helpers (parent side)
// ---------------------------------------------------------------------------

/// Read: this test starts processes. Write: this test needs nobody else to.
static PROCESSES: RwLock<()> = RwLock::new(());

fn processes() -> RwLockReadGuard<'static, ()> {
    PROCESSES.read().unwrap_or_else(PoisonError::into_inner)
}

fn alone() -> RwLockWriteGuard<'static, ()> {
    PROCESSES.write().unwrap_or_else(PoisonError::into_inner)
}

/// How long a test may take before its watchdog calls it hung (generous:
/// a loaded two-core machine).
const LIMIT: Duration = Duration::from_secs(120);

/// How long to wait for something that must happen promptly.
const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds, or panics after [`PATIENCE`].
fn poll_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting until {what}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// A fresh path in the temporary directory, unique to this test process.
fn temp_path(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "verisync-process-lifecycle-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes a file when dropped (also when a test fails).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Waits for a task to write its pid into `path` and returns it.
fn read_pid_file(path: &PathBuf) -> u32 {
    let mut pid = None;
    poll_until("the task wrote its pid", || {
        pid = fs::read_to_string(path).ok().and_then(|s| s.parse().ok());
        pid.is_some()
    });
    pid.unwrap()
}

/// `(state, ppid)` of process `pid` from `/proc/<pid>/stat`, if it exists.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn is_alive_child(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((state, ppid)) if ppid == std::process::id() && state != 'Z')
}

/// Neither running nor a zombie as a child of this process.
fn is_gone(pid: u32) -> bool {
    proc_stat(pid).is_none_or(|(_, ppid)| ppid != std::process::id())
}

fn send_signal(pid: u32, signal: Signal) {
    let pid = Pid::from_raw(pid as i32).expect("a positive pid");
    kill_process(pid, signal).expect("kill(2) succeeds");
}

/// The number of threads of this process.
fn thread_count() -> usize {
    fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable")
        .count()
}

/// The number of memory mappings of this process (an ended thread that
/// nobody joined keeps its stack mapped).
fn mapping_count() -> usize {
    fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps is readable")
        .lines()
        .count()
}

/// The environment variable that turns a re-executed test binary into a
/// helper program; its value names the helper.
const HELPER_VARIABLE: &str = "VERISYNC_PROCESS_LIFECYCLE_TEST_HELPER";

/// Runs this test binary as a helper program: the `#[ignore]`d test `name`.
fn helper_command(name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_VARIABLE, name)
        .stdin(Stdio::null());
    command
}

fn is_helper(name: &str) -> bool {
    std::env::var(HELPER_VARIABLE).as_deref() == Ok(name)
}

// ---------------------------------------------------------------------------
// Tasks (they run in the worker processes)
// ---------------------------------------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

fn sleeps(millis: u64) -> u64 {
    thread::sleep(Duration::from_millis(millis));
    millis
}

fn exits(code: i32) -> u64 {
    std::process::exit(code)
}

/// Writes its pid into the file `path` (atomically), then sleeps `millis`.
fn report_pid_then_sleep((path, millis): (String, u64)) -> u64 {
    let partial = format!("{path}.partial");
    fs::write(&partial, std::process::id().to_string()).unwrap();
    fs::rename(&partial, &path).unwrap();
    thread::sleep(Duration::from_millis(millis));
    millis
}

/// Writes its pid to `path` (as [`report_pid_then_sleep`]), then waits
/// until the file `release` exists (at most a minute): a blocker that
/// outlasts whatever the test does meanwhile, however loaded the machine.
fn report_pid_then_wait_for_release((path, release): (String, String)) -> u64 {
    let partial = format!("{path}.partial");
    fs::write(&partial, std::process::id().to_string()).unwrap();
    fs::rename(&partial, &path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(&release).exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
    1_500
}

/// Creates the file `path`: proof that the task ran.
fn leaves_a_mark(path: String) -> u64 {
    fs::write(&path, "ran").unwrap();
    1
}

/// [`leaves_a_mark`], after a millisecond.
fn leaves_a_mark_slowly(path: String) -> u64 {
    thread::sleep(Duration::from_millis(1));
    leaves_a_mark(path)
}

/// A result of `bytes` bytes, at once.
fn large_result(bytes: usize) -> Vec<u8> {
    vec![7; bytes]
}

/// Panics once the test process has created the file [`poison_path`].
fn initializer_poisoned_later() {
    if poison_path(std::os::unix::process::parent_id()).exists() {
        panic!("poisoned replacement initializer")
    }
}

fn poison_path(test_process: u32) -> PathBuf {
    std::env::temp_dir().join(format!(
        "verisync-process-lifecycle-{test_process}-poisoned-initializer"
    ))
}

/// A value whose `Serialize` fails with its own message.
#[derive(Debug, Deserialize)]
struct LockedLedger;

impl Serialize for LockedLedger {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "the ledger is locked by another clerk",
        ))
    }
}

fn makes_locked_ledger(_: ()) -> LockedLedger {
    LockedLedger
}

fn takes_locked_ledger(_: LockedLedger) -> u64 {
    0
}

// ---------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------

/// `Duration::MAX` means "no timeout", as everywhere else in the crate.
#[test]
fn a_task_timeout_of_duration_max_never_fires() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .task_timeout(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(pool.submit(sleeps, 20).join(), Ok(20));
        assert_eq!(pool.submit(square, 3).join(), Ok(9));
    });
}

/// The case, with margins for a loaded machine: one worker, a 1 s
/// timeout. P takes 100 ms and its `on_done` callback 2.5 s; A takes
/// 400 ms and B 500 ms. Every task is within the timeout, so every task
/// succeeds: the time the parent spends in P's callback is not A's or B's.
/// (The 300 ms timeout and 250 ms task left 50 ms for the worker's
/// wake-up, which a loaded CI machine did not always give.)
#[test]
fn a_slow_callback_does_not_make_later_tasks_time_out() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .task_timeout(Duration::from_millis(1_000))
            .build()
            .unwrap();
        let [worker] = pool.worker_pids()[..] else {
            panic!("one worker")
        };
        let p = pool.submit(sleeps, 100);
        p.on_done(|_| thread::sleep(Duration::from_millis(2_500)));
        let a = pool.submit(sleeps, 400);
        let b = pool.submit(sleeps, 500);
        assert_eq!(p.join(), Ok(100));
        assert_eq!(a.join(), Ok(400));
        assert_eq!(b.join(), Ok(500));
        assert_eq!(pool.worker_pids(), [worker], "nobody was killed");
    });
}

/// A quick task with a large result, answered while the parent is busy in
/// an earlier task's callback, arrives whole: it is not killed for the
/// time its answer waited in the pipe.
#[test]
fn a_large_result_read_late_is_not_cut_short() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .task_timeout(Duration::from_millis(1_000))
            .build()
            .unwrap();
        let p = pool.submit(sleeps, 100);
        p.on_done(|_| thread::sleep(Duration::from_millis(2_500)));
        let large = pool.submit(large_result, 8 << 20);
        assert_eq!(p.join(), Ok(100));
        match large.join() {
            Ok(bytes) => assert!(bytes.len() == 8 << 20 && bytes.iter().all(|&b| b == 7)),
            Err(error) => panic!("the large result was lost: {error:?}"),
        }
    });
}

/// A task that outlives the timeout is the one reported `TimedOut`, and
/// the task queued behind it on the same worker runs on a replacement.
#[test]
fn the_task_over_the_timeout_is_the_one_timed_out() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .task_timeout(Duration::from_millis(400))
            .build()
            .unwrap();
        let quick = pool.submit(sleeps, 10);
        let slow = pool.submit(sleeps, 20_000);
        let next = pool.submit(sleeps, 50);
        assert_eq!(quick.join(), Ok(10));
        assert_eq!(slow.join(), Err(TaskError::TimedOut));
        assert_eq!(next.join(), Ok(50));
    });
}

/// Once a replacement worker cannot start (the pool is broken), a task
/// still running on a surviving worker is still timed out.
#[test]
fn timeouts_keep_firing_after_the_pool_broke() {
    let _processes = processes();
    let poison = poison_path(std::process::id());
    let _ = fs::remove_file(&poison);
    let _cleanup = RemoveOnDrop(poison.clone());
    let path = temp_path("long");
    let _cleanup_pid = RemoveOnDrop(path.clone());
    with_watchdog(LIMIT, move || {
        let pool = ProcessPool::builder()
            .workers(2)
            .initializer(initializer_poisoned_later)
            .task_timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let started = Instant::now();
        let long = pool.submit(
            report_pid_then_sleep,
            (path.to_str().unwrap().to_string(), 30_000),
        );
        let busy = read_pid_file(&path);
        let idle = *pool
            .worker_pids()
            .iter()
            .find(|&&pid| pid != busy)
            .expect("two workers");
        // Kill the idle worker: its replacement's initializer panics, so
        // the pool breaks while `long` runs on the other worker.
        fs::write(&poison, "").unwrap();
        send_signal(idle, Signal::KILL);
        poll_until("the killed worker is gone", || {
            !pool.worker_pids().contains(&idle)
        });
        assert_eq!(long.join(), Err(TaskError::TimedOut));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the task ran {:?}, far past its 3 s timeout",
            started.elapsed()
        );
        poll_until("the timed-out worker is reaped", || is_gone(busy));
    });
}

// ---------------------------------------------------------------------------
// Cancelling tasks already sent to a worker
// ---------------------------------------------------------------------------

/// Tasks behind a long one are sent to its worker ahead of time; cancelling
/// them still works: `cancel` is `true`, they resolve `Cancelled` at once
/// (callbacks once), they never run, and the tasks not cancelled run.
#[test]
fn cancel_succeeds_for_tasks_already_sent_to_a_worker() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        // Tiny tasks teach the pool to keep many tasks in flight (one
        // item per task: `map` would send these 200 in 4 chunks).
        let warm: Vec<u64> = pool
            .map_with_chunksize(square, 0..200u64, 1)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(warm.len(), 200);
        let gate = temp_path("gate");
        let _gate = RemoveOnDrop(gate.clone());
        let release = temp_path("release");
        let _release = RemoveOnDrop(release.clone());
        let blocker = pool.submit(
            report_pid_then_wait_for_release,
            (
                gate.to_str().unwrap().into(),
                release.to_str().unwrap().into(),
            ),
        );
        let marks: Vec<PathBuf> = (0..8).map(|i| temp_path(&format!("mark{i}"))).collect();
        let _marks: Vec<RemoveOnDrop> = marks.iter().cloned().map(RemoveOnDrop).collect();
        let handles: Vec<_> = marks
            .iter()
            .map(|mark| pool.submit(leaves_a_mark, mark.to_str().unwrap().to_string()))
            .collect();
        read_pid_file(&gate); // the blocker runs
        poll_until("every task was sent to the worker", || {
            format!("{pool:?}").contains("queued: 0")
        });
        let callbacks = Arc::new(AtomicUsize::new(0));
        for (index, handle) in handles.iter().enumerate() {
            let counter = Arc::clone(&callbacks);
            handle.on_done(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            if index % 2 == 0 {
                assert!(handle.cancel(), "task {index} had not started");
                assert!(handle.is_finished(), "a cancelled task resolves at once");
                assert!(handle.cancel(), "task {index}: a second cancel is true too");
            }
        }
        assert_eq!(
            callbacks.load(Ordering::SeqCst),
            4,
            "one callback per cancel"
        );
        fs::write(&release, "go").unwrap();
        assert_eq!(blocker.join(), Ok(1_500));
        for (index, handle) in handles.into_iter().enumerate() {
            let expected = if index % 2 == 0 {
                Err(TaskError::Cancelled)
            } else {
                Ok(1)
            };
            assert_eq!(handle.join(), expected, "task {index}");
        }
        pool.shutdown();
        assert_eq!(
            callbacks.load(Ordering::SeqCst),
            8,
            "each callback ran once"
        );
        for (index, mark) in marks.iter().enumerate() {
            assert_eq!(mark.exists(), index % 2 == 1, "task {index} ran?");
        }
    });
}

/// Cancels racing the workers starting the same tasks: each task either
/// ran (its mark exists, `join` gives its value) or was cancelled (`cancel`
/// said so, `join` gives `Cancelled`, no mark), never both.
#[test]
fn a_task_is_either_cancelled_or_run_never_both() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let marks: Vec<PathBuf> = (0..300).map(|i| temp_path(&format!("race{i}"))).collect();
        let _marks: Vec<RemoveOnDrop> = marks.iter().cloned().map(RemoveOnDrop).collect();
        let handles: Vec<_> = marks
            .iter()
            .map(|mark| pool.submit(leaves_a_mark_slowly, mark.to_str().unwrap().to_string()))
            .collect();
        // Cancels paced to meet the tasks around the moment they start:
        // some ran, some wait on a worker, some in the queue.
        let cancelled: Vec<bool> = handles
            .iter()
            .enumerate()
            .map(|(index, handle)| {
                thread::sleep(Duration::from_micros(500));
                index % 3 == 0 && handle.cancel()
            })
            .collect();
        let mut was_cancelled = 0;
        for (index, handle) in handles.into_iter().enumerate() {
            let result = handle.join();
            if cancelled[index] {
                was_cancelled += 1;
                assert_eq!(result, Err(TaskError::Cancelled), "task {index}");
            } else {
                assert_eq!(result, Ok(1), "task {index}");
            }
        }
        pool.shutdown();
        for (index, mark) in marks.iter().enumerate() {
            assert_eq!(
                mark.exists(),
                !cancelled[index],
                "task {index}: ran and cancelled?"
            );
        }
        eprintln!("{was_cancelled} of 100 cancels came before the task started");
    });
}

// ---------------------------------------------------------------------------
// Recycling, crashes, shutdown
// ---------------------------------------------------------------------------

/// Each recycled worker's parent-side threads end and are joined: a long
/// run with one task per worker keeps the threads, and the memory their
/// stacks hold, bounded.
#[test]
fn recycling_workers_does_not_leak_threads() {
    let _alone = alone();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(2)
            .max_tasks_per_worker(1)
            .build()
            .unwrap();
        assert_eq!(pool.submit(square, 1).join(), Ok(1));
        let (threads_before, mappings_before) = (thread_count(), mapping_count());
        for round in 0..30u64 {
            let squares: Vec<u64> = pool
                .map(square, 0..10u64)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(squares.len(), 10, "round {round}");
        }
        let (threads_after, mappings_after) = (thread_count(), mapping_count());
        assert!(
            threads_after <= threads_before + 8,
            "300 recycled workers left threads behind: {threads_before} threads before, \
             {threads_after} after"
        );
        assert!(
            mappings_after <= mappings_before + 40,
            "300 recycled workers left thread stacks behind: {mappings_before} memory \
             mappings before, {mappings_after} after"
        );
    });
}

/// When a crashed worker's task reports `WorkerDied`, its replacement is
/// already among `worker_pids`.
#[test]
fn worker_pids_lists_the_replacements_once_a_crash_is_reported() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let original = pool.worker_pids();
        let crashes: Vec<_> = (0..2).map(|_| pool.submit(exits, 5)).collect();
        let mut dead = Vec::new();
        for crash in crashes {
            match crash.join() {
                Err(TaskError::WorkerDied { pid, .. }) => dead.push(pid),
                other => panic!("expected WorkerDied, got {other:?}"),
            }
        }
        let now = pool.worker_pids();
        assert_eq!(
            now.len(),
            2,
            "workers {original:?}, {dead:?} died, and the pool reports {now:?}"
        );
        for pid in &now {
            assert!(!dead.contains(pid), "{pid} died, yet is listed: {now:?}");
            assert!(is_alive_child(*pid), "{pid} is listed but not alive");
        }
    });
}

/// `map` on a pool that has shut down does not pull an endless input
/// forever: it says `ShutDown` once and ends.
#[test]
fn map_on_a_shut_down_pool_stops_reading_its_input() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        pool.shutdown();
        let pulled = AtomicU64::new(0);
        let endless = (0u64..).inspect(|_| {
            pulled.fetch_add(1, Ordering::Relaxed);
        });
        let results: Vec<_> = pool.map(square, endless).take(10_000).collect();
        assert!(
            results == [Err(TaskError::ShutDown)],
            "{} results, the first {:?}",
            results.len(),
            results.first()
        );
        assert_eq!(pulled.load(Ordering::Relaxed), 0, "no input was consumed");
    });
}

// ---------------------------------------------------------------------------
// Error messages
// ---------------------------------------------------------------------------

/// A result or argument whose `Serialize` fails reports serde's own message
/// and the type, not just "Serde Serialization Error".
#[test]
fn a_value_that_cannot_be_encoded_reports_serdes_message() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        for (what, result) in [
            (
                "result",
                pool.submit(makes_locked_ledger, ()).join().map(|_| ()),
            ),
            (
                "argument",
                pool.submit(takes_locked_ledger, LockedLedger)
                    .join()
                    .map(|_| ()),
            ),
            (
                "spawn argument",
                verisync::process::spawn(takes_locked_ledger, LockedLedger).map(|_| ()),
            ),
        ] {
            match result {
                Err(TaskError::Serialization(message)) => assert!(
                    message.contains("the ledger is locked by another clerk")
                        && message.contains("LockedLedger"),
                    "{what}: {message}"
                ),
                other => panic!("{what}: expected a Serialization error, got {other:?}"),
            }
        }
    });
}

// ---------------------------------------------------------------------------
// process::spawn handles
// ---------------------------------------------------------------------------

/// The helper for the next test: drops a running child without joining it
/// and waits until that child has ended.
#[test]
#[ignore = "a helper program, run by a_dropped_process_detaches_silently"]
fn helper_drop_a_running_process() {
    if !is_helper("helper_drop_a_running_process") {
        return;
    }
    let child = verisync::process::spawn(sleeps, 200).unwrap();
    let pid = child.pid();
    drop(child);
    poll_until("the dropped child ended and was reaped", || is_gone(pid));
    println!("CHILD ENDED");
}

/// Dropping a `Process` without joining detaches it: it runs to its end
/// and is reaped, and nothing is printed (no "Broken pipe" from a child
/// whose answer nobody reads).
#[test]
fn a_dropped_process_detaches_silently() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let output = helper_command("helper_drop_a_running_process")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("CHILD ENDED"), "{stdout}");
        assert!(
            !stderr.contains("verisync") && !stderr.contains("Broken pipe"),
            "the dropped child complained: {stderr}"
        );
    });
}
