//! # A pool of worker threads: futures, done-callbacks, map and as_completed
//!
//! The lesson: Python's `concurrent.futures.ThreadPoolExecutor` keeps a
//! fixed set of worker threads and hands them tasks. `submit` returns a
//! `Future` at once; `add_done_callback` runs a function when its task
//! finishes; `as_completed` gives the futures back fastest first, and
//! `executor.map` gives the results in input order. An exception in one
//! task is stored in its future: the other tasks, and the worker that ran
//! it, carry on.
//!
//! ```text
//! cargo run --release --example thread_pool
//! ```
//!
//! Here a [`ThreadPool`] of 5 workers "downloads" 20 pages of different
//! sizes (a short sleep each). Part 1 submits them one by one: each
//! [`TaskHandle`] gets an [`on_done`](TaskHandle::on_done) callback, which
//! runs on the worker that finished the task and says which one it was, and
//! [`as_completed`] collects the results as they arrive. Page 13 panics: its
//! handle reports `TaskError::Panicked` with the message, while the other 19
//! finish normally. Part 2 fetches the same pages with
//! [`map`](ThreadPool::map), whose results come in input order whatever
//! order the workers finish in.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use verisync::{as_completed, TaskError, TaskHandle, ThreadPool};

const WORKERS: usize = 5;
const PAGES: u64 = 20;
/// The page whose download fails (panics).
const BROKEN: u64 = 13;

/// A pseudo-random download time in 40..120 ms, derived from the page
/// number (no random crate needed for a bit of irregularity).
fn download_time(page: u64) -> Duration {
    let mixed = page.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    Duration::from_millis(40 + mixed % 80)
}

/// "Downloads" a page and returns its size in KB; page 13 fails.
fn download(page: u64, speedup: u32) -> u64 {
    thread::sleep(download_time(page) / speedup);
    if page == BROKEN {
        panic!("page {page}: connection reset by peer");
    }
    10 + page * 3
}

/// When the program started, for the time stamps.
static START: OnceLock<Instant> = OnceLock::new();

/// Prints a line stamped with the milliseconds since the start.
fn say(message: &str) {
    let start = START.get_or_init(Instant::now);
    println!("[{:>4} ms] {message}", start.elapsed().as_millis());
}

fn describe(result: &Result<u64, TaskError>) -> String {
    match result {
        Ok(size) => format!("{size} KB"),
        Err(error) => format!("FAILED: {error}"),
    }
}

fn main() {
    START.get_or_init(Instant::now);
    // Rust prints every panic (with a backtrace if RUST_BACKTRACE is set)
    // even when it is caught; one short line says the same here.
    std::panic::set_hook(Box::new(|info| {
        let worker = thread::current().name().unwrap_or("?").to_owned();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("?");
        say(&format!(
            "{worker}: panic! \"{message}\" (the pool catches it; the worker lives on)"
        ));
    }));
    println!(
        "A pool of {WORKERS} workers downloads {PAGES} pages \
         (Python: ThreadPoolExecutor(max_workers={WORKERS})).\n"
    );
    let pool = ThreadPool::builder()
        .workers(WORKERS)
        .thread_name("worker")
        .build();

    // ---- Part 1: submit + done-callbacks, gathered with as_completed ----
    println!("Part 1: submit each page, add a done-callback, gather with as_completed");
    let callbacks_run = Arc::new(AtomicUsize::new(0));
    let workers_used = Arc::new(Mutex::new(BTreeSet::new()));
    let handles: Vec<TaskHandle<u64>> = (0..PAGES)
        .map(|page| {
            let handle = pool.submit(move || download(page, 1));
            // Python: future.add_done_callback(fn). It runs on the worker
            // that finished the task (or at once, here, if it already had).
            let (callbacks_run, workers_used) =
                (Arc::clone(&callbacks_run), Arc::clone(&workers_used));
            handle.on_done(move |result| {
                let worker = thread::current().name().unwrap_or("?").to_owned();
                say(&format!(
                    "{worker}: finished page {page} -> {} (done-callback)",
                    describe(result)
                ));
                workers_used.lock().unwrap().insert(worker);
                callbacks_run.fetch_add(1, Ordering::SeqCst);
            });
            handle
        })
        .collect();
    say(&format!(
        "main: submitted {PAGES} pages; submit never waits"
    ));

    let (mut succeeded, mut failed, mut arrivals) = (0, 0, Vec::new());
    // Python: `for future in as_completed(futures): future.result()`.
    for (index, result) in as_completed(handles) {
        arrivals.push(index);
        match &result {
            Ok(_) => succeeded += 1,
            // The panic is stored in the handle, like an exception in a
            // Python future; it does not reach main or stop the others.
            Err(TaskError::Panicked(_)) => failed += 1,
            Err(other) => panic!("page {index}: unexpected {other}"),
        }
        say(&format!(
            "main: as_completed #{:<2} is page {index}: {}",
            arrivals.len(),
            describe(&result)
        ));
    }
    let callbacks = callbacks_run.load(Ordering::SeqCst);
    let used = workers_used.lock().unwrap().len();
    say(&format!(
        "main: {succeeded} pages downloaded, {failed} failed; \
             the fastest came first: {arrivals:?}"
    ));

    // ---- Part 2: map, results in input order ----
    println!("\nPart 2: pool.map over the same pages: results in input order");
    let map_start = Instant::now();
    let mut in_order = 0;
    for (page, result) in (0..PAGES).zip(pool.map(0..PAGES, |page| download(page, 2))) {
        say(&format!("map: page {page} -> {}", describe(&result)));
        in_order += 1;
    }
    say(&format!(
        "main: map gave all {in_order} results in order in {} ms; \
             page {BROKEN} failed alone",
        map_start.elapsed().as_millis()
    ));

    // Python: leaving the `with` block calls executor.shutdown(wait=True).
    pool.shutdown();
    say("main: shutdown() — every worker finished and was joined");

    println!("\nSummary");
    println!("| what | count |");
    println!("|---|---|");
    println!("| workers | {WORKERS} |");
    println!("| tasks submitted | {PAGES} |");
    println!("| downloaded | {succeeded} |");
    println!("| panicked | {failed} |");
    println!("| done-callbacks run | {callbacks} |");
    println!("| workers that finished tasks | {used} |");
    println!("| map results in order | {in_order} |");
    assert_eq!(succeeded + failed, PAGES, "every task was reported once");
    assert_eq!(callbacks as u64, PAGES, "every callback ran once");
    println!(
        "\nOne task panicked; its handle said so, and the other {} pages \
         downloaded on the same {WORKERS} workers.",
        PAGES - 1
    );
}
