//! [`ThreadPool`]: Python's `concurrent.futures.ThreadPoolExecutor`.
//!
//! # Implementation
//!
//! Workers take jobs from one unbounded [`JoinableQueue`]. A job is one
//! allocation holding the task's closure and its [`Completion`] cell, shared
//! with the task's handle; the worker asks it to run, `shutdown_now` asks it
//! to cancel, and a submit that finds the queue shut down asks it to resolve
//! as refused. In every case the
//! cell's claim decides: a task runs at most once, and a task that does not
//! run is resolved (`Cancelled` or `ShutDown`), never dropped.
//!
//! `shutdown` shuts the queue down gracefully (workers drain it, then their
//! `while let Ok(job) = queue.get_unreported()` loop ends) and joins the workers;
//! `shutdown_now` takes every queued job out, cancels it, and joins. A
//! shutdown that runs on one of the pool's own workers (a task that shuts
//! the pool down or drops its last `Arc`) joins every worker but that one,
//! which finishes its task and the rest of the queue and exits on its own.
//! Such a shutdown never waits for the workers' lock held by another
//! thread: every holder of that lock joins the workers, this one included,
//! so waiting for it would be a deadlock; it skips the joining instead.
//!
//! # Inline join
//!
//! Each worker marks its thread with the pool's tag (its queue's address,
//! `sys::thread::set_current_pool`), and each task records the tag of its
//! pool. A `join`/`wait` on a task whose tag is the calling thread's runs
//! it inline if it has not started — the same `perform(Run)` a worker
//! does, so the completion cell's claim decides who runs it, and the
//! worker that later takes the job out of the queue finds it claimed and
//! skips it. Scopes, `map_unordered` and `wait` (without a timeout) use
//! the same rule to wait on a worker without deadlocking; a scope runs
//! every unstarted task of its own while it waits (see `scope.rs`).
//!
//! Limits (documented on [`TaskHandle::join`]): only the joined task runs
//! inline (no work stealing, so a running task that waits for a queued
//! one can still deadlock a pool whose workers all wait); inline joins
//! recurse on the worker's stack; the inlined task shares the joiner's
//! thread (thread-locals, name, held reentrant locks).
//!
//! # User code is isolated
//!
//! Every piece of user code the pool calls may panic, and none of those
//! panics may kill a worker (later tasks would never run, and their handles
//! never resolve) or escape into the pool's own bookkeeping:
//!
//! | user code                        | where it runs                  | a panic...                          |
//! |----------------------------------|--------------------------------|-------------------------------------|
//! | the task (and its closure's drop)| `Completion::run_claimed`      | resolves its handle `Panicked`      |
//! | a callback                       | `Completion::run_callback`     | is reported on stderr, ignored      |
//! | a panic payload's drop           | `drop_panic_payload`           | is swallowed (its payload leaked)   |
//! | a cancelled task's closure, or a result nobody holds a handle to, dropped with the job | `dispose` | is reported on stderr, ignored |
//! | a scoped task's unrun closure or unjoined result, dropped as its scope ends | `panic_payload::drop_reporting_panics` | is reported on stderr, ignored |
//! | a map's result never handed out | `map::ChunkResults`'s `Drop`, one by one | is reported on stderr, ignored |
//! | `on_worker_start`                | the worker, before its loop    | fails `try_build` with an `Err`     |

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use super::map::PoolMap;
use super::map_unordered::PoolMapUnordered;
use super::scope::{run_scope, Scope};
use super::task::{Completion, HoldsCompletion, TaskError, TaskHandle};
use crate::panic_payload::take_panic_message;
use crate::queue::{JoinableQueue, ShutDown};
use crate::reentrant::{ReentrantLock, ReentrantLockGuard};
use crate::sys::cell::UnsafeCell;
use crate::sys::thread::{self, Builder, JoinHandle};

/// What a job is asked to do.
#[derive(Clone, Copy)]
pub(crate) enum JobAction {
    /// A worker took it: run the task (unless it was cancelled meanwhile).
    Run,
    /// `shutdown_now` took it out of the queue: resolve as `Cancelled`.
    Cancel,
    /// The queue refused it (shutting down): resolve as `ShutDown`.
    Refuse,
}

