//! [`ProcessPool`]: functions run in worker processes.
//!
//! # Implementation
//!
//! Parent side, per worker process (a *slot*): a writer thread takes jobs
//! from the pool's queue and writes them to the worker's task pipe; a
//! reader thread reads the answers, which come back in task order, and
//! resolves each job's [`TaskHandle`].
//!
//! Cancelling: a job waiting in the pool's queue is cancelled in the parent
//! alone. A job already sent to a worker (the writer sends ahead, see
//! below) is cancelled on the worker's task board (`board.rs`), shared
//! memory where one compare-exchange decides whether the worker starts it
//! or `cancel` wins; then `cancel` resolves it `Cancelled` at once (its
//! callbacks run on the cancelling thread), and the worker, reaching it,
//! skips it and answers `Skipped`, which the reader only counts. The job's
//! `place` (under its lock) says where it waits; the writer sets it,
//! under the same lock as it claims the job, and the reader clears it when
//! the job's answer comes (or its worker is gone), so `cancel` never
//! touches a board cell that was reused. Once `cancel` won the cell, the
//! task's place says `Recalled` for good, so a later `cancel` reports the
//! cancellation even after the reader took the task back.
//!
//! How many tasks a worker may have unanswered adapts to how long its
//! tasks take: about a millisecond's worth, between `MIN_IN_FLIGHT` (one
//! running, one waiting, so the worker never idles on the parent) and
//! `MAX_IN_FLIGHT` (tiny tasks travel in batches). So a burst of long tasks
//! spreads over every worker instead of piling onto the first, and a flood
//! of tiny ones does not pay a round trip each.
//!
//! When a worker's result pipe ends or carries garbage, the reader (for
//! garbage: kills and) reaps the worker — waiting for it to end without
//! holding its lock, so the watcher and `terminate` can still kill a
//! worker whose task closed the pipe and runs on — fails only the task it
//! was running (the one its board shows started) with
//! `WorkerDied`, `TimedOut` or `Serialization`, puts the tasks queued
//! behind it back on the pool's queue, starts a replacement, and only then
//! reports the failure (so whoever sees it also sees the replacement). If
//! no task on it had started, they all go back; the head of its in-flight
//! list (the task it was reading, or waiting for) gets a strike, and at
//! its `STRIKES_BEFORE_START`th it is taken for the cause and fails (a
//! frame that kills whichever worker reads it must not kill them all). A
//! worker that reaches `max_tasks_per_worker` exits cleanly and is
//! replaced the same way. A replaced worker's threads are joined when the
//! next worker is attached.
//!
//! With a `task_timeout`, a watcher thread times each worker's running
//! task by the worker's own clock on its board (from the moment the worker
//! started it until it returned), so neither the time an answer waits for
//! the reader nor the reader's time in callbacks counts against a task. It
//! sleeps until the earliest deadline (re-checking a busy worker whose task
//! has not started every `task_timeout`), and kills a worker only after
//! claiming its running task on the board, so it kills exactly the task
//! it reports `TimedOut`. It runs until the pool stops, also after the
//! pool broke.
//!
//! Every job leaves the pool exactly once — resolved by a reader, discarded
//! by a writer because it was cancelled, or cancelled by `terminate` — and
//! `outstanding` counts the jobs still inside, so a graceful `shutdown` can
//! wait for zero before it closes the queue (tasks requeued after a worker
//! died must still find an open queue).
//!
//! User code (callbacks, a result's `Drop`) runs on the pool's own reader
//! and writer threads, and may shut the pool down there — also by dropping
//! the pool's last `Arc`. Such a thread cannot wait for the pool to drain
//! (its own job is still inside) nor join itself, so each of the pool's
//! threads is marked (`OWN_POOL`), and there `shutdown` only closes the
//! pool and sets `stop_when_drained`: the last job to leave then stops the
//! pool without waiting (`begin_stop`: closes the queue, so the writers
//! end, the workers exit and their readers reap them; stops the watcher).
//! `terminate` there kills the workers and stops the same way. A pool
//! thread never joins a thread; a later `shutdown` from another thread
//! joins them all, and if there is none, they end on their own, detached.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{BufReader, BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::board::{monotonic_nanos, Board};
use super::child::{start_worker, worker_died, WorkerConfig, WorkerProcess};
use super::crossing::{check_argument_size, decode_result};
use super::function::{identity_of_initializer, prepare_task, PreparedTask};
use super::map::{ChunkSize, ProcessMap, ProcessMapUnordered};
use super::wire::{
    read_body, read_header, write_frame, write_task_frame, FromWorker, ReadError, ToWorker,
    DEFAULT_MAX_FRAME,
};
use super::worker::refuse_nested_start;
use crate::condition::Condition;
use crate::mutex::Mutex;
use crate::panic_payload::take_panic_message;
use crate::pool::task::{Completion, HoldsCompletion, TaskError, TaskHandle};
use crate::queue::{GetError, JoinableQueue};
use crate::sys::time::deadline_after;

/// Fewest unanswered tasks per worker: one running, one waiting.
const MIN_IN_FLIGHT: usize = 2;
/// Most unanswered tasks per worker (tiny tasks).
const MAX_IN_FLIGHT: usize = 64;
/// Tasks in flight per worker should take about this long in total.
const IN_FLIGHT_WORK: Duration = Duration::from_millis(1);
/// How many times a task may be next on a worker that dies (or sends
/// garbage) before any task on it started: at this strike it fails with
/// that death instead of going back on the queue (see `read_results`).
const STRIKES_BEFORE_START: u8 = 3;

/// A process pool task's shared state: its completion cell and, while it
/// is sent to a worker, where to cancel it.
struct ProcessTask<R> {
    completion: Completion<R>,
    place: Mutex<Place>,
}

/// Where a task is, as far as `cancel` is concerned.
///
/// `Parent` → `Sent` (the writer sends it) → `Parent` (its answer came,
/// or its worker died before it started: put back on the queue), or
/// `Sent` → `Recalled` (`cancel` won its board cell), for good. Kept in
/// the parent's own memory, because the board is shared with the worker
/// and so untrusted: what the parent resolved must not depend on what a
/// worker may write there later.
enum Place {
    /// In the pool's queue, or answered: its completion tells.
    Parent,
    /// Sent to a worker: the board and task id it waits under.
    Sent { board: Arc<Board>, id: u64 },
    /// A `cancel` won its board cell, and resolves it `Cancelled`.
    Recalled,
}

/// What the first half of a `cancel` found.
#[derive(Debug, PartialEq)]
enum Recall {
    /// It was in the queue (and is resolved now), or is cancelled already
    /// or being resolved so by an earlier `cancel`.
    Cancelled,
    /// This `cancel` won its board cell: it must resolve the task.
    Won,
    /// It started or finished: too late.
    TooLate,
}

impl<R> ProcessTask<R> {
    /// The first half of `cancel`, under the place's lock.
    fn recall(&self) -> Recall {
        let mut place = self.place.lock();
        if self.completion.cancel() {
            return Recall::Cancelled;
        }
        match &*place {
            Place::Recalled => Recall::Cancelled,
            Place::Sent { board, id } => {
                if board.cancel(*id) {
                    *place = Place::Recalled;
                    Recall::Won
                } else {
                    Recall::TooLate
                }
            }
            Place::Parent => Recall::TooLate,
        }
    }
}

impl<R: Send> HoldsCompletion<R> for ProcessTask<R> {
    fn completion(&self) -> &Completion<R> {
        &self.completion
    }

