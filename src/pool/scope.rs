//! [`ThreadPool::scope`]: tasks that borrow from the caller's stack, like
//! `std::thread::scope` and `rayon::scope`, run by the pool's workers.
//!
//! # Implementation
//!
//! A scoped task is the pool's ordinary job ([`ThreadTask`]: closure and
//! completion cell in one allocation), so it runs, panics, is cancelled or
//! refused exactly as a submitted task is. What differs is the closure's
//! lifetime: it may borrow anything that outlives `'scope`, while the
//! queue holds `'static` jobs. [`Scope::submit`] erases the lifetime, and
//! the scope makes that sound by never returning (nor unwinding) while the
//! pool could still touch borrowed data:
//!
//! 1. **Every task is known.** A task goes into the scope's list before it
//!    is queued; the list only grows, under its lock.
//! 2. **Every task is waited for.** When the body returns (or panics —
//!    the panic is caught and re-raised afterwards), the scope waits for
//!    the list's tasks in order, re-reading the list as it goes: tasks
//!    submitted by running tasks are appended before those finish, so once
//!    every listed task is resolved and the list has no more, none can be
//!    added by anyone but this thread. The scope then **closes** (under the
//!    lock): a later `submit` is refused on the spot.
//! 3. **Nothing borrowed is left behind.** A resolved task's closure is gone
//!    if it ran (consumed), but stays in the job if it was cancelled or
//!    refused; a result nobody joined stays in the cell. The scope takes
//!    both out and drops them on its own thread before returning, so the
//!    job the queue may still hold (and drop later) holds nothing borrowed.
//!
//! Every way a task ends resolves its cell: a worker runs it (a panic
//! fails only its handle), `cancel` or `shutdown_now` cancels it, a pool
//! already shutting down refuses it (`ShutDown`, as for `submit`). None of
//! these waits for the scope, so step 2 always ends unless a task itself
//! never returns.
//!
//! **A scope on one of its pool's own workers** (a task opening a scope)
//! would deadlock if it only waited: its tasks may need the very worker it
//! blocks. So while waiting, a worker of the pool runs each of its scope's
//! tasks that has not started inline (the cell's claim decides, as for
//! [`TaskHandle::join`](crate::TaskHandle::join), so a task still runs once).
//! Elsewhere the scope's thread just waits: tasks run on the pool's
//! workers, with their names and `on_worker_start` set-up.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::task::{HoldsCompletion, TaskError};
use super::thread::{Job, JobAction, Runnable, ThreadPool, ThreadTask};
use crate::mutex::Mutex;
use crate::panic_payload::take_panic_message;
use crate::sys::time::deadline_after;

/// A scope's view of one of its tasks, whatever its closure and result types.
trait ScopedTask: Send + Sync {
    /// Waits until the task is resolved; on a worker of its pool, runs it
    /// inline first if it has not started.
    fn wait_resolved(&self);

    /// Drops the closure if it never ran and the result if nobody joined
    /// it, here and now; a panicking `Drop` is reported and ignored.
    ///
    /// # Safety
    ///
    /// The calling thread has seen the task resolved
    /// ([`wait_resolved`](Self::wait_resolved) returned), and no other
    /// thread touches its closure or result during or after this call.
    unsafe fn drop_leftovers(&self);
}

impl<F, R> ScopedTask for ThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn wait_resolved(&self) {
        self.run_inline_if_unstarted_here();
        self.completion().wait_done();
    }

    unsafe fn drop_leftovers(&self) {
        // SAFETY: the caller's contract is both callees' contract. Each
        // value is taken out first, so no access to the cell is alive while
        // its `Drop` runs (which may join other handles of this scope).
        let (closure, result) = unsafe {
            (
                self.take_leftover_task(),
                self.completion().take_leftover_result(),
            )
        };
        drop_reporting_panics(closure);
        drop_reporting_panics(result);
    }
}

