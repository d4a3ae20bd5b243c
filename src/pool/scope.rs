//! [`ThreadPool::scope`]: tasks that borrow from the caller's stack, like
//! `std::thread::scope` and `rayon::scope`, run by the pool's workers.
//!
//! # Implementation
//!
//! A scoped task is the pool's ordinary job plus what ties it to its scope
//! (see `scoped_task.rs`), so it runs, panics, is cancelled or refused
//! exactly as a submitted task is. What differs is the closure's lifetime:
//! it may borrow anything that outlives `'scope`, while the queue holds
//! `'static` jobs. [`Scope::submit`] erases the lifetime, and the scope
//! makes that sound by never returning (nor unwinding) while the pool could
//! still touch borrowed data:
//!
//! 1. **Every task is counted.** `submit` counts a task in the scope's
//!    account ([`ScopeTasks`]) before it is queued; whoever resolves it
//!    (a worker, an inline run, a `cancel`, a refusing pool) *settles* it
//!    and counts it settled as the last thing it does with the scope.
//! 2. **Every task is waited for.** When the body returns (or panics — the
//!    panic is caught and re-raised afterwards), the scope waits until the
//!    count of unsettled tasks is 0, sleeping in the parking seam (see
//!    `scope_tasks.rs`). A task submits only before it settles, so at 0
//!    nobody but this thread can submit any more. The scope then
//!    **closes**: a later `submit` (from a leftover's `Drop`) is refused on
//!    the spot.
//! 3. **Nothing borrowed is left behind.** A task that ran consumed its
//!    closure; one that was cancelled or refused left it with the scope,
//!    which drops it on its own thread. A result nobody joined is dropped
//!    by its handle as the handle goes, by the settling thread if the
//!    handle went first, or by the scope if the handle outlives every task
//!    (see `scoped_task.rs`). So the job the queue may still hold (and drop
//!    later) holds nothing borrowed.
//!
//! A scope whose tasks' handles are dropped keeps nothing per task: each
//! costs one allocation (job, cell and handle state together), one count up
//! and one down — no list of tasks to lock, grow or walk at the end.
//!
//! Every way a task ends resolves its cell: a worker runs it (a panic
//! fails only its handle), `cancel` or `shutdown_now` cancels it, a pool
//! already shutting down refuses it (`ShutDown`, as for `submit`). None of
//! these waits for the scope, so step 2 always ends unless a task itself
//! never returns.
//!
//! # Waiting on one of the pool's own workers
//!
//! A scope opened by a task of its own pool would deadlock if it only
//! waited: its tasks may need the very worker it blocks — also a task it
//! waits for that already runs elsewhere, if that one waits for another
//! task of the scope still queued. So there the scope **helps**: it also
//! lists its tasks as they are submitted (only there), and repeatedly
//!
//! 1. notes the scope's *change count* (a counter under a lock, with a
//!    condition variable: the [`ScopeSignal`]);
//! 2. takes the tasks listed since it last looked;
//! 3. runs every one of them that has not started inline (the cell's claim
//!    decides, as for [`TaskHandle::join`](crate::TaskHandle::join), so a
//!    task still runs once), and lets go of those settled;
//! 4. if every task has settled (the count is 0), closes the scope;
//!    otherwise sleeps until the change count moves past the one noted.
//!
//! Every `submit` raises the count after listing its task, and every task
//! after it settled (through its own share of the signal, never the
//! scope's memory), so a change after step 1 wakes the sleep of step 4 (or
//! keeps it from starting): no wake-up is lost. Elsewhere the scope's
//! thread just waits for the count, and tasks run on the pool's workers,
//! with their names and `on_worker_start` set-up.
//!
//! The help covers this scope's own tasks only: a task submitted with
//! [`ThreadPool::submit`], or to another scope, is run by a worker (or by a
//! `join` of it on a worker).

use std::cmp::Reverse;
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::scope_tasks::ScopeTasks;
use super::scoped_task::{ScopedHolder, ScopedTask, ScopedTaskHandle, ScopedThreadTask};
use super::thread::{Job, Runnable, ThreadPool};
use crate::condition::Condition;
use crate::mutex::Mutex;

