//! # Processes: start, join, terminate, separate memory, and a worker killed mid-task
//!
//! The lesson: Python's `multiprocessing.Process(target=f, args=(x,))`
//! runs `f(x)` in a new process, with `start()`, `join()`, `pid`,
//! `is_alive()` and `terminate()`. A process has its own memory: what a
//! child changes, the parent never sees (threads, by contrast, share
//! everything). And a process can die — crash, or be killed — without
//! taking its parent along.
//!
//! ```text
//! cargo run --release --example processes
//! ```
//!
//! Part 1 starts three children with [`verisync::process::spawn`] (start
//! and `Process(...)` in one call), shows their pids and `is_alive()`, and
//! joins them for their results; then terminates a child that would run
//! for a minute. Part 2 is memory isolation: a child adds 1,000 to a global
//! counter, a thread adds 1,000 to the same global, and only the thread's
//! additions show up in the parent. Part 3 kills a [`ProcessPool`] worker
//! with SIGKILL in the middle of a task: that one task reports
//! `TaskError::WorkerDied`, the pool starts a replacement, and every other
//! task completes. (Python's `ProcessPoolExecutor` would instead fail every
//! pending task with `BrokenProcessPool`, and `multiprocessing.Pool` would
//! wait forever for the lost one.)
//!
//! The children are this same program started again in worker mode, which
//! is why `verisync::process::init()` is the first line of `main`.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use verisync::{ProcessPool, TaskError};

/// When the program started, for the time stamps.
static START: OnceLock<Instant> = OnceLock::new();

/// Prints a line stamped with the milliseconds since the start.
fn say(message: &str) {
    let start = START.get_or_init(Instant::now);
    println!("[{:>4} ms] {message}", start.elapsed().as_millis());
}

/// A child's task: think for `ms` milliseconds, then greet from its process.
fn greet((name, ms): (String, u64)) -> String {
    thread::sleep(Duration::from_millis(ms));
    format!("hello from {name} in process {}", std::process::id())
}

