//! verisync's process-shared primitives (`verisync::process::{Lock,
//! Value, JoinableQueue}`) against the thread `Mutex`, the thread
//! `JoinableQueue` and a pipe — the Rust half of issue 14's benchmarks;
//! `benches/process_shared.py` times the same workloads with Python's
//! `multiprocessing.Lock`, `Value`, `Queue` and `JoinableQueue` (fork start
//! method), and `benches/ratios.py` puts both side by side.
//!
//! | group                           | one iteration | rows |
//! |---------------------------------|---------------|------|
//! | `process_lock_uncontended`      | one lock + unlock by one thread, nobody else around | `verisync_process_lock` (`process::Lock::lock()`, guard dropped); `verisync_mutex` (the thread `verisync::Mutex<()>`, the target's yardstick) |
//! | `process_lock_contended_2`      | one lock + unlock, two processes doing 20,000 each at once (time per operation of both together: 1 / ops per second) | `verisync_process_lock_2_processes`; `verisync_mutex_2_threads` (the thread `Mutex`, two threads of one process: the in-process bound) |
//! | `process_value_fetch_add`       | one `+= 1` on a shared `u64`, one thread | `verisync_fetch_add` (`Value::fetch_add(1)`); `verisync_lock_increment` (`*value.lock()? += 1`) |
//! | `process_queue_u64`, `process_queue_1k` | one message (a `u64`; 1 KiB of bytes, serialized as serde bytes: see `Kib`) from one process to another, rounds of 20,000 (time per message: 1 / messages per second) | `verisync_process_queue` (`process::JoinableQueue`, at most 1024 items in 2 MiB: this process puts, a child process gets and calls `task_done`, timed until `join` returns); `postcard_pipe` (the baseline: what the process pool does with a task — a frame of the pool's mark, a `u32` length and the postcard bytes in a fresh `Vec`, written and flushed into an OS pipe per message, read through a 64 KiB buffer and decoded by the child, which acknowledges the round once: a pipe has no `task_done`); `verisync_thread_queue_2_threads` (the thread `JoinableQueue::bounded(1024)` between two threads: the in-process bound) |
//!
//! The contended group starts its two processes (or threads) outside the
//! timed region: each says it is ready (a `process::Semaphore` release)
//! and waits for a `process::Event`; the clock runs from the `set` to the
//! moment both have said they are done (another semaphore), so process
//! start-up and exit are not timed. Counts are checked after each round.
//!
//! The queue groups start the consumer outside the timed region (it says
//! it is ready on a `process::Semaphore`); the clock runs from the first
//! put (or write) until the last message is done, and the consumer's sum
//! of what it got is checked after each round.
//!
//! `verisync::process::init()` is the first line of `main` (the child
//! processes re-execute this binary), hence no `criterion_main!`.
//!
//! Reproduce (both halves, then the ratio table with issue 14's targets:
//! `process::Lock` uncontended ≤ 2× the thread `Mutex`'s time; the process
//! queue ≥ 20× `multiprocessing.Queue`'s throughput and ≥ 2× the pipe's):
//!
//! ```text
//! cargo bench --bench process_shared && python3 benches/process_shared.py && python3 benches/ratios.py
//! cargo bench --bench process_shared -- process_lock_uncontended   # re-run one group
//! cargo bench --bench process_shared -- process_queue              # the queue groups
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, SamplingMode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use verisync::process::{Event, Lock, Semaphore, Value};
use verisync::Mutex;

/// Lock + unlock operations by each of the two contenders per round.
const CONTENDED_ROUND: u64 = 20_000;
/// Contending processes (or threads).
const CONTENDERS: usize = 2;
/// How long the parent waits for a contender to start or finish before
/// declaring the benchmark broken.
const PATIENCE: Duration = Duration::from_secs(60);

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_lock_uncontended");
    let lock = Lock::new().expect("the arena has room for a lock");
    group.bench_function("verisync_process_lock", |b| {
        b.iter(|| {
            let guard = lock.lock().expect("nobody dies here");
            black_box(&guard);
        })
    });
    let mutex = Mutex::new(());
    group.bench_function("verisync_mutex", |b| {
        b.iter(|| {
            let guard = mutex.lock();
            black_box(&guard);
        })
    });
    group.finish();
}

/// What a contending process gets (handles into shared memory; clones
/// name the same objects).
#[derive(Clone, Serialize, Deserialize)]
struct Contender {
    lock: Lock,
    /// Each contender adds how often it entered, checked after the round.
    entries: Value<u64>,
    ready: Semaphore,
    go: Event,
    done: Semaphore,
}