    fn cancel(&self) -> bool {
        // (Not under the place's lock: callbacks may touch this handle.)
        match self.recall() {
            Recall::Won => {
                // The writer claimed the cell when it sent the task; the
                // worker will skip it, so resolving it falls to us.
                self.completion.finish(Err(TaskError::Cancelled));
                true
            }
            Recall::Cancelled => true,
            Recall::TooLate => false,
        }
    }
}

/// The untyped end of a job, for the writer and the reader.
trait Resolver: Send + Sync {
    /// Claims the job, unless a `cancel` resolved it already.
    fn claim(&self) -> bool;
    /// The writer sends the job as task `id` under `board`: claims it and
    /// records where it waits. `false` if it was cancelled meanwhile (it is
    /// resolved; it leaves the pool).
    fn send(&self, board: &Arc<Board>, id: u64) -> bool;
    /// The job's answer came or its worker is gone: forgets where it
    /// waited. `true` if it was cancelled there (`cancel` resolved it).
    fn take_back(&self) -> bool;
    /// Its worker is gone before it started: forgets where it waited and,
    /// unless it was cancelled there (then `true`: `cancel` resolved it),
    /// gives back the claim, so it is unstarted again, in the queue as far
    /// as `cancel` is concerned.
    fn put_back(&self) -> bool;
    fn resolve(&self, outcome: Result<Vec<u8>, TaskError>);
}

impl<R: DeserializeOwned + Send> Resolver for ProcessTask<R> {
    fn claim(&self) -> bool {
        self.completion.claim()
    }

    fn send(&self, board: &Arc<Board>, id: u64) -> bool {
        let mut place = self.place.lock();
        if !self.completion.claim() {
            return false;
        }
        board.sent(id);
        *place = Place::Sent {
            board: Arc::clone(board),
            id,
        };
        true
    }

    fn take_back(&self) -> bool {
        let mut place = self.place.lock();
        match *place {
            // Stays so: a later `cancel` still reports the cancellation.
            Place::Recalled => true,
            Place::Sent { .. } | Place::Parent => {
                *place = Place::Parent;
                false
            }
        }
    }

    fn put_back(&self) -> bool {
        // Under the lock `cancel` holds while it looks: it sees the task
        // either on the board or unclaimed.
        let mut place = self.place.lock();
        if let Place::Recalled = *place {
            return true;
        }
        *place = Place::Parent;
        self.completion.unclaim();
        false
    }

    fn resolve(&self, outcome: Result<Vec<u8>, TaskError>) {
        self.completion.finish(decode_result(outcome));
    }
}

/// A task on its way to a worker.
struct Job {
    function: i64,
    argument: Vec<u8>,
    handle: Arc<dyn Resolver>,
    /// How many workers died (or sent garbage) while this task was next
    /// on them and no task on them had started; at `STRIKES_BEFORE_START`
    /// it fails instead of going back on the queue.
    strikes: u8,
}

struct InFlight {
    id: u64,
    job: Job,
    sent: Instant,
}

struct Flight {
    jobs: VecDeque<InFlight>,
    /// When the last answer arrived.
    last_answer: Option<Instant>,
    /// Average time the worker spends on a task (moving average).
    task_time: Option<Duration>,
    /// How many unanswered tasks the writer may have out.
    limit: usize,
}

impl Flight {
    fn new() -> Self {
        Self {
            jobs: VecDeque::new(),
            last_answer: None,
            task_time: None,
            limit: MIN_IN_FLIGHT,
        }
    }

    /// Learns from a task answered now that was sent at `sent`.
    fn learn(&mut self, sent: Instant, now: Instant) {
        let began = self.last_answer.map_or(sent, |last| last.max(sent));
        let sample = now.saturating_duration_since(began);
        let average = match self.task_time {
            Some(average) => (average * 7 + sample) / 8,
            None => sample,
        };
        self.task_time = Some(average);
        self.last_answer = Some(now);
        let fits = IN_FLIGHT_WORK.as_nanos() / average.as_nanos().max(1);
        self.limit = usize::try_from(fits)
            .unwrap_or(MAX_IN_FLIGHT)
            .clamp(MIN_IN_FLIGHT, MAX_IN_FLIGHT);
    }
}

/// One worker process and its bookkeeping.
struct Slot {
    pid: u32,
    child: Mutex<Child>,
    /// Shared with the worker: which task starts, runs, is cancelled.
    board: Arc<Board>,
    flight: Mutex<Flight>,
    /// Signalled when an answer makes room, and when the slot retires.
    flight_changed: Condition,
    /// The reader saw the worker go: the writer must stop.
    retired: AtomicBool,
    /// The task id the watcher killed the worker for.
    timed_out_task: Mutex<Option<u64>>,
    /// While the reader is inside a frame: when bytes last arrived.
    frame_progress: Mutex<Option<Instant>>,
    /// The watcher killed the worker for stalling inside a frame.
    stalled: Mutex<bool>,
}

struct Shared {
    queue: JoinableQueue<Job>,
    config: WorkerConfig,
    task_timeout: Option<Duration>,
    worker_count: usize,
    slots: Mutex<Vec<Arc<Slot>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Jobs submitted and not yet out of the pool; `drained` signals zero.
    outstanding: Mutex<Outstanding>,
    drained: Condition,
    /// No new submits (graceful shutdown began, or terminate).
    closing: AtomicBool,
    /// Workers are being killed: unanswered tasks resolve `Cancelled`.
    terminating: AtomicBool,
    /// No more replacement workers (the pool is stopping, or broke).
    stopping: AtomicBool,
    /// `stop` began: the watcher exits. (Not `stopping`: after the pool
    /// broke, the surviving workers' tasks must still time out.)
    watcher_stop: AtomicBool,
    /// A replacement worker could not start: every later task fails so.
    broken: Mutex<Option<TaskError>>,
    /// Held while stopping.
    stop_lock: Mutex<()>,
    /// When the watcher plans to wake (`None`: only when told); its lock
    /// also orders deadline announcements with the watcher's scans.
    watch: Mutex<Option<Instant>>,
    watch_changed: Condition,
}

/// The jobs still inside the pool.
struct Outstanding {
    jobs: usize,
    /// A `shutdown` on one of the pool's own threads (which cannot wait)
    /// asked for the pool to stop once `jobs` reaches zero.
    stop_when_drained: bool,
}

std::thread_local! {
    /// The pool whose reader, writer or watcher this thread is (its
    /// `Shared`'s address, which stays that pool's while the thread holds
    /// its `Arc`); 0 on every other thread.
    static OWN_POOL: Cell<usize> = const { Cell::new(0) };
}

/// Restores the calling thread's `OWN_POOL` when dropped (also when a
/// callback panics); from [`Shared::act_as_own_thread`].
struct OwnThreadScope {
    before: usize,
}

impl Drop for OwnThreadScope {
    fn drop(&mut self) {
        OWN_POOL.with(|own| own.set(self.before));
    }
}

impl Shared {
    /// Marks the calling thread as one of this pool's own (see `OWN_POOL`).
    fn mark_own_thread(self: &Arc<Self>) {
        OWN_POOL.with(|own| own.set(Arc::as_ptr(self) as usize));
    }

    /// Marks the calling thread as one of this pool's own until the
    /// returned guard drops (then it is what it was before): for a user
    /// thread that runs the pool's callbacks while it holds jobs inside.
    fn act_as_own_thread(&self) -> OwnThreadScope {
        let before = OWN_POOL.with(|own| own.replace(std::ptr::from_ref(self) as usize));
        OwnThreadScope { before }
    }

