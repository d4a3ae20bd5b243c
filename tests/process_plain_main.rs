//! Process pools in a plain program — its own `main`, no test harness
//! (`harness = false` in Cargo.toml) — the way a command-line tool uses
//! them:
//!
//! - it parses its command line strictly, *before* `init()`: workers see
//!   the parent's own arguments, so they parse too;
//! - its executable is deleted or replaced on disk while it runs (a
//!   deploy, a `cargo build`): it still starts workers, of itself;
//! - a task starts another program built on verisync: that program runs
//!   its own `main`, it does not mistake itself for a worker.
//!
//! This binary is both the program (with [`PROGRAM_VARIABLE`] set; its
//! workers inherit it) and the driver that runs it in each scenario and
//! checks what it prints.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use verisync::{ProcessPool, TaskError};

/// Set: this process is the program under test, not the driver.
const PROGRAM_VARIABLE: &str = "VERISYNC_PLAIN_MAIN_PROGRAM";

/// Far above any scenario's run time; only a hang hits it.
const TIME_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    if std::env::var_os(PROGRAM_VARIABLE).is_some() {
        program();
    } else {
        drive();
    }
}

// ---------------------------------------------------------------------------
// The program
// ---------------------------------------------------------------------------

/// What the program was asked to do.
enum Job {
    /// Run tasks in a pool and a spawned process; report what workers see.
    Pool,
    /// Start a pool, say READY, wait for a line on stdin, start workers again.
    Wait,
    /// Print the text (run by a task, as "another program").
    Echo(String),
    /// Run a task that starts this program with `echo`.
    LaunchChild,
}

/// A strict parser, like a real tool's: anything unexpected is an error.
fn parse(mut arguments: impl Iterator<Item = String>) -> Result<Job, String> {
    let job = match arguments.next().as_deref() {
        Some("pool") => Job::Pool,
        Some("wait") => Job::Wait,
        Some("launch-child") => Job::LaunchChild,
        Some("echo") => match (arguments.next().as_deref(), arguments.next()) {
            (Some("--text"), Some(text)) => Job::Echo(text),
            _ => return Err("echo needs --text TEXT".into()),
        },
        Some(other) => return Err(format!("unknown job {other:?}")),
        None => return Err("no job given".into()),
    };
    match arguments.next() {
        Some(extra) => Err(format!("unexpected argument {extra:?}")),
        None => Ok(job),
    }
}

fn program() {
    // The command line is parsed first, before init(): a worker must see
    // the same arguments, or it exits here with status 2.
    let job = match parse(std::env::args().skip(1)) {
        Ok(job) => job,
        Err(message) => {
            eprintln!("usage error: {message}");
            std::process::exit(2);
        }
    };
    verisync::process::init();
    let outcome = match job {
        Job::Pool => pool_job(),
        Job::Wait => wait_job(),
        Job::Echo(text) => {
            println!("{text}");
            Ok(())
        }
        Job::LaunchChild => launch_child_job(),
    };
    if let Err(error) = outcome {
        println!("FAILED: {error}");
        std::process::exit(1);
    }
}

fn square(x: u64) -> u64 {
    x * x
}

/// The command line and the `VERISYNC_*` variables a worker sees.
fn what_a_worker_sees(_: ()) -> (Vec<String>, Vec<String>) {
    let variables = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("VERISYNC_") && name != PROGRAM_VARIABLE)
        .collect();
    (std::env::args().collect(), variables)
}

fn pool_job() -> Result<(), TaskError> {
    let pool = ProcessPool::new(2)?;
    let squares: Vec<u64> = pool.map(square, 1..=5u64).collect::<Result<_, _>>()?;
    println!("SQUARES {squares:?}");
    let (arguments, variables) = pool.submit(what_a_worker_sees, ()).join()?;
    let mine: Vec<String> = std::env::args().collect();
    println!("WORKER ARGUMENTS SAME: {}", arguments == mine);
    println!("WORKER VARIABLES {variables:?}");
    println!("SPAWNED {}", verisync::process::spawn(square, 12)?.join()?);
    Ok(())
}

fn wait_job() -> Result<(), TaskError> {
    let pool = ProcessPool::new(1)?;
    println!("FIRST {}", pool.submit(square, 3).join()?);
    println!("READY");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("read the go-ahead");
    // The executable may be gone from disk now: start workers again.
    let again = ProcessPool::new(1)?;
    let pooled = again.submit(square, 4).join()?;
    let spawned = verisync::process::spawn(square, 5)?.join()?;
    println!("STARTED AGAIN {pooled} {spawned}");
    Ok(())
}

/// Runs this program (another verisync-based program, as far as the task
/// knows) with `echo`, and returns what it printed and its status.
fn run_echo(text: String) -> (String, Option<i32>) {
    let output = Command::new(std::env::current_exe().expect("the current executable"))
        .args(["echo", "--text", &text])
        .stdin(Stdio::null())
        .output()
        .expect("run the program");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code(),
    )
}

