//! Runs every example and checks what it prints, so the examples never rot.
//!
//! The examples are built once, with the same profile as this test (one
//! `cargo build --example ...` with `--message-format=json`, which also
//! tells us where each binary is), then each test runs a binary directly.
//! Every run has a generous time limit: an example that hangs is killed and
//! fails its test instead of hanging the suite.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const EXAMPLES: [&str; 10] = [
    "ticket_sale",
    "shared_counter",
    "deadlock",
    "semaphore_parking",
    "event_traffic_light",
    "condition_producer_consumer",
    "producer_consumer",
    "thread_pool",
    "process_pool",
    "processes",
];

/// Examples that need the `deadlock-detection` feature (`required-features`
/// in Cargo.toml): built and run only when this test runs with it. When it
/// does, every example is built with the feature, as the user would run it.
const FEATURE_EXAMPLES: [&str; 1] = ["hang_doctor"];

/// The examples built for this run.
fn built_examples() -> Vec<&'static str> {
    let mut names = EXAMPLES.to_vec();
    if cfg!(feature = "deadlock-detection") {
        names.extend(FEATURE_EXAMPLES);
    }
    names
}

/// Far above any example's run time (about a second each); only a hang hits it.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Builds the examples once and returns the path of each binary.
fn binaries() -> &'static HashMap<String, PathBuf> {
    static BINARIES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "--message-format=json-render-diagnostics",
        ]);
        for name in built_examples() {
            cargo.args(["--example", name]);
        }
        if cfg!(feature = "deadlock-detection") {
            cargo.args(["--features", "deadlock-detection"]);
        }
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let output = cargo
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(
            output.status.success(),
            "cargo build of the examples failed"
        );
        let mut binaries = HashMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let is_example = message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "example"));
            if let (true, Some(name), Some(path)) = (
                message["reason"] == "compiler-artifact" && is_example,
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            ) {
                binaries.insert(name.to_string(), PathBuf::from(path));
            }
        }
        for name in built_examples() {
            assert!(
                binaries.contains_key(name),
                "cargo built no binary for {name}"
            );
        }
        binaries
    })
}

/// One finished run of an example.
struct Run {
    name: String,
    pid: u32,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Fails with the whole output, so a failure shows what the example said.
    fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}\n--- {} exited with {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.name, self.status, self.stdout, self.stderr
        )
    }

    fn assert_success(&self) -> &Self {
        if !self.status.success() {
            self.fail("the example failed");
        }
        self
    }

    fn assert_prints(&self, text: &str) -> &Self {
        if !self.stdout.contains(text) {
            self.fail(&format!("expected the output to contain {text:?}"));
        }
        self
    }

    fn lines_containing(&self, text: &str) -> usize {
        self.stdout
            .lines()
            .filter(|line| line.contains(text))
            .count()
    }

    /// The value in the summary-table row `| label | value |`.
    fn table_value(&self, label: &str) -> String {
        let row = self.stdout.lines().find_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.len() == 4 && cells[1] == label).then(|| cells[2].to_string())
        });
        row.unwrap_or_else(|| self.fail(&format!("no table row {label:?}")))
    }

    fn table_number(&self, label: &str) -> u64 {
        let value = self.table_value(label);
        value
            .parse()
            .unwrap_or_else(|_| self.fail(&format!("row {label:?} is not a number: {value:?}")))
    }
}

/// Reads a pipe to the end on its own thread, so a chatty child never
/// blocks on a full pipe while we wait for it.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    let mut pipe = pipe.expect("piped");
    thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).expect("read the output");
        text
    })
}

