//! # Producers and consumers: a joinable work queue
//!
//! The lesson: Python's `queue.Queue` hands work from producers to
//! consumers. Consumers call `task_done()` for each item they finish, and
//! `join()` waits until every item put has been finished. In Python the
//! consumers are daemon threads looping forever on `get()`; the program just
//! exits under them once `join()` returns.
//!
//! ```text
//! cargo run --release --example producer_consumer                      # cooks and eaters are threads
//! cargo run --release --example producer_consumer -- --processes      # ... processes, process::JoinableQueue
//! cargo run --release --example producer_consumer -- --kill-an-eater   # processes; an eater is killed mid-dish
//! ```
//!
//! Here two cooks put dishes on a [`JoinableQueue`] (bounded: the pass holds
//! at most 3 dishes, so a cook waits when it is full) and two eaters take
//! them with [`get_task`](JoinableQueue::get_task), whose guard calls
//! `task_done` when the dish is eaten — even if the eater panics. The main
//! thread waits with `join()` until every dish is eaten, then calls
//! `shutdown()`: the eaters' `for dish in queue.iter()` loops end and they go
//! home. That is the Rust answer to the lesson's daemon consumers — nothing
//! is killed mid-dish, and every thread is joined.
//!
//! With `--processes`, every cook and every eater is a child process
//! ([`verisync::process::spawn`], Python's `multiprocessing.Process`), and
//! the pass is a [`verisync::process::JoinableQueue`] — Python's
//! `multiprocessing.JoinableQueue`: main creates it before starting them and
//! hands each a clone (it lives in memory the whole process tree shares).
//! The lesson is the same, with one Python trap gone. Python's queue is a
//! pipe fed by a background thread in the putting process, and a process
//! that put items cannot exit until that thread has pushed them all into
//! the pipe, whose buffer holds 64 KB: join such a producer before the
//! consumers have drained the pipe and both wait for ever (the Python docs'
//! "joining processes that use queues"). A `process::JoinableQueue` has no
//! pipe and no feeder thread: `put` copies the dish into shared memory
//! itself, so when it returns the dish is on the pass, and main can join
//! a cook process whenever it likes — here, first thing.
//!
//! With `--kill-an-eater` (processes too), eater 1 chokes on its first dish
//! and main kills it (SIGKILL) while it holds that task. Python's
//! `JoinableQueue.join()` would then wait for ever for a `task_done` that
//! can never come. Here `join()` returns `Err(TasksLost)` once every other
//! dish is eaten, naming the one task lost with the dead eater, and the
//! kitchen still closes normally. The children's own lines reach the
//! terminal on stderr: verisync keeps a child's stdout for talking to its
//! parent.

use std::collections::BTreeMap;
use std::env;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use verisync::process::Event;
use verisync::JoinableQueue;

const USAGE: &str = "\
Producers and consumers: cooks put dishes on a bounded pass, eaters take them.

usage: producer_consumer [--processes | --kill-an-eater]

  (none)           cooks and eaters are threads sharing a JoinableQueue
  --processes      cooks and eaters are processes sharing a process::JoinableQueue
  --kill-an-eater  as --processes; eater 1 is killed (SIGKILL) holding a dish,
                   and join() reports the task lost instead of hanging
  --help           this text";

const COOKS: usize = 2;
const DISHES_PER_COOK: usize = 6;
const EATERS: usize = 2;
/// How many dishes fit on the pass between kitchen and dining room.
const PASS: usize = 3;
/// How long main waits for a child to reach a step before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

const MENU: [&str; 6] = ["soup", "noodles", "dumplings", "curry", "salad", "pie"];

/// A pseudo-random delay in `min..min + spread` ms, derived from numbers
/// (no random crate needed for a bit of irregularity).
fn delay(seed: usize, min: u64, spread: u64) -> Duration {
    let mixed = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    Duration::from_millis(min + mixed % spread)
}

/// Prints a line stamped with the milliseconds since the start. (A
/// wall-clock time, unlike an `Instant`, means the same in every process.)
fn say(start: SystemTime, message: &str) {
    let elapsed = start.elapsed().unwrap_or_default();
    println!("[{:>4} ms] {message}", elapsed.as_millis());
}

/// Cook `id`'s `n`-th dish.
fn dish_name(id: usize, n: usize) -> String {
    format!("{} #{id}.{n}", MENU[(id + n) % MENU.len()])
}