/// A queued task: one allocation holding the closure and its completion
/// cell, shared by the queue (as a `Job`) and the `TaskHandle`.
pub(crate) struct ThreadTask<F, R> {
    completion: Completion<R>,
    /// Taken by whoever claims the completion cell (at most once).
    task: UnsafeCell<Option<F>>,
    /// The tag of the pool it was submitted to ([`ThreadPool::tag`]): its
    /// workers may run it inline when they join it.
    pool: usize,
}

// SAFETY: `task` is only touched by the thread that won the completion
// cell's claim (see `perform`), or by a scope that has seen the cell
// resolved and is the only one left to touch it (`take_leftover_task`);
// the closure and result are `Send`.
unsafe impl<F: Send, R: Send> Sync for ThreadTask<F, R> {}

impl<F, R> ThreadTask<F, R> {
    pub(crate) fn new(pool: &ThreadPool, task: F) -> Self {
        Self {
            completion: Completion::new(),
            task: UnsafeCell::new(Some(task)),
            pool: pool.tag(),
        }
    }

    pub(crate) fn completion(&self) -> &Completion<R> {
        &self.completion
    }

    /// Whether the closure is still there (the task never ran: it was
    /// cancelled or refused).
    ///
    /// # Safety
    ///
    /// The cell is resolved and the calling thread has seen it done; no
    /// other thread takes the closure meanwhile.
    pub(crate) unsafe fn has_leftover_task(&self) -> bool {
        // SAFETY: resolved, so no claimant will take it; the caller is the
        // only one that may.
        self.task.with(|task| unsafe { (*task).is_some() })
    }

    /// Takes the closure if it never ran (the task was cancelled or
    /// refused), for a scope that must drop it before the data it borrows
    /// goes away.
    ///
    /// # Safety
    ///
    /// The cell is resolved and the calling thread has seen it done, and
    /// no other thread touches the task during or after this call.
    pub(crate) unsafe fn take_leftover_task(&self) -> Option<F> {
        // SAFETY: resolved, so no claimant will take it; the caller is the
        // only one touching it.
        self.task.with_mut(|task| unsafe { (*task).take() })
    }
}

impl<F, R> ThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    /// Carries out `action` (see [`Runnable::perform`]) and returns whether
    /// this call resolved the cell: it won the claim, and the result is
    /// stored, the callbacks ran and `done` is set. A scoped task settles
    /// with its scope after exactly such a call (see `scoped_task.rs`).
    #[inline]
    pub(crate) fn resolve(&self, action: JobAction) -> bool {
        match action {
            JobAction::Run => {
                if !self.completion.claim() {
                    return false;
                }
                // SAFETY: the claim makes this thread the only one that
                // ever touches `task`.
                let task = self.task.with_mut(|task| unsafe { (*task).take() });
                let task = task.expect("a claimed task still has its closure");
                self.completion.run_claimed(task);
                true
            }
            JobAction::Cancel => self.completion.resolve_unstarted(TaskError::Cancelled),
            JobAction::Refuse => self.completion.resolve_unstarted(TaskError::ShutDown),
        }
    }

    /// Whether the calling thread is a worker of the task's pool (which
    /// may run it inline, see the module docs).
    #[inline]
    pub(crate) fn is_on_own_worker(&self) -> bool {
        thread::current_pool() == self.pool
    }
}

impl<F, R> HoldsCompletion<R> for ThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn completion(&self) -> &Completion<R> {
        &self.completion
    }

    #[inline]
    fn run_inline_if_unstarted_here(&self) {
        if self.is_on_own_worker() {
            self.perform(JobAction::Run);
        }
    }
}

/// What the queue holds: a task that can be asked to run, cancel or refuse.
pub(crate) trait Runnable: Send + Sync {
    /// Returns whether the action took effect.
    fn perform(&self, action: JobAction) -> bool;
}

impl<F, R> Runnable for ThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn perform(&self, action: JobAction) -> bool {
        let resolved_here = self.resolve(action);
        matches!(action, JobAction::Run) || resolved_here
    }
}

/// A queued task.
pub(crate) type Job = Arc<dyn Runnable>;

type StartHook = Arc<dyn Fn(usize) + Send + Sync>;

/// What a worker's `on_worker_start` hook did: its index, and the panic's
/// message if it panicked.
type HookOutcome = (usize, Result<(), String>);

