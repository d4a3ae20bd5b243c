//! The process-shared counting semaphore: counts in shared memory under a
//! robust state lock, one holding per process, and a futex word to sleep
//! on. A process that dies holding permits gets them back to the
//! semaphore: its holding names it, and a waiter that finds it dead
//! reclaims them.
//!
//! # The state
//!
//! ```text
//!  counts:    wake (u32)   total (u32)   available (u32)
//!  holdings:  one per process-table slot (SLOTS of them):
//!               holder (u32: the identity that holds them)   count (u32)
//! ```
//!
//! - **total** `T`: the permits that exist, held or not.
//! - **available** `A`: the permits nobody holds. Invariant (under the
//!   state lock): `A + Σ count = T`, `A ≤ limit`, `T ≤ MAX_PERMITS`.
//! - **holding** of slot `s`: the permits held by the process in
//!   process-table slot `s` (all its threads' permits together), and that
//!   process's identity (slot and generation: `process_shared/table.rs`),
//!   so a holding left by an earlier process of the slot is told apart from
//!   the current one's. Only the holding's process adds to it; it and
//!   reclaimers take from it.
//! - **wake**: a sequence number (bits 0..=30), bumped by every change that
//!   may let a waiter in, and `SLEEPERS` (bit 31): someone may sleep on it.
//!
//! The state lock is the robust process lock (`raw/process_lock.rs`,
//! through [`StateLock`]); everything but `wake` is read and written only
//! under it (`Relaxed`: the lock's `Acquire`/`Release` orders it).
//!
//! # Transitions (all under the state lock, each write order chosen so a
//! process killed between two writes leaves a state the repair restores)
//!
//! | operation | writes, in order |
//! |-----------|------------------|
//! | acquire `n` (needs `A ≥ n`) | my holding `+= n`; `A -= n` |
//! | give back `n` (a permit guard's drop) | my holding `-= n`; `A += n` (past `limit`: `T -=` the surplus, `A = limit`) |
//! | release `n` (Python's `release`, nobody's permits) | `T += n`; `A += n` (refused past `limit` or `MAX_PERMITS`) |
//! | forget `n` (permits stay consumed) | `T -= n`; my holding `-= n` |
//! | reclaim a dead holder's `c` | its holding `= 0`; `A += c` (as give back) |
//!
//! **Repair**: `A = min(E - Σ count, limit)`, `T = A + Σ count`, where
//! `E`, the permits that exist, is `T` for an unbounded semaphore and
//! `max(T, bound)` for a bounded one (the bound from the caller's own
//! memory: its handle). A bounded semaphore's `T` is trusted upwards only:
//! below the bound it may be a scribbler's (counting from the bound then
//! loses nothing for good); above it, it records permits that `release`
//! added while others were held (bound 1, one held, `release(1)`: `T = 2`,
//! `A = 1`; counting from the bound alone made `A = 0`, losing the
//! released permit while the holder lived). Every state the rules reach
//! has `A ≤ limit`, so `T ≤ limit + Σ count`: a `T` written high gives at
//! most what a `release` could have (`A = limit`), never more than the
//! bound available. It runs when the state lock reports
//! that its holder died (mid-transition), whenever the counts break the
//! invariant's bounds (`A > limit`, `A > T`, `T > MAX_PERMITS`: garbage),
//! and when an audit finds `A + Σ count ≠ T` (below, "Garbage"). `E` and
//! the holdings are the truth; a transition cut short after its first
//! write is completed or undone by the repair (acquire: the holding says
//! the permits were taken; forget: `T` says they are gone, and the dead
//! process's holding is reclaimed anyway; release: `T` says they came).
//! On a bounded semaphore a repair makes at least `bound - Σ count`
//! available, so permits forgotten (and not released since) come back
//! with it.
//!
//! # Waiting, and who wakes whom
//!
//! A waiter that finds `A < n` sets `SLEEPERS` and reads `wake` *under the
//! state lock*, unlocks, and sleeps on `wake` with the value it read,
//! unless a holder is dead (below). Every transition that raises `A` bumps
//! `wake` under the lock (clearing `SLEEPERS`) and, if `SLEEPERS` was set,
//! wakes *every* sleeper after unlocking: they need different counts, so
//! waking one could wake the wrong one. A bump after the waiter's unlock
//! changes the word, so its futex wait returns at once or is woken: no
//! lost wake-up. Woken waiters compete for the permits again (no arrival
//! order, unlike the thread `Semaphore`).
//!
//! A process that dies between the bump and the wake wakes nobody: the
//! sleepers' waits end within `HOLDER_POLL` (production) or at the
//! model's death step (loom), and they look again.
//!
//! # Dead holders
//!
//! Before it sleeps, a waiter scans the holdings outside the state lock
//! (only those with permits, and not its own), as the futex wait's
//! `still_valid` check (so in the loom model a death either shows in the
//! scan or wakes the queued sleeper): a holding whose holder's slot is not
//! the holding's own, or whose holder is not alive (`Holders::is_alive`:
//! the process table and `/proc`), makes it reclaim instead of sleeping.
//! A reclaim takes the lock and empties the holding if it still holds
//! exactly what the scan saw. The same check also looks at the state
//! lock: held by a dead process (killed mid-transition, say after emptying
//! its holding but before raising `A` and bumping), it makes the waiter
//! take the lock instead of sleeping, which recovers it and repairs the
//! counts. So in the loom model, too, a death mid-transition either shows
//! to a waiter that queues after it or wakes one queued before it (the
//! model has no poll). A sleeping waiter wakes at least every
//! `HOLDER_POLL` and looks again, so a holder's death returns its permits
//! within about that. A process that takes permits into its own slot first
//! reclaims what an earlier process of that slot left there (slots are
//! reused only after their process died). The try forms scan once after
//! failing, and try again if anything came back.
//!
//! Limits: one holding per process-table slot, so every process of the
//! tree (1024 at once) can hold permits, with nothing to run out of; a
//! holding counts up to `MAX_PERMITS`.
//!
//! # Garbage
//!
//! Shared memory is untrusted: every count read is bounded (`u64`
//! arithmetic, clamped to `limit` and `MAX_PERMITS`), a holding whose
//! holder does not name its own slot is a dead holder's, and a give-back
//! returns at most what its holding still holds. Counts within the bounds
//! that break `A + Σ count = T` are found by an audit (a sum over the
//! holdings under the state lock), which a waiter runs each time it has
//! slept a whole `HOLDER_POLL` without a wake-up (so at most every 10 ms
//! per waiter, and only while permits are short), and repaired.
//!
//! What a scribbler can still do, never out of bounds and never a hang
//! past a deadline: hand out too many permits for a while (an `A` written
//! high is spent before anyone notices; the give-backs' surplus past
//! `limit` is then discarded); make permits short until the next audit or
//! repair (an `A` written low); keep permits from coming back while a
//! process lives by writing counts into *its* holding (they return when it
//! exits). And:
//!
//! - A **bounded** semaphore's permits come back for good: a repair counts
//!   from at least the bound, not from a shared `T` below it, so whatever
//!   the scribbler wrote, once it stops, the next repair or audit restores
//!   at least `bound - Σ count` available (if it wrote a consistent state,
//!   `A + Σ count = T < bound`, which looks like forgotten permits, they
//!   come back at the next repair only: a holder's death mid-update, or
//!   out-of-bounds counts). A `T` written high makes a repair hand out up
//!   to the bound on top of what is held, as a `release` could have; the
//!   give-backs' surplus past the bound is discarded, so that too ends
//!   once the holders give back.
//! - An **unbounded** semaphore has no bound to count from: `T` is the only
//!   record of how many permits exist (`release` adds to it, `forget` takes
//!   from it), so a scribbled `T` (with `A` to match) changes the number of
//!   permits for good, fewer or more (up to `MAX_PERMITS`).

