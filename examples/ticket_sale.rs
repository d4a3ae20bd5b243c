//! # Selling tickets: a race condition, and the lock that fixes it
//!
//! The lesson: a *check-then-act* on shared data — look up how many tickets
//! are left, then buy one — is only correct if nobody else can act in
//! between the check and the act.
//!
//! A JSON data file holds the number of tickets left (`{"tickets": 5}`).
//! Each buyer (a thread) *queries* the file, waits for a simulated network
//! round trip, and then *buys* — writes the count minus one back — if the
//! count it saw was above zero.
//!
//! ```text
//! cargo run --release --example ticket_sale               # with a Mutex: sells exactly the tickets there are
//! cargo run --release --example ticket_sale -- --no-lock  # no lock: watch tickets being oversold
//! cargo run --release --example ticket_sale -- --processes            # buyers are processes, process::Lock
//! cargo run --release --example ticket_sale -- --processes --no-lock  # the same race, across processes
//! cargo run --release --example ticket_sale -- --help     # --buyers, --tickets, --delay-ms, --data-file
//! ```
//!
//! With `--no-lock`, buyers query during each other's network delay: several
//! see the same count and each buys "the last ticket", so more tickets are
//! sold than exist, and their writes overwrite one another (the file ends up
//! wrong too). By default, query and buy happen together under one
//! [`verisync::Mutex`] — Python's `with lock:` around both calls — so each
//! buyer sees the count the previous one left, and exactly the tickets that
//! exist are sold.
//!
//! With `--processes`, each buyer is a child process
//! ([`verisync::process::spawn`], Python's `multiprocessing.Process`). A
//! `Mutex` lives in one process's memory, so it cannot guard the file
//! here; a [`verisync::process::Lock`] can — Python's
//! `multiprocessing.Lock`: main creates it before starting the buyers and
//! hands each buyer a clone (it lives in memory the whole process tree
//! shares). The sale then shows what happens when a buyer dies holding it:
//! buyer 1 takes the lock, its network call hangs, and main kills it with
//! SIGKILL. Python's `multiprocessing.Lock` would stay held for ever, and
//! every other buyer would wait for ever. A `process::Lock` notices that
//! its holder died: the next buyer gets the lock *and is told*
//! (`lock()` returns `Err(OwnerDied)`), checks what the dead holder may
//! have left half done (a scratch file it was writing; the data file itself
//! is only ever replaced whole), acknowledges with `into_guard()`, and the
//! sale goes on to sell exactly the tickets there are. The stock stays in
//! the JSON file in this mode too, so threads and processes run the same
//! sale, and `--data-file` keeps working. With `--no-lock` the processes
//! race just as the threads do (and nobody is killed). The buyers' own
//! lines reach the terminal on stderr: verisync keeps a child's stdout for
//! talking to its parent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use std::{env, fs, io, thread};

use serde::{Deserialize, Serialize};
use verisync::process::{Event, Lock, LockGuard, OwnerDied};
use verisync::Mutex;

const USAGE: &str = "\
Ticket sale: buyers query a JSON file for the tickets left, then buy one.

usage: cargo run --release --example ticket_sale -- [options]

options:
  --buyers N        number of buyers, one thread (or process)
                    each                                     (default 10)
  --tickets N       tickets for sale at the start            (default 5)
  --delay-ms N      simulated network delay between query
                    and buy, in milliseconds                 (default 50)
  --data-file PATH  the JSON data file to use and keep
                    (default: a temporary file, removed at the end)
  --no-lock         no lock around query + buy: shows the race
  --processes       each buyer is a child process, and the lock is a
                    verisync::process::Lock; buyer 1 is killed while
                    it holds the lock, and the next buyer is told the
                    owner died (not with --no-lock)
  --help            print this help";

/// The most buyers (threads) the example starts.
const MAX_BUYERS: usize = 1000;

/// How long "forever" is for the buyer whose network call hangs: far
/// longer than main waits before it kills that buyer.
const HANG: Duration = Duration::from_secs(60);

/// How the buyers run and what protects the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Buyers are threads; nothing stops two of them interleaving.
    ThreadsNoLock,
    /// Buyers are threads; each holds one `verisync::Mutex` across query and buy.
    ThreadsWithMutex,
    /// Buyers are processes; nothing stops two of them interleaving.
    ProcessesNoLock,
    /// Buyers are processes; each holds one `process::Lock` across query and buy.
    ProcessesWithLock,
}

