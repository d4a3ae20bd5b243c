//! `process::JoinableQueue` across real processes (Linux): items got
//! exactly once, blocking and waking, timeouts, shutdown, join with
//! task_done, SIGKILLed producers and consumers, garbage in its shared
//! memory, and a property test against the thread queue.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::arena::{arena_base, u32_at};
use common::{wait_for, with_watchdog, Rng, PATIENCE};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use verisync::process::{self, GetError, JoinableQueue, Lock, PutError, TasksLost, Value};

/// The queue object's layout (`src/process_shared/queue.rs`,
/// `src/raw/process_queue.rs`).
const HEAD_AT: usize = 32;
const USED_AT: usize = 36;
const ITEMS_AT: usize = 40;
const UNFINISHED_AT: usize = 44;
const JOURNAL_AT: usize = 56;
const RING_AT: usize = 128 + 1024 * 8;

/// A small ring, so that puts wrap around it often.
const SMALL: usize = 4096;

/// An item that knows whether it arrived whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    producer: u32,
    sequence: u32,
    payload: Vec<u8>,
    checksum: u64,
}

impl Item {
    fn new(producer: u32, sequence: u32, len: usize) -> Self {
        let payload: Vec<u8> = (0..len)
            .map(|index| (index as u32 ^ sequence ^ producer.rotate_left(8)) as u8)
            .collect();
        Self {
            producer,
            sequence,
            checksum: checksum(&payload, producer, sequence),
            payload,
        }
    }

    fn is_whole(&self) -> bool {
        self.checksum == checksum(&self.payload, self.producer, self.sequence)
    }
}

fn checksum(payload: &[u8], producer: u32, sequence: u32) -> u64 {
    payload.iter().fold(
        u64::from(producer) << 32 | u64::from(sequence),
        |sum, &byte| sum.rotate_left(5) ^ u64::from(byte).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// The queue's offset in the arena (a field of its serialized handle).
fn queue_offset<T>(queue: &JoinableQueue<T>) -> usize
where
    T: Serialize + serde::de::DeserializeOwned + 'static,
{
    serde_json::to_value(queue).unwrap()["handle"]["offset"]
        .as_u64()
        .unwrap() as usize
}

// ---------------------------------------------------------------- one process

#[test]
fn fifo_with_the_thread_queues_errors_and_counts() {
    let queue = JoinableQueue::<String>::with_capacity(Some(2), SMALL).unwrap();
    assert_eq!(queue.capacity(), Some(2));
    assert_eq!(queue.byte_capacity(), SMALL);
    queue.put("a".into()).unwrap();
    queue.put("b".into()).unwrap();
    assert!(queue.is_full());
    assert!(matches!(queue.try_put("c".into()), Err(PutError::Full(c)) if c == "c"));
    assert_eq!(queue.len(), 2);
    assert_eq!(queue.unfinished_tasks(), 2);
    assert_eq!(queue.get().unwrap(), "a");
    assert_eq!(queue.try_get().unwrap(), "b");
    assert_eq!(queue.try_get(), Err(GetError::Empty));
    assert_eq!(queue.join_timeout(Duration::from_millis(5)), Ok(false));
    queue.task_done().unwrap();
    queue.task_done().unwrap();
    assert!(queue.task_done().is_err());
    assert_eq!(queue.join(), Ok(()));
    queue.put("c".into()).unwrap();
    queue.shutdown();
    assert!(matches!(queue.put("d".into()), Err(PutError::ShutDown(d)) if d == "d"));
    assert_eq!(queue.get().unwrap(), "c");
    assert_eq!(queue.get(), Err(GetError::ShutDown));
    assert!(queue.is_shut_down());
}

#[test]
fn shutdown_now_hands_back_every_item_and_counts_their_tasks_done() {
    let queue = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
    for item in 0..100 {
        queue.put(item).unwrap();
    }
    queue.get().unwrap();
    let left: Vec<u64> = queue
        .shutdown_now()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, (1..100).collect::<Vec<_>>());
    assert_eq!(queue.unfinished_tasks(), 1);
    assert!(queue.is_empty());
    assert!(queue.put(7).is_err());
    queue.task_done().unwrap();
    assert_eq!(queue.join(), Ok(()));
}

#[test]
fn an_item_larger_than_the_queue_is_handed_back() {
    let queue = JoinableQueue::<Vec<u8>>::with_capacity(None, SMALL).unwrap();
    let big = vec![7u8; SMALL];
    match queue.put(big.clone()) {
        Err(PutError::TooLarge {
            item,
            encoded,
            capacity,
        }) => {
            assert_eq!(item, big);
            assert!(encoded > SMALL);
            assert_eq!(capacity, SMALL);
        }
        other => panic!("{other:?}"),
    }
    // One that fits exactly: its encoding (2-byte length, then the bytes)
    // and the record's 4-byte length fill the ring.
    let exact = vec![1u8; SMALL - 6];
    queue.put(exact.clone()).unwrap();
    assert!(queue.is_full());
    assert_eq!(queue.get().unwrap(), exact);
    assert_eq!(queue.unfinished_tasks(), 1);
}

/// Fails to serialize or deserialize on request, or panics.
#[derive(Debug, PartialEq)]
enum Hostile {
    Fine(u32),
    FailsToSerialize,
    PanicsToSerialize,
    PanicsToDeserialize,
    FailsToDeserialize,
}

impl Serialize for Hostile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Hostile::Fine(value) => serializer.serialize_u32(*value),
            Hostile::FailsToSerialize => Err(serde::ser::Error::custom("no, thanks")),
            Hostile::PanicsToSerialize => panic!("deliberate: serialize"),
            Hostile::PanicsToDeserialize => serializer.serialize_u32(u32::MAX),
            Hostile::FailsToDeserialize => serializer.serialize_u32(u32::MAX - 1),
        }
    }
}

