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
//!  submit:  +2 (Relaxed)
//!  settle:  -2 (Release); the one that finds `2 + WAITING` before it
//!           (the last task, with the scope parked) unparks the scope
//!  wait:    load (Acquire) until the count is 0; to sleep, set WAITING in
//!           the parking seam's `validate` (under its queue lock) unless the
//!           count is 0 by then, and park; look again when woken
//! ```
//!
//! **No lost wake-up.** `validate` and the unpark run under the same queue
//! lock: a settle whose decrement comes after `validate` set `WAITING`
//! finds the flag and unparks the scope, queued by then; one before it
//! leaves a count `validate` reads as 0, and the scope does not sleep.
//! The count never reaches 0 while a task may still submit: a task submits
//! only before it settles (its submit's +2 precedes its own -2), the body
//! has returned before the scope waits, and what else may submit (a
//! leftover's `Drop`) runs on the scope's own thread, after the wait.
//!
//! **Memory ordering.** Every settle is a `Release` read-modify-write of the
//! one word, so the scope's `Acquire` load that reads 0 synchronizes with
//! all of them (each heads a release sequence that the later decrements
//! extend): everything every task did is seen by the scope once it returns
//! from the wait. The increments are `Relaxed`: a task reaches a worker
//! through the pool's queue, which orders the increment before its settle.
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

/// The scope's thread sleeps, or is about to: the last settle unparks it.
const WAITING: usize = 1;
/// One unsettled task in the word.
const ONE_TASK: usize = 2;

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
            left: Mutex::new_untracked(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Counts a task about to be queued; returns its submission number.
    #[inline]
    pub(super) fn add(&self) -> usize {
        // Relaxed: see the module docs ("Memory ordering").
        self.unsettled.fetch_add(ONE_TASK, Ordering::Relaxed);
        self.submitted.fetch_add(1, Ordering::Relaxed)
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
    /// they did is seen by this thread.
    pub(super) fn all_settled(&self) -> bool {
        // Acquire: pairs with every settle's Release (see the module docs).
        self.unsettled.load(Ordering::Acquire) < ONE_TASK
    }

    /// Waits until every task has settled (the scope's thread, once the
    /// body has returned).
    pub(super) fn wait_until_all_settled(&self) {
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

    /// How many tasks have not settled (for `Debug`).
    pub(super) fn unsettled(&self) -> usize {
        self.unsettled.load(Ordering::Relaxed) / ONE_TASK
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
