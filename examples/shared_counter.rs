//! # A counter shared by processes: separate memory, lost updates, and the lock that fixes them
//!
//! The lesson: processes do not share memory, so a counter several
//! processes increment must live in memory made for sharing —
//! [`verisync::process::Value`], Python's `multiprocessing.Value`. And once
//! it is shared, `counter.value += 1` is a *read-modify-write*: two steps,
//! with room for another process in between, so increments get lost unless
//! the read and the write happen under one lock.
//!
//! ```text
//! cargo run --release --example shared_counter
//! cargo run --release --example shared_counter -- --help   # --processes, --increments
//! ```
//!
//! Four child processes ([`verisync::process::spawn`]) each add 1 to a
//! counter 1,000 times, four ways:
//!
//! 1. **A plain global counter.** Each child counts to 1,000 in *its own*
//!    copy; the parent's counter stays 0.
//! 2. **A `process::Value<u64>` without its lock**: `load`, then `store`
//!    of the value plus one. Each step is atomic on its own, but another
//!    process can store between the two, and one of the two increments is
//!    lost — Python's `counter.value += 1` without `with counter.get_lock():`.
//!    A `yield_now` between the read and the write widens the gap (as any
//!    real work there would), so the loss shows on every run.
//! 3. **The same `Value`, read and written under its lock** (`lock()`
//!    returns a guard that derefs to the value; the same `yield_now` sits
//!    inside): exact.
//! 4. **`fetch_add(1)`**: the read-modify-write in one locked step: exact.
//!
//! The children start together: each says it is ready (a
//! `process::Semaphore` release) and waits for the parent's go (a
//! `process::Event`), so the parts race for real instead of running one
//! child after the other while the next one is still starting. The
//! children are this same program started again in worker mode, which is
//! why `verisync::process::init()` is the first line of `main`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use std::{env, fmt};

use serde::{Deserialize, Serialize};
use verisync::process::{Event, Semaphore, Value};

const USAGE: &str = "\
Shared counter: child processes increment a counter four ways.

usage: cargo run --release --example shared_counter -- [options]

options:
  --processes N    child processes per part       (default 4, at most 64)
  --increments N   increments by each child       (default 1000, at most 1000000)
  --help           print this help";

/// How long the parent waits for its children to start before giving up.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// A global, one per process: each child increments its own copy.
static PLAIN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The four ways of counting, one per part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Way {
    /// The process's own global.
    PlainGlobal,
    /// `load` then `store` on the shared value: two lockings.
    ValueWithoutLock,
    /// Read and write under one `lock()` guard.
    ValueWithLock,
    /// `fetch_add(1)`: one locked step.
    ValueFetchAdd,
}

impl Way {
    const ALL: [Way; 4] = [
        Way::PlainGlobal,
        Way::ValueWithoutLock,
        Way::ValueWithLock,
        Way::ValueFetchAdd,
    ];

    /// The row label in the summary table.
    fn label(self) -> &'static str {
        match self {
            Way::PlainGlobal => "plain global, in main",
            Way::ValueWithoutLock => "Value, load + store",
            Way::ValueWithLock => "Value, lock()",
            Way::ValueFetchAdd => "Value, fetch_add",
        }
    }
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What a child gets: the way to count, how often, the shared counter and
/// the start gate (every handle serializes to a handle into the process
/// tree's shared memory).
#[derive(Serialize, Deserialize)]
struct Order {
    way: Way,
    increments: u64,
    counter: Value<u64>,
    ready: Semaphore,
    go: Event,
}

/// One child: says it is ready, waits for the go, counts, and returns what
/// the counter it incremented said at the end *in this process*.
fn child(order: Order) -> u64 {
    order
        .ready
        .release(1)
        .expect("the ready semaphore is unbounded");
    order.go.wait();
    let counter = &order.counter;
    for _ in 0..order.increments {
        match order.way {
            Way::PlainGlobal => {
                PLAIN_COUNTER.fetch_add(1, Ordering::Relaxed);
            }
            Way::ValueWithoutLock => {
                let seen = counter.load(); // one locking ...
                thread::yield_now(); // ... a gap, where others load the same count ...
                counter.store(seen + 1); // ... another locking: may overwrite theirs
            }
            Way::ValueWithLock => {
                // Nobody here dies holding the lock; if one had, the
                // count it left would be whole (one add), so go on.
                let mut count = counter
                    .lock()
                    .unwrap_or_else(|owner_died| owner_died.into_guard());
                let seen = *count;
                thread::yield_now(); // the same gap, but nobody else can get in
                *count = seen + 1;
            }
            Way::ValueFetchAdd => {
                counter.fetch_add(1);
            }
        }
    }
    match order.way {
        Way::PlainGlobal => PLAIN_COUNTER.load(Ordering::Relaxed),
        _ => counter.load(),
    }
}

/// One part's outcome.
struct Outcome {
    way: Way,
    /// What the parent reads at the end.
    counted: u64,
    /// What each child saw in its own counter at its end.
    in_children: Vec<u64>,
    elapsed: Duration,
}

