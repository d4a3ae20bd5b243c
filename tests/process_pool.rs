//! Failure isolation of `ProcessPool` and `process::spawn`, proven with real
//! processes: panics, aborts, segfaults, `exit`, SIGKILL, timeouts,
//! recycling, initializers, garbled frames, bad input, zombies and orphans.
//!
//! Every test that starts processes holds [`PROCESSES`] for reading; the one
//! test that checks that *no* child of this process remains holds it for
//! writing, so it looks while nobody else is starting processes. The other
//! tests check the exact pids they were told about.
//!
//! Helper programs are this test binary itself, re-executed with
//! [`HELPER_VARIABLE`] set and an `#[ignore]`d `helper_*` test selected.

verisync::process_test_support!();

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use verisync::process::Process;
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

/// The environment variable that turns a re-executed test binary into a
/// helper program; its value names the helper.
const HELPER_VARIABLE: &str = "VERISYNC_PROCESS_POOL_TEST_HELPER";

/// How long to wait for something that must happen promptly (generous: a
/// loaded two-core CI machine).
const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds, or panics after `timeout`.
fn poll_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// A fresh path in the temporary directory, unique to this test process.
fn temp_path(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "verisync-process-pool-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Waits for a task to write its pid into `path` and returns it.
fn read_pid_file(path: &PathBuf) -> u32 {
    let mut pid = None;
    poll_until("the task wrote its pid", PATIENCE, || {
        pid = fs::read_to_string(path).ok().and_then(|s| s.parse().ok());
        pid.is_some()
    });
    let _ = fs::remove_file(path);
    pid.unwrap()
}

/// `(state, ppid)` of process `pid` from `/proc/<pid>/stat`, if it exists.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Every process whose parent is this test process: `(pid, state)`.
fn our_children() -> Vec<(u32, char)> {
    let me = std::process::id();
    fs::read_dir("/proc")
        .expect("/proc is readable")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(state, ppid)| (pid, state, ppid)))
        .filter(|&(_, _, ppid)| ppid == me)
        .map(|(pid, state, _)| (pid, state))
        .collect()
}

/// Each pid is neither alive nor a zombie as a child of this process (a
/// pid that now belongs to some unrelated process was reaped and reused).
fn assert_reaped(pids: &[u32]) {
    let me = std::process::id();
    for &pid in pids {
        if let Some((state, ppid)) = proc_stat(pid) {
            assert_ne!(
                ppid, me,
                "process {pid} is still a child of the test process (state {state}): not reaped"
            );
        }
    }
}

/// Whether `pid` has exited: no such process, or a zombie / dead entry.
fn has_exited(pid: u32) -> bool {
    matches!(proc_stat(pid), None | Some(('Z' | 'X' | 'x', _)))
}

fn is_alive_child(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((state, ppid)) if ppid == std::process::id() && state != 'Z')
}

fn send_signal(pid: u32, signal: Signal) {
    let pid = Pid::from_raw(pid as i32).expect("a positive pid");
    kill_process(pid, signal).expect("kill(2) succeeds");
}

/// Waits until the pool has `count` workers again and `dead` is not one of
/// them; returns the replacement(s) and checks they are live children.
fn wait_for_replacement(pool: &ProcessPool, dead: u32, count: usize) -> Vec<u32> {
    poll_until("the dead worker was replaced", PATIENCE, || {
        let pids = pool.worker_pids();
        pids.len() == count && !pids.contains(&dead)
    });
    let pids = pool.worker_pids();
    for &pid in &pids {
        assert!(
            is_alive_child(pid),
            "worker {pid} is not a live child: {:?}",
            proc_stat(pid)
        );
    }
    pids
}

/// Runs this test binary as a helper program: the `#[ignore]`d test `name`,
/// with [`HELPER_VARIABLE`] set to `name`.
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

/// Removes a file when dropped (also when a test fails).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Kills and reaps a helper process if a test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// Tasks (they run in the worker processes)
// ---------------------------------------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

/// The square, and which process computed it.
fn tagged(x: u64) -> (u32, u64) {
    (std::process::id(), x * x)
}

fn panics(message: String) -> u64 {
    panic!("{message}")
}

fn no_core_dumps() {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
}

fn aborts(_: ()) -> u64 {
    no_core_dumps();
    std::process::abort()
}

fn segfaults(_: ()) -> u64 {
    no_core_dumps();
    // A real fault (not a signal sent with kill): address 16 is never mapped.
    // SAFETY: none; crashing the worker is the point of this task.
    unsafe { std::ptr::without_provenance_mut::<u8>(16).write_volatile(1) };
    unreachable!("the write above faults")
}