/// Drops a leftover closure or result (user types whose `Drop` may panic):
/// nobody holds a handle to fail any more, so a panic is reported on
/// stderr and ignored, as the pool does for its jobs.
fn drop_reporting_panics<T>(leftover: Option<T>) {
    if leftover.is_some() {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(leftover))) {
            report_leftover_drop_panic(payload);
        }
    }
}

#[cold]
#[inline(never)]
fn report_leftover_drop_panic(payload: Box<dyn Any + Send>) {
    let message = take_panic_message(payload);
    eprintln!(
        "verisync: dropping what a scoped task left behind (its unrun closure or its unjoined \
         result) at the end of its scope panicked: {message}; the panic was caught and ignored"
    );
}

/// The tasks of a scope, and whether it still takes new ones.
struct ScopeTasks {
    /// In submission order; only grows until the scope's clean-up, which
    /// empties it. Lifetime-erased like the jobs (see `Scope::submit`), so
    /// that the scope itself holds nothing whose drop could outlive `'scope`.
    all: Vec<Arc<dyn ScopedTask>>,
    /// Every task is resolved and the scope is cleaning up: `submit` refuses.
    closed: bool,
}

/// A scope of [`ThreadPool::scope`]: submit tasks that borrow data living
/// outside it; the scope waits for all of them before it ends.
///
/// ```
/// let pool = verisync::ThreadPool::new(2);
/// let words = vec!["apple", "fig", "cherry"];
/// let total = std::sync::atomic::AtomicUsize::new(0);
/// pool.scope(|s| {
///     for word in &words {
///         let total = &total;
///         s.submit(move || total.fetch_add(word.len(), std::sync::atomic::Ordering::Relaxed));
///     }
/// });
/// assert_eq!(total.into_inner(), 14);
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    pool: &'env ThreadPool,
    tasks: Mutex<ScopeTasks>,
    /// Invariance over `'scope` and `'env`, as `std::thread::Scope`: the
    /// scope cannot be passed off as one with a longer or shorter life.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Queues `task` on the pool and returns its handle. The task may
    /// borrow anything that outlives the scope (and the scope itself, to
    /// submit more tasks). Like [`ThreadPool::submit`]: a panic fails only
    /// this handle, and a pool that is shutting down refuses the task
    /// (`Err(TaskError::ShutDown)`; it never runs).
    ///
    /// The scope's own clean-up is the one other refusal: once every task
    /// has finished, the scope drops what nobody joined; a `Drop` of such a
    /// leftover that submits to the scope gets a handle resolved to
    /// `Err(TaskError::ShutDown)` at once.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(2);
    /// let numbers = [1u64, 2, 3, 4];
    /// let sum = pool.scope(|s| {
    ///     let (left, right) = numbers.split_at(2);
    ///     let left = s.submit(|| left.iter().sum::<u64>());
    ///     let right = s.submit(|| right.iter().sum::<u64>());
    ///     left.join().unwrap() + right.join().unwrap()
    /// });
    /// assert_eq!(sum, 10);
    /// ```
    pub fn submit<F, R>(&'scope self, task: F) -> ScopedTaskHandle<'scope, R>
    where
        F: FnOnce() -> R + Send + 'scope,
        R: Send + 'scope,
    {
        let task = Arc::new(ThreadTask::new(self.pool, task));
        let handle = ScopedTaskHandle {
            holder: Arc::clone(&task) as Arc<dyn HoldsCompletion<R> + 'scope>,
            scope: PhantomData,
        };
        let mut tasks = self.tasks.lock();
        if tasks.closed {
            drop(tasks);
            refuse_after_close(&task);
            return handle;
        }
        let listed = Arc::clone(&task) as Arc<dyn ScopedTask + 'scope>;
        // SAFETY: only the lifetime changes (same fat pointer). The list is
        // emptied by `run_scope` (`drop_leftovers`) before it returns or
        // unwinds, after the task is resolved and its leftovers dropped.
        let listed =
            unsafe { mem::transmute::<Arc<dyn ScopedTask + 'scope>, Arc<dyn ScopedTask>>(listed) };
        tasks.all.push(listed);
        drop(tasks);
        let job: Arc<dyn Runnable + 'scope> = task;
        // SAFETY: only the lifetime changes (same fat pointer). The queue
        // and workers may keep this job past `'scope`, but `run_scope`
        // returns (or unwinds) only after the task is resolved and its
        // leftovers are dropped (the module docs, steps 1–3: it is in
        // `all` from before it is queued, the scope waits for every task in
        // `all`, then takes its unrun closure and unjoined result out).
        // After that the pool only compares-and-fails its claim (`perform`
        // on a resolved cell does nothing), sets nothing borrowed, and may
        // drop the job: empty `Option`s and `'static` callback nodes.
        let job: Job = unsafe { mem::transmute::<Arc<dyn Runnable + 'scope>, Job>(job) };
        self.pool.submit_job(job);
        handle
    }

    /// Whether the calling thread may run this scope's unstarted tasks
    /// inline while the scope waits: it is one of the pool's workers.
    fn helps(&self) -> bool {
        self.pool.is_own_worker()
    }

    /// Waits for every task, also those submitted meanwhile, then closes
    /// the scope (step 2 of the module docs). Runs no user code that may
    /// unwind: tasks run inline catch their panics.
    fn wait_for_every_task(&self) {
        let mut waited = 0;
        loop {
            let next = {
                let mut tasks = self.tasks.lock();
                match tasks.all.get(waited) {
                    Some(task) => Arc::clone(task),
                    None => {
                        tasks.closed = true;
                        return;
                    }
                }
            };
            next.wait_resolved();
            waited += 1;
        }
    }

    /// Drops every task's leftovers (step 3). The scope is closed, so the
    /// list no longer changes, and every task is resolved: nothing else
    /// runs that could touch them. The list is taken out of the lock
    /// first: a leftover's `Drop` may submit (and be refused).
    fn drop_leftovers(&self) {
        let all = mem::take(&mut self.tasks.lock().all);
        for task in &all {
            // SAFETY: `wait_for_every_task` saw each task resolved on this
            // thread; every task is resolved and no more can start, so only
            // this thread (and the `Drop`s it runs here, one at a time)
            // touches their closures and results.
            unsafe { task.drop_leftovers() };
        }
    }
}

/// A task submitted after the scope closed: resolved as refused, and its
/// closure dropped here, since the scope no longer looks after it.
#[cold]
fn refuse_after_close<F, R>(task: &ThreadTask<F, R>)
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    task.perform(JobAction::Refuse);
    // SAFETY: resolved on this thread just now; the task was never queued
    // and its one handle is not handed out yet. The result stays for that
    // handle: it is `Err(ShutDown)`, which borrows nothing.
    drop_reporting_panics(unsafe { task.take_leftover_task() });
}

/// Runs `body` with a new scope of `pool`, then waits for the scope's
/// tasks and drops their leftovers — also when `body` panicked, whose
/// panic is then passed on.
pub(crate) fn run_scope<'env, F, T>(pool: &'env ThreadPool, body: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        pool,
        tasks: Mutex::new_untracked(ScopeTasks {
            all: Vec::new(),
            closed: false,
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&scope)));
    scope.wait_for_every_task();
    scope.drop_leftovers();
    match outcome {
        Ok(value) => value,
        Err(panic) => resume_unwind(panic),
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Scope")
            .field("tasks", &self.tasks.lock().all.len())
            .field("on_own_worker", &self.helps())
            .finish_non_exhaustive()
    }
}

