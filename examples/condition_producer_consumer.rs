//! # Producers and consumers: a condition variable over a queue
//!
//! The lesson: a [`Condition`] lets a thread sleep until some state guarded
//! by a lock changes — Python's `threading.Condition` with `wait_for`.
//!
//! ```text
//! cargo run --release --example condition_producer_consumer
//! ```
//!
//! A `Mutex<Kitchen>` holds a queue of dishes and a `closed` flag. Two cooks
//! (producers) put dishes in the queue, each time calling `notify_one` to
//! wake one waiter. Three waiters (consumers) take dishes out; when the
//! queue is empty they sleep in `wait_while(queue is empty and not closed)`,
//! which releases the lock while sleeping and re-checks the condition after
//! every wake-up. When the cooks are done, the kitchen closes and
//! `notify_all` wakes every waiter so they can go home. At the end, every
//! dish cooked was served exactly once.

use std::collections::VecDeque;
use std::thread;
use std::time::{Duration, Instant};

use verisync::{Condition, Mutex};

const COOKS: usize = 2;
const DISHES_PER_COOK: usize = 8;
const WAITERS: usize = 3;

/// What the lock guards.
struct Kitchen {
    /// Dishes ready to serve: (cook, dish number).
    ready: VecDeque<(usize, usize)>,
    /// No more dishes will come.
    closed: bool,
}

/// Prints a line stamped with the milliseconds since the start.
fn say(start: Instant, message: &str) {
    println!("[{:>4} ms] {message}", start.elapsed().as_millis());
}

/// A producer: cooks its dishes, one every 35–55 ms.
fn cook(id: usize, kitchen: &Mutex<Kitchen>, dish_ready: &Condition, start: Instant) {
    for dish in 1..=DISHES_PER_COOK {
        thread::sleep(Duration::from_millis(
            35 + ((id * 7 + dish * 13) % 20) as u64,
        ));
        let waiting = {
            let mut kitchen = kitchen.lock();
            kitchen.ready.push_back((id, dish));
            kitchen.ready.len()
        };
        let woken = dish_ready.notify_one();
        say(
            start,
            &format!(
                "cook {id} puts dish {id}.{dish} out (ready: {waiting}){}",
                if woken == 1 {
                    "; notify_one wakes a waiter"
                } else {
                    ""
                }
            ),
        );
    }
}

/// A consumer: serves dishes until the kitchen is closed and empty.
/// Returns the dishes it served.
fn waiter(
    id: usize,
    kitchen: &Mutex<Kitchen>,
    dish_ready: &Condition,
    start: Instant,
) -> Vec<(usize, usize)> {
    let mut served = Vec::new();
    loop {
        let dish = {
            let mut kitchen = kitchen.lock();
            if kitchen.ready.is_empty() && !kitchen.closed {
                say(start, &format!("waiter {id} finds no dish and waits"));
            }
            // Sleeps with the lock released; returns with it held, once
            // there is a dish or the kitchen has closed.
            dish_ready.wait_while(&mut kitchen, |k| k.ready.is_empty() && !k.closed);
            match kitchen.ready.pop_front() {
                Some(dish) => dish,
                None => break, // closed and nothing left
            }
        };
        say(
            start,
            &format!("waiter {id} serves dish {}.{}", dish.0, dish.1),
        );
        thread::sleep(Duration::from_millis(30)); // serving, without the lock
        served.push(dish);
    }
    say(
        start,
        &format!("waiter {id} goes home: kitchen closed, queue empty"),
    );
    served
}

fn main() {
    println!("{COOKS} cooks make {DISHES_PER_COOK} dishes each; {WAITERS} waiters serve them.\n");
    let kitchen = Mutex::with_name(
        "kitchen",
        Kitchen {
            ready: VecDeque::new(),
            closed: false,
        },
    );
    let dish_ready = Condition::new();
    let start = Instant::now();

    let served: Vec<Vec<(usize, usize)>> = thread::scope(|scope| {
        let (kitchen, dish_ready) = (&kitchen, &dish_ready);
        let waiters: Vec<_> = (1..=WAITERS)
            .map(|id| scope.spawn(move || waiter(id, kitchen, dish_ready, start)))
            .collect();
        let cooks: Vec<_> = (1..=COOKS)
            .map(|id| scope.spawn(move || cook(id, kitchen, dish_ready, start)))
            .collect();
        for cook in cooks {
            cook.join().unwrap();
        }
        // Close under the lock, then wake everyone: a waiter re-checks its
        // condition, sees `closed`, and leaves once the queue is empty.
        kitchen.lock().closed = true;
        let woken = dish_ready.notify_all();
        say(
            start,
            &format!("kitchen closes; notify_all wakes {woken} waiting waiter(s)"),
        );
        waiters.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let produced = COOKS * DISHES_PER_COOK;
    let mut all: Vec<(usize, usize)> = served.iter().flatten().copied().collect();
    let consumed = all.len();
    all.sort_unstable();
    all.dedup();
    println!();
    for (id, dishes) in served.iter().enumerate() {
        println!("waiter {} served {} dishes", id + 1, dishes.len());
    }
    println!(
        "produced {produced}, consumed {consumed}, distinct {}",
        all.len()
    );
    assert_eq!(consumed, produced, "every dish is served");
    assert_eq!(all.len(), produced, "no dish is served twice");
    println!("Every dish cooked was served exactly once.");
}
