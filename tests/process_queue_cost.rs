//! What one message through a `process::JoinableQueue` costs, in
//! instructions and futex calls, for the producer (a put) and for the
//! consumer (a get and a `task_done`), with the messages of
//! `benches/process_shared.rs` (a `u64`; 1 KiB of serde bytes). Ignored: a
//! measuring harness, not a check. The parent puts
//! `VERISYNC_COST_MESSAGES` messages (20,000 by default) into a queue of
//! at most 1024 items in 2 MiB, a child process gets each and marks it
//! done, the parent joins. Count futex calls with strace:
//!
//! ```text
//! cargo test --release --test process_queue_cost --no-run   # prints the binary
//! strace -c -f -e trace=futex target/release/deps/process_queue_cost-... --ignored --exact queue_1k_cost
//! ```
//!
//! Callgrind cannot follow the consumer (a worker process starts as
//! `/proc/self/exe`, which under valgrind names valgrind itself), so the
//! `*_batches` tests count instructions in one thread of one process:
//! batches of 1000 puts, then 1000 gets each with its `task_done`, the same
//! code paths minus the waiting (nobody ever waits or is woken):
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*put_batch*' --toggle-collect='*take_batch*' \
//!     target/release/deps/process_queue_cost-... --ignored --exact queue_1k_batches
//! callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep _batch   # Ir / messages
//! ```
//!
//! Or time it (`--ignored --nocapture`): each test prints nanoseconds per
//! message, the fastest of a few rounds.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use verisync::process::{JoinableQueue, Semaphore};

/// The item bound and the bytes of the queue (as the benchmark's).
const QUEUE_ITEMS: usize = 1024;
const QUEUE_BYTES: usize = 2 << 20;