impl<'de> Deserialize<'de> for Hostile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u32::deserialize(deserializer)? {
            u32::MAX => panic!("deliberate: deserialize"),
            value if value == u32::MAX - 1 => Err(serde::de::Error::custom("cannot take it")),
            value => Ok(Hostile::Fine(value)),
        }
    }
}

#[test]
fn a_failing_or_panicking_serde_impl_fails_its_own_call_and_nothing_is_lost() {
    common::quiet_deliberate_panics();
    let queue = JoinableQueue::<Hostile>::with_capacity(None, SMALL).unwrap();
    queue.put(Hostile::Fine(1)).unwrap();
    for hostile in [Hostile::FailsToSerialize, Hostile::PanicsToSerialize] {
        match queue.put(hostile) {
            Err(PutError::Unserializable { item, reason }) => {
                assert!(matches!(
                    item,
                    Hostile::FailsToSerialize | Hostile::PanicsToSerialize
                ));
                assert!(reason.contains("no, thanks") || reason.contains("deliberate"));
            }
            other => panic!("{other:?}"),
        }
    }
    queue.put(Hostile::PanicsToDeserialize).unwrap();
    queue.put(Hostile::FailsToDeserialize).unwrap();
    queue.put(Hostile::Fine(2)).unwrap();
    assert_eq!(queue.unfinished_tasks(), 4);
    assert_eq!(queue.get(), Ok(Hostile::Fine(1)));
    queue.task_done().unwrap();
    // postcard drops a failing impl's own message (its error says only this).
    for expected in ["deliberate: deserialize", "Deserialization Error"] {
        match queue.get() {
            Err(GetError::Undecodable(undecodable)) => {
                assert!(undecodable.reason().contains(expected), "{undecodable}");
                assert_eq!(undecodable.bytes().len(), 5); // a varint u32 near MAX
            }
            other => panic!("{other:?}"),
        }
    }
    // The undecodable items' tasks count as done.
    assert_eq!(queue.unfinished_tasks(), 1);
    assert_eq!(queue.get(), Ok(Hostile::Fine(2)));
    queue.task_done().unwrap();
    assert_eq!(queue.join(), Ok(()));
}