use std::time::Instant;

use super::process_lock::{Acquired, Wait, HOLDER_MASK};
use super::process_state::{self, dead_holdings, lock_state, mine, Held};
use crate::sys::atomic::Ordering::Relaxed;
use crate::sys::futex::{Wake, Word};

pub use super::process_lock::StateLock;
pub use super::process_state::Holding;
pub use super::semaphore::TooManyReleases;

/// The most permits a process-shared semaphore has in all (held or not).
pub const MAX_PERMITS: u32 = (1 << 31) - 1;

/// A semaphore's counts and futex word (in shared memory).
#[repr(C)]
pub struct Counts {
    wake: Word,
    total: Word,
    available: Word,
}

impl Counts {
    /// Counts for a semaphore with `permits` (at most `MAX_PERMITS`), for
    /// the loom suite (production's live in the arena: `reset`).
    #[cfg(verisync_loom)]
    pub fn new(permits: u32) -> Self {
        Self {
            wake: Word::new(0),
            total: Word::new(permits),
            available: Word::new(permits),
        }
    }

    /// Its words `[wake, total, available]`, for the loom suite to set up
    /// what a process killed mid-transition leaves.
    #[cfg(verisync_loom)]
    pub fn words(&self) -> [&Word; 3] {
        [&self.wake, &self.total, &self.available]
    }

