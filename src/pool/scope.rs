//! [`ThreadPool::scope`]: tasks that borrow from the caller's stack, like
//! `std::thread::scope` and `rayon::scope`, run by the pool's workers.
//!
//! # Implementation
//!
//! A scoped task is the pool's ordinary job plus a flag (see
//! `scoped_task.rs`), so it runs, panics, is cancelled or refused exactly
//! as a submitted task is. What differs is the closure's lifetime: it may
//! borrow anything that outlives `'scope`, while the queue holds `'static`
//! jobs. [`Scope::submit`] erases the lifetime, and the scope makes that
//! sound by never returning (nor unwinding) while the pool could still
//! touch borrowed data:
//!
//! 1. **Every task is known.** A task goes into the scope's list before it
//!    is queued; the list only grows, under its lock.
//! 2. **Every task is waited for.** When the body returns (or panics —
//!    the panic is caught and re-raised afterwards), the scope waits for
//!    the list's tasks, re-reading the list as it goes: tasks submitted by
//!    running tasks are appended before those finish, so once every listed
//!    task is resolved and the list has no more, none can be added by
//!    anyone but this thread. The scope then **closes** (under the lock):
//!    a later `submit` is refused on the spot.
//! 3. **Nothing borrowed is left behind.** A resolved task's closure is gone
//!    if it ran (consumed), but stays in the job if it was cancelled or
//!    refused: the scope takes it out and drops it on its own thread. A
//!    result nobody joined is dropped by its handle as the handle goes, or
//!    by the scope (on its thread) if the handle went before the task
//!    finished or is still alive — in an order that lets a result's `Drop`
//!    join a handle it holds (see `scoped_task.rs`). So the job the queue
//!    may still hold (and drop later) holds nothing borrowed.
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
//! task of the scope still queued. So there the scope **helps**: it keeps
//! the tasks it has not seen resolved, and repeatedly
//!
//! 1. notes the scope's *change count* (a counter under a lock, with a
//!    condition variable: the [`ScopeSignal`]);
//! 2. takes the tasks submitted since it last looked;
//! 3. runs every one of them that has not started inline (the cell's claim
//!    decides, as for [`TaskHandle::join`](crate::TaskHandle::join), so a
//!    task still runs once), and drops those now resolved;
//! 4. if none is left and none was submitted meanwhile, closes the scope;
//!    otherwise registers a callback on each remaining task (once per
//!    task) and sleeps until the change count moves past the one noted.
//!
//! Every `submit` and every resolution of a watched task raises the count
//! *after* the change, under the lock, so a change after step 1 wakes the
//! sleep of step 4 (or keeps it from starting): no wake-up is lost. Only a
//! scope on a worker keeps a signal; elsewhere the scope's thread just
//! waits for each task in turn, and tasks run on the pool's workers, with
//! their names and `on_worker_start` set-up.
//!
//! The help covers this scope's own tasks only: a task submitted with
//! [`ThreadPool::submit`], or to another scope, is run by a worker (or by a
//! `join` of it on a worker).

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::scoped_task::{ScopedHolder, ScopedTask, ScopedTaskHandle, ScopedThreadTask};
use super::thread::{Job, Runnable, ThreadPool};
use crate::condition::Condition;
use crate::mutex::Mutex;

