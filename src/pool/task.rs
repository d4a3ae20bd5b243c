//! [`TaskHandle`] and [`TaskError`]: the one completion cell shared by both
//! pools.
//!
//! # The completion cell
//!
//! ```text
//!  state:  QUEUED ──claim──────────▶ CLAIMED ────finish──▶ FINISHED
//!           ▲ │                         │        (or CANCELLED if the result is Err(Cancelled))
//!           │ └──claim_to_cancel──▶ CANCELLING ──finish──▶ CANCELLED
//!           └──────unclaim──────────────┘
//! ```
//!
//! `unclaim` is the process pool's alone: a task sent to a worker that died
//! before starting it goes back on the queue unstarted, and `cancel` may
//! win it again.
//!
//! | state        | meaning                                                       |
//! |--------------|---------------------------------------------------------------|
//! | `QUEUED`     | not started; a worker or `cancel` may claim it                |
//! | `CLAIMED`    | a worker running it (or a pool resolving it with an error other than `Cancelled`) owns the result slot |
//! | `CANCELLING` | a cancel owns the result slot; it is storing `Err(Cancelled)` |
//! | `FINISHED`   | the result is stored and never changes again                  |
//! | `CANCELLED`  | as `FINISHED`, and the result is `Err(Cancelled)`             |
//!
//! Exactly one party wins the claim (a compare-exchange), so a task either
//! runs or is cancelled, never both. The winner stores the result, marks
//! `FINISHED`/`CANCELLED` (`Release`), swaps the callback list for the `RAN`
//! mark (so it takes every callback registered so far), runs them in
//! registration order, and sets the `done` event. Registering pushes onto
//! the list with a compare-exchange, unless it finds `RAN`: then the
//! callback runs at once on the registering thread. So every callback runs
//! exactly once, and `join` (which waits for `done`) returns after all of
//! them. A cancel that loses the claim still reports `true` when the state
//! it lost to is `CANCELLING`/`CANCELLED` (Python's `Future.cancel()`).
//!
//! Callbacks may run on two threads at once (the finishing thread runs the
//! early ones while a late one runs on its registering thread), each with a
//! `&Result<R, _>`: that is why [`TaskHandle::on_done`] needs `R: Sync`.
//! A panicking callback is caught wherever it runs and reported on stderr
//! (see [`TaskHandle::on_done`]); it never reaches the worker or
//! `on_done`'s caller.
//!
//! The list is a lock-free stack of boxed nodes, newest first, in one
//! pointer: a task nobody registers a callback for never allocates for
//! callbacks and never takes a lock, and the cell stays small enough for
//! the allocator's fast path.
//!
//! The result slot is written only by the claimant before `FINISHED`, read
//! (shared) by callbacks after it, and moved out only by `join`, which owns
//! the handle and runs after `done`.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::watch::{FinishedQueue, HandleWatch};
use crate::deadlock::hooks::BlockedIn;
use crate::event::Event;
use crate::panic_payload::take_panic_message;
use crate::sys::atomic::{AtomicPtr, AtomicU8, Ordering};
use crate::sys::cell::UnsafeCell;
use crate::sys::time::deadline_after;

/// Not started.
const QUEUED: u8 = 0;
/// Owned by the worker running it (or a pool resolving it with an error
/// other than `Cancelled`).
const CLAIMED: u8 = 1;
/// Owned by a cancel, which is storing `Err(Cancelled)`.
const CANCELLING: u8 = 2;
/// The result is stored.
const FINISHED: u8 = 3;
/// The result is stored, and it is `Err(Cancelled)`.
const CANCELLED: u8 = 4;

