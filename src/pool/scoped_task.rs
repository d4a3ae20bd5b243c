//! A scoped task: the job [`Scope::submit`](super::Scope::submit) queues
//! ([`ScopedThreadTask`]), the scope's view of it ([`ScopedTask`]), and its
//! handle ([`ScopedTaskHandle`]).
//!
//! # Implementation
//!
//! A scoped task is the pool's ordinary job ([`ThreadTask`]: closure and
//! completion cell in one allocation) plus one flag: whether its one handle
//! is gone (dropped, or consumed by `join`). The flag decides who drops a
//! result nobody joined — always after the task is done, and never while
//! someone could still join it:
//!
//! | the handle goes away...                  | the unjoined result is dropped by...       |
//! |------------------------------------------|--------------------------------------------|
//! | after the task finished                  | the handle, as it goes                     |
//! | before the task finished                 | the scope, when it ends                    |
//! | not before the scope ends (forgotten, or held in another such result) | the scope, last, newest task first |
//!
//! So a result whose `Drop` joins another handle of the scope held in it
//! finds that handle's result still there: the scope drops the results of
//! gone handles first, and a chain of such results is dropped link by link
//! as each `Drop` lets go of the next handle (whose own drop then takes
//! its result, or leaves it to the scope's pass). What is left has a live
//! handle nobody can reach but those leftovers' `Drop`s: a forgotten one,
//! or one held in a result of that same last pass. That pass goes newest
//! task first, as a handle can be captured only by tasks submitted after
//! it; only a cycle (or a handle passed back to an older task) can still
//! make such a `Drop` join a result already dropped, which panics there
//! ("a task's result is taken once") and is reported like any other
//! leftover's panic.
//!
//! **Memory ordering.** The handle stores the flag with `Release` after it
//! took what it drops; the scope loads it with `Acquire`, only once every
//! task is done — by then every thread that could hold a handle (the
//! scope's body, its tasks) has finished with it, ordered before the scope
//! by the tasks' `done` events; the scope's own thread drops leftovers one
//! at a time.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::task::{Completion, HoldsCompletion, TaskError};
use super::thread::{JobAction, Runnable, ThreadPool, ThreadTask};
use crate::panic_payload::drop_reporting_panics;
use crate::sys::atomic::{AtomicBool, Ordering};
use crate::sys::time::deadline_after;

/// A scoped task's job: the pool's [`ThreadTask`], and whether its handle
/// is gone (see the module docs).
pub(super) struct ScopedThreadTask<F, R> {
    task: ThreadTask<F, R>,
    /// The task's one handle was dropped (or joined): the scope may drop
    /// the result if it is still there.
    handle_gone: AtomicBool,
}

impl<F, R> ScopedThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    pub(super) fn new(pool: &ThreadPool, task: F) -> Self {
        Self {
            task: ThreadTask::new(pool, task),
            handle_gone: AtomicBool::new(false),
        }
    }

    /// Resolves a task that was never queued as refused and drops its
    /// closure (a `submit` after the scope closed).
    ///
    /// # Safety
    ///
    /// The task was never queued, and its handle is not handed out yet.
    pub(super) unsafe fn refuse_unqueued(&self) {
        self.task.perform(JobAction::Refuse);
        // SAFETY: resolved on this thread just now; never queued, and the
        // handle is not handed out (the caller's contract): nobody else
        // touches the closure. The result stays for that handle: it is
        // `Err(ShutDown)`, which borrows nothing.
        drop_reporting_panics(
            unsafe { self.task.take_leftover_task() },
            LEFTOVER_AT_SCOPE_END,
        );
    }
}

impl<F, R> Runnable for ScopedThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn perform(&self, action: JobAction) -> bool {
        self.task.perform(action)
    }
}

impl<F, R> HoldsCompletion<R> for ScopedThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn completion(&self) -> &Completion<R> {
        self.task.completion()
    }

    #[inline]
    fn run_inline_if_unstarted_here(&self) {
        self.task.run_inline_if_unstarted_here();
    }
}

/// A scope's view of one of its tasks, whatever its closure and result types.
pub(super) trait ScopedTask: Send + Sync {
    /// On a worker of the task's pool, runs the task here if it has not
    /// started; elsewhere does nothing.
    fn run_if_unstarted_here(&self);

    /// Whether the task's result is stored (its callbacks may still run).
    fn is_resolved(&self) -> bool;

    /// Runs `notify` once the task is resolved (at once, here, if it is).
    fn notify_when_resolved(&self, notify: Box<dyn FnOnce() + Send>);

    /// Waits until the task is done: resolved, and its callbacks ran.
    fn wait_done(&self);

    /// What the task left for its scope to drop: whether its closure never
    /// ran, and whether its handle is gone (see the module docs).
    ///
    /// # Safety
    ///
    /// The calling thread has seen the task done ([`wait_done`](Self::wait_done)
    /// returned). Other threads may still drop its handle.
    unsafe fn left_behind(&self) -> LeftBehind;

    /// Drops the closure if it never ran; a panicking `Drop` is reported
    /// and ignored.
    ///
    /// # Safety
    ///
    /// The calling thread has seen the task done ([`wait_done`](Self::wait_done)
    /// returned), and no other thread touches the task any more.
    unsafe fn drop_unrun_closure(&self);

    /// Drops the result if nobody joined it and its handle is gone (see the
    /// module docs); a panicking `Drop` is reported and ignored.
    ///
    /// # Safety
    ///
    /// As for [`drop_unrun_closure`](Self::drop_unrun_closure).
    unsafe fn drop_result_if_handle_gone(&self);

