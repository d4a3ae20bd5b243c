//! The loom model of the futex seam.
//!
//! Same functions and contract as `futex_linux.rs`, built from loom's own
//! primitives so that loom sees every interleaving:
//!
//! - One `loom::sync::Mutex` guards a table of waiters (id, word address,
//!   thread) in arrival order, and the outcomes handed to woken waiters.
//!   A wait compares the word with `expected` and runs `still_valid` under
//!   that lock, then queues itself: the kernel's "compare and queue" is
//!   atomic with respect to `wake`, and so is the model's.
//! - A waiter sleeps with `loom::thread::park` until its outcome is in the
//!   table. loom's park never returns spuriously, so a waiter nobody wakes
//!   leaves every thread blocked and loom fails the execution with
//!   "deadlock": a lost wake-up cannot pass unnoticed.
//! - A timed wait (any `Some` deadline: the model has no clock) queues,
//!   releases the table lock, takes it again: still queued means it timed
//!   out; otherwise it takes the outcome it was handed, at once (loom keeps
//!   no `unpark` delivered while the thread waited for the table lock, so
//!   it must not park for it). So loom explores a timeout at every point
//!   relative to a racing wake.
//! - **A process dies.** Production notices a dead holder by polling
//!   (`HOLDER_POLL`). The model has no clock, so [`process_died`] wakes
//!   every waiter with [`Wake::Recheck`] instead; the test marks the
//!   process dead *before* calling it, and `still_valid` runs under the
//!   table lock, so a waiter either sees the death before it sleeps or is
//!   queued when the wake-up comes. A model thread "dies" by marking itself
//!   dead, calling [`process_died`] and returning without unlocking.

use std::time::Instant;

use loom::sync::Mutex;
use loom::thread::Thread;

use super::futex_common::Wake;

/// A futex word.
pub type Word = loom::sync::atomic::AtomicU32;

struct Waiter {
    id: u64,
    address: usize,
    thread: Thread,
}

#[derive(Default)]
struct Table {
    waiters: Vec<Waiter>,
    outcomes: Vec<(u64, Wake)>,
    next_id: u64,
}

impl Table {
    fn take_outcome(&mut self, id: u64) -> Option<Wake> {
        let position = self.outcomes.iter().position(|(owner, _)| *owner == id)?;
        Some(self.outcomes.swap_remove(position).1)
    }

    /// Dequeues the waiters `chosen` picks (at most `count`), hands each
    /// `outcome`, and returns their threads to unpark after unlocking.
    fn wake(
        &mut self,
        count: usize,
        chosen: impl Fn(&Waiter) -> bool,
        outcome: Wake,
    ) -> Vec<Thread> {
        let mut threads = Vec::new();
        let mut index = 0;
        while index < self.waiters.len() && threads.len() < count {
            if chosen(&self.waiters[index]) {
                let waiter = self.waiters.remove(index);
                self.outcomes.push((waiter.id, outcome));
                threads.push(waiter.thread);
            } else {
                index += 1;
            }
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
        .expect("verisync model: the futex table lock is never poisoned")
}

fn address(word: &Word) -> usize {
    std::ptr::from_ref(word) as usize
}

/// The model of `futex_linux::wait`.
pub fn wait(
    word: &Word,
    expected: u32,
    deadline: Option<Instant>,
    still_valid: impl FnOnce() -> bool,
) -> Wake {
    let id = {
        let mut table = table();
        // Relaxed, as the kernel's read: the futex orders nothing; the
        // table lock makes compare-and-queue atomic with respect to wake.
        if word.load(std::sync::atomic::Ordering::Relaxed) != expected {
            return Wake::Woken;
        }
        if !still_valid() {
            return Wake::Invalid;
        }
        let id = table.next_id;
        table.next_id += 1;
        table.waiters.push(Waiter {
            id,
            address: address(word),
            thread: loom::thread::current(),
        });
        id
    };
    if deadline.is_some() {
        let mut table = table();
        if let Some(position) = table.waiters.iter().position(|waiter| waiter.id == id) {
            table.waiters.remove(position);
            return Wake::TimedOut;
        }
        // Woken while waiting for the table lock: the outcome is here. Take
        // it now rather than park: loom may have delivered the waker's
        // `unpark` while this thread was blocked on the lock, and keeps no
        // token for it, so a park would never return (a false deadlock;
        // review 17).
        if let Some(outcome) = table.take_outcome(id) {
            return outcome;
        }
    }
    loop {
        loom::thread::park();
        if let Some(outcome) = table().take_outcome(id) {
            return outcome;
        }
    }
}

/// The model of `futex_linux::wake`.
pub fn wake(word: &Word, count: u32) -> usize {
    let address = address(word);
    let threads = table().wake(
        count as usize,
        |waiter| waiter.address == address,
        Wake::Woken,
    );
    threads.iter().for_each(Thread::unpark);
    threads.len()
}

/// The model's "a process died": wakes every waiter on every word with
/// [`Wake::Recheck`], as production's poll would after `HOLDER_POLL`.
/// Mark the process dead (where `still_valid` looks) before calling this.
pub fn process_died() {
    let threads = table().wake(usize::MAX, |_| true, Wake::Recheck);
    threads.iter().for_each(Thread::unpark);
}