fn launch_child_job() -> Result<(), TaskError> {
    let pool = ProcessPool::new(1)?;
    let (said, status) = pool
        .submit(run_echo, "hello from a grandchild".to_string())
        .join()?;
    println!("CHILD SAID {:?} AND EXITED {status:?}", said.trim());
    Ok(())
}

// ---------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------

fn drive() {
    let scenarios: [(&str, fn()); 4] = [
        (
            "a_program_that_parses_its_arguments_before_init_has_working_workers",
            a_program_that_parses_its_arguments_before_init_has_working_workers,
        ),
        (
            "a_deleted_executable_still_starts_workers",
            a_deleted_executable_still_starts_workers,
        ),
        (
            "a_replaced_executable_still_starts_workers_of_the_running_program",
            a_replaced_executable_still_starts_workers_of_the_running_program,
        ),
        (
            "a_program_started_by_a_task_runs_its_own_main",
            a_program_started_by_a_task_runs_its_own_main,
        ),
    ];
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        match std::panic::catch_unwind(scenario) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(101);
    }
}

/// One run of the program.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}\n--- exited with {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    fn assert_prints(&self, text: &str) -> &Self {
        if !self.status.success() {
            self.fail("the program failed");
        }
        if !self.stdout.contains(text) {
            self.fail(&format!("expected the output to contain {text:?}"));
        }
        self
    }
}

fn program_command(executable: &Path, arguments: &[&str]) -> Command {
    let mut command = Command::new(executable);
    command
        .args(arguments)
        .env(PROGRAM_VARIABLE, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Reads a pipe to the end on its own thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    let mut pipe = pipe.expect("piped");
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Waits for `child`, killing it if it outlives [`TIME_LIMIT`].
fn wait_with_limit(child: &mut Child) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            return status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the program did not finish within {TIME_LIMIT:?}: killed");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn run(arguments: &[&str]) -> Run {
    let mut child = program_command(&std::env::current_exe().unwrap(), arguments)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the program");
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_limit(&mut child);
    Run {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn a_program_that_parses_its_arguments_before_init_has_working_workers() {
    let run = run(&["pool"]);
    run.assert_prints("SQUARES [1, 4, 9, 16, 25]")
        .assert_prints("WORKER ARGUMENTS SAME: true")
        .assert_prints("WORKER VARIABLES []")
        .assert_prints("SPAWNED 144");
    if run.stderr.contains("usage error") {
        run.fail("a worker could not parse the command line");
    }
}

/// A private copy of this executable in a fresh directory, removed on drop.
struct Copy {
    directory: PathBuf,
    executable: PathBuf,
}

impl Copy {
    fn new(tag: &str) -> Self {
        let directory =
            std::env::temp_dir().join(format!("verisync-plain-main-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let executable = directory.join("program");
        std::fs::copy(std::env::current_exe().unwrap(), &executable).unwrap();
        Self {
            directory,
            executable,
        }
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// Runs the copy with `wait`, lets `change` act on the file once the
/// program's first pool ran, then lets the program start workers again.
fn run_copy_and_change_it(tag: &str, change: impl FnOnce(&Copy)) -> Run {
    let copy = Copy::new(tag);
    let mut child = program_command(&copy.executable, &["wait"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start the copy");
    let stderr = drain(child.stderr.take());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the program ended before READY\n{seen}\n{}",
                stderr.join().unwrap()
            );
        }
        seen.push_str(&line);
        if line.trim() == "READY" {
            break;
        }
    }
    change(&copy);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"go\n")
        .expect("tell the program to go on");
    let rest = drain(Some(stdout));
    let status = wait_with_limit(&mut child);
    Run {
        status,
        stdout: seen + &rest.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn a_deleted_executable_still_starts_workers() {
    let run = run_copy_and_change_it("deleted", |copy| {
        std::fs::remove_file(&copy.executable).unwrap();
    });
    run.assert_prints("FIRST 9")
        .assert_prints("STARTED AGAIN 16 25");
}

fn a_replaced_executable_still_starts_workers_of_the_running_program() {
    let run = run_copy_and_change_it("replaced", |copy| {
        // A different program now sits at the path (as after a deploy).
        let next = copy.directory.join("next");
        std::fs::write(&next, "#!/bin/sh\necho 'the replacement ran'\nexit 3\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&next, &copy.executable).unwrap();
    });
    run.assert_prints("STARTED AGAIN 16 25");
    if run.stdout.contains("the replacement ran") || run.stderr.contains("the replacement ran") {
        run.fail("a worker ran the replacement, not the running program");
    }
}

fn a_program_started_by_a_task_runs_its_own_main() {
    run(&["launch-child"])
        .assert_prints("CHILD SAID \"hello from a grandchild\" AND EXITED Some(0)");
}