    /// Whether the calling thread is one of this pool's own threads, which
    /// `shutdown` and `terminate` must not wait for.
    fn on_own_thread(&self) -> bool {
        OWN_POOL.with(|own| own.get() == std::ptr::from_ref(self) as usize)
    }

    fn job_left(&self) {
        let stop = {
            let mut outstanding = self.outstanding.lock();
            outstanding.jobs -= 1;
            if outstanding.jobs == 0 {
                self.drained.notify_all();
            }
            outstanding.jobs == 0 && outstanding.stop_when_drained
        };
        if stop {
            self.begin_stop();
        }
    }

    /// Stops the pool without waiting for anything: no more replacement
    /// workers; the queue closes, so the writers end and the workers exit
    /// (their readers reap them); the watcher ends. Idempotent.
    fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.queue.shutdown();
        // Under the watcher's lock, so it cannot miss the flag between its
        // check and its wait.
        let _alarm = self.watch.lock();
        self.watcher_stop.store(true, Ordering::SeqCst);
        self.watch_changed.notify_all();
    }

    /// Resolves a job with its outcome. User code runs here — the
    /// result's `Deserialize` (caught in `decode_result`), and its `Drop` if
    /// the handle is gone and this is the last reference — so a panic is
    /// caught: it must not kill the reader thread, which would strand the
    /// worker's other tasks and hang `shutdown`.
    fn resolve(&self, job: Job, outcome: Result<Vec<u8>, TaskError>) {
        let handle = job.handle;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || {
            handle.resolve(outcome);
            drop(handle);
        })) {
            eprintln!(
                "verisync: dropping a process task's result panicked ({}); the pool carries on",
                take_panic_message(payload)
            );
        }
        self.job_left();
    }

    /// Puts a job back for another worker, or resolves it if it can't be.
    fn requeue(&self, job: Job) {
        // Copied out, so the lock is not held while `resolve_unstarted` runs
        // callbacks (one may submit to this pool, which takes it again).
        let broken = self.broken.lock().clone();
        if let Some(error) = broken {
            self.resolve_unstarted(job, error);
            return;
        }
        if let Err(refused) = self.queue.put(job) {
            let error = if self.terminating.load(Ordering::SeqCst) {
                TaskError::Cancelled
            } else {
                TaskError::ShutDown
            };
            self.resolve_unstarted(refused.0, error);
            return;
        }
        // The pool may have broken between the check and the put; then the
        // drain in `break_pool` may have missed this job: drain again.
        let broken = self.broken.lock().clone();
        if let Some(error) = broken {
            while let Ok(job) = self.queue.try_get() {
                self.resolve_unstarted(job, error.clone());
            }
        }
    }

    /// Tells the watcher about a new deadline, waking it only if it would
    /// otherwise sleep past it (so the common case costs one lock, no wake).
    fn watch_deadline(&self, deadline: Instant) {
        let alarm = self.watch.lock();
        if alarm.is_none_or(|alarm| alarm > deadline) {
            self.watch_changed.notify_all();
        }
    }
}

/// A pool of worker processes running functions on serde-encoded
/// arguments — Python's `ProcessPoolExecutor` / `multiprocessing.Pool`.
///
/// The first line of `main` must be [`verisync::process::init()`](crate::process::init)
/// (in a worker process it serves tasks and never returns; in tests, put
/// [`verisync::process_test_support!();`](crate::process_test_support)
/// anywhere in the test crate). A task may itself use a pool or `spawn`.
///
/// A worker that crashes, aborts, is killed, or exceeds the task timeout
/// fails only the task it was running (`WorkerDied` / `TimedOut`); the
/// pool starts a replacement and every other task completes. A task that
/// had not started on it yet is sent again, to another worker — unless it
/// was the next task on three workers that each died (or sent garbage)
/// before any of their tasks started: then it is taken for the cause
/// (say, its argument is too large for the worker's memory) and fails
/// with that third worker's `WorkerDied` (or `Serialization`). Workers exit
/// when the parent dies (Linux: parent-death signal; everywhere: their task
/// pipe closes), and every child is reaped.
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), verisync::TaskError> {
///     verisync::process::init();
///     let pool = verisync::ProcessPool::new(2)?;
///     assert_eq!(pool.submit(square, 7).join()?, 49);
///     let squares: Vec<u64> = pool.map(square, 1..=4).collect::<Result<_, _>>()?;
///     assert_eq!(squares, [1, 4, 9, 16]);
///     Ok(())
/// }
/// ```
pub struct ProcessPool {
    shared: Arc<Shared>,
}

/// Configures a [`ProcessPool`]; from [`ProcessPool::builder`].
///
/// ```
/// use std::time::Duration;
/// fn setup() { /* runs once in each worker */ }
/// # fn main() -> Result<(), verisync::TaskError> {
/// verisync::process::init();
/// let pool = verisync::ProcessPool::builder()
///     .workers(2)
///     .max_tasks_per_worker(100)
///     .task_timeout(Duration::from_secs(10))
///     .initializer(setup)
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct ProcessPoolBuilder {
    workers: Option<usize>,
    max_tasks_per_worker: Option<u64>,
    task_timeout: Option<Duration>,
    initializer: Option<fn()>,
    max_frame: u32,
}

impl ProcessPoolBuilder {
    /// The number of worker processes (default: the number of CPUs).
    ///
    /// ```
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::builder().workers(2).build().unwrap();
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Replace each worker after it has run this many tasks (Python's
    /// `max_tasks_per_child`), e.g. to bound leaks in the task code.
    ///
    /// ```
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::builder().max_tasks_per_worker(50).build().unwrap();
    /// ```
    pub fn max_tasks_per_worker(mut self, tasks: u64) -> Self {
        self.max_tasks_per_worker = Some(tasks.max(1));
        self
    }

    /// A task running longer than this resolves to `TimedOut`; its worker
    /// is killed and replaced. The clock is the task's own run in its
    /// worker, from the moment it starts until it returns: not the time it
    /// waited behind other tasks, nor the time its answer takes to reach
    /// the parent. `Duration::MAX` means no timeout.
    ///
    /// ```
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::builder()
    ///     .task_timeout(std::time::Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// A function each worker runs once when it starts. If it panics,
    /// `build` fails with `TaskError::Spawn` saying so (and a replacement
    /// worker whose initializer panics stops the pool with that error, instead
    /// of respawning forever).
    ///
    /// ```
    /// fn setup() {}
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::builder().initializer(setup).build().unwrap();
    /// ```
    pub fn initializer(mut self, initializer: fn()) -> Self {
        self.initializer = Some(initializer);
        self
    }

    /// The largest encoded argument or result a task may have, in bytes
    /// (default 64 MiB; at most 4 GiB − 1, the frame format's limit). The
    /// limit applies to whole messages, which add a few bytes around the
    /// value. A task whose argument or result is larger fails alone with
    /// `TaskError::Serialization` saying so; its worker lives on. It also
    /// bounds what a misbehaving worker can make the parent allocate: a
    /// message announcing more is refused before it is read. In a map,
    /// where a chunk's results share one message, each result of a chunk of
    /// several items may take at most half of it less framing,
    /// `(max_frame_size - 96) / 2` bytes ([`ProcessPool::map`] says more).
    ///
    /// ```
    /// fn zeros(n: usize) -> Vec<u8> { vec![0; n] }
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::builder()
    ///     .workers(1)
    ///     .max_frame_size(1 << 20)
    ///     .build()?;
    /// assert_eq!(pool.submit(zeros, 1000).join()?.len(), 1000);
    /// assert!(matches!(
    ///     pool.submit(zeros, 2 << 20).join(),
    ///     Err(verisync::TaskError::Serialization(_))
    /// ));
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame = u32::try_from(bytes).unwrap_or(u32::MAX);
        self
    }

    /// Starts the workers and waits until each is ready.
    ///
    /// Errors: `TaskError::Spawn` if the worker count is 0, a worker cannot
    /// be started, does not report ready (a `main` without `init()`), or its
    /// initializer panics.
    ///
    /// ```
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::builder().build()?;
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    #[track_caller]
    pub fn build(self) -> Result<ProcessPool, TaskError> {
        refuse_nested_start();
        let worker_count = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |count| count.get()));
        if worker_count == 0 {
            return Err(TaskError::Spawn(
                "a process pool with 0 workers could never run a task; ask for at least 1".into(),
            ));
        }
        let shared = Arc::new(Shared {
            queue: JoinableQueue::new(),
            config: WorkerConfig {
                max_tasks: self.max_tasks_per_worker,
                initializer: self.initializer.map(identity_of_initializer).transpose()?,
                max_frame: self.max_frame,
            },
            task_timeout: self.task_timeout,
            worker_count,
            slots: Mutex::new_untracked(Vec::new()),
            threads: Mutex::new_untracked(Vec::new()),
            outstanding: Mutex::new_untracked(Outstanding {
                jobs: 0,
                stop_when_drained: false,
            }),
            drained: Condition::new(),
            closing: AtomicBool::new(false),
            terminating: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            watcher_stop: AtomicBool::new(false),
            broken: Mutex::new_untracked(None),
            stop_lock: Mutex::new_untracked(()),
            watch: Mutex::new_untracked(None),
            watch_changed: Condition::new_unreported(),
        });
        let pool = ProcessPool { shared };
        for _ in 0..worker_count {
            let worker = start_worker(&pool.shared.config, &pool.shared.terminating)?;
            attach(&pool.shared, worker)?;
        }
        let shared = Arc::clone(&pool.shared);
        let watcher = std::thread::Builder::new()
            .name("verisync-watcher".into())
            .spawn(move || {
                shared.mark_own_thread();
                watch_workers(&shared);
            })
            .map_err(|error| cannot_start_thread(&error))?;
        pool.shared.threads.lock().push(watcher);
        Ok(pool)
    }
}