/// One contending process: ready, wait for the go, lock + unlock
/// `CONTENDED_ROUND` times (bumping a per-process count inside), done.
fn contend(contender: Contender) -> u64 {
    contender.ready.release(1).expect("unbounded");
    contender.go.wait();
    let mut inside = 0u64;
    for _ in 0..CONTENDED_ROUND {
        let guard = contender.lock.lock().expect("nobody dies here");
        inside = black_box(inside + 1);
        drop(guard);
    }
    contender.entries.fetch_add(inside);
    contender.done.release(1).expect("unbounded");
    inside
}

/// One round of two processes contending; returns the timed part. The
/// objects are made once and reused (shared memory is never freed): the
/// semaphores are back at 0 and the event clear after each round.
fn contended_processes_round(shared: &Contender) -> Duration {
    shared.entries.store(0);
    shared.go.clear();
    let children: Vec<_> = (0..CONTENDERS)
        .map(|_| verisync::process::spawn(contend, shared.clone()).expect("the contender starts"))
        .collect();
    shared
        .ready
        .try_acquire_many_for(CONTENDERS, PATIENCE)
        .expect("the contenders started")
        .forget();
    let start = Instant::now();
    shared.go.set();
    shared
        .done
        .try_acquire_many_for(CONTENDERS, PATIENCE)
        .expect("the contenders finished")
        .forget();
    let elapsed = start.elapsed();
    for child in children {
        assert_eq!(child.join(), Ok(CONTENDED_ROUND));
    }
    assert_eq!(shared.entries.load(), CONTENDED_ROUND * CONTENDERS as u64);
    elapsed
}

/// One round of two threads contending for a thread `Mutex`.
fn contended_threads_round() -> Duration {
    let mutex = Mutex::new(0u64);
    let barrier = std::sync::Barrier::new(CONTENDERS + 1);
    let start = std::thread::scope(|scope| {
        for _ in 0..CONTENDERS {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..CONTENDED_ROUND {
                    *mutex.lock() += 1;
                }
            });
        }
        barrier.wait();
        Instant::now()
    });
    // The scope joined the threads: their exit is in the timed part (a few
    // microseconds against a round of milliseconds).
    let elapsed = start.elapsed();
    assert_eq!(*mutex.lock(), CONTENDED_ROUND * CONTENDERS as u64);
    elapsed
}

/// Runs `round()` as many times as it takes to cover `iters` operations of
/// `per_round` each, and scales the summed time to `iters`.
fn rounds(iters: u64, per_round: u64, mut round: impl FnMut() -> Duration) -> Duration {
    let count = iters.div_ceil(per_round).max(1);
    let total: Duration = (0..count).map(|_| round()).sum();
    total.mul_f64(iters as f64 / (count * per_round) as f64)
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_lock_contended_2");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let per_round = CONTENDED_ROUND * CONTENDERS as u64;
    let shared = Contender {
        lock: Lock::new().expect("room"),
        entries: Value::new(0).expect("room"),
        ready: Semaphore::new(0).expect("room"),
        go: Event::new().expect("room"),
        done: Semaphore::new(0).expect("room"),
    };
    group.bench_function("verisync_process_lock_2_processes", |b| {
        b.iter_custom(|iters| rounds(iters, per_round, || contended_processes_round(&shared)))
    });
    group.bench_function("verisync_mutex_2_threads", |b| {
        b.iter_custom(|iters| rounds(iters, per_round, contended_threads_round))
    });
    group.finish();
}

fn value(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_value_fetch_add");
    let hits = Value::new(0u64).expect("room");
    group.bench_function("verisync_fetch_add", |b| {
        b.iter(|| black_box(hits.fetch_add(1)))
    });
    group.bench_function("verisync_lock_increment", |b| {
        b.iter(|| {
            let mut guard = hits.lock().expect("nobody dies here");
            *guard += 1;
        })
    });
    group.finish();
}

// ---- Queue rows: messages between two processes (issue 14 item 8) -------

/// Messages per round: the producer puts this many, the consumer takes
/// them (with `task_done`), and the round ends when all are done.
const QUEUE_ROUND: u64 = 20_000;
/// The item bound of the process queue and the thread queue (as the
/// thread-queue benches of `benches/queue.rs`).
const QUEUE_ITEMS: usize = 1024;
/// The process queue's bytes: room for `QUEUE_ITEMS` 1 KiB items.
const QUEUE_BYTES: usize = 2 << 20;

