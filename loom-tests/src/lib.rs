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

/// Modelled processes for the process-shared state machines: threads play
/// processes 1..=3, each alive until it dies.
pub mod processes {
    use loom::sync::atomic::{AtomicBool, Ordering};
    use verisync::__loom::process_lock::{
        process_died, Acquired, Holders, RawProcessLock, StateLock, Wait, Word,
    };

    /// Processes 1..=3 (index 0 unused); a process is alive until it dies.
    pub struct Processes {
        alive: [AtomicBool; 4],
    }

    impl Processes {
        pub fn new() -> Self {
            Self {
                alive: std::array::from_fn(|_| AtomicBool::new(true)),
            }
        }

        /// Process `id` dies now: marked dead before the model's wake-up,
        /// as the futex model requires.
        pub fn die(&self, id: u32) {
            self.alive[id as usize].store(false, Ordering::Release);
            process_died();
        }

        /// Process `id` dies now, and nobody polls: no waiter is told (the
        /// model's stand-in for production's `HOLDER_POLL` is left out).
        /// A waiter still asleep afterwards is one that only the poll
        /// would have woken: loom reports it as a deadlock. For the tests
        /// of wake-ups that must not wait for the poll.
        pub fn die_unnoticed(&self, id: u32) {
            self.alive[id as usize].store(false, Ordering::Release);
        }
    }

    impl Default for Processes {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Holders for Processes {
        fn is_alive(&self, holder: u32) -> bool {
            // Acquire: a dead holder's writes are visible to whoever takes
            // over from it (its death is stored with Release after them).
            (1..=3).contains(&holder) && self.alive[holder as usize].load(Ordering::Acquire)
        }
    }

    /// Process `me` taking the robust lock `word` over a primitive's state
    /// (what production's `process_shared/robust.rs` is, minus the
    /// in-process lock: here every process has one thread).
    pub struct StateLockOf<'a> {
        pub me: u32,
        pub word: &'a Word,
        pub processes: &'a Processes,
    }

    impl Holders for StateLockOf<'_> {
        fn is_alive(&self, holder: u32) -> bool {
            self.processes.is_alive(holder)
        }
    }

    impl StateLock for StateLockOf<'_> {
        fn me(&self) -> u32 {
            self.me
        }

        fn lock(&self, wait: Wait) -> Option<Acquired> {
            let lock = RawProcessLock::new(self.word);
            match wait {
                Wait::Try => lock.try_lock(self.me, self.processes),
                Wait::Until(deadline) => lock.lock(self.me, self.processes, deadline),
            }
        }

        fn unlock(&self) {
            RawProcessLock::new(self.word).unlock(self.me, false);
        }

        fn held_by_the_dead(&self) -> bool {
            RawProcessLock::new(self.word).held_by_the_dead(self.processes)
        }
    }
}