/// Raised on every change a scope helping on a worker must look at: a
/// task submitted, a task settled (see the module docs).
pub(super) struct ScopeSignal {
    /// How many changes so far (wrapping).
    changes: Mutex<u64>,
    changed: Condition,
}

impl ScopeSignal {
    fn new() -> Self {
        Self {
            changes: Mutex::new_untracked(0),
            changed: Condition::new(),
        }
    }

    /// Counts a change (made before this call) and wakes the scope's wait.
    pub(super) fn raise(&self) {
        {
            let mut changes = self.changes.lock();
            *changes = changes.wrapping_add(1);
        }
        self.changed.notify_all();
    }

    /// The change count now.
    fn changes(&self) -> u64 {
        *self.changes.lock()
    }

    /// Sleeps until the change count is no longer `seen`.
    fn wait_for_change(&self, seen: u64) {
        let mut changes = self.changes.lock();
        while *changes == seen {
            self.changed.wait(&mut changes);
        }
    }
}

/// What a scope opened on one of its pool's workers keeps to help (see the
/// module docs).
struct Helper {
    /// Raised by `submit` and by each task once settled (its own share).
    signal: Arc<ScopeSignal>,
    /// Tasks submitted since the helping wait last looked. Lifetime-erased
    /// like the jobs (see `Scope::submit`); emptied before the scope ends.
    submitted: Mutex<Vec<Arc<dyn ScopedTask>>>,
}