/// A scoped task's future result: [`TaskHandle`](crate::TaskHandle)'s
/// methods, for a task that may borrow from the caller's stack. It cannot
/// leave its scope, so it has no callbacks (`on_done` callbacks are
/// `'static`); `join` it inside the scope, or let the scope drop the result.
///
/// Joining from a worker of the pool runs an unstarted task inline, as for
/// [`TaskHandle::join`](crate::TaskHandle::join).
///
/// ```
/// let pool = verisync::ThreadPool::new(2);
/// let text = String::from("borrowed, not moved");
/// let words = pool.scope(|s| s.submit(|| text.split(' ').count()).join());
/// assert_eq!(words, Ok(3));
/// assert_eq!(text.len(), 19); // still ours
/// ```
///
/// A handle cannot escape its scope ("lifetime may not live long enough"):
///
/// ```compile_fail
/// let pool = verisync::ThreadPool::new(1);
/// let escaped = pool.scope(|s| s.submit(move || 1));
/// ```
///
/// and a task cannot borrow what the scope outlives ("closure may outlive
/// the current function, but it borrows `short_lived`"):
///
/// ```compile_fail,E0373
/// let pool = verisync::ThreadPool::new(1);
/// pool.scope(|s| {
///     let short_lived = vec![1, 2, 3];
///     s.submit(|| short_lived.len());
/// });
/// ```
pub struct ScopedTaskHandle<'scope, R> {
    holder: Arc<dyn HoldsCompletion<R> + 'scope>,
    scope: PhantomData<&'scope ()>,
}