impl ProcessPool {
    /// A pool of `workers` processes.
    ///
    /// ```
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(2)?;
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn new(workers: usize) -> Result<Self, TaskError> {
        Self::builder().workers(workers).build()
    }

    /// A builder with the default settings (one worker per CPU).
    ///
    /// ```
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::builder().workers(1).build()?;
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder {
            workers: None,
            max_tasks_per_worker: None,
            task_timeout: None,
            initializer: None,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    /// Runs `function(argument)` in a worker process. `function` is a `fn`
    /// item, a function pointer `fn(A) -> R` (the worker runs the same
    /// executable, so a pointer into it travels), or a closure that
    /// captures nothing; the argument and the result cross the process
    /// boundary with serde.
    ///
    /// A closure that captures data cannot be sent to another process: it
    /// does not compile, unless its captures happen to be the size of a
    /// pointer, in which case the task fails with
    /// `TaskError::Serialization`. (The check is a `const` assertion, so
    /// `cargo check` does not see it; `cargo build` does.) So do an
    /// argument or a result that cannot be encoded or decoded, or whose
    /// encoding exceeds [`ProcessPoolBuilder::max_frame_size`].
    ///
    /// ```
    /// fn shout(word: String) -> String {
    ///     word.to_uppercase()
    /// }
    /// fn whisper(word: String) -> String {
    ///     word.to_lowercase()
    /// }
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(1)?;
    /// assert_eq!(pool.submit(shout, "hi".to_string()).join()?, "HI");
    /// // A table of tasks: function pointers work too.
    /// let table: [(&str, fn(String) -> String); 2] = [("shout", shout), ("whisper", whisper)];
    /// assert_eq!(pool.submit(table[1].1, "Hey".to_string()).join()?, "hey");
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    ///
    /// A closure that captures data is refused when the program is built:
    ///
    /// ```compile_fail,E0080
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(1).unwrap();
    /// let (low, high) = (1u64, 10u64);
    /// let _ = pool.submit(move |x: u64| x.clamp(low, high), 42);
    /// ```
    #[track_caller]
    pub fn submit<F, A, R>(&self, function: F, argument: A) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_prepared(prepare_task(function, &argument))
    }

