//! shuttle: random operation scripts on every kind of `JoinableQueue` —
//! the unbounded list and the bounded ring (FIFO), LIFO and priority,
//! bounded and not — with 3–5 threads besides the main one.
//!
//! Each execution picks its shape and script from shuttle's controlled
//! random source (so a failure replays): 1–2 producers put their items
//! with `put`, `put_timeout` or `try_put`; 2–3 consumers take them with
//! `get`, `get_timeout`, `try_get` or a `get_task` guard and mark each
//! done; the main thread either shuts down gracefully once the producers
//! are done and every task is finished, or calls `shutdown_now` at a random
//! moment. Then:
//!
//! - the items got, the items handed back by `shutdown_now` and the items
//!   refused with `ShutDown` are exactly the items offered, each once;
//! - a FIFO queue hands each consumer each producer's items in order;
//! - `unfinished_tasks` ends at 0 and `join` returns;
//! - nobody stays blocked (shuttle fails a deadlocked execution).

use std::time::Duration;

use shuttle::sync::Arc;
use shuttle::thread;
use verisync::{GetError, JoinableQueue, PutError};
use verisync_shuttle_tests::{check, let_others_run, random_below};

/// An item: (producer, sequence number).
type Item = (usize, usize);

/// Items each producer offers.
const PER_PRODUCER: usize = 6;

/// A timeout long in name only: the model has no clock, and a timed wait
/// ends after a random number of scheduling rounds.
const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
enum Kind {
    List,
    Ring,
    Lifo,
    LifoBounded,
    Priority,
    PriorityBounded,
}

impl Kind {
    /// A queue of this kind; bounded ones get a random capacity of 1–3.
    fn build(self) -> JoinableQueue<Item> {
        let capacity = 1 + random_below(3);
        match self {
            Kind::List => JoinableQueue::new(),
            Kind::Ring => JoinableQueue::bounded(capacity),
            Kind::Lifo => JoinableQueue::lifo(),
            Kind::LifoBounded => JoinableQueue::lifo_bounded(capacity),
            Kind::Priority => JoinableQueue::priority(),
            Kind::PriorityBounded => JoinableQueue::priority_bounded(capacity),
        }
    }

    fn is_fifo(self) -> bool {
        matches!(self, Kind::List | Kind::Ring)
    }
}

/// Offers `PER_PRODUCER` items; returns those refused because the queue
/// was shut down (the first refusal ends the script: later ones would be
/// refused too).
fn produce(queue: &JoinableQueue<Item>, producer: usize) -> Vec<Item> {
    let mut refused = Vec::new();
    for sequence in 0..PER_PRODUCER {
        let mut item = (producer, sequence);
        loop {
            let outcome = match random_below(3) {
                0 => queue
                    .put(item)
                    .map_err(|shut_down| PutError::ShutDown(shut_down.0)),
                1 => queue.put_timeout(item, TIMEOUT),
                _ => queue.try_put(item),
            };
            match outcome {
                Ok(()) => break,
                Err(PutError::Full(back)) => {
                    item = back;
                    let_others_run();
                }
                Err(PutError::ShutDown(back)) => {
                    refused.push(back);
                    refused.extend((sequence + 1..PER_PRODUCER).map(|later| (producer, later)));
                    return refused;
                }
            }
        }
    }
    refused
}

/// Takes items and marks each done until the queue is shut down and empty.
fn consume(queue: &JoinableQueue<Item>) -> Vec<Item> {
    let mut got = Vec::new();
    loop {
        let outcome = match random_below(4) {
            0 => queue.get().map_err(|_| GetError::ShutDown),
            1 => queue.get_timeout(TIMEOUT),
            2 => queue.try_get(),
            _ => match queue.get_task() {
                // The guard marks the task done when dropped.
                Ok(task) => {
                    got.push(*task);
                    continue;
                }
                Err(_) => Err(GetError::ShutDown),
            },
        };
        match outcome {
            Ok(item) => {
                got.push(item);
                queue.task_done().expect("one task_done per item got");
            }
            Err(GetError::Empty) => let_others_run(),
            Err(GetError::ShutDown) => return got,
        }
    }
}

fn run_script(kind: Kind) {
    let queue = Arc::new(kind.build());
    let producers = 1 + random_below(2);
    let consumers = 2 + random_below(2);
    let graceful = random_below(2) == 0;

    let consumer_threads: Vec<_> = (0..consumers)
        .map(|_| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || consume(&queue))
        })
        .collect();
    let producer_threads: Vec<_> = (0..producers)
        .map(|producer| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || produce(&queue, producer))
        })
        .collect();

    let mut handed_back = Vec::new();
    let refused: Vec<Item> = if graceful {
        let refused = producer_threads
            .into_iter()
            .flat_map(|producer| producer.join().unwrap())
            .collect();
        queue.join();
        assert_eq!(queue.unfinished_tasks(), 0, "join returned early");
        queue.shutdown();
        refused
    } else {
        for _ in 0..random_below(8) {
            let_others_run();
        }
        handed_back = queue.shutdown_now();
        producer_threads
            .into_iter()
            .flat_map(|producer| producer.join().unwrap())
            .collect()
    };
    let got: Vec<Vec<Item>> = consumer_threads
        .into_iter()
        .map(|consumer| consumer.join().unwrap())
        .collect();

    queue.join();
    assert_eq!(queue.unfinished_tasks(), 0, "a task count drifted");
    assert!(queue.is_empty(), "items left after shutdown and drain");
    if graceful {
        assert!(refused.is_empty(), "a put was refused before the shutdown");
    }
    if kind.is_fifo() {
        for items in &got {
            for producer in 0..producers {
                let sequence: Vec<usize> = items
                    .iter()
                    .filter(|(from, _)| *from == producer)
                    .map(|&(_, sequence)| sequence)
                    .collect();
                assert!(
                    sequence.windows(2).all(|pair| pair[0] < pair[1]),
                    "{kind:?}: producer {producer}'s items out of order: {sequence:?}"
                );
            }
        }
    }
    let mut all: Vec<Item> = got.into_iter().flatten().collect();
    all.extend(handed_back);
    all.extend(refused);
    all.sort_unstable();
    let offered: Vec<Item> = (0..producers)
        .flat_map(|producer| (0..PER_PRODUCER).map(move |sequence| (producer, sequence)))
        .collect();
    assert_eq!(all, offered, "{kind:?}: items lost or duplicated");
}

#[test]
// The known list defect (issue 12) makes this fail on this branch; the
// fix is in the queue's own branch. Remove this `ignore` once it is merged.
fn list_scripts() {
    check(|| run_script(Kind::List));
}

#[test]
fn ring_scripts() {
    check(|| run_script(Kind::Ring));
}

#[test]
fn lifo_scripts() {
    check(|| run_script(Kind::Lifo));
}

#[test]
fn lifo_bounded_scripts() {
    check(|| run_script(Kind::LifoBounded));
}

#[test]
fn priority_scripts() {
    check(|| run_script(Kind::Priority));
}

#[test]
fn priority_bounded_scripts() {
    check(|| run_script(Kind::PriorityBounded));
}
