//! # Hang doctor: a program that hangs without any lock cycle, explained
//!
//! Not every hang is a deadlock between locks. Here a kitchen hangs:
//!
//! - the cook dies on a bad order after taking it with `get()` and before
//!   calling `task_done()`, so the manager's `orders.join()` waits forever;
//! - the waiters wait for an `Event` ("the orders are served") that only the
//!   manager sets, after its `join` returns — so nobody ever sets it;
//! - the cashier holds the till (a `Mutex`) while it waits with them.
//!
//! No thread waits for a lock another holds, so `deadlock::detect()` finds
//! nothing. `deadlock::blocked_threads()` still explains the hang: every
//! thread blocked in a verisync primitive, the operation, the source line of
//! the call, how long it has waited and the locks it holds. A "doctor"
//! thread prints that dump once some thread has waited for half a second,
//! and then ends the program (`process::exit`): the stuck threads could
//! never be joined.
//!
//! ```text
//! cargo run --release --example hang_doctor --features deadlock-detection
//! ```
//!
//! (The diagnostics exist only with the `deadlock-detection` feature; without
//! it cargo says that this example requires it.)

use std::io::Write;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use verisync::{deadlock, Event, JoinableQueue, Mutex};

/// How long a thread must have waited before the doctor calls it a hang.
const STUCK_FOR: Duration = Duration::from_millis(500);

/// How often the doctor looks.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Prints a line stamped with the milliseconds since `start`, from the
/// current (named) thread.
fn say(start: Instant, message: &str) {
    let me = thread::current();
    let name = me.name().unwrap_or("main");
    println!("[{:>4} ms] {name}: {message}", start.elapsed().as_millis());
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .expect("spawn a thread");
}

/// The doctor: waits until some thread has been blocked for [`STUCK_FOR`],
/// prints `blocked_threads()`, and ends the program.
fn doctor(start: Instant) -> ! {
    loop {
        thread::sleep(CHECK_EVERY);
        let dump = deadlock::blocked_threads();
        if dump.iter().any(|blocked| blocked.waited >= STUCK_FOR) {
            say(
                start,
                "some thread has not moved for 500 ms; blocked_threads() says:",
            );
            for blocked in &dump {
                println!("  {blocked}");
            }
            println!(
                "deadlock::detect() finds {} lock cycle(s): this hang is not a lock deadlock.",
                deadlock::detect().len()
            );
            println!(
                "Diagnosis: main waits in JoinableQueue::join for orders that nobody will ever\n\
                 mark done: the cook died holding the soup (taken with get_task(), its guard\n\
                 would have marked it done even in the panic) and no cook is left for the salad.\n\
                 The waiters and the cashier wait in Event::wait for an event that only main\n\
                 sets, after that join. The cashier also holds the till, so anyone who needed it\n\
                 would hang too."
            );
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        }
        if start.elapsed() > Duration::from_secs(20) {
            eprintln!("unexpected: nothing was stuck for 20 s");
            std::process::exit(1);
        }
    }
}

fn main() {
    let start = Instant::now();
    spawn("doctor", move || doctor(start));

    let orders = Arc::new(JoinableQueue::new());
    let served = Arc::new(Event::new());
    let till = Arc::new(Mutex::with_name("till", 0u64));

    spawn("cook", {
        let orders = Arc::clone(&orders);
        move || {
            // Quiet the panic message: the example reports it itself.
            std::panic::set_hook(Box::new(|_| {}));
            for order in orders.iter() {
                if order == "soup of the day" {
                    say(start, &format!("cannot cook {order:?}: dies (panics)"));
                    panic!("no soup today");
                }
                say(start, &format!("cooked {order:?}"));
                orders.task_done().expect("one task_done per get");
            }
        }
    });
    for name in ["waiter-1", "waiter-2"] {
        let served = Arc::clone(&served);
        spawn(name, move || {
            say(start, "waits until the orders are served");
            served.wait();
            say(start, "serves");
        });
    }
    spawn("cashier", {
        let (served, till) = (Arc::clone(&served), Arc::clone(&till));
        move || {
            let mut till = till.lock();
            say(
                start,
                "opens the till and waits until the orders are served",
            );
            served.wait();
            *till += 3;
        }
    });

    for order in ["bread", "soup of the day", "salad"] {
        orders.put(order).expect("the queue is open");
    }
    say(start, "put 3 orders; waits until all are done (join)");
    orders.join();
    served.set();
    say(start, "everything served (never printed: the cook died)");
}