/// Why a task has no value — the one error type of both pools.
///
/// ```
/// use verisync::{TaskError, ThreadPool};
/// let pool = ThreadPool::new(1);
/// let failed = pool.submit(|| -> u32 { panic!("no more tickets") });
/// match failed.join() {
///     Err(TaskError::Panicked(message)) => assert_eq!(message, "no more tickets"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the panic's message. Its worker lives on.
    Panicked(String),
    /// The task was cancelled before it started; it never ran.
    Cancelled,
    /// The worker process running the task died (crash, abort, kill, exit).
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// Its exit code, if it exited.
        exit_code: Option<i32>,
    },
    /// The task ran longer than the pool's task timeout; its worker was killed.
    TimedOut,
    /// The argument or result could not be encoded or decoded.
    Serialization(String),
    /// A worker could not be started.
    Spawn(String),
    /// The pool was shutting down when the task was submitted; it never ran.
    ShutDown,
}

impl fmt::Display for TaskError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(message) => {
                write!(formatter, "the task panicked: {message}")
            }
            TaskError::Cancelled => {
                formatter.write_str("the task was cancelled before it started, so it never ran")
            }
            TaskError::WorkerDied {
                pid,
                signal,
                exit_code,
            } => {
                write!(formatter, "the process {pid} running the task died")?;
                match (signal, exit_code) {
                    (Some(signal), _) => write!(formatter, " (killed by signal {signal})"),
                    (None, Some(code)) => write!(formatter, " (it exited with code {code})"),
                    (None, None) => Ok(()),
                }?;
                formatter.write_str(" before it finished; other tasks are not affected")
            }
            TaskError::TimedOut => formatter.write_str(
                "the task ran longer than the pool's task timeout, so its worker was killed and \
                 replaced",
            ),
            TaskError::Serialization(reason) => {
                write!(
                    formatter,
                    "the task's argument or result could not be encoded or decoded: {reason}"
                )
            }
            TaskError::Spawn(reason) => {
                write!(formatter, "a worker could not be started: {reason}")
            }
            TaskError::ShutDown => formatter.write_str(
                "the pool was shutting down when the task was submitted, so it never ran; submit \
                 before calling shutdown",
            ),
        }
    }
}

impl std::error::Error for TaskError {}

type Callback<R> = Box<dyn FnOnce(&Result<R, TaskError>) + Send>;

/// One registered callback in the list.
struct CallbackNode<R> {
    callback: Callback<R>,
    /// The one registered before it (null for the first).
    next: *mut CallbackNode<R>,
}

/// The list's mark for "the callbacks ran; later ones run at once". Never
/// an allocation's address (it is the node type's alignment).
fn ran_mark<R>() -> *mut CallbackNode<R> {
    NonNull::dangling().as_ptr()
}

/// The completion cell: state, result slot, callbacks, done event.
pub(crate) struct Completion<R> {
    state: AtomicU8,
    result: UnsafeCell<Option<Result<R, TaskError>>>,
    /// Registered callbacks, newest first (null: none), or `ran_mark()`.
    callbacks: AtomicPtr<CallbackNode<R>>,
    done: Event,
}

// SAFETY: the result slot is written by the one claimant and read after
// `FINISHED`/`done` (see the module docs); `R: Send` lets the value cross
// from the worker to the joining thread. Shared `&R`s on several threads
// at once exist only through callbacks, which the public `on_done` allows
// only for `R: Sync` (the crate's result-blind callbacks never look at it).
// Callbacks are `Send`, and a callback node is touched only by its
// registering thread until it is published, then only by the thread that
// swaps the list out.
unsafe impl<R: Send> Sync for Completion<R> {}
// SAFETY: as above.
unsafe impl<R: Send> Send for Completion<R> {}

