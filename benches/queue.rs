//! verisync's `JoinableQueue` side by side with channels and lock-based
//! baselines, in one run: time per message, `u64` messages, capacity 1024.
//!
//! Every group holds the rows that are compared with each other, measured in
//! the same process one after the other, so their ratios mean something even
//! on a noisy machine:
//!
//! | group                          | rows |
//! |--------------------------------|------|
//! | `fifo_1p1c`                    | verisync `bounded(1024)` with `task_done` after every get (`verisync_task_done`) and without (`verisync`); crossbeam-channel `bounded(1024)`; flume `bounded(1024)`; `std::sync::mpsc::sync_channel(1024)`; a `parking_lot::Mutex<VecDeque>` + two `Condvar`s baseline; the same baseline with Python's task accounting (`parking_lot_mutex_condvar_task_done`: see below) |
//! | `fifo_2p2c`                    | the same rows but std's (its `Receiver` cannot be shared) |
//! | `priority_1p1c`, `priority_2p2c` | verisync `priority_bounded(1024)` with and without `task_done`; a `parking_lot::Mutex<BinaryHeap<Reverse<u64>>>` + two `Condvar`s baseline; the same over `BinaryHeap<Reverse<(u64, insertion number)>>` (`parking_lot_mutex_condvar_fifo_ties`), which hands equal items out in insertion order as verisync does, also with task accounting (`…_fifo_ties_task_done`) |
//! | `lifo_1p1c`, `lifo_2p2c`       | verisync `lifo_bounded(1024)` with and without `task_done`; a `parking_lot::Mutex<Vec>` + two `Condvar`s baseline, without and with task accounting |
//! | `lifo_one_thread`              | the LIFO rows on one thread without contention: a put, then a get (and `task_done`), per iteration — the floor under the 1P/1C rows |
//!
//! One criterion iteration is one message: put by a producer, got by a
//! consumer. Each measured batch (`iter_custom`) builds a fresh queue,
//! spawns P producers and C consumers (scoped), releases them together with
//! a `std::sync::Barrier`, and takes the wall time from the first thread's
//! start to the last thread's end, as read by the worker threads
//! themselves; thread start-up is outside the timed region. A batch moves at
//! least [`MIN_MESSAGES`] messages (more if criterion asks for more) and its
//! time is scaled to the iterations criterion asked for. Consumers add up
//! what they get and the batch checks the total, so a lost or duplicated
//! message fails the benchmark. Messages are a bijective scramble of their
//! index, so the priority queues see unordered keys rather than the
//! best-case ascending run. Threads are not pinned (2P/2C runs four threads).
//!
//! The baselines are the textbook bounded queue: put waits on `not_full`
//! while the store holds 1024 items, pushes, unlocks and notifies
//! `not_empty`; get is the mirror image. The `…_task_done` baselines add
//! what a verisync queue with `task_done` also guarantees, as Python's
//! `queue.Queue` does it: an unfinished count beside the store under the
//! same mutex (a put adds one), and after every get a `task_done` that
//! locks again, subtracts one and at 0 notifies an `all_tasks_done`
//! `Condvar`. So each verisync row has a same-guarantee baseline: the
//! `verisync` rows (no `task_done`) the plain baselines, the
//! `verisync_task_done` rows the task-counting ones.
//!
//! Reproduce (the second command prints the ratio table with the targets of
//! issues 2 and 3, from criterion's saved medians):
//!
//! ```text
//! cargo bench --bench queue && python3 benches/ratios.py
//! cargo bench --bench queue -- fifo_2p2c   # re-run one group
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_utils::CachePadded;
use verisync::JoinableQueue;

/// Capacity of every queue and channel.
const CAPACITY: usize = 1024;

/// The fewest messages one measured batch moves, so that spawning and
/// joining the threads is negligible next to the messages.
const MIN_MESSAGES: u64 = 100_000;

