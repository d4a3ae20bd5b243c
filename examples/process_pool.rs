//! # CPU-bound work on threads and on processes, and done-callbacks
//!
//! The lesson: Python runs CPU-heavy tasks on `ProcessPoolExecutor`
//! because its threads share one interpreter lock (the GIL) and so take
//! turns on the CPU. Rust threads have no such lock: a [`ThreadPool`] and
//! a [`ProcessPool`] of the same size both use every core. Processes still
//! have a price — starting them, and encoding every argument and result
//! with serde — and a reward: each worker has its own memory, and one that
//! crashes takes down only its own task.
//!
//! ```text
//! cargo run --release --example process_pool
//! ```
//!
//! Part 1 counts the primes below 12 limits (a naive, CPU-bound loop of
//! about 50–100 ms each in release) three ways: one at a time on `main`, on
//! a `ThreadPool`, and on a `ProcessPool` — Python's
//! `executor.map(count_primes, limits)` — and prints the timings side by
//! side. Part 2 submits the same 12 tasks to the process pool and gives
//! each [`TaskHandle`] an [`on_done`](TaskHandle::on_done) callback
//! (Python's `future.add_done_callback`), which prints each result the
//! moment it comes back, smallest tasks first.
//!
//! `verisync::process::init()` is the first line of `main`: the pool's
//! workers are this same program started again, and `init()` is where a
//! worker turns off to serve tasks instead of running `main`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use verisync::{Mutex, ProcessPool, TaskError, TaskHandle, ThreadPool};

/// How many CPU-heavy tasks each part runs.
const TASKS: usize = 12;

/// The prime-counting limits: task `i` counts the primes below `limit(i)`.
/// Debug builds run the same code about ten times slower, so they count
/// less to finish in about the same time.
fn limit(task: usize) -> u64 {
    let scale = if cfg!(debug_assertions) { 10 } else { 1 };
    (400_000 + 20_000 * task as u64) / scale
}