/// A get copies the record into a buffer its thread keeps from get to get
/// (longest record so far): an item shorter than one got before comes out
/// alone, without the longer one's bytes, as an item and as the bytes of an
/// `Undecodable`.
#[test]
fn a_short_item_after_a_long_one_comes_out_exactly() {
    let queue = JoinableQueue::<Vec<Hostile>>::with_capacity(None, SMALL).unwrap();
    let long: Vec<Hostile> = (0..200).map(|value| Hostile::Fine(value + 1000)).collect();
    queue.put(long).unwrap();
    queue.put(vec![Hostile::FailsToDeserialize]).unwrap();
    queue.put(vec![Hostile::Fine(7)]).unwrap();
    assert_eq!(queue.get().unwrap().len(), 200);
    match queue.get() {
        // postcard: the length 1, then u32::MAX - 1 as a varint.
        Err(GetError::Undecodable(undecodable)) => {
            assert_eq!(undecodable.bytes(), [1, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(queue.get(), Ok(vec![Hostile::Fine(7)]));
    queue.task_done().unwrap();
    queue.task_done().unwrap();
    assert_eq!(queue.join(), Ok(()));
}

#[test]
fn garbage_handles_do_not_open() {
    let queue = JoinableQueue::<u64>::with_capacity(Some(3), SMALL).unwrap();
    let json = serde_json::to_value(&queue).unwrap();
    let reopened: JoinableQueue<u64> = serde_json::from_value(json.clone()).unwrap();
    reopened.put(5).unwrap();
    assert_eq!(queue.get(), Ok(5));
    // Another item type, another bound, another size: refused.
    assert!(serde_json::from_value::<JoinableQueue<String>>(json.clone()).is_err());
    let mut other_bound = json.clone();
    other_bound["max_items"] = 4.into();
    assert!(serde_json::from_value::<JoinableQueue<u64>>(other_bound).is_err());
    let mut other_size = json.clone();
    other_size["handle"]["recorded"] = (1u64 << 31).into();
    assert!(serde_json::from_value::<JoinableQueue<u64>>(other_size).is_err());
    let mut zero = json;
    zero["max_items"] = 0.into();
    assert!(serde_json::from_value::<JoinableQueue<u64>>(zero).is_err());
}

// ------------------------------------------------------------- many processes

fn produce((queue, producer, count, len): (JoinableQueue<Item>, u32, u32, usize)) -> u32 {
    for sequence in 0..count {
        queue
            .put(Item::new(producer, sequence, len))
            .expect("the queue stays open while producers run");
    }
    count
}

/// Gets until shut down; every item whole; returns (producer, sequence)s.
fn consume(queue: JoinableQueue<Item>) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    for item in queue.iter() {
        let item = item.expect("every item decodes");
        assert!(item.is_whole(), "a torn item: {item:?}");
        got.push((item.producer, item.sequence));
        queue.task_done().unwrap();
    }
    got
}

#[test]
fn producers_and_consumers_in_separate_processes_get_every_item_exactly_once() {
    with_watchdog(PATIENCE * 3, || {
        const PRODUCERS: u32 = 3;
        const COUNT: u32 = 400;
        let queue = JoinableQueue::<Item>::with_capacity(Some(16), SMALL).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| process::spawn(consume, queue.clone()).unwrap())
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let len = 1 + producer as usize * 300;
                process::spawn(produce, (queue.clone(), producer, COUNT, len)).unwrap()
            })
            .collect();
        for producer in producers {
            assert_eq!(producer.join(), Ok(COUNT));
        }
        assert_eq!(queue.join(), Ok(()));
        queue.shutdown();
        let mut seen = BTreeSet::new();
        for consumer in consumers {
            let got = consumer.join().unwrap();
            // FIFO: each producer's items reach each consumer in order.
            for producer in 0..PRODUCERS {
                let mine: Vec<u32> = got
                    .iter()
                    .filter(|(from, _)| *from == producer)
                    .map(|&(_, sequence)| sequence)
                    .collect();
                assert!(mine.windows(2).all(|pair| pair[0] < pair[1]), "{mine:?}");
            }
            for entry in got {
                assert!(seen.insert(entry), "got twice: {entry:?}");
            }
        }
        assert_eq!(seen.len(), (PRODUCERS * COUNT) as usize);
        assert_eq!(queue.unfinished_tasks(), 0);
        assert_eq!(queue.lost_tasks(), 0);
    });
}

fn get_one(queue: JoinableQueue<u64>) -> Result<u64, String> {
    queue.get().map_err(|error| error.to_string())
}

fn put_one((queue, item): (JoinableQueue<u64>, u64)) -> Result<(), String> {
    queue.put(item).map_err(|error| error.to_string())
}