/// A message type of the queue groups: `u64`, or 1 KiB of bytes ([`Kib`]).
trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// The `i`-th message of a round.
    fn make(i: u64) -> Self;
    /// What the consumer adds up for it (the round's total is checked).
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

/// A 1 KiB message: bytes, encoded as serde bytes with `serde_bytes` (a
/// length and a copy, as Python pickles `bytes`). A plain `Vec<u8>`
/// is a serde *sequence*, encoded and decoded one byte at a time: on the
/// 2-core test machine that took the queue's time per message from about
/// 1.3 µs to 3.2 µs and the pipe's from 3.2 µs to 5 µs, measuring serde
/// more than the transport.
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

/// What the consumers add up over a round.
fn expected_weight<T: Message>() -> u64 {
    (0..QUEUE_ROUND).map(|i| T::make(i).weigh()).sum()
}

/// What the process-queue consumer gets.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct QueueConsumer<T: Message> {
    queue: verisync::process::JoinableQueue<T>,
    ready: Semaphore,
}

/// The consumer process: ready, then `QUEUE_ROUND` gets, each marked done.
fn consume_queue<T: Message>(order: QueueConsumer<T>) -> u64 {
    order.ready.release(1).expect("unbounded");
    let mut weight = 0;
    for _ in 0..QUEUE_ROUND {
        weight += order.queue.get().expect("every item decodes").weigh();
        order.queue.task_done().expect("one task per get");
    }
    weight
}

/// One round through a `process::JoinableQueue`: this process puts, a
/// child process gets; timed from the first put until `join` returns.
fn process_queue_round<T: Message>(
    queue: &verisync::process::JoinableQueue<T>,
    ready: &Semaphore,
) -> Duration {
    let order = QueueConsumer {
        queue: queue.clone(),
        ready: ready.clone(),
    };
    let child = verisync::process::spawn(consume_queue::<T>, order).expect("the consumer starts");
    ready
        .try_acquire_for(PATIENCE)
        .expect("the consumer started")
        .forget();
    let start = Instant::now();
    for i in 0..QUEUE_ROUND {
        queue.put(T::make(i)).expect("the queue is open");
    }
    queue.join().expect("nobody dies here");
    let elapsed = start.elapsed();
    assert_eq!(child.join(), Ok(expected_weight::<T>()));
    elapsed
}

/// One round through the thread `JoinableQueue` between two threads (the
/// in-process bound): timed from the first put until `join` returns.
fn thread_queue_round<T: Message>() -> Duration {
    let queue = verisync::JoinableQueue::bounded(QUEUE_ITEMS);
    let barrier = std::sync::Barrier::new(2);
    let (elapsed, weight) = std::thread::scope(|scope| {
        let consumer = scope.spawn(|| {
            barrier.wait();
            let mut weight = 0;
            for _ in 0..QUEUE_ROUND {
                let item: T = queue.get().expect("open");
                weight += item.weigh();
                queue.task_done().expect("one task per get");
            }
            weight
        });
        barrier.wait();
        let start = Instant::now();
        for i in 0..QUEUE_ROUND {
            queue.put(T::make(i)).expect("open");
        }
        queue.join();
        let elapsed = start.elapsed();
        (elapsed, consumer.join().expect("the consumer finishes"))
    });
    assert_eq!(weight, expected_weight::<T>());
    elapsed
}

