//! # Producers and consumers: a joinable work queue
//!
//! The lesson: Python's `queue.Queue` hands work from producers to
//! consumers. Consumers call `task_done()` for each item they finish, and
//! `join()` waits until every item put has been finished. In Python the
//! consumers are daemon threads looping forever on `get()`; the program just
//! exits under them once `join()` returns.
//!
//! ```text
//! cargo run --release --example producer_consumer
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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use verisync::JoinableQueue;

const COOKS: usize = 2;
const DISHES_PER_COOK: usize = 6;
const EATERS: usize = 2;
/// How many dishes fit on the pass between kitchen and dining room.
const PASS: usize = 3;

const MENU: [&str; 6] = ["soup", "noodles", "dumplings", "curry", "salad", "pie"];

/// A pseudo-random delay in `min..min + spread` ms, derived from numbers
/// (no random crate needed for a bit of irregularity).
fn delay(seed: usize, min: u64, spread: u64) -> Duration {
    let mixed = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    Duration::from_millis(min + mixed % spread)
}

/// Prints a line stamped with the milliseconds since the start.
fn say(start: Instant, message: &str) {
    println!("[{:>4} ms] {message}", start.elapsed().as_millis());
}

/// A producer: cooks its dishes and puts each on the pass.
fn cook(id: usize, pass: &JoinableQueue<String>, start: Instant) {
    for n in 1..=DISHES_PER_COOK {
        thread::sleep(delay(id * 31 + n, 20, 50));
        let dish = format!("{} #{id}.{n}", MENU[(id + n) % MENU.len()]);
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
fn eater(id: usize, pass: &JoinableQueue<String>, eaten: &AtomicUsize, start: Instant) -> usize {
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

fn main() {
    println!(
        "{COOKS} cooks make {DISHES_PER_COOK} dishes each; {EATERS} eaters eat them; \
         the pass holds {PASS}.\n"
    );
    let pass = JoinableQueue::bounded(PASS);
    let eaten = AtomicUsize::new(0);
    let start = Instant::now();

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