impl Mode {
    fn new(processes: bool, lock: bool) -> Self {
        match (processes, lock) {
            (false, false) => Mode::ThreadsNoLock,
            (false, true) => Mode::ThreadsWithMutex,
            (true, false) => Mode::ProcessesNoLock,
            (true, true) => Mode::ProcessesWithLock,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Mode::ThreadsNoLock => "threads, no lock",
            Mode::ThreadsWithMutex => "threads, one Mutex around query + buy",
            Mode::ProcessesNoLock => "processes, no lock",
            Mode::ProcessesWithLock => "processes, one process::Lock around query + buy",
        }
    }

    fn locks(self) -> bool {
        matches!(self, Mode::ThreadsWithMutex | Mode::ProcessesWithLock)
    }
}

struct Config {
    buyers: usize,
    tickets: u32,
    delay: Duration,
    data_file: Option<PathBuf>,
    mode: Mode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            buyers: 10,
            tickets: 5,
            delay: Duration::from_millis(50),
            data_file: None,
            mode: Mode::ThreadsWithMutex,
        }
    }
}

/// The contents of the data file.
#[derive(Serialize, Deserialize)]
struct Stock {
    tickets: u32,
}

/// The JSON data file holding the tickets left.
struct TicketFile {
    path: PathBuf,
    /// Remove the file when the sale is over (it is our temporary file).
    remove_at_end: bool,
}

impl TicketFile {
    fn create(path: PathBuf, tickets: u32, remove_at_end: bool) -> io::Result<Self> {
        let file = TicketFile {
            path,
            remove_at_end,
        };
        file.store(tickets, 0)?;
        Ok(file)
    }

    /// Query: how many tickets are left?
    fn query(&self) -> io::Result<u32> {
        let text = fs::read_to_string(&self.path)?;
        let stock: Stock = serde_json::from_str(&text).map_err(io::Error::other)?;
        Ok(stock.tickets)
    }

    /// Writes the count back. The write is atomic (a temporary file renamed
    /// over the data file), so a reader never sees half a file: the only race
    /// left is the one this lesson is about.
    fn store(&self, tickets: u32, writer: usize) -> io::Result<()> {
        let json = serde_json::to_string(&Stock { tickets }).map_err(io::Error::other)?;
        let mut scratch = self.path.clone().into_os_string();
        scratch.push(format!(".{writer}.tmp"));
        fs::write(&scratch, json)?;
        fs::rename(&scratch, &self.path)
    }

