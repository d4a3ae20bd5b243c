//! A putter that finds a bounded queue full first yields while the queue is
//! more than three quarters full, so the getters drain a run of items (see
//! `JoinableQueue::let_getters_drain`). That wait is bounded: a getter that
//! frees one slot and stops must still let the putter in (a putter that
//! waited for the getters without a bound would never get to sleep), and a
//! timed put must take the slot rather than time out.

mod common;

use std::sync::mpsc;
use std::thread;

use common::{join_scoped, kernel_thread_id, wait_until_asleep, with_watchdog, PATIENCE};
use verisync::{JoinableQueue, PutError};

const CAPACITY: usize = 8;

/// Each bounded order, filled to its capacity.
fn full_queues() -> Vec<(&'static str, JoinableQueue<usize>)> {
    let queues = vec![
        ("fifo", JoinableQueue::bounded(CAPACITY)),
        ("lifo", JoinableQueue::lifo_bounded(CAPACITY)),
        ("priority", JoinableQueue::priority_bounded(CAPACITY)),
    ];
    for (_, queue) in &queues {
        for item in 0..CAPACITY {
            queue.put(item).unwrap();
        }
        assert!(queue.is_full());
    }
    queues
}

/// Starts `put` on a thread of `scope`, waits until that putter has given
/// up waiting for the getters to drain and sleeps (so the bound on that
/// wait held), frees one slot and returns what the put returned.
fn put_after_one_get(
    queue: &JoinableQueue<usize>,
    put: impl FnOnce(&JoinableQueue<usize>) -> Result<(), PutError<usize>> + Send,
) -> Result<(), PutError<usize>> {
    thread::scope(|scope| {
        let (tid_sender, tid) = mpsc::channel();
        let putter = scope.spawn(move || {
            tid_sender.send(kernel_thread_id()).unwrap();
            put(queue)
        });
        wait_until_asleep(tid.recv().unwrap());
        // One slot, and the queue stays above three quarters full.
        queue.get().unwrap();
        join_scoped(putter)
    })
}

#[test]
fn a_putter_takes_the_one_slot_that_a_getter_freed_before_it_stopped() {
    with_watchdog(2 * PATIENCE, || {
        for (order, queue) in full_queues() {
            let put = put_after_one_get(&queue, |queue| {
                queue
                    .put(100)
                    .map_err(|refused| PutError::ShutDown(refused.0))
            });
            assert_eq!(put, Ok(()), "{order}");
            assert_eq!(queue.len(), CAPACITY, "{order}");
            assert_eq!(queue.unfinished_tasks(), CAPACITY + 1, "{order}");
        }
    });
}

#[test]
fn a_timed_putter_takes_the_freed_slot_instead_of_timing_out() {
    with_watchdog(2 * PATIENCE, || {
        for (order, queue) in full_queues() {
            // A deadline far past the watchdog's: only the bound on the
            // wait for the getters, not the deadline, can end that wait.
            let put = put_after_one_get(&queue, |queue| queue.put_timeout(100, 10 * PATIENCE));
            assert_eq!(put, Ok(()), "{order}");
            assert_eq!(queue.len(), CAPACITY, "{order}");
        }
    });
}
