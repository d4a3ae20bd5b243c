//! The shuttle model of the parking seam.
//!
//! The loom model (`park_loom.rs`) rebuilt from shuttle's primitives, with
//! the same functions, signatures and contract as `parking_lot_core` (whose
//! token and result types it reuses). shuttle controls every scheduling
//! point and picks among them at random (or by PCT priorities), so this
//! model runs schedules of 3–6 threads and long operation scripts that
//! loom's exhaustive search cannot reach.
//!
//! - One `shuttle::sync::Mutex` guards a table of waiters (key, park token,
//!   thread handle) in arrival order, and the tokens handed to woken waiters.
//!   `validate`, `timed_out` and the unpark callbacks run under that lock,
//!   exactly as `parking_lot_core` runs them under its bucket lock.
//! - A waiter sleeps with `shuttle::thread::park` until its hand-off token
//!   is in the table (shuttle's park may return spuriously; the waiter just
//!   checks again). If nobody unparks a waiter, every thread ends up blocked
//!   and shuttle fails the execution with "deadlock": a lost wake-up cannot
//!   pass unnoticed.
//! - A timed park (any `Some` deadline: the model has no clock) lets a
//!   random number of scheduling rounds pass, from none to
//!   [`MAX_ROUNDS_BEFORE_TIMEOUT`], looking for its hand-off after each;
//!   then it takes the table lock and, if still queued, dequeues itself,
//!   runs `timed_out` and returns `TimedOut`. So the deadline falls at a
//!   random point relative to racing unparks — at once, or after the other
//!   threads have had time to wake it — and a timed waiter never waits
//!   forever, as a real one would not.
//! - `be_fair` (parking_lot's "a waiter has waited long enough, hand the
//!   resource over", true about once per half millisecond in production) is
//!   a random choice on each unpark that wakes someone, true one time in
//!   [`BE_FAIR_ONE_IN`], so long scripts drive both branches of the code
//!   above.
//!
//! Every random choice comes from `shuttle::rand`, which the scheduler
//! seeds, so a failing schedule replays exactly.

use std::time::Instant;

use parking_lot_core::{FilterOp, ParkResult, ParkToken, UnparkResult, UnparkToken};
use shuttle::rand::Rng;
use shuttle::sync::Mutex;
use shuttle::thread::Thread;

/// The most scheduling rounds a timed park lets pass before it times out.
const MAX_ROUNDS_BEFORE_TIMEOUT: u32 = 8;

/// `UnparkResult::be_fair` is true for one unpark in this many.
const BE_FAIR_ONE_IN: u32 = 4;

/// One parked thread.
struct Waiter {
    id: u64,
    key: usize,
    token: ParkToken,
    thread: Thread,
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

// shuttle drops a lazy static at the end of each execution and makes a
// fresh one for the next, so no waiter outlives its execution.
shuttle::lazy_static! {
    static ref TABLE: Mutex<Table> = Mutex::new(Table::default());
}

fn table() -> shuttle::sync::MutexGuard<'static, Table> {
    TABLE
        .lock()
        .expect("verisync model: the table lock is never poisoned")
}

/// A random `be_fair` for an unpark that wakes someone.
fn choose_be_fair() -> bool {
    shuttle::rand::thread_rng().gen_range(0..BE_FAIR_ONE_IN) == 0
}

/// The model of `parking_lot_core::park`.
///
/// # Safety
///
/// As `parking_lot_core::park`: `validate` and `timed_out` must not panic
/// or call into the seam.
pub(crate) unsafe fn park(
    key: usize,
    validate: impl FnOnce() -> bool,
    before_sleep: impl FnOnce(),
    timed_out: impl FnOnce(usize, bool),
    park_token: ParkToken,
    deadline: Option<Instant>,
) -> ParkResult {
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
            thread: shuttle::thread::current(),
        });
        id
    };
    before_sleep();

    if deadline.is_some() {
        // The deadline passes after a random number of rounds; each lock
        // and each yield is a scheduling point where an unpark can come.
        let rounds = shuttle::rand::thread_rng().gen_range(0..=MAX_ROUNDS_BEFORE_TIMEOUT);
        for _ in 0..rounds {
            if let Some(token) = table().take_handoff(id) {
                return ParkResult::Unparked(token);
            }
            shuttle::thread::yield_now();
        }
        let mut table = table();
        if let Some(position) = table.waiters.iter().position(|waiter| waiter.id == id) {
            table.waiters.remove(position);
            let was_last_thread = !table.has_waiters(key);
            timed_out(key, was_last_thread);
            return ParkResult::TimedOut;
        }
    }

    loop {
        if let Some(token) = table().take_handoff(id) {
            return ParkResult::Unparked(token);
        }
        shuttle::thread::park();
    }
}

/// The model of `parking_lot_core::unpark_one`.
///
/// # Safety
///
/// As `parking_lot_core::unpark_one`: `callback` must not panic or call into
/// the seam.
pub(crate) unsafe fn unpark_one(
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
    result.be_fair = choose_be_fair();
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
pub(crate) unsafe fn unpark_filter(
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
    if !chosen.is_empty() {
        result.be_fair = choose_be_fair();
    }
    let token = callback(result);
    let threads = table.hand_off(&chosen, token);
    drop(table);
    threads.iter().for_each(Thread::unpark);
    result
}
