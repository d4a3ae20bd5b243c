//! The loom model of the parking seam.
//!
//! Same functions, same signatures and the same contract as
//! `parking_lot_core` (whose token and result types it reuses), built from
//! loom's own primitives so that loom can see every interleaving:
//!
//! - One `loom::sync::Mutex` guards a table of waiters (key, park token,
//!   thread handle) in arrival order, and the tokens handed to woken waiters.
//!   `validate`, `timed_out` and the unpark callbacks run under that lock,
//!   exactly as `parking_lot_core` runs them under its bucket lock.
//! - A waiter sleeps with `loom::thread::park` until its hand-off token is in
//!   the table. loom's park never returns spuriously, so if nobody unparks a
//!   waiter, every thread ends up blocked and loom fails the execution with
//!   "deadlock": a lost wake-up cannot pass unnoticed.
//! - A timed park (any `Some` deadline: the model has no clock) enqueues,
//!   releases the table lock, takes it again: if the waiter is still
//!   queued it dequeues itself, runs `timed_out` and returns `TimedOut`;
//!   otherwise it was unparked in between and takes the hand-off at once
//!   (loom keeps no `unpark` delivered while the thread waited for the
//!   table lock, so it must not park for it). So loom
//!   explores a timeout at every point relative to a racing unpark — the
//!   place where a permit, a lock hand-off or an item gets lost.
//! - `be_fair` (parking_lot's "the queue's fairness timer has expired,
//!   hand the resource over") is loom's choice at every unpark that wakes
//!   someone, independently of every other unpark, as it is in production
//!   (the timer is per hash bucket, shared by unrelated keys, and re-armed
//!   for a random 0–1 ms each time it fires). See [`FairnessTimer`] for how
//!   loom is made to choose.

use std::sync::Arc;
use std::time::Instant;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Mutex;
use loom::thread::Thread;
use parking_lot_core::{FilterOp, ParkResult, ParkToken, UnparkResult, UnparkToken};

/// What `be_fair` an unpark of one parked thread reports: a free choice
/// that loom explores both ways.
///
/// loom has no "choose a boolean" call, but it explores every value an
/// atomic load may return under the memory model. So each parked thread
/// owns an `AtomicBool`, created `false`; once queued (and after
/// `before_sleep`), and before it sleeps, it stores `true` with `Relaxed`
/// and takes no lock again until it is woken. An unparker reads it under
/// the table lock: it synchronizes with the waiter's last unlock of the
/// table, which comes *before* that store, so nothing orders the store
/// with the read, and loom runs the unpark once reading `false` and once
/// `true`. Each unpark reads a different waiter's timer (a waiter is woken
/// once per park), so the answers of two unparks are independent.
///
/// An unpark that reaches the waiter after it was queued but before its
/// store (loom must pre-empt the waiter there) can only read `false`; the
/// waiter has then done nothing but release the table lock (and run
/// `before_sleep`).
struct FairnessTimer(Arc<AtomicBool>);

impl FairnessTimer {
    fn new() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }

    fn share(&self) -> Self {
        Self(Arc::clone(&self.0))
    }

    /// The waiter's side: from now on either answer is possible.
    fn arm(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// The unparker's side, under the table lock: loom's choice.
    fn expired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// One parked thread.
struct Waiter {
    id: u64,
    key: usize,
    token: ParkToken,
    thread: Thread,
    fairness: FairnessTimer,
}

/// All parked threads of the execution, in arrival order, and the tokens of
/// threads that were unparked but have not yet collected them.
#[derive(Default)]
struct Table {
    waiters: Vec<Waiter>,
    handoffs: Vec<(u64, UnparkToken)>,
    next_id: u64,
}

impl Table {
    fn take_handoff(&mut self, id: u64) -> Option<UnparkToken> {
        let position = self.handoffs.iter().position(|(owner, _)| *owner == id)?;
        Some(self.handoffs.swap_remove(position).1)
    }

    fn has_waiters(&self, key: usize) -> bool {
        self.waiters.iter().any(|waiter| waiter.key == key)
    }

    /// Removes the waiters at `positions` (ascending), gives each `token`,
    /// and returns their threads to unpark once the table lock is released.
    fn hand_off(&mut self, positions: &[usize], token: UnparkToken) -> Vec<Thread> {
        let mut threads = Vec::with_capacity(positions.len());
        for &position in positions.iter().rev() {
            let waiter = self.waiters.remove(position);
            self.handoffs.push((waiter.id, token));
            threads.push(waiter.thread);
        }
        threads
    }
}

loom::lazy_static! {
    static ref TABLE: Mutex<Table> = Mutex::new(Table::default());
}

fn table() -> loom::sync::MutexGuard<'static, Table> {
    TABLE
        .lock()
        .expect("verisync model: the table lock is never poisoned")
}

