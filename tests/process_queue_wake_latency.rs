//! Review 17: `process::JoinableQueue`'s wake-ups across processes come
//! from the transition that lets the sleeper proceed, never from the
//! `HOLDER_POLL` (10 ms) poll that every sleep in production ends with.
//!
//! That poll hides a lost wake-up: a sleeper nobody wakes still looks
//! again within 10 ms and proceeds, so the other process tests pass with a
//! waker that wakes nobody. Only the latency shows it. Each case here puts
//! a process to sleep on one of the queue's futex words (watching the
//! word's `SLEEPERS` bit in the shared memory to know it announced), gives
//! it 2 ms more to be in the kernel's wait, then makes the transition that
//! should wake it and times, on the shared monotonic clock, how long until
//! the sleeper returned. A woken sleeper returns in microseconds (a loaded
//! machine: a millisecond or two); one left to the poll returns about 8 ms
//! later. A case fails if most of its rounds are slow.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::arena::{arena_base, u32_at};
use common::{wait_for, with_watchdog, PATIENCE};
use serde::{de::DeserializeOwned, Serialize};
use verisync::process::{self, GetError, JoinableQueue, Lock, PutError, Semaphore, Value};

/// Where the futex words sit in the queue object (`STATE_AT` in
/// `src/process_shared/queue.rs`, then `QueueState`'s first three words).
const GETTERS_AT: usize = 20;
const PUTTERS_AT: usize = 24;
const JOINERS_AT: usize = 28;
/// In a futex word: a waiter announced itself.
const SLEEPERS: u32 = 1 << 31;

/// Rounds per case.
const ROUNDS: usize = 16;
/// A wake-up slower than this came from the poll (10 ms after the sleeper
/// went to sleep, which is 2 ms or more before the waking transition).
const SLOW_NS: u64 = 4_000_000;

/// The shared monotonic clock (`CLOCK_MONOTONIC`: the same in every
/// process), in nanoseconds.
fn now_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn queue_offset<T: Serialize + DeserializeOwned + 'static>(queue: &JoinableQueue<T>) -> usize {
    serde_json::to_value(queue).unwrap()["handle"]["offset"]
        .as_u64()
        .unwrap() as usize
}

/// Waits until a waiter announced itself on the word `word_at` of
/// `queue`, then 2 ms more (so that it is asleep in the kernel). The sleep
/// stands in for "entered `futex_wait`", which user space cannot observe;
/// a waiter not yet asleep sees the bumped word and returns at once, so a
/// short wait can only weaken a round, never fail it.
fn wait_for_a_sleeper<T>(lock: &Lock, queue: &JoinableQueue<T>, word_at: usize)
where
    T: Serialize + DeserializeOwned + 'static,
{
    let word = u32_at(arena_base(lock), queue_offset(queue) + word_at);
    wait_for("a waiter to announce itself", || {
        word.load(Ordering::SeqCst) & SLEEPERS != 0
    });
    std::thread::sleep(Duration::from_millis(2));
}

/// Waits until `returned` holds a stamp other than `before`; the latency
/// from `woken_at` to it.
fn latency(returned: &Value<u64>, before: u64, woken_at: u64) -> u64 {
    wait_for("the sleeper to return", || returned.load() != before);
    returned.load().saturating_sub(woken_at)
}

/// Fails if most rounds were slow: a wake-up left to the poll.
fn assert_woken_not_polled(case: &str, latencies: &[u64]) {
    let slow = latencies.iter().filter(|&&ns| ns > SLOW_NS).count();
    let micros: Vec<u64> = latencies.iter().map(|ns| ns / 1000).collect();
    eprintln!("{case}: wake-up latencies (µs): {micros:?}");
    assert!(
        slow * 2 < latencies.len(),
        "{case}: {slow} of {} wake-ups took over {} ms (µs: {micros:?}): the sleeper \
         was not woken, it found the change by polling",
        latencies.len(),
        SLOW_NS / 1_000_000,
    );
}

// ------------------------------------------------------------------ sleepers

/// Gets `ROUNDS` items, stamping `returned` after each.
fn get_rounds((queue, returned): (JoinableQueue<u64>, Value<u64>)) {
    for _ in 0..ROUNDS {
        queue.get().unwrap();
        queue.task_done().unwrap();
        returned.store(now_ns());
    }
}

/// Puts `ROUNDS` items into a full queue, stamping `returned` after each.
fn put_rounds((queue, returned): (JoinableQueue<u64>, Value<u64>)) {
    for round in 0..ROUNDS {
        queue.put(round as u64).unwrap();
        returned.store(now_ns());
    }
}