    /// Submits a prepared task (or resolves its handle with the error that
    /// kept it from being prepared).
    pub(crate) fn submit_prepared<R>(
        &self,
        prepared: Result<PreparedTask, TaskError>,
    ) -> TaskHandle<R>
    where
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let task = Arc::new(ProcessTask::<R> {
            completion: Completion::new(),
            place: Mutex::new_untracked(Place::Parent),
        });
        let handle = TaskHandle::new(Arc::clone(&task) as Arc<dyn HoldsCompletion<R>>);
        let prepared = match prepared.and_then(|prepared| {
            check_argument_size(&prepared.argument, self.shared.config.max_frame).map(|()| prepared)
        }) {
            Ok(prepared) => prepared,
            Err(error) => {
                task.completion.resolve_unstarted(error);
                return handle;
            }
        };
        let job = Job {
            function: prepared.function,
            argument: prepared.argument,
            handle: task,
            strikes: 0,
        };
        self.enqueue(job);
        handle
    }

    fn enqueue(&self, job: Job) {
        let shared = &self.shared;
        shared.outstanding.lock().jobs += 1;
        if shared.closing.load(Ordering::SeqCst) {
            let refusal = if shared.terminating.load(Ordering::SeqCst) {
                TaskError::Cancelled
            } else {
                TaskError::ShutDown
            };
            shared.resolve_unstarted(job, refusal);
            return;
        }
        shared.requeue(job);
    }

    /// Why the pool takes no more tasks, if it is closed (shut down:
    /// `ShutDown`; terminated: `Cancelled`).
    pub(crate) fn refusal_if_closed(&self) -> Option<TaskError> {
        let shared = &self.shared;
        if !shared.closing.load(Ordering::SeqCst) {
            return None;
        }
        Some(if shared.terminating.load(Ordering::SeqCst) {
            TaskError::Cancelled
        } else {
            TaskError::ShutDown
        })
    }

    /// The largest frame either side accepts.
    pub(crate) fn max_frame(&self) -> u32 {
        self.shared.config.max_frame
    }

    /// Whether tasks have a timeout.
    pub(crate) fn has_task_timeout(&self) -> bool {
        self.shared.task_timeout.is_some()
    }

    /// Applies `function` to every input in the workers; results come in
    /// input order — Python's `Pool.map`/`imap`, lazily.
    ///
    /// Items travel in chunks, one task per chunk, so that tiny items do
    /// not each pay for a task's messages: when the input's length is known
    /// (an exact `size_hint`: ranges, vectors, slices) about
    /// `len / (4 × workers)` items per chunk, as Python's `Pool.map`;
    /// otherwise the chunk size adapts to about 2 ms of work per chunk, from
    /// the time per item the workers report (starting at one item per
    /// chunk, at most 4096). With a task timeout each item is its own task.
    /// [`map_with_chunksize`](Self::map_with_chunksize) sets the size.
    ///
    /// Lazy: it reads `inputs` only as results are consumed, with a
    /// bounded number of chunks in flight (a few per worker), so an endless
    /// input works. Each item succeeds or fails on its own (a panic, or a
    /// value that cannot be encoded or decoded, fails its item only); a
    /// worker that dies while it runs a chunk fails every item of that
    /// chunk with `WorkerDied` (the items of other chunks are unaffected),
    /// and no item ever runs twice. A chunk's results travel in one frame:
    /// in a chunk of several items, a result may take at most half of
    /// [`max_frame_size`](ProcessPoolBuilder::max_frame_size) less 96
    /// bytes of framing, `(max_frame_size - 96) / 2` bytes (the limit is
    /// 64 MiB by default; a larger result fails its item, saying so); map larger results
    /// with a chunk size of 1. Once the pool is shut down, the items
    /// in flight finish, one `Err(ShutDown)` (or `Cancelled`) says the rest
    /// of the input was not run, and the iterator ends.
    ///
    /// ```
    /// fn double(x: u32) -> u32 {
    ///     x * 2
    /// }
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(2)?;
    /// let doubled: Vec<u32> = pool.map(double, 1..=3).collect::<Result<_, _>>()?;
    /// assert_eq!(doubled, [2, 4, 6]);
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    #[track_caller]
    pub fn map<F, I, R>(&self, function: F, inputs: I) -> ProcessMap<'_, F, I::IntoIter, R>
    where
        F: Fn(I::Item) -> R + Copy + Send + 'static,
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let inputs = inputs.into_iter();
        let rule = ChunkSize::for_map(self, &inputs);
        ProcessMap::new(self, function, inputs, rule)
    }

    /// [`map`](Self::map) with `chunksize` items per chunk (Python's
    /// `chunksize`): 1 sends each item as its own task. With a task
    /// timeout, the timeout applies to each whole chunk.
    ///
    /// # Panics
    ///
    /// If `chunksize` is 0.
    ///
    /// ```
    /// fn double(x: u32) -> u32 {
    ///     x * 2
    /// }
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(2)?;
    /// let doubled: Vec<u32> = pool
    ///     .map_with_chunksize(double, 1..=1000, 100)
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(doubled[999], 2000);
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    #[track_caller]
    pub fn map_with_chunksize<F, I, R>(
        &self,
        function: F,
        inputs: I,
        chunksize: usize,
    ) -> ProcessMap<'_, F, I::IntoIter, R>
    where
        F: Fn(I::Item) -> R + Copy + Send + 'static,
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        assert!(
            chunksize > 0,
            "verisync: map_with_chunksize needs a chunk size of at least 1 (1 sends each item \
             as its own task)"
        );
        ProcessMap::new(
            self,
            function,
            inputs.into_iter(),
            ChunkSize::Fixed(chunksize),
        )
    }

    /// [`map`](Self::map), but results come in the order they finish —
    /// Python's `imap_unordered`. The chunk size adapts as for `map` over
    /// an input of unknown length. Lazy, with the same failures and the
    /// same end once the pool is shut down.
    ///
    /// ```
    /// fn double(x: u32) -> u32 {
    ///     x * 2
    /// }
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(2)?;
    /// let mut doubled: Vec<u32> = pool.map_unordered(double, 1..=3).collect::<Result<_, _>>()?;
    /// doubled.sort();
    /// assert_eq!(doubled, [2, 4, 6]);
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    #[track_caller]
    pub fn map_unordered<F, I, R>(
        &self,
        function: F,
        inputs: I,
    ) -> ProcessMapUnordered<'_, F, I::IntoIter, R>
    where
        F: Fn(I::Item) -> R + Copy + Send + 'static,
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        ProcessMapUnordered::new(
            self,
            function,
            inputs.into_iter(),
            ChunkSize::for_unordered(self),
        )
    }

    /// The number of worker processes.
    ///
    /// ```
    /// # verisync::process::init();
    /// assert_eq!(verisync::ProcessPool::new(2)?.workers(), 2);
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn workers(&self) -> usize {
        self.shared.worker_count
    }

    /// The process ids of the current workers.
    ///
    /// ```
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(2)?;
    /// assert_eq!(pool.worker_pids().len(), 2);
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .slots
            .lock()
            .iter()
            .map(|slot| slot.pid)
            .collect()
    }

    /// Refuses new tasks, waits for every submitted task to finish, then
    /// lets the workers exit and reaps them. Idempotent; dropping the pool
    /// does the same.
    ///
    /// Called from a callback (or a result's `Drop`) that runs on one of
    /// the pool's own threads — also by dropping the pool's last `Arc`
    /// there — or on the thread of a [`terminate`](Self::terminate) that
    /// cancels queued tasks, it cannot wait for the task whose callback is running: it
    /// refuses new tasks and returns; the tasks submitted before still run,
    /// then the workers exit and are reaped, without anyone waiting. A
    /// later `shutdown` from another thread waits for all that.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(1)?;
    /// let handle = pool.submit(one, ());
    /// pool.shutdown();
    /// assert_eq!(handle.join()?, 1);
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn shutdown(&self) {
        let shared = &self.shared;
        shared.closing.store(true, Ordering::SeqCst);
        if shared.on_own_thread() {
            stop_when_drained(shared);
            return;
        }
        {
            let mut outstanding = shared.outstanding.lock();
            shared
                .drained
                .wait_while(&mut outstanding, |outstanding| outstanding.jobs > 0);
        }
        self.stop();
    }

    /// Kills the workers now: tasks not yet finished resolve to `Cancelled`.
    /// Every child is reaped before this returns — except when it is called
    /// from a callback on one of the pool's own threads, which cannot wait
    /// for itself: then the workers are killed and reaped without anyone
    /// waiting (a later `shutdown` from another thread waits for that).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// # verisync::process::init();
    /// let pool = verisync::ProcessPool::new(1)?;
    /// let long = pool.submit(nap, 60_000);
    /// pool.terminate();
    /// assert_eq!(long.join(), Err(verisync::TaskError::Cancelled));
    /// # Ok::<(), verisync::TaskError>(())
    /// ```
    pub fn terminate(&self) {
        let shared = &self.shared;
        shared.terminating.store(true, Ordering::SeqCst);
        shared.closing.store(true, Ordering::SeqCst);
        shared.stopping.store(true, Ordering::SeqCst);
        {
            // The queued tasks' callbacks run here; a `shutdown` there must
            // not wait for the pool to drain (their own jobs are inside):
            // it behaves as on a pool thread, and this `terminate` waits.
            let _as_own = shared.act_as_own_thread();
            for job in shared.queue.shutdown_now() {
                shared.resolve_unstarted(job, TaskError::Cancelled);
            }
        }
        for slot in shared.slots.lock().iter() {
            let _ = slot.child.lock().kill();
        }
        self.stop();
    }

    /// Closes the queue (workers finish and exit), then joins every thread.
    /// Serialised, so a second, concurrent caller also returns only when
    /// every thread (and so every worker) is gone. On one of the pool's own
    /// threads it joins nothing (not itself, and not another pool thread,
    /// which may be waiting for the lock held here).
    fn stop(&self) {
        let shared = &self.shared;
        if shared.on_own_thread() {
            shared.begin_stop();
            return;
        }
        let _one_at_a_time = shared.stop_lock.lock();
        shared.begin_stop();
        loop {
            let thread = shared.threads.lock().pop();
            match thread {
                Some(thread) => {
                    let _ = thread.join();
                }
                None => break,
            }
        }
    }
}

