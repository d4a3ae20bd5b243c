//! Bounded stress tests of the queues: producers and consumers on real
//! threads hammering `JoinableQueue` in every order, each test asserting
//! its invariants throughout and at the end. Apart from `stress.rs` (the
//! lock family) so the queues' mutation runs can run them alone. Sized to
//! finish in a second or two in a debug build; `--release` multiplies the
//! iterations (`common::SCALE`). Every test runs under a watchdog, so a lost
//! wake-up fails it instead of hanging the suite.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{join_scoped, with_progress_watchdog, with_watchdog, Rng, PATIENCE, SCALE};

fn stress_limit() -> Duration {
    PATIENCE * 3
}

/// The unbounded FIFO (a lock-free list of blocks): producers and consumers
/// on real threads cross hundreds of block boundaries, consumers mixing
/// blocking, timed and non-blocking gets. Every item is got exactly once
/// (items are boxed, so a double read is a double free that the allocator
/// or the count notices), each consumer sees each producer's items in the
/// order they were put, and a graceful shutdown lets the consumers drain
/// the rest.
#[test]
fn unbounded_fifo_many_producers_and_consumers_lose_and_duplicate_nothing() {
    with_watchdog(stress_limit(), || {
        const PRODUCERS: usize = 3;
        const CONSUMERS: usize = 3;
        let per_producer = 20_000 * SCALE;
        let queue = verisync::JoinableQueue::<Box<(usize, usize)>>::new();
        let mut consumed: Vec<(usize, usize)> = std::thread::scope(|scope| {
            let consumers: Vec<_> = (0..CONSUMERS)
                .map(|consumer| {
                    let queue = &queue;
                    scope.spawn(move || {
                        let mut rng = Rng::new(100 + consumer);
                        let mut last_seen = [None::<usize>; PRODUCERS];
                        let mut got = Vec::new();
                        loop {
                            let item = match rng.below(3) {
                                0 => queue.get().map_err(|_| verisync::GetError::ShutDown),
                                1 => queue.get_timeout(Duration::from_micros(50)),
                                _ => queue.try_get(),
                            };
                            match item {
                                Ok(item) => {
                                    let (producer, sequence) = *item;
                                    assert!(
                                        last_seen[producer].is_none_or(|last| last < sequence),
                                        "producer {producer}'s items came out of order"
                                    );
                                    last_seen[producer] = Some(sequence);
                                    got.push((producer, sequence));
                                    queue.task_done().unwrap();
                                }
                                Err(verisync::GetError::ShutDown) => return got,
                                Err(verisync::GetError::Empty) => {}
                            }
                        }
                    })
                })
                .collect();
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|producer| {
                    let queue = &queue;
                    scope.spawn(move || {
                        for sequence in 0..per_producer {
                            queue.put(Box::new((producer, sequence))).unwrap();
                        }
                    })
                })
                .collect();
            for producer in producers {
                join_scoped(producer);
            }
            queue.join();
            queue.shutdown();
            consumers.into_iter().flat_map(join_scoped).collect()
        });
        consumed.sort_unstable();
        let expected: Vec<(usize, usize)> = (0..PRODUCERS)
            .flat_map(|producer| (0..per_producer).map(move |sequence| (producer, sequence)))
            .collect();
        assert!(consumed == expected, "items lost or got twice");
        assert_eq!(queue.unfinished_tasks(), 0);
    });
}

