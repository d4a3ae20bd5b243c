//! shuttle: the unbounded FIFO queue (the lock-free list of blocks, two
//! slots per block under the model) loses, duplicates and reorders
//! nothing, across many block boundaries, with several producers and
//! consumers.

use shuttle::sync::Arc;
use shuttle::thread;
use verisync::JoinableQueue;
use verisync_shuttle_tests::check;

/// What a consumer got, in the order it got it: (producer, sequence).
type Got = Vec<(usize, usize)>;

/// Asserts that the consumers got exactly the items put — each producer's
/// `0..per_producer`, each once — and that every consumer got each
/// producer's items in the order they were put (FIFO).
fn assert_delivered_in_order(got: &[Got], producers: usize, per_producer: usize) {
    for (consumer, items) in got.iter().enumerate() {
        for producer in 0..producers {
            let sequence: Vec<usize> = items
                .iter()
                .filter(|(from, _)| *from == producer)
                .map(|&(_, sequence)| sequence)
                .collect();
            assert!(
                sequence.windows(2).all(|pair| pair[0] < pair[1]),
                "consumer {consumer} got producer {producer}'s items out of order: {sequence:?}"
            );
        }
    }
    let mut all: Got = got.iter().flatten().copied().collect();
    all.sort_unstable();
    let expected: Got = (0..producers)
        .flat_map(|producer| (0..per_producer).map(move |sequence| (producer, sequence)))
        .collect();
    assert_eq!(all, expected, "items lost or duplicated");
}

/// `producers` threads put `per_producer` items each; `consumers` threads
/// get and mark done until the queue is shut down and drained. The main
/// thread shuts the queue down once every producer has finished.
fn run_script(producers: usize, consumers: usize, per_producer: usize) {
    let queue = Arc::new(JoinableQueue::new());
    let consumer_threads: Vec<_> = (0..consumers)
        .map(|_| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut got = Got::new();
                while let Ok(item) = queue.get() {
                    got.push(item);
                    queue.task_done().expect("one task_done per get");
                }
                got
            })
        })
        .collect();
    let producer_threads: Vec<_> = (0..producers)
        .map(|producer| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                for sequence in 0..per_producer {
                    queue
                        .put((producer, sequence))
                        .expect("nobody shuts down before the producers finish");
                }
            })
        })
        .collect();
    for producer in producer_threads {
        producer.join().unwrap();
    }
    queue.join();
    assert_eq!(queue.unfinished_tasks(), 0, "join returned early");
    queue.shutdown();
    let got: Vec<Got> = consumer_threads
        .into_iter()
        .map(|consumer| consumer.join().unwrap())
        .collect();
    assert_delivered_in_order(&got, producers, per_producer);
    assert!(queue.is_empty());
}

/// The shape of the defect loom missed: one producer fills blocks while two
/// consumers race at each block boundary (a push of a block's last slot
/// that links the next block before it moves the tail lets a second
/// consumer claim a position beyond the tail).
#[test]
// The known list defect (issue 12) makes this fail on this branch; the
// fix is in the queue's own branch. Remove this `ignore` once it is merged.
fn one_producer_two_consumers_cross_block_boundaries() {
    check(|| run_script(1, 2, 8));
}

/// Three producers and three consumers, five blocks' worth of items each.
#[test]
// The known list defect (issue 12) makes this fail on this branch; the
// fix is in the queue's own branch. Remove this `ignore` once it is merged.
fn three_producers_three_consumers() {
    check(|| run_script(3, 3, 10));
}

/// Two producers, four consumers: consumers mostly wait on an empty queue,
/// so gets race with each put and each block change.
#[test]
// The known list defect (issue 12) makes this fail on this branch; the
// fix is in the queue's own branch. Remove this `ignore` once it is merged.
fn two_producers_four_consumers() {
    check(|| run_script(2, 4, 8));
}

/// How quickly each scheduler finds a failure of the 1-producer,
/// 2-consumer script: 20 runs of each scheduler, each stopping at its first
/// failure or after 2000 executions (`cargo test --release --test
/// queue_fifo_list -- --ignored --nocapture detection_rate`). It reports
/// and asserts nothing, so it is not part of the suite.
#[test]
#[ignore = "a measurement, not a check: run it by hand"]
fn detection_rate_of_the_one_producer_two_consumers_script() {
    use verisync_shuttle_tests::{detection_rate, pct_scheduler, random_scheduler};
    let script = || run_script(1, 2, 8);
    let random = detection_rate(20, 2000, random_scheduler, script);
    println!("random scheduler: {random:?}");
    let pct = detection_rate(20, 2000, pct_scheduler, script);
    println!("PCT scheduler:    {pct:?}");
}
