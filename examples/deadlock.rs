//! # Deadlock: two threads, two locks, taken in opposite orders
//!
//! The lesson: thread 1 takes lock A, then lock B; thread 2 takes B, then A.
//! If each gets its first lock before the other gets its second, each waits
//! for a lock the other holds, and neither ever lets go: a deadlock.
//!
//! ```text
//! cargo run --release --example deadlock
//! ```
//!
//! Part 1 makes the deadlock happen for real, every run: a [`Barrier`]
//! stands in for the lesson's `time.sleep`, so both threads hold their first
//! lock before either reaches for its second. The program still never hangs:
//! the second lock is taken with [`Mutex::try_lock_for`], so both threads
//! give up after a timeout and report what they hold and what they waited
//! for — which is how the deadlock is detected and shown.
//!
//! Parts 2 and 3 run the two classic fixes to completion:
//!
//! 1. **One shared reentrant lock** (the lesson's `mutexA = mutexB = RLock()`):
//!    "A" and "B" are two names for the same [`ReentrantLock`], so there is no
//!    second lock to wait for, and the thread holding it may take it again.
//! 2. **One global lock order**: both threads take A before B, so whoever
//!    holds A never waits for a thread that holds B without A.
//!
//! Two more parts use the run-time deadlock diagnostics
//! ([`verisync::deadlock`]), so they need the `deadlock-detection` feature:
//!
//! ```text
//! cargo run --release --example deadlock --features deadlock-detection
//! ```
//!
//! - **Part 4, the risk without the deadlock**: the same two opposite orders,
//!   but this run happens not to deadlock (the second thread starts after the
//!   first is done). `deadlock::lock_order_violations()` reports the risk
//!   anyway, with both acquisition chains and their source lines: the bug is
//!   found before the unlucky run that would hang.
//! - **Part 5, the real thing**: both threads take their second lock with a
//!   plain `lock()`, no timeout, and really deadlock. A
//!   `deadlock::watchdog` notices within a period and prints who holds what
//!   and waits where (lock names and `file:line`s); since the two threads can
//!   never be joined, the program then ends itself with `process::exit`.

use std::thread;
use std::time::{Duration, Instant};

use verisync::{Barrier, Mutex, ReentrantLock};
#[cfg(feature = "deadlock-detection")]
use {std::io::Write, std::sync::Arc, verisync::deadlock};

/// How long a thread waits for its second lock before giving up.
const PATIENCE: Duration = Duration::from_millis(500);

/// The pause between the two locks in the fixes (the lesson's `time.sleep`).
const PAUSE: Duration = Duration::from_millis(50);

/// Prints a line stamped with the milliseconds since `start`, from the
/// current (named) thread.
fn say(start: Instant, message: &str) {
    let me = thread::current();
    let name = me.name().unwrap_or("main");
    println!("[{:>4} ms] {name}: {message}", start.elapsed().as_millis());
}

/// What a thread of part 1 held and whether it got its second lock.
struct Attempt {
    thread: String,
    holds: &'static str,
    waits_for: &'static str,
    got_it: bool,
}

/// Part 1, one thread: take `first`, wait until the other thread holds its
/// first lock too, then try `second` for at most [`PATIENCE`].
fn take_both_or_give_up(
    first: &Mutex<()>,
    second: &Mutex<()>,
    both_hold_one: &Barrier,
    both_tried: &Barrier,
    start: Instant,
) -> Attempt {
    let (first_name, second_name) = (first.name().unwrap(), second.name().unwrap());
    let held = first.lock();
    say(start, &format!("took {first_name}"));
    both_hold_one.wait().expect("nobody breaks this barrier");
    say(
        start,
        &format!(
            "wants {second_name} too; waits up to {} ms",
            PATIENCE.as_millis()
        ),
    );
    let got_it = match second.try_lock_for(PATIENCE) {
        Some(_both) => {
            say(start, &format!("took {second_name}"));
            true
        }
        None => {
            say(
                start,
                &format!("gave up on {second_name}, still holding {first_name}"),
            );
            false
        }
    };
    // Keep holding the first lock until both have tried, so the two
    // reports describe the same moment.
    both_tried.wait().expect("nobody breaks this barrier");
    drop(held);
    Attempt {
        thread: thread::current().name().unwrap().to_string(),
        holds: first_name,
        waits_for: second_name,
        got_it,
    }
}