impl<R> Completion<R> {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(QUEUED),
            result: UnsafeCell::new(None),
            callbacks: AtomicPtr::new(ptr::null_mut()),
            done: Event::new(),
        }
    }

    /// Takes ownership of the result slot; `false` if someone else did.
    pub(crate) fn claim(&self) -> bool {
        self.claim_as(CLAIMED)
    }

    /// Takes ownership of the result slot as `claimed` (`CLAIMED` or
    /// `CANCELLING`); `false` if someone else did.
    fn claim_as(&self, claimed: u8) -> bool {
        // Acquire: pairs with nothing in the thread pool (the closure came
        // through the queue), but keeps the claim ordered before the slot
        // writes for any pool that publishes a task through the cell.
        self.state
            .compare_exchange(QUEUED, claimed, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Gives back a claim whose holder will not resolve the cell after all
    /// (the process pool's task whose worker died before starting it): the
    /// cell is `QUEUED` again, for the next claimant or a `cancel`.
    #[cfg(all(unix, not(verisync_loom)))]
    pub(crate) fn unclaim(&self) {
        // Relaxed: the claimant wrote nothing (the slot is untouched), and
        // the task reaches its next claimant through the pool's queue,
        // which orders everything before it.
        let unclaimed =
            self.state
                .compare_exchange(CLAIMED, QUEUED, Ordering::Relaxed, Ordering::Relaxed);
        debug_assert!(unclaimed.is_ok(), "only a claimed cell is given back");
    }

    /// Runs `task` on a cell this thread has claimed, catching a panic.
    pub(crate) fn run_claimed(&self, task: impl FnOnce() -> R) {
        let result = catch_unwind(AssertUnwindSafe(task))
            .map_err(|payload| TaskError::Panicked(take_panic_message(payload)));
        self.finish(result);
    }

    /// Resolves a claimed cell: stores the result, runs the callbacks,
    /// wakes the waiters.
    pub(crate) fn finish(&self, result: Result<R, TaskError>) {
        debug_assert!(matches!(
            self.state.load(Ordering::Relaxed),
            CLAIMED | CANCELLING
        ));
        let finished = if matches!(result, Err(TaskError::Cancelled)) {
            CANCELLED
        } else {
            FINISHED
        };
        // SAFETY: we hold the claim, so nobody else touches the slot until
        // FINISHED/CANCELLED is published below.
        self.result.with_mut(|slot| unsafe { *slot = Some(result) });
        self.state.store(finished, Ordering::Release);
        let newest_first = self.callbacks.swap(ran_mark(), Ordering::AcqRel);
        if !newest_first.is_null() {
            // SAFETY: the swap took the list: its nodes are ours alone.
            for callback in unsafe { take_in_registration_order(newest_first) } {
                self.run_callback(callback);
            }
        }
        self.done.set();
    }

    /// Claims the cell and resolves it with `error`; `false` if it was
    /// already claimed (running or finished).
    pub(crate) fn resolve_unstarted(&self, error: TaskError) -> bool {
        let claimed = if error == TaskError::Cancelled {
            CANCELLING
        } else {
            CLAIMED
        };
        if self.claim_as(claimed) {
            self.finish(Err(error));
            true
        } else {
            false
        }
    }

    /// Cancels the task unless it started: `true` if it ends up cancelled
    /// (by this call or an earlier one, possibly still resolving).
    pub(crate) fn cancel(&self) -> bool {
        if self.resolve_unstarted(TaskError::Cancelled) {
            return true;
        }
        // Relaxed: only the state's value is reported; a caller who wants
        // the result waits on `done`.
        matches!(self.state.load(Ordering::Relaxed), CANCELLING | CANCELLED)
    }

    /// The result. Only after `FINISHED`/`CANCELLED`.
    fn result_ref(&self) -> &Result<R, TaskError> {
        debug_assert!(matches!(
            self.state.load(Ordering::Acquire),
            FINISHED | CANCELLED
        ));
        // SAFETY: after FINISHED/CANCELLED the slot is only read, until
        // `take`, which needs the handle by value (so no reference from here
        // is alive).
        self.result
            .with(|slot| unsafe { &*slot })
            .as_ref()
            .expect("a finished task has a result")
    }

    /// Runs one callback on a finished cell, on whatever thread calls it
    /// (the finishing one, or a late registrar). A panic is caught and
    /// reported, never passed on.
    fn run_callback(&self, callback: Callback<R>) {
        let result = self.result_ref();
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| callback(result))) {
            self.report_callback_panic(payload);
        }
    }

    /// Reports a panicking callback on stderr, once, naming the task the way
    /// Python's `concurrent.futures` logs "exception calling callback for
    /// <Future at 0x... state=finished returned int>".
    #[cold]
    #[inline(never)]
    fn report_callback_panic(&self, payload: Box<dyn Any + Send>) {
        let message = take_panic_message(payload);
        let outcome = match self.result_ref() {
            Ok(_) => format!("returned a `{}`", std::any::type_name::<R>()),
            Err(error) => format!("failed: {error}"),
        };
        eprintln!(
            "verisync: an on_done callback of the task at {self:p} (which {outcome}) panicked: \
             {message}; the panic was caught and ignored"
        );
    }

    fn on_done(&self, callback: Callback<R>) {
        let node = Box::into_raw(Box::new(CallbackNode {
            callback,
            next: ptr::null_mut(),
        }));
        let mut newest = self.callbacks.load(Ordering::Acquire);
        loop {
            if newest == ran_mark() {
                // SAFETY: the node was never published; it is ours alone.
                let node = unsafe { Box::from_raw(node) };
                self.run_callback(node.callback);
                return;
            }
            // SAFETY: unpublished until the exchange below succeeds.
            unsafe { (*node).next = newest };
            match self.callbacks.compare_exchange_weak(
                newest,
                node,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => newest = actual,
            }
        }
    }

    /// Runs `notify` once the cell is resolved (at once, here, if it is),
    /// blind to the result: a callback like any other, run before `done`.
    pub(crate) fn notify_when_resolved(&self, notify: impl FnOnce() + Send + 'static) {
        self.on_done(Box::new(move |_| notify()));
    }

    /// Whether the result is stored (`FINISHED`/`CANCELLED`); its callbacks
    /// may still be running.
    pub(crate) fn is_resolved(&self) -> bool {
        // Acquire: pairs with `finish`'s Release store, so a caller that
        // sees it resolved may read the result (`failed`).
        matches!(self.state.load(Ordering::Acquire), FINISHED | CANCELLED)
    }

    /// Whether the result is stored and is an error other than
    /// `Cancelled` — Python's "finished by raising an exception".
    pub(crate) fn failed(&self) -> bool {
        self.is_resolved()
            && matches!(self.result_ref(), Err(error) if *error != TaskError::Cancelled)
    }

    /// Waits until the cell is resolved and its callbacks ran.
    pub(crate) fn wait_done(&self) {
        self.done.wait();
    }

    /// Whether the cell is resolved and its callbacks ran.
    pub(crate) fn is_done(&self) -> bool {
        self.done.is_set()
    }

    /// Waits at most until `deadline` (`None`: forever); `true` if done.
    pub(crate) fn wait_done_until(&self, deadline: Option<Instant>) -> bool {
        match deadline {
            Some(deadline) => self.done.wait_until(deadline),
            None => {
                self.done.wait();
                true
            }
        }
    }

    /// Takes the result if it is still there (nobody joined), for a scoped
    /// task's handle going away or its scope ending, which must drop it
    /// before the data it borrows goes away.
    ///
    /// # Safety
    ///
    /// The calling thread has seen the cell done ([`is_done`](Self::is_done)
    /// or [`wait_done`](Self::wait_done)), and no other thread touches the
    /// result slot concurrently: the caller is the one party entitled to it
    /// at this point (the task's handle, or its scope once the handle is
    /// gone), and every other access is ordered before or after this call.
    pub(crate) unsafe fn take_leftover_result(&self) -> Option<Result<R, TaskError>> {
        debug_assert!(self.done.is_set());
        // SAFETY: the caller's contract: the slot is written (done is set
        // after the last write, and seen), and nobody else touches it now.
        self.result.with_mut(|slot| unsafe { (*slot).take() })
    }

    pub(crate) fn take(&self) -> Result<R, TaskError> {
        self.done.wait();
        // SAFETY: `done` is set after the last write and the last callback
        // on the worker; the caller owns the only handle (see `join`).
        self.result
            .with_mut(|slot| unsafe { (*slot).take() })
            .expect("a task's result is taken once")
    }
}