/// Bounded queues of every order at capacity 2, with blocking puts and
/// gets only: producers keep finding the queue full and consumers empty,
/// so nearly every put and get goes through a wait list's handshake. A
/// joiner waits for "all done" over and over while the items flow. A lost
/// wake-up shows as the progress watchdog firing (no item consumed for
/// `PATIENCE`); a lost or doubled item as the final comparison. (Not a
/// total-time limit: pinned to one CPU beside a busy loop nearly every put
/// and get waits for a woken thread to get the CPU, 0.4–0.5 ms an item
/// here as with a `crossbeam_channel::bounded(2)`; see
/// `tests/oversubscribed.rs`.) (On x86 every read-modify-write is a full barrier, so
/// this cannot catch a too-weak ordering in the handshake; the loom queue
/// tests do.)
#[test]
fn bounded_queues_of_every_order_wake_every_blocked_party() {
    type Build = fn() -> verisync::JoinableQueue<u64>;
    let orders: [(&str, Build); 3] = [
        ("fifo", || verisync::JoinableQueue::bounded(2)),
        ("lifo", || verisync::JoinableQueue::lifo_bounded(2)),
        ("priority", || verisync::JoinableQueue::priority_bounded(2)),
    ];
    for (name, build) in orders {
        with_progress_watchdog(PATIENCE, move |progress| {
            const PRODUCERS: u64 = 2;
            const CONSUMERS: usize = 2;
            let per_producer = 2_000 * SCALE as u64;
            let queue = build();
            let producers_finished = AtomicBool::new(false);
            let mut consumed: Vec<u64> = std::thread::scope(|scope| {
                let consumers: Vec<_> = (0..CONSUMERS)
                    .map(|_| {
                        let queue = &queue;
                        scope.spawn(move || {
                            let mut got = Vec::new();
                            while let Ok(item) = queue.get() {
                                got.push(item);
                                queue.task_done().unwrap();
                                progress.tick();
                            }
                            got
                        })
                    })
                    .collect();
                // Returns only if every `join` returns: the watchdog checks.
                let joiner = {
                    let (queue, producers_finished) = (&queue, &producers_finished);
                    scope.spawn(move || loop {
                        queue.join();
                        if producers_finished.load(Ordering::SeqCst) {
                            break;
                        }
                    })
                };
                let producers: Vec<_> = (0..PRODUCERS)
                    .map(|producer| {
                        let queue = &queue;
                        scope.spawn(move || {
                            for sequence in 0..per_producer {
                                queue.put(producer * per_producer + sequence).unwrap();
                            }
                        })
                    })
                    .collect();
                for producer in producers {
                    join_scoped(producer);
                }
                queue.join();
                producers_finished.store(true, Ordering::SeqCst);
                join_scoped(joiner);
                queue.shutdown();
                consumers.into_iter().flat_map(join_scoped).collect()
            });
            consumed.sort_unstable();
            let expected: Vec<u64> = (0..PRODUCERS * per_producer).collect();
            assert!(consumed == expected, "{name}: items lost or got twice");
            assert_eq!(queue.unfinished_tasks(), 0, "{name}");
        });
    }
}

/// Issue 12, defect 1, on real threads: producers and consumers that only
/// `try_get` on the unbounded FIFO, so getters often race a push that is
/// installing the next block. A getter used to be able to move past the
/// tail there: `len()` then read `usize::MAX` and the getter waited for a
/// position nobody had pushed — until some later put, or forever once the
/// queue was shut down (the watchdog fires). Runs for a bounded time, then
/// shuts down with the producers done; the consumers must drain everything
/// and then see `ShutDown`. Items are checked by count and sum per
/// producer (storing millions of them would cost more than the test), and
/// each consumer checks that each producer's items reach it in order.
///
/// The window is a few instructions of the pusher, so this finds the old
/// bug only when a pusher is descheduled inside it: it was reported within
/// 10 s in 2 of 3 runs, but on a loaded two-core machine it did not show in
/// several 4 s runs. The deterministic check is the loom model
/// `list_getters_racing_a_last_slot_push_never_pass_the_tail`.
#[test]
fn unbounded_fifo_try_get_never_passes_the_tail() {
    with_watchdog(stress_limit(), || {
        const PRODUCERS: usize = 4;
        const CONSUMERS: usize = 4;
        let run_for = Duration::from_secs(if cfg!(debug_assertions) { 1 } else { 4 });
        let queue = verisync::JoinableQueue::<(usize, usize)>::new();
        let put_counts = std::sync::Mutex::new([0usize; PRODUCERS]);
        // Per producer: (items got, sum of their sequence numbers).
        let got_per_producer: Vec<[(usize, usize); PRODUCERS]> = std::thread::scope(|scope| {
            let consumers: Vec<_> = (0..CONSUMERS)
                .map(|_| {
                    let queue = &queue;
                    scope.spawn(move || {
                        let mut got = [(0usize, 0usize); PRODUCERS];
                        let mut last_seen = [None::<usize>; PRODUCERS];
                        loop {
                            let result = queue.try_get();
                            let len = queue.len();
                            assert!(len < 1 << 60, "len() = {len}: a getter passed the tail");
                            match result {
                                Ok((producer, sequence)) => {
                                    assert!(
                                        last_seen[producer].is_none_or(|last| last < sequence),
                                        "producer {producer}'s items came out of order"
                                    );
                                    last_seen[producer] = Some(sequence);
                                    got[producer].0 += 1;
                                    got[producer].1 += sequence;
                                }
                                Err(verisync::GetError::Empty) => std::hint::spin_loop(),
                                Err(verisync::GetError::ShutDown) => return got,
                            }
                        }
                    })
                })
                .collect();
            let deadline = Instant::now() + run_for;
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|producer| {
                    let (queue, put_counts) = (&queue, &put_counts);
                    scope.spawn(move || {
                        let mut sequence = 0;
                        while sequence % 64 != 0 || Instant::now() < deadline {
                            queue.put((producer, sequence)).unwrap();
                            sequence += 1;
                        }
                        put_counts.lock().unwrap()[producer] = sequence;
                    })
                })
                .collect();
            for producer in producers {
                join_scoped(producer);
            }
            queue.shutdown();
            consumers.into_iter().map(join_scoped).collect()
        });
        let put_counts = put_counts.into_inner().unwrap();
        for (producer, &put) in put_counts.iter().enumerate() {
            let (count, sum) = got_per_producer.iter().fold((0, 0), |(count, sum), got| {
                (count + got[producer].0, sum + got[producer].1)
            });
            assert_eq!(count, put, "producer {producer}: items lost or got twice");
            assert_eq!(
                sum,
                put * put.saturating_sub(1) / 2,
                "producer {producer}: wrong items"
            );
        }
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.try_get(), Err(verisync::GetError::ShutDown));
    });
}

