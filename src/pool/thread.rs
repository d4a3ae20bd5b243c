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
//! `for job in queue.iter()` loop ends) and joins the workers;
//! `shutdown_now` takes every queued job out, cancels it, and joins.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::sync::Arc;

use super::map::PoolMap;
use super::task::{Completion, HoldsCompletion, TaskError, TaskHandle};
use crate::queue::{JoinableQueue, ShutDown};
use crate::reentrant::ReentrantLock;
use crate::sys::cell::UnsafeCell;
use crate::sys::thread::{Builder, JoinHandle};

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
struct ThreadTask<F, R> {
    completion: Completion<R>,
    /// Taken by whoever claims the completion cell (at most once).
    task: UnsafeCell<Option<F>>,
}

// SAFETY: `task` is only touched by the thread that won the completion
// cell's claim (see `perform`); the closure and result are `Send`.
unsafe impl<F: Send, R: Send> Sync for ThreadTask<F, R> {}

impl<F: Send, R: Send> HoldsCompletion<R> for ThreadTask<F, R> {
    fn completion(&self) -> &Completion<R> {
        &self.completion
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
        match action {
            JobAction::Run => {
                if self.completion.claim() {
                    // SAFETY: the claim makes this thread the only one that
                    // ever touches `task`.
                    let task = self.task.with_mut(|task| unsafe { (*task).take() });
                    let task = task.expect("a claimed task still has its closure");
                    self.completion.run_claimed(task);
                }
                true
            }
            JobAction::Cancel => self.completion.resolve_unstarted(TaskError::Cancelled),
            JobAction::Refuse => self.completion.resolve_unstarted(TaskError::ShutDown),
        }
    }
}

/// A queued task.
pub(crate) type Job = Arc<dyn Runnable>;

type StartHook = Arc<dyn Fn(usize) + Send + Sync>;

/// A fixed set of worker threads running submitted closures —
/// Python's `ThreadPoolExecutor`.
///
/// - [`submit`](Self::submit) returns a [`TaskHandle`]: `join` for the
///   value, `wait_timeout`, `cancel`, `on_done` callbacks.
/// - [`map`](Self::map) gives results in input order, lazily (a bounded
///   number of items in flight, so an endless iterator works).
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
    /// (Python's `initializer`).
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
    /// If the worker count is 0, or the system refuses to start a thread
    /// (use [`try_build`](Self::try_build) to get that as an error).
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

    /// Starts the workers, or returns the system's error.
    ///
    /// # Panics
    ///
    /// If the worker count is 0.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::builder().workers(1).try_build().unwrap();
    /// ```
    #[track_caller]
    pub fn try_build(self) -> io::Result<ThreadPool> {
        let worker_count = self.workers.unwrap_or_else(default_workers);
        assert!(
            worker_count > 0,
            "verisync: a ThreadPool with 0 workers could never run a task; ask for at least 1 \
             (or leave `workers` unset for one per CPU)"
        );
        let queue = Arc::new(JoinableQueue::<Job>::new());
        let mut workers = Vec::with_capacity(worker_count);
        for index in 0..worker_count {
            let worker_queue = Arc::clone(&queue);
            let hook = self.on_worker_start.clone();
            let mut builder = Builder::new().name(format!("{}-{index}", self.thread_name));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            let spawned = builder.spawn(move || {
                if let Some(hook) = hook {
                    hook(index);
                }
                for job in worker_queue.iter() {
                    job.perform(JobAction::Run);
                }
            });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    // Do not leave the started workers behind.
                    queue.shutdown();
                    for worker in workers {
                        let _ = worker.join();
                    }
                    return Err(error);
                }
            }
        }
        Ok(ThreadPool {
            queue,
            workers: ReentrantLock::new(RefCell::new(workers)),
            worker_count,
        })
    }
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
        let task = Arc::new(ThreadTask {
            completion: Completion::new(),
            task: UnsafeCell::new(Some(task)),
        });
        self.submit_job(Arc::clone(&task) as Job);
        TaskHandle::new(task)
    }

    /// Applies `function` to every input on the pool; results come in input
    /// order. Lazy: it reads `inputs` only as results are consumed and
    /// keeps a bounded number of items in flight, so an endless iterator
    /// works. A panic fails only its own item.
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
    /// Must not be called from one of the pool's own tasks (it would wait
    /// for itself).
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
        // Held until the workers are joined: see `workers`.
        let _workers = self.workers.lock();
        let cancelled = self
            .queue
            .shutdown_now()
            .into_iter()
            .map(|job| job.perform(JobAction::Cancel))
            .filter(|&cancelled| cancelled)
            .count();
        self.join_workers();
        cancelled
    }

    /// Joins the workers. The lock is held throughout, so a second,
    /// concurrent `shutdown` also returns only once they have exited.
    fn join_workers(&self) {
        let workers = self.workers.lock();
        // Taken out first: nothing below may find the cell borrowed.
        let handles = std::mem::take(&mut *workers.borrow_mut());
        for worker in handles {
            // A worker only ends by its loop finishing; tasks' panics are
            // caught inside it.
            let _ = worker.join();
        }
    }

    /// Queues `job`, or resolves it as refused if the pool is shutting down.
    fn submit_job(&self, job: Job) {
        if let Err(ShutDown(job)) = self.queue.put(job) {
            job.perform(JobAction::Refuse);
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