impl Shared {
    /// Resolves a job that never ran (unless a `cancel` did).
    fn resolve_unstarted(&self, job: Job, error: TaskError) {
        if job.handle.claim() {
            job.handle.resolve(Err(error));
        }
        self.job_left();
    }
}

/// `shutdown` on one of the pool's own threads: the last job to leave
/// stops the pool (at once if none is left).
#[cold]
fn stop_when_drained(shared: &Shared) {
    let drained = {
        let mut outstanding = shared.outstanding.lock();
        outstanding.stop_when_drained = true;
        outstanding.jobs == 0
    };
    if drained {
        shared.begin_stop();
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ProcessPool")
            .field("workers", &self.worker_pids())
            .field("queued", &self.shared.queue.len())
            .finish()
    }
}

/// Starts the writer and reader threads of a ready worker, and joins the
/// threads of retired workers that have ended (so recycling does not pile
/// up ended-but-unjoined threads and their stacks).
///
/// If a thread cannot start, the worker is let go (its pipes close) and
/// the error returned: the reader is started first, so a worker never runs
/// without one; if the writer then fails, the pool breaks (no new worker
/// could fare better) and the reader retires the worker as usual.
fn attach(shared: &Arc<Shared>, worker: WorkerProcess) -> Result<(), TaskError> {
    let WorkerProcess {
        child,
        tasks,
        results,
    } = worker;
    let mut child = child;
    let board = match Board::create() {
        Ok(board) => Arc::new(board),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TaskError::Spawn(format!(
                "cannot create the shared memory a worker needs: {error}"
            )));
        }
    };
    let slot = Arc::new(Slot {
        pid: child.id(),
        child: Mutex::new_untracked(child),
        board,
        flight: Mutex::new_untracked(Flight::new()),
        flight_changed: Condition::new_unreported(),
        retired: AtomicBool::new(false),
        timed_out_task: Mutex::new_untracked(None),
        frame_progress: Mutex::new_untracked(None),
        stalled: Mutex::new_untracked(false),
    });
    join_ended_threads(shared);
    shared.slots.lock().push(Arc::clone(&slot));
    let reader = {
        let (shared, slot) = (Arc::clone(shared), Arc::clone(&slot));
        std::thread::Builder::new()
            .name(format!("verisync-reader-{}", slot.pid))
            .spawn(move || {
                shared.mark_own_thread();
                read_results(&shared, &slot, results);
            })
    };
    let reader = match reader {
        Ok(reader) => reader,
        Err(error) => {
            shared
                .slots
                .lock()
                .retain(|other| !Arc::ptr_eq(other, &slot));
            let mut child = slot.child.lock();
            let _ = child.kill();
            let _ = child.wait();
            return Err(cannot_start_thread(&error));
        }
    };
    shared.threads.lock().push(reader);
    let writer = {
        let (shared, slot) = (Arc::clone(shared), Arc::clone(&slot));
        std::thread::Builder::new()
            .name(format!("verisync-writer-{}", slot.pid))
            .spawn(move || {
                shared.mark_own_thread();
                write_tasks(&shared, &slot, tasks);
            })
    };
    match writer {
        Ok(writer) => {
            shared.threads.lock().push(writer);
            Ok(())
        }
        Err(error) => {
            // The task pipe was dropped with the closure: the worker exits
            // and its reader retires it, starting no replacement.
            let error = cannot_start_thread(&error);
            break_pool(shared, error.clone());
            Err(error)
        }
    }
}

#[cold]
fn cannot_start_thread(error: &std::io::Error) -> TaskError {
    TaskError::Spawn(format!("cannot start a thread: {error}"))
}

/// Joins the pool's threads that have ended (a retired worker's writer and
/// reader); the others stay for `stop`.
fn join_ended_threads(shared: &Shared) {
    let ended: Vec<JoinHandle<()>> = {
        let mut threads = shared.threads.lock();
        let (ended, running) = std::mem::take(&mut *threads)
            .into_iter()
            .partition(|thread| thread.is_finished());
        *threads = running;
        ended
    };
    for thread in ended {
        let _ = thread.join();
    }
}