/// A worker's loop: run each job, then let go of it — both isolated from
/// user code (see the module docs). An idle worker's wait is not reported
/// by the deadlock diagnostics (a task blocked inside a job still is).
fn work(queue: &JoinableQueue<Job>) {
    thread::set_current_pool(tag_of(queue));
    while let Ok(job) = queue.get_unreported() {
        job.perform(JobAction::Run);
        dispose(job);
    }
}

/// Lets go of a job the pool is done with. When the handle is already gone
/// this drops the task's closure (if it never ran) or its result — user
/// types whose `Drop` may panic. Such a panic has no handle left to fail:
/// it is reported on stderr and the pool carries on.
#[inline]
fn dispose(job: Job) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(job))) {
        report_drop_panic(payload);
    }
}

#[cold]
#[inline(never)]
fn report_drop_panic(payload: Box<dyn Any + Send>) {
    let message = take_panic_message(payload);
    eprintln!(
        "verisync: dropping a task whose handle was already dropped (its unrun closure or its \
         result) panicked on thread {:?}: {message}; the panic was caught and ignored, and the \
         pool carries on",
        thread::current().name().unwrap_or("<unnamed>")
    );
}

/// A fixed set of worker threads running submitted closures —
/// Python's `ThreadPoolExecutor`.
///
/// - [`submit`](Self::submit) returns a [`TaskHandle`]: `join` for the
///   value, `wait_timeout`, `cancel`, `on_done` callbacks.
/// - [`map`](Self::map) gives results in input order, lazily (a bounded
///   number of items in flight, so an endless iterator works);
///   [`map_unordered`](Self::map_unordered) as they finish.
/// - [`scope`](Self::scope) runs tasks that borrow from the caller's stack.
/// - A panicking task fails only its own handle (`TaskError::Panicked`);
///   its worker lives on.
/// - [`shutdown`](Self::shutdown) (also on drop) finishes the queued tasks;
///   [`shutdown_now`](Self::shutdown_now) cancels them. A task submitted
///   while the pool shuts down is never silently dropped: its handle
///   resolves to `TaskError::ShutDown`. Running tasks cannot be interrupted.
///
/// ```
/// use verisync::ThreadPool;
///
/// let pool = ThreadPool::new(4);
/// let handles: Vec<_> = (1..=5u64).map(|n| pool.submit(move || n * n)).collect();
/// let squares: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
///
/// let cubes: Vec<u64> = pool.map(1..=3u64, |n| n * n * n).map(Result::unwrap).collect();
/// assert_eq!(cubes, [1, 8, 27]);
/// ```
pub struct ThreadPool {
    queue: Arc<JoinableQueue<Job>>,
    /// The workers, joined under this lock. Held by `shutdown_now` from
    /// before it drains the queue until the workers are joined, so a
    /// concurrent `shutdown`/`shutdown_now` returns only after every task
    /// drained by the first is resolved. Reentrant: a cancelled task's
    /// callback, run inside `shutdown_now`, may itself shut the pool down.
    workers: ReentrantLock<RefCell<Vec<JoinHandle<()>>>>,
    /// The workers' thread ids, fixed at build: a shutdown running on one
    /// of them must not wait for `workers` (see [`ThreadPool::lock_workers`]).
    worker_ids: Vec<thread::ThreadId>,
    worker_count: usize,
}

/// Configures a [`ThreadPool`]; from [`ThreadPool::builder`].
///
/// ```
/// let pool = verisync::ThreadPool::builder()
///     .workers(2)
///     .thread_name("cook")
///     .stack_size(256 * 1024)
///     .on_worker_start(|index| println!("cook-{index} starts"))
///     .build();
/// assert_eq!(pool.workers(), 2);
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct ThreadPoolBuilder {
    workers: Option<usize>,
    thread_name: String,
    stack_size: Option<usize>,
    on_worker_start: Option<StartHook>,
}

