//! [`ScopeTasks`]: a scope's account of its tasks — how many have not
//! settled yet (the one thing its end waits for), what they left for it to
//! drop, and whether it still takes tasks.
//!
//! # The count of unsettled tasks
//!
//! A task is *settled* when it is resolved (ran, panicked, was cancelled or
//! refused) and has settled its leftovers with the scope (see
//! `scoped_task.rs`). The count goes up in `Scope::submit`, before the task
//! is queued, and down as the very last thing the settling thread does
//! with the scope. One word holds both the count and a flag:
//!
//! ```text
//!  word = unsettled × 2 + WAITING
//!
//!  submit:  +2 (Relaxed) — on the scope's own thread, +2 × CREDIT_BATCH
//!           once every CREDIT_BATCH submits instead (see below)
//!  settle:  -2 (Release); the one that finds `2 + WAITING` before it
//!           (the last task, with the scope parked) unparks the scope
//!  wait:    first give back the unused credit (-2 × credit, Relaxed); then
//!           load (Acquire) until the count is 0; to sleep, set WAITING in
//!           the parking seam's `validate` (under its queue lock) unless the
//!           count is 0 by then, and park; look again when woken
//! ```
//!
//! **The scope's thread counts ahead.** Every worker's settle writes the
//! word, so a submit that wrote it too would take its cache line back from
//! a worker's core for every task. The scope's own thread (which submits
//! most tasks: its body runs there) instead adds `CREDIT_BATCH` tasks at
//! once and keeps the part it has not used yet, its *credit*, in a field
//! only that thread touches; its next submits use the credit without
//! writing the word. So the word counts every task not settled yet plus
//! the credit, never less than the tasks not settled: the credit only
//! delays the moment it can read 0. The wait gives the credit back first,
//! on the same thread, before it reads the word, and stops counting ahead
//! (a task it runs inline while it waits, on a worker, may still submit):
//! from then on the word is exactly the unsettled tasks, as without the
//! credit. Tasks that submit to the scope from other threads (a worker
//! running a task of it) add `2` each, as above.
//!
//! **No lost wake-up.** `validate` and the unpark run under the same queue
//! lock: a settle whose decrement comes after `validate` set `WAITING`
//! finds the flag and unparks the scope, queued by then; one before it
//! leaves a count `validate` reads as 0, and the scope does not sleep.
//! The count never reaches 0 while a task may still submit: a task submits
//! only before it settles (its submit's +2 precedes its own -2), the body
//! has returned before the scope waits, and what else may submit (a
//! leftover's `Drop`) runs on the scope's own thread, after the wait.
//! A settle never wakes the scope for a word that holds credit: `WAITING`
//! is set only by the wait, after the credit was given back. Nor can the
//! count read 0 while credit is still in it.
//!
//! **Memory ordering.** Every settle is a `Release` read-modify-write of the
//! one word, so the scope's `Acquire` load that reads 0 synchronizes with
//! all of them (each heads a release sequence that the later decrements
//! extend): everything every task did is seen by the scope once it returns
//! from the wait. The increments are `Relaxed`: a task reaches a worker
//! through the pool's queue, which orders the increment before its settle.
//! Giving the credit back is a `Relaxed` read-modify-write too: it extends
//! the settles' release sequences, and the scope's thread reads the word
//! afterwards with the `Acquire` load that waits.
//!
//! **The settling thread may find the scope gone.** Once the count reads 0
//! the scope may return, and its stack frame (this account) is reused. So
//! the last settle touches the word only in its decrement, and then only
//! the parking seam by a key (an address, never dereferenced). That key is
//! the word's address plus one: no other park key of this crate is odd (each
//! is the address of a word-aligned struct, or of a byte-sized
//! [`RawMutex`](crate::raw::mutex) that treats an unpark without its
//! hand-off token as "look again"), so a late unpark after the frame was
//! reused wakes at worst a scope of the same address, which looks again.
//! The parking table is the process's, shared with every other user of
//! `parking_lot_core` (parking_lot's own `RwLock` parks writers on its
//! address plus one, also odd): the argument needs those to take a stray
//! unpark as "look again" too, which parking_lot's locks do (review 15
//! read them); a user of the table that did not would be at risk.

use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::scoped_task::ScopedTask;
use crate::mutex::Mutex;
use crate::sys::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sys::park::{self, ParkResult, ParkToken, UnparkToken};
use crate::sys::spin::SpinWait;
use crate::sys::thread;

