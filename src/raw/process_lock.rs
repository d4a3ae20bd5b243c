//! The robust process-shared lock: a state word in shared memory, a futex
//! to sleep on, and owner death as one of its transitions.
//!
//! # The state word
//!
//! ```text
//!  bit 31     30          29..28     27 ..................... 0
//!  WAITERS    OWNER_DIED  reserved   holder (0: nobody holds it)
//! ```
//!
//! - **holder**: the process-table identity of the holding *process*
//!   (slot index + 1 in bits 0..=11, slot generation in bits 12..=27; see
//!   `process_shared/table.rs`), never 0 while held. Threads of one process
//!   share it: the safe layer (`process_shared/robust.rs`) excludes them
//!   from each other with a lock in the process's own memory first, since
//!   another process can write anything into this word.
//! - **WAITERS**: someone may be asleep on the futex, so an unlock must wake
//!   one. Set by a waiter before it sleeps; cleared by every unlock, and set
//!   again by a woken waiter when it takes the lock (it cannot know whether
//!   others still sleep: std's futex mutex does the same).
//! - **OWNER_DIED**: a holder died holding the lock, and no locker has
//!   acknowledged it yet. It stays through unlocks that did not acknowledge
//!   (`unlock(keep_owner_died = true)`), so every locker is told until one
//!   says it repaired the data.
//! - **reserved**: never set by this code. A word with them set was written
//!   by something else (a scribbling process): it counts as held by a dead
//!   holder, so the next locker recovers the lock and is told.
//!
//! A locker never holds the lock already: each process excludes its own
//! threads from each other first (the safe layer's in-process lock; in the
//! loom suite, one thread per process). So a word whose holder is the
//! *locker's own* identity was written by something else (another process
//! can write any process's identity: they are in the process table), and
//! counts as a dead holder's too, never as one to wait for: waiting would
//! be waiting for itself.
//!
//! | state | meaning |
//! |-------|---------|
//! | `0` | free |
//! | `h` | held by process `h`, nobody asleep |
//! | `h \| WAITERS` | held, waiters may sleep |
//! | `OWNER_DIED` | free, but a holder died and nobody acknowledged it |
//! | `h \| OWNER_DIED [\| WAITERS]` | held by `h`, who was (or will be) told the previous holder died |
//!
//! # Transitions, and who wakes whom
//!
//! - **lock** (fast path): CAS `0 → me`. Slow path (`#[cold]`): while the
//!   holder field is 0, CAS in `me`, keeping `OWNER_DIED` (and reporting it)
//!   and `WAITERS`, and adding `WAITERS` once this locker has slept. While
//!   held: spin a little, then set `WAITERS` and sleep on the futex with
//!   `still_valid` = "the holder is alive".
//! - **owner death**: a waiter whose `still_valid` finds the holder dead (or
//!   the word garbage, or naming the waiter itself) CASes `dead → me | OWNER_DIED | WAITERS-if-set` and
//!   reports `OwnerDied`. Nobody wakes sleepers when a process dies: each
//!   sleeper's wait returns within `HOLDER_POLL` (production) or at the
//!   model's death step (loom), and it checks again.
//! - **unlock** (fast path: CAS `me → 0`, the word exactly `me`; else
//!   `#[cold]`): CAS `me | bits → 0` (or `→ OWNER_DIED` if the death was not
//!   acknowledged); if the old word had `WAITERS`, wake one sleeper. If the
//!   word no longer names this process (someone scribbled over it), unlock
//!   leaves it alone: the next locker recovers it as a dead holder's.
//! - **timeout**: a waiter that a `wake` dequeued reports `Woken`, never
//!   `TimedOut`, even if its deadline passed meanwhile (Linux's
//!   `futex_wait` returns 0 when a waker unqueued it first; the model only
//!   times out a waiter still queued), so a wake-up is never spent on a
//!   waiter that then gives up. A timed-out waiter still tries once more
//!   and gives up only if the lock is held: `WAITERS` stays set, so that
//!   holder's unlock wakes another sleeper.
//!
//! # Memory ordering
//!
//! Taking the lock (both CASes) is `Acquire` and releasing it `Release`:
//! the data the lock guards is published by the unlock and seen by the next
//! locker, as for any mutex. Taking a dead holder's lock cannot synchronize
//! with an unlock that never happened; what the dead process wrote before
//! it died is visible because deciding it is dead reads its death
//! (production: the kernel's exit path and the `/proc` read between; the
//! model: an `Acquire` load of a flag the dying thread stored with
//! `Release`), and that is what `OwnerDied` tells the locker: the data may
//! be half-updated. Setting `WAITERS` is `Relaxed`: it publishes nothing,
//! and the futex compares the word atomically with queuing.

use std::time::Instant;

use crate::sys::atomic::Ordering::{Acquire, Relaxed, Release};
use crate::sys::futex::{self, Wake, Word};
use crate::sys::spin::SpinWait;