/// Joins `ROUNDS` times, each when `go` releases a permit, stamping
/// `returned`.
fn join_rounds((queue, go, returned): (JoinableQueue<u64>, Semaphore, Value<u64>)) {
    for _ in 0..ROUNDS {
        go.try_acquire_for(PATIENCE)
            .expect("the test releases one permit a round")
            .forget();
        queue.join().unwrap();
        returned.store(now_ns());
    }
}

/// Gets from each queue until it is shut down, stamping `returned`.
fn get_until_shut_down((queues, returned): (Vec<JoinableQueue<u64>>, Value<u64>)) {
    for queue in queues {
        assert_eq!(queue.get(), Err(GetError::ShutDown));
        returned.store(now_ns());
    }
}

/// Puts into each (full) queue until it is shut down, stamping `returned`.
fn put_until_shut_down((queues, returned): (Vec<JoinableQueue<u64>>, Value<u64>)) {
    for queue in queues {
        assert!(matches!(queue.put(2), Err(PutError::ShutDown(2))));
        returned.store(now_ns());
    }
}

// ---------------------------------------------------------------------- cases

#[test]
fn a_put_wakes_a_getter_asleep_in_another_process() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        let queue = JoinableQueue::<u64>::new().unwrap();
        let returned = Value::new(0u64).unwrap();
        let getter = process::spawn(get_rounds, (queue.clone(), returned.clone())).unwrap();
        let mut latencies = Vec::new();
        for round in 0..ROUNDS {
            let before = returned.load();
            wait_for_a_sleeper(&lock, &queue, GETTERS_AT);
            let woken_at = now_ns();
            queue.put(round as u64).unwrap();
            latencies.push(latency(&returned, before, woken_at));
        }
        getter.join().unwrap();
        assert_woken_not_polled("put -> getter", &latencies);
    });
}

#[test]
fn a_get_wakes_a_putter_asleep_in_another_process() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        let queue = JoinableQueue::<u64>::bounded(1).unwrap();
        queue.put(99).unwrap();
        let returned = Value::new(0u64).unwrap();
        let putter = process::spawn(put_rounds, (queue.clone(), returned.clone())).unwrap();
        let mut latencies = Vec::new();
        for _ in 0..ROUNDS {
            let before = returned.load();
            wait_for_a_sleeper(&lock, &queue, PUTTERS_AT);
            let woken_at = now_ns();
            queue.get().unwrap();
            latencies.push(latency(&returned, before, woken_at));
        }
        putter.join().unwrap();
        assert_woken_not_polled("get -> putter", &latencies);
    });
}

#[test]
fn a_task_done_wakes_a_joiner_asleep_in_another_process() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        let queue = JoinableQueue::<u64>::new().unwrap();
        let go = Semaphore::new(0).unwrap();
        let returned = Value::new(0u64).unwrap();
        let joiner =
            process::spawn(join_rounds, (queue.clone(), go.clone(), returned.clone())).unwrap();
        let mut latencies = Vec::new();
        for _ in 0..ROUNDS {
            queue.put(1).unwrap();
            queue.get().unwrap();
            let before = returned.load();
            go.release(1).unwrap();
            wait_for_a_sleeper(&lock, &queue, JOINERS_AT);
            let woken_at = now_ns();
            queue.task_done().unwrap();
            latencies.push(latency(&returned, before, woken_at));
        }
        joiner.join().unwrap();
        assert_woken_not_polled("task_done -> joiner", &latencies);
    });
}

#[test]
fn shutdown_wakes_a_getter_asleep_in_another_process() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        let queues: Vec<_> = (0..ROUNDS)
            .map(|_| JoinableQueue::<u64>::new().unwrap())
            .collect();
        let returned = Value::new(0u64).unwrap();
        let getter =
            process::spawn(get_until_shut_down, (queues.clone(), returned.clone())).unwrap();
        let mut latencies = Vec::new();
        for queue in &queues {
            let before = returned.load();
            wait_for_a_sleeper(&lock, queue, GETTERS_AT);
            let woken_at = now_ns();
            queue.shutdown();
            latencies.push(latency(&returned, before, woken_at));
        }
        getter.join().unwrap();
        assert_woken_not_polled("shutdown -> getter", &latencies);
    });
}