/// The writer: queue → task pipe, within the slot's in-flight limit.
///
/// Task ids count up per worker from 0 (a board cell is `id % CELLS`).
fn write_tasks(shared: &Shared, slot: &Slot, mut tasks: BufWriter<ChildStdin>) {
    let board = ToWorker::Board {
        name: slot.board.name().to_owned(),
    };
    if write_frame(&mut tasks, &board).is_err() {
        return; // the worker is gone; the reader replaces it
    }
    let mut written = 0u64;
    let mut frame = Vec::new();
    loop {
        if shared
            .config
            .max_tasks
            .is_some_and(|limit| written >= limit)
        {
            break; // the worker exits after these; the reader replaces it
        }
        // Wait for room; flush before any wait, so the worker is never
        // starved by our buffer.
        {
            let mut flight = slot.flight.lock();
            if flight.jobs.len() >= flight.limit {
                drop(flight);
                if tasks.flush().is_err() {
                    break;
                }
                flight = slot.flight.lock();
                slot.flight_changed.wait_while(&mut flight, |flight| {
                    flight.jobs.len() >= flight.limit && !slot.retired.load(Ordering::SeqCst)
                });
            }
            if slot.retired.load(Ordering::SeqCst) {
                break;
            }
        }
        let job = match shared.queue.try_get() {
            Ok(job) => job,
            Err(GetError::ShutDown) => break,
            Err(GetError::Empty) => {
                if tasks.flush().is_err() {
                    break;
                }
                // The crate's own wait: not reported by the diagnostics.
                match shared.queue.get_unreported() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
        };
        if slot.retired.load(Ordering::SeqCst) {
            shared.requeue(job);
            break;
        }
        let id = written;
        if !job.handle.send(&slot.board, id) {
            // Cancelled while queued: it leaves the pool here.
            shared.job_left();
            continue;
        }
        // The frame, made while the job is ours (the reader owns it once
        // it is in flight), in a buffer kept from task to task.
        frame.clear();
        // Cannot fail: integers and bytes always encode, a `Vec` takes any
        // write, and `submit` refused an argument over the frame limit.
        write_task_frame(&mut frame, id, job.function, &job.argument)
            .expect("a task frame of a checked size always encodes");
        let became_head = {
            let mut flight = slot.flight.lock();
            // Checked under the flight lock, which the reader holds when it
            // retires the slot and takes the stranded jobs: a job is either
            // seen by the reader or requeued here, never stuck in between.
            if slot.retired.load(Ordering::SeqCst) {
                drop(flight);
                if job.handle.put_back() {
                    shared.job_left(); // cancelled on the board meanwhile
                } else {
                    shared.requeue(job);
                }
                break;
            }
            let became_head = flight.jobs.is_empty();
            flight.jobs.push_back(InFlight {
                id,
                job,
                sent: Instant::now(),
            });
            became_head
        };
        if became_head {
            // The worker was idle: the watcher should look again by the
            // time this task could time out. (A timeout too long for an
            // `Instant` never fires.)
            if let Some(deadline) = shared.task_timeout.and_then(deadline_after) {
                shared.watch_deadline(deadline);
            }
        }
        written += 1;
        if tasks.write_all(&frame).is_err() {
            break; // the worker is gone; the reader requeues what it held
        }
    }
    let _ = tasks.flush();
    // Dropping `tasks` closes the pipe: the worker finishes and exits.
}

/// The reader: result pipe → handles; then reaps the worker and replaces it.
fn read_results(shared: &Arc<Shared>, slot: &Arc<Slot>, mut results: BufReader<ChildStdout>) {
    // Set when the garbage that ends this worker is already charged to the
    // task it concerns (resolved, or cancelled): then no stranded task is
    // to blame unless its board shows it started.
    let mut culprit_resolved = false;
    let problem = loop {
        match read_watched_frame(shared, slot, &mut results) {
            Ok(FromWorker::Done { id, outcome }) => {
                let Some(finished) = pop_answered(slot, id) else {
                    break Some(TaskError::Serialization(format!(
                        "worker {} answered task {id}, which it was not running",
                        slot.pid
                    )));
                };
                if finished.job.handle.take_back() {
                    // `cancel` won its cell and resolved it: a worker
                    // keeping the protocol skips it. This one ran it anyway
                    // (or forged the answer): garbage, and the task, already
                    // resolved, only leaves the pool.
                    shared.job_left();
                    culprit_resolved = true;
                    break Some(TaskError::Serialization(format!(
                        "worker {} answered task {id}, which was cancelled before it started",
                        slot.pid
                    )));
                }
                shared.resolve(finished.job, outcome.map_err(TaskError::from));
            }
            Ok(FromWorker::Skipped { id }) => {
                let Some(skipped) = pop_answered(slot, id) else {
                    break Some(TaskError::Serialization(format!(
                        "worker {} skipped task {id}, which it was not running",
                        slot.pid
                    )));
                };
                if !skipped.job.handle.take_back() {
                    // Nobody cancelled it: the worker skipped a task it had
                    // to run (or forged the answer). The task fails so.
                    let error = TaskError::Serialization(format!(
                        "worker {} skipped task {id}, which was not cancelled",
                        slot.pid
                    ));
                    shared.resolve(skipped.job, Err(error.clone()));
                    culprit_resolved = true;
                    break Some(error);
                }
                // `cancel` resolved it when it won the board's cell.
                shared.job_left();
            }
            Ok(FromWorker::Ready { .. }) => {
                break Some(TaskError::Serialization(format!(
                    "worker {} said `Ready` twice",
                    slot.pid
                )))
            }
            Err(ReadError::Closed) => break None,
            Err(ReadError::Garbled(reason)) => {
                break Some(TaskError::Serialization(format!(
                    "garbage from worker {}: {reason}",
                    slot.pid
                )))
            }
        }
    };
    let mut stranded = {
        let mut flight = slot.flight.lock();
        slot.retired.store(true, Ordering::SeqCst);
        // Wake our writer if it waits for room; it sees `retired` and stops.
        slot.flight_changed.notify_all();
        std::mem::take(&mut flight.jobs)
    };
    if problem.is_some() {
        let _ = slot.child.lock().kill();
    }
    // Not under the child's lock: a worker whose pipe ended may live on
    // (its task closed the pipe), and the watcher (its timeout) and
    // `terminate` must still be able to take the lock and kill it.
    wait_until_ended(slot.pid);
    let status = slot.child.lock().wait().ok();
    shared
        .slots
        .lock()
        .retain(|other| !Arc::ptr_eq(other, slot));

    // The task the worker was running: the one its board shows started.
    // It is to blame. Every other task whose board shows it started ran
    // (part of) its course on the worker we killed for garbage (a worker
    // answers before it starts the next task, so only a reader that
    // stopped early on bad output strands two started tasks): it fails
    // with the worker, and is never sent again — its side effects may have
    // happened. Those cancelled on the board are resolved already; the
    // rest never started and go back for the other workers first.
    //
    // When no board shows a started task (and the garbage is not charged
    // already), the worker died or sent garbage before it started the
    // oldest unanswered task: while it read that task's frame, or idle,
    // or because of something an earlier, answered task left behind (a
    // thread that writes garbage or kills the process). That task never
    // ran, so it goes back too, with a strike; only at its
    // `STRIKES_BEFORE_START`th strike is it taken for the cause (a frame
    // that kills whichever worker reads it would otherwise kill worker
    // after worker) and failed with the death or the garbage.
    let started_on_board = stranded
        .iter()
        .position(|job| slot.board.is_started(job.id));
    let culprit = if culprit_resolved {
        None
    } else if started_on_board.is_some() {
        started_on_board
    } else {
        stranded.front_mut().and_then(|next| {
            next.job.strikes = next.job.strikes.saturating_add(1);
            (next.job.strikes >= STRIKES_BEFORE_START).then_some(0)
        })
    };
    let struck_out = culprit.is_some() && started_on_board.is_none();
    let mut head = None;
    let mut killed_with_the_worker = Vec::new();
    for (index, waiting) in stranded.into_iter().enumerate() {
        let started = Some(index) == culprit || slot.board.is_started(waiting.id);
        if !started {
            if waiting.job.handle.put_back() {
                shared.job_left();
            } else {
                // Unstarted again: cancellable while it waits in the queue.
                shared.requeue(waiting.job);
            }
        } else if waiting.job.handle.take_back() {
            shared.job_left();
        } else if Some(index) == culprit {
            head = Some(waiting);
        } else {
            killed_with_the_worker.push(waiting);
        }
    }
    // The replacement starts before the head's failure is reported, so a
    // caller who sees `WorkerDied` also sees the replacement among
    // `worker_pids`.
    if !shared.stopping.load(Ordering::SeqCst) {
        let started = start_worker(&shared.config, &shared.terminating)
            .and_then(|worker| attach(shared, worker));
        // (A start abandoned by `terminate` breaks nothing.)
        if let Err(error) = started {
            if !shared.terminating.load(Ordering::SeqCst) {
                break_pool(shared, error);
            }
        }
    }
    let bystander_problem = if killed_with_the_worker.is_empty() {
        None
    } else {
        problem.clone()
    };
    if let Some(head) = head {
        let error = if shared.terminating.load(Ordering::SeqCst) {
            TaskError::Cancelled
        } else if *slot.timed_out_task.lock() == Some(head.id) {
            // Before `problem`: a worker killed while it wrote its answer
            // leaves a frame cut short, but what happened is the timeout.
            TaskError::TimedOut
        } else if let Some(problem) = problem {
            match problem {
                TaskError::Serialization(reason) if struck_out => {
                    TaskError::Serialization(format!(
                        "{reason}; this task had not started, but it was next on \
                         {STRIKES_BEFORE_START} workers that failed so before they started it, \
                         so it is taken for the cause and not sent again"
                    ))
                }
                problem => problem,
            }
        } else {
            worker_died(slot.pid, status)
        };
        shared.resolve(head.job, Err(error));
    }
    for bystander in killed_with_the_worker {
        let error = if shared.terminating.load(Ordering::SeqCst) {
            TaskError::Cancelled
        } else if *slot.timed_out_task.lock() == Some(bystander.id) {
            TaskError::TimedOut
        } else if let Some(TaskError::Serialization(reason)) = &bystander_problem {
            TaskError::Serialization(format!(
                "{reason}; this task had started on that worker, which was killed for it, so it \
                 is not sent again (it may have run; its result is lost)"
            ))
        } else {
            worker_died(slot.pid, status)
        };
        shared.resolve(bystander.job, Err(error));
    }
}

/// Waits until the worker `pid` has ended, without reaping it (the caller
/// reaps it with `Child::wait` then, which returns at once). Unreaped, the
/// pid stays the worker's, so others may `kill` it meanwhile through its
/// `Child`. Where `waitid` is missing, returns at once (`Child::wait`
/// then waits, holding the child's lock).
fn wait_until_ended(pid: u32) {
    #[cfg(not(any(
        target_os = "cygwin",
        target_os = "horizon",
        target_os = "openbsd",
        target_os = "redox",
        target_os = "espidf",
        target_os = "vita",
    )))]
    {
        use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
        let Some(pid) = Pid::from_raw(pid as i32) else {
            return;
        };
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
        // Only an interruption retries; any other error (no such child:
        // someone reaped it, e.g. SIGCHLD ignored) leaves it to `wait`.
        while let Err(rustix::io::Errno::INTR) = waitid(WaitId::Pid(pid), options) {}
    }
    #[cfg(any(
        target_os = "cygwin",
        target_os = "horizon",
        target_os = "openbsd",
        target_os = "redox",
        target_os = "espidf",
        target_os = "vita",
    ))]
    let _ = pid;
}

