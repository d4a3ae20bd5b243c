//! A scoped task: the job [`Scope::submit`](super::Scope::submit) queues
//! ([`ScopedThreadTask`]), the scope's view of it ([`ScopedTask`]), and its
//! handle ([`ScopedTaskHandle`]).
//!
//! # Implementation
//!
//! A scoped task is the pool's ordinary job ([`ThreadTask`]: closure and
//! completion cell in one allocation) plus what ties it to its scope: a
//! pointer to the scope's account ([`ScopeTasks`]), its submission number,
//! and an ownership word saying whether its one handle is gone (dropped,
//! or consumed by `join`) and whether the task has settled. Whoever resolves
//! the task (a worker, an inline run, a `cancel`, a refusing pool) then
//! **settles** it, on its own thread, before it lets go of the scope:
//!
//! 1. sets `SETTLED` in the ownership word; if the handle was gone by then,
//!    drops the result itself (nobody can join it any more);
//! 2. leaves the task with the scope if anything of it must outlive this
//!    moment for the scope's end: its closure if it never ran (cancelled or
//!    refused; dropped when the scope ends, as `cancel` promises), or its
//!    result if the handle was still alive;
//! 3. counts the task settled in the scope's account — the last touch of
//!    the scope (see `scope_tasks.rs`).
//!
//! The handle, as it goes, sets `HANDLE_GONE`; if the task had settled, it
//! drops the result itself. Exactly one of the two sees the other's bit, so
//! exactly one may drop the result:
//!
//! ```text
//!  ownership:  0 ──handle goes──▶ HANDLE_GONE ──task settles──▶ both (the settling thread drops the result)
//!              └──task settles──▶ SETTLED ─────handle goes──▶ both (the handle drops the result)
//! ```
//!
//! | the handle goes away...                  | the unjoined result is dropped by...       |
//! |------------------------------------------|--------------------------------------------|
//! | before the task settled                  | the thread that settles it (a worker, usually) |
//! | after the task settled                   | the handle, as it goes                     |
//! | not before the scope ends (forgotten, or held in another such result) | the scope, last, newest task first |
//!
//! So no result waits for the scope's end unless its handle outlives the
//! task, and a scope whose handles are dropped at once keeps nothing per
//! task: a task in flight is one allocation and one count.
//!
//! A result whose `Drop` joins another handle of the scope held in it finds
//! that handle's result still there: every result but those of the last
//! pass is dropped while its own handle is gone, and a chain of such
//! results is dropped link by link as each `Drop` lets go of the next
//! handle. What is left at the scope's end has a live handle nobody can
//! reach but those leftovers' `Drop`s: a forgotten one, or one held in a
//! result of that same last pass. That pass goes newest task first, as a
//! handle can be captured only by tasks submitted after it; only a cycle
//! (or a handle passed back to an older task) can still make such a `Drop`
//! join a result already dropped, which panics there ("a task's result is
//! taken once") and is reported like any other leftover's panic.
//!
//! **Memory ordering.** Both sides set their bit with an `AcqRel`
//! read-modify-write: the one that sees the other's bit has seen
//! everything the other did before (the task's result stored, or a `join`
//! that took it), so its `take` of the result slot is ordered after every
//! other access. The scope reads the word (`Acquire`) only once every task
//! settled — every thread that could hold a handle then (the scope's body,
//! its tasks) is done with it, ordered before by the settle count — and
//! its own thread drops leftovers one at a time.

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::scope::ScopeSignal;
use super::scope_tasks::{LeftForScope, ScopeTasks};
use super::task::{Completion, HoldsCompletion, TaskError};
use super::thread::{JobAction, Runnable, ThreadPool, ThreadTask};
use crate::panic_payload::drop_reporting_panics;
use crate::sys::atomic::{AtomicUsize, Ordering};
use crate::sys::time::deadline_after;

/// The task's one handle is gone (dropped, or consumed by `join`).
const HANDLE_GONE: usize = 1;
/// The task is resolved and settled with its scope (see the module docs).
const SETTLED: usize = 2;
/// The ownership word holds the submission number above its two bits.
const NUMBER_SHIFT: u32 = 2;