/// Message `index` as sent: a bijection (multiplication by an odd constant),
/// so that priority queues see keys in no particular order.
#[inline]
fn message(index: u64) -> u64 {
    index.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

// ---------------------------------------------------------------------------
// The contestants
// ---------------------------------------------------------------------------

/// A bounded channel or queue as the benchmark drives it: endpoints that
/// producers and consumers take into their threads.
trait Channel {
    type Sender: Send;
    type Receiver: Send;

    /// A fresh channel of `CAPACITY`, with one sender per producer and one
    /// receiver per consumer.
    fn endpoints(producers: usize, consumers: usize) -> (Vec<Self::Sender>, Vec<Self::Receiver>);
    /// Sends `value`, waiting while the channel is full.
    fn send(sender: &Self::Sender, value: u64);
    /// Receives a value, waiting while the channel is empty.
    fn recv(receiver: &Self::Receiver) -> u64;
}

/// Endpoints that are all the same shared object.
fn shared<Q>(queue: Q, producers: usize, consumers: usize) -> (Vec<Arc<Q>>, Vec<Arc<Q>>) {
    let queue = Arc::new(queue);
    (
        (0..producers).map(|_| Arc::clone(&queue)).collect(),
        (0..consumers).map(|_| Arc::clone(&queue)).collect(),
    )
}

/// Which `JoinableQueue` constructor a verisync row uses.
trait Kind {
    fn build() -> JoinableQueue<u64>;
}

struct Fifo;
struct Lifo;
struct Priority;

impl Kind for Fifo {
    fn build() -> JoinableQueue<u64> {
        JoinableQueue::bounded(CAPACITY)
    }
}

impl Kind for Lifo {
    fn build() -> JoinableQueue<u64> {
        JoinableQueue::lifo_bounded(CAPACITY)
    }
}

impl Kind for Priority {
    fn build() -> JoinableQueue<u64> {
        JoinableQueue::priority_bounded(CAPACITY)
    }
}

/// verisync `JoinableQueue`: `put`, and `get` (with `task_done` after every
/// get when `TASK_DONE`).
struct Verisync<K, const TASK_DONE: bool>(K);

impl<K: Kind, const TASK_DONE: bool> Channel for Verisync<K, TASK_DONE> {
    type Sender = Arc<CachePadded<JoinableQueue<u64>>>;
    type Receiver = Arc<CachePadded<JoinableQueue<u64>>>;

    fn endpoints(producers: usize, consumers: usize) -> (Vec<Self::Sender>, Vec<Self::Receiver>) {
        shared(CachePadded::new(K::build()), producers, consumers)
    }

    #[inline]
    fn send(sender: &Self::Sender, value: u64) {
        sender.put(value).expect("the queue is never shut down");
    }

    #[inline]
    fn recv(receiver: &Self::Receiver) -> u64 {
        let value = receiver.get().expect("the queue is never shut down");
        if TASK_DONE {
            receiver.task_done().expect("one task_done per get");
        }
        value
    }
}

/// `crossbeam_channel::bounded`.
struct Crossbeam;

impl Channel for Crossbeam {
    type Sender = crossbeam_channel::Sender<u64>;
    type Receiver = crossbeam_channel::Receiver<u64>;

    fn endpoints(producers: usize, consumers: usize) -> (Vec<Self::Sender>, Vec<Self::Receiver>) {
        let (sender, receiver) = crossbeam_channel::bounded(CAPACITY);
        (vec![sender; producers], vec![receiver; consumers])
    }

    #[inline]
    fn send(sender: &Self::Sender, value: u64) {
        sender.send(value).expect("a receiver is alive");
    }

    #[inline]
    fn recv(receiver: &Self::Receiver) -> u64 {
        receiver.recv().expect("a sender is alive")
    }
}

/// `flume::bounded`.
struct Flume;

impl Channel for Flume {
    type Sender = flume::Sender<u64>;
    type Receiver = flume::Receiver<u64>;

    fn endpoints(producers: usize, consumers: usize) -> (Vec<Self::Sender>, Vec<Self::Receiver>) {
        let (sender, receiver) = flume::bounded(CAPACITY);
        (vec![sender; producers], vec![receiver; consumers])
    }

    #[inline]
    fn send(sender: &Self::Sender, value: u64) {
        sender.send(value).expect("a receiver is alive");
    }

    #[inline]
    fn recv(receiver: &Self::Receiver) -> u64 {
        receiver.recv().expect("a sender is alive")
    }
}

/// `std::sync::mpsc::sync_channel` (one consumer only: its `Receiver` is
/// neither `Clone` nor `Sync`).
struct StdSync;

impl Channel for StdSync {
    type Sender = std::sync::mpsc::SyncSender<u64>;
    type Receiver = std::sync::mpsc::Receiver<u64>;

    fn endpoints(producers: usize, consumers: usize) -> (Vec<Self::Sender>, Vec<Self::Receiver>) {
        assert_eq!(consumers, 1, "std's Receiver cannot be shared");
        let (sender, receiver) = std::sync::mpsc::sync_channel(CAPACITY);
        (vec![sender; producers], vec![receiver])
    }

    #[inline]
    fn send(sender: &Self::Sender, value: u64) {
        sender.send(value).expect("the receiver is alive");
    }

    #[inline]
    fn recv(receiver: &Self::Receiver) -> u64 {
        receiver.recv().expect("a sender is alive")
    }
}

/// Where a baseline keeps its items, in its order.
trait Store: Default + Send {
    fn push(&mut self, value: u64);
    fn pop(&mut self) -> Option<u64>;
    fn len(&self) -> usize;
}

impl Store for VecDeque<u64> {
    #[inline]
    fn push(&mut self, value: u64) {
        self.push_back(value);
    }
    #[inline]
    fn pop(&mut self) -> Option<u64> {
        self.pop_front()
    }
    #[inline]
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
}

impl Store for Vec<u64> {
    #[inline]
    fn push(&mut self, value: u64) {
        Vec::push(self, value);
    }
    #[inline]
    fn pop(&mut self) -> Option<u64> {
        Vec::pop(self)
    }
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// A min-heap, like verisync's priority order (the values are distinct, so
/// there are no ties whose order could differ).
impl Store for BinaryHeap<Reverse<u64>> {
    #[inline]
    fn push(&mut self, value: u64) {
        BinaryHeap::push(self, Reverse(value));
    }
    #[inline]
    fn pop(&mut self) -> Option<u64> {
        BinaryHeap::pop(self).map(|Reverse(value)| value)
    }
    #[inline]
    fn len(&self) -> usize {
        BinaryHeap::len(self)
    }
}

/// The same min-heap, but with verisync's guarantee that equal items
/// leave in insertion order: each value carries an insertion number, as a
/// user of `BinaryHeap` needing that guarantee would write it. Reported
/// beside the issue's baseline, not instead of it.
#[derive(Default)]
struct FifoTiesHeap {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    next_insertion: u64,
}

impl Store for FifoTiesHeap {
    #[inline]
    fn push(&mut self, value: u64) {
        self.heap.push(Reverse((value, self.next_insertion)));
        self.next_insertion += 1;
    }
    #[inline]
    fn pop(&mut self) -> Option<u64> {
        self.heap.pop().map(|Reverse((value, _))| value)
    }
    #[inline]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

/// The textbook bounded queue: a store under a `parking_lot::Mutex`, with
/// `not_empty` and `not_full` `parking_lot::Condvar`s.
struct CondvarQueue<S> {
    items: parking_lot::Mutex<S>,
    not_empty: parking_lot::Condvar,
    not_full: parking_lot::Condvar,
}

impl<S: Store> CondvarQueue<S> {
    fn new() -> Self {
        let mut store = S::default();
        // Room for a full queue up front, like the ring's slots.
        for _ in 0..CAPACITY {
            store.push(0);
        }
        while store.pop().is_some() {}
        Self {
            items: parking_lot::Mutex::new(store),
            not_empty: parking_lot::Condvar::new(),
            not_full: parking_lot::Condvar::new(),
        }
    }

    #[inline]
    fn put(&self, value: u64) {
        let mut items = self.items.lock();
        while items.len() >= CAPACITY {
            self.not_full.wait(&mut items);
        }
        items.push(value);
        drop(items);
        self.not_empty.notify_one();
    }

    #[inline]
    fn get(&self) -> u64 {
        let mut items = self.items.lock();
        let value = loop {
            match items.pop() {
                Some(value) => break value,
                None => self.not_empty.wait(&mut items),
            }
        };
        drop(items);
        self.not_full.notify_one();
        value
    }
}

/// The textbook queue with Python's `queue.Queue` task accounting, the
/// same guarantee as a verisync queue with `task_done`: an `unfinished`
/// count beside the store under the same mutex (a put adds one), and a
/// `task_done` that locks, subtracts one and, at 0, notifies an
/// `all_tasks_done` `Condvar` (what `join` would wait on). A get followed by
/// `task_done` is two lock cycles, as in Python.
struct TaskCountingQueue<S> {
    queue: CondvarQueue<Counted<S>>,
    all_tasks_done: parking_lot::Condvar,
}

/// A store and its unfinished tasks.
#[derive(Default)]
struct Counted<S> {
    store: S,
    unfinished: usize,
}

impl<S: Store> Store for Counted<S> {
    #[inline]
    fn push(&mut self, value: u64) {
        self.store.push(value);
        self.unfinished += 1;
    }
    #[inline]
    fn pop(&mut self) -> Option<u64> {
        self.store.pop()
    }
    #[inline]
    fn len(&self) -> usize {
        self.store.len()
    }
}

impl<S: Store> TaskCountingQueue<S> {
    fn new() -> Self {
        let queue = CondvarQueue::<Counted<S>>::new();
        // `CondvarQueue::new` filled and emptied the store once.
        queue.items.lock().unfinished = 0;
        Self {
            queue,
            all_tasks_done: parking_lot::Condvar::new(),
        }
    }

    #[inline]
    fn task_done(&self) {
        let mut items = self.queue.items.lock();
        items.unfinished = items
            .unfinished
            .checked_sub(1)
            .expect("task_done called more times than items were put");
        if items.unfinished == 0 {
            self.all_tasks_done.notify_all();
        }
    }
}

/// The task-counting baseline ([`TaskCountingQueue`]): `put`, and `get`
/// followed by `task_done`.
struct TaskBaseline<S>(S);

impl<S: Store> Channel for TaskBaseline<S> {
    type Sender = Arc<CachePadded<TaskCountingQueue<S>>>;
    type Receiver = Arc<CachePadded<TaskCountingQueue<S>>>;

    fn endpoints(producers: usize, consumers: usize) -> (Vec<Self::Sender>, Vec<Self::Receiver>) {
        shared(
            CachePadded::new(TaskCountingQueue::new()),
            producers,
            consumers,
        )
    }

    #[inline]
    fn send(sender: &Self::Sender, value: u64) {
        sender.queue.put(value);
    }

    #[inline]
    fn recv(receiver: &Self::Receiver) -> u64 {
        let value = receiver.queue.get();
        receiver.task_done();
        value
    }
}

/// The parking_lot `Mutex` + two `Condvar`s baseline over store `S`.
struct Baseline<S>(S);

impl<S: Store> Channel for Baseline<S> {
    type Sender = Arc<CachePadded<CondvarQueue<S>>>;
    type Receiver = Arc<CachePadded<CondvarQueue<S>>>;

    fn endpoints(producers: usize, consumers: usize) -> (Vec<Self::Sender>, Vec<Self::Receiver>) {
        shared(CachePadded::new(CondvarQueue::new()), producers, consumers)
    }

    #[inline]
    fn send(sender: &Self::Sender, value: u64) {
        sender.put(value);
    }

    #[inline]
    fn recv(receiver: &Self::Receiver) -> u64 {
        receiver.get()
    }
}

// ---------------------------------------------------------------------------
// Running a batch
// ---------------------------------------------------------------------------

/// Moves at least `iters` (and at least `MIN_MESSAGES`) messages through a
/// fresh `C` from `producers` to `consumers` threads; returns the wall time
/// scaled to exactly `iters` messages.
fn run<C: Channel>(iters: u64, producers: usize, consumers: usize) -> Duration {
    let (p, c) = (producers as u64, consumers as u64);
    let total = iters.max(MIN_MESSAGES).div_ceil(p * c) * p * c;
    let (per_producer, per_consumer) = (total / p, total / c);
    let (senders, receivers) = C::endpoints(producers, consumers);
    let barrier = Barrier::new(producers + consumers);

    let results: Vec<(Instant, Instant, u64)> = thread::scope(|scope| {
        let barrier = &barrier;
        let mut handles = Vec::with_capacity(producers + consumers);
        for (index, sender) in senders.into_iter().enumerate() {
            let first = index as u64 * per_producer;
            handles.push(scope.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for index in first..first + per_producer {
                    C::send(&sender, message(index));
                }
                (start, Instant::now(), 0)
            }));
        }
        for receiver in receivers {
            handles.push(scope.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut sum = 0u64;
                for _ in 0..per_consumer {
                    sum = sum.wrapping_add(black_box(C::recv(&receiver)));
                }
                (start, Instant::now(), sum)
            }));
        }
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a benchmark thread panicked"))
            .collect()
    });

    let sum = results
        .iter()
        .fold(0u64, |sum, result| sum.wrapping_add(result.2));
    let expected = (0..total).fold(0u64, |sum, index| sum.wrapping_add(message(index)));
    assert_eq!(sum, expected, "messages were lost or duplicated");

    let first_start = results.iter().map(|result| result.0).min().unwrap();
    let last_end = results.iter().map(|result| result.1).max().unwrap();
    (last_end - first_start).mul_f64(iters as f64 / total as f64)
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

