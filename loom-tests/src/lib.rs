//! Helpers for the loom suite in `tests/`.

use std::process::Command;

/// Runs the `#[ignore]`d test `test_name` of the current test binary in a
/// child process and asserts that loom failed it with a deadlock report.
///
/// Why a child process: when loom detects a deadlock it panics while other
/// modelled threads are still blocked, and unwinding their stacks drops loom
/// objects outside the model, which panics again and aborts the whole test
/// binary — so `#[should_panic(expected = "deadlock")]` cannot catch it
/// (<https://github.com/tokio-rs/loom/issues/291>). In a child process the
/// abort is contained and the report is still on stderr.
pub fn assert_loom_reports_deadlock(test_name: &str) {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(test_binary)
        .args([
            test_name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the test binary can run itself");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "loom found no deadlock in `{test_name}`, but one exists.\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("deadlock; threads ="),
        "`{test_name}` failed, but not with loom's deadlock report.\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("running 1 test"),
        "`{test_name}` did not run exactly one test.\nstdout:\n{stdout}"
    );
}