fn exits(code: i32) -> u64 {
    std::process::exit(code)
}

/// Writes its pid into the file `path` (atomically), then sleeps
/// `millis` (it is meant to be killed or timed out before that).
fn report_pid_then_sleep((path, millis): (String, u64)) -> u64 {
    let partial = format!("{path}.partial");
    fs::write(&partial, std::process::id().to_string()).unwrap();
    fs::rename(&partial, &path).unwrap();
    thread::sleep(Duration::from_millis(millis));
    millis
}

fn sleeps(millis: u64) -> u64 {
    thread::sleep(Duration::from_millis(millis));
    millis
}

/// The mark every frame on the pipe starts with (`FRAME_MARK` in
/// `src/pool/process/wire.rs`): `mark, u32 little-endian length, body`.
const FRAME_MARK: [u8; 2] = *b"vs";

/// A frame header claiming `length` bytes.
fn header(length: u32) -> Vec<u8> {
    let mut bytes = FRAME_MARK.to_vec();
    bytes.extend(length.to_le_bytes());
    bytes
}

/// Writes raw bytes onto the worker's result pipe, bypassing the framing.
fn garbles(kind: u8) -> u64 {
    use verisync::process::__write_raw_to_parent as raw;
    match kind {
        // A length above any frame the parent accepts.
        0 => raw(&header(u32::MAX)),
        // A well-framed body that is not a message.
        1 => raw(&[header(3), vec![0xff, 0xff, 0xff]].concat()),
        // A valid `Ready` frame in the middle of the answers.
        2 => raw(&[header(2), vec![0, 0]].concat()),
        // A frame cut short: the worker dies in the middle of it.
        3 => {
            raw(&[header(100), vec![1, 2, 3]].concat());
            std::process::exit(0)
        }
        // A huge length below the default limit of 64 MiB (32 MiB), then
        // nothing more but the worker's ordinary answers: the worker lives on.
        4 => raw(&header(1 << 25)),
        // Bytes that are no frame at all.
        5 => raw(b"hello, parent!"),
        _ => unreachable!(),
    }
    7
}

/// Set by [`count_initializer`]; 0 in a process where it never ran.
static INITIALIZER_RUNS: AtomicU32 = AtomicU32::new(0);

fn count_initializer() {
    INITIALIZER_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn initializer_runs(_: ()) -> (u32, u32) {
    (std::process::id(), INITIALIZER_RUNS.load(Ordering::SeqCst))
}

fn panicking_initializer() {
    panic!("the database at db.example is unreachable")
}

/// Panics once the test process has created the file [`poison_path`].
fn initializer_poisoned_later() {
    if poison_path(std::os::unix::process::parent_id()).exists() {
        panic!("poisoned replacement initializer")
    }
}

fn poison_path(test_process: u32) -> PathBuf {
    std::env::temp_dir().join(format!(
        "verisync-process-pool-{test_process}-poisoned-initializer"
    ))
}

/// A global the child changes; the parent's copy must not change.
static GLOBAL: AtomicU64 = AtomicU64::new(1);

fn change_global(value: u64) -> u64 {
    GLOBAL.store(value, Ordering::SeqCst);
    GLOBAL.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// Types that cannot cross the process boundary
// ---------------------------------------------------------------------------

/// Serializes through an iterator whose length postcard cannot know up
/// front, which postcard refuses ("The length of a sequence must be known").
#[derive(Debug, Deserialize)]
struct Evens(Vec<u32>);

impl Serialize for Evens {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().filter(|x| *x % 2 == 0))
    }
}

/// Encodes as the byte 2 but decodes as a `bool`, which postcard refuses
/// ("Found a bool that wasn't 0 or 1").
#[derive(Debug)]
struct Lopsided;

impl Serialize for Lopsided {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(2)
    }
}

impl<'de> Deserialize<'de> for Lopsided {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bool::deserialize(deserializer).map(|_| Lopsided)
    }
}

fn makes_evens(_: ()) -> Evens {
    Evens(vec![1, 2, 3, 4])
}

fn takes_evens(evens: Evens) -> u64 {
    evens.0.len() as u64
}

fn makes_lopsided(_: ()) -> Lopsided {
    Lopsided
}

fn takes_lopsided(_: Lopsided) -> u64 {
    1
}