    /// Drops the result if nobody joined it, though its handle may be alive
    /// (the scope's last pass, see the module docs).
    ///
    /// # Safety
    ///
    /// As for [`drop_unrun_closure`](Self::drop_unrun_closure); besides, a
    /// live handle of the task can only be reached from the leftovers this
    /// thread drops (the scope's body and every task have finished).
    unsafe fn drop_result_even_with_a_live_handle(&self);
}

impl<F, R> ScopedTask for ScopedThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn run_if_unstarted_here(&self) {
        self.task.run_inline_if_unstarted_here();
    }

    fn is_resolved(&self) -> bool {
        self.task.completion().is_resolved()
    }

    fn notify_when_resolved(&self, notify: Box<dyn FnOnce() + Send>) {
        self.task.completion().notify_when_resolved(notify);
    }

    fn wait_done(&self) {
        self.task.completion().wait_done();
    }

    unsafe fn left_behind(&self) -> LeftBehind {
        LeftBehind {
            // SAFETY: done and seen (the caller's contract): the closure was
            // taken before the task was resolved, if it ever was, and only
            // the scope touches it from now on.
            unrun_closure: unsafe { self.task.has_leftover_task() },
            // Acquire: pairs with the handle's Release (see the module docs).
            handle_gone: self.handle_gone.load(Ordering::Acquire),
        }
    }

    unsafe fn drop_unrun_closure(&self) {
        // SAFETY: the caller's contract is the callee's. Taken out first,
        // so nothing of the task is borrowed while its `Drop` runs (which
        // may join other handles of the scope).
        let closure = unsafe { self.task.take_leftover_task() };
        drop_reporting_panics(closure, LEFTOVER_AT_SCOPE_END);
    }

    unsafe fn drop_result_if_handle_gone(&self) {
        // Acquire: pairs with the handle's Release (see the module docs).
        if !self.handle_gone.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: done and seen (the caller's contract); the handle is gone,
        // so the scope is the one party entitled to the result now, and
        // only this thread touches it.
        let result = unsafe { self.task.completion().take_leftover_result() };
        drop_reporting_panics(result, LEFTOVER_AT_SCOPE_END);
    }

    unsafe fn drop_result_even_with_a_live_handle(&self) {
        // SAFETY: done and seen (the caller's contract); a live handle is
        // reachable only from `Drop`s this thread runs one at a time, so
        // nothing touches the slot concurrently.
        let result = unsafe { self.task.completion().take_leftover_result() };
        drop_reporting_panics(result, LEFTOVER_AT_SCOPE_END);
    }
}

/// What a done task left for its scope ([`ScopedTask::left_behind`]).
pub(super) struct LeftBehind {
    /// The closure never ran (the task was cancelled or refused).
    pub(super) unrun_closure: bool,
    /// The task's one handle is gone (dropped or joined).
    pub(super) handle_gone: bool,
}

/// A scoped task's handle's view of it.
pub(super) trait ScopedHolder<R>: HoldsCompletion<R> {
    /// The task's one handle is going away: drops the result now if the
    /// task is done (nobody can join it any more), else leaves it to the
    /// scope (see the module docs).
    fn release_handle(&self);
}

impl<F, R> ScopedHolder<R> for ScopedThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn release_handle(&self) {
        let completion = self.task.completion();
        if completion.is_done() {
            // SAFETY: done, seen just now; the handle (going away here) is
            // the one party entitled to the result until the flag below is
            // set, and the scope looks only after that.
            let result = unsafe { completion.take_leftover_result() };
            self.handle_gone.store(true, Ordering::Release);
            drop_reporting_panics(result, RESULT_WITH_ITS_HANDLE);
        } else {
            // Release: the scope that sees the flag sees the handle gone.
            self.handle_gone.store(true, Ordering::Release);
        }
    }
}

/// What [`drop_reporting_panics`] drops here, for its report.
const LEFTOVER_AT_SCOPE_END: &str =
    "what a scoped task left behind (its unrun closure or its unjoined result) at the end of its \
     scope";
const RESULT_WITH_ITS_HANDLE: &str =
    "a scoped task's result nobody joined, as its handle was dropped";

/// A scoped task's future result: [`TaskHandle`](crate::TaskHandle)'s
/// methods, for a task that may borrow from the caller's stack. It cannot
/// leave its scope, so it has no callbacks (`on_done` callbacks are
/// `'static`); `join` it inside the scope, or let the scope drop the result.
///
/// Joining from a worker of the pool runs an unstarted task inline, as for
/// [`TaskHandle::join`](crate::TaskHandle::join) (with the same limits).
///
/// A result nobody joins is dropped when the handle is dropped, if the task
/// has finished by then, else by the scope before it returns (see
/// [`ThreadPool::scope`](crate::ThreadPool::scope)).
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
    holder: Arc<dyn ScopedHolder<R> + 'scope>,
    scope: PhantomData<&'scope ()>,
}

impl<'scope, R> ScopedTaskHandle<'scope, R> {
    pub(super) fn new(holder: Arc<dyn ScopedHolder<R> + 'scope>) -> Self {
        Self {
            holder,
            scope: PhantomData,
        }
    }
}

/// Drops the result now if the task is done and nobody joined it, else
/// leaves it to the scope (see the module docs).
impl<R> Drop for ScopedTaskHandle<'_, R> {
    fn drop(&mut self) {
        self.holder.release_handle();
    }
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