/// Waits for `child`, killing it if it outlives [`TIME_LIMIT`]. (std has no
/// timed wait on a child, so this checks it every few milliseconds; the
/// limit only guards against a hang and plays no part in the result.)
fn wait_with_limit(child: &mut Child, name: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            return status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not finish within {TIME_LIMIT:?}: killed");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn run(name: &str, args: &[&str]) -> Run {
    let binary = &binaries()[name];
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_limit(&mut child, name);
    Run {
        name: format!("{name} {}", args.join(" ")),
        pid: child.id(),
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The data file the example names in its "Data file: PATH ..." line.
fn data_file(run: &Run) -> PathBuf {
    let line = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Data file: "))
        .unwrap_or_else(|| run.fail("no \"Data file:\" line"));
    PathBuf::from(line.trim_end_matches(" (removed at the end)"))
}

#[test]
fn ticket_sale_with_the_mutex_sells_exactly_the_tickets_there_are() {
    let run = run(
        "ticket_sale",
        &["--buyers", "8", "--tickets", "3", "--delay-ms", "5"],
    );
    run.assert_success()
        .assert_prints("threads, one Mutex around query + buy")
        .assert_prints("3 sold, 5 went home empty-handed, and the file agrees");
    assert_eq!(run.table_number("tickets at start"), 3);
    assert_eq!(run.table_number("buyers"), 8);
    assert_eq!(run.table_number("tickets sold"), 3);
    assert_eq!(run.table_number("tickets left in file"), 0);
    assert_eq!(run.table_value("oversold"), "no");
    assert_eq!(run.lines_containing("buys one"), 3);
    assert_eq!(run.lines_containing("finds it sold out"), 5);

    // The default data file is a temporary file named after the process,
    // removed at the end.
    let file = data_file(&run);
    assert!(file.starts_with(std::env::temp_dir()), "{}", file.display());
    assert!(
        file.to_string_lossy().contains(&run.pid.to_string()),
        "{}",
        file.display()
    );
    assert!(!file.exists(), "{} was not removed", file.display());
}

#[test]
fn ticket_sale_without_a_lock_oversells_and_explains_why() {
    // The race needs a second buyer to query before the first one writes,
    // i.e. within the network delay: 300 ms leaves every buyer ample time
    // to query even on a loaded machine. (This is the lesson's race itself,
    // not the test's synchronisation.)
    let run = run(
        "ticket_sale",
        &[
            "--no-lock",
            "--buyers",
            "6",
            "--tickets",
            "2",
            "--delay-ms",
            "300",
        ],
    );
    run.assert_success()
        .assert_prints("threads, no lock")
        .assert_prints("OVERSOLD")
        .assert_prints("read the same count before any of them wrote its purchase back")
        .assert_prints("Run again without --no-lock");
    let sold = run.table_number("tickets sold");
    let left = run.table_number("tickets left in file");
    assert!(sold > 2, "sold {sold}");
    assert_eq!(run.table_value("oversold"), "yes");
    // Lost updates: the file does not agree with the sales either.
    assert_ne!(sold + left, 2, "sold {sold}, left {left}");
}

#[test]
fn ticket_sale_keeps_a_data_file_it_is_given() {
    let path = std::env::temp_dir().join(format!(
        "verisync-examples-test-{}-tickets.json",
        std::process::id()
    ));
    let run = run(
        "ticket_sale",
        &[
            "--tickets=4",
            "--buyers=2",
            "--delay-ms=0",
            "--data-file",
            path.to_str().unwrap(),
        ],
    );
    run.assert_success();
    assert_eq!(data_file(&run), path);
    let contents = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    let stock: serde_json::Value =
        serde_json::from_str(&contents.expect("the data file is kept")).unwrap();
    assert_eq!(stock["tickets"], 2);
    assert_eq!(run.table_number("tickets left in file"), 2);
}

#[test]
fn ticket_sale_help_and_bad_arguments() {
    let help = run("ticket_sale", &["--help"]);
    help.assert_success();
    for flag in [
        "--buyers",
        "--tickets",
        "--delay-ms",
        "--data-file",
        "--no-lock",
        "--processes",
    ] {
        help.assert_prints(flag);
    }
    assert!(
        !help.stdout.contains("Summary"),
        "--help must not run the sale"
    );

    for bad in [
        &["--buyers", "many"][..],
        &["--buyers"],
        &["--buyers", "0"],
        &["--frobnicate"],
        &["--no-lock=yes"],
        &["--processes=yes"],
    ] {
        let run = run("ticket_sale", bad);
        if run.status.code() != Some(2) || !run.stderr.contains("usage:") {
            run.fail("a bad argument must exit with status 2 and print the usage");
        }
    }
}

/// Lines of `text` containing `needle`.
fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

#[test]
fn ticket_sale_with_processes_and_the_process_lock_tells_the_next_buyer_the_owner_died() {
    let run = run(
        "ticket_sale",
        &[
            "--processes",
            "--buyers",
            "6",
            "--tickets",
            "3",
            "--delay-ms",
            "5",
        ],
    );
    run.assert_success()
        .assert_prints("processes, one process::Lock around query + buy")
        .assert_prints("main: buyer  1 holds the lock, and its network call hangs")
        .assert_prints("main: buyers 2..6 wait for the lock; the file still says 3 left")
        .assert_prints("main: kill buyer 1 (SIGKILL to process ")
        .assert_prints(", killed by signal 9")
        .assert_prints("it never released the lock")
        .assert_prints("3 sold, 2 went home empty-handed")
        .assert_prints("Buyer 1 was killed while holding the lock")
        .assert_prints("got the\nlock and was told (OwnerDied)");
    assert_eq!(run.table_number("buyers"), 6);
    assert_eq!(run.table_number("killed holding lock"), 1);
    assert_eq!(run.table_number("told the owner died"), 1);
    assert_eq!(run.table_number("tickets sold"), 3);
    assert_eq!(run.table_number("tickets left in file"), 0);
    assert_eq!(run.table_value("oversold"), "no");
    // Each buyer process starts once; the buyers' own lines come on stderr
    // (a child's stdout is its pipe to main).
    assert_eq!(run.lines_containing(" is process "), 6);
    let buyers = &run.stderr;
    // Buyer 1 took the lock and died with it; exactly one of the others
    // was then given it and told, checked the file and acknowledged (so
    // nobody after it is told); the other four took it normally.
    assert_eq!(count_lines(buyers, "buyer  1 (process "), 1, "{buyers}");
    assert_eq!(count_lines(buyers, ") takes the lock"), 6, "{buyers}");
    let told: Vec<&str> = buyers
        .lines()
        .filter(|line| line.contains("takes the lock and is told the owner died"))
        .collect();
    assert_eq!(told.len(), 1, "{buyers}");
    assert!(
        told[0].contains("the process that held this lock died while holding it"),
        "{buyers}"
    );
    assert!(!told[0].contains("buyer  1 "), "{buyers}");
    assert_eq!(
        count_lines(buyers, "checks the data file: intact, 3 left"),
        1,
        "{buyers}"
    );
    assert_eq!(
        count_lines(buyers, "acknowledges and goes on"),
        1,
        "{buyers}"
    );
    // The buyer told is the first after buyer 1 to hold the lock.
    let holders: Vec<&str> = buyers
        .lines()
        .filter(|line| line.contains(") takes the lock"))
        .collect();
    assert!(holders[0].contains("buyer  1 "), "{buyers}");
    assert!(holders[1].contains("is told the owner died"), "{buyers}");
    assert_eq!(count_lines(buyers, "buys one"), 3, "{buyers}");
    assert_eq!(count_lines(buyers, "finds it sold out"), 2, "{buyers}");
    assert_eq!(count_lines(buyers, "buyer  1 buys"), 0, "{buyers}");
    // Under the lock, each sale saw the count the previous one left.
    for (left, line) in (0..3)
        .rev()
        .zip(buyers.lines().filter(|l| l.contains("buys one")))
    {
        assert!(line.ends_with(&format!("writes {left} back")), "{buyers}");
    }
    let file = data_file(&run);
    assert!(!file.exists(), "{} was not removed", file.display());
}

#[test]
fn ticket_sale_the_buyer_told_the_owner_died_removes_a_half_written_scratch_file() {
    // A scratch file left as a holder killed between its write and its
    // rename would leave it: the buyer told the owner died removes it.
    let path = std::env::temp_dir().join(format!(
        "verisync-examples-test-{}-repair.json",
        std::process::id()
    ));
    let mut scratch = path.clone().into_os_string();
    scratch.push(".99.tmp");
    let scratch = PathBuf::from(scratch);
    std::fs::write(&scratch, "{\"tick").unwrap();
    let run = run(
        "ticket_sale",
        &[
            "--processes",
            "--buyers=3",
            "--tickets=1",
            "--delay-ms=0",
            "--data-file",
            path.to_str().unwrap(),
        ],
    );
    let scratch_left = scratch.exists();
    let _ = std::fs::remove_file(&scratch);
    let _ = std::fs::remove_file(&path);
    run.assert_success();
    assert_eq!(
        count_lines(
            &run.stderr,
            "checks the data file: intact, 1 left (1 half-written scratch file(s) removed)"
        ),
        1,
        "{}",
        run.stderr
    );
    assert!(!scratch_left, "the scratch file was not removed");
    assert_eq!(run.table_number("tickets sold"), 1);
    assert_eq!(run.table_number("tickets left in file"), 0);
}

#[test]
fn ticket_sale_with_processes_and_no_lock_oversells() {
    // As with threads: 300 ms of network delay lets every buyer process
    // query before the first one buys.
    let run = run(
        "ticket_sale",
        &[
            "--processes",
            "--no-lock",
            "--buyers",
            "5",
            "--tickets",
            "2",
            "--delay-ms",
            "300",
        ],
    );
    run.assert_success()
        .assert_prints("processes, no lock")
        .assert_prints("OVERSOLD")
        .assert_prints("Run again without --no-lock");
    assert!(
        !run.stdout.contains("SIGKILL"),
        "nobody is killed without a lock"
    );
    assert!(run.table_number("tickets sold") > 2);
    assert_eq!(run.table_value("oversold"), "yes");
    assert_eq!(
        count_lines(&run.stderr, "queries: 2 left"),
        5,
        "{}",
        run.stderr
    );
}

#[test]
fn shared_counter_loses_updates_without_the_lock_and_none_with_it() {
    let run = run(
        "shared_counter",
        &["--processes", "4", "--increments", "500"],
    );
    run.assert_success()
        .assert_prints("4 child processes each add 1 to a counter 500 times: 2000 increments")
        .assert_prints("the children saw, each in its own copy: [500, 500, 500, 500]")
        .assert_prints("main: PLAIN_COUNTER = 0")
        .assert_prints("load() then store(seen + 1), no lock held")
        .assert_prints("A yield_now() sits between load and store")
        .assert_prints("main: the Value says 2000 of 2000 in ")
        .assert_prints("every increment counts");
    assert_eq!(run.table_number("expected"), 2000);
    // (a) every process has its own memory: main's global is untouched.
    assert_eq!(run.table_number("plain global, in main"), 0);
    // (b) lost updates: never more than were made, and some lost. (With a
    // yield between load and store, four children starting together lose
    // most of theirs; none lost would mean the parts did not race.)
    let unlocked = run.table_number("Value, load + store");
    assert!(
        (1..2000).contains(&unlocked),
        "load + store counted {unlocked}"
    );
    run.assert_prints(&format!(
        "main: the Value says {unlocked}, but 2000 increments were made: {} lost",
        2000 - unlocked
    ));
    // (c), (d): exact.
    assert_eq!(run.table_number("Value, lock()"), 2000);
    assert_eq!(run.table_number("Value, fetch_add"), 2000);
}

#[test]
fn shared_counter_help_and_bad_arguments() {
    let help = run("shared_counter", &["--help"]);
    help.assert_success()
        .assert_prints("--processes")
        .assert_prints("--increments");
    assert!(!help.stdout.contains("Summary"), "--help must not count");
    for bad in [
        &["--processes", "1"][..],
        &["--processes"],
        &["--increments", "0"],
        &["--increments", "lots"],
        &["--frobnicate"],
    ] {
        let run = run("shared_counter", bad);
        if run.status.code() != Some(2) || !run.stderr.contains("usage:") {
            run.fail("a bad argument must exit with status 2 and print the usage");
        }
    }
}

#[test]
fn deadlock_is_detected_then_both_fixes_finish() {
    let run = run("deadlock", &[]);
    run.assert_success()
        .assert_prints("thread-1: gave up on B, still holding A")
        .assert_prints("thread-2: gave up on A, still holding B")
        .assert_prints(
            "deadlock detected: thread-1 holds A and waits for B; \
             thread-2 holds B and waits for A",
        )
        .assert_prints("Fix 1: one shared reentrant lock (mutexA = mutexB = RLock())")
        .assert_prints("fix 1 done: both threads finished")
        .assert_prints("Fix 2: one global lock order")
        .assert_prints("fix 2 done: both threads finished")
        .assert_prints("both fixes ran to completion");
    // Both threads of each fix did their work holding both locks.
    assert_eq!(run.lines_containing("(held twice)"), 2);
    assert_eq!(run.lines_containing("took B; works, then releases both"), 2);
    if cfg!(feature = "deadlock-detection") {
        check_deadlock_diagnostics_parts(&run);
    } else {
        run.assert_prints("cargo run --release --example deadlock --features deadlock-detection");
    }
}

/// The parts of the deadlock example that use `verisync::deadlock`: the
/// risk reported by `lock_order_violations()` in a run that did not
/// deadlock, and a real deadlock (plain `lock()`) reported by the watchdog
/// with lock names and source lines, after which the example ends itself.
fn check_deadlock_diagnostics_parts(run: &Run) {
    let site = "(at examples/deadlock.rs:";
    let risk = run
        .stdout
        .lines()
        .find(|line| line.starts_with("lock order violation: "))
        .unwrap_or_else(|| run.fail("no lock order violation reported"));
    for expected in [
        "thread-1 took savings ",
        "and then checking ",
        "thread-2 took checking ",
        "and then savings ",
        site,
    ] {
        if !risk.contains(expected) {
            run.fail(&format!("the violation does not say {expected:?}"));
        }
    }
    run.assert_prints("thread-1: moved 10 from savings to checking")
        .assert_prints("thread-2: moved 10 from checking to savings");
    let report = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("watchdog: deadlock: "))
        .unwrap_or_else(|| run.fail("the watchdog reported no deadlock"));
    for expected in [
        "thread-1 holds A (taken at examples/deadlock.rs:",
        "thread-2 holds B (taken at examples/deadlock.rs:",
        "waits for B (at examples/deadlock.rs:",
        "waits for A (at examples/deadlock.rs:",
    ] {
        if !report.contains(expected) {
            run.fail(&format!("the watchdog's report does not say {expected:?}"));
        }
    }
    assert_eq!(
        run.lines_containing("watchdog: deadlock: "),
        1,
        "reported once"
    );
    run.assert_prints("program now ends itself (process::exit)");
    // Part 5's threads never got their second lock.
    assert_eq!(run.lines_containing("no deadlock after all?"), 0);
}

/// The hang doctor explains a hang that is no lock cycle: the queue join
/// whose consumer died and the waits on an event nobody sets, each with
/// its source line, and the lock the cashier holds meanwhile; then the
/// example ends itself.
#[cfg(feature = "deadlock-detection")]
#[test]
fn hang_doctor_explains_a_hang_that_is_not_a_lock_cycle() {
    let run = run("hang_doctor", &[]);
    run.assert_success()
        .assert_prints("cook: cannot cook \"soup of the day\": dies (panics)")
        .assert_prints("main has waited ")
        .assert_prints("in JoinableQueue::join (at examples/hang_doctor.rs:")
        .assert_prints("deadlock::detect() finds 0 lock cycle(s)")
        .assert_prints("Diagnosis: main waits in JoinableQueue::join");
    assert_eq!(
        run.lines_containing("in Event::wait (at examples/hang_doctor.rs:"),
        3,
        "two waiters and the cashier"
    );
    let cashier = run
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("cashier has waited"))
        .unwrap_or_else(|| run.fail("the cashier is not listed"));
    if !cashier.contains(", holding till (taken at examples/hang_doctor.rs:") {
        run.fail("the cashier's line does not name the till it holds");
    }
    assert_eq!(run.lines_containing("everything served"), 0);
}