/// A producer: cooks its dishes and puts each on the pass.
fn cook(id: usize, pass: &JoinableQueue<String>, start: SystemTime) {
    for n in 1..=DISHES_PER_COOK {
        thread::sleep(delay(id * 31 + n, 20, 50));
        let dish = dish_name(id, n);
        if pass.is_full() {
            say(
                start,
                &format!("cook {id}: the pass is full, waits with {dish}"),
            );
        }
        pass.put(dish.clone())
            .expect("the kitchen is open while cooks cook");
        say(
            start,
            &format!(
                "cook {id} puts {dish} on the pass (waiting: {})",
                pass.len()
            ),
        );
    }
    say(start, &format!("cook {id} is done cooking"));
}

/// A consumer: eats dishes until the queue is shut down and drained.
/// Returns how many it ate.
fn eater(id: usize, pass: &JoinableQueue<String>, eaten: &AtomicUsize, start: SystemTime) -> usize {
    let mut mine = 0;
    // `get_task` waits for a dish; it fails only once the queue is shut
    // down and empty, which ends the loop.
    while let Ok(dish) = pass.get_task() {
        say(start, &format!("eater {id} takes {}", *dish));
        thread::sleep(delay(id * 17 + mine, 40, 60)); // eating
        mine += 1;
        eaten.fetch_add(1, Ordering::Relaxed);
        say(start, &format!("eater {id} finished {}", *dish));
        // `dish` drops here: task_done.
    }
    say(start, &format!("eater {id} goes home: the kitchen is shut"));
    mine
}

/// The lesson with threads and a [`JoinableQueue`].
fn run_threads() {
    println!(
        "{COOKS} cooks make {DISHES_PER_COOK} dishes each; {EATERS} eaters eat them; \
         the pass holds {PASS}.\n"
    );
    let pass = JoinableQueue::bounded(PASS);
    let eaten = AtomicUsize::new(0);
    let start = SystemTime::now();

    let per_eater: Vec<usize> = thread::scope(|scope| {
        let (pass, eaten) = (&pass, &eaten);
        let eaters: Vec<_> = (1..=EATERS)
            .map(|id| scope.spawn(move || eater(id, pass, eaten, start)))
            .collect();
        let cooks: Vec<_> = (1..=COOKS)
            .map(|id| scope.spawn(move || cook(id, pass, start)))
            .collect();
        for cook in cooks {
            cook.join().unwrap();
        }

        // Python: `q.join()` — wait until every dish put has been eaten.
        say(
            start,
            "main: every dish is cooked; join() waits until all are eaten",
        );
        pass.join();
        say(
            start,
            &format!(
                "main: join() returned: {} unfinished, {} eaten",
                pass.unfinished_tasks(),
                eaten.load(Ordering::Relaxed)
            ),
        );

        // Python leaves its daemon consumers blocked in get() and exits.
        // Here the queue is shut down, so the eaters' loops end.
        say(start, "main: shutdown() — the eaters may go home");
        pass.shutdown();
        eaters.into_iter().map(|e| e.join().unwrap()).collect()
    });

    let cooked = COOKS * DISHES_PER_COOK;
    let eaten = eaten.into_inner();
    println!();
    for (id, count) in per_eater.iter().enumerate() {
        println!("eater {} ate {count} dishes", id + 1);
    }
    println!(
        "cooked {cooked}, eaten {eaten}, left on the pass {}, unfinished tasks {}",
        pass.len(),
        pass.unfinished_tasks()
    );
    assert_eq!(eaten, cooked, "every dish is eaten");
    assert_eq!(per_eater.iter().sum::<usize>(), cooked);
    assert_eq!(pass.unfinished_tasks(), 0);
    println!("Every dish cooked was eaten, and every thread went home.");
}

/// The pass shared by processes: Python's `multiprocessing.JoinableQueue`.
type SharedPass = verisync::process::JoinableQueue<String>;

/// What a cook process gets (a handle to the pass: clones name the same
/// queue in shared memory).
#[derive(Serialize, Deserialize)]
struct CookOrder {
    id: usize,
    pass: SharedPass,
    start: SystemTime,
}

/// A producer process: cooks its dishes, puts each on the pass, and
/// returns what it cooked. It may exit (and be joined) as soon as its last
/// `put` returns: the dishes are in shared memory, not in a pipe buffer
/// waiting for a feeder thread.
fn cook_process(order: CookOrder) -> Vec<String> {
    let CookOrder { id, pass, start } = order;
    let mut cooked = Vec::new();
    for n in 1..=DISHES_PER_COOK {
        thread::sleep(delay(id * 31 + n, 20, 50));
        let dish = dish_name(id, n);
        if pass.is_full() {
            say(
                start,
                &format!("cook {id}: the pass is full, waits with {dish}"),
            );
        }
        pass.put(dish.clone())
            .expect("the kitchen is open while cooks cook");
        say(
            start,
            &format!(
                "cook {id} puts {dish} on the pass (waiting: {})",
                pass.len()
            ),
        );
        cooked.push(dish);
    }
    say(start, &format!("cook {id} is done cooking"));
    cooked
}