#[test]
fn shutdown_wakes_a_putter_asleep_in_another_process() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        let queues: Vec<_> = (0..ROUNDS)
            .map(|_| {
                let queue = JoinableQueue::<u64>::bounded(1).unwrap();
                queue.put(1).unwrap();
                queue
            })
            .collect();
        let returned = Value::new(0u64).unwrap();
        let putter =
            process::spawn(put_until_shut_down, (queues.clone(), returned.clone())).unwrap();
        let mut latencies = Vec::new();
        for queue in &queues {
            let before = returned.load();
            wait_for_a_sleeper(&lock, queue, PUTTERS_AT);
            let woken_at = now_ns();
            queue.shutdown();
            latencies.push(latency(&returned, before, woken_at));
        }
        putter.join().unwrap();
        assert_woken_not_polled("shutdown -> putter", &latencies);
    });
}

// ----------------------------------------------- a dead holder's wake-up

/// Where the state lock word sits in the queue object, and the ring.
const LOCK_WORD_AT: usize = 16;
const USED_AT: usize = 36;
const ITEMS_AT: usize = 40;
const UNFINISHED_AT: usize = 44;
const RING_AT: usize = 128 + 1024 * 8;

/// Takes the state lock of the (empty) queue at `at` as the protocol does
/// (CAS free → this process's identity), commits a put of `5u64` (its
/// record at the ring's start, then the live words: what a put's commit
/// leaves once its journal is cleared), and exits without unlocking or
/// waking: a producer SIGKILLed between its commit and its unlock.
fn commit_a_put_and_die((lock, at): (Lock, usize)) {
    let base = arena_base(&lock);
    let me = common::arena::my_identity(base);
    let word = u32_at(base, at + LOCK_WORD_AT);
    while word
        .compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        std::thread::yield_now();
    }
    // The record: length 1, then postcard's `5u64` (one byte).
    u32_at(base, at + RING_AT).store(1, Ordering::SeqCst);
    u32_at(base, at + RING_AT + 4).store(5, Ordering::SeqCst);
    u32_at(base, at + USED_AT).store(5, Ordering::SeqCst);
    u32_at(base, at + ITEMS_AT).store(1, Ordering::SeqCst);
    u32_at(base, at + UNFINISHED_AT).store(1, Ordering::SeqCst);
}

/// Gets one item from each queue, stamping `returned` after each.
fn get_one_from_each((queues, returned): (Vec<JoinableQueue<u64>>, Value<u64>)) {
    for queue in queues {
        assert_eq!(queue.get(), Ok(5));
        queue.task_done().unwrap();
        returned.store(now_ns());
    }
}

/// A producer dies after committing its put, holding the state lock (no
/// unlock, no wake-up), while a getter sleeps on the queue. The next
/// process to take the state lock (here a `join_timeout(0)`) recovers it
/// and sees the item; the getter, owed a wake-up by the dead producer,
/// is woken then. (Review 17: it was not, and found the item only at its
/// next `HOLDER_POLL` poll, 0 to 10 ms later, 5 ms in the median.) The
/// loom model of the same: `loom-tests/tests/process_queue.rs`.
#[test]
fn recovering_a_dead_producers_lock_wakes_the_getter_it_owed_a_wake_up() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        let base = arena_base(&lock);
        let queues: Vec<_> = (0..ROUNDS)
            .map(|_| JoinableQueue::<u64>::new().unwrap())
            .collect();
        let returned = Value::new(0u64).unwrap();
        let getter = process::spawn(get_one_from_each, (queues.clone(), returned.clone())).unwrap();
        let mut latencies = Vec::new();
        for queue in &queues {
            let at = queue_offset(queue);
            let before = returned.load();
            wait_for_a_sleeper(&lock, queue, GETTERS_AT);
            process::spawn(commit_a_put_and_die, (lock.clone(), at))
                .unwrap()
                .join()
                .unwrap();
            // Recover the lock (once the producer is seen dead).
            let word = u32_at(base, at + LOCK_WORD_AT);
            let dead_holders = word.load(Ordering::SeqCst);
            let mut recovered_at = 0;
            while returned.load() == before {
                let _ = queue.join_timeout(Duration::ZERO);
                if word.load(Ordering::SeqCst) != dead_holders {
                    recovered_at = now_ns();
                    break;
                }
                std::thread::yield_now();
            }
            if recovered_at == 0 {
                // The getter's own poll recovered it first: no measure.
                continue;
            }
            latencies.push(latency(&returned, before, recovered_at));
        }
        getter.join().unwrap();
        assert!(latencies.len() >= ROUNDS / 2, "{latencies:?}");
        latencies.sort_unstable();
        let median = latencies[latencies.len() / 2];
        eprintln!(
            "dead producer -> getter: latencies (µs) {:?}",
            latencies.iter().map(|ns| ns / 1000).collect::<Vec<_>>()
        );
        assert!(
            median < 2_000_000,
            "the getter returned {} µs (median) after the dead producer's lock was \
             recovered: it was not woken, it found the item by polling",
            median / 1000
        );
    });
}

