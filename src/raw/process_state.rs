//! Pieces shared by the process-shared state machines that keep their
//! state under a robust state lock (`raw/process_semaphore.rs`,
//! `raw/process_barrier.rs`, `raw/process_condition.rs`): the held state
//! lock, the futex sequence word their waiters sleep on, and one record
//! per process-table slot naming the process it belongs to.
//!
//! # The wake word
//!
//! ```text
//!  bit 31     30 ........................ 0
//!  SLEEPERS   sequence number (wrapping)
//! ```
//!
//! A waiter that must sleep sets `SLEEPERS` and reads the word *under the
//! state lock* ([`announce_sleeper`]), unlocks, and sleeps on the word with
//! the value it read. Every transition that may let a waiter go on bumps
//! the sequence under the lock ([`bump`], clearing `SLEEPERS`) and, if
//! `SLEEPERS` was set, wakes *every* sleeper after unlocking
//! ([`wake_sleepers`]). A bump after the waiter's unlock changes the word,
//! so its futex wait returns at once or is woken: no lost wake-up. A
//! process that dies between the bump and the wake wakes nobody itself:
//! if it died holding the state lock, the next locker is told
//! (`OwnerDied`) and wakes every sleeper ([`lock_state`]); if it died
//! after unlocking, or nobody takes the lock, sleepers' waits end within
//! `HOLDER_POLL` (production) or at the model's death step (loom), and
//! they look again. Garbage in the word at worst wakes
//! sleepers early (they look again) or costs them a poll.
//!
//! # Per-slot records
//!
//! A [`Holding`] is `(holder, count)`: `count` of something (permits held,
//! waiters inside) belonging to the process `holder` (its process-table
//! identity: slot and generation), kept in the record of the holder's
//! slot. Only its process adds to it. A record with a count whose holder
//! does not name the record's own slot, or is not alive, is a dead
//! process's (or garbage): [`dead_holdings`] finds them, and the state
//! machine takes them back under the state lock if they are unchanged.
//!
//! Everything but the wake word is read and written only under the state
//! lock (`Relaxed`: the lock's `Acquire`/`Release` orders it); the wake
//! word's changes are ordered by the lock too, and the futex compares it
//! atomically with queuing.

use std::time::Instant;

use super::process_lock::{slot_index, Acquired, Holders, Wait, HOLDER_MASK};
use crate::sys::atomic::Ordering::Relaxed;
use crate::sys::futex::{self, Wake, Word};

pub use super::process_lock::StateLock;

/// In the wake word: someone may sleep on it.
const SLEEPERS: u32 = 1 << 31;
/// In the wake word: the sequence number.
const SEQUENCE: u32 = SLEEPERS - 1;
/// "Every waiter" for `futex::wake` (the kernel takes an `int`).
const EVERY_WAITER: u32 = i32::MAX as u32;

/// The state lock, held; released on drop.
pub struct Held<'l, L: StateLock> {
    lock: &'l L,
}

impl<L: StateLock> Drop for Held<'_, L> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// Takes the state lock as `wait` says; `None` if it ran out, else the
/// held lock and how it was acquired (`OwnerDied`: the caller repairs the
/// state before relying on it).
///
/// Taken from a dead holder, it also bumps `wake` and wakes every sleeper
/// on it, whatever `SLEEPERS` says: the dead process may have bumped the
/// word (clearing `SLEEPERS`) and died before its wake, leaving sleepers in
/// the futex on the old value that no later bump would wake (they would
/// wait for `HOLDER_POLL`; review 17 found this in the queue). The woken
/// take the state lock once this holder unlocks, and look again. A death
/// is rare, so waking under the lock costs nothing that matters.
pub fn lock_state<'l, L: StateLock>(
    lock: &'l L,
    wake: &Word,
    wait: Wait,
) -> Option<(Held<'l, L>, Acquired)> {
    let acquired = lock.lock(wait)?;
    if acquired == Acquired::OwnerDied {
        bump(wake);
        wake_sleepers(wake);
    }
    Some((Held { lock }, acquired))
}

/// Marks that a waiter may sleep on `wake` and returns the value to sleep
/// on (under the state lock; module docs).
pub fn announce_sleeper(wake: &Word) -> u32 {
    wake.fetch_or(SLEEPERS, Relaxed) | SLEEPERS
}

/// Bumps the sequence (under the state lock); `true` if sleepers must be
/// woken, after unlocking, with [`wake_sleepers`].
pub fn bump(wake: &Word) -> bool {
    let next = wake.load(Relaxed).wrapping_add(1) & SEQUENCE;
    wake.swap(next, Relaxed) & SLEEPERS != 0
}