/// A scoped task's job: the pool's [`ThreadTask`] and what ties it to its
/// scope (see the module docs). Always in an `Arc` (see [`new`](Self::new)).
pub(super) struct ScopedThreadTask<'scope, F, R> {
    task: ThreadTask<F, R>,
    /// `HANDLE_GONE` and `SETTLED` (see the module docs), and above them
    /// the submission number (the scope's last pass goes newest first),
    /// which never changes. One word for both, and a thin pointer for the
    /// signal, keep a tiny task's allocation (the `Arc` of this) within
    /// 120 bytes: glibc's fast bins, whose frees on a worker take no lock
    /// and whose mallocs refill the submitter's cache seven at a time
    /// (`benches/NOTES.md`, "Thread pool: `map` and `scope`").
    ownership: AtomicUsize,
    /// The scope's account. A pointer, not a reference: the scope may be
    /// gone once the task settled, while the task's memory lives on.
    scope: *const ScopeTasks,
    /// A scope helping on a worker is told after each settle.
    settled_signal: Option<Arc<ScopeSignal>>,
    lifetime: PhantomData<&'scope ()>,
}

// SAFETY: `scope` is only dereferenced by the thread that settles the task,
// while the scope waits for that settle (the account outlives it, and it
// is `Sync`); the rest is `ThreadTask` (`Sync` for `F, R: Send`), an atomic
// and `Send + Sync` values.
unsafe impl<F: Send, R: Send> Send for ScopedThreadTask<'_, F, R> {}
// SAFETY: as above.
unsafe impl<F: Send, R: Send> Sync for ScopedThreadTask<'_, F, R> {}

impl<'scope, F, R> ScopedThreadTask<'scope, F, R>
where
    F: FnOnce() -> R + Send + 'scope,
    R: Send + 'scope,
{
    /// A task of the scope whose account is `scope`, numbered `number`.
    /// The scope must have counted it ([`ScopeTasks::add`]) if it will be
    /// queued.
    pub(super) fn new(
        pool: &ThreadPool,
        task: F,
        scope: &ScopeTasks,
        number: usize,
        settled_signal: Option<Arc<ScopeSignal>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            task: ThreadTask::new(pool, task),
            // Bits lost off the top only past 2^62 tasks in one scope on a
            // 64-bit target, 2^30 on a 32-bit one: then only the order of
            // the scope's last drop pass is off.
            ownership: AtomicUsize::new(number << NUMBER_SHIFT),
            scope,
            settled_signal,
            lifetime: PhantomData,
        })
    }

    /// Resolves a task that was never queued (nor counted) as refused and
    /// drops its closure (a `submit` after the scope closed).
    ///
    /// # Safety
    ///
    /// The task was never queued, and its handle is not handed out yet.
    pub(super) unsafe fn refuse_unqueued(&self) {
        self.task.resolve(JobAction::Refuse);
        // Relaxed: nobody else has the task yet. Settled without the
        // scope: the handle drops the result (`Err(ShutDown)`) as it goes.
        self.ownership.fetch_or(SETTLED, Ordering::Relaxed);
        // SAFETY: resolved on this thread just now; never queued, and the
        // handle is not handed out (the caller's contract): nobody else
        // touches the closure.
        drop_reporting_panics(
            unsafe { self.task.take_leftover_task() },
            LEFTOVER_AT_SCOPE_END,
        );
    }

    /// Carries out `action`; if that resolved the task, settles it (see the
    /// module docs). Returns whether this call resolved it.
    #[inline]
    fn resolve_and_settle(&self, action: JobAction) -> bool {
        if !self.task.resolve(action) {
            return false;
        }
        self.settle_leftovers();
        // SAFETY: this task is counted (it was queued) and resolved here,
        // once: it settles now, and touches the scope no more.
        unsafe { ScopeTasks::settle(self.scope) };
        if let Some(signal) = &self.settled_signal {
            // Its own `Arc`, alive while this task is: not the scope's memory.
            signal.raise();
        }
        true
    }

    /// Steps 1–2 of settling (see the module docs), on the thread that
    /// resolved the task, which is the only one to touch its closure now.
    fn settle_leftovers(&self) {
        // SAFETY: resolved by this thread just now: the claim made it the
        // one party that touches the closure until the scope's end, which
        // waits for this settle.
        let unrun_closure = unsafe { self.task.has_leftover_task() };
        // AcqRel: see the module docs ("Memory ordering").
        let before = self.ownership.fetch_or(SETTLED, Ordering::AcqRel);
        if before & HANDLE_GONE != 0 {
            // SAFETY: done (resolved on this thread), and the handle is
            // gone: this thread is the one party entitled to the result.
            let result = unsafe { self.task.completion().take_leftover_result() };
            drop_reporting_panics(result, RESULT_OF_GONE_HANDLE);
            if unrun_closure {
                self.leave_for_scope();
            }
        } else {
            self.leave_for_scope();
        }
    }

    /// Hands the scope a share of this task, for its end.
    #[cold]
    fn leave_for_scope(&self) {
        let this: *const Self = self;
        // SAFETY: every `ScopedThreadTask` lives in an `Arc` (`new`), and
        // `self` keeps that one alive: one more share of it.
        let task: Arc<Self> = unsafe {
            Arc::increment_strong_count(this);
            Arc::from_raw(this)
        };
        let task: Arc<dyn ScopedTask + 'scope> = task;
        // SAFETY: only the lifetime changes (same fat pointer). The scope
        // takes its leftovers and lets go of these shares before it returns
        // (or unwinds), after dropping what borrows from `'scope`.
        let task =
            unsafe { mem::transmute::<Arc<dyn ScopedTask + 'scope>, Arc<dyn ScopedTask>>(task) };
        // SAFETY: the task has not settled yet, so the scope is alive.
        let scope = unsafe { &*self.scope };
        scope.leave(LeftForScope {
            // Relaxed: the number never changes after `new`.
            number: self.ownership.load(Ordering::Relaxed) >> NUMBER_SHIFT,
            task,
        });
    }
}