/// What an eater process gets.
#[derive(Serialize, Deserialize)]
struct EaterOrder {
    id: usize,
    pass: SharedPass,
    start: SystemTime,
    /// Set when this eater chokes on its first dish (`--kill-an-eater`).
    chokes: Option<Event>,
}

/// A consumer process: eats dishes until the pass is shut down and
/// drained; returns the dishes it ate.
fn eater_process(order: EaterOrder) -> Vec<String> {
    let EaterOrder {
        id,
        pass,
        start,
        chokes,
    } = order;
    let mut eaten = Vec::new();
    while let Ok(dish) = pass.get_task() {
        say(start, &format!("eater {id} takes {}", *dish));
        if let Some(chokes) = &chokes {
            say(
                start,
                &format!("eater {id} chokes on {}: it hangs, holding the task", *dish),
            );
            chokes.set();
            // Main kills this process long before the nap ends.
            thread::sleep(PATIENCE);
        }
        thread::sleep(delay(id * 17 + eaten.len(), 40, 60)); // eating
        say(start, &format!("eater {id} finished {}", *dish));
        eaten.push(dish.clone());
        // `dish` drops here: task_done.
    }
    say(start, &format!("eater {id} goes home: the kitchen is shut"));
    eaten
}

/// The lesson with processes and a [`verisync::process::JoinableQueue`];
/// `kill` kills eater 1 while it holds a dish. `Ok(false)` if a dish went
/// missing or was eaten twice (a bug).
fn run_processes(kill: bool) -> Result<bool, String> {
    println!(
        "{COOKS} cook processes make {DISHES_PER_COOK} dishes each; {EATERS} eater processes \
         eat them; the pass (a process::JoinableQueue) holds {PASS}."
    );
    if kill {
        println!("Eater 1 will choke on its first dish, and main will kill it (SIGKILL).");
    }
    println!();
    let pass = SharedPass::bounded(PASS).map_err(|error| error.to_string())?;
    let chokes = if kill {
        Some(Event::new().map_err(|error| error.to_string())?)
    } else {
        None
    };
    let start = SystemTime::now();
    let result = serve(&pass, chokes.as_ref(), start);
    // Whatever happened, let every eater still waiting go home.
    pass.shutdown();
    result
}