impl ThreadPoolBuilder {
    /// The number of worker threads (default: the number of CPUs).
    ///
    /// ```
    /// let pool = verisync::ThreadPool::builder().workers(3).build();
    /// assert_eq!(pool.workers(), 3);
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// The workers' thread names are `{name}-{index}` (default `verisync-worker`).
    ///
    /// ```
    /// let pool = verisync::ThreadPool::builder().workers(1).thread_name("cook").build();
    /// let name = pool.submit(|| std::thread::current().name().map(str::to_owned)).join();
    /// assert_eq!(name, Ok(Some("cook-0".to_owned())));
    /// ```
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Each worker's stack size in bytes (default: the platform's).
    ///
    /// ```
    /// let pool = verisync::ThreadPool::builder().workers(1).stack_size(1 << 20).build();
    /// assert_eq!(pool.submit(|| 1).join(), Ok(1));
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs `hook(worker_index)` on each worker thread before it takes tasks
    /// (Python's `initializer`). The build waits until every worker has run
    /// it, so the hook must not wait for the pool it is starting. If it
    /// panics on any worker, [`try_build`](Self::try_build) returns an error
    /// saying so (and [`build`](Self::build) panics with it): a pool whose
    /// workers could not initialise never starts (Python's
    /// `BrokenThreadPool`, reported up front).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&started);
    /// let pool = verisync::ThreadPool::builder()
    ///     .workers(2)
    ///     .on_worker_start(move |_| { counter.fetch_add(1, Ordering::SeqCst); })
    ///     .build();
    /// pool.shutdown();
    /// assert_eq!(started.load(Ordering::SeqCst), 2);
    /// ```
    pub fn on_worker_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_worker_start = Some(Arc::new(hook));
        self
    }

    /// Starts the workers.
    ///
    /// # Panics
    ///
    /// Where [`try_build`](Self::try_build) returns an error: the worker
    /// count is 0, the system refuses to start a thread, or the
    /// `on_worker_start` hook panicked.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::builder().workers(1).build();
    /// ```
    #[track_caller]
    pub fn build(self) -> ThreadPool {
        match self.try_build() {
            Ok(pool) => pool,
            Err(error) => panic!("verisync: could not start the thread pool's workers: {error}"),
        }
    }

    /// Starts the workers, or says why not:
    ///
    /// - the worker count is 0 (`ErrorKind::InvalidInput`; such a pool
    ///   could never run a task);
    /// - the system refused to start a thread (its error);
    /// - the [`on_worker_start`](Self::on_worker_start) hook panicked on a
    ///   worker (`ErrorKind::Other`, naming the worker and the panic's
    ///   message).
    ///
    /// On an error no worker is left running.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::builder().workers(1).try_build().unwrap();
    /// let error = verisync::ThreadPool::builder().workers(0).try_build().unwrap_err();
    /// assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn try_build(self) -> io::Result<ThreadPool> {
        let worker_count = self.workers.unwrap_or_else(default_workers);
        if worker_count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a ThreadPool with 0 workers could never run a task; ask for at least 1 (or \
                 leave `workers` unset for one per CPU)",
            ));
        }
        let queue = Arc::new(JoinableQueue::<Job>::new());
        // With a hook, each worker reports how it went; the build waits for all.
        let hook_outcomes = self
            .on_worker_start
            .as_ref()
            .map(|_| Arc::new(JoinableQueue::<HookOutcome>::new()));
        let mut workers = Vec::with_capacity(worker_count);
        for index in 0..worker_count {
            let worker_queue = Arc::clone(&queue);
            let hook = self.on_worker_start.clone();
            let outcomes = hook_outcomes.clone();
            let mut builder = Builder::new().name(format!("{}-{index}", self.thread_name));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            let spawned = builder.spawn(move || {
                if let (Some(hook), Some(outcomes)) = (hook, outcomes) {
                    let outcome =
                        catch_unwind(AssertUnwindSafe(|| hook(index))).map_err(take_panic_message);
                    let failed = outcome.is_err();
                    // Never shut down, so never refused.
                    let _ = outcomes.put((index, outcome));
                    if failed {
                        // The build fails and shuts the pool down.
                        return;
                    }
                }
                work(&worker_queue);
            });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    stop_workers(&queue, workers);
                    return Err(error);
                }
            }
        }
        if let Some(outcomes) = hook_outcomes {
            let mut first_failure = None;
            for _ in 0..worker_count {
                let (index, outcome) = outcomes
                    .get()
                    .expect("the hook outcome queue is never shut down");
                if let Err(message) = outcome {
                    first_failure.get_or_insert((index, message));
                }
            }
            if let Some((index, message)) = first_failure {
                stop_workers(&queue, workers);
                return Err(io::Error::other(format!(
                    "the on_worker_start hook panicked on worker {index}: {message}; the pool was \
                     not started"
                )));
            }
        }
        let worker_ids = workers.iter().map(|worker| worker.thread().id()).collect();
        Ok(ThreadPool {
            queue,
            workers: ReentrantLock::new_untracked(RefCell::new(workers)),
            worker_ids,
            worker_count,
        })
    }
}