    /// Removes the scratch files (`<data file>.<writer>.tmp`) that writers
    /// killed between their write and their rename left behind; returns
    /// how many. Only for a lock holder: then no live writer has one.
    fn remove_scratch_files(&self) -> io::Result<usize> {
        let Some(name) = self.path.file_name() else {
            return Ok(0);
        };
        // A bare file name's parent is "": the current directory.
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let mut removed = 0;
        for entry in fs::read_dir(directory)? {
            let entry = entry?.file_name();
            let entry = entry.to_string_lossy();
            let is_scratch = entry
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .is_some_and(|writer| writer.parse::<usize>().is_ok());
            if is_scratch {
                fs::remove_file(directory.join(&*entry))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Drop for TicketFile {
    fn drop(&mut self) {
        if self.remove_at_end {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What one buyer saw and did. (Serde types: a buyer process sends it back.)
#[derive(Serialize, Deserialize)]
struct Purchase {
    buyer: usize,
    saw: u32,
    bought: bool,
    /// It got the lock from a holder that died (processes only).
    told_owner_died: bool,
}

/// Prints a line stamped with the milliseconds since the sale opened. (A
/// wall-clock time, unlike an `Instant`, means the same in every process.)
fn say(opened: SystemTime, message: &str) {
    let elapsed = opened.elapsed().unwrap_or_default();
    println!("[{:>4} ms] {message}", elapsed.as_millis());
}

/// One buyer: query, wait for the network, buy if there was a ticket.
fn buy_ticket(
    buyer: usize,
    file: &TicketFile,
    delay: Duration,
    opened: SystemTime,
) -> io::Result<Purchase> {
    let saw = file.query()?;
    say(opened, &format!("buyer {buyer:>2} queries: {saw} left"));
    thread::sleep(delay); // the network round trip
    if saw == 0 {
        say(opened, &format!("buyer {buyer:>2} finds it sold out"));
        return Ok(Purchase {
            buyer,
            saw,
            bought: false,
            told_owner_died: false,
        });
    }
    file.store(saw - 1, buyer)?;
    say(
        opened,
        &format!("buyer {buyer:>2} buys one and writes {} back", saw - 1),
    );
    Ok(Purchase {
        buyer,
        saw,
        bought: true,
        told_owner_died: false,
    })
}

/// Runs every buyer on its own thread and returns what each did, in buyer order.
fn run_sale(config: &Config, file: &TicketFile) -> io::Result<Vec<Purchase>> {
    let opened = SystemTime::now();
    let delay = config.delay;
    match config.mode {
        Mode::ProcessesNoLock | Mode::ProcessesWithLock => {
            run_sale_in_processes(config, file, opened)
        }
        Mode::ThreadsNoLock => thread::scope(|scope| {
            let buyers: Vec<_> = (1..=config.buyers)
                .map(|buyer| scope.spawn(move || buy_ticket(buyer, file, delay, opened)))
                .collect();
            buyers.into_iter().map(|b| b.join().unwrap()).collect()
        }),
        Mode::ThreadsWithMutex => {
            // The file lives inside the lock: the only way to reach it is
            // through the guard, held across query *and* buy.
            let locked_file = Mutex::with_name("ticket file", file);
            let locked_file = &locked_file;
            thread::scope(|scope| {
                let buyers: Vec<_> = (1..=config.buyers)
                    .map(|buyer| {
                        scope.spawn(move || {
                            let file = locked_file.lock();
                            buy_ticket(buyer, &file, delay, opened)
                        })
                    })
                    .collect();
                buyers.into_iter().map(|b| b.join().unwrap()).collect()
            })
        }
    }
}

/// What a buyer process is given: everything it needs, as a serde value
/// (a child process shares no memory with main — except the objects made
/// for sharing, like the lock, which cross as handles).
#[derive(Serialize, Deserialize)]
struct BuyerOrder {
    buyer: usize,
    data_file: PathBuf,
    /// The lock held across query + buy; `None`: no lock.
    lock: Option<Lock>,
    delay: Duration,
    opened: SystemTime,
    /// Set once it holds the lock, if its network call is to hang (for
    /// [`HANG`]): the buyer main kills.
    hangs: Option<Event>,
}

/// One buyer in its own process: take the lock (if there is one), then
/// query and buy. Runs in the child; the result travels back to main.
fn buyer_process(order: BuyerOrder) -> Result<Purchase, String> {
    let file = TicketFile {
        path: order.data_file,
        remove_at_end: false,
    };
    let buyer = order.buyer;
    let me = std::process::id();
    let mut told_owner_died = false;
    // The lock is released when `_guard` is dropped, at the end of this
    // function. If this process is killed first, nobody releases it: the
    // next locker finds the holder dead and is told.
    let _guard = match &order.lock {
        Some(lock) => {
            let guard = match lock.lock() {
                Ok(guard) => {
                    say(
                        order.opened,
                        &format!("buyer {buyer:>2} (process {me}) takes the lock"),
                    );
                    guard
                }
                Err(owner_died) => {
                    told_owner_died = true;
                    repair_after_dead_holder(buyer, &file, owner_died, order.opened)?
                }
            };
            Some(guard)
        }
        None => None,
    };
    let delay = match &order.hangs {
        Some(holding) => {
            holding.set(); // main: "I hold it"; now the network call hangs
            HANG
        }
        None => order.delay,
    };
    let mut purchase =
        buy_ticket(buyer, &file, delay, order.opened).map_err(|error| error.to_string())?;
    purchase.told_owner_died = told_owner_died;
    Ok(purchase)
}

/// The lock came with the news that its holder died holding it: the data
/// it guards may be half-updated. Checks it, repairs it, and acknowledges
/// the death (`into_guard`), so the next buyer is not told again.
fn repair_after_dead_holder<'a>(
    buyer: usize,
    file: &TicketFile,
    owner_died: OwnerDied<LockGuard<'a>>,
    opened: SystemTime,
) -> Result<LockGuard<'a>, String> {
    say(
        opened,
        &format!(
            "buyer {buyer:>2} (process {}) takes the lock and is told the owner died: \
             \"{owner_died}\"",
            std::process::id()
        ),
    );
    // A buy writes a scratch file, then renames it over the data file: a
    // holder killed in between leaves the scratch file (removed here), and
    // the data file whole. Had it been damaged, the sale would stop here.
    let removed = file
        .remove_scratch_files()
        .map_err(|error| format!("cannot clean up after the dead holder: {error}"))?;
    let left = file.query().map_err(|error| {
        format!("the data file is damaged after the holder died ({error}); not selling")
    })?;
    say(
        opened,
        &format!(
            "buyer {buyer:>2} checks the data file: intact, {left} left ({removed} half-written \
             scratch file(s) removed); acknowledges and goes on"
        ),
    );
    Ok(owner_died.into_guard())
}

/// Runs every buyer in its own process. With the lock, buyer 1's network
/// call hangs while it holds the lock, and main kills it (SIGKILL); the
/// next buyer must get the lock and be told. Returns what the buyers that
/// finished did, in buyer order (the killed one bought nothing).
fn run_sale_in_processes(
    config: &Config,
    file: &TicketFile,
    opened: SystemTime,
) -> io::Result<Vec<Purchase>> {
    let lock = match config.mode {
        Mode::ProcessesWithLock => Some(Lock::new().map_err(io::Error::other)?),
        _ => None,
    };
    let kill_one = lock.is_some() && config.buyers >= 2;
    let victim_holds = if kill_one {
        Some(Event::new().map_err(io::Error::other)?)
    } else {
        None
    };
    let order = |buyer: usize| BuyerOrder {
        buyer,
        data_file: file.path.clone(),
        lock: lock.clone(),
        delay: config.delay,
        opened,
        hangs: victim_holds.clone().filter(|_| buyer == 1),
    };
    let start = |buyer: usize| {
        let child =
            verisync::process::spawn(buyer_process, order(buyer)).map_err(io::Error::other)?;
        say(
            opened,
            &format!("main: buyer {buyer:>2} is process {}", child.pid()),
        );
        Ok::<_, io::Error>(child)
    };

    let mut victim = None;
    if let Some(holds) = &victim_holds {
        let child = start(1)?;
        if !holds.wait_timeout(Duration::from_secs(30)) {
            child.kill();
            return Err(io::Error::other("buyer 1 never took the lock"));
        }
        say(
            opened,
            "main: buyer  1 holds the lock, and its network call hangs",
        );
        victim = Some(child);
    }
    let first = if victim.is_some() { 2 } else { 1 };
    let buyers = (first..=config.buyers)
        .map(start)
        .collect::<io::Result<Vec<_>>>()?;

    if let Some(victim) = victim {
        // Everyone else now waits for the lock that buyer 1 holds.
        thread::sleep(Duration::from_millis(100));
        say(
            opened,
            &format!(
                "main: buyers {first}..{} wait for the lock; the file still says {} left",
                config.buyers,
                file.query()?
            ),
        );
        say(
            opened,
            &format!(
                "main: kill buyer 1 (SIGKILL to process {}) while it holds the lock",
                victim.pid()
            ),
        );
        victim.kill();
        match victim.join() {
            Err(verisync::TaskError::WorkerDied { pid, signal, .. }) => {
                let signal = signal.map_or("?".to_string(), |signal| signal.to_string());
                say(
                    opened,
                    &format!(
                        "main: join() says buyer 1 died: process {pid}, killed by signal {signal}"
                    ),
                );
                say(
                    opened,
                    "main: it never released the lock; the next buyer to want it will find \
                     its holder dead",
                );
            }
            other => {
                let outcome = if other.is_ok() {
                    "finished"
                } else {
                    "failed otherwise"
                };
                return Err(io::Error::other(format!(
                    "buyer 1 was not killed: it {outcome}"
                )));
            }
        }
    }

    buyers
        .into_iter()
        .map(|child| match child.join() {
            Ok(Ok(purchase)) => Ok(purchase),
            Ok(Err(error)) => Err(io::Error::other(error)),
            Err(error) => Err(io::Error::other(error)),
        })
        .collect()
}

/// "1, 2, 3" — at most `limit` buyer numbers, then "...".
fn list_buyers(buyers: &[usize], limit: usize) -> String {
    let mut text: Vec<String> = buyers.iter().take(limit).map(|b| b.to_string()).collect();
    if buyers.len() > limit {
        text.push("...".to_string());
    }
    text.join(", ")
}

/// Explains what happened without a lock.
fn explain_race(purchases: &[Purchase], tickets: u32, sold: usize, left: u32) {
    let oversold = sold > tickets as usize;
    let lost_updates = tickets as usize != sold + left as usize;
    if !oversold && !lost_updates {
        println!(
            "No harm done this run: the buyers happened not to overlap.\n\
             The race is still there; try more --buyers or a longer --delay-ms."
        );
        return;
    }
    if oversold {
        println!("OVERSOLD: {sold} tickets were sold, but there were only {tickets}.");
    } else {
        println!(
            "Nothing oversold, but the file is wrong: {sold} of {tickets} sold, yet it says {left} left."
        );
    }
    println!("Why: buyers read the same count before any of them wrote its purchase back:");
    let mut counts: Vec<u32> = purchases
        .iter()
        .filter(|p| p.bought)
        .map(|p| p.saw)
        .collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    counts.dedup();
    for count in counts {
        let same: Vec<usize> = purchases
            .iter()
            .filter(|p| p.bought && p.saw == count)
            .map(|p| p.buyer)
            .collect();
        if same.len() > 1 {
            println!(
                "  - buyers {} all saw \"{count} left\" and all {} of them bought one",
                list_buyers(&same, 8),
                same.len()
            );
        }
    }
    println!(
        "Query and buy are two steps with a network delay between them. Without a lock,\n\
         other buyers query in that gap and see the same, stale count; then each writes\n\
         its own \"count - 1\", overwriting the others (lost updates): the file says\n\
         {left} left although {sold} were sold.\n\
         The fix: hold one lock across query + buy. Run again without --no-lock."
    );
}

fn print_summary(config: &Config, sold: usize, left: u32, killed: usize, told: usize) {
    let oversold = sold > config.tickets as usize;
    let mut rows = vec![
        ("tickets at start", config.tickets.to_string()),
        ("buyers", config.buyers.to_string()),
    ];
    if config.mode == Mode::ProcessesWithLock {
        rows.push(("killed holding lock", killed.to_string()));
        rows.push(("told the owner died", told.to_string()));
    }
    rows.extend([
        ("tickets sold", sold.to_string()),
        ("tickets left in file", left.to_string()),
        ("oversold", if oversold { "yes" } else { "no" }.to_string()),
    ]);
    let width = rows
        .iter()
        .map(|(_, value)| value.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let rule = format!("+{}+{}+", "-".repeat(22), "-".repeat(width + 2));
    println!();
    println!("Summary ({})", config.mode.describe());
    println!("{rule}");
    for (label, value) in rows {
        println!("| {label:<20} | {value:>width$} |");
    }
    println!("{rule}");
}

/// Reads the value of `flag`: from `--flag=value` or from the next argument.
fn flag_value(
    flag: &str,
    inline: Option<String>,
    args: &mut impl Iterator<Item = String>,
) -> Result<String, String> {
    inline
        .or_else(|| args.next())
        .ok_or_else(|| format!("{flag} needs a value"))
}

fn number<N: std::str::FromStr>(flag: &str, value: &str) -> Result<N, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} wants a whole number, not {value:?}"))
}

/// `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config::default();
    let (mut processes, mut lock) = (false, true);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg, None),
        };
        let is_switch = matches!(flag.as_str(), "--help" | "-h" | "--no-lock" | "--processes");
        if is_switch && inline.is_some() {
            return Err(format!("{flag} takes no value"));
        }
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--no-lock" => lock = false,
            "--processes" => processes = true,
            "--buyers" => {
                config.buyers = number(&flag, &flag_value(&flag, inline, &mut args)?)?;
                if !(1..=MAX_BUYERS).contains(&config.buyers) {
                    return Err(format!("--buyers must be between 1 and {MAX_BUYERS}"));
                }
            }
            "--tickets" => config.tickets = number(&flag, &flag_value(&flag, inline, &mut args)?)?,
            "--delay-ms" => {
                let ms = number(&flag, &flag_value(&flag, inline, &mut args)?)?;
                config.delay = Duration::from_millis(ms);
            }
            "--data-file" => {
                config.data_file = Some(PathBuf::from(flag_value(&flag, inline, &mut args)?));
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    config.mode = Mode::new(processes, lock);
    Ok(Some(config))
}

fn temp_data_file() -> PathBuf {
    env::temp_dir().join(format!("verisync-tickets-{}.json", std::process::id()))
}

fn main() -> ExitCode {
    // Must come first: in a buyer process (--processes) this runs the
    // buyer and exits; it never returns there.
    verisync::process::init();
    let config = match parse_args(env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("ticket_sale: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match sell(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("ticket_sale: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the sale; `Ok(false)` if the lock failed to prevent a race (a bug).
fn sell(config: &Config) -> io::Result<bool> {
    let (path, temporary) = match &config.data_file {
        Some(path) => (path.clone(), false),
        None => (temp_data_file(), true),
    };
    let shown = path.display().to_string();
    let file = TicketFile::create(path, config.tickets, temporary)
        .map_err(|error| io::Error::new(error.kind(), format!("cannot write {shown}: {error}")))?;
    println!(
        "{} tickets for sale, {} buyers, {} ms network delay ({}).",
        config.tickets,
        config.buyers,
        config.delay.as_millis(),
        config.mode.describe()
    );
    println!(
        "Data file: {}{}",
        file.path.display(),
        if temporary {
            " (removed at the end)"
        } else {
            ""
        }
    );
    println!();

    let purchases = run_sale(config, &file)?;
    let killed = config.buyers - purchases.len();
    let sold = purchases.iter().filter(|p| p.bought).count();
    let told: Vec<usize> = purchases
        .iter()
        .filter(|p| p.told_owner_died)
        .map(|p| p.buyer)
        .collect();
    let left = file.query()?;
    println!();

    // With the process lock, the buyer killed holding it is reported to
    // exactly one buyer (who acknowledges it); to none if nobody was killed.
    let told_right =
        config.mode != Mode::ProcessesWithLock || told.len() == usize::from(killed > 0);
    let correct = sold == config.tickets.min(purchases.len() as u32) as usize
        && sold + left as usize == config.tickets as usize
        && told_right;
    match config.mode {
        Mode::ThreadsNoLock | Mode::ProcessesNoLock => {
            explain_race(&purchases, config.tickets, sold, left)
        }
        Mode::ThreadsWithMutex if correct => println!(
            "With the Mutex \"ticket file\" held across query and buy, each buyer saw the count\n\
             the previous one left: {sold} sold, {} went home empty-handed, and the file agrees.",
            config.buyers - sold
        ),
        Mode::ProcessesWithLock if correct => {
            println!(
                "With the process::Lock held across query and buy, each buyer process saw the\n\
                 count the previous one left: {sold} sold, {} went home empty-handed, and the\n\
                 file agrees.",
                purchases.len() - sold
            );
            if let [next] = told[..] {
                println!(
                    "Buyer 1 was killed while holding the lock, and never released it. Python's\n\
                     multiprocessing.Lock would stay held for ever, and every buyer would wait\n\
                     for ever. The process::Lock noticed its holder was dead: buyer {next} got the\n\
                     lock and was told (OwnerDied), checked the data file, acknowledged, and\n\
                     the sale went on: the ticket buyer 1 saw but never bought was sold to\n\
                     someone else."
                );
            }
        }
        Mode::ThreadsWithMutex | Mode::ProcessesWithLock => eprintln!(
            "BUG: even with the lock, {sold} were sold and the file says {left} left \
             (of {} tickets); {} buyer(s) killed holding the lock, {} told the owner died.",
            config.tickets,
            killed,
            told.len()
        ),
    }
    print_summary(config, sold, left, killed, told.len());
    show_kept_file(&file.path, temporary);
    Ok(!config.mode.locks() || correct)
}

fn show_kept_file(path: &Path, temporary: bool) {
    if !temporary {
        if let Ok(text) = fs::read_to_string(path) {
            println!("{} now holds {text}", path.display());
        }
    }
}