/// Takes task `id` off the head of the slot's in-flight list, if it is the
/// head, and makes room for the writer.
fn pop_answered(slot: &Slot, id: u64) -> Option<InFlight> {
    let mut flight = slot.flight.lock();
    if flight.jobs.front().is_none_or(|head| head.id != id) {
        return None;
    }
    let answered = flight.jobs.pop_front()?;
    flight.learn(answered.sent, Instant::now());
    slot.flight_changed.notify_one();
    Some(answered)
}

/// Reads a frame, telling the watcher while it is inside one, so a stream
/// that stops mid-frame (garbage that looked like a header) is noticed.
fn read_watched_frame(
    shared: &Shared,
    slot: &Slot,
    results: &mut BufReader<ChildStdout>,
) -> Result<FromWorker, ReadError> {
    let length = read_header(results, shared.config.max_frame)?;
    let now = Instant::now();
    *slot.frame_progress.lock() = Some(now);
    shared.watch_deadline(now + FRAME_STALL);
    let message = read_body(results, length, || {
        *slot.frame_progress.lock() = Some(Instant::now());
    });
    *slot.frame_progress.lock() = None;
    if *slot.stalled.lock() {
        return Err(ReadError::Garbled(format!(
            "it stopped sending in the middle of a frame of {length} bytes"
        )));
    }
    message
}

/// A replacement worker could not start: fail everything queued with the
/// reason, and every later submit too, instead of respawning in a loop.
#[cold]
fn break_pool(shared: &Shared, error: TaskError) {
    let error = {
        let mut broken = shared.broken.lock();
        match &*broken {
            Some(first) => first.clone(),
            None => {
                eprintln!("verisync: the process pool cannot start workers any more: {error}");
                *broken = Some(error.clone());
                error
            }
        }
    };
    shared.stopping.store(true, Ordering::SeqCst);
    while let Ok(job) = shared.queue.try_get() {
        shared.resolve_unstarted(job, error.clone());
    }
}

/// A worker that stops sending for this long in the middle of a frame is
/// sending garbage (workers write each frame in one go).
const FRAME_STALL: Duration = Duration::from_secs(1);

/// The watcher: kills a worker whose head task outlives the task timeout,
/// or whose result stream stalls in the middle of a frame. It sleeps until
/// the earliest such deadline, or until a writer or reader says something
/// changed.
fn watch_workers(shared: &Shared) {
    let mut alarm = shared.watch.lock();
    while !shared.watcher_stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let mut earliest: Option<Instant> = None;
        let mut consider = |deadline: Instant| {
            earliest = Some(earliest.map_or(deadline, |earliest| earliest.min(deadline)));
        };
        for slot in shared.slots.lock().iter() {
            let frame_progress = *slot.frame_progress.lock();
            if let Some(last_bytes) = frame_progress {
                let deadline = last_bytes + FRAME_STALL;
                if deadline <= now {
                    *slot.stalled.lock() = true;
                    let _ = slot.child.lock().kill();
                } else {
                    consider(deadline);
                }
            }
            let Some(timeout) = shared.task_timeout else {
                continue;
            };
            match slot.board.running() {
                Some((id, started)) => {
                    // By the worker's clock: how long this task has run.
                    let ran = Duration::from_nanos(monotonic_nanos().saturating_sub(started));
                    match timeout.checked_sub(ran) {
                        Some(left) if !left.is_zero() => {
                            // (A deadline past `Instant`'s range never fires.)
                            if let Some(deadline) = now.checked_add(left) {
                                consider(deadline);
                            }
                        }
                        _ => {
                            if slot.board.stop_for_timeout(id) {
                                *slot.timed_out_task.lock() = Some(id);
                                let _ = slot.child.lock().kill();
                            } else {
                                // It returned just now; look again soon.
                                consider(now);
                            }
                        }
                    }
                }
                None => {
                    // Busy but between tasks: a task starting from now on
                    // cannot time out before `now + timeout`.
                    if !slot.flight.lock().jobs.is_empty() {
                        if let Some(deadline) = now.checked_add(timeout) {
                            consider(deadline);
                        }
                    }
                }
            }
        }
        *alarm = earliest;
        match earliest {
            Some(deadline) => {
                shared.watch_changed.wait_until(&mut alarm, deadline);
            }
            None => shared.watch_changed.wait(&mut alarm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_task(board: &Arc<Board>, id: u64) -> ProcessTask<u64> {
        let task = ProcessTask {
            completion: Completion::new(),
            place: Mutex::new_untracked(Place::Parent),
        };
        assert!(task.send(board, id));
        task
    }

    /// A second `cancel` in the window after the reader took back a task
    /// the first `cancel` recalled, before the first one resolved it, says
    /// `true`: the task ends up cancelled. (It said `false`: `take_back`
    /// forgot that the task was recalled.)
    #[test]
    fn a_second_cancel_after_the_take_back_still_reports_the_cancellation() {
        let board = Arc::new(Board::create().unwrap());
        let task = sent_task(&board, 0);
        // The first `cancel`, its first half: it wins the board cell.
        assert_eq!(task.recall(), Recall::Won);
        // The worker skipped it; the reader takes it back.
        assert!(task.take_back(), "the reader sees it was recalled");
        // A second `cancel` now.
        assert!(HoldsCompletion::cancel(&task), "the second cancel");
        // The first `cancel` resolves it.
        task.completion.finish(Err(TaskError::Cancelled));
        assert!(HoldsCompletion::cancel(&task), "a third cancel");
        assert!(task.take_back(), "still recalled");
    }

    /// The same around `put_back` (its worker died before starting it).
    #[test]
    fn a_second_cancel_after_a_put_back_still_reports_the_cancellation() {
        let board = Arc::new(Board::create().unwrap());
        let task = sent_task(&board, 0);
        assert_eq!(task.recall(), Recall::Won);
        assert!(task.put_back(), "recalled: not put back on the queue");
        assert!(HoldsCompletion::cancel(&task), "the second cancel");
        task.completion.finish(Err(TaskError::Cancelled));
    }

    /// A task answered normally is too late to cancel, also after the
    /// reader took it back.
    #[test]
    fn a_task_taken_back_unrecalled_cannot_be_cancelled() {
        let board = Arc::new(Board::create().unwrap());
        let task = sent_task(&board, 0);
        assert!(board.start(0), "the worker starts it");
        assert!(!HoldsCompletion::cancel(&task), "it started");
        assert!(!task.take_back());
        task.completion.finish(Ok(7));
        assert!(!HoldsCompletion::cancel(&task), "it finished");
    }
}