#[test]
fn semaphore_parking_never_parks_more_cars_than_spaces() {
    let run = run("semaphore_parking", &[]);
    run.assert_success()
        .assert_prints("25 cars, 5 parking spaces")
        .assert_prints("All 25 cars parked and left")
        .assert_prints("The semaphore never let more than 5 cars in at once");
    assert_eq!(run.lines_containing(" parks "), 25);
    assert_eq!(run.lines_containing(" leaves "), 25);
    // Cars 6 and later arrive every 15 ms while the first five park for
    // 100 ms or more: some must wait.
    assert!(run.lines_containing("lot full, waits in line") > 0);
    let most: usize = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Most cars parked at once: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| run.fail("no \"Most cars parked at once\" line"));
    assert!((1..=5).contains(&most), "most parked: {most}");
    for line in run
        .stdout
        .lines()
        .filter(|line| line.contains("free spaces: "))
    {
        let free: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(free <= 5, "{line}");
    }
}

#[test]
fn event_traffic_light_lets_every_car_cross() {
    let run = run("event_traffic_light", &[]);
    run.assert_success()
        .assert_prints("light turns GREEN")
        .assert_prints("light stays green")
        .assert_prints("All 10 cars crossed");
    assert_eq!(run.lines_containing("light turns RED"), 3);
    let waited = run.lines_containing("arrives at red and waits");
    assert_eq!(run.lines_containing("sees green and crosses"), waited);
    assert_eq!(
        waited + run.lines_containing("arrives at green and crosses"),
        10
    );
    // Car 1 arrives 110 ms into a 250 ms red light.
    assert!(waited > 0, "no car waited at red");
}