/// Unlinks a callback list (newest first) into its callbacks in
/// registration order, freeing the nodes.
///
/// # Safety
///
/// `newest` heads a list of nodes made by `on_done` that nobody else can
/// reach any more.
unsafe fn take_in_registration_order<R>(newest: *mut CallbackNode<R>) -> Vec<Callback<R>> {
    let mut callbacks = Vec::new();
    let mut node = newest;
    while !node.is_null() {
        // SAFETY: the caller gave us the list; each node is visited once.
        let boxed = unsafe { Box::from_raw(node) };
        node = boxed.next;
        callbacks.push(boxed.callback);
    }
    callbacks.reverse();
    callbacks
}

impl<R> Drop for Completion<R> {
    fn drop(&mut self) {
        // A cell dropped unfinished (its pool gone without resolving it)
        // still owns the callbacks registered on it: free them unrun.
        let newest = self.callbacks.load(Ordering::Acquire);
        if !newest.is_null() && newest != ran_mark() {
            // SAFETY: `&mut self`: the list is ours alone.
            drop(unsafe { take_in_registration_order(newest) });
        }
    }
}

/// A task's future result — Python's `concurrent.futures.Future`.
///
/// `Send + Sync` when `R: Send`: one thread may wait on it while another
/// cancels it or adds a callback.
///
/// ```
/// use std::time::Duration;
/// use verisync::ThreadPool;
///
/// let pool = ThreadPool::new(2);
/// let answer = pool.submit(|| 6 * 7);
/// answer.on_done(|result| println!("done: {result:?}"));
/// assert!(answer.wait_timeout(Duration::from_secs(5)));
/// assert!(answer.is_finished());
/// assert_eq!(answer.join(), Ok(42));
/// ```
pub struct TaskHandle<R> {
    /// The allocation holding the completion cell (for the thread pool, the
    /// same one that holds the task's closure).
    holder: Arc<dyn HoldsCompletion<R>>,
    /// Null, or the [`HandleWatch`] that [`wait`](crate::wait) set up on the
    /// first call that watched this handle: an `Arc::into_raw` the handle
    /// owns (released by its `Drop`). Written once, from null, by
    /// [`install_watch`](Self::install_watch).
    watch: AtomicPtr<HandleWatch>,
}