impl Helper {
    fn new() -> Self {
        Self {
            signal: Arc::new(ScopeSignal::new()),
            submitted: Mutex::new_untracked(Vec::new()),
        }
    }
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
pub struct Scope<'scope, 'env: 'scope> {
    pool: &'env ThreadPool,
    /// The count of unsettled tasks and what they left (see `scope_tasks.rs`).
    tasks: ScopeTasks,
    /// Only for a scope opened on one of the pool's workers, which helps
    /// (see the module docs).
    helper: Option<Helper>,
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
    /// has finished, the scope drops what is left (closures of cancelled
    /// tasks, results of forgotten handles); a `Drop` of such a leftover
    /// that submits to the scope gets a handle resolved to
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
        if self.tasks.is_closed() {
            return refuse_after_close(self.pool, &self.tasks, task);
        }
        let number = self.tasks.add();
        let raise_when_settled = self
            .helper
            .as_ref()
            .map(|helper| Arc::clone(&helper.signal));
        let task = ScopedThreadTask::new(self.pool, task, &self.tasks, number, raise_when_settled);
        let handle = ScopedTaskHandle::new(Arc::clone(&task) as Arc<dyn ScopedHolder<R> + 'scope>);
        if let Some(helper) = &self.helper {
            let listed = Arc::clone(&task) as Arc<dyn ScopedTask + 'scope>;
            // SAFETY: only the lifetime changes (same fat pointer). The
            // helping wait empties the list and lets go of what it took
            // before `run_scope` returns (or unwinds).
            let listed = unsafe {
                mem::transmute::<Arc<dyn ScopedTask + 'scope>, Arc<dyn ScopedTask>>(listed)
            };
            helper.submitted.lock().push(listed);
        }
        let job: Arc<dyn Runnable + 'scope> = task;
        // SAFETY: only the lifetime changes (same fat pointer). The queue
        // and workers may keep this job past `'scope`, but `run_scope`
        // returns (or unwinds) only after the task settled and its
        // leftovers are dropped (the module docs, steps 1–3: it is counted
        // before it is queued, the scope waits until every counted task
        // settled, then drops the unrun closures and unjoined results left
        // with it). After that the pool only compares-and-fails its claim
        // (`perform` on a resolved cell does nothing), sets nothing
        // borrowed, and may drop the job: empty `Option`s and `'static`
        // values.
        let job: Job = unsafe { mem::transmute::<Arc<dyn Runnable + 'scope>, Job>(job) };
        self.pool.submit_job(job);
        if let Some(helper) = &self.helper {
            helper.signal.raise();
        }
        handle
    }

    /// Waits until every task, also those submitted meanwhile, settled, then
    /// closes the scope (step 2 of the module docs). Runs no user code that
    /// may unwind: tasks run inline catch their panics.
    fn wait_for_every_task(&self) {
        match &self.helper {
            None => self.tasks.wait_until_all_settled(),
            Some(helper) => self.help_until_every_task_settled(helper),
        }
        self.tasks.close();
    }

    /// On one of the pool's workers: runs the unstarted tasks inline and
    /// sleeps on the signal while others run elsewhere (the module docs,
    /// "Waiting on one of the pool's own workers").
    #[cold]
    #[inline(never)]
    fn help_until_every_task_settled(&self, helper: &Helper) {
        self.tasks.stop_counting_ahead();
        let mut unsettled: Vec<Arc<dyn ScopedTask>> = Vec::new();
        loop {
            let changes = helper.signal.changes();
            unsettled.append(&mut helper.submitted.lock());
            for task in &unsettled {
                task.run_if_unstarted_here();
            }
            unsettled.retain(|task| !task.is_settled());
            if self.tasks.all_settled() {
                return;
            }
            helper.signal.wait_for_change(changes);
        }
    }

    /// Drops what the tasks left with the scope (step 3): the closures that
    /// never ran, then the results nobody joined whose handle is still
    /// alive (forgotten, or held in such a leftover), newest task first
    /// (see `scoped_task.rs`). Every task settled and the scope is closed,
    /// so nothing else runs that could touch them; the list is taken out
    /// of its lock first, as a leftover's `Drop` may submit (and be
    /// refused).
    fn drop_leftovers(&self) {
        let left = self.tasks.take_left();
        if left.is_empty() {
            return;
        }
        drop_left_behind(left);
    }
}

/// [`Scope::drop_leftovers`] of a scope that has any.
#[cold]
#[inline(never)]
fn drop_left_behind(left: Vec<super::scope_tasks::LeftForScope>) {
    for entry in &left {
        // SAFETY: every task settled, seen on this thread (the wait); no
        // more can start, so only this thread (and the `Drop`s it runs
        // here, one at a time) touches their closures and results.
        unsafe { entry.task.drop_unrun_closure() };
    }
    // SAFETY (each call): as above.
    let mut with_live_handles: Vec<_> = left
        .into_iter()
        .filter(|entry| unsafe { entry.task.handle_is_alive() })
        .collect();
    with_live_handles.sort_unstable_by_key(|entry| Reverse(entry.number));
    for entry in with_live_handles {
        // SAFETY: as above; the body and every task have finished, so a
        // live handle is reachable only from the leftovers dropped here. A
        // handle such a `Drop` lets go of drops its task's result itself
        // (the task settled), so the task's turn here, if it comes later,
        // finds nothing.
        unsafe { entry.task.drop_result_even_with_a_live_handle() };
    }
}

/// A task submitted after the scope closed: resolved as refused, and its
/// closure dropped here, since the scope no longer looks after it.
#[cold]
fn refuse_after_close<'scope, F, R>(
    pool: &ThreadPool,
    tasks: &ScopeTasks,
    task: F,
) -> ScopedTaskHandle<'scope, R>
where
    F: FnOnce() -> R + Send + 'scope,
    R: Send + 'scope,
{
    let task = ScopedThreadTask::new(pool, task, tasks, usize::MAX, None);
    // SAFETY: never queued, and its handle is made only below.
    unsafe { task.refuse_unqueued() };
    ScopedTaskHandle::new(task)
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
        tasks: ScopeTasks::new(),
        helper: pool.is_own_worker().then(Helper::new),
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

/// Shows `unfinished_tasks`, a snapshot of the tasks not settled yet: a
/// task counts until its worker is done with it, a moment after its
/// handle's `join` returns; and read from a thread other than the scope's
/// own while that thread submits, it may be off by up to 64 (the scope's
/// thread counts its submissions 64 at a time). A diagnostic, not a
/// synchronisation point.
///
/// ```
/// let pool = verisync::ThreadPool::new(1);
/// pool.scope(|scope| {
///     assert!(format!("{scope:?}").contains("unfinished_tasks: 0"));
/// });
/// ```
impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Scope")
            .field("unfinished_tasks", &self.tasks.unsettled())
            .field("on_own_worker", &self.helper.is_some())
            .finish_non_exhaustive()
    }
}