#[test]
fn condition_producer_consumer_serves_every_dish_once() {
    let run = run("condition_producer_consumer", &[]);
    run.assert_success()
        .assert_prints("produced 16, consumed 16, distinct 16")
        .assert_prints("Every dish cooked was served exactly once.")
        .assert_prints("kitchen closes; notify_all wakes");
    assert_eq!(run.lines_containing(" puts dish "), 16);
    assert_eq!(run.lines_containing(" serves dish "), 16);
    assert_eq!(run.lines_containing("goes home"), 3);
}

#[test]
fn producer_consumer_eats_every_dish_before_shutting_down() {
    let run = run("producer_consumer", &[]);
    run.assert_success()
        .assert_prints("2 cooks make 6 dishes each; 2 eaters eat them; the pass holds 3.")
        .assert_prints("main: join() returned: 0 unfinished, 12 eaten")
        .assert_prints("cooked 12, eaten 12, left on the pass 0, unfinished tasks 0")
        .assert_prints("Every dish cooked was eaten, and every thread went home.");
    assert_eq!(run.lines_containing(" on the pass (waiting: "), 12);
    assert_eq!(run.lines_containing(" takes "), 12);
    assert_eq!(run.lines_containing(" finished "), 12);
    assert_eq!(run.lines_containing("is done cooking"), 2);
    assert_eq!(run.lines_containing("goes home: the kitchen is shut"), 2);
    // Every dish put was taken once.
    let mut put: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|line| line.split(" puts ").nth(1))
        .filter_map(|rest| rest.split(" on the pass").next())
        .collect();
    let mut taken: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|line| line.split(" takes ").nth(1))
        .collect();
    put.sort_unstable();
    taken.sort_unstable();
    assert_eq!(put, taken);
    // Order: join() returns only after the last dish is finished, and the
    // eaters go home only after the shutdown. (Each line is printed before
    // the step that lets the next one happen, so this holds on any timing.)
    let position = |text: &str| {
        run.stdout
            .lines()
            .position(|line| line.contains(text))
            .unwrap_or_else(|| run.fail(&format!("no line containing {text:?}")))
    };
    let lines: Vec<&str> = run.stdout.lines().collect();
    let last_finished = lines
        .iter()
        .rposition(|line| line.contains(" finished "))
        .unwrap();
    assert!(last_finished < position("main: join() returned"));
    let shutdown = position("main: shutdown()");
    let first_home = position("goes home");
    assert!(shutdown < first_home);
    let eaten: usize = run
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("eater "))
        .filter_map(|rest| rest.split(" ate ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(eaten, 12);
}

/// The milliseconds stamp of a `[  12 ms] ...` line.
fn stamp(line: &str) -> u64 {
    line.trim_start_matches('[')
        .split(" ms]")
        .next()
        .and_then(|ms| ms.trim().parse().ok())
        .unwrap_or_else(|| panic!("no [.. ms] stamp on {line:?}"))
}

/// The dishes named after `verb` in `text` ("... puts soup #1.2 on the
/// pass", "... takes soup #1.2"), sorted.
fn dishes_after(text: &str, verb: &str) -> Vec<String> {
    let mut dishes: Vec<String> = text
        .lines()
        .filter_map(|line| line.split(verb).nth(1))
        .map(|rest| rest.split(" on the pass").next().unwrap().to_string())
        .collect();
    dishes.sort_unstable();
    dishes
}

#[test]
fn producer_consumer_with_processes_eats_every_dish_exactly_once() {
    let run = run("producer_consumer", &["--processes"]);
    run.assert_success()
        .assert_prints(
            "2 cook processes make 6 dishes each; 2 eater processes eat them; \
             the pass (a process::JoinableQueue) holds 3.",
        )
        .assert_prints("main: joined both cook processes")
        .assert_prints("main: join() returned Ok: 0 unfinished, 0 lost")
        .assert_prints(
            "cooked 12, eaten 12, each exactly once; left on the pass 0, \
             unfinished tasks 0, lost tasks 0",
        )
        .assert_prints("Every dish cooked was eaten exactly once, and every process went home.");
    assert!(!run.stdout.contains("SIGKILL"), "nobody is killed");
    assert_eq!(run.lines_containing("main: cook "), 2);
    assert_eq!(run.lines_containing("main: eater "), 2);
    // The cooks and eaters print on stderr (a child's stdout is its pipe
    // to main): every dish put was taken once and finished once.
    let children = &run.stderr;
    assert_eq!(
        count_lines(children, " on the pass (waiting: "),
        12,
        "{children}"
    );
    assert_eq!(count_lines(children, "is done cooking"), 2, "{children}");
    assert_eq!(
        count_lines(children, "goes home: the kitchen is shut"),
        2,
        "{children}"
    );
    let put = dishes_after(children, " puts ");
    let mut distinct = put.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 12, "{children}");
    assert_eq!(dishes_after(children, " takes "), put, "{children}");
    assert_eq!(dishes_after(children, " finished "), put, "{children}");
    let eaten: usize = run
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("eater "))
        .filter_map(|rest| rest.split(" ate ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(eaten, 12);
    // join() returned only after the last dish was finished, and the
    // eaters went home only after the shutdown. The two streams are
    // compared by their wall-clock stamps (each line is printed before the
    // step that lets the next one happen, so ≤ holds on any timing).
    let main_stamp = |text: &str| {
        run.stdout
            .lines()
            .find(|line| line.contains(text))
            .map(stamp)
            .unwrap_or_else(|| run.fail(&format!("no line containing {text:?}")))
    };
    let last_finished = children
        .lines()
        .filter(|line| line.contains(" finished "))
        .map(stamp)
        .max()
        .unwrap();
    assert!(last_finished <= main_stamp("main: join() returned"));
    let first_home = children
        .lines()
        .filter(|line| line.contains("goes home"))
        .map(stamp)
        .min()
        .unwrap();
    assert!(main_stamp("main: shutdown()") <= first_home);
}

#[test]
fn producer_consumer_with_a_killed_eater_reports_its_task_lost_instead_of_hanging() {
    let run = run("producer_consumer", &["--kill-an-eater"]);
    run.assert_success()
        .assert_prints("Eater 1 will choke on its first dish, and main will kill it (SIGKILL).")
        .assert_prints("main: eater 1 hangs holding a dish; kill it (SIGKILL to process ")
        .assert_prints(", killed by signal 9")
        .assert_prints(
            "main: join() returned Err(TasksLost { lost: 1 }): 1 task(s) can never be marked done",
        )
        .assert_prints("eater 1 was killed holding a dish")
        .assert_prints("eater 2 ate 11 dishes")
        .assert_prints(
            "cooked 12, eaten 11, each exactly once; left on the pass 0, \
             unfinished tasks 0, lost tasks 1",
        )
        .assert_prints("JoinableQueue.join() would wait for it for ever");
    let children = &run.stderr;
    // Eater 1 took exactly one dish, choked on it and never finished it;
    // main names that dish as the one lost. Every other dish was taken
    // once and finished once, all by eater 2.
    let taken_by_1: Vec<&str> = children
        .lines()
        .filter_map(|line| line.split("eater 1 takes ").nth(1))
        .collect();
    assert_eq!(taken_by_1.len(), 1, "{children}");
    let lost = taken_by_1[0];
    assert_eq!(
        count_lines(children, &format!("eater 1 chokes on {lost}: it hangs")),
        1,
        "{children}"
    );
    assert_eq!(count_lines(children, "eater 1 finished"), 0, "{children}");
    assert_eq!(count_lines(children, "eater 1 goes home"), 0, "{children}");
    run.assert_prints(&format!("the dish lost with eater 1: {lost}"));
    let put = dishes_after(children, " puts ");
    assert_eq!(put.len(), 12, "{children}");
    assert_eq!(dishes_after(children, " takes "), put, "{children}");
    let finished = dishes_after(children, "eater 2 finished ");
    let mut expected: Vec<String> = put.iter().filter(|dish| *dish != lost).cloned().collect();
    expected.sort_unstable();
    assert_eq!(finished, expected, "{children}");
    // The kill came before join(), and join() ended after eater 2's last
    // dish: it did not hang on the lost one.
    let main_stamp = |text: &str| {
        run.stdout
            .lines()
            .find(|line| line.contains(text))
            .map(stamp)
            .unwrap_or_else(|| run.fail(&format!("no line containing {text:?}")))
    };
    assert!(
        main_stamp("main: eater 1 hangs holding a dish") <= main_stamp("main: join() returned")
    );
    let last_finished = children
        .lines()
        .filter(|line| line.contains(" finished "))
        .map(stamp)
        .max()
        .unwrap();
    assert!(last_finished <= main_stamp("main: join() returned"));
}

#[test]
fn producer_consumer_help_and_bad_arguments() {
    let help = run("producer_consumer", &["--help"]);
    help.assert_success()
        .assert_prints("--processes")
        .assert_prints("--kill-an-eater");
    assert!(!help.stdout.contains("cooked"), "--help must not cook");
    for bad in [&["--frobnicate"][..], &["--processes=2"], &["--kill"]] {
        let run = run("producer_consumer", bad);
        if run.status.code() != Some(2) || !run.stderr.contains("usage:") {
            run.fail("a bad argument must exit with status 2 and print the usage");
        }
    }
}

#[test]
fn thread_pool_reports_every_task_once_and_the_panic_alone() {
    let run = run("thread_pool", &[]);
    run.assert_success()
        .assert_prints("A pool of 5 workers downloads 20 pages")
        .assert_prints("main: submitted 20 pages; submit never waits")
        .assert_prints("main: 19 pages downloaded, 1 failed")
        .assert_prints("main: map gave all 20 results in order")
        .assert_prints("main: shutdown() — every worker finished and was joined")
        .assert_prints("One task panicked; its handle said so");
    assert_eq!(run.table_number("workers"), 5);
    assert_eq!(run.table_number("tasks submitted"), 20);
    assert_eq!(run.table_number("downloaded"), 19);
    assert_eq!(run.table_number("panicked"), 1);
    assert_eq!(run.table_number("done-callbacks run"), 20);
    assert_eq!(run.table_number("map results in order"), 20);
    let used = run.table_number("workers that finished tasks");
    assert!((1..=5).contains(&used), "workers used: {used}");

    // One done-callback per task, each page once, each on a worker of the
    // pool — or on main, had a task (40 ms or more) finished before main
    // added its callback: then it runs at once on the caller.
    let mut pages: Vec<u64> = run
        .stdout
        .lines()
        .filter(|line| line.contains("(done-callback)"))
        .map(|line| {
            let worker = line
                .split("] ")
                .nth(1)
                .and_then(|rest| rest.split(':').next());
            let worker = worker.unwrap_or_else(|| run.fail(&format!("no worker in {line:?}")));
            let index: Option<usize> = worker.strip_prefix("worker-").and_then(|n| n.parse().ok());
            if worker != "main" && index.is_none_or(|index| index >= 5) {
                run.fail(&format!("callback not on a pool worker: {line:?}"));
            }
            line.split("finished page ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|page| page.parse().ok())
                .unwrap_or_else(|| run.fail(&format!("no page in {line:?}")))
        })
        .collect();
    pages.sort_unstable();
    assert_eq!(pages, (0..20).collect::<Vec<_>>());

    // The panic is reported by the callback, by as_completed and by map —
    // and caught twice (once per part), the workers living on.
    let failure = "FAILED: the task panicked: page 13: connection reset by peer";
    assert_eq!(run.lines_containing(failure), 3);
    assert_eq!(run.lines_containing("finished page 13 -> FAILED"), 1);
    assert_eq!(run.lines_containing("is page 13: FAILED"), 1);
    assert_eq!(run.lines_containing("map: page 13 -> FAILED"), 1);
    assert_eq!(
        run.lines_containing("(the pool catches it; the worker lives on)"),
        2
    );

    // as_completed: every page once, numbered 1..=20 in arrival order.
    let arrivals: Vec<(usize, u64)> = run
        .stdout
        .lines()
        .filter_map(|line| line.split("main: as_completed #").nth(1))
        .map(|rest| {
            let mut words = rest.split_whitespace();
            let number = words.next().and_then(|n| n.parse().ok());
            let page = words
                .nth(2)
                .and_then(|page| page.trim_end_matches(':').parse().ok());
            number
                .zip(page)
                .unwrap_or_else(|| run.fail(&format!("bad as_completed line {rest:?}")))
        })
        .collect();
    assert_eq!(
        arrivals
            .iter()
            .map(|&(number, _)| number)
            .collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    let mut arrived: Vec<u64> = arrivals.iter().map(|&(_, page)| page).collect();
    arrived.sort_unstable();
    assert_eq!(arrived, (0..20).collect::<Vec<_>>());

    // map: in input order, each page with its own size (10 + 3 × page KB).
    let mapped: Vec<(u64, String)> = run
        .stdout
        .lines()
        .filter_map(|line| line.split("map: page ").nth(1))
        .map(|rest| {
            let (page, result) = rest
                .split_once(" -> ")
                .unwrap_or_else(|| run.fail(&format!("bad map line {rest:?}")));
            (page.parse().unwrap(), result.to_string())
        })
        .collect();
    assert_eq!(
        mapped.iter().map(|(page, _)| *page).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>(),
        "map results out of input order"
    );
    for (page, result) in &mapped {
        if *page != 13 {
            assert_eq!(*result, format!("{} KB", 10 + 3 * page), "page {page}");
        }
    }
}

#[test]
fn process_pool_counts_alike_on_threads_and_processes_and_calls_back_once_each() {
    let run = run("process_pool", &[]);
    run.assert_success()
        .assert_prints("12 CPU-bound tasks")
        .assert_prints("none in main")
        .assert_prints("Every count agrees: [")
        .assert_prints("Rust has no GIL")
        .assert_prints("main: submitted 12 tasks, largest first; submit never waits")
        .assert_prints("main: all 12 handles joined, 12 done-callbacks ran");
    let main_pid = run.pid.to_string();
    assert!(run
        .stdout
        .contains(&format!("(main is process {main_pid})")));
    // The timing table: one row per way, each a time in ms.
    for way in [
        "| one at a time |",
        "| ThreadPool(",
        "| ProcessPool(",
        "| ProcessPool start-up |",
    ] {
        let row = run
            .stdout
            .lines()
            .find(|line| line.starts_with(way))
            .unwrap_or_else(|| run.fail(&format!("no table row {way:?}")));
        assert!(row.contains(" ms"), "{row}");
    }
    let counts: Vec<u64> = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Every count agrees: ["))
        .map(|rest| {
            rest.trim_end_matches(']')
                .split(", ")
                .map(|n| n.parse().unwrap())
                .collect()
        })
        .unwrap();
    assert_eq!(counts.len(), 12);
    // One done-callback per task, numbered in arrival order, each with the
    // count part 1 found, computed in a worker process (not main).
    let mut tasks: Vec<usize> = Vec::new();
    for (arrival, line) in run
        .stdout
        .lines()
        .filter(|line| line.contains("done-callback #"))
        .enumerate()
    {
        let rest = line.split("done-callback #").nth(1).unwrap();
        let (number, rest) = rest.split_once(": task ").unwrap();
        assert_eq!(
            number.trim().parse::<usize>().unwrap(),
            arrival + 1,
            "{line}"
        );
        let (task, rest) = rest.trim_start().split_once(": ").unwrap();
        let task: usize = task.parse().unwrap();
        let count: u64 = rest.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(count, counts[task], "{line}");
        let worker = rest
            .rsplit("(worker ")
            .next()
            .unwrap()
            .trim_end_matches(')');
        assert_ne!(worker, main_pid, "{line}");
        tasks.push(task);
    }
    tasks.sort_unstable();
    assert_eq!(tasks, (0..12).collect::<Vec<_>>());
}

#[test]
fn processes_start_terminate_stay_apart_and_survive_a_killed_worker() {
    let run = run("processes", &[]);
    run.assert_success()
        .assert_prints("terminate() -> is_alive() = false, exit status: signal: 15 (SIGTERM)")
        .assert_prints("join() -> Err(WorkerDied): process ")
        .assert_prints("was killed by signal 15")
        .assert_prints("child: added 1000 to its COUNTER and saw 1000")
        .assert_prints("main: COUNTER = 5 — the child's additions never reached the parent")
        .assert_prints("thread: added 1000 to COUNTER and saw 1005; main: COUNTER = 1005")
        .assert_prints("running the task died (killed by signal 9)")
        .assert_prints("main: the other 6 tasks all finished")
        .assert_prints("main: shutdown() — every worker exited and was reaped");
    // Part 1: each child started alive, and joined with its own greeting
    // from its own pid.
    assert_eq!(run.lines_containing("main: started process"), 4);
    assert_eq!(run.lines_containing("is_alive() = true"), 4);
    for name in ["Ada", "Brian", "Grace"] {
        let line = run
            .stdout
            .lines()
            .find(|line| line.contains(&format!("hello from {name} in process")))
            .unwrap_or_else(|| run.fail(&format!("no greeting from {name}")));
        let joined = line.split("joined process ").nth(1).unwrap();
        let (pid, greeting) = joined.split_once(':').unwrap();
        assert!(greeting.contains(&format!("in process {pid}\"")), "{line}");
        assert_ne!(pid, run.pid.to_string());
    }
    // Part 3: the killed worker's task alone failed; 1..=6 squared came back.
    let victim = run
        .stdout
        .lines()
        .find_map(|line| line.split("kill -9 ").nth(1))
        .unwrap_or_else(|| run.fail("no kill -9 line"));
    run.assert_prints(&format!(
        "the killed task's handle says: the process {victim} running the task died"
    ));
    for x in 1..=6u64 {
        run.assert_prints(&format!("main: {x} squared is {}", x * x));
    }
    run.assert_prints(&format!("({victim} was replaced)"));
}

#[test]
fn every_example_opens_with_a_lesson_and_how_to_run_it() {
    for name in EXAMPLES.into_iter().chain(FEATURE_EXAMPLES) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(format!("{name}.rs"));
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(source.starts_with("//! # "), "{name}: no //! doc heading");
        assert!(
            source.contains(&format!("cargo run --release --example {name}")),
            "{name}: the doc comment does not say how to run it"
        );
    }
}