/// Something that contains a task's completion cell.
pub(crate) trait HoldsCompletion<R>: Send + Sync {
    fn completion(&self) -> &Completion<R>;

    /// [`TaskHandle::cancel`]. A holder whose task may wait where the
    /// completion cell alone cannot recall it (a process pool's task sent
    /// ahead to a worker) overrides this.
    fn cancel(&self) -> bool {
        self.completion().cancel()
    }

    /// Before a `join` or `wait` blocks: if the calling thread is a worker
    /// of the task's own pool and the task has not started, run it here
    /// and now (it would otherwise wait for a worker that may be this very
    /// one — a one-worker pool would deadlock). The cell's claim decides,
    /// so the task still runs at most once and `cancel` agrees. A holder
    /// whose tasks never run on the caller's pool does nothing.
    fn run_inline_if_unstarted_here(&self) {}
}

impl<R: Send> HoldsCompletion<R> for Completion<R> {
    fn completion(&self) -> &Completion<R> {
        self
    }
}

impl<R> TaskHandle<R> {
    pub(crate) fn new(holder: Arc<dyn HoldsCompletion<R>>) -> Self {
        Self {
            holder,
            watch: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn cell(&self) -> &Completion<R> {
        self.holder.completion()
    }

    /// Waits for the task and returns its value or why there is none —
    /// Python's `future.result()`.
    ///
    /// **Joining from inside the pool.** Called on one of the task's own
    /// pool's workers (a task joining another task of its pool) while the
    /// task has not started, `join` runs it inline, right here, instead of
    /// waiting for a worker that may never come (in a one-worker pool the
    /// only worker is the one waiting). It runs exactly once either way:
    /// a worker that picks it up later skips it, and a `cancel` racing the
    /// inline run either wins (the task never runs, `join` gives
    /// `Cancelled`) or returns `false`. Threads outside the pool, and
    /// workers of other pools, just wait. [`wait`](Self::wait) and
    /// `wait_timeout(Duration::MAX)` do the same; the other timed waits
    /// never run a task inline (they return in time).
    ///
    /// What that means, and its limits:
    ///
    /// - **Only the joined task runs inline.** If it already started on
    ///   another worker, the joiner just waits; it does not run other
    ///   queued tasks meanwhile (no work stealing: a queued task run on a
    ///   thread that holds the joiner's locks could deadlock where it would
    ///   not on its own worker). So if the running task waits in turn for a
    ///   task still queued, and every worker is blocked like this, the pool
    ///   deadlocks — as Python's `ThreadPoolExecutor` does. Join the queued
    ///   task first, give the pool enough workers, or use a
    ///   [`scope`](crate::ThreadPool::scope), whose wait on a worker runs
    ///   every unstarted task of the scope.
    /// - **Inline joins recurse.** The inlined task runs on the joiner's
    ///   stack, and may join inline in turn: a chain of tasks each joining
    ///   the next, on one worker, is a recursion as deep as the chain (a
    ///   few hundred bytes a level: 10,000 levels overflow the default
    ///   2 MiB stack, as in rayon). Raise
    ///   [`stack_size`](crate::ThreadPoolBuilder::stack_size) or flatten it.
    /// - **The inlined task shares the joiner's thread:** its
    ///   thread-locals, its thread name, and the locks it holds — a
    ///   [`ReentrantLock`](crate::ReentrantLock) the joiner holds is
    ///   re-entered, not waited for, by the task.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let pool = Arc::new(verisync::ThreadPool::new(1));
    /// assert_eq!(pool.submit(|| "hi").join(), Ok("hi"));
    ///
    /// // One worker, and its task joins a task queued behind it: run inline.
    /// let inner_pool = Arc::clone(&pool);
    /// let outer = pool.submit(move || inner_pool.submit(|| 20).join().map(|n| n + 1));
    /// assert_eq!(outer.join(), Ok(Ok(21)));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn join(self) -> Result<R, TaskError> {
        self.holder.run_inline_if_unstarted_here();
        let _waiting = BlockedIn::unless("TaskHandle::join", None, || self.is_finished());
        self.cell().take()
    }

    /// Waits for the task to finish, keeping the result for `join`. On a
    /// worker of the task's own pool, an unstarted task runs inline, as for
    /// [`join`](Self::join).
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(1);
    /// let handle = pool.submit(|| 1);
    /// handle.wait();
    /// assert!(handle.is_finished());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait(&self) {
        self.holder.run_inline_if_unstarted_here();
        let _waiting = BlockedIn::unless("TaskHandle::wait", None, || self.is_finished());
        self.cell().done.wait();
    }