fn part1_the_deadlock() -> bool {
    println!("Part 1: thread-1 takes A then B; thread-2 takes B then A.");
    println!(
        "Each takes its first lock and waits until the other holds one too (the lesson's sleep)."
    );
    let a = Mutex::with_name("A", ());
    let b = Mutex::with_name("B", ());
    let (both_hold_one, both_tried) = (Barrier::new(2), Barrier::new(2));
    let start = Instant::now();
    let attempts: Vec<Attempt> = thread::scope(|scope| {
        let spawn = |name: &str, first, second| {
            let (both_hold_one, both_tried) = (&both_hold_one, &both_tried);
            thread::Builder::new()
                .name(name.to_string())
                .spawn_scoped(scope, move || {
                    take_both_or_give_up(first, second, both_hold_one, both_tried, start)
                })
                .expect("spawn a thread")
        };
        let threads = [spawn("thread-1", &a, &b), spawn("thread-2", &b, &a)];
        threads.map(|t| t.join().unwrap()).into()
    });

    // Each thread that timed out holds one lock and waits for another. If
    // every thread's wanted lock is held by another stuck thread, the
    // waits form a cycle: a deadlock.
    let stuck = attempts.iter().filter(|a| !a.got_it).count();
    let cycle = stuck == attempts.len()
        && attempts
            .iter()
            .all(|a| attempts.iter().any(|other| other.holds == a.waits_for));
    println!();
    if cycle {
        let report: Vec<String> = attempts
            .iter()
            .map(|a| {
                format!(
                    "{} holds {} and waits for {}",
                    a.thread, a.holds, a.waits_for
                )
            })
            .collect();
        println!("deadlock detected: {}", report.join("; "));
        println!(
            "Each thread holds the lock the other needs and will not let go before it gets\n\
             the other one: a cycle of waiting that nothing can break. With lock() instead\n\
             of try_lock_for(), both would wait forever and this program would hang here."
        );
    } else {
        println!("No deadlock this time ({stuck} of 2 threads timed out).");
    }
    cycle
}

/// Fix 1, one thread: "A" and "B" are the same reentrant lock.
fn take_shared_twice(lock: &ReentrantLock<()>, first: &str, second: &str, start: Instant) -> bool {
    say(start, &format!("wants {first}"));
    let _first = lock.lock();
    say(start, &format!("took {first}"));
    thread::sleep(PAUSE);
    match lock.try_lock_for(PATIENCE) {
        Some(_second) => {
            say(
                start,
                &format!("took {second}: the same lock, already its own (held twice)"),
            );
            say(start, "works, then releases both");
            true
        }
        None => {
            say(start, &format!("FAILED to take {second}"));
            false
        }
    }
}

fn part2_one_reentrant_lock() -> bool {
    println!("\nFix 1: one shared reentrant lock (mutexA = mutexB = RLock()).");
    let shared = ReentrantLock::with_name("A=B", ());
    // Two names, one lock.
    let (lock_a, lock_b) = (&shared, &shared);
    let start = Instant::now();
    let done = thread::scope(|scope| {
        let t1 = thread::Builder::new()
            .name("thread-1".into())
            .spawn_scoped(scope, move || take_shared_twice(lock_a, "A", "B", start))
            .expect("spawn a thread");
        let t2 = thread::Builder::new()
            .name("thread-2".into())
            .spawn_scoped(scope, move || take_shared_twice(lock_b, "B", "A", start))
            .expect("spawn a thread");
        [t1.join().unwrap(), t2.join().unwrap()]
    });
    let ok = done == [true, true];
    if ok {
        println!(
            "fix 1 done: both threads finished. There is only one lock, so nobody can hold\n\
             \"one of the two\" while waiting for \"the other\"; the owner just takes it again."
        );
    }
    ok
}

/// Fix 2, one thread: always A before B.
fn take_in_order(a: &Mutex<()>, b: &Mutex<()>, start: Instant) -> bool {
    say(start, "wants A");
    let _a = a.lock();
    say(start, "took A");
    thread::sleep(PAUSE);
    match b.try_lock_for(PATIENCE) {
        Some(_b) => {
            say(start, "took B; works, then releases both");
            true
        }
        None => {
            say(start, "FAILED to take B");
            false
        }
    }
}

fn part3_one_lock_order() -> bool {
    println!("\nFix 2: one global lock order (everyone takes A before B).");
    let a = Mutex::with_name("A", ());
    let b = Mutex::with_name("B", ());
    let start = Instant::now();
    let done = thread::scope(|scope| {
        let spawn = |name: &str| {
            let (a, b) = (&a, &b);
            thread::Builder::new()
                .name(name.to_string())
                .spawn_scoped(scope, move || take_in_order(a, b, start))
                .expect("spawn a thread")
        };
        let threads = [spawn("thread-1"), spawn("thread-2")];
        threads.map(|t| t.join().unwrap())
    });
    let ok = done == [true, true];
    if ok {
        println!(
            "fix 2 done: both threads finished. Whoever holds A can always get B, because\n\
             nobody holds B without already holding A: the waits can never form a cycle."
        );
    }
    ok
}

/// Part 4, one thread: moves `amount` from one account to the other, taking
/// the `from` account's lock first.
#[cfg(feature = "deadlock-detection")]
fn transfer(from: &Mutex<u64>, to: &Mutex<u64>, amount: u64, start: Instant) {
    let mut from_balance = from.lock();
    let mut to_balance = to.lock();
    *from_balance -= amount;
    *to_balance += amount;
    let (from_name, to_name) = (from.name().unwrap(), to.name().unwrap());
    say(
        start,
        &format!("moved {amount} from {from_name} to {to_name}"),
    );
}