impl<R> ScopedTaskHandle<'_, R> {
    /// Waits for the task and returns its value or why there is none.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(1);
    /// let base = 40;
    /// assert_eq!(pool.scope(|s| s.submit(|| base + 2).join()), Ok(42));
    /// ```
    pub fn join(self) -> Result<R, TaskError> {
        self.holder.run_inline_if_unstarted_here();
        self.holder.completion().take()
    }

    /// Waits for the task to finish, keeping the result for `join`.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(1);
    /// pool.scope(|s| {
    ///     let handle = s.submit(|| 1);
    ///     handle.wait();
    ///     assert!(handle.is_finished());
    /// });
    /// ```
    pub fn wait(&self) {
        self.holder.run_inline_if_unstarted_here();
        self.holder.completion().wait_done();
    }

    /// Waits at most `timeout`; `true` if the task finished.
    /// `Duration::MAX` waits forever, exactly as [`wait`](Self::wait)
    /// (so on a worker of the pool it runs an unstarted task inline); a
    /// shorter timeout never runs the task inline, so that it returns in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = verisync::ThreadPool::new(1);
    /// pool.scope(|s| assert!(s.submit(|| 1).wait_timeout(Duration::from_secs(5))));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        match deadline_after(timeout) {
            Some(deadline) => self.holder.completion().wait_done_until(Some(deadline)),
            None => {
                self.wait();
                true
            }
        }
    }

    /// Waits until `deadline`; `true` if the task finished.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let pool = verisync::ThreadPool::new(1);
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// pool.scope(|s| assert!(s.submit(|| 1).wait_until(deadline)));
    /// ```
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.holder.completion().wait_done_until(Some(deadline))
    }

    /// Whether the task finished (ran, panicked or was cancelled).
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(1);
    /// pool.scope(|s| {
    ///     let handle = s.submit(|| 1);
    ///     handle.wait();
    ///     assert!(handle.is_finished());
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.holder.completion().is_done()
    }

    /// Cancels the task if it has not started, as
    /// [`TaskHandle::cancel`](crate::TaskHandle::cancel): `true` whenever it
    /// ends up cancelled. Its closure is dropped when the scope ends.
    ///
    /// ```
    /// use verisync::{Event, TaskError, ThreadPool};
    /// let pool = ThreadPool::new(1);
    /// let gate = Event::new();
    /// pool.scope(|s| {
    ///     let blocker = s.submit(|| gate.wait());
    ///     let queued = s.submit(|| "never runs");
    ///     assert!(queued.cancel());
    ///     assert_eq!(queued.join(), Err(TaskError::Cancelled));
    ///     gate.set();
    ///     blocker.join().unwrap();
    /// });
    /// ```
    pub fn cancel(&self) -> bool {
        self.holder.cancel()
    }
}

impl<R> fmt::Debug for ScopedTaskHandle<'_, R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ScopedTaskHandle")
            .field("is_finished", &self.is_finished())
            .finish()
    }
}