#[test]
fn a_bounded_put_blocks_until_a_get_in_another_process_makes_room() {
    with_watchdog(PATIENCE * 2, || {
        let queue = JoinableQueue::<u64>::with_capacity(Some(1), SMALL).unwrap();
        queue.put(1).unwrap();
        let putter = process::spawn(put_one, (queue.clone(), 2)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(queue.len(), 1, "the child's put waits");
        assert_eq!(queue.get(), Ok(1));
        assert_eq!(putter.join(), Ok(Ok(())));
        assert_eq!(queue.get(), Ok(2));
    });
}

#[test]
fn a_get_blocked_in_another_process_wakes_on_a_put() {
    with_watchdog(PATIENCE * 2, || {
        let queue = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
        let getter = process::spawn(get_one, queue.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        queue.put(42).unwrap();
        assert_eq!(getter.join(), Ok(Ok(42)));
    });
}

#[test]
fn timeouts_expire_while_nothing_changes() {
    let queue = JoinableQueue::<u64>::with_capacity(Some(1), SMALL).unwrap();
    let started = Instant::now();
    assert_eq!(
        queue.get_timeout(Duration::from_millis(50)),
        Err(GetError::Empty)
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
    queue.put(1).unwrap();
    let started = Instant::now();
    assert!(matches!(
        queue.put_timeout(2, Duration::from_millis(50)),
        Err(PutError::Full(2))
    ));
    assert!(started.elapsed() >= Duration::from_millis(50));
    let started = Instant::now();
    assert_eq!(queue.join_timeout(Duration::from_millis(50)), Ok(false));
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn shutdown_wakes_getters_and_putters_blocked_in_other_processes() {
    with_watchdog(PATIENCE * 2, || {
        let empty = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
        let full = JoinableQueue::<u64>::with_capacity(Some(1), SMALL).unwrap();
        full.put(1).unwrap();
        let getter = process::spawn(get_one, empty.clone()).unwrap();
        let putter = process::spawn(put_one, (full.clone(), 2)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        empty.shutdown();
        full.shutdown();
        assert_eq!(getter.join(), Ok(Err(GetError::ShutDown.to_string())));
        let refused = putter.join().unwrap().unwrap_err();
        assert!(refused.contains("shut down"), "{refused}");
        assert_eq!(full.get(), Ok(1), "a shut-down queue drains");
    });
}

fn take_and_finish((queue, count): (JoinableQueue<u64>, u32)) -> u64 {
    let mut total = 0;
    for _ in 0..count {
        let task = queue.get_task().unwrap();
        total += *task;
    }
    total
}

#[test]
fn join_waits_for_task_done_in_other_processes() {
    with_watchdog(PATIENCE * 2, || {
        let queue = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
        for item in 1..=20 {
            queue.put(item).unwrap();
        }
        let workers: Vec<_> = (0..2)
            .map(|_| process::spawn(take_and_finish, (queue.clone(), 10)).unwrap())
            .collect();
        assert_eq!(queue.join(), Ok(()));
        assert_eq!(queue.unfinished_tasks(), 0);
        let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(total, 210);
    });
}

/// Gets one item (a task), says so, and holds it until killed.
fn hold_a_task((queue, holding): (JoinableQueue<u64>, Value<u32>)) {
    let _item = queue.get().unwrap();
    holding.store(1);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn a_consumer_killed_holding_a_task_makes_join_report_it_lost() {
    with_watchdog(PATIENCE * 2, || {
        let queue = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let holding = Value::new(0u32).unwrap();
        let consumer = process::spawn(hold_a_task, (queue.clone(), holding.clone())).unwrap();
        wait_for("the consumer to hold its task", || holding.load() == 1);
        // A joiner asleep when the consumer dies wakes and reports it.
        let joiner = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.join())
        };
        assert_eq!(queue.get(), Ok(2));
        queue.task_done().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        consumer.kill();
        assert_eq!(common::join(joiner), Err(TasksLost { lost: 1 }));
        assert_eq!(queue.join(), Err(TasksLost { lost: 1 }));
        assert_eq!(queue.unfinished_tasks(), 0);
        assert_eq!(queue.lost_tasks(), 1);
        assert!(consumer.join().is_err());
        // The queue goes on working.
        queue.put(3).unwrap();
        assert_eq!(queue.get(), Ok(3));
    });
}

fn get_and_exit(queue: JoinableQueue<u64>) -> u64 {
    queue.get().unwrap()
}

/// A child gets item 1 and exits; the parent marks it done (any process
/// may). Item 2, still queued, stays unfinished: the child's ended holding
/// is not counted lost, and item 2's own task_done counts.
#[test]
fn a_task_marked_done_for_an_exited_process_is_not_lost_and_a_queued_one_stays_unfinished() {
    with_watchdog(PATIENCE * 2, || {
        let queue = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let child = process::spawn(get_and_exit, queue.clone()).unwrap();
        assert_eq!(child.join(), Ok(1));
        queue.task_done().unwrap();
        assert_eq!(queue.lost_tasks(), 0, "item 1 was marked done");
        assert_eq!(queue.unfinished_tasks(), 1, "item 2 is queued");
        assert_eq!(queue.join_timeout(Duration::from_millis(50)), Ok(false));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.get(), Ok(2));
        assert_eq!(queue.task_done(), Ok(()), "item 2's own task_done");
        assert_eq!(queue.join(), Ok(()));
    });
}

/// As above, but the child's task is counted lost (by `lost_tasks`)
/// before the parent marks it done: the mark turns the lost task done,
/// and item 2 stays unfinished.
#[test]
fn a_task_marked_done_after_it_was_counted_lost_turns_done() {
    with_watchdog(PATIENCE * 2, || {
        let queue = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let child = process::spawn(get_and_exit, queue.clone()).unwrap();
        assert_eq!(child.join(), Ok(1));
        assert_eq!(queue.lost_tasks(), 1, "the child ended holding item 1");
        queue.task_done().unwrap();
        assert_eq!(queue.lost_tasks(), 0, "item 1 was marked done after all");
        assert_eq!(queue.unfinished_tasks(), 1, "item 2 is queued");
        assert_eq!(queue.get(), Ok(2));
        assert_eq!(queue.task_done(), Ok(()), "item 2's own task_done");
        assert_eq!(queue.join(), Ok(()));
    });
}

/// The parent marks done the task a live child holds; the child is then
/// killed: nothing is lost, and item 2 (queued) stays unfinished.
#[test]
fn a_task_marked_done_for_a_live_process_is_taken_from_its_holding() {
    with_watchdog(PATIENCE * 2, || {
        let queue = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let holding = Value::new(0u32).unwrap();
        let consumer = process::spawn(hold_a_task, (queue.clone(), holding.clone())).unwrap();
        wait_for("the consumer to hold its task", || holding.load() == 1);
        queue.task_done().unwrap();
        consumer.kill();
        assert!(consumer.join().is_err());
        assert_eq!(queue.lost_tasks(), 0, "item 1 was marked done");
        assert_eq!(queue.unfinished_tasks(), 1, "item 2 is queued");
        assert_eq!(queue.get(), Ok(2));
        queue.task_done().unwrap();
        assert_eq!(queue.join(), Ok(()));
    });
}

/// A task still queued cannot be marked done: `task_done` before any
/// `get` is refused and changes nothing.
#[test]
fn task_done_for_a_task_nobody_took_is_refused() {
    let queue = JoinableQueue::<u64>::with_capacity(None, SMALL).unwrap();
    queue.put(1).unwrap();
    assert!(queue.task_done().is_err());
    assert_eq!(queue.unfinished_tasks(), 1);
    assert_eq!(queue.lost_tasks(), 0);
    assert_eq!(queue.get(), Ok(1));
    assert_eq!(queue.task_done(), Ok(()));
    assert_eq!(queue.join_timeout(PATIENCE), Ok(true));
}

/// Puts items for ever (until killed), counting acknowledged puts.
fn put_for_ever((queue, producer, acknowledged): (JoinableQueue<Item>, u32, Value<u32>)) {
    let mut sequence = 0;
    loop {
        let len = 500 + (sequence as usize * 977) % 3000;
        match queue.put(Item::new(producer, sequence, len)) {
            Ok(()) => {}
            Err(PutError::ShutDown(_)) => return,
            Err(other) => panic!("{other}"),
        }
        sequence += 1;
        acknowledged.store(sequence);
    }
}

#[test]
fn a_producer_killed_at_random_moments_never_delivers_a_torn_item() {
    with_watchdog(PATIENCE * 6, || {
        const ROUNDS: u32 = 25;
        let queue = JoinableQueue::<Item>::with_capacity(None, 16 << 10).unwrap();
        let mut rng = Rng::new(7);
        let mut got = 0u64;
        for round in 0..ROUNDS {
            let acknowledged = Value::new(0u32).unwrap();
            let producer =
                process::spawn(put_for_ever, (queue.clone(), round, acknowledged.clone())).unwrap();
            wait_for("the producer to start", || acknowledged.load() > 0);
            // Get concurrently for a random while, then kill it mid-stream.
            let until = Instant::now() + Duration::from_micros(rng.below(20_000));
            let mut next = 0;
            while Instant::now() < until {
                if let Ok(item) = queue.get_timeout(Duration::from_millis(1)) {
                    assert!(item.is_whole(), "round {round}: a torn item");
                    assert_eq!((item.producer, item.sequence), (round, next));
                    next += 1;
                    got += 1;
                    queue.task_done().unwrap();
                }
            }
            producer.kill();
            assert!(producer.join().is_err());
            // Drain: whole items, in order, at least every acknowledged one
            // and at most one more (the put in flight when it died).
            while let Ok(item) = queue.try_get() {
                assert!(item.is_whole(), "round {round}: a torn item");
                assert_eq!((item.producer, item.sequence), (round, next));
                next += 1;
                got += 1;
                queue.task_done().unwrap();
            }
            let acknowledged = acknowledged.load();
            assert!(
                next == acknowledged || next == acknowledged + 1,
                "round {round}: {next} items got, {acknowledged} acknowledged"
            );
            assert_eq!(queue.len(), 0);
        }
        assert!(got > 0);
        assert_eq!(queue.join(), Ok(()));
    });
}

/// Writes `(offset, value)` words into the arena, as a buggy process could.
fn scribble((lock, writes): (Lock, Vec<(usize, u32)>)) {
    let base = arena_base(&lock);
    for (at, value) in writes {
        u32_at(base, at).store(value, Ordering::SeqCst);
    }
}

fn scribble_in_child(lock: &Lock, writes: Vec<(usize, u32)>) {
    process::spawn(scribble, (lock.clone(), writes))
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn garbage_written_by_a_child_is_recovered_from_never_trusted() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        let queue = JoinableQueue::<Vec<u8>>::with_capacity(None, SMALL).unwrap();
        let at = queue_offset(&queue);
        let mut rng = Rng::new(11);
        for round in 0..40 {
            for len in [3usize, 100, 1000] {
                queue.put(vec![round as u8; len]).unwrap();
            }
            // Garbage over the counts, the journal or a record's length.
            let writes = match round % 5 {
                0 => vec![(at + USED_AT, rng.below(1 << 32) as u32)],
                1 => vec![
                    (at + ITEMS_AT, rng.below(1 << 32) as u32),
                    (at + HEAD_AT, rng.below(1 << 32) as u32),
                ],
                2 => vec![(at + JOURNAL_AT, 1)],
                3 => {
                    let head = u32_at(arena_base(&lock), at + HEAD_AT).load(Ordering::SeqCst);
                    let record = at + RING_AT + (head as usize & !3);
                    vec![(record, rng.below(1 << 32) as u32 | 0x8000_0000)]
                }
                _ => vec![(at + UNFINISHED_AT, rng.below(1 << 32) as u32)],
            };
            scribble_in_child(&lock, writes);
            // Whatever the garbage: items come out whole or not at all,
            // and the calls return.
            loop {
                match queue.get_timeout(Duration::from_millis(20)) {
                    Ok(item) => {
                        assert!(item.len() <= 1000);
                        assert!(item.iter().all(|&byte| byte == item[0]));
                    }
                    Err(GetError::Undecodable(_)) => {}
                    Err(GetError::Empty) => break,
                    Err(GetError::ShutDown) => panic!("nobody shut it down"),
                }
            }
            let _ = queue.join_timeout(Duration::from_millis(1));
            // And the queue works again.
            queue.put(vec![9; 10]).unwrap();
            assert_eq!(queue.get(), Ok(vec![9; 10]));
            let _ = queue.task_done();
        }
    });
}

#[test]
fn a_length_claiming_2_pow_60_bytes_is_refused_not_allocated() {
    with_watchdog(PATIENCE, || {
        let lock = Lock::new().unwrap();
        let queue = JoinableQueue::<Vec<u8>>::with_capacity(None, SMALL).unwrap();
        let at = queue_offset(&queue);
        queue.put(vec![1; 16]).unwrap();
        // The record: length 17 (u32), then postcard: varint 16, 16 bytes.
        // Rewrite the varint (and what follows) to claim 2^60 bytes.
        let record = at + RING_AT;
        // 2^60 as a varint: eight bytes of 0x80, then 0x10.
        let mut bytes = vec![0x80u8; 8];
        bytes.push(0x10);
        let word = |index: usize| {
            let mut value = [0u8; 4];
            for (offset, byte) in value.iter_mut().enumerate() {
                *byte = *bytes.get(index * 4 + offset).unwrap_or(&1);
            }
            u32::from_le_bytes(value)
        };
        scribble_in_child(
            &lock,
            vec![
                (record + 4, word(0)),
                (record + 8, word(1)),
                (record + 12, word(2)),
            ],
        );
        match queue.get() {
            Err(GetError::Undecodable(undecodable)) => assert_eq!(undecodable.bytes().len(), 17),
            other => panic!("{other:?}"),
        }
        assert_eq!(queue.unfinished_tasks(), 0);
    });
}

// -------------------------------------------------------------- random kills

/// Consumes until shut down, marking each item in `marks` before its
/// task_done.
fn consume_marking((queue, marks, per_producer): (JoinableQueue<Item>, process::Array<u32>, u32)) {
    for item in queue.iter() {
        let item = item.expect("every item decodes");
        assert!(item.is_whole(), "a torn item");
        let index = (item.producer * per_producer + item.sequence) as usize;
        marks.lock().unwrap_or_else(|died| died.into_guard())[index] += 1;
        queue.task_done().unwrap();
    }
}

fn produce_acknowledging(
    (queue, producer, count, acknowledged): (JoinableQueue<Item>, u32, u32, process::Array<u32>),
) {
    for sequence in 0..count {
        let len = (sequence as usize * 131) % 2000;
        if queue.put(Item::new(producer, sequence, len)).is_err() {
            return;
        }
        acknowledged.lock().unwrap_or_else(|died| died.into_guard())[producer as usize] =
            sequence + 1;
    }
}

#[test]
fn random_kills_of_producers_and_consumers_conserve_every_item() {
    with_watchdog(PATIENCE * 6, || {
        const PRODUCERS: u32 = 3;
        const PER_PRODUCER: u32 = 600;
        let queue = JoinableQueue::<Item>::with_capacity(Some(32), 16 << 10).unwrap();
        let marks = process::Array::new((PRODUCERS * PER_PRODUCER) as usize, 0u32).unwrap();
        let acknowledged = process::Array::new(PRODUCERS as usize, 0u32).unwrap();
        let consumer = || {
            process::spawn(
                consume_marking,
                (queue.clone(), marks.clone(), PER_PRODUCER),
            )
            .unwrap()
        };
        let mut consumers: Vec<_> = (0..3).map(|_| consumer()).collect();
        let mut producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                process::spawn(
                    produce_acknowledging,
                    (queue.clone(), producer, PER_PRODUCER, acknowledged.clone()),
                )
                .unwrap()
            })
            .collect();
        let mut rng = Rng::new(3);
        let (mut killed_producers, mut killed_consumers) = (0, 0);
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            if rng.below(2) == 0 && !producers.is_empty() {
                let victim = producers.remove(rng.below(producers.len() as u64) as usize);
                victim.kill();
                let _ = victim.join();
                killed_producers += 1;
            } else {
                let victim = consumers.remove(rng.below(consumers.len() as u64) as usize);
                victim.kill();
                let _ = victim.join();
                killed_consumers += 1;
                consumers.push(consumer());
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        let joined = queue.join();
        queue.shutdown();
        for consumer in consumers {
            consumer.join().unwrap();
        }
        // Conservation: every acknowledged item was got exactly once, or
        // lost with a killed consumer (counted by the queue).
        let marks = marks
            .lock()
            .unwrap_or_else(|died| died.into_guard())
            .to_vec();
        let acknowledged = acknowledged
            .lock()
            .unwrap_or_else(|died| died.into_guard())
            .to_vec();
        assert!(marks.iter().all(|&mark| mark <= 1), "an item got twice");
        let mut missing = 0;
        for producer in 0..PRODUCERS {
            for sequence in 0..PER_PRODUCER {
                let marked = marks[(producer * PER_PRODUCER + sequence) as usize] == 1;
                let acked = sequence < acknowledged[producer as usize];
                if acked && !marked {
                    missing += 1;
                }
                // Marked but not acknowledged: only the put in flight when
                // its producer was killed.
                if marked && !acked {
                    assert_eq!(sequence, acknowledged[producer as usize]);
                }
            }
        }
        let lost = queue.lost_tasks();
        assert!(
            missing <= lost,
            "{missing} acknowledged items never got, only {lost} lost ({killed_producers} \
             producers and {killed_consumers} consumers killed)"
        );
        assert!(lost <= killed_consumers * 2, "{lost} lost");
        match joined {
            Ok(()) => assert_eq!(lost, 0),
            Err(TasksLost { lost: reported }) => assert!(reported <= lost && reported > 0),
        }
        assert_eq!(queue.unfinished_tasks(), 0);
    });
}