    /// Resets memory that holds (garbage) counts to `permits`.
    pub fn reset(&self, permits: u32) {
        self.wake.store(0, Relaxed);
        self.total.store(permits, Relaxed);
        self.available.store(permits, Relaxed);
    }
}

/// The state machine over one semaphore's counts and holdings.
pub struct RawProcessSemaphore<'a> {
    counts: &'a Counts,
    holdings: &'a [Holding],
    limit: u32,
    /// `limit` is a bound from the caller's own memory: the repair takes
    /// it, or the shared `T` if larger, as the permits that exist.
    bounded: bool,
}

impl<'a> RawProcessSemaphore<'a> {
    /// The semaphore over `counts` and `holdings` (one per process-table
    /// slot: every caller's slot index must be in range), never holding
    /// more than `limit` (≤ `MAX_PERMITS`) available; `T` says how many
    /// permits exist (an unbounded semaphore).
    pub fn new(counts: &'a Counts, holdings: &'a [Holding], limit: u32) -> Self {
        debug_assert!(limit <= MAX_PERMITS);
        Self {
            counts,
            holdings,
            limit,
            bounded: false,
        }
    }

    /// As [`new`](Self::new) with `bound` as the limit, for a bounded
    /// semaphore: `bound` (the caller's own copy, never the shared one) is
    /// the fewest permits that exist when the state is repaired (module
    /// docs).
    pub fn bounded(counts: &'a Counts, holdings: &'a [Holding], bound: u32) -> Self {
        Self {
            bounded: true,
            ..Self::new(counts, holdings, bound)
        }
    }