/// The scope's thread sleeps, or is about to: the last settle unparks it.
const WAITING: usize = 1;
/// One unsettled task in the word.
const ONE_TASK: usize = 2;
/// How many tasks the scope's thread counts at once (see the module docs).
#[cfg(not(any(verisync_loom, verisync_shuttle)))]
const CREDIT_BATCH: usize = 64;
/// Small under the models, so that a few submits take new credit and the
/// wait gives some back.
#[cfg(any(verisync_loom, verisync_shuttle))]
const CREDIT_BATCH: usize = 2;

/// What a settled task left for its scope to drop at the end (its closure
/// if it never ran, its result if nobody joined it and its handle was still
/// alive when it settled).
pub(super) struct LeftForScope {
    /// The task's submission number: the scope's last pass goes newest
    /// first (see `scoped_task.rs`).
    pub(super) number: usize,
    /// Lifetime-erased like the jobs (see `Scope::submit`).
    pub(super) task: Arc<dyn ScopedTask>,
}

/// A scope's account of its tasks (see the module docs).
pub(super) struct ScopeTasks {
    /// Unsettled tasks × 2, plus `WAITING`. On a cache line of its own: the
    /// workers' decrements move it between cores, and the submitting
    /// thread's reads of `closed` and `submitted` should not follow it.
    unsettled: CachePadded<AtomicUsize>,
    /// How many tasks were submitted: the next one's number.
    submitted: AtomicUsize,
    /// The scope's thread ([`thread::current_id`]) while it counts ahead;
    /// 0 (no thread's id) once its wait began. Written only by that thread
    /// (`Relaxed`); another thread comparing its own id with it finds a
    /// mismatch whichever value it reads.
    owner: AtomicUsize,
    /// Tasks counted in `unsettled` ahead of their submits by the scope's
    /// thread, not submitted yet. Read and written only on that thread (an
    /// atomic only so that the account is `Sync`; `Relaxed` loads and
    /// stores, plain moves).
    credit: AtomicUsize,
    /// What settled tasks left for the scope, in the order they settled.
    left: Mutex<Vec<LeftForScope>>,
    /// Every task is settled and the scope is dropping leftovers: `submit`
    /// refuses. Set and read meaningfully only on the scope's thread (any
    /// other submit comes from a task, before it settles, so before the
    /// scope could close).
    closed: AtomicBool,
}