/// `join` returns only after the last `task_done`: a consumer that takes
/// its time over each task is still counting when a `join` that does not
/// wait would return. (Only the loom suite caught a `join` that returned at
/// once; now the std tests do too.)
#[test]
fn join_returns_only_after_the_last_task_done() {
    with_watchdog(PATIENCE, || {
        let queue = verisync::JoinableQueue::new();
        for item in 0..3 {
            queue.put(item).unwrap();
        }
        let done = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..3 {
                    queue.get().unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                    done.fetch_add(1, Ordering::SeqCst);
                    queue.task_done().unwrap();
                }
            });
            queue.join();
            assert_eq!(
                done.load(Ordering::SeqCst),
                3,
                "join returned before every task was done"
            );
        });
    });
}

/// Two getters race `try_get` for one item of a LIFO or priority queue
/// (the locked storage): the loser sees the queue empty only after the
/// winner took the item under the lock. It must answer by the queue's state
/// — `Empty` while the queue is open, `ShutDown` once it is shut down —
/// never the other. (Mutation testing: answering that race from a constant
/// survived every other test; this catches either constant within about
/// 15,000 rounds here, so it runs 40,000 per case.)
///
/// One racer is the test's own thread, the other is started once and meets
/// it at a barrier every round: starting two threads per round made 160,000
/// thread starts, which outlasted the watchdog on a slow CI machine.
#[test]
fn the_loser_of_a_race_for_the_last_item_is_told_the_queue_state() {
    use std::sync::{Arc, Barrier, Mutex};

    type Queue = verisync::JoinableQueue<usize>;

    with_watchdog(stress_limit(), || {
        let rounds = 2_000 * SCALE;
        // The round's queue; `None` tells the other racer to stop.
        let current: Mutex<Option<Arc<Queue>>> = Mutex::new(None);
        let other_answer = Mutex::new(None);
        // Twice a round: to start the race, and once both have answered.
        let meeting = Barrier::new(2);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| loop {
                meeting.wait();
                let Some(queue) = current.lock().unwrap().clone() else {
                    return;
                };
                let answer = queue.try_get();
                *other_answer.lock().unwrap() = Some(answer);
                meeting.wait();
            });
            // A failed check stops the other racer before it is reported:
            // a panic here would leave it waiting at the barrier forever.
            let mut failure = None;
            'cases: for lifo in [true, false] {
                for shut in [false, true] {
                    for round in 0..rounds {
                        let queue = Arc::new(if lifo {
                            Queue::lifo()
                        } else {
                            Queue::priority()
                        });
                        queue.put(round).unwrap();
                        if shut {
                            queue.shutdown();
                        }
                        *current.lock().unwrap() = Some(Arc::clone(&queue));
                        meeting.wait(); // the race starts
                        let answer = queue.try_get();
                        meeting.wait(); // both have answered
                        let results = [answer, other_answer.lock().unwrap().take().unwrap()];
                        let expected = if shut {
                            verisync::GetError::ShutDown
                        } else {
                            verisync::GetError::Empty
                        };
                        let losers: Vec<_> =
                            results.iter().filter(|result| result.is_err()).collect();
                        if losers != [&Err(expected)] {
                            failure = Some(format!(
                                "one item, two getters (lifo: {lifo}, shut down: {shut}, \
                                 round {round}): exactly one must lose with {expected:?}, \
                                 got {results:?}"
                            ));
                            break 'cases;
                        }
                    }
                }
            }
            *current.lock().unwrap() = None;
            meeting.wait();
            join_scoped(other);
            if let Some(failure) = failure {
                panic!("{failure}");
            }
        });
    });
}