    /// Waits at most `timeout`; `true` if the task finished — Python's
    /// `result(timeout)` without losing the result. `Duration::MAX` waits
    /// forever.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let pool = verisync::ThreadPool::new(1);
    /// let gate = Arc::new(verisync::Event::new());
    /// let slow = {
    ///     let gate = Arc::clone(&gate);
    ///     pool.submit(move || gate.wait())
    /// };
    /// assert!(!slow.wait_timeout(Duration::from_millis(1))); // still waiting for the gate
    /// gate.set();
    /// assert!(slow.wait_timeout(Duration::MAX));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return self.is_finished();
        }
        let deadline = deadline_after(timeout);
        if deadline.is_none() {
            // Waits forever, as `wait`: runs an unstarted task inline first.
            self.holder.run_inline_if_unstarted_here();
        }
        let _waiting = BlockedIn::unless("TaskHandle::wait_timeout", None, || self.is_finished());
        match deadline {
            Some(deadline) => self.cell().done.wait_until(deadline),
            None => {
                self.cell().done.wait();
                true
            }
        }
    }

    /// Waits until `deadline`; `true` if the task finished.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let pool = verisync::ThreadPool::new(1);
    /// let handle = pool.submit(|| 1);
    /// assert!(handle.wait_until(Instant::now() + Duration::from_secs(5)));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let _waiting = BlockedIn::unless("TaskHandle::wait_until", None, || self.is_finished());
        self.cell().done.wait_until(deadline)
    }

    /// Whether the task finished (ran, panicked or was cancelled) and its
    /// callbacks ran: `join` would return at once.
    ///
    /// ```
    /// let pool = verisync::ThreadPool::new(1);
    /// let handle = pool.submit(|| 1);
    /// handle.wait();
    /// assert!(handle.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.cell().done.is_set()
    }

    /// Cancels the task if it has not started: it will never run, `join`
    /// gives `Err(Cancelled)`, and its callbacks run now, on this thread.
    /// Returns `true` whenever the task ends up cancelled — also when it
    /// already was (by an earlier `cancel`, or by `shutdown_now`), as
    /// Python's `Future.cancel()` does; `false` if it already started or
    /// finished otherwise (a running task cannot be interrupted).
    ///
    /// ```
    /// use verisync::{Event, TaskError, ThreadPool};
    /// use std::sync::Arc;
    ///
    /// let pool = ThreadPool::new(1);
    /// let gate = Arc::new(Event::new());
    /// let blocker = {
    ///     let gate = Arc::clone(&gate);
    ///     pool.submit(move || gate.wait())
    /// };
    /// let queued = pool.submit(|| "never runs");
    /// assert!(queued.cancel());
    /// assert!(queued.cancel(), "still cancelled");
    /// assert_eq!(queued.join(), Err(TaskError::Cancelled));
    /// gate.set();
    /// blocker.join().unwrap();
    /// ```
    pub fn cancel(&self) -> bool {
        self.holder.cancel()
    }

    /// Registers `callback` to run once with the task's result — Python's
    /// `add_done_callback`. It runs on the thread that finishes the task
    /// (the worker, or the thread that cancels it), or at once on this
    /// thread if the task has already finished; `join` and `wait` return
    /// only after the callbacks registered before the task finished ran.
    ///
    /// **A panicking callback** is caught wherever it runs — on a worker or
    /// here — and reported once on stderr, like Python's logging of
    /// "exception calling callback for <Future ...>": one line naming the
    /// task (its address), how it finished and the panic's message, after
    /// the panic hook's usual line. The panic never kills a worker, never
    /// stops the next callback, and never reaches the caller of `on_done`.
    ///
    /// `R: Sync` because callbacks on different threads may look at the
    /// result at the same moment (one on the worker, one registered late on
    /// another thread). A result that is not `Sync` does not compile:
    ///
    /// ```compile_fail,E0277
    /// use std::cell::Cell;
    /// let pool = verisync::ThreadPool::new(1);
    /// let handle = pool.submit(|| Cell::new(1u64));
    /// handle.on_done(|result| println!("{:?}", result.as_ref().map(Cell::get)));
    /// ```
    ///
    /// (Wrap such a result in a `Mutex`, or use [`as_completed`](crate::as_completed)
    /// or `join`, which need only `R: Send`.)
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    ///
    /// let pool = verisync::ThreadPool::new(1);
    /// let seen = Arc::new(AtomicU32::new(0));
    /// let handle = pool.submit(|| 5);
    /// let record = Arc::clone(&seen);
    /// handle.on_done(move |result| record.store(*result.as_ref().unwrap(), Ordering::SeqCst));
    /// handle.wait();
    /// assert_eq!(seen.load(Ordering::SeqCst), 5);
    /// ```
    pub fn on_done(&self, callback: impl FnOnce(&Result<R, TaskError>) + Send + 'static)
    where
        R: Sync,
    {
        self.cell().on_done(Box::new(callback));
    }

    /// Whether the task finished with an error other than `Cancelled`.
    pub(crate) fn failed(&self) -> bool {
        self.cell().failed()
    }

    /// Runs `notify` once the task has finished, like [`on_done`](Self::on_done)
    /// but blind to the result, so it needs no `R: Sync` (for
    /// `as_completed`).
    pub(crate) fn on_done_notify(&self, notify: impl FnOnce() + Send + 'static) {
        self.cell().notify_when_resolved(notify);
    }

    /// Whether the result is stored; its callbacks may still be running
    /// (so [`is_finished`](Self::is_finished) may still say `false`).
    pub(crate) fn is_resolved(&self) -> bool {
        self.cell().is_resolved()
    }

    /// On a worker of the task's own pool, runs the task here if it has not
    /// started (see [`join`](Self::join)); elsewhere does nothing.
    pub(crate) fn run_inline_if_unstarted_here(&self) {
        self.holder.run_inline_if_unstarted_here();
    }

    /// Puts `index` on `finished` (a [`wait`](crate::wait) call's queue)
    /// once the task has finished — through the handle's one watch, so that
    /// repeated calls leave nothing behind on the handle (see `watch.rs`).
    pub(crate) fn notify_when_finished(&self, finished: &Arc<FinishedQueue>, index: usize) {
        self.watch().subscribe(finished, index);
    }

    /// The handle's watch, set up on first use.
    fn watch(&self) -> &HandleWatch {
        // Acquire: pairs with the installing compare-exchange's Release, so
        // the watch it published is seen initialised.
        let installed = self.watch.load(Ordering::Acquire);
        if installed.is_null() {
            return self.install_watch();
        }
        // SAFETY: a non-null `watch` is an `Arc::into_raw` the handle owns
        // until its `Drop`, and `&self` keeps the handle alive.
        unsafe { &*installed }
    }

    /// Creates the watch and registers its one callback, unless another
    /// thread installed one first (then that one is used).
    #[cold]
    #[inline(never)]
    fn install_watch(&self) -> &HandleWatch {
        let watch = Arc::new(HandleWatch::new());
        let owned = Arc::into_raw(Arc::clone(&watch)).cast_mut();
        // AcqRel: publishes the new watch (Release), or sees the winner's
        // (Acquire, on failure).
        match self.watch.compare_exchange(
            ptr::null_mut(),
            owned,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // Registered after it is installed: a subscriber that comes
                // before the callback runs is in its list, and a callback
                // registered on a finished task runs at once.
                self.on_done_notify(move || watch.notify_finished());
                // SAFETY: installed just now; owned by the handle as in `watch`.
                unsafe { &*owned }
            }
            Err(winner) => {
                // SAFETY: `owned` came from `Arc::into_raw` above and was
                // never published: this is its one release.
                drop(unsafe { Arc::from_raw(owned) });
                // SAFETY: as in `watch`.
                unsafe { &*winner }
            }
        }
    }
}

impl<R> Drop for TaskHandle<R> {
    fn drop(&mut self) {
        // Acquire: as in `watch` (`&mut self`: nobody installs meanwhile).
        let installed = self.watch.load(Ordering::Acquire);
        if !installed.is_null() {
            // SAFETY: installed by `install_watch` from `Arc::into_raw`, owned
            // by this handle; `&mut self`: nobody borrows it any more, and this
            // is its one release. The callback holds its own `Arc`.
            drop(unsafe { Arc::from_raw(installed) });
        }
    }
}

impl<R> fmt::Debug for TaskHandle<R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TaskHandle")
            .field("is_finished", &self.is_finished())
            .finish()
    }
}
