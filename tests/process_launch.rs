//! How workers start and what they may do: tasks that start processes of
//! their own (nested pools and `spawn`, with no orphans), and initializers
//! that take long or crash.

verisync::process_test_support!();

mod common;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::{with_watchdog, PATIENCE};
use verisync::{ProcessPool, TaskError};

fn square(x: u64) -> u64 {
    x * x
}

/// A task that runs its own pool: the squares of `1..=n`, and the pids of
/// the processes that computed them.
fn squares_in_a_nested_pool(n: u64) -> (u32, Vec<(u32, u64)>) {
    let pool = ProcessPool::new(2).expect("a pool inside a worker");
    let squares = pool
        .map(tagged, 1..=n)
        .collect::<Result<_, _>>()
        .expect("the nested tasks");
    (std::process::id(), squares)
}

fn tagged(x: u64) -> (u32, u64) {
    (std::process::id(), x * x)
}

/// A task that spawns a process: its result.
fn square_in_a_spawned_grandchild(x: u64) -> u64 {
    verisync::process::spawn(square, x)
        .expect("spawn inside a worker")
        .join()
        .expect("the grandchild's result")
}

/// Writes this process's pid into `path`, then sleeps `millis`.
fn report_pid_then_sleep((path, millis): (String, u64)) -> u64 {
    let partial = format!("{path}.partial");
    std::fs::write(&partial, std::process::id().to_string()).unwrap();
    std::fs::rename(&partial, &path).unwrap();
    thread::sleep(Duration::from_millis(millis));
    millis
}

/// Spawns a grandchild that reports its pid into `path` and sleeps long;
/// waits for it.
fn waits_for_a_sleeping_grandchild(path: String) -> u64 {
    verisync::process::spawn(report_pid_then_sleep, (path, 60_000))
        .expect("spawn inside a worker")
        .join()
        .unwrap_or(0)
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "verisync-process-launch-{}-{tag}",
        std::process::id()
    ))
}

fn read_pid_file(path: &PathBuf) -> u32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.parse().ok())
        {
            let _ = std::fs::remove_file(path);
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        thread::sleep(Duration::from_millis(5));
    }
}

/// `(state, ppid)` of process `pid`, if it exists.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[test]
fn a_task_may_run_a_pool_of_its_own() {
    with_watchdog(PATIENCE * 2, || {
        let pool = ProcessPool::new(1).unwrap();
        let [worker] = pool.worker_pids()[..] else {
            panic!("one worker")
        };
        let (ran_in, squares) = pool.submit(squares_in_a_nested_pool, 6).join().unwrap();
        assert_eq!(ran_in, worker);
        let values: Vec<u64> = squares.iter().map(|&(_, square)| square).collect();
        assert_eq!(values, [1, 4, 9, 16, 25, 36]);
        for (pid, _) in squares {
            assert!(
                pid != worker && pid != std::process::id(),
                "computed in a grandchild, not in {pid}"
            );
        }
        assert_eq!(
            pool.submit(square_in_a_spawned_grandchild, 7).join(),
            Ok(49)
        );
        assert_eq!(
            verisync::process::spawn(square_in_a_spawned_grandchild, 8)
                .unwrap()
                .join(),
            Ok(64)
        );
    });
}

/// A grandchild dies with the worker that started it: no orphans, nested.
#[test]
fn a_grandchild_dies_with_its_killed_worker() {
    with_watchdog(PATIENCE * 2, || {
        let pool = ProcessPool::new(1).unwrap();
        let [worker] = pool.worker_pids()[..] else {
            panic!("one worker")
        };
        let path = temp_path("grandchild");
        let handle = pool.submit(
            waits_for_a_sleeping_grandchild,
            path.to_str().unwrap().to_string(),
        );
        let grandchild = read_pid_file(&path);
        assert_eq!(
            proc_stat(grandchild).map(|(_, parent)| parent),
            Some(worker),
            "the grandchild is the worker's child"
        );
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(worker as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        assert!(matches!(
            handle.join(),
            Err(TaskError::WorkerDied {
                signal: Some(9),
                ..
            })
        ));
        let deadline = Instant::now() + PATIENCE;
        while matches!(proc_stat(grandchild), Some((state, _)) if state != 'Z' && state != 'X') {
            assert!(
                Instant::now() < deadline,
                "the grandchild {grandchild} outlived its worker: {:?}",
                proc_stat(grandchild)
            );
            thread::sleep(Duration::from_millis(5));
        }
    });
}

/// Longer than the 30 s a worker has to reach `init()`.
fn slow_initializer() {
    thread::sleep(Duration::from_secs(32));
}

fn crashing_initializer() {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = setrlimit(Resource::Core, no_core);
    std::process::abort()
}

/// An initializer may take as long as it takes: the worker said it started.
#[test]
fn a_slow_initializer_is_waited_for() {
    with_watchdog(Duration::from_secs(120), || {
        let started = Instant::now();
        let pool = ProcessPool::builder()
            .workers(1)
            .initializer(slow_initializer)
            .build()
            .unwrap();
        assert!(started.elapsed() >= Duration::from_secs(32));
        assert_eq!(pool.submit(square, 6).join(), Ok(36));
    });
}

/// An initializer that crashes the worker is reported as what it is.
#[test]
fn an_initializer_that_crashes_is_reported_truthfully() {
    with_watchdog(PATIENCE, || {
        match ProcessPool::builder()
            .workers(1)
            .initializer(crashing_initializer)
            .build()
        {
            Err(TaskError::Spawn(message)) => assert!(
                message.contains("initializer") && message.contains("killed by signal 6"),
                "{message}"
            ),
            other => panic!("expected a Spawn error, got {other:?}"),
        }
    });
}