fn serialization_message(result: Result<impl std::fmt::Debug, TaskError>) -> String {
    match result {
        Err(TaskError::Serialization(message)) => message,
        other => panic!("expected a Serialization error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------

#[test]
fn a_panicking_task_fails_alone_and_its_worker_lives_on() {
    let _processes = processes();
    let pool = ProcessPool::new(1).unwrap();
    let [worker] = pool.worker_pids()[..] else {
        panic!("one worker")
    };
    let before = pool.submit(tagged, 3);
    let panicked = pool.submit(panics, "kaboom: the task failed".to_string());
    let after = pool.submit(tagged, 4);
    assert_eq!(before.join(), Ok((worker, 9)));
    assert_eq!(
        panicked.join(),
        Err(TaskError::Panicked("kaboom: the task failed".into()))
    );
    // The same process serves the next task.
    assert_eq!(after.join(), Ok((worker, 16)));
    assert_eq!(pool.worker_pids(), [worker]);
    assert!(is_alive_child(worker));
    pool.shutdown();
    assert_reaped(&[worker]);
}

// ---------------------------------------------------------------------------
// A worker that dies: abort, segfault, exit, SIGKILL
// ---------------------------------------------------------------------------

/// Submits 20 tasks, `crash(argument)`, 20 more tasks to a pool of 2, and
/// checks the crash fails alone with `expected`, the worker is replaced and
/// reaped, and the 40 others complete.
fn check_crash_is_isolated<F, A>(crash: F, argument: A, signal: Option<i32>, exit_code: Option<i32>)
where
    F: Fn(A) -> u64 + Copy + Send + 'static,
    A: Serialize + DeserializeOwned + 'static,
{
    let _processes = processes();
    let pool = ProcessPool::new(2).unwrap();
    let original = pool.worker_pids();
    let before: Vec<_> = (0..20).map(|x| pool.submit(tagged, x)).collect();
    let crashed = pool.submit(crash, argument);
    let after: Vec<_> = (20..40).map(|x| pool.submit(tagged, x)).collect();

    let results: Vec<_> = before.into_iter().chain(after).map(|h| h.join()).collect();
    for (x, result) in results.iter().enumerate() {
        let x = x as u64;
        assert!(
            matches!(result, Ok((_, square)) if *square == x * x),
            "task {x} submitted around the crash: {result:?} (all: {results:?})"
        );
    }
    let died = match crashed.join() {
        Err(TaskError::WorkerDied {
            pid,
            signal: got_signal,
            exit_code: got_code,
        }) => {
            assert!(
                original.contains(&pid),
                "WorkerDied names {pid}, not one of the workers {original:?}"
            );
            assert_eq!(
                (got_signal, got_code),
                (signal, exit_code),
                "(signal, exit code) of the dead worker"
            );
            pid
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    };
    let replaced = wait_for_replacement(&pool, died, 2);
    assert_reaped(&[died]);
    // The pool carries on with the replacement.
    let more: Vec<_> = (0..20).map(|x| pool.submit(tagged, x)).collect();
    for (x, handle) in more.into_iter().enumerate() {
        let (pid, value) = handle.join().unwrap();
        assert_eq!(value, (x * x) as u64);
        assert_ne!(pid, died);
    }
    pool.shutdown();
    assert_reaped(&replaced);
    assert_reaped(&original);
}

#[test]
fn a_worker_that_aborts_fails_only_its_task() {
    check_crash_is_isolated(aborts, (), Some(6), None);
}

#[test]
fn a_worker_that_segfaults_fails_only_its_task() {
    check_crash_is_isolated(segfaults, (), Some(11), None);
}

#[test]
fn a_worker_that_calls_exit_fails_only_its_task() {
    check_crash_is_isolated(exits, 42, None, Some(42));
}

/// The answers a worker has computed must reach the parent even if the
/// next task kills the worker. Tiny tasks first teach the pool to keep many
/// tasks in flight; then, while a slow task keeps the worker busy, a quick
/// task and the crash queue up on its pipe, so the worker reads those two
/// in one go, answers the quick one, and dies running the crash.
#[test]
fn a_crash_does_not_take_the_answers_of_earlier_tasks_with_it() {
    let _processes = processes();
    let pool = ProcessPool::new(1).unwrap();
    let [worker] = pool.worker_pids()[..] else {
        panic!("one worker")
    };
    let warm_up: Vec<u64> = pool
        .map(square, 0..200u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(warm_up.len(), 200);
    let path = temp_path("busy");
    let slow = pool.submit(
        report_pid_then_sleep,
        (path.to_str().unwrap().to_string(), 300),
    );
    assert_eq!(read_pid_file(&path), worker, "the slow task started");
    let quick = pool.submit(tagged, 5);
    let crashed = pool.submit(exits, 9);
    assert_eq!(slow.join(), Ok(300));
    assert_eq!(
        quick.join(),
        Ok((worker, 25)),
        "a quick task finished before the crash"
    );
    assert_eq!(
        crashed.join(),
        Err(TaskError::WorkerDied {
            pid: worker,
            signal: None,
            exit_code: Some(9)
        })
    );
}

#[test]
fn a_worker_killed_mid_task_fails_only_its_task() {
    let _processes = processes();
    // Declared before the pool, so removed after the pool's drop.
    let path = temp_path("killed");
    let _cleanup = RemoveOnDrop(path.clone());
    let pool = ProcessPool::new(2).unwrap();
    let original = pool.worker_pids();
    let before: Vec<_> = (0..20).map(|x| pool.submit(tagged, x)).collect();
    let victim = pool.submit(
        report_pid_then_sleep,
        (path.to_str().unwrap().to_string(), 3_000),
    );
    let after: Vec<_> = (20..40).map(|x| pool.submit(tagged, x)).collect();

    let pid = read_pid_file(&path);
    assert!(original.contains(&pid), "{pid} is not in {original:?}");
    send_signal(pid, Signal::KILL);
    for (x, handle) in before.into_iter().chain(after).enumerate() {
        assert_eq!(
            handle.join().map(|(_, v)| v),
            Ok((x * x) as u64),
            "task {x}"
        );
    }
    assert_eq!(
        victim.join(),
        Err(TaskError::WorkerDied {
            pid,
            signal: Some(9),
            exit_code: None
        })
    );
    let replaced = wait_for_replacement(&pool, pid, 2);
    assert_reaped(&[pid]);
    let survivor = original.iter().find(|&&p| p != pid).unwrap();
    assert!(
        replaced.contains(survivor),
        "the other worker was not touched"
    );
    pool.shutdown();
    assert_reaped(&replaced);
}

/// Linux's parent-death signal fires when the *thread* that started a
/// child exits: workers started from a short-lived thread must survive it.
#[test]
fn workers_outlive_the_thread_that_built_the_pool() {
    let _processes = processes();
    let pool = thread::spawn(|| ProcessPool::new(2).unwrap())
        .join()
        .unwrap();
    let pids = pool.worker_pids();
    // The replacement for a killed worker is started by a pool thread that
    // then exits, too.
    send_signal(pids[0], Signal::KILL);
    let replaced = wait_for_replacement(&pool, pids[0], 2);
    let results: Vec<_> = (0..50).map(|x| pool.submit(tagged, x)).collect();
    for (x, handle) in results.into_iter().enumerate() {
        let (pid, value) = handle.join().unwrap();
        assert_eq!(value, (x * x) as u64);
        assert!(replaced.contains(&pid));
    }
    assert_eq!(pool.worker_pids(), replaced);
    for &pid in &replaced {
        assert!(is_alive_child(pid));
    }
}

// ---------------------------------------------------------------------------
// Timeouts and recycling
// ---------------------------------------------------------------------------

#[test]
fn a_task_over_the_timeout_times_out_and_only_its_worker_is_replaced() {
    let _processes = processes();
    let path = temp_path("timeout");
    let _cleanup = RemoveOnDrop(path.clone());
    let pool = ProcessPool::builder()
        .workers(2)
        .task_timeout(Duration::from_millis(750))
        .build()
        .unwrap();
    let original = pool.worker_pids();
    let before: Vec<_> = (0..20).map(|x| pool.submit(tagged, x)).collect();
    let slow = pool.submit(
        report_pid_then_sleep,
        (path.to_str().unwrap().to_string(), 3_000),
    );
    let after: Vec<_> = (20..40).map(|x| pool.submit(tagged, x)).collect();

    for (x, handle) in before.into_iter().chain(after).enumerate() {
        assert_eq!(
            handle.join().map(|(_, v)| v),
            Ok((x * x) as u64),
            "task {x}"
        );
    }
    assert_eq!(slow.join(), Err(TaskError::TimedOut));
    let slow_pid = read_pid_file(&path);
    let now = wait_for_replacement(&pool, slow_pid, 2);
    assert_reaped(&[slow_pid]);
    let survivor = *original.iter().find(|&&p| p != slow_pid).unwrap();
    assert!(
        now.contains(&survivor),
        "only the timed-out worker is replaced: before {original:?}, now {now:?}"
    );
    // A quick task under the timeout is not affected.
    assert_eq!(pool.submit(square, 12).join(), Ok(144));
}

#[test]
fn max_tasks_per_worker_recycles_workers_without_losing_tasks() {
    let _processes = processes();
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_worker(3)
        .build()
        .unwrap();
    let original = pool.worker_pids();
    let handles: Vec<_> = (0..30).map(|x| pool.submit(tagged, x)).collect();
    let mut served: std::collections::HashMap<u32, usize> = Default::default();
    for (x, handle) in handles.into_iter().enumerate() {
        let (pid, value) = handle.join().unwrap();
        assert_eq!(value, (x * x) as u64);
        *served.entry(pid).or_default() += 1;
    }
    assert!(
        served.values().all(|&count| count <= 3),
        "a worker ran more than 3 tasks: {served:?}"
    );
    assert!(served.len() >= 10, "30 tasks, 3 per worker: {served:?}");
    // `map` goes through recycling workers too, in order.
    let squares: Vec<u64> = pool
        .map(square, 0..40u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(squares, (0..40u64).map(|x| x * x).collect::<Vec<_>>());
    let retired: Vec<u32> = served.keys().copied().chain(original.clone()).collect();
    poll_until("two workers are running", PATIENCE, || {
        pool.worker_pids().len() == 2
    });
    let last = pool.worker_pids();
    pool.shutdown();
    assert_reaped(&retired);
    assert_reaped(&last);
}

// ---------------------------------------------------------------------------
// Initializers
// ---------------------------------------------------------------------------

#[test]
fn an_initializer_runs_once_in_every_worker() {
    let _processes = processes();
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_worker(5)
        .initializer(count_initializer)
        .build()
        .unwrap();
    let handles: Vec<_> = (0..40).map(|_| pool.submit(initializer_runs, ())).collect();
    let mut workers = std::collections::HashSet::new();
    for handle in handles {
        let (pid, runs) = handle.join().unwrap();
        assert_eq!(runs, 1, "the initializer ran {runs} times in worker {pid}");
        workers.insert(pid);
    }
    // Recycled workers (40 tasks, 5 each) ran it too; the parent never did.
    assert!(workers.len() >= 8, "{workers:?}");
    assert_eq!(INITIALIZER_RUNS.load(Ordering::SeqCst), 0);
}

#[test]
fn a_panicking_initializer_fails_build_with_a_clear_error() {
    let _processes = processes();
    let started = Instant::now();
    let result = ProcessPool::builder()
        .workers(2)
        .initializer(panicking_initializer)
        .build();
    match result {
        Err(TaskError::Spawn(message)) => {
            assert!(message.contains("initializer"), "{message}");
            assert!(
                message.contains("the database at db.example is unreachable"),
                "{message}"
            );
        }
        Err(other) => panic!("expected a Spawn error, got {other:?}"),
        Ok(pool) => panic!("build succeeded: {pool:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no respawn loop"
    );
}

/// A replacement worker whose initializer panics stops the pool with that
/// error instead of respawning forever.
#[test]
fn a_replacement_whose_initializer_panics_breaks_the_pool_cleanly() {
    let _processes = processes();
    let poison = poison_path(std::process::id());
    let _ = fs::remove_file(&poison);
    let pool = ProcessPool::builder()
        .workers(1)
        .initializer(initializer_poisoned_later)
        .build()
        .unwrap();
    let [worker] = pool.worker_pids()[..] else {
        panic!("one worker")
    };
    assert_eq!(pool.submit(square, 3).join(), Ok(9));
    fs::write(&poison, "").unwrap();
    let crashed = pool.submit(exits, 4);
    let queued = pool.submit(square, 4);
    assert_eq!(
        crashed.join(),
        Err(TaskError::WorkerDied {
            pid: worker,
            signal: None,
            exit_code: Some(4)
        })
    );
    let queued = queued.join();
    // A submit to the broken pool resolves at once with the same error. (If
    // it panics instead, the pool's drop would wait forever for a job that
    // never left it, so the pool is leaked and the panic reported.)
    let later = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.submit(square, 5).join()
    })) {
        Ok(result) => result,
        Err(payload) => {
            std::mem::forget(pool);
            let _ = fs::remove_file(&poison);
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("submit to a pool whose replacement could not start panicked: {message}");
        }
    };
    for result in [queued, later] {
        match result {
            Err(TaskError::Spawn(message)) => {
                assert!(
                    message.contains("initializer")
                        && message.contains("poisoned replacement initializer"),
                    "{message}"
                );
            }
            other => panic!("expected a Spawn error, got {other:?}"),
        }
    }
    poll_until("the pool has no workers", PATIENCE, || {
        pool.worker_pids().is_empty()
    });
    drop(pool);
    let _ = fs::remove_file(&poison);
    assert_reaped(&[worker]);
}

// ---------------------------------------------------------------------------
// Garbled frames
// ---------------------------------------------------------------------------

/// A task that writes garbage onto the result pipe resolves to
/// `Serialization`, its worker is replaced, and the tasks behind it run
/// exactly once: on the replacement if they had not started, or — if the
/// worker went on to start them before it was killed — not again: they
/// fail, saying so (they used to be sent again, and ran twice).
fn check_garbage_is_isolated(kind: u8, expected: &str) {
    let _processes = processes();
    let pool = ProcessPool::new(1).unwrap();
    let [worker] = pool.worker_pids()[..] else {
        panic!("one worker")
    };
    let garbled = pool.submit(garbles, kind);
    let after: Vec<_> = (0..10).map(|x| pool.submit(tagged, x)).collect();
    if !garbled.wait_timeout(Duration::from_secs(3)) {
        pool.terminate();
        panic!("garbage of kind {kind}: the task never resolved (the parent hangs)");
    }
    let message = serialization_message(garbled.join());
    assert!(
        message.contains(expected) && message.contains(&format!("worker {worker}")),
        "kind {kind}: {message}"
    );
    for (x, handle) in after.into_iter().enumerate() {
        match handle.join() {
            Ok((pid, value)) => {
                assert_eq!(value, (x * x) as u64);
                assert_ne!(pid, worker, "the worker that sent garbage is replaced");
            }
            Err(TaskError::Serialization(message)) => assert!(
                message.contains("had started on that worker") && message.contains(expected),
                "kind {kind}, task {x}: {message}"
            ),
            Err(other) => panic!("kind {kind}, task {x}: {other:?}"),
        }
    }
    let replaced = wait_for_replacement(&pool, worker, 1);
    assert_reaped(&[worker]);
    pool.shutdown();
    assert_reaped(&replaced);
}

#[test]
fn an_oversized_length_prefix_is_a_serialization_error() {
    check_garbage_is_isolated(0, "more than");
}

#[test]
fn an_undecodable_frame_is_a_serialization_error() {
    check_garbage_is_isolated(1, "could not be decoded");
}

#[test]
fn an_unexpected_message_is_a_serialization_error() {
    check_garbage_is_isolated(2, "Ready");
}

#[test]
fn a_truncated_frame_is_a_serialization_error() {
    check_garbage_is_isolated(3, "cut short");
}

#[test]
fn a_huge_length_prefix_within_the_limit_is_a_serialization_error() {
    check_garbage_is_isolated(4, "garbage");
}

#[test]
fn bytes_without_the_frame_mark_are_a_serialization_error() {
    check_garbage_is_isolated(5, "mark");
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn arguments_and_results_that_cannot_cross_are_serialization_errors() {
    let _processes = processes();
    let pool = ProcessPool::new(1).unwrap();
    let [worker] = pool.worker_pids()[..] else {
        panic!("one worker")
    };

    // The parent cannot encode the argument: the task never leaves.
    let message = serialization_message(pool.submit(takes_evens, Evens(vec![1, 2])).join());
    assert!(message.contains("argument"), "{message}");
    assert!(message.contains("Evens"), "{message}");
    assert!(
        message.contains("The length of a sequence must be known"),
        "{message}"
    );

    // The worker cannot decode the argument.
    let message = serialization_message(pool.submit(takes_lopsided, Lopsided).join());
    assert!(message.contains("argument"), "{message}");
    assert!(message.contains("Lopsided"), "{message}");
    assert!(message.contains("bool"), "{message}");

    // The worker cannot encode the result.
    let message = serialization_message(pool.submit(makes_evens, ()).join());
    assert!(message.contains("result"), "{message}");
    assert!(message.contains("Evens"), "{message}");
    assert!(
        message.contains("The length of a sequence must be known"),
        "{message}"
    );

    // The parent cannot decode the result.
    let message = serialization_message(pool.submit(makes_lopsided, ()).join());
    assert!(message.contains("result"), "{message}");
    assert!(message.contains("Lopsided"), "{message}");
    assert!(message.contains("bool"), "{message}");

    // None of it cost the worker its life.
    assert_eq!(pool.submit(tagged, 6).join(), Ok((worker, 36)));
    assert_eq!(pool.worker_pids(), [worker]);

    // process::spawn reports the same.
    let message =
        serialization_message(verisync::process::spawn(takes_evens, Evens(vec![2])).map(|_| ()));
    assert!(message.contains("Evens"), "{message}");
    let child = verisync::process::spawn(makes_lopsided, ()).unwrap();
    let message = serialization_message(child.join());
    assert!(message.contains("Lopsided"), "{message}");
}

#[test]
fn a_pool_of_zero_workers_is_an_error() {
    assert!(matches!(ProcessPool::new(0), Err(TaskError::Spawn(_))));
    match ProcessPool::builder().workers(0).build() {
        Err(TaskError::Spawn(message)) => assert!(message.contains('0'), "{message}"),
        other => panic!("expected a Spawn error, got {other:?}"),
    }
}

// A capturing closure, and function pointers: tests/process_functions.rs.

#[test]
fn a_non_capturing_closure_is_a_task() {
    let _processes = processes();
    let pool = ProcessPool::new(1).unwrap();
    assert_eq!(pool.submit(|x: u64| x + 10, 1).join(), Ok(11));
}

// ---------------------------------------------------------------------------
// process::spawn
// ---------------------------------------------------------------------------

#[test]
fn spawn_runs_a_function_in_a_child_and_joins_its_result() {
    let _processes = processes();
    let child = verisync::process::spawn(tagged, 12).unwrap();
    let pid = child.pid();
    assert!(pid > 0 && pid != std::process::id());
    assert_eq!(child.join(), Ok((pid, 144)));
    assert_reaped(&[pid]);

    // Before join: alive while it runs, an exit status once it ended.
    let path = temp_path("spawned");
    let child = verisync::process::spawn(
        report_pid_then_sleep,
        (path.to_str().unwrap().to_string(), 500),
    )
    .unwrap();
    assert_eq!(read_pid_file(&path), child.pid());
    assert!(child.is_alive(), "still sleeping");
    poll_until("the child ended", PATIENCE, || !child.is_alive());
    assert!(child.exit_status().unwrap().success());
    let pid = child.pid();
    assert_eq!(child.join(), Ok(500));
    assert_reaped(&[pid]);

    assert_eq!(
        verisync::process::spawn(panics, "child panic".to_string())
            .unwrap()
            .join(),
        Err(TaskError::Panicked("child panic".into()))
    );
    let child = verisync::process::spawn(exits, 5).unwrap();
    let pid = child.pid();
    assert_eq!(
        child.join(),
        Err(TaskError::WorkerDied {
            pid,
            signal: None,
            exit_code: Some(5)
        })
    );
}

#[test]
fn terminate_sends_sigterm_and_kill_sends_sigkill() {
    let _processes = processes();
    for (signal, stop) in [
        (15, Process::<u64>::terminate as fn(&Process<u64>)),
        (9, Process::<u64>::kill),
    ] {
        let child = verisync::process::spawn(sleeps, 20_000).unwrap();
        let pid = child.pid();
        assert!(child.is_alive());
        stop(&child);
        assert_eq!(
            child.join(),
            Err(TaskError::WorkerDied {
                pid,
                signal: Some(signal),
                exit_code: None
            })
        );
        assert_reaped(&[pid]);
    }
}

#[test]
fn a_child_has_its_own_memory() {
    let _processes = processes();
    assert_eq!(GLOBAL.load(Ordering::SeqCst), 1);
    let child = verisync::process::spawn(change_global, 99).unwrap();
    assert_eq!(child.join(), Ok(99), "the child saw its change");
    assert_eq!(GLOBAL.load(Ordering::SeqCst), 1, "the parent's copy");
    let pool = ProcessPool::new(1).unwrap();
    assert_eq!(pool.submit(change_global, 7).join(), Ok(7));
    assert_eq!(GLOBAL.load(Ordering::SeqCst), 1, "the parent's copy");
}

#[test]
fn a_dropped_process_is_still_reaped() {
    let _processes = processes();
    // Dropped while running: reaped when it ends.
    let running = verisync::process::spawn(sleeps, 200).unwrap();
    let pid = running.pid();
    drop(running);
    assert!(is_alive_child(pid), "dropping does not kill it");
    poll_until("the dropped child was reaped", PATIENCE, || {
        proc_stat(pid).is_none_or(|(_, ppid)| ppid != std::process::id())
    });
    // Dropped after it ended.
    let ended = verisync::process::spawn(square, 2).unwrap();
    let pid = ended.pid();
    poll_until("the child ended", PATIENCE, || has_exited(pid));
    drop(ended);
    assert_reaped(&[pid]);
}

// ---------------------------------------------------------------------------
// No zombies, no orphans
// ---------------------------------------------------------------------------

/// After `shutdown`, `terminate` and drop, no child of this process remains:
/// checked by scanning `/proc` for any process whose parent is us, while no
/// other test is starting processes.
#[test]
fn no_child_process_remains_after_shutdown_terminate_or_drop() {
    let _alone = alone();
    let assert_no_children = |when: &str| {
        let children = our_children();
        assert!(
            children.is_empty(),
            "children (pid, state) remain after {when}: {children:?}"
        );
    };
    assert_no_children("the other tests");

    // shutdown, after a crash, a recycle and a timeout replaced workers.
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_worker(4)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let squares: Vec<u64> = pool
        .map(square, 0..20u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(squares.len(), 20);
    assert!(matches!(
        pool.submit(exits, 1).join(),
        Err(TaskError::WorkerDied { .. })
    ));
    assert_eq!(pool.submit(sleeps, 5_000).join(), Err(TaskError::TimedOut));
    let queued = pool.submit(sleeps, 50);
    pool.shutdown();
    assert_eq!(queued.join(), Ok(50), "shutdown finishes queued tasks");
    assert_no_children("shutdown");

    // terminate, with tasks running and queued.
    let pool = ProcessPool::new(2).unwrap();
    let long: Vec<_> = (0..6).map(|_| pool.submit(sleeps, 20_000)).collect();
    let started = Instant::now();
    pool.terminate();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "terminate is quick"
    );
    for handle in long {
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
    }
    assert_no_children("terminate");
    drop(pool);

    // drop.
    let pool = ProcessPool::new(2).unwrap();
    let handle = pool.submit(sleeps, 20);
    drop(pool);
    assert_eq!(handle.join(), Ok(20));
    assert_no_children("drop");

    // A build that fails in its initializer.
    assert!(ProcessPool::builder()
        .workers(2)
        .initializer(panicking_initializer)
        .build()
        .is_err());
    assert_no_children("a failed build");

    // process::spawn, joined, killed, and dropped.
    assert_eq!(verisync::process::spawn(square, 3).unwrap().join(), Ok(9));
    let child = verisync::process::spawn(sleeps, 20_000).unwrap();
    child.kill();
    assert!(child.join().is_err());
    let dropped = verisync::process::spawn(sleeps, 10).unwrap();
    let pid = dropped.pid();
    drop(dropped);
    poll_until("the dropped child was reaped", PATIENCE, || {
        proc_stat(pid).is_none_or(|(_, ppid)| ppid != std::process::id())
    });
    assert_no_children("process::spawn");
}

/// The helper program for the orphan test: builds a pool, prints its
/// worker pids, and waits to be killed.
#[test]
#[ignore = "a helper program, run by workers_die_with_a_sigkilled_parent"]
fn helper_orphan_parent() {
    if !is_helper("helper_orphan_parent") {
        return;
    }
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.submit(square, 3).join(), Ok(9));
    let pids: Vec<String> = pool.worker_pids().iter().map(u32::to_string).collect();
    println!("WORKERS {}", pids.join(" "));
    thread::sleep(Duration::from_secs(30));
}

#[test]
fn workers_die_with_a_sigkilled_parent() {
    let _processes = processes();
    let mut helper = KillOnDrop(
        helper_command("helper_orphan_parent")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(helper.0.stdout.take().unwrap());
    // The harness prints "test helper_orphan_parent ... " on the same line.
    let line = stdout
        .lines()
        .map(Result::unwrap)
        .find(|line| line.contains("WORKERS "))
        .expect("the helper prints its workers");
    let workers: Vec<u32> = line[line.find("WORKERS ").unwrap() + "WORKERS ".len()..]
        .split_whitespace()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "{line}");
    let helper_pid = helper.0.id();
    for &pid in &workers {
        assert!(
            matches!(proc_stat(pid), Some((state, ppid)) if ppid == helper_pid && state != 'Z'),
            "worker {pid} runs under the helper"
        );
    }
    helper.0.kill().unwrap(); // SIGKILL: no destructor, no shutdown
    let status = helper.0.wait().unwrap();
    assert!(!status.success());
    let killed = Instant::now();
    poll_until(
        "the workers of the SIGKILLed parent exited",
        Duration::from_secs(1),
        || workers.iter().all(|&pid| has_exited(pid)),
    );
    eprintln!(
        "orphaned workers exited {:?} after their parent",
        killed.elapsed()
    );
}