fn bench<C: Channel>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    producers: usize,
    consumers: usize,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| run::<C>(iters, producers, consumers));
    });
}

fn fifo(c: &mut Criterion) {
    for (producers, consumers) in [(1, 1), (2, 2)] {
        let mut group = c.benchmark_group(format!("fifo_{producers}p{consumers}c"));
        bench::<Verisync<Fifo, true>>(&mut group, "verisync_task_done", producers, consumers);
        bench::<Verisync<Fifo, false>>(&mut group, "verisync", producers, consumers);
        bench::<Crossbeam>(&mut group, "crossbeam_channel", producers, consumers);
        bench::<Flume>(&mut group, "flume", producers, consumers);
        if consumers == 1 {
            bench::<StdSync>(&mut group, "std_sync_channel", producers, consumers);
        }
        bench::<Baseline<VecDeque<u64>>>(
            &mut group,
            "parking_lot_mutex_condvar",
            producers,
            consumers,
        );
        bench::<TaskBaseline<VecDeque<u64>>>(
            &mut group,
            "parking_lot_mutex_condvar_task_done",
            producers,
            consumers,
        );
        group.finish();
    }
}

fn priority(c: &mut Criterion) {
    for (producers, consumers) in [(1, 1), (2, 2)] {
        let mut group = c.benchmark_group(format!("priority_{producers}p{consumers}c"));
        bench::<Verisync<Priority, true>>(&mut group, "verisync_task_done", producers, consumers);
        bench::<Verisync<Priority, false>>(&mut group, "verisync", producers, consumers);
        bench::<Baseline<BinaryHeap<Reverse<u64>>>>(
            &mut group,
            "parking_lot_mutex_condvar",
            producers,
            consumers,
        );
        bench::<Baseline<FifoTiesHeap>>(
            &mut group,
            "parking_lot_mutex_condvar_fifo_ties",
            producers,
            consumers,
        );
        bench::<TaskBaseline<FifoTiesHeap>>(
            &mut group,
            "parking_lot_mutex_condvar_fifo_ties_task_done",
            producers,
            consumers,
        );
        group.finish();
    }
}