/// The pipe baseline: what the process pool does with a task today — one
/// frame per message (the pool's 2-byte mark, a `u32` LE length, the
/// postcard bytes, encoded into a fresh `Vec` as the pool's
/// `encode_message` does) written and flushed into an OS pipe, read by the
/// other process through a buffer and decoded. A pipe has no `task_done`:
/// the consumer acknowledges the whole round once (a semaphore release).
#[cfg(unix)]
mod pipe {
    use std::io::{BufReader, BufWriter, Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    use std::time::{Duration, Instant};

    use serde::{Deserialize, Serialize};
    use verisync::process::Semaphore;

    use super::{expected_weight, Message, PATIENCE, QUEUE_ROUND};

    const FRAME_MARK: [u8; 2] = *b"vs";

    /// What the pipe's consumer gets: the number of the pipe's read end,
    /// inherited open across its exec.
    #[derive(Serialize, Deserialize)]
    pub struct PipeConsumer {
        fd: RawFd,
        ready: Semaphore,
        done: Semaphore,
    }

    /// The consumer process: reads and decodes `QUEUE_ROUND` frames.
    pub fn consume_pipe<T: Message>(order: PipeConsumer) -> u64 {
        // SAFETY: `order.fd` is the pipe's read end, which the parent left
        // open across the exec for this process (`pipe_round`); nothing
        // else in this process owns or closes it.
        let pipe = unsafe { std::fs::File::from_raw_fd(order.fd) };
        let mut reader = BufReader::with_capacity(64 << 10, pipe);
        order.ready.release(1).expect("unbounded");
        let mut body = Vec::new();
        let mut weight = 0;
        for _ in 0..QUEUE_ROUND {
            let mut header = [0u8; 6];
            reader.read_exact(&mut header).expect("a frame header");
            assert_eq!(header[..2], FRAME_MARK, "a frame starts with the mark");
            let length = u32::from_le_bytes([header[2], header[3], header[4], header[5]]);
            body.resize(length as usize, 0);
            reader.read_exact(&mut body).expect("a frame body");
            let item: T = postcard::from_bytes(&body).expect("the frame decodes");
            weight += item.weigh();
        }
        order.done.release(1).expect("unbounded");
        weight
    }

    /// One round over a pipe: this process writes, a child reads; timed
    /// from the first write until the child says it has read them all.
    pub fn pipe_round<T: Message>(ready: &Semaphore, done: &Semaphore) -> Duration {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        // std opens both ends close-on-exec: let the child inherit the
        // read end (only for this spawn: it is closed right after).
        rustix::io::fcntl_setfd(&reader, rustix::io::FdFlags::empty()).expect("fcntl");
        let order = PipeConsumer {
            fd: reader.as_raw_fd(),
            ready: ready.clone(),
            done: done.clone(),
        };
        let child =
            verisync::process::spawn(consume_pipe::<T>, order).expect("the consumer starts");
        drop(reader);
        ready
            .try_acquire_for(PATIENCE)
            .expect("the consumer started")
            .forget();
        let mut writer = BufWriter::with_capacity(64 << 10, writer);
        let start = Instant::now();
        for i in 0..QUEUE_ROUND {
            let body = postcard::to_allocvec(&T::make(i)).expect("encodes");
            let mut header = [0u8; 6];
            header[..2].copy_from_slice(&FRAME_MARK);
            header[2..].copy_from_slice(&(body.len() as u32).to_le_bytes());
            writer.write_all(&header).expect("the consumer reads");
            writer.write_all(&body).expect("the consumer reads");
            writer.flush().expect("the consumer reads");
        }
        done.try_acquire_for(PATIENCE)
            .expect("the consumer finished")
            .forget();
        let elapsed = start.elapsed();
        assert_eq!(child.join(), Ok(expected_weight::<T>()));
        elapsed
    }
}

/// The queue group `name` for messages of type `T`.
fn queue_group<T: Message>(c: &mut Criterion, name: &str) {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    // Made once and reused by every round (shared memory is never freed):
    // each round leaves the queue empty, every task done, the semaphores
    // at 0.
    let queue =
        verisync::process::JoinableQueue::<T>::with_capacity(Some(QUEUE_ITEMS), QUEUE_BYTES)
            .expect("the arena has room for the queue");
    let ready = Semaphore::new(0).expect("room");
    #[cfg_attr(not(unix), allow(unused_variables))]
    let done = Semaphore::new(0).expect("room");
    group.bench_function("verisync_process_queue", |b| {
        b.iter_custom(|iters| rounds(iters, QUEUE_ROUND, || process_queue_round(&queue, &ready)))
    });
    #[cfg(unix)]
    group.bench_function("postcard_pipe", |b| {
        b.iter_custom(|iters| rounds(iters, QUEUE_ROUND, || pipe::pipe_round::<T>(&ready, &done)))
    });
    group.bench_function("verisync_thread_queue_2_threads", |b| {
        b.iter_custom(|iters| rounds(iters, QUEUE_ROUND, thread_queue_round::<T>))
    });
    group.finish();
}

fn queue_u64(c: &mut Criterion) {
    queue_group::<u64>(c, "process_queue_u64");
}

fn queue_1k(c: &mut Criterion) {
    queue_group::<Kib>(c, "process_queue_1k");
}

criterion_group!(benches, uncontended, contended, value, queue_u64, queue_1k);

fn main() {
    verisync::process::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