/// A child that would run for `ms` milliseconds.
fn nap(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

/// A global, one per process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Adds 1 to the global `times` times and returns what it then holds.
fn add_to_counter(times: u64) -> u64 {
    for _ in 0..times {
        COUNTER.fetch_add(1, Ordering::SeqCst);
    }
    COUNTER.load(Ordering::SeqCst)
}

/// A pool task: 100 ms of work, then `x` squared.
fn square_slowly(x: u64) -> u64 {
    thread::sleep(Duration::from_millis(100));
    x * x
}

/// The task that gets its worker killed: it writes its pid to `marker` (so
/// main knows which worker to kill, and that the task is running), then
/// works far longer than main will wait.
fn stuck(marker: PathBuf) -> u64 {
    std::fs::write(&marker, std::process::id().to_string()).expect("write the marker file");
    thread::sleep(Duration::from_secs(60));
    0
}

fn main() -> Result<(), TaskError> {
    // Must come first: in a child process this runs the child's function
    // and exits; it never returns there.
    verisync::process::init();
    START.get_or_init(Instant::now);
    println!("main is process {}.\n", std::process::id());
    start_and_join()?;
    memory_is_not_shared()?;
    worker_killed_mid_task()?;
    println!(
        "\nThree children started and joined, one terminated; a child's global stayed its\n\
         own; and a worker killed mid-task cost exactly one task."
    );
    Ok(())
}

fn start_and_join() -> Result<(), TaskError> {
    println!("Part 1: start, pid, is_alive, join, terminate");
    // Python: p = Process(target=greet, args=(...)); p.start()
    let children = ["Ada", "Brian", "Grace"]
        .into_iter()
        .zip([300, 200, 100])
        .map(|(name, ms)| verisync::process::spawn(greet, (name.to_string(), ms)))
        .collect::<Result<Vec<_>, _>>()?;
    for child in &children {
        say(&format!(
            "main: started process {}, is_alive() = {}",
            child.pid(),
            child.is_alive()
        ));
    }
    for child in children {
        let pid = child.pid();
        // Python: p.join() — verisync's join also returns the result.
        let greeting = child.join()?;
        say(&format!("main: joined process {pid}: {greeting:?}"));
    }

    let sleeper = verisync::process::spawn(nap, 60_000)?;
    say(&format!(
        "main: started process {} to sleep for a minute, is_alive() = {}",
        sleeper.pid(),
        sleeper.is_alive()
    ));
    // Python: p.terminate() sends SIGTERM.
    sleeper.terminate();
    let gave_up = Instant::now() + Duration::from_secs(10);
    while sleeper.is_alive() && Instant::now() < gave_up {
        thread::sleep(Duration::from_millis(5));
    }
    let status = sleeper.exit_status().expect("the child ended");
    say(&format!(
        "main: terminate() -> is_alive() = {}, exit status: {status}",
        sleeper.is_alive()
    ));
    assert_eq!(status.signal(), Some(15), "SIGTERM ended it");
    match sleeper.join() {
        Err(TaskError::WorkerDied { pid, signal, .. }) => say(&format!(
            "main: join() -> Err(WorkerDied): process {pid} was killed by signal {}",
            signal.unwrap_or_default()
        )),
        other => panic!("a terminated child joined with {other:?}"),
    }
    Ok(())
}

fn memory_is_not_shared() -> Result<(), TaskError> {
    println!("\nPart 2: every process has its own memory");
    COUNTER.store(5, Ordering::SeqCst);
    say("main: COUNTER = 5");
    let child = verisync::process::spawn(add_to_counter, 1_000)?;
    let in_child = child.join()?;
    say(&format!(
        "child: added 1000 to its COUNTER and saw {in_child} (its copy started at 0: the \
         child is this program run afresh, like Python's \"spawn\" start method)"
    ));
    say(&format!(
        "main: COUNTER = {} — the child's additions never reached the parent",
        COUNTER.load(Ordering::SeqCst)
    ));
    assert_eq!(in_child, 1_000);
    assert_eq!(COUNTER.load(Ordering::SeqCst), 5);

    let in_thread = thread::spawn(|| add_to_counter(1_000)).join().unwrap();
    say(&format!(
        "thread: added 1000 to COUNTER and saw {in_thread}; main: COUNTER = {} — threads \
         share memory, processes do not",
        COUNTER.load(Ordering::SeqCst)
    ));
    assert_eq!(COUNTER.load(Ordering::SeqCst), 1_005);
    Ok(())
}

fn worker_killed_mid_task() -> Result<(), TaskError> {
    println!("\nPart 3: a pool worker is killed in the middle of a task");
    let pool = ProcessPool::new(2)?;
    let first_pids = pool.worker_pids();
    say(&format!("main: ProcessPool(2) has workers {first_pids:?}"));

    let marker =
        std::env::temp_dir().join(format!("verisync-processes-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let doomed = pool.submit(stuck, marker.clone());
    let others: Vec<_> = (1..=6)
        .map(|x| (x, pool.submit(square_slowly, x)))
        .collect();
    say("main: submitted one task that runs for a minute, and 6 that take 100 ms each");

    // Wait until the stuck task says which worker runs it.
    let gave_up = Instant::now() + Duration::from_secs(10);
    let victim: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&marker)
            .ok()
            .and_then(|text| text.parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < gave_up, "the stuck task never started");
        thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&marker);
    assert!(
        first_pids.contains(&victim),
        "the task ran in a pool worker"
    );
    say(&format!(
        "main: the minute-long task runs in worker {victim}; kill -9 {victim}"
    ));
    let killed = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -9 {victim} failed");

    match doomed.join() {
        Err(error @ TaskError::WorkerDied { .. }) => {
            say(&format!("main: the killed task's handle says: {error}"));
        }
        other => panic!("the killed task ended with {other:?}"),
    }
    let mut finished = 0;
    for (x, handle) in others {
        let squared = handle.join()?;
        say(&format!("main: {x} squared is {squared}"));
        assert_eq!(squared, x * x);
        finished += 1;
    }
    // The pool replaces the dead worker on its own; give it a moment.
    let gave_up = Instant::now() + Duration::from_secs(10);
    let mut pids = pool.worker_pids();
    while (pids.len() < 2 || pids.contains(&victim)) && Instant::now() < gave_up {
        thread::sleep(Duration::from_millis(5));
        pids = pool.worker_pids();
    }
    say(&format!(
        "main: the other {finished} tasks all finished; the pool's workers are now {pids:?} \
         ({victim} was replaced)"
    ));
    assert!(pids.len() == 2 && !pids.contains(&victim));
    pool.shutdown();
    say("main: shutdown() — every worker exited and was reaped");
    Ok(())
}