#[cfg(feature = "deadlock-detection")]
fn part4_the_risk_without_a_deadlock() -> bool {
    println!("\nPart 4: the same opposite orders, in a run that happens not to deadlock.");
    println!(
        "thread-1 moves money from savings to checking (savings first), then thread-2 from\n\
         checking to savings (checking first). thread-2 starts after thread-1 is done, so\n\
         nobody ever waits."
    );
    let savings = Mutex::with_name("savings", 100);
    let checking = Mutex::with_name("checking", 100);
    let start = Instant::now();
    thread::scope(|scope| {
        for (name, from, to) in [
            ("thread-1", &savings, &checking),
            ("thread-2", &checking, &savings),
        ] {
            thread::Builder::new()
                .name(name.to_string())
                .spawn_scoped(scope, move || transfer(from, to, 10, start))
                .expect("spawn a thread")
                .join()
                .unwrap();
        }
    });
    let risks: Vec<_> = deadlock::lock_order_violations()
        .into_iter()
        .filter(|risk| {
            risk.steps
                .iter()
                .any(|step| step.first.lock.name == Some("savings"))
        })
        .collect();
    println!("Both transfers finished. lock_order_violations() still reports the risk:");
    for risk in &risks {
        println!("{risk}");
    }
    if !risks.is_empty() {
        println!(
            "Had thread-2 started a moment earlier, each could have held one account and waited\n\
             for the other. The report names both orders and where each lock was taken, so\n\
             the fix (one order for every transfer) can be made before any run hangs."
        );
    }
    !risks.is_empty()
}

#[cfg(feature = "deadlock-detection")]
fn part5_a_real_deadlock_caught_by_the_watchdog() -> ! {
    const PERIOD: Duration = Duration::from_millis(100);
    println!("\nPart 5: the lesson with a plain lock() for the second lock: a real deadlock.");
    println!(
        "A watchdog (deadlock::watchdog) checks every {} ms.",
        PERIOD.as_millis()
    );
    let _watchdog = deadlock::watchdog(PERIOD, |found| {
        for cycle in found {
            println!("watchdog: {cycle}");
        }
        println!(
            "Both threads wait in lock(), which has no timeout: they would wait forever and\n\
             could never be joined. The watchdog found the cycle without disturbing them; the\n\
             program now ends itself (process::exit), a clean way out of a deadlocked process."
        );
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    });
    let a = Arc::new(Mutex::with_name("A", ()));
    let b = Arc::new(Mutex::with_name("B", ()));
    let both_hold_one = Arc::new(Barrier::new(2));
    let start = Instant::now();
    for (name, first, second) in [("thread-1", &a, &b), ("thread-2", &b, &a)] {
        let (first, second) = (Arc::clone(first), Arc::clone(second));
        let both_hold_one = Arc::clone(&both_hold_one);
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let (first_name, second_name) = (first.name().unwrap(), second.name().unwrap());
                let _first = first.lock();
                say(start, &format!("took {first_name}"));
                both_hold_one.wait().expect("nobody breaks this barrier");
                say(start, &format!("wants {second_name}: lock(), no timeout"));
                let _second = second.lock();
                say(
                    start,
                    &format!("took {second_name}: no deadlock after all?"),
                );
            })
            .expect("spawn a thread");
    }
    // The watchdog ends the process well before this.
    thread::sleep(Duration::from_secs(20));
    eprintln!("unexpected: the watchdog did not report the deadlock within 20 s");
    std::process::exit(1);
}

fn main() -> std::process::ExitCode {
    let deadlocked = part1_the_deadlock();
    let fix1 = part2_one_reentrant_lock();
    let fix2 = part3_one_lock_order();
    if !(deadlocked && fix1 && fix2) {
        eprintln!("unexpected: deadlock shown {deadlocked}, fix 1 ok {fix1}, fix 2 ok {fix2}");
        return std::process::ExitCode::FAILURE;
    }
    println!(
        "\nAll three parts finished: the deadlock was shown, and both fixes ran to completion."
    );
    #[cfg(feature = "deadlock-detection")]
    {
        if !part4_the_risk_without_a_deadlock() {
            eprintln!("unexpected: lock_order_violations() did not report the opposite orders");
            return std::process::ExitCode::FAILURE;
        }
        part5_a_real_deadlock_caught_by_the_watchdog()
    }
    #[cfg(not(feature = "deadlock-detection"))]
    {
        println!(
            "\nParts 4 and 5 (the risk reported without a deadlock, and a real deadlock caught by\n\
             a watchdog) need the diagnostics:\n\
             cargo run --release --example deadlock --features deadlock-detection"
        );
        std::process::ExitCode::SUCCESS
    }
}