// --------------------------------------------------------------- stress

/// Items per producer in the stress case.
const PER_PRODUCER: u32 = 1500;
/// A call that blocked this much longer than it had to (its timeout, or
/// 0 for a blocking call whose partner is busy all along) is counted slow.
const STALL: Duration = Duration::from_millis(8);

/// Puts `PER_PRODUCER` items, blocking or with short timeouts at random;
/// returns (slow calls, calls).
fn stress_produce((queue, producer): (JoinableQueue<u32>, u32)) -> (u32, u32) {
    let mut rng = common::Rng::new(producer as usize + 100);
    let (mut slow, mut calls) = (0, 0);
    for sequence in 0..PER_PRODUCER {
        let item = producer * PER_PRODUCER + sequence;
        loop {
            calls += 1;
            let timeout = Duration::from_micros(rng.below(2000));
            let blocking = rng.below(2) == 0;
            let started = std::time::Instant::now();
            let result = if blocking {
                queue.put(item)
            } else {
                queue.put_timeout(item, timeout)
            };
            let limit = if blocking { STALL } else { timeout + STALL };
            if started.elapsed() > limit {
                slow += 1;
            }
            match result {
                Ok(()) => break,
                Err(PutError::Full(_)) => continue,
                Err(other) => panic!("{other:?}"),
            }
        }
    }
    (slow, calls)
}

/// Gets until shut down, blocking or with short timeouts at random,
/// counting each item in `marks`; returns (slow calls, calls).
fn stress_consume(
    (queue, marks, seed): (JoinableQueue<u32>, process::Array<u32>, u32),
) -> (u32, u32) {
    let mut rng = common::Rng::new(seed as usize);
    let (mut slow, mut calls) = (0, 0);
    loop {
        calls += 1;
        let timeout = Duration::from_micros(rng.below(2000));
        let blocking = rng.below(2) == 0;
        let started = std::time::Instant::now();
        let result = if blocking {
            queue.get()
        } else {
            queue.get_timeout(timeout)
        };
        let limit = if blocking { STALL } else { timeout + STALL };
        match result {
            Ok(item) => {
                if started.elapsed() > limit {
                    slow += 1;
                }
                marks.lock().unwrap()[item as usize] += 1;
                queue.task_done().unwrap();
            }
            Err(GetError::Empty) => {
                if started.elapsed() > limit {
                    slow += 1;
                }
            }
            Err(GetError::ShutDown) => return (slow, calls),
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// Two producer and two consumer processes through a queue of one item
/// (16 bytes), each call blocking or timed at random: every item got
/// exactly once, the join returns, and hardly any call blocks 8 ms longer
/// than it had to (a lost wake-up costs a poll: up to 10 ms).
#[test]
fn producers_and_consumers_through_a_one_item_queue_neither_lose_items_nor_stall() {
    with_watchdog(PATIENCE * 4, || {
        const PRODUCERS: u32 = 2;
        let queue = JoinableQueue::<u32>::with_capacity(Some(1), 16).unwrap();
        let marks = process::Array::new((PRODUCERS * PER_PRODUCER) as usize, 0u32).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|seed| {
                process::spawn(stress_consume, (queue.clone(), marks.clone(), seed)).unwrap()
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| process::spawn(stress_produce, (queue.clone(), producer)).unwrap())
            .collect();
        let (mut slow, mut calls) = (0, 0);
        for producer in producers {
            let (s, c) = producer.join().unwrap();
            slow += s;
            calls += c;
        }
        assert_eq!(queue.join(), Ok(()));
        queue.shutdown();
        for consumer in consumers {
            let (s, c) = consumer.join().unwrap();
            slow += s;
            calls += c;
        }
        let marks = marks.lock().unwrap().to_vec();
        assert!(
            marks.iter().all(|&mark| mark == 1),
            "an item lost or got twice"
        );
        eprintln!("stress: {slow} slow calls of {calls}");
        assert!(
            slow * 100 <= calls,
            "{slow} of {calls} calls stalled over {STALL:?}"
        );
    });
}
