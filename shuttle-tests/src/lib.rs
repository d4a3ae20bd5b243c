//! Helpers for the shuttle suite in `tests/`.
//!
//! Every test runs its body under two of shuttle's schedulers, one after
//! the other: the random scheduler (a uniformly random runnable thread at
//! every scheduling point) and PCT (random thread priorities with a few
//! random priority change points, which finds bugs needing a few
//! preemptions at chosen places with a known probability). A failure
//! prints the schedule (or the random seed) that replays it.
//!
//! The number of executions per scheduler is [`iterations`]: the
//! `VERISYNC_SHUTTLE_ITERATIONS` environment variable, or a default sized
//! so that the whole suite stays within a few minutes on two cores.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::{Config, FailurePersistence, MaxSteps, Runner};

/// Executions per scheduler when `VERISYNC_SHUTTLE_ITERATIONS` is unset.
pub const DEFAULT_ITERATIONS: usize = 5000;

/// PCT's bug depth: the number of priority change points plus one. Most
/// concurrency bugs need at most two or three ill-placed preemptions.
pub const PCT_DEPTH: usize = 3;

/// The most scheduling steps one execution may take. A livelock — a
/// thread spinning forever on a slot nobody will write — shows up as an
/// execution that exceeds it. Every script here takes under 5,000 steps
/// (checked by running the suite with that bound).
pub const MAX_STEPS: usize = 50_000;

/// Executions per scheduler: `VERISYNC_SHUTTLE_ITERATIONS`, or the default.
pub fn iterations() -> usize {
    match std::env::var("VERISYNC_SHUTTLE_ITERATIONS") {
        Ok(value) => value
            .parse()
            .expect("VERISYNC_SHUTTLE_ITERATIONS is a number of executions"),
        Err(_) => DEFAULT_ITERATIONS,
    }
}

fn config() -> Config {
    let mut config = Config::new();
    // The pool's workers and the queue scripts need more than shuttle's
    // default 60 KiB of stack per thread in a debug-assertions build.
    config.stack_size = 256 * 1024;
    config.max_steps = MaxSteps::FailAfter(MAX_STEPS);
    // Known and intended: every atomic access runs as `SeqCst` (ordering
    // bugs are loom's job), and lazy statics are dropped between executions.
    config.silence_warnings = true;
    config
}

/// Runs `test` for [`iterations`] executions under the random scheduler,
/// then as many under PCT.
pub fn check(test: impl Fn() + Send + Sync + Clone + 'static) {
    check_with(iterations(), test);
}

/// As [`check`], with `iterations` executions per scheduler.
pub fn check_with(iterations: usize, test: impl Fn() + Send + Sync + Clone + 'static) {
    Runner::new(RandomScheduler::new(iterations), config()).run(test.clone());
    Runner::new(PctScheduler::new(PCT_DEPTH, iterations), config()).run(test);
}

/// How quickly a scheduler finds a failure of a test: the result of
/// [`detection_rate`].
#[derive(Debug)]
pub struct Detection {
    /// Independent runs (one scheduler seed each).
    pub runs: usize,
    /// Runs that found a failure within their budget of executions.
    pub runs_that_failed: usize,
    /// Of those, the executions each needed until the failure (inclusive).
    pub executions_to_failure: Vec<usize>,
    /// Of those, the mean wall time until the failure.
    pub mean_time_to_failure: Duration,
}

/// Runs `test` under `runs` schedulers, `scheduler(seed, budget)` for seeds
/// `0..runs`, each for at most `budget` executions or until its first
/// failure, and records how many executions each needed: how long a
/// scheduler takes to find a known defect. Schedules of failures are not
/// printed (panic messages still go to stderr).
pub fn detection_rate<S: Scheduler + 'static>(
    runs: usize,
    budget: usize,
    scheduler: impl Fn(u64, usize) -> S,
    test: impl Fn() + Send + Sync + Clone + 'static,
) -> Detection {
    let mut executions_to_failure = Vec::new();
    let mut time_to_failure = Duration::ZERO;
    for seed in 0..runs {
        // A plain std counter, outside the model: it only counts executions.
        let executions = Arc::new(AtomicUsize::new(0));
        let counted = {
            let executions = Arc::clone(&executions);
            let test = test.clone();
            move || {
                executions.fetch_add(1, Ordering::Relaxed);
                test();
            }
        };
        let mut config = config();
        config.failure_persistence = FailurePersistence::None;
        let runner = Runner::new(scheduler(seed as u64, budget), config);
        let start = Instant::now();
        if catch_unwind(AssertUnwindSafe(move || runner.run(counted))).is_err() {
            time_to_failure += start.elapsed();
            executions_to_failure.push(executions.load(Ordering::Relaxed));
        }
    }
    let runs_that_failed = executions_to_failure.len();
    Detection {
        runs,
        runs_that_failed,
        executions_to_failure,
        mean_time_to_failure: time_to_failure / runs_that_failed.max(1) as u32,
    }
}

/// The random scheduler with a fixed seed, for `budget` executions.
pub fn random_scheduler(seed: u64, budget: usize) -> RandomScheduler {
    RandomScheduler::new_from_seed(seed, budget)
}

/// The PCT scheduler (depth [`PCT_DEPTH`]) with a fixed seed, for `budget`
/// executions.
pub fn pct_scheduler(seed: u64, budget: usize) -> PctScheduler {
    PctScheduler::new_from_seed(seed, PCT_DEPTH, budget)
}

/// A random number in `0..bound` from shuttle's controlled source, so a
/// script chosen with it replays with the schedule.
pub fn random_below(bound: usize) -> usize {
    use shuttle::rand::Rng;
    shuttle::rand::thread_rng().gen_range(0..bound)
}

/// Lets the other threads run: a thread that polls (`try_get` in a loop)
/// must yield, or PCT would run it forever at the highest priority.
pub fn let_others_run() {
    shuttle::thread::yield_now();
}