/// The CPU-bound work: counts the primes below `limit` by trial division,
/// deliberately naive.
fn count_primes(limit: u64) -> u64 {
    (2..limit)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

/// The process-pool task: the count, and which process computed it.
fn count_primes_here(limit: u64) -> (u64, u32) {
    (count_primes(limit), std::process::id())
}

/// When the program started, for the time stamps.
static START: OnceLock<Instant> = OnceLock::new();

/// Prints a line stamped with the milliseconds since the start.
fn say(message: &str) {
    let start = START.get_or_init(Instant::now);
    println!("[{:>4} ms] {message}", start.elapsed().as_millis());
}

fn ms(duration: Duration) -> u128 {
    duration.as_millis()
}

fn main() -> Result<(), TaskError> {
    // Must come first: in a worker process this serves tasks and never
    // returns. (Python's `if __name__ == "__main__":` guard plays this part.)
    verisync::process::init();
    START.get_or_init(Instant::now);
    let workers = std::thread::available_parallelism()
        .map_or(2, |cpus| cpus.get())
        .clamp(2, 4);
    let limits: Vec<u64> = (0..TASKS).map(limit).collect();
    println!(
        "{TASKS} CPU-bound tasks: count the primes below {}..{} (main is process {}).\n",
        limits[0],
        limits[TASKS - 1],
        std::process::id()
    );

    // ---- Part 1: the same work three ways ----
    println!("Part 1: one at a time, then on {workers} threads, then on {workers} processes");
    let started = Instant::now();
    let serial: Vec<u64> = limits.iter().map(|&limit| count_primes(limit)).collect();
    let serial_time = started.elapsed();
    say(&format!("one at a time on main: {} ms", ms(serial_time)));

    // Python: `with ThreadPoolExecutor(workers) as ex: list(ex.map(f, limits))`.
    let threads = ThreadPool::new(workers);
    let started = Instant::now();
    let on_threads: Vec<u64> = threads
        .map(limits.clone(), count_primes)
        .collect::<Result<_, _>>()?;
    let thread_time = started.elapsed();
    threads.shutdown();
    say(&format!(
        "ThreadPool({workers}): {} ms — no GIL, so the threads really run at once",
        ms(thread_time)
    ));

    // Python: `with ProcessPoolExecutor(workers) as ex: list(ex.map(f, limits))`.
    let started = Instant::now();
    let processes = ProcessPool::new(workers)?;
    let startup_time = started.elapsed();
    say(&format!(
        "ProcessPool({workers}) started workers {:?} in {} ms",
        processes.worker_pids(),
        ms(startup_time)
    ));
    let started = Instant::now();
    let on_processes: Vec<(u64, u32)> = processes
        .map(count_primes_here, limits.clone())
        .collect::<Result<_, _>>()?;
    let process_time = started.elapsed();
    let mut pids: Vec<u32> = on_processes.iter().map(|&(_, pid)| pid).collect();
    pids.sort_unstable();
    pids.dedup();
    say(&format!(
        "ProcessPool({workers}): {} ms — the {TASKS} tasks ran in worker processes {pids:?}, \
         none in main",
        ms(process_time)
    ));
    let counts: Vec<u64> = on_processes.iter().map(|&(count, _)| count).collect();
    assert_eq!(on_threads, serial, "the thread pool counted differently");
    assert_eq!(counts, serial, "the process pool counted differently");
    assert!(!pids.contains(&std::process::id()));
    println!("Every count agrees: {serial:?}\n");

    let speedup = |time: Duration| serial_time.as_secs_f64() / time.as_secs_f64().max(1e-9);
    println!("| way | time for {TASKS} tasks |");
    println!("|---|---|");
    println!("| one at a time | {} ms |", ms(serial_time));
    println!(
        "| ThreadPool({workers}) | {} ms ({:.1}x) |",
        ms(thread_time),
        speedup(thread_time)
    );
    println!(
        "| ProcessPool({workers}) | {} ms ({:.1}x) |",
        ms(process_time),
        speedup(process_time)
    );
    println!("| ProcessPool start-up | {} ms |", ms(startup_time));
    println!(
        "\nIn Python the thread pool would take about as long as one at a time: the GIL\n\
         lets one thread run Python code at once, so CPU-bound work needs processes.\n\
         Rust has no GIL: both pools keep {workers} cores busy (on a machine with\n\
         {workers} idle cores, both come out near {workers}x). The process pool paid\n\
         extra: starting the workers, and encoding each limit and each count with serde\n\
         on its way through a pipe. Tiny here, real for tiny tasks or big arguments.\n\
         What it buys: every worker has its own memory, and a worker that crashes\n\
         fails only its own task (see the processes example).\n"
    );

    // ---- Part 2: done-callbacks ----
    println!("Part 2: submit the {TASKS} tasks again, each with a done-callback");
    // Callbacks run on the pool's threads that receive results, one per
    // worker, so two may run at once: the count is taken and the line
    // printed under one lock, or "#8" could be printed before "#7".
    let callbacks_run = Arc::new(Mutex::new(0usize));
    // Largest first, so the callbacks show results arriving out of order.
    let handles: Vec<TaskHandle<(u64, u32)>> = (0..TASKS)
        .rev()
        .map(|task| {
            let limit = limits[task];
            let handle = processes.submit(count_primes_here, limit);
            // Python: future.add_done_callback(fn). It runs in this process,
            // on the pool's thread that received the result from the worker.
            let callbacks_run = Arc::clone(&callbacks_run);
            handle.on_done(move |result| {
                let mut run = callbacks_run.lock();
                *run += 1;
                let done = *run;
                match result {
                    Ok((count, pid)) => say(&format!(
                        "done-callback #{done:<2}: task {task:>2}: {count} primes below \
                         {limit} (worker {pid})"
                    )),
                    Err(error) => say(&format!(
                        "done-callback #{done:<2}: task {task:>2}: {error}"
                    )),
                }
            });
            handle
        })
        .collect();
    say(&format!(
        "main: submitted {TASKS} tasks, largest first; submit never waits"
    ));
    for handle in handles {
        handle.join()?;
    }
    // Python: leaving the `with` block calls executor.shutdown(wait=True).
    processes.shutdown();
    let callbacks = *callbacks_run.lock();
    say(&format!(
        "main: all {TASKS} handles joined, {callbacks} done-callbacks ran; \
         shutdown() reaped the workers"
    ));
    assert_eq!(callbacks, TASKS, "every callback ran once");
    Ok(())
}