/// Messages per round (`VERISYNC_COST_MESSAGES`; 20,000 by default).
fn messages() -> u64 {
    std::env::var("VERISYNC_COST_MESSAGES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20_000)
}

/// Rounds timed (`VERISYNC_COST_ROUNDS`; 1 by default).
fn rounds() -> usize {
    std::env::var("VERISYNC_COST_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1)
}

trait Message: Serialize + DeserializeOwned + Send + 'static {
    fn make(i: u64) -> Self;
    fn weigh(&self) -> u64;
}

impl Message for u64 {
    fn make(i: u64) -> Self {
        i
    }
    fn weigh(&self) -> u64 {
        *self
    }
}

/// 1 KiB of bytes, as serde bytes (the benchmark's `Kib`).
#[derive(Serialize, Deserialize)]
struct Kib(#[serde(with = "serde_bytes")] Vec<u8>);

impl Message for Kib {
    fn make(i: u64) -> Self {
        Kib(vec![i as u8; 1024])
    }
    fn weigh(&self) -> u64 {
        self.0.len() as u64 + u64::from(self.0[0])
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Consumer<T: Message> {
    queue: JoinableQueue<T>,
    ready: Semaphore,
    messages: u64,
}

#[inline(never)]
fn consume_loop<T: Message>(queue: &JoinableQueue<T>, messages: u64) -> u64 {
    let mut weight = 0;
    for _ in 0..messages {
        weight += queue.get().expect("every item decodes").weigh();
        queue.task_done().expect("one task per get");
    }
    weight
}

/// The calling thread's time on a CPU so far (`/proc/thread-self/schedstat`).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux");
    let nanos = stat.split_whitespace().next().and_then(|n| n.parse().ok());
    Duration::from_nanos(nanos.expect("schedstat starts with the time on a CPU"))
}

/// With `VERISYNC_COST_PIN` set, pins the calling thread to core `index`
/// (the producer to the first, the consumer to the second).
fn pin(index: usize) {
    if std::env::var_os("VERISYNC_COST_PIN").is_some() {
        let cores = core_affinity::get_core_ids().expect("cores");
        assert!(core_affinity::set_for_current(cores[index % cores.len()]));
    }
}

/// The consumer: the sum of what it got, and its time on a CPU.
fn consume<T: Message>(order: Consumer<T>) -> (u64, Duration) {
    pin(1);
    order.ready.release(1).expect("unbounded");
    let started = cpu_time();
    let weight = consume_loop(&order.queue, order.messages);
    (weight, cpu_time() - started)
}

#[inline(never)]
fn produce_loop<T: Message>(queue: &JoinableQueue<T>, messages: u64) {
    for i in 0..messages {
        queue.put(T::make(i)).expect("the queue is open");
    }
}

/// Rounds of `messages()` messages; prints the fastest round's time per message.
fn measure<T: Message>(what: &str) {
    let queue = JoinableQueue::<T>::with_capacity(Some(QUEUE_ITEMS), QUEUE_BYTES).unwrap();
    let ready = Semaphore::new(0).unwrap();
    let messages = messages();
    let expected: u64 = (0..messages).map(|i| T::make(i).weigh()).sum();
    let (mut fastest, mut producer_cpu, mut consumer_cpu) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..rounds() {
        let order = Consumer {
            queue: queue.clone(),
            ready: ready.clone(),
            messages,
        };
        let child = verisync::process::spawn(consume::<T>, order).expect("the consumer starts");
        ready
            .try_acquire_for(Duration::from_secs(60))
            .expect("the consumer started")
            .forget();
        pin(0);
        let (started, cpu) = (Instant::now(), cpu_time());
        produce_loop(&queue, messages);
        queue.join().expect("nobody dies here");
        fastest = fastest.min(started.elapsed());
        producer_cpu = producer_cpu.min(cpu_time() - cpu);
        let (weight, cpu) = child.join().expect("the consumer ends");
        assert_eq!(weight, expected);
        consumer_cpu = consumer_cpu.min(cpu);
    }
    let per_message = |time: Duration| time.as_nanos() as f64 / messages as f64;
    println!(
        "{what}: {messages} messages, fastest round {:.1} ns each; least time on a CPU per \
         message: producer {:.1} ns, consumer {:.1} ns",
        per_message(fastest),
        per_message(producer_cpu),
        per_message(consumer_cpu)
    );
}

/// Messages per batch of the `*_batches` tests.
const BATCH: u64 = 1000;

#[inline(never)]
fn put_batch<T: Message>(queue: &JoinableQueue<T>, first: u64) {
    for i in first..first + BATCH {
        queue.put(T::make(i)).expect("the queue is open");
    }
}

#[inline(never)]
fn take_batch<T: Message>(queue: &JoinableQueue<T>) -> u64 {
    let mut weight = 0;
    for _ in 0..BATCH {
        weight += queue.get().expect("queued").weigh();
        queue.task_done().expect("one task per get");
    }
    weight
}

/// `messages()` messages (rounded down to batches) in batches, in one thread.
fn batches<T: Message>() {
    let queue = JoinableQueue::<T>::with_capacity(Some(QUEUE_ITEMS), QUEUE_BYTES).unwrap();
    let (mut weight, mut expected) = (0, 0);
    let (mut putting, mut taking) = (Duration::ZERO, Duration::ZERO);
    let batches = messages() / BATCH;
    for batch in 0..batches {
        let started = Instant::now();
        put_batch(&queue, batch * BATCH);
        let put = Instant::now();
        weight += take_batch(&queue);
        putting += put - started;
        taking += put.elapsed();
        expected += (batch * BATCH..(batch + 1) * BATCH)
            .map(|i| T::make(i).weigh())
            .sum::<u64>();
    }
    let per_message = |time: Duration| time.as_nanos() as f64 / (batches * BATCH) as f64;
    assert_eq!(weight, expected);
    assert_eq!(queue.join(), Ok(()));
    println!(
        "{batches} batches of {BATCH}: put {:.1} ns, get + task_done {:.1} ns per message",
        per_message(putting),
        per_message(taking)
    );
}

#[test]
#[ignore = "a measuring harness: run it under callgrind"]
fn queue_u64_batches() {
    batches::<u64>();
}

#[test]
#[ignore = "a measuring harness: run it under callgrind"]
fn queue_1k_batches() {
    batches::<Kib>();
}

#[test]
#[ignore = "a measuring harness: run it under callgrind, strace or on a quiet machine"]
fn queue_u64_cost() {
    measure::<u64>("u64");
}

#[test]
#[ignore = "a measuring harness: run it under callgrind, strace or on a quiet machine"]
fn queue_1k_cost() {
    measure::<Kib>("1 KiB");
}

/// `Kib` is encoded as serde bytes: a varint length (1024 is `0x80 0x08`)
/// and the bytes, as a `u8` sequence would be in postcard, and decodes back.
#[test]
fn a_kib_is_encoded_as_serde_bytes() {
    let encoded = postcard::to_allocvec(&Kib::make(7)).unwrap();
    assert_eq!(encoded, [&[0x80, 0x08][..], &[7; 1024]].concat());
    let decoded: Kib = postcard::from_bytes(&encoded).unwrap();
    assert_eq!(decoded.weigh(), Kib::make(7).weigh());
    assert_eq!(decoded.0, [7; 1024]);
}