/// Raised on every change a scope helping on a worker must look at: a
/// task submitted, a watched task resolved (see the module docs).
struct ScopeSignal {
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
    fn raise(&self) {
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

/// A task the helping scope has not seen resolved yet.
struct Pending {
    task: Arc<dyn ScopedTask>,
    /// A callback raises the scope's signal when the task is resolved.
    watched: bool,
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
    /// Only for a scope opened on one of the pool's workers, which helps
    /// (see the module docs).
    signal: Option<Arc<ScopeSignal>>,
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
        let task = Arc::new(ScopedThreadTask::new(self.pool, task));
        let handle = ScopedTaskHandle::new(Arc::clone(&task) as Arc<dyn ScopedHolder<R> + 'scope>);
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
        if let Some(signal) = &self.signal {
            signal.raise();
        }
        handle
    }

    /// Waits for every task, also those submitted meanwhile, then closes
    /// the scope (step 2 of the module docs), and returns what each task
    /// left behind. Runs no user code that may unwind: tasks run inline
    /// catch their panics.
    fn wait_for_every_task(&self) -> Leftovers {
        match &self.signal {
            None => self.wait_in_turn(),
            Some(signal) => {
                self.help_until_every_task_is_resolved(signal);
                self.note_leftovers_of_every_task()
            }
        }
    }

    /// Off the pool's workers: waits for each task in turn, and notes what
    /// it left behind while its memory is at hand (one walk over the tasks
    /// for both). The list is read a batch at a time: every task listed
    /// since the last look, under one lock, as plain pointers (no count
    /// to raise and lower on each task's memory).
    fn wait_in_turn(&self) -> Leftovers {
        let mut leftovers = Leftovers::default();
        let mut batch: Vec<*const dyn ScopedTask> = Vec::new();
        let mut waited = 0;
        loop {
            {
                let mut tasks = self.tasks.lock();
                if tasks.all.len() == waited {
                    tasks.closed = true;
                    return leftovers;
                }
                batch.extend(tasks.all[waited..].iter().map(Arc::as_ptr));
            }
            for task in batch.drain(..) {
                // SAFETY: the list holds an `Arc` of every task it ever
                // listed until `drop_leftovers`, which this thread runs
                // after this wait: the task is alive. (A longer list moves
                // the `Arc`s, not the tasks.)
                let task = unsafe { &*task };
                task.wait_done();
                leftovers.note(waited, task);
                waited += 1;
            }
        }
    }

    /// On one of the pool's workers, once every task is resolved and the
    /// scope closed: waits for each task's callbacks (the helping scope's
    /// own) to finish, so that it is done, and notes what it left behind.
    #[cold]
    fn note_leftovers_of_every_task(&self) -> Leftovers {
        let mut leftovers = Leftovers::default();
        // `wait_done` under the list's lock: the only callbacks left to
        // finish are the helping scope's own, which raise its signal and
        // never take this lock. A callback that took it would deadlock here.
        let tasks = self.tasks.lock();
        for (index, task) in tasks.all.iter().enumerate() {
            task.wait_done();
            leftovers.note(index, &**task);
        }
        leftovers
    }

    /// On one of the pool's workers: runs the unstarted tasks inline and
    /// sleeps on the signal while others run elsewhere (the module docs,
    /// "Waiting on one of the pool's own workers").
    #[cold]
    #[inline(never)]
    fn help_until_every_task_is_resolved(&self, signal: &Arc<ScopeSignal>) {
        let mut pending: Vec<Pending> = Vec::new();
        let mut seen = 0;
        loop {
            let changes = signal.changes();
            {
                let tasks = self.tasks.lock();
                pending.extend(tasks.all[seen..].iter().map(|task| Pending {
                    task: Arc::clone(task),
                    watched: false,
                }));
                seen = tasks.all.len();
            }
            for entry in &pending {
                entry.task.run_if_unstarted_here();
            }
            pending.retain(|entry| !entry.task.is_resolved());
            if pending.is_empty() {
                let mut tasks = self.tasks.lock();
                if tasks.all.len() == seen {
                    tasks.closed = true;
                    return;
                }
                continue; // submitted meanwhile
            }
            for entry in pending.iter_mut().filter(|entry| !entry.watched) {
                let signal = Arc::clone(signal);
                entry
                    .task
                    .notify_when_resolved(Box::new(move || signal.raise()));
                entry.watched = true;
            }
            signal.wait_for_change(changes);
        }
    }

    /// Drops every task's leftovers (step 3): the closures that never ran,
    /// then the results nobody joined whose handle is gone, then those
    /// whose handle still lives, newest first (see `scoped_task.rs`). The
    /// scope is closed, so the list no longer changes, and every task is
    /// done: nothing else runs that could touch them. The list is taken out
    /// of the lock first: a leftover's `Drop` may submit (and be refused).
    ///
    /// Only the tasks `leftovers` names are visited, and a task is let go
    /// of as soon as nothing of it is left to drop, so that a scope of many
    /// tasks walks its tasks' memory twice (this and the wait), not once a
    /// pass.
    fn drop_leftovers(&self, leftovers: &Leftovers) {
        let all = mem::take(&mut self.tasks.lock().all);
        for &index in &leftovers.unrun_closures {
            // SAFETY: each task is done, seen on this thread (the wait);
            // no more can start, so only this thread (and the `Drop`s it
            // runs here, one at a time) touches their closures and results.
            unsafe { all[index].drop_unrun_closure() };
        }
        let mut all: Vec<Option<Arc<dyn ScopedTask>>> = all.into_iter().map(Some).collect();
        for &index in &leftovers.results_of_gone_handles {
            if let Some(task) = all[index].take() {
                // SAFETY: as above. Its handle is gone and its closure
                // dropped: nothing of it is left for a later pass.
                unsafe { task.drop_result_if_handle_gone() };
            }
        }
        for &index in leftovers.results_of_live_handles.iter().rev() {
            if let Some(task) = &all[index] {
                // SAFETY: as above; the body and every task have finished,
                // so a live handle is reachable only from the leftovers
                // dropped here. A handle such a `Drop` lets go of drops its
                // task's result itself (the task is done), so the task's
                // turn here, if it comes later, finds nothing.
                unsafe { task.drop_result_even_with_a_live_handle() };
            }
        }
    }
}

/// What the scope's tasks left behind, noted once each task is done:
/// indices into the scope's list, each in submission order. A result is
/// noted under the handle's state at that moment: one whose handle goes
/// later (dropped by a task still running, or by a leftover's `Drop`) is
/// dropped by that handle (the task is done), so the scope finds it gone.
#[derive(Default)]
struct Leftovers {
    /// Tasks whose closure never ran (cancelled or refused).
    unrun_closures: Vec<usize>,
    /// Tasks whose handle is gone: their result, if still there, is the
    /// scope's to drop.
    results_of_gone_handles: Vec<usize>,
    /// Tasks whose handle still lives (forgotten, or held in a leftover).
    results_of_live_handles: Vec<usize>,
}

impl Leftovers {
    /// Notes what `task`, number `index` of the list, left behind.
    fn note(&mut self, index: usize, task: &dyn ScopedTask) {
        // SAFETY: `task` is done, seen on this thread just now (both
        // callers waited for it); its closure is then touched by nobody
        // but this scope.
        let left = unsafe { task.left_behind() };
        if left.unrun_closure {
            self.unrun_closures.push(index);
        }
        if left.handle_gone {
            self.results_of_gone_handles.push(index);
        } else {
            self.results_of_live_handles.push(index);
        }
    }
}

/// A task submitted after the scope closed: resolved as refused, and its
/// closure dropped here, since the scope no longer looks after it.
#[cold]
fn refuse_after_close<F, R>(task: &ScopedThreadTask<F, R>)
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    // SAFETY: `submit` found the scope closed before queuing the task, and
    // has not returned its handle yet.
    unsafe { task.refuse_unqueued() };
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
        signal: pool.is_own_worker().then(|| Arc::new(ScopeSignal::new())),
        scope: PhantomData,
        env: PhantomData,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&scope)));
    let leftovers = scope.wait_for_every_task();
    scope.drop_leftovers(&leftovers);
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
            .field("on_own_worker", &self.signal.is_some())
            .finish_non_exhaustive()
    }
}