fn lifo(c: &mut Criterion) {
    for (producers, consumers) in [(1, 1), (2, 2)] {
        let mut group = c.benchmark_group(format!("lifo_{producers}p{consumers}c"));
        bench::<Verisync<Lifo, true>>(&mut group, "verisync_task_done", producers, consumers);
        bench::<Verisync<Lifo, false>>(&mut group, "verisync", producers, consumers);
        bench::<Baseline<Vec<u64>>>(
            &mut group,
            "parking_lot_mutex_condvar",
            producers,
            consumers,
        );
        bench::<TaskBaseline<Vec<u64>>>(
            &mut group,
            "parking_lot_mutex_condvar_task_done",
            producers,
            consumers,
        );
        group.finish();
    }
}

/// The LIFO rows on one thread: what a put and a get cost without any
/// contention, the floor under `lifo_1p1c` (whose baseline threads mostly
/// take turns, each running on an uncontended lock while the other sleeps).
fn lifo_one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("lifo_one_thread");
    for task_done in [true, false] {
        let name = if task_done {
            "verisync_task_done"
        } else {
            "verisync"
        };
        group.bench_function(name, |b| {
            let queue = Lifo::build();
            let mut index = 0u64;
            b.iter(|| {
                index += 1;
                queue.put(message(index)).expect("the queue is open");
                let value = queue.get().expect("the queue is open");
                if task_done {
                    queue.task_done().expect("one task_done per get");
                }
                black_box(value)
            });
        });
    }
    group.bench_function("parking_lot_mutex_condvar", |b| {
        let queue = CondvarQueue::<Vec<u64>>::new();
        let mut index = 0u64;
        b.iter(|| {
            index += 1;
            queue.put(message(index));
            black_box(queue.get())
        });
    });
    group.finish();
}

// ---------------------------------------------------------------------------

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = fifo, priority, lifo, lifo_one_thread
}
criterion_main!(benches);