/// Starts the cooks and eaters, waits for the dishes, closes the kitchen
/// and checks that every dish was eaten once (all but the killed eater's).
fn serve(pass: &SharedPass, chokes: Option<&Event>, start: SystemTime) -> Result<bool, String> {
    let mut eaters = Vec::new();
    for id in 1..=EATERS {
        let order = EaterOrder {
            id,
            pass: pass.clone(),
            start,
            chokes: chokes.filter(|_| id == 1).cloned(),
        };
        let eater =
            verisync::process::spawn(eater_process, order).map_err(|error| error.to_string())?;
        say(
            start,
            &format!("main: eater {id} is process {}", eater.pid()),
        );
        eaters.push((id, eater));
    }
    let mut cooks = Vec::new();
    for id in 1..=COOKS {
        let order = CookOrder {
            id,
            pass: pass.clone(),
            start,
        };
        let cook =
            verisync::process::spawn(cook_process, order).map_err(|error| error.to_string())?;
        say(start, &format!("main: cook {id} is process {}", cook.pid()));
        cooks.push(cook);
    }

    let mut killed = None;
    if let Some(chokes) = chokes {
        if !chokes.wait_timeout(PATIENCE) {
            return Err("eater 1 never took a dish".to_string());
        }
        let (id, victim) = eaters.remove(0);
        say(
            start,
            &format!(
                "main: eater {id} hangs holding a dish; kill it (SIGKILL to process {})",
                victim.pid()
            ),
        );
        victim.kill();
        match victim.join() {
            Err(verisync::TaskError::WorkerDied { pid, signal, .. }) => {
                let signal = signal.map_or("?".to_string(), |signal| signal.to_string());
                say(
                    start,
                    &format!("main: eater {id} died: process {pid}, killed by signal {signal}"),
                );
            }
            Err(error) => return Err(format!("eater {id} was not killed: {error}")),
            Ok(_) => return Err(format!("eater {id} was not killed: it finished")),
        }
        killed = Some(id);
    }

    // Joining the producers before the queue is drained: the trap with
    // Python's pipe-backed queue, harmless here.
    let mut cooked = Vec::new();
    for cook in cooks {
        cooked.extend(cook.join().map_err(|error| error.to_string())?);
    }
    say(
        start,
        "main: joined both cook processes (their dishes are in shared memory: no pipe to drain)",
    );
    say(
        start,
        "main: every dish is cooked; join() waits until all are eaten",
    );
    let joined = pass.join();
    match joined {
        Ok(()) => say(
            start,
            &format!(
                "main: join() returned Ok: {} unfinished, {} lost",
                pass.unfinished_tasks(),
                pass.lost_tasks()
            ),
        ),
        Err(lost) => say(
            start,
            &format!(
                "main: join() returned Err(TasksLost {{ lost: {} }}): {lost}",
                lost.lost
            ),
        ),
    }
    say(start, "main: shutdown() — the eaters may go home");
    pass.shutdown();
    let mut per_eater = Vec::new();
    for (id, eater) in eaters {
        let eaten = eater.join().map_err(|error| error.to_string())?;
        per_eater.push((id, eaten));
    }

    println!();
    if let Some(id) = killed {
        println!("eater {id} was killed holding a dish");
    }
    for (id, eaten) in &per_eater {
        println!("eater {id} ate {} dishes", eaten.len());
    }
    // Every dish eaten was cooked, and none twice: count each name.
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for dish in &cooked {
        *count.entry(dish).or_default() += 1;
    }
    let eaten: Vec<&String> = per_eater.iter().flat_map(|(_, eaten)| eaten).collect();
    for dish in &eaten {
        *count.entry(dish).or_default() -= 1;
    }
    let uneaten: Vec<&str> = count
        .iter()
        .filter(|(_, left)| **left == 1)
        .map(|(dish, _)| *dish)
        .collect();
    let each_once = count.values().all(|left| *left == 0 || *left == 1);
    println!(
        "cooked {}, eaten {}{}; left on the pass {}, unfinished tasks {}, lost tasks {}",
        cooked.len(),
        eaten.len(),
        if each_once {
            ", each exactly once"
        } else {
            ", SOME TWICE OR NEVER COOKED"
        },
        pass.len(),
        pass.unfinished_tasks(),
        pass.lost_tasks()
    );
    let expected_lost = usize::from(killed.is_some());
    let correct = each_once
        && cooked.len() == COOKS * DISHES_PER_COOK
        && uneaten.len() == expected_lost
        && pass.lost_tasks() == expected_lost
        && joined.map_err(|lost| lost.lost) == if killed.is_some() { Err(1) } else { Ok(()) };
    if !correct {
        println!("BUG: the dishes do not add up (uneaten: {uneaten:?}, join: {joined:?})");
        return Ok(false);
    }
    match killed {
        None => println!("Every dish cooked was eaten exactly once, and every process went home."),
        Some(id) => {
            println!("the dish lost with eater {id}: {}", uneaten[0]);
            println!(
                "Eater {id} was killed holding a dish, so its task_done never came. Python's\n\
                 JoinableQueue.join() would wait for it for ever; the process::JoinableQueue\n\
                 noticed the dead holder, and join() returned Err(TasksLost) once every other\n\
                 dish was eaten. Every other dish was eaten exactly once, and every other\n\
                 process went home."
            );
        }
    }
    Ok(true)
}

/// How to run: threads, processes, or processes with a killed eater.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Threads,
    Processes,
    ProcessesKillingAnEater,
}

/// `Ok(None)` means `--help`.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Mode>, String> {
    let mut mode = Mode::Threads;
    for arg in args {
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--processes" if mode != Mode::ProcessesKillingAnEater => mode = Mode::Processes,
            "--processes" => {}
            "--kill-an-eater" => mode = Mode::ProcessesKillingAnEater,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Some(mode))
}

fn main() -> ExitCode {
    // Must come first: in a cook or eater process (--processes) this runs
    // its function and exits; it never returns there.
    verisync::process::init();
    let mode = match parse_args(env::args().skip(1)) {
        Ok(Some(mode)) => mode,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("producer_consumer: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let kill = match mode {
        Mode::Threads => {
            run_threads();
            return ExitCode::SUCCESS;
        }
        Mode::Processes => false,
        Mode::ProcessesKillingAnEater => true,
    };
    match run_processes(kill) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("producer_consumer: {error}");
            ExitCode::FAILURE
        }
    }
}