/// Runs one part: `processes` children counting `increments` each, `way`.
fn run_part(way: Way, processes: usize, increments: u64) -> Result<Outcome, String> {
    let failed = |what: &str, error: &dyn fmt::Display| format!("{way}: {what}: {error}");
    let counter = Value::new(0u64).map_err(|e| failed("Value::new", &e))?;
    let ready = Semaphore::new(0).map_err(|e| failed("Semaphore::new", &e))?;
    let go = Event::new().map_err(|e| failed("Event::new", &e))?;
    let children = (0..processes)
        .map(|_| {
            let order = Order {
                way,
                increments,
                counter: counter.clone(),
                ready: ready.clone(),
                go: go.clone(),
            };
            verisync::process::spawn(child, order).map_err(|e| failed("spawn", &e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Every child is ready: let them all go at once.
    let all_ready = ready.try_acquire_many_for(processes, START_PATIENCE);
    let Some(all_ready) = all_ready else {
        for child in &children {
            child.kill();
        }
        return Err(format!(
            "{way}: the children did not start within {START_PATIENCE:?}"
        ));
    };
    all_ready.forget();
    let started = Instant::now();
    go.set();
    let in_children = children
        .into_iter()
        .map(|child| child.join().map_err(|e| failed("join", &e)))
        .collect::<Result<Vec<_>, _>>()?;
    let elapsed = started.elapsed();
    let counted = match way {
        Way::PlainGlobal => PLAIN_COUNTER.load(Ordering::Relaxed),
        _ => counter.load(),
    };
    Ok(Outcome {
        way,
        counted,
        in_children,
        elapsed,
    })
}

fn explain(outcome: &Outcome, expected: u64, processes: usize, increments: u64) {
    let Outcome {
        way,
        counted,
        in_children,
        elapsed,
    } = outcome;
    let ms = elapsed.as_secs_f64() * 1e3;
    match way {
        Way::PlainGlobal => {
            println!(
                "Part 1: a plain global counter ({processes} children, {increments} increments each)"
            );
            println!("  the children saw, each in its own copy: {in_children:?}");
            println!(
                "  main: PLAIN_COUNTER = {counted} — every process has its own memory: the \
                 children's {expected} increments never reached the parent"
            );
        }
        Way::ValueWithoutLock => {
            let lost = expected.saturating_sub(*counted);
            println!("\nPart 2: a process::Value<u64>, load() then store(seen + 1), no lock held");
            println!(
                "  main: the Value says {counted}, but {expected} increments were made: \
                 {lost} lost ({:.1}%) in {ms:.1} ms",
                lost as f64 * 100.0 / expected as f64
            );
            println!(
                "  each load and each store is atomic by itself, but between them another\n  \
                 process loads the same count, and the later store overwrites the earlier\n  \
                 one (a lost update). A yield_now() sits between load and store here to\n  \
                 widen the gap, as any real work there would, so the loss shows every run."
            );
        }
        Way::ValueWithLock => {
            println!("\nPart 3: the same Value, read and written under its lock()");
            println!(
                "  main: the Value says {counted} of {expected} in {ms:.1} ms — exact: the guard \
                 is held across\n  read, yield_now() and write, so nobody gets in between \
                 (Python: with counter.get_lock():)"
            );
        }
        Way::ValueFetchAdd => {
            println!("\nPart 4: fetch_add(1), the read-modify-write in one locked step");
            println!("  main: the Value says {counted} of {expected} in {ms:.1} ms — exact");
        }
    }
}

fn print_summary(outcomes: &[Outcome], expected: u64) {
    let mut rows = vec![("expected".to_string(), expected.to_string())];
    rows.extend(
        outcomes
            .iter()
            .map(|outcome| (outcome.way.label().to_string(), outcome.counted.to_string())),
    );
    let width = rows
        .iter()
        .map(|(_, value)| value.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let rule = format!("+{}+{}+", "-".repeat(24), "-".repeat(width + 2));
    println!("\nSummary (what main reads at the end)");
    println!("{rule}");
    println!("| {:<22} | {:>width$} |", "counter", "counted");
    println!("{rule}");
    for (label, value) in rows {
        println!("| {label:<22} | {value:>width$} |");
    }
    println!("{rule}");
}

struct Config {
    processes: usize,
    increments: u64,
}

/// `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        processes: 4,
        increments: 1_000,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--processes" => {
                let text = value()?;
                config.processes = text
                    .parse()
                    .ok()
                    .filter(|n| (2..=64).contains(n))
                    .ok_or_else(|| format!("--processes wants 2 to 64, not {text:?}"))?;
            }
            "--increments" => {
                let text = value()?;
                config.increments = text
                    .parse()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| format!("--increments wants 1 to 1000000, not {text:?}"))?;
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Some(config))
}

fn main() -> ExitCode {
    // Must come first: in a child process this runs the child's function
    // and exits; it never returns there.
    verisync::process::init();
    let config = match parse_args(env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("shared_counter: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Config {
        processes,
        increments,
    } = config;
    let expected = processes as u64 * increments;
    println!(
        "{processes} child processes each add 1 to a counter {increments} times: {expected} \
         increments in all, four ways.\n(main is process {})\n",
        std::process::id()
    );
    let mut outcomes = Vec::new();
    for way in Way::ALL {
        match run_part(way, processes, increments) {
            Ok(outcome) => {
                explain(&outcome, expected, processes, increments);
                outcomes.push(outcome);
            }
            Err(message) => {
                eprintln!("shared_counter: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    print_summary(&outcomes, expected);
    let counted = |way| {
        outcomes
            .iter()
            .find(|outcome| outcome.way == way)
            .map(|outcome| outcome.counted)
    };
    let exact = counted(Way::ValueWithLock) == Some(expected)
        && counted(Way::ValueFetchAdd) == Some(expected);
    if exact {
        println!(
            "\nProcesses share nothing unless it is made shared. A shared counter still loses\n\
             updates when its read and its write are two steps; hold its lock across both\n\
             (or use fetch_add) and every increment counts."
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("BUG: even under the lock, the count was not exact");
        ExitCode::FAILURE
    }
}