impl<'scope, F, R> Runnable for ScopedThreadTask<'scope, F, R>
where
    F: FnOnce() -> R + Send + 'scope,
    R: Send + 'scope,
{
    fn perform(&self, action: JobAction) -> bool {
        let resolved_here = self.resolve_and_settle(action);
        matches!(action, JobAction::Run) || resolved_here
    }
}

impl<'scope, F, R> HoldsCompletion<R> for ScopedThreadTask<'scope, F, R>
where
    F: FnOnce() -> R + Send + 'scope,
    R: Send + 'scope,
{
    fn completion(&self) -> &Completion<R> {
        self.task.completion()
    }

    fn cancel(&self) -> bool {
        // The cell's own `cancel` after a lost claim: `true` if another
        // party cancelled it.
        self.resolve_and_settle(JobAction::Cancel) || self.task.completion().cancel()
    }

    #[inline]
    fn run_inline_if_unstarted_here(&self) {
        if self.task.is_on_own_worker() {
            self.resolve_and_settle(JobAction::Run);
        }
    }
}

/// A scope's view of one of its tasks, whatever its closure and result types.
pub(super) trait ScopedTask: Send + Sync {
    /// On a worker of the task's pool, runs the task here if it has not
    /// started; elsewhere does nothing.
    fn run_if_unstarted_here(&self);

    /// Whether the task has settled with its scope (see the module docs).
    fn is_settled(&self) -> bool;

    /// Drops the closure if it never ran; a panicking `Drop` is reported
    /// and ignored.
    ///
    /// # Safety
    ///
    /// The task settled, seen by the calling thread (through the scope's
    /// count), and no other thread touches the task any more.
    unsafe fn drop_unrun_closure(&self);

