//! Helpers shared by the integration tests (each test file is its own crate
//! and includes this module with `mod common;`, so not every helper is used
//! by every file).
#![allow(dead_code)]

#[cfg(target_os = "linux")]
pub mod arena;

use std::panic::resume_unwind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any test waits for something that must happen promptly before
/// it declares a deadlock or lost wake-up. Generous: the suite may run on a
/// loaded two-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How long one case of a concurrent property test may take (a healthy
/// case takes milliseconds) before its watchdog declares it hung.
pub const CASE_PATIENCE: Duration = Duration::from_secs(10);

/// The configuration of the concurrent property tests: few cases (each
/// starts threads), and shrinking bounded in time, since a case that hangs
/// costs a whole [`CASE_PATIENCE`] each time it is re-run.
pub fn concurrent_config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: 64,
        max_shrink_time: 60_000,
        ..proptest::test_runner::Config::default()
    }
}

/// Iterations are multiplied by this in release builds (the stress tests are
/// sized to finish in a second or two in debug builds).
pub const SCALE: usize = if cfg!(debug_assertions) { 1 } else { 20 };

/// Runs `body` on its own thread and fails if it does not finish within
/// `limit`, so a lost wake-up or a deadlock in the library makes a test fail
/// instead of hanging the suite. A panic in `body` is passed on unchanged.
pub fn with_watchdog<R, F>(limit: Duration, body: F) -> R
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let (done, finished) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        let result = body();
        let _ = done.send(());
        result
    });
    match finished.recv_timeout(limit) {
        // Finished, or panicked (the sender was dropped while unwinding).
        Ok(()) | Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(result) => result,
            Err(panic) => resume_unwind(panic),
        },
        Err(RecvTimeoutError::Timeout) => panic!(
            "the test did not finish within {limit:?}: some thread is blocked forever \
             (a lost wake-up, a lost permit or a deadlock)"
        ),
    }
}

/// Operations completed so far in a test run under
/// [`with_progress_watchdog`].
#[derive(Default)]
pub struct Progress {
    completed: AtomicU64,
}

impl Progress {
    /// Records that one more operation completed.
    pub fn tick(&self) {
        // Relaxed: only ever compared with an earlier reading of itself.
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }
}

/// Runs `body` on its own thread, like [`with_watchdog`], but fails only
/// when `body` stops making progress: when no operation completes
/// ([`Progress::tick`]) for `stall`. A lost wake-up or a stranded waiter
/// still fails the test within `stall` of the last operation, while a run
/// that is merely slow — its threads pinned to one CPU beside a busy loop,
/// where every yield may hand the CPU away for a scheduler slice — is let
/// finish. (The work every such test does is bounded, so it does finish.)
///
/// The stall is counted in looks, `stall / LOOKS` apart, not read off the
/// clock: a test process stopped as a whole (SIGSTOP while a benchmark
/// runs, a suspended VM) sees one late look when it resumes, not a stall.
pub fn with_progress_watchdog<R, F>(stall: Duration, body: F) -> R
where
    R: Send + 'static,
    F: FnOnce(&Progress) -> R + Send + 'static,
{
    const LOOKS: u32 = 20;
    let progress = Arc::new(Progress::default());
    let (done, finished) = mpsc::channel::<()>();
    let worker = {
        let progress = Arc::clone(&progress);
        thread::spawn(move || {
            let result = body(&progress);
            let _ = done.send(());
            result
        })
    };
    let mut last = progress.completed();
    let mut looks_without_progress = 0;
    loop {
        match finished.recv_timeout(stall / LOOKS) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                return match worker.join() {
                    Ok(result) => result,
                    Err(panic) => resume_unwind(panic),
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = progress.completed();
                if now != last {
                    last = now;
                    looks_without_progress = 0;
                } else {
                    looks_without_progress += 1;
                    assert!(
                        looks_without_progress < LOOKS,
                        "no operation completed for {stall:?} (after {now} had): some thread \
                         is blocked forever (a lost wake-up, a lost permit or a deadlock)"
                    );
                }
            }
        }
    }
}

/// Joins a thread, re-raising its panic with its original message.
pub fn join<T>(handle: thread::JoinHandle<T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => resume_unwind(panic),
    }
}

/// Joins a scoped thread, re-raising its panic with its original message.
pub fn join_scoped<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => resume_unwind(panic),
    }
}

/// Polls `condition` (an observable state, not a guess about timing) until
/// it holds, failing after [`PATIENCE`].
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    let mut polls = 0u32;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        polls += 1;
        if polls < 100 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Identifies the calling thread to the kernel, so that another thread can
/// see whether it is asleep ([`wait_until_asleep`]). `None` where unknown.
pub fn kernel_thread_id() -> Option<u32> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

fn is_asleep(tid: u32) -> Option<bool> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // "tid (comm) S ..." — the state letter follows the last ')'.
    let state = stat.get(stat.rfind(')')? + 2..)?.chars().next()?;
    Some(state == 'S')
}

/// Waits until the thread `tid` (from [`kernel_thread_id`]) is asleep in
/// the kernel, i.e. has reached the blocking call it was about to make and
/// parked. It must be seen asleep on several polls in a row, so a brief
/// block elsewhere (an allocator lock) is not mistaken for the park.
///
/// Where the kernel does not tell (`tid` is `None`), falls back to a short
/// sleep; the tests using this assert only outcomes that hold once the
/// thread is parked, so the fallback can only make them weaker, not wrong.
pub fn wait_until_asleep(tid: Option<u32>) {
    let Some(tid) = tid else {
        thread::sleep(Duration::from_millis(100));
        return;
    };
    let deadline = Instant::now() + PATIENCE;
    let mut asleep_in_a_row = 0;
    while asleep_in_a_row < 5 {
        match is_asleep(tid) {
            Some(true) => asleep_in_a_row += 1,
            Some(false) => asleep_in_a_row = 0,
            None => {
                thread::sleep(Duration::from_millis(100));
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "thread {tid} never went to sleep in its blocking call"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// A thread that opens `gate` once the thread whose kernel id it is sent
/// is asleep (a scope's thread, waiting for its tasks).
pub fn opens_when_asleep(
    gate: &Arc<verisync::Event>,
) -> (mpsc::Sender<Option<u32>>, thread::JoinHandle<()>) {
    let (send_tid, tid) = mpsc::channel();
    let gate = Arc::clone(gate);
    let opener = thread::spawn(move || {
        if let Ok(scope_thread) = tid.recv() {
            wait_until_asleep(scope_thread);
        }
        gate.set();
    });
    (send_tid, opener)
}

/// Busy work standing in for a critical section of `spins` steps; yields
/// now and then so other threads get to run on a small machine.
pub fn work(spins: u8) {
    for step in 0..spins {
        if step % 8 == 7 {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Silences the panics `is_deliberate` says a test causes on purpose
/// (they would flood the output); every other panic, a failing assertion
/// included, still prints. Installed once per test binary.
pub fn quiet_panics(is_deliberate: fn(&(dyn std::any::Any + Send)) -> bool) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_deliberate(info.payload()) {
                default(info);
            }
        }));
    });
}

/// The message of a panic payload, if it is a string.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// [`quiet_panics`] for the panics whose message starts with "deliberate".
pub fn quiet_deliberate_panics() {
    quiet_panics(|payload| panic_text(payload).is_some_and(|text| text.starts_with("deliberate")));
}

/// A tiny deterministic generator, so each thread varies what it does.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (each thread its own).
    pub fn new(seed: usize) -> Self {
        Self(0x9E37_79B9_7F4A_7C15 ^ (seed as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
    }

    /// A number below `bound` (xorshift).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}
