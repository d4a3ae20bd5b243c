//! A program whose `main` does not call `verisync::process::init()` first.
//!
//! This test binary deliberately lacks `verisync::process_test_support!()`,
//! so nothing serves tasks in its worker processes: a worker (started with
//! the parent's own command line) runs the test harness with the same
//! selection as its parent — the helper test below, which goes straight to
//! the program's work and starts a pool and a process, as a `main` that
//! forgot `init()` does. Starting a pool (or a process) from it must give
//! the parent a `Spawn` error and the worker a clear panic on its stderr,
//! never a fork bomb or a hang.
//!
//! The test runs the scenario in a helper program (this binary again,
//! selected by an environment variable), so it can read the helper's stderr,
//! which its worker processes inherit.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use verisync::{ProcessPool, TaskError};

const HELPER_VARIABLE: &str = "VERISYNC_MISSING_INIT_TEST_HELPER";

fn square(x: u64) -> u64 {
    x * x
}

/// The helper program: the parent side of the scenario, and, run again in
/// each worker (the same command line, the same environment), what the
/// worker does instead of serving tasks.
#[test]
#[ignore = "a helper program, run by a_main_without_init_is_a_spawn_error_not_a_fork_bomb"]
fn helper_missing_init_parent() {
    if std::env::var_os(HELPER_VARIABLE).is_none() {
        return;
    }
    for (what, result) in [
        ("pool", ProcessPool::new(2).map(|_| ())),
        ("spawn", verisync::process::spawn(square, 3).map(|_| ())),
    ] {
        match result {
            Err(TaskError::Spawn(message)) => println!("SPAWN-ERROR {what}: {message}"),
            other => println!("UNEXPECTED {what}: {other:?}"),
        }
    }
}

#[test]
fn a_main_without_init_is_a_spawn_error_not_a_fork_bomb() {
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "helper_missing_init_parent",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_VARIABLE, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(output.status.success(), "the helper failed\n{context}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}\n{context}");

    // The parent: a Spawn error for both, pointing at init().
    for what in ["pool", "spawn"] {
        let line = stdout
            .lines()
            .find_map(|line| Some(&line[line.find(&format!("SPAWN-ERROR {what}: "))?..]))
            .unwrap_or_else(|| panic!("no Spawn error for the {what}\n{context}"));
        assert!(line.contains("init()"), "{line}");
    }
    assert!(!stdout.contains("UNEXPECTED"), "{context}");

    // The workers: a clear panic on their stderr, once per worker started
    // (the first of the pool's two, and the spawned process) — each refused
    // to start processes of its own, so nothing multiplied.
    let refusal = "did not call verisync::process::init() first";
    assert_eq!(
        stderr.matches(refusal).count(),
        2,
        "expected exactly two refusing workers\n{context}"
    );
}