impl ScopeTasks {
    pub(super) fn new() -> Self {
        Self {
            unsettled: CachePadded::new(AtomicUsize::new(0)),
            submitted: AtomicUsize::new(0),
            owner: AtomicUsize::new(thread::current_id()),
            credit: AtomicUsize::new(0),
            left: Mutex::new_untracked(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Counts a task about to be queued; returns its submission number.
    #[inline]
    pub(super) fn add(&self) -> usize {
        // Relaxed: see `owner`.
        if thread::current_id() == self.owner.load(Ordering::Relaxed) {
            self.add_on_owner();
        } else {
            // Relaxed: see the module docs ("Memory ordering").
            self.unsettled.fetch_add(ONE_TASK, Ordering::Relaxed);
        }
        self.submitted.fetch_add(1, Ordering::Relaxed)
    }

    /// [`add`](Self::add) on the scope's thread: uses one task of its
    /// credit, counting `CREDIT_BATCH` more first if it has none left.
    #[inline]
    fn add_on_owner(&self) {
        // Relaxed: only this thread touches `credit`.
        let credit = match self.credit.load(Ordering::Relaxed) {
            0 => {
                // Relaxed: see the module docs ("Memory ordering").
                self.unsettled
                    .fetch_add(ONE_TASK * CREDIT_BATCH, Ordering::Relaxed);
                CREDIT_BATCH
            }
            credit => credit,
        };
        self.credit.store(credit - 1, Ordering::Relaxed);
    }

    /// Gives the unused credit back and stops counting ahead: from now on
    /// the word counts exactly the unsettled tasks, also those that tasks
    /// run inline on this thread submit while it waits. On the scope's
    /// thread, once the body has returned, before it waits (here, or in the
    /// helping wait of a scope on one of its pool's workers, `scope.rs`,
    /// before it reads the count with [`all_settled`](Self::all_settled)).
    pub(super) fn stop_counting_ahead(&self) {
        // Relaxed: see `owner`.
        self.owner.store(0, Ordering::Relaxed);
        // Relaxed: only this thread touches `credit`.
        let credit = self.credit.swap(0, Ordering::Relaxed);
        if credit != 0 {
            // Relaxed: the wait's Acquire load comes after it (see the
            // module docs, "Memory ordering").
            self.unsettled
                .fetch_sub(ONE_TASK * credit, Ordering::Relaxed);
        }
    }

    /// Keeps what a settling task left behind until the scope's end.
    /// Called by the settling thread, before [`settle`](Self::settle).
    #[cold]
    pub(super) fn leave(&self, left: LeftForScope) {
        self.left.lock().push(left);
    }

    /// Takes everything left so far (the scope's end, once every task settled).
    pub(super) fn take_left(&self) -> Vec<LeftForScope> {
        std::mem::take(&mut *self.left.lock())
    }

    /// Counts one task settled; the last one wakes the scope if it sleeps.
    ///
    /// # Safety
    ///
    /// `this` points to the account of a scope that has a task counted and
    /// not settled yet: the caller's, which settles here. The account may be
    /// gone as soon as this call's decrement is done; nothing touches it
    /// after that (see the module docs).
    #[inline]
    pub(super) unsafe fn settle(this: *const Self) {
        // SAFETY: our task is counted and unsettled, so the scope waits and
        // its account is alive until this decrement.
        let unsettled = unsafe { &(*this).unsettled };
        let key = wake_key(unsettled);
        // Release: publishes everything the task did (see the module docs).
        let before = unsettled.fetch_sub(ONE_TASK, Ordering::Release);
        if before == ONE_TASK | WAITING {
            wake_scope(key);
        }
    }

    /// Whether every task submitted so far has settled; if so, everything
    /// they did is seen by this thread. Never while the scope's thread
    /// holds credit: it gives it back first (see
    /// [`stop_counting_ahead`](Self::stop_counting_ahead)).
    pub(super) fn all_settled(&self) -> bool {
        // Acquire: pairs with every settle's Release (see the module docs).
        self.unsettled.load(Ordering::Acquire) < ONE_TASK
    }

    /// Waits until every task has settled (the scope's thread, once the
    /// body has returned). Gives the credit back first.
    pub(super) fn wait_until_all_settled(&self) {
        self.stop_counting_ahead();
        if self.all_settled() {
            return;
        }
        self.wait_contended();
    }

    #[cold]
    #[inline(never)]
    fn wait_contended(&self) {
        // The last tasks often settle within microseconds: look again a few
        // times before paying for a park and an unpark.
        let mut spin = SpinWait::default();
        while spin.spin() {
            if self.all_settled() {
                return;
            }
        }
        while !self.all_settled() {
            let validate = || {
                let mut word = self.unsettled.load(Ordering::Relaxed);
                loop {
                    if word < ONE_TASK {
                        return false; // all settled since we looked
                    }
                    if word & WAITING != 0 {
                        return true;
                    }
                    match self.unsettled.compare_exchange_weak(
                        word,
                        word | WAITING,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return true,
                        Err(actual) => word = actual,
                    }
                }
            };
            // SAFETY: `validate` only touches this account's word (no
            // panics, no seam calls); the other callbacks do nothing.
            let woken = unsafe {
                park::park(
                    wake_key(&self.unsettled),
                    validate,
                    || {},
                    |_, _| {},
                    ParkToken(0),
                    None,
                )
            };
            // Woken, refused to sleep, or woken by a late unpark meant for
            // an earlier scope at this address: the loop looks again.
            let _: ParkResult = woken;
        }
    }

    /// Closes the scope: later submits are refused. Only once every task
    /// has settled, on the scope's thread.
    pub(super) fn close(&self) {
        debug_assert!(self.all_settled());
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether the scope is closed (see [`close`](Self::close)).
    #[inline]
    pub(super) fn is_closed(&self) -> bool {
        // Relaxed: only the scope's own thread can find it `true` (see
        // `closed`).
        self.closed.load(Ordering::Relaxed)
    }

    /// How many tasks have not settled (for `Debug`; a snapshot, from any
    /// thread). Off by up to 64 when read on another thread while the
    /// scope's thread takes or gives back credit: the count and the credit
    /// are two words, read one after the other (review 19).
    pub(super) fn unsettled(&self) -> usize {
        let counted = self.unsettled.load(Ordering::Relaxed) / ONE_TASK;
        counted.saturating_sub(self.credit.load(Ordering::Relaxed))
    }
}

/// The parking key of a scope's wait: its word's address plus one, odd, so
/// never another primitive's key (see the module docs).
fn wake_key(unsettled: &AtomicUsize) -> usize {
    std::ptr::from_ref(unsettled) as usize + 1
}

/// Unparks the scope's thread parked on `key`. May find nobody, or (after
/// the scope returned) a later scope at the same address, which looks again.
#[cold]
#[inline(never)]
fn wake_scope(key: usize) {
    // SAFETY: the callback touches nothing (no panics, no seam calls).
    unsafe {
        park::unpark_one(key, |_| UnparkToken(0));
    }
}