    /// Takes the state lock, repairing the state if its holder died or it
    /// is out of bounds; `None` if `wait` ran out.
    fn lock<'l, L: StateLock>(&self, lock: &'l L, wait: Wait) -> Option<Held<'l, L>> {
        let (held, acquired) = lock_state(lock, &self.counts.wake, wait)?;
        let available = self.counts.available.load(Relaxed);
        let total = self.counts.total.load(Relaxed);
        if acquired == Acquired::OwnerDied
            || available > self.limit
            || available > total
            || total > MAX_PERMITS
        {
            self.repair();
        }
        Some(held)
    }

    /// The permits the holdings hold, together (under the lock).
    fn held(&self) -> u64 {
        process_state::total(self.holdings)
    }

    /// Repairs the state if it breaks `A + Σ count = T` (under the lock):
    /// garbage within the bounds that `lock` checks (module docs).
    #[cold]
    fn audit(&self) {
        let available = u64::from(self.counts.available.load(Relaxed));
        let total = u64::from(self.counts.total.load(Relaxed));
        if available + self.held() != total {
            self.repair();
        }
    }

    /// Restores the invariant from the holdings and `T` (a bounded
    /// semaphore: `T`, but at least its bound) (module docs).
    #[cold]
    fn repair(&self) {
        let held = self.held();
        let shared_total = u64::from(self.counts.total.load(Relaxed));
        let total = if self.bounded {
            // Never fewer than the bound (a `T` written low loses nothing
            // for good); more when `release`s added permits while others
            // were held. `A` stays within the bound below, whatever `T`.
            shared_total.max(u64::from(self.limit))
        } else {
            shared_total
        };
        let available = total.saturating_sub(held).min(u64::from(self.limit));
        self.counts.available.store(available as u32, Relaxed);
        let total = (available + held).min(u64::from(MAX_PERMITS));
        self.counts.total.store(total as u32, Relaxed);
    }

    /// Adds `count` to `A` (under the lock), discarding what would pass
    /// `limit` (and taking it from `T`).
    fn make_available(&self, count: u32) {
        let available = u64::from(self.counts.available.load(Relaxed)) + u64::from(count);
        let capped = available.min(u64::from(self.limit));
        if capped < available {
            let surplus = (available - capped) as u32;
            let total = self.counts.total.load(Relaxed);
            self.counts
                .total
                .store(total.saturating_sub(surplus), Relaxed);
        }
        self.counts.available.store(capped as u32, Relaxed);
    }

    /// Bumps `wake` (under the lock); `true` if sleepers must be woken
    /// (after unlocking: [`wake_sleepers`](Self::wake_sleepers)).
    fn bump(&self) -> bool {
        process_state::bump(&self.counts.wake)
    }

    /// Wakes every sleeper (the second half of a bump that found them).
    /// Public so the loom suite can let a process die before it.
    #[cold]
    pub fn wake_sleepers(&self) {
        process_state::wake_sleepers(&self.counts.wake);
    }

    /// Takes `count` permits if `A ≥ count` (under the lock): `true` if it
    /// did. Bumps and reports sleepers through `woke` if it first reclaimed
    /// what an earlier process of its slot left.
    fn take(&self, count: u32, me: u32, woke: &mut bool) -> bool {
        let mine = mine(self.holdings, me);
        let left = mine.claim(me);
        if left != 0 {
            // An earlier process of this slot (dead: slots are reused only
            // then) or garbage: its permits come back first.
            self.make_available(left);
            *woke |= self.bump();
        }
        if self.counts.available.load(Relaxed) < count {
            return false;
        }
        mine.set_count(mine.count().saturating_add(count).min(MAX_PERMITS));
        let available = self.counts.available.load(Relaxed);
        self.counts.available.store(available - count, Relaxed);
        true
    }

    /// Takes `count` permits for process `lock.me()`, waiting as `wait`
    /// says; `false` if it did not (`Try`, or the deadline passed).
    pub fn acquire(&self, count: u32, wait: Wait, lock: &impl StateLock) -> bool {
        let me = lock.me();
        debug_assert!(me != 0 && me & !HOLDER_MASK == 0);
        let mut retried = false;
        // Set once this waiter slept a whole poll without a wake-up: it
        // audits the counts (module docs, "Garbage").
        let mut audit = false;
        loop {
            let mut woke = false;
            let Some(held) = self.lock(lock, wait) else {
                return false;
            };
            if std::mem::take(&mut audit) {
                self.audit();
            }
            if self.take(count, me, &mut woke) {
                drop(held);
                if woke {
                    self.wake_sleepers();
                }
                return true;
            }
            // Too few. A waiter that may sleep announces it while the lock
            // orders that before any later bump (module docs).
            let seen = match wait {
                Wait::Try => 0,
                Wait::Until(_) => process_state::announce_sleeper(&self.counts.wake),
            };
            drop(held);
            if woke {
                self.wake_sleepers();
            }
            match wait {
                Wait::Try => {
                    if retried || !self.reclaim_dead(lock, wait) {
                        return false;
                    }
                    retried = true;
                }
                Wait::Until(deadline) => match self.sleep(seen, deadline, lock) {
                    Wake::Invalid => {
                        self.reclaim_dead(lock, wait);
                    }
                    Wake::TimedOut => return self.acquire_once(count, me, lock),
                    Wake::Recheck => audit = true,
                    Wake::Woken => {}
                },
            }
        }
    }

    /// Sleeps on `wake` unless it changed since `seen`, or a holder (of
    /// permits, or of the state lock) is dead ([`Wake::Invalid`]: the
    /// caller reclaims, and takes the state lock again). The death check runs
    /// as the futex's `still_valid`, so in the model it is atomic with
    /// queuing (a death either shows or wakes this sleeper).
    #[cold]
    fn sleep(&self, seen: u32, deadline: Option<Instant>, lock: &impl StateLock) -> Wake {
        process_state::sleep(&self.counts.wake, seen, deadline, || {
            dead_holdings(self.holdings, lock.me(), lock)
                .next()
                .is_none()
                && !lock.held_by_the_dead()
        })
    }

    /// A timed-out waiter's last look (no wake-up was spent on it: the
    /// futex reports a timeout only for a waiter still queued).
    fn acquire_once(&self, count: u32, me: u32, lock: &impl StateLock) -> bool {
        let mut woke = false;
        let Some(held) = self.lock(lock, Wait::Try) else {
            return false;
        };
        let taken = self.take(count, me, &mut woke);
        drop(held);
        if woke {
            self.wake_sleepers();
        }
        taken
    }

    /// Gives back `count` permits that process `lock.me()` holds (a guard's
    /// drop): at most what its holding still holds (a scribbler or a
    /// mistaken reclaim may have emptied it).
    pub fn give_back(&self, count: u32, lock: &impl StateLock) {
        if self.give_back_without_waking(count, lock) {
            self.wake_sleepers();
        }
    }

    /// The first half of [`give_back`](Self::give_back) for the loom suite:
    /// gives back and bumps, and returns whether sleepers must be woken,
    /// so a test can let the process die before the wake.
    pub fn give_back_without_waking(&self, count: u32, lock: &impl StateLock) -> bool {
        let me = lock.me();
        let held = self
            .lock(lock, Wait::Until(None))
            .expect("a wait without deadline ends holding the lock");
        let mine = mine(self.holdings, me);
        if mine.holder() != me {
            return false;
        }
        let returned = mine.count().min(count);
        mine.set_count(mine.count() - returned);
        self.make_available(returned);
        let woke = self.bump();
        drop(held);
        woke
    }

    /// Keeps `count` permits that process `lock.me()` holds consumed: they
    /// leave its holding and the total (a guard's `forget`).
    pub fn forget(&self, count: u32, lock: &impl StateLock) {
        let me = lock.me();
        let _held = self
            .lock(lock, Wait::Until(None))
            .expect("a wait without deadline ends holding the lock");
        let mine = mine(self.holdings, me);
        if mine.holder() != me {
            return;
        }
        let forgotten = mine.count().min(count);
        let total = self.counts.total.load(Relaxed);
        self.counts
            .total
            .store(total.saturating_sub(forgotten), Relaxed);
        mine.set_count(mine.count() - forgotten);
    }

    /// Adds `count` permits (nobody's): refused if `A` would pass `limit`
    /// or `T` would pass `MAX_PERMITS`, changing nothing.
    pub fn release(&self, count: u32, lock: &impl StateLock) -> Result<(), TooManyReleases> {
        let held = self
            .lock(lock, Wait::Until(None))
            .expect("a wait without deadline ends holding the lock");
        let available = self.counts.available.load(Relaxed);
        let total = self.counts.total.load(Relaxed);
        let fits = |now: u32, most: u32| u64::from(now) + u64::from(count) <= u64::from(most);
        if !fits(available, self.limit) || !fits(total, MAX_PERMITS) {
            return Err(TooManyReleases {
                released: count as usize,
                available: available as usize,
                limit: self.limit as usize,
            });
        }
        self.counts.total.store(total + count, Relaxed);
        self.counts.available.store(available + count, Relaxed);
        let woke = self.bump();
        drop(held);
        if woke {
            self.wake_sleepers();
        }
        Ok(())
    }

    /// The permits available now, after reclaiming dead holders' (a
    /// snapshot, at most `limit`).
    pub fn available(&self, lock: &impl StateLock) -> u32 {
        self.reclaim_dead(lock, Wait::Try);
        self.counts.available.load(Relaxed).min(self.limit)
    }

    /// The permits available now, without looking for dead holders (a
    /// snapshot, at most `limit`).
    pub fn available_now(&self) -> u32 {
        self.counts.available.load(Relaxed).min(self.limit)
    }

    /// Reclaims the permits of every holder that is dead (or garbage);
    /// `true` if any came back. Each reclaim takes the state lock and
    /// checks the holding is still what the scan saw.
    #[cold]
    pub fn reclaim_dead(&self, lock: &impl StateLock, wait: Wait) -> bool {
        let mut any = false;
        for (index, holder, count) in dead_holdings(self.holdings, lock.me(), lock) {
            let Some(held) = self.lock(lock, wait) else {
                return any;
            };
            let mut woke = false;
            if process_state::take_if_unchanged(self.holdings, index, holder, count) {
                self.make_available(count);
                woke = self.bump();
                any = true;
            }
            drop(held);
            if woke {
                self.wake_sleepers();
            }
        }
        any
    }
}