/// Wakes every sleeper on `wake` (the second half of a bump that found
/// them).
#[cold]
pub fn wake_sleepers(wake: &Word) {
    futex::wake(wake, EVERY_WAITER);
}

/// Sleeps on `wake` unless it changed since `seen`, or `all_alive` says a
/// process the caller depends on is dead ([`Wake::Invalid`]). `all_alive`
/// runs as the futex's `still_valid`, so in the model it is atomic with
/// queuing (a death either shows or wakes this sleeper).
#[cold]
pub fn sleep(
    wake: &Word,
    seen: u32,
    deadline: Option<Instant>,
    all_alive: impl FnOnce() -> bool,
) -> Wake {
    futex::wait(wake, seen, deadline, all_alive)
}

/// Something one process has (in shared memory, in its slot's record).
#[repr(C)]
pub struct Holding {
    holder: Word,
    count: Word,
}

impl Holding {
    /// An empty record, for the loom suite.
    #[cfg(verisync_loom)]
    pub fn new() -> Self {
        Self {
            holder: Word::new(0),
            count: Word::new(0),
        }
    }

    /// Its words `[holder, count]`, for the loom suite.
    #[cfg(verisync_loom)]
    pub fn words(&self) -> [&Word; 2] {
        [&self.holder, &self.count]
    }

    /// Empties memory that holds a (garbage) record.
    pub fn reset(&self) {
        self.holder.store(0, Relaxed);
        self.count.store(0, Relaxed);
    }

    /// Who it belongs to (untrusted).
    pub fn holder(&self) -> u32 {
        self.holder.load(Relaxed)
    }

    /// How many it counts (untrusted).
    pub fn count(&self) -> u32 {
        self.count.load(Relaxed)
    }

    /// Its holder word (the process-shared queue keeps its holdings of
    /// taken tasks in the same shape: `raw/process_queue.rs`).
    pub(crate) fn holder_word(&self) -> &Word {
        &self.holder
    }

    /// Its count word.
    pub(crate) fn count_word(&self) -> &Word {
        &self.count
    }

    /// Sets the count (under the state lock).
    pub fn set_count(&self, count: u32) {
        self.count.store(count, Relaxed);
    }

    /// Makes it `me`'s (under the state lock), returning what an earlier
    /// process of the slot (dead: slots are reused only then) or garbage
    /// left in it, now emptied; 0 if it was `me`'s already.
    pub fn claim(&self, me: u32) -> u32 {
        if self.holder.load(Relaxed) == me {
            return 0;
        }
        let left = self.count.swap(0, Relaxed);
        self.holder.store(me, Relaxed);
        left
    }
}

#[cfg(verisync_loom)]
impl Default for Holding {
    fn default() -> Self {
        Self::new()
    }
}

/// The record of `me`'s slot.
pub fn mine(holdings: &[Holding], me: u32) -> &Holding {
    let index = slot_index(me).expect("verisync: a process identity names a slot");
    &holdings[index]
}

/// The records (index, holder, count) with a count whose holder is dead,
/// or does not name the record's slot (garbage): a scan outside the state
/// lock, to be checked again under it. `me`'s own record counts as alive.
pub fn dead_holdings<'s>(
    holdings: &'s [Holding],
    me: u32,
    holders: &'s impl Holders,
) -> impl Iterator<Item = (usize, u32, u32)> + 's {
    holdings
        .iter()
        .enumerate()
        .filter_map(move |(index, holding)| {
            let count = holding.count();
            if count == 0 {
                return None;
            }
            let holder = holding.holder();
            let in_place = holder & !HOLDER_MASK == 0 && slot_index(holder) == Some(index);
            let alive = in_place && (holder == me || holders.is_alive(holder));
            (!alive).then_some((index, holder, count))
        })
}

/// Empties record `index` if it still is `(holder, count)` as a scan saw
/// it (under the state lock); whether it did.
pub fn take_if_unchanged(holdings: &[Holding], index: usize, holder: u32, count: u32) -> bool {
    let holding = &holdings[index];
    let unchanged = holding.holder() == holder && holding.count() == count;
    if unchanged {
        holding.set_count(0);
    }
    unchanged
}

/// The counts of every record together (under the state lock).
pub fn total(holdings: &[Holding]) -> u64 {
    holdings
        .iter()
        .map(|holding| u64::from(holding.count()))
        .sum()
}