// ------------------------------------------------------------------ proptest

#[derive(Clone, Debug)]
enum Op {
    Put(u16),
    Get,
    TaskDone,
    Shutdown,
    ShutdownNow,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u16>().prop_map(Op::Put),
        3 => Just(Op::Get),
        2 => Just(Op::TaskDone),
        1 => Just(Op::Shutdown),
        1 => Just(Op::ShutdownNow),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Single process, random operations: the same results, lengths and
    /// counts as the thread `JoinableQueue`.
    #[test]
    fn behaves_as_the_thread_queue(bound in 1usize..5, ops in proptest::collection::vec(op(), 0..40)) {
        let model = verisync::JoinableQueue::<u16>::bounded(bound);
        let queue = JoinableQueue::<u16>::with_capacity(Some(bound), 256).unwrap();
        // Items got and not yet marked done.
        let mut taken = 0usize;
        for op in ops {
            match op {
                Op::Put(item) => {
                    let expected = model.try_put(item).map_err(|error| match error {
                        verisync::PutError::Full(item) => ("full", item),
                        verisync::PutError::ShutDown(item) => ("shut down", item),
                    });
                    let actual = queue.try_put(item).map_err(|error| match error {
                        PutError::Full(item) => ("full", item),
                        PutError::ShutDown(item) => ("shut down", item),
                        other => panic!("{other:?}"),
                    });
                    prop_assert_eq!(actual, expected);
                }
                Op::Get => {
                    let expected = model.try_get().map_err(|error| match error {
                        verisync::GetError::Empty => GetError::Empty,
                        verisync::GetError::ShutDown => GetError::ShutDown,
                    });
                    let actual = queue.try_get();
                    taken += usize::from(actual.is_ok());
                    prop_assert_eq!(actual, expected);
                }
                Op::TaskDone if taken == 0 => {
                    // Unlike the thread queue, a task still queued (or
                    // none) cannot be marked done (raw/process_queue.rs,
                    // "Whose task `task_done` marks"): refused, nothing
                    // changes (the counts are compared below).
                    prop_assert!(queue.task_done().is_err());
                }
                Op::TaskDone => {
                    prop_assert_eq!(queue.task_done(), model.task_done());
                    taken -= 1;
                }
                Op::Shutdown => {
                    model.shutdown();
                    queue.shutdown();
                }
                Op::ShutdownNow => {
                    let expected = model.shutdown_now();
                    let actual: Vec<u16> =
                        queue.shutdown_now().into_iter().map(Result::unwrap).collect();
                    prop_assert_eq!(actual, expected);
                }
            }
            prop_assert_eq!(queue.len(), model.len());
            prop_assert_eq!(queue.is_empty(), model.is_empty());
            prop_assert_eq!(queue.is_full(), model.is_full());
            prop_assert_eq!(queue.unfinished_tasks(), model.unfinished_tasks());
            prop_assert_eq!(queue.is_shut_down(), model.is_shut_down());
            prop_assert_eq!(
                queue.join_timeout(Duration::ZERO),
                Ok(model.join_timeout(Duration::ZERO))
            );
        }
    }
}