/// Shuts a pool that is not handed out down: no task was submitted, so the
/// workers just exit.
#[cold]
fn stop_workers(queue: &JoinableQueue<Job>, workers: Vec<JoinHandle<()>>) {
    queue.shutdown();
    for worker in workers {
        let _ = worker.join();
    }
}

/// A pool's tag: its queue's address, which stays taken while any of its
/// workers lives (each holds the queue), so no other pool can have it then.
fn tag_of(queue: &JoinableQueue<Job>) -> usize {
    ptr::from_ref(queue) as usize
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |count| count.get())
}

impl ThreadPool {
    /// A pool of `workers` threads.
    ///
    /// # Panics
    ///
    /// If `workers` is 0.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(2);
    /// assert_eq!(pool.workers(), 2);
    /// ```
    #[track_caller]
    pub fn new(workers: usize) -> Self {
        Self::builder().workers(workers).build()
    }

    /// A builder with the default settings (one worker per CPU).
    ///
    /// ```
    /// let pool = verisync::ThreadPool::builder().build();
    /// assert!(pool.workers() >= 1);
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder {
            workers: None,
            thread_name: "verisync-worker".to_owned(),
            stack_size: None,
            on_worker_start: None,
        }
    }

    /// Queues `task` and returns its handle. After a shutdown began, the
    /// handle resolves at once to `Err(TaskError::ShutDown)`.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(1);
    /// assert_eq!(pool.submit(|| 2 + 2).join(), Ok(4));
    /// pool.shutdown();
    /// assert_eq!(pool.submit(|| 0).join(), Err(verisync::TaskError::ShutDown));
    /// ```
    pub fn submit<F, R>(&self, task: F) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let task = Arc::new(ThreadTask::new(self, task));
        self.submit_job(Arc::clone(&task) as Job);
        TaskHandle::new(task)
    }

    /// Applies `function` to every input on the pool; results come in input
    /// order. Lazy: it reads `inputs` only as results are consumed and
    /// keeps a bounded number of items in flight, so an endless iterator
    /// works. A panic fails only its own item.
    ///
    /// Items go to the workers in chunks. The first chunks hold one item
    /// each (so a few slow items still spread over every worker); chunks
    /// then grow while they finish quickly (by up to 64× per chunk, less
    /// the closer a chunk came to 50 µs, and never by more than the
    /// chunk's own item count), up to 16,384 items — fewer
    /// when items or results are large (at most 512 KiB of either per
    /// chunk, counted by `size_of`: memory an item owns on the heap is not
    /// counted), and about `len / (4 × workers)` for an input whose length
    /// is known from its `size_hint` (until the input yields more than it
    /// said) — and halve when they get slow. Two chunks per worker are in
    /// flight at most, besides the one whose results are being handed out:
    /// that bounds the read-ahead, to `(2 × workers + 1) × 16,384` items at
    /// most (65,536 read ahead of the consumer were seen with two workers).
    ///
    /// Dropping the map cancels the chunks that have not started; a chunk
    /// already running runs to its end (its results are dropped). Items
    /// and results left over are dropped one by one, each `Drop` that
    /// panics caught and reported on stderr.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(2);
    /// let evens = pool.map(1.., |n: u64| n * 2).take(3).map(Result::unwrap);
    /// assert_eq!(evens.collect::<Vec<_>>(), [2, 4, 6]);
    /// ```
    pub fn map<I, F, R>(&self, inputs: I, function: F) -> PoolMap<'_, I::IntoIter, F, R>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        PoolMap::new(self, inputs.into_iter(), function)
    }

    /// Applies `function` to every input on the pool; results come as they
    /// finish — Python's `imap_unordered`. Lazy and bounded like
    /// [`map`](Self::map) (same chunks, same read-ahead), and each item
    /// gives the same `Result` as there (a panic fails only its own item);
    /// only the order differs: items are sent in chunks, a chunk's results
    /// come out together (in input order among themselves) as soon as it
    /// finishes, so a slow item holds back only its own chunk. Items carry
    /// no index; return one from `function` if you need it.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(2);
    /// let mut squares: Vec<u64> = pool
    ///     .map_unordered(1..=5u64, |n| n * n)
    ///     .map(Result::unwrap)
    ///     .collect();
    /// squares.sort();
    /// assert_eq!(squares, [1, 4, 9, 16, 25]);
    ///
    /// // With the input, when the order matters to the caller:
    /// let mut pairs: Vec<(u64, u64)> =
    ///     pool.map_unordered(1..=3u64, |n| (n, n + 1)).map(Result::unwrap).collect();
    /// pairs.sort();
    /// assert_eq!(pairs, [(1, 2), (2, 3), (3, 4)]);
    /// ```
    pub fn map_unordered<I, F, R>(
        &self,
        inputs: I,
        function: F,
    ) -> PoolMapUnordered<'_, I::IntoIter, F, R>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        PoolMapUnordered::new(self, inputs.into_iter(), function)
    }

    /// Runs `body` with a [`Scope`] whose tasks may borrow from the
    /// caller's stack (like `std::thread::scope` and `rayon::scope`), and
    /// returns only after every task submitted in it has finished — ran,
    /// panicked, or was cancelled or refused — and what nobody joined (a
    /// result, a closure that never ran) was dropped. That holds also when
    /// `body` panics: the scope waits, then passes the panic on.
    ///
    /// - A panicking task fails only its own handle (`Err(TaskError::Panicked)`),
    ///   never the scope or the pool.
    /// - A pool that is shutting down refuses new tasks as
    ///   [`submit`](Self::submit) does (`Err(TaskError::ShutDown)`, never
    ///   run), `shutdown` still runs the queued ones, and `shutdown_now`
    ///   cancels them: the scope never waits for a task that cannot run.
    /// - Called on one of this pool's own workers (a task opening a scope),
    ///   the scope runs every task of it that has not started inline while
    ///   it waits — also while it waits for one running on another worker,
    ///   which may itself wait for one still queued — so even a one-worker
    ///   pool cannot deadlock on it. Only the scope's own tasks are run so:
    ///   a task sent with [`submit`](Self::submit) waits for a worker.
    ///   An inlined task shares the scope's thread and stack, as for an
    ///   inline [`join`](TaskHandle::join) (thread-locals, name, held locks;
    ///   nested scopes and joins recurse).
    /// - A result nobody joined is dropped when its handle is dropped, if
    ///   the task finished by then, else as the task finishes, by the
    ///   thread that ran it (usually a worker) — in either case while its
    ///   handle is gone, so a result whose `Drop` joins another handle it
    ///   holds gets that result. The results of handles that outlive every
    ///   task (forgotten) are dropped by the scope before it returns,
    ///   newest task first, as are the closures of cancelled tasks.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(2);
    /// let mut scores = vec![3, 1, 2];
    /// let names = ["ann", "bo", "cy"];
    /// let longest = pool.scope(|s| {
    ///     let longest = s.submit(|| names.iter().map(|name| name.len()).max());
    ///     s.submit(|| scores.sort()); // a mutable borrow, released when the scope ends
    ///     longest.join().unwrap()
    /// });
    /// assert_eq!(longest, Some(3));
    /// assert_eq!(scores, [1, 2, 3]);
    /// ```
    pub fn scope<'env, F, T>(&'env self, body: F) -> T
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
    {
        run_scope(self, body)
    }

    /// The number of worker threads.
    ///
    /// ```
    /// assert_eq!(verisync::ThreadPool::new(3).workers(), 3);
    /// ```
    pub fn workers(&self) -> usize {
        self.worker_count
    }

    /// Stops taking tasks, lets the workers finish every queued task, and
    /// waits for them to exit. Idempotent; dropping the pool does the same.
    ///
    /// Called from one of the pool's own tasks (also by dropping the pool's
    /// last `Arc` there), it cannot wait for the worker it runs on: it joins
    /// the others and returns; that worker finishes its task (whose result
    /// is kept as usual) and whatever is still queued, then exits on its
    /// own. A later `shutdown` from another thread joins it. If another
    /// thread is shutting the pool down at that moment (and so waiting for
    /// this worker), it returns at once instead of waiting for the others.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(2);
    /// let handle = pool.submit(|| 1);
    /// pool.shutdown();
    /// assert_eq!(handle.join(), Ok(1)); // queued work still ran
    /// ```
    pub fn shutdown(&self) {
        self.queue.shutdown();
        self.join_workers();
    }

    /// Stops taking tasks, cancels every task that has not started (their
    /// handles resolve to `Cancelled`), and waits for the running ones to
    /// finish (they cannot be interrupted). Returns how many were cancelled.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use verisync::{Event, TaskError, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1);
    /// let (started, release) = (Arc::new(Event::new()), Arc::new(Event::new()));
    /// let running = {
    ///     let (started, release) = (Arc::clone(&started), Arc::clone(&release));
    ///     pool.submit(move || {
    ///         started.set();
    ///         release.wait();
    ///     })
    /// };
    /// started.wait(); // the only worker is busy: the next three stay queued
    /// let queued: Vec<_> = (0..3).map(|n| pool.submit(move || n)).collect();
    /// let watcher = std::thread::spawn(move || {
    ///     let results: Vec<_> = queued.into_iter().map(|handle| handle.join()).collect();
    ///     release.set(); // all three resolved: let the running task end
    ///     results
    /// });
    /// assert_eq!(pool.shutdown_now(), 3);
    /// assert!(watcher.join().unwrap().iter().all(|r| *r == Err(TaskError::Cancelled)));
    /// assert_eq!(running.join(), Ok(()));
    /// ```
    pub fn shutdown_now(&self) -> usize {
        // Held until the workers are joined: see `workers`. `None` on a
        // worker while another thread holds it (and will join this worker,
        // after the cancellations below).
        let workers = self.lock_workers();
        let cancelled = self
            .queue
            .shutdown_now()
            .into_iter()
            .map(|job| {
                let cancelled = job.perform(JobAction::Cancel);
                dispose(job);
                cancelled
            })
            .filter(|&cancelled| cancelled)
            .count();
        if workers.is_some() {
            self.join_workers();
        }
        cancelled
    }

    /// Locks `workers` — except on one of the pool's own workers when
    /// another thread holds the lock (`None`): every holder joins the
    /// workers, this one included, so waiting for it would never end.
    /// That holder waits for this worker instead, so nothing is left
    /// unjoined.
    fn lock_workers(&self) -> Option<ReentrantLockGuard<'_, RefCell<Vec<JoinHandle<()>>>>> {
        if self.worker_ids.contains(&thread::current().id()) {
            self.workers.try_lock()
        } else {
            Some(self.workers.lock())
        }
    }

    /// Joins the workers, except the calling thread if it is one of them
    /// (see `shutdown`). The lock is held throughout, so a second,
    /// concurrent `shutdown` also returns only once they have exited.
    fn join_workers(&self) {
        let Some(workers) = self.lock_workers() else {
            return;
        };
        // Taken out first: nothing below may find the cell borrowed.
        let handles = std::mem::take(&mut *workers.borrow_mut());
        let me = thread::current().id();
        let mut own_worker = None;
        for worker in handles {
            if worker.thread().id() == me {
                // Joining ourselves would fail (EDEADLK).
                own_worker = Some(worker);
                continue;
            }
            // A worker only ends by its loop finishing; user code's panics
            // are caught inside it.
            let _ = worker.join();
        }
        // Kept for a later shutdown from another thread; if the pool is
        // being dropped, dropping the handle detaches the worker.
        if let Some(own_worker) = own_worker {
            workers.borrow_mut().push(own_worker);
        }
    }

    /// The tag its workers carry (see [`thread::current_pool`]).
    pub(crate) fn tag(&self) -> usize {
        tag_of(&self.queue)
    }

    /// Whether the calling thread is one of this pool's workers.
    pub(crate) fn is_own_worker(&self) -> bool {
        thread::current_pool() == self.tag()
    }

    /// Queues `job`, or resolves it as refused if the pool is shutting down.
    pub(crate) fn submit_job(&self, job: Job) {
        if let Err(ShutDown(job)) = self.queue.put(job) {
            job.perform(JobAction::Refuse);
            dispose(job);
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ThreadPool")
            .field("workers", &self.worker_count)
            .field("queued", &self.queue.len())
            .field("shut_down", &self.queue.is_shut_down())
            .finish()
    }
}