/// The holder field: bits 0..=27 (0: nobody).
pub(crate) const HOLDER_MASK: u32 = (1 << 28) - 1;
/// Never set by this code: a word with them set is garbage.
const RESERVED: u32 = 0b11 << 28;
/// A holder died and no locker acknowledged it yet.
const OWNER_DIED: u32 = 1 << 30;
/// Waiters may sleep on the futex: unlock wakes one.
const WAITERS: u32 = 1 << 31;

/// Who holds locks: tells whether a holder (a word's holder field, never
/// 0, possibly garbage) is alive.
pub trait Holders {
    /// Whether process `holder` is alive. `false` for anything that is not
    /// a live process's identity. Must not call into the futex seam.
    fn is_alive(&self, holder: u32) -> bool;
}

/// The holder field's slot index: bits 0..=11 hold slot index + 1
/// (`process_shared/table.rs`); `None` for 0 (nobody, or garbage).
#[inline]
pub fn slot_index(holder: u32) -> Option<usize> {
    ((holder & 0xFFF) as usize).checked_sub(1)
}

/// How long a locker waits.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// Not at all.
    Try,
    /// Until the deadline (`None`: forever).
    Until(Option<Instant>),
}

/// The lock over a process-shared primitive's state, as the calling
/// process takes it, and who that process is: what the state machines
/// built on this lock (`raw/process_semaphore.rs`) need from their caller.
/// Production: `process_shared/robust.rs` (an in-process lock, then this
/// file's word); the loom suite: this file's word alone, one thread per
/// process.
pub trait StateLock: Holders {
    /// The calling process's holder identity (non-zero, within
    /// `HOLDER_MASK`).
    fn me(&self) -> u32;
    /// Takes the lock; `None` if `wait` ran out first.
    fn lock(&self, wait: Wait) -> Option<Acquired>;
    /// Releases it (after [`lock`](Self::lock) returned `Some`), marking
    /// the state consistent (the caller repaired it if told a holder died).
    fn unlock(&self);
    /// Whether a dead process holds it (or the word is garbage), as a
    /// caller that does not hold it sees it now: a word naming the caller's
    /// own process counts as alive (another of its threads may hold it).
    /// Must not call into the futex seam.
    fn held_by_the_dead(&self) -> bool;
}

/// How a locker got the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The previous holder unlocked it.
    Clean,
    /// A holder died holding it (now or earlier, unacknowledged).
    OwnerDied,
}

/// The state machine over one word. `me` is the calling process's holder
/// identity (non-zero, within `HOLDER_MASK`); a process locks only what it
/// does not hold (a word naming `me` is garbage: the module docs).
pub struct RawProcessLock<'word> {
    word: &'word Word,
}

impl<'word> RawProcessLock<'word> {
    /// The lock whose state is `word` (0: free).
    #[inline]
    pub fn new(word: &'word Word) -> Self {
        Self { word }
    }

    /// The fast path of every lock: takes the lock if the word is exactly 0
    /// (free, nobody asleep, no death to report): one CAS. `false` leaves
    /// the word alone; [`try_lock`](Self::try_lock) and
    /// [`lock`](Self::lock) then look closer.
    #[inline]
    pub fn try_lock_uncontended(&self, me: u32) -> bool {
        debug_assert!(me != 0 && me & !HOLDER_MASK == 0);
        self.word.compare_exchange(0, me, Acquire, Relaxed).is_ok()
    }

    /// Takes the lock if it is free (or its holder is dead) right now.
    #[inline]
    pub fn try_lock(&self, me: u32, holders: &impl Holders) -> Option<Acquired> {
        if self.try_lock_uncontended(me) {
            return Some(Acquired::Clean);
        }
        self.try_lock_slow(me, holders)
    }

    #[cold]
    fn try_lock_slow(&self, me: u32, holders: &impl Holders) -> Option<Acquired> {
        let mut state = self.word.load(Relaxed);
        loop {
            let outcome = if is_free(state) {
                self.take_free(state, me, 0)
            } else if holder_gone(state, me, holders) {
                self.take_from_dead(state, me)
            } else {
                return None;
            };
            match outcome {
                Ok(acquired) => return Some(acquired),
                Err(actual) => state = actual,
            }
        }
    }

    /// Takes the lock, waiting until `deadline` (`None`: forever); `None`
    /// if it timed out.
    #[inline]
    pub fn lock(
        &self,
        me: u32,
        holders: &impl Holders,
        deadline: Option<Instant>,
    ) -> Option<Acquired> {
        if self.try_lock_uncontended(me) {
            return Some(Acquired::Clean);
        }
        self.lock_contended(me, holders, deadline)
    }