/// How many threads are parked on `key` now (for the loom suite: a test
/// waits until every waiter it started is in line before it acts).
pub fn parked_on(key: usize) -> usize {
    table()
        .waiters
        .iter()
        .filter(|waiter| waiter.key == key)
        .count()
}

/// The model of `parking_lot_core::park`.
///
/// # Safety
///
/// As `parking_lot_core::park`: `validate` and `timed_out` must not panic
/// or call into the seam.
pub unsafe fn park(
    key: usize,
    validate: impl FnOnce() -> bool,
    before_sleep: impl FnOnce(),
    timed_out: impl FnOnce(usize, bool),
    park_token: ParkToken,
    deadline: Option<Instant>,
) -> ParkResult {
    let fairness = FairnessTimer::new();
    let id = {
        let mut table = table();
        if !validate() {
            return ParkResult::Invalid;
        }
        let id = table.next_id;
        table.next_id += 1;
        table.waiters.push(Waiter {
            id,
            key,
            token: park_token,
            thread: loom::thread::current(),
            fairness: fairness.share(),
        });
        id
    };
    before_sleep();
    // No table lock between this and being dequeued (see `FairnessTimer`).
    fairness.arm();

    if deadline.is_some() {
        // Take the table lock again and decide: still queued means nobody
        // woke us before the (modelled) deadline. Taking the lock is a loom
        // branch point, so loom runs this both before and after a racing
        // unpark. (No `yield_now` here: loom would then schedule this thread
        // only once every other thread is blocked, and never explore a
        // timeout that races with an unpark.)
        let mut table = table();
        if let Some(position) = table.waiters.iter().position(|waiter| waiter.id == id) {
            table.waiters.remove(position);
            let was_last_thread = !table.has_waiters(key);
            timed_out(key, was_last_thread);
            return ParkResult::TimedOut;
        }
        // Unparked while waiting for the table lock: the hand-off is here.
        // Take it now rather than park: loom may have delivered the
        // unparker's `Thread::unpark` while this thread was blocked on the
        // lock, and keeps no token for it, so a park would never return (a
        // false deadlock; review 17).
        if let Some(token) = table.take_handoff(id) {
            return ParkResult::Unparked(token);
        }
    }

    // Sleep first, then look: an unparker hands the token over before it
    // calls `Thread::unpark`, and loom's `park` returns at once if that
    // unpark came first, so the token is there when `park` returns. (Looking
    // first would take the table lock while still queued, ordering the
    // fairness store before every later unpark.)
    loop {
        loom::thread::park();
        if let Some(token) = table().take_handoff(id) {
            return ParkResult::Unparked(token);
        }
    }
}

/// The model of `parking_lot_core::unpark_one`.
///
/// # Safety
///
/// As `parking_lot_core::unpark_one`: `callback` must not panic or call into
/// the seam.
pub unsafe fn unpark_one(
    key: usize,
    callback: impl FnOnce(UnparkResult) -> UnparkToken,
) -> UnparkResult {
    let mut table = table();
    let mut result = UnparkResult::default();
    let Some(position) = table.waiters.iter().position(|waiter| waiter.key == key) else {
        callback(result);
        return result;
    };
    result.unparked_threads = 1;
    result.have_more_threads = table.waiters[position + 1..]
        .iter()
        .any(|waiter| waiter.key == key);
    result.be_fair = table.waiters[position].fairness.expired();
    let token = callback(result);
    let threads = table.hand_off(&[position], token);
    drop(table);
    threads.iter().for_each(Thread::unpark);
    result
}

/// The model of `parking_lot_core::unpark_filter`.
///
/// # Safety
///
/// As `parking_lot_core::unpark_filter`: `filter` and `callback` must not
/// panic or call into the seam.
pub unsafe fn unpark_filter(
    key: usize,
    mut filter: impl FnMut(ParkToken) -> FilterOp,
    callback: impl FnOnce(UnparkResult) -> UnparkToken,
) -> UnparkResult {
    let mut table = table();
    let mut chosen = Vec::new();
    let mut result = UnparkResult::default();
    for (position, waiter) in table.waiters.iter().enumerate() {
        if waiter.key != key {
            continue;
        }
        match filter(waiter.token) {
            FilterOp::Unpark => chosen.push(position),
            FilterOp::Skip => {}
            FilterOp::Stop => break,
        }
    }
    result.have_more_threads = table
        .waiters
        .iter()
        .enumerate()
        .any(|(position, waiter)| waiter.key == key && !chosen.contains(&position));
    result.unparked_threads = chosen.len();
    if let Some(&first) = chosen.first() {
        result.be_fair = table.waiters[first].fairness.expired();
    }
    let token = callback(result);
    let threads = table.hand_off(&chosen, token);
    drop(table);
    threads.iter().for_each(Thread::unpark);
    result
}