    /// Whether the task's handle is still alive (see the module docs).
    ///
    /// # Safety
    ///
    /// As for [`drop_unrun_closure`](Self::drop_unrun_closure).
    unsafe fn handle_is_alive(&self) -> bool;

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

impl<'scope, F, R> ScopedTask for ScopedThreadTask<'scope, F, R>
where
    F: FnOnce() -> R + Send + 'scope,
    R: Send + 'scope,
{
    fn run_if_unstarted_here(&self) {
        self.run_inline_if_unstarted_here();
    }

    fn is_settled(&self) -> bool {
        // Acquire: pairs with the settle's AcqRel (the helping scope then
        // runs nothing of the task's; this only orders its look).
        self.ownership.load(Ordering::Acquire) & SETTLED != 0
    }

    unsafe fn drop_unrun_closure(&self) {
        // SAFETY: the caller's contract is the callee's. Taken out first,
        // so nothing of the task is borrowed while its `Drop` runs (which
        // may join other handles of the scope).
        let closure = unsafe { self.task.take_leftover_task() };
        drop_reporting_panics(closure, LEFTOVER_AT_SCOPE_END);
    }

    unsafe fn handle_is_alive(&self) -> bool {
        // Acquire: see the module docs ("Memory ordering").
        self.ownership.load(Ordering::Acquire) & HANDLE_GONE == 0
    }

    unsafe fn drop_result_even_with_a_live_handle(&self) {
        // SAFETY: settled and seen (the caller's contract); a live handle
        // is reachable only from `Drop`s this thread runs one at a time,
        // so nothing touches the slot concurrently.
        let result = unsafe { self.task.completion().take_leftover_result() };
        drop_reporting_panics(result, LEFTOVER_AT_SCOPE_END);
    }
}

/// A scoped task's handle's view of it.
pub(super) trait ScopedHolder<R>: HoldsCompletion<R> {
    /// The task's one handle is going away: drops the result now if the
    /// task settled (nobody can join it any more), else leaves it to the
    /// thread that settles it (see the module docs).
    fn release_handle(&self);
}

impl<'scope, F, R> ScopedHolder<R> for ScopedThreadTask<'scope, F, R>
where
    F: FnOnce() -> R + Send + 'scope,
    R: Send + 'scope,
{
    fn release_handle(&self) {
        // AcqRel: see the module docs ("Memory ordering").
        let before = self.ownership.fetch_or(HANDLE_GONE, Ordering::AcqRel);
        if before & SETTLED != 0 {
            // SAFETY: settled (so done), seen by the read-modify-write
            // just now; the handle (going away here) is the one party
            // entitled to the result: the settling thread left it, and the
            // scope looks only if the handle was alive.
            let result = unsafe { self.task.completion().take_leftover_result() };
            drop_reporting_panics(result, RESULT_WITH_ITS_HANDLE);
        }
    }
}

/// What [`drop_reporting_panics`] drops here, for its report.
const LEFTOVER_AT_SCOPE_END: &str =
    "what a scoped task left behind (its unrun closure or its unjoined result) at the end of its \
     scope";
const RESULT_WITH_ITS_HANDLE: &str =
    "a scoped task's result nobody joined, as its handle was dropped";
const RESULT_OF_GONE_HANDLE: &str =
    "a scoped task's result nobody joined, as the task finished after its handle was dropped";

/// A scoped task's future result: [`TaskHandle`](crate::TaskHandle)'s
/// methods, for a task that may borrow from the caller's stack. It cannot
/// leave its scope, so it has no callbacks (`on_done` callbacks are
/// `'static`); `join` it inside the scope, or let the scope drop the result.
///
/// Joining from a worker of the pool runs an unstarted task inline, as for
/// [`TaskHandle::join`](crate::TaskHandle::join) (with the same limits).
///
/// A result nobody joins is dropped when the handle is dropped, if the task
/// has finished by then, else as the task finishes, by the thread that ran
/// it; a result whose handle outlives every task (forgotten) is dropped by
/// the scope before it returns (see [`ThreadPool::scope`](crate::ThreadPool::scope)).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc's fast bins take chunks of up to 128 bytes: a request of up
    /// to 120 (the `Arc`'s two counts and the task). See `ownership`.
    const FAST_BIN_REQUEST: usize = 120;

    #[test]
    fn a_tiny_scoped_task_fits_the_allocators_fast_bins() {
        fn task_size<F: FnOnce()>(_: &F) -> usize {
            2 * mem::size_of::<usize>() + mem::size_of::<ScopedThreadTask<'static, F, ()>>()
        }
        let index = 7u64;
        let tiny = move || {
            std::hint::black_box(index);
        };
        assert!(
            task_size(&tiny) <= FAST_BIN_REQUEST,
            "a scoped task capturing one u64 takes {} bytes with its Arc's counts",
            task_size(&tiny)
        );
    }
}
