//! loom: the sleep/wake protocol of `verisync::JoinableQueue`'s LIFO and
//! priority orders (`src/queue/locked.rs`): a waiter checks "empty?" or
//! "full?" and enqueues itself as a sleeper under the queue's mutex, and a
//! put or get reads the sleeper flag under that mutex and wakes one after
//! unlocking. No wake-up is lost when a put (or get) races a getter (or
//! putter) about to sleep, when a timeout races a wake, or on a shutdown.
//! A lost wake-up leaves a thread parked forever, which loom reports as a
//! deadlock.

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use verisync::{GetError, JoinableQueue, PutError};

fn bounded_model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(test);
}

/// Makes a queue of one locked order, bounded to the capacity given (or
/// unbounded for `None`).
type MakeQueue = fn(Option<usize>) -> JoinableQueue<u32>;

/// The locked orders, by name.
fn locked_queues() -> [(&'static str, MakeQueue); 2] {
    [
        ("lifo", |capacity| match capacity {
            None => JoinableQueue::lifo(),
            Some(capacity) => JoinableQueue::lifo_bounded(capacity),
        }),
        ("priority", |capacity| match capacity {
            None => JoinableQueue::priority(),
            Some(capacity) => JoinableQueue::priority_bounded(capacity),
        }),
    ]
}

/// A put racing a getter that found the queue empty and is about to
/// sleep: the getter is woken and gets the item, at every interleaving.
#[test]
fn a_put_wakes_a_getter_about_to_sleep() {
    for (order, make) in locked_queues() {
        println!("{order}");
        bounded_model(move || {
            let queue = Arc::new(make(None));
            let getter = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.get())
            };
            queue.put(7).unwrap();
            assert_eq!(getter.join().unwrap(), Ok(7));
            assert_eq!(queue.try_get(), Err(GetError::Empty));
        });
    }
}

/// A get racing a putter that found a bounded queue full and is about to
/// sleep: the putter is woken and its item is queued.
#[test]
fn a_get_wakes_a_putter_about_to_sleep() {
    for (order, make) in locked_queues() {
        println!("{order}");
        bounded_model(move || {
            let queue = Arc::new(make(Some(1)));
            queue.put(1).unwrap();
            let putter = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.put(2).map_err(|refused| refused.0))
            };
            assert_eq!(queue.get(), Ok(1));
            assert_eq!(putter.join().unwrap(), Ok(()));
            assert_eq!(queue.try_get(), Ok(2));
        });
    }
}

/// A timed getter and a blocking getter sleep on an empty LIFO; a put
/// races the timed one's timeout. Whatever the timed getter does (gets the
/// item, or times out before or after the put's wake-up), the wake-up is
/// not spent on it while the other sleeps beside a queued item: the main
/// thread puts a second item only if the timed getter took the first, so
/// the blocking getter returns only if the protocol woke it.
#[test]
fn a_timeout_racing_a_wake_up_leaves_it_for_the_other_sleeper() {
    bounded_model(|| {
        let queue = Arc::new(JoinableQueue::<u32>::lifo());
        let timed = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.get_timeout(Duration::from_secs(1)).ok())
        };
        let blocking = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.get().unwrap())
        };
        queue.put(1).unwrap();
        let timed_got = timed.join().unwrap();
        if timed_got.is_some() {
            queue.put(2).unwrap();
        }
        let blocking_got = blocking.join().unwrap();
        let left = queue.try_get().ok();
        let mut all: Vec<u32> = [timed_got, Some(blocking_got), left]
            .into_iter()
            .flatten()
            .collect();
        all.sort_unstable();
        let expected: &[u32] = if timed_got.is_some() { &[1, 2] } else { &[1] };
        assert_eq!(all, expected);
    });
}

/// A timed put on a full bounded LIFO racing a get: the item is queued or
/// handed back in `Full`, never lost, never twice.
#[test]
fn a_timed_put_racing_a_get_loses_nothing() {
    bounded_model(|| {
        let queue = Arc::new(JoinableQueue::lifo_bounded(1));
        queue.put(1u32).unwrap();
        let putter = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || match queue.put_timeout(2, Duration::from_secs(1)) {
                Ok(()) => None,
                Err(PutError::Full(item)) => Some(item),
                Err(PutError::ShutDown(_)) => panic!("nobody shut the queue down"),
            })
        };
        let first = queue.get().unwrap();
        let handed_back = putter.join().unwrap();
        let left = queue.try_get().ok();
        let mut all: Vec<u32> = [Some(first), handed_back, left]
            .into_iter()
            .flatten()
            .collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2]);
    });
}

/// `shutdown` racing a getter about to sleep on an empty queue and a
/// putter about to sleep on a full one wakes both (or they see it first).
#[test]
fn shutdown_wakes_sleeping_getters_and_putters() {
    for (order, make) in locked_queues() {
        println!("{order}");
        bounded_model(move || {
            let empty = Arc::new(make(None));
            let full = Arc::new(make(Some(1)));
            full.put(1).unwrap();
            let getter = {
                let empty = Arc::clone(&empty);
                thread::spawn(move || empty.get())
            };
            let putter = {
                let full = Arc::clone(&full);
                thread::spawn(move || full.put(2).map_err(|refused| refused.0))
            };
            empty.shutdown();
            full.shutdown();
            assert!(getter.join().unwrap().is_err());
            assert_eq!(putter.join().unwrap(), Err(2));
            assert_eq!(full.get(), Ok(1), "graceful shutdown still drains");
            assert_eq!(full.try_get(), Err(GetError::ShutDown));
        });
    }
}