    #[cold]
    fn lock_contended(
        &self,
        me: u32,
        holders: &impl Holders,
        deadline: Option<Instant>,
    ) -> Option<Acquired> {
        let mut spin = SpinWait::default();
        // Once this locker has slept, it takes the lock with `WAITERS` set:
        // others may still sleep, and its unlock must wake one.
        let mut slept_mark = 0;
        let mut state = self.word.load(Relaxed);
        loop {
            if is_free(state) {
                match self.take_free(state, me, slept_mark) {
                    Ok(acquired) => return Some(acquired),
                    Err(actual) => {
                        state = actual;
                        continue;
                    }
                }
            }
            if state & WAITERS == 0 && spin.spin_before(deadline) {
                state = self.word.load(Relaxed);
                continue;
            }
            // Held: announce that we sleep.
            let waiting = state | WAITERS;
            if state != waiting {
                if let Err(actual) = self.word.compare_exchange(state, waiting, Relaxed, Relaxed) {
                    state = actual;
                    continue;
                }
            }
            slept_mark = WAITERS;
            let wake = futex::wait(self.word, waiting, deadline, || {
                !holder_gone(waiting, me, holders)
            });
            match wake {
                Wake::Invalid => match self.take_from_dead(waiting, me) {
                    Ok(acquired) => return Some(acquired),
                    Err(actual) => state = actual,
                },
                Wake::TimedOut => return self.try_lock_slow(me, holders),
                Wake::Woken | Wake::Recheck => state = self.word.load(Relaxed),
            }
        }
    }

    /// CAS from a free `state` to held by `me`.
    fn take_free(&self, state: u32, me: u32, mark: u32) -> Result<Acquired, u32> {
        let kept = state & (WAITERS | OWNER_DIED);
        self.word
            .compare_exchange(state, me | kept | mark, Acquire, Relaxed)?;
        Ok(if state & OWNER_DIED != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        })
    }

    /// CAS from a dead holder's (or garbage) `state` to held by `me`.
    fn take_from_dead(&self, state: u32, me: u32) -> Result<Acquired, u32> {
        let kept = state & WAITERS;
        self.word
            .compare_exchange(state, me | OWNER_DIED | kept, Acquire, Relaxed)?;
        Ok(Acquired::OwnerDied)
    }

    /// Releases the lock held by `me`. `keep_owner_died`: the locker was
    /// told a holder died and did not acknowledge it, so the next locker
    /// is told too. Fast path: the word is exactly `me` (nobody asleep, no
    /// death kept): one CAS to 0.
    #[inline]
    pub fn unlock(&self, me: u32, keep_owner_died: bool) {
        if keep_owner_died || self.word.compare_exchange(me, 0, Release, Relaxed).is_err() {
            self.unlock_slow(me, keep_owner_died);
        }
    }

    /// [`unlock`](Self::unlock) when the word is not exactly `me`.
    #[cold]
    fn unlock_slow(&self, me: u32, keep_owner_died: bool) {
        if self.release(me, keep_owner_died) {
            self.wake_one();
        }
    }

    /// The first half of [`unlock`](Self::unlock): frees the word; `true`
    /// if a sleeper must be woken. (Split so the loom suite can let a
    /// process die between the two halves.)
    #[inline]
    pub fn release(&self, me: u32, keep_owner_died: bool) -> bool {
        let released = if keep_owner_died { OWNER_DIED } else { 0 };
        let mut state = self.word.load(Relaxed);
        loop {
            if state & (HOLDER_MASK | RESERVED) != me {
                // Not ours any more: someone wrote over the word. The next
                // locker recovers it as a dead holder's.
                return false;
            }
            match self
                .word
                .compare_exchange(state, released, Release, Relaxed)
            {
                Ok(_) => return state & WAITERS != 0,
                Err(actual) => state = actual,
            }
        }
    }

    /// Whether a dead process holds it, or the word is garbage (a snapshot,
    /// for a waiter on something else that this lock guards).
    pub fn held_by_the_dead(&self, holders: &impl Holders) -> bool {
        let state = self.word.load(Relaxed);
        let holder = state & HOLDER_MASK;
        state & RESERVED != 0 || (holder != 0 && !holders.is_alive(holder))
    }

    /// The second half of [`unlock`](Self::unlock).
    #[cold]
    pub fn wake_one(&self) {
        futex::wake(self.word, 1);
    }
}

/// Nobody holds it (and the word is not garbage).
#[inline]
fn is_free(state: u32) -> bool {
    state & (HOLDER_MASK | RESERVED) == 0
}

/// Held by a process that is gone, or garbage: reserved bits set, or the
/// holder is the locker `me` itself (which never locks what it holds: the
/// module docs), or not alive.
fn holder_gone(state: u32, me: u32, holders: &impl Holders) -> bool {
    let holder = state & HOLDER_MASK;
    state & RESERVED != 0 || holder == me || (holder != 0 && !holders.is_alive(holder))
}
