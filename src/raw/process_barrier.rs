//! The process-shared barrier: a phase, a count and a trip counter in
//! shared memory under a robust state lock, one record per process of how
//! many of its threads are inside `wait`, and a futex word to sleep on. A
//! process that dies inside `wait` breaks the barrier for everyone: its
//! record names it, and the waiters, who look at the records before every
//! sleep (and at least every `HOLDER_POLL` while asleep), find it dead.
//!
//! # The state
//!
//! ```text
//!  state:   wake (u32)   phase (u32)   count (u32)   trips (u32)
//!  inside:  one record per process-table slot (SLOTS of them):
//!             holder (u32: the process's identity)   count (u32: its threads inside `wait`)
//! ```
//!
//! `wake` is the futex sequence word of `raw/process_state.rs`; the rest
//! is read and written only under the state lock. Invariant (under the
//! lock): `count = Σ inside.count ≤ parties`, and `count < parties` while
//! filling. `parties` is never read from shared memory: each process has
//! it from its handle.
//!
//! | phase | meaning | next |
//! |-------|---------|------|
//! | `FILLING` (0) | `count` parties wait for the rest | `DRAINING` when `count` reaches `parties`; `BROKEN` on a timeout, `abort`, or a party's death; `RESETTING` on `reset` with parties inside |
//! | `DRAINING` (1) | the round tripped; its parties are leaving | `FILLING` when the last has left (or died); `BROKEN` on `abort` or a timeout of an arrival waiting for the drain; unchanged by `reset` |
//! | `RESETTING` (2) | `reset` with parties inside; they leave with `BrokenBarrier` | `FILLING` when the last has left (or died); `BROKEN` on `abort` |
//! | `BROKEN` (3) | every `wait` fails at once | `RESETTING`/`FILLING` on `reset` |
//!
//! This is the thread `Barrier`'s machine (`src/barrier.rs`): a waiter
//! notes `trips` when it arrives and passes exactly when it has moved on by
//! the time it looks again, so a tripped round completes for all its
//! parties even if `reset` or `abort` follows; an arrival while the barrier
//! drains or resets waits for that to finish.
//!
//! # Transitions (all under the state lock)
//!
//! | operation | writes, in order |
//! |-----------|------------------|
//! | arrive | my record `+= 1`; `count += 1`; if `count = parties`: `phase = DRAINING`, `trips += 1` |
//! | leave | my record `-= 1`; `count -= 1`; if `count = 0` and draining or resetting: `phase = FILLING` |
//! | a dead process's `c` | its record `= 0`; `count -= c`; filling: `phase = BROKEN`; then as leave |
//! | time out (still filling, my round) | `phase = BROKEN` |
//! | `abort` | `phase = BROKEN` |
//! | `reset` | `phase = RESETTING` if `count > 0` (draining: unchanged), else `FILLING` |
//!
//! Every transition bumps `wake` and wakes the sleepers after unlocking.
//!
//! # Death
//!
//! - **A party dies while waiting** (filling): its record still counts it;
//!   the other waiters' `still_valid` (before they sleep, and every
//!   `HOLDER_POLL` while asleep; in the model, at the death step) finds the
//!   record's process dead, they take the lock, empty the record and break
//!   the barrier: they get `BrokenBarrier` within about 10 ms.
//! - **A party of a tripped round dies before leaving**: its record is
//!   emptied as a departure; the round had tripped, so nothing breaks, and
//!   the drain completes without it.
//! - **A process dies holding the state lock** (mid-transition): the next
//!   locker is told (`OwnerDied`) and repairs: `count = min(Σ records,
//!   parties)`, `phase = BROKEN` (whatever it was doing, it was inside a
//!   barrier call). Waiters see it through the lock's `held_by_the_dead`,
//!   as they see dead records.
//! - **A party that dies before it arrives** is not detectable: nothing
//!   records the parties that *will* arrive, so the others wait for it as
//!   for a slow party. Only the timed forms end then (and break the
//!   barrier, as for any timeout).
//!
//! # Garbage
//!
//! Shared memory is untrusted. Each time the state lock is taken, a phase
//! out of range, `count > parties`, `count ≥ parties` while filling, or a
//! draining or resetting barrier with nobody inside is repaired as above
//! (broken); each time a waiter has slept a whole `HOLDER_POLL`, it also
//! checks `count = Σ records` (an audit) and repairs if not. Records are
//! only taken from processes found dead, or not naming their slot, and all
//! arithmetic saturates. What a scribbler can still do, never out of
//! bounds, never a hang past a deadline: break the barrier, make a round
//! trip early or late (a `count` or `trips` written within bounds), or keep
//! an untimed `wait` waiting (a `count` written low keeps a round from
//! tripping, as a party that never arrives would). One write can hold the
//! timed forms past their deadline too: another *live* process's identity
//! in the state lock's word makes it look held by that process (the lock
//! cannot tell), and every call takes the state lock without a deadline
//! (a timed party that gave up on it would not be counted, and the
//! others would wait for it: the loom suite found that race), so callers
//! wait until that process next calls the barrier (its own identity in
//! the word is recovered as garbage) or exits.
//!
//! # Memory ordering
//!
//! Everything but `wake` is ordered by the state lock (`Relaxed` inside
//! it): what a party wrote before `wait` is visible to every party after
//! its `wait` returns, since each takes the lock after the last arrival
//! released it.

use std::time::Instant;

use super::process_lock::{Acquired, Wait};
use super::process_state::{self, dead_holdings, lock_state, mine, Held, StateLock};
use crate::sys::atomic::Ordering::Relaxed;
use crate::sys::futex::{Wake, Word};

pub use super::process_state::Holding;

/// Parties wait for the rest.
const FILLING: u32 = 0;
/// The round tripped; its parties are leaving.
const DRAINING: u32 = 1;
/// `reset` with parties inside; they are leaving with `BrokenBarrier`.
const RESETTING: u32 = 2;
/// Every `wait` fails at once until `reset`.
const BROKEN: u32 = 3;

/// The barrier's state words (in shared memory).
#[repr(C)]
pub struct BarrierState {
    wake: Word,
    phase: Word,
    count: Word,
    trips: Word,
}

impl BarrierState {
    /// Its words `[wake, phase, count, trips]`, for the loom suite to cut a transition
    /// short (as a process killed mid-way would).
    #[cfg(verisync_loom)]
    pub fn words(&self) -> [&Word; 4] {
        [&self.wake, &self.phase, &self.count, &self.trips]
    }

    /// An empty barrier's state, for the loom suite (production's lives in
    /// the arena: `reset_memory`).
    #[cfg(verisync_loom)]
    pub fn new() -> Self {
        Self {
            wake: Word::new(0),
            phase: Word::new(FILLING),
            count: Word::new(0),
            trips: Word::new(0),
        }
    }

    /// Resets memory that holds a (garbage) state to an empty barrier.
    pub fn reset_memory(&self) {
        self.wake.store(0, Relaxed);
        self.phase.store(FILLING, Relaxed);
        self.count.store(0, Relaxed);
        self.trips.store(0, Relaxed);
    }
}

#[cfg(verisync_loom)]
impl Default for BarrierState {
    fn default() -> Self {
        Self::new()
    }
}

/// The barrier is broken (the safe layer's `BrokenBarrier`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broken;

/// The state machine over one barrier's state and records.
pub struct RawProcessBarrier<'a> {
    state: &'a BarrierState,
    inside: &'a [Holding],
    parties: u32,
}

impl<'a> RawProcessBarrier<'a> {
    /// The barrier over `state` and `inside` (one record per process-table
    /// slot: every caller's slot index must be in range) for `parties`
    /// (at least 1; from the caller's own memory).
    pub fn new(state: &'a BarrierState, inside: &'a [Holding], parties: u32) -> Self {
        debug_assert!(parties > 0);
        Self {
            state,
            inside,
            parties,
        }
    }

    fn phase(&self) -> u32 {
        self.state.phase.load(Relaxed)
    }

    fn count(&self) -> u32 {
        self.state.count.load(Relaxed)
    }

    /// Takes the state lock, repairing the state if its holder died or it
    /// breaks the bounds (module docs, "Garbage"); `None` if `wait` ran out.
    /// The flag: sleepers must be woken after unlocking (it repaired).
    fn lock<'l, L: StateLock>(&self, lock: &'l L, wait: Wait) -> Option<(Held<'l, L>, bool)> {
        let (held, acquired) = lock_state(lock, &self.state.wake, wait)?;
        let (phase, count) = (self.phase(), self.count());
        let out_of_bounds = phase > BROKEN
            || count > self.parties
            || (phase == FILLING && count >= self.parties)
            || (matches!(phase, DRAINING | RESETTING) && count == 0);
        let woke = (acquired == Acquired::OwnerDied || out_of_bounds) && self.repair();
        Some((held, woke))
    }

    /// Takes the state lock without a deadline.
    fn lock_always<'l, L: StateLock>(&self, lock: &'l L) -> (Held<'l, L>, bool) {
        self.lock(lock, Wait::Until(None))
            .expect("a wait without deadline ends holding the lock")
    }

    /// Restores the invariant from the records and breaks the barrier
    /// (under the lock; module docs); `true` if sleepers must be woken.
    #[cold]
    fn repair(&self) -> bool {
        let inside = process_state::total(self.inside).min(u64::from(self.parties));
        self.state.count.store(inside as u32, Relaxed);
        self.state.phase.store(BROKEN, Relaxed);
        process_state::bump(&self.state.wake)
    }

    /// Repairs if `count ≠ Σ records` (under the lock): garbage within the
    /// bounds `lock` checks; `true` if sleepers must be woken.
    #[cold]
    fn audit(&self) -> bool {
        process_state::total(self.inside) != u64::from(self.count()) && self.repair()
    }

    /// `departed` parties left `wait` (under the lock), `died` if they
    /// died in it; `true` if the state changed in a way waiters must see.
    fn depart(&self, departed: u32, died: bool) -> bool {
        let count = self.count().saturating_sub(departed);
        self.state.count.store(count, Relaxed);
        let phase = self.phase();
        if died && phase == FILLING {
            self.state.phase.store(BROKEN, Relaxed);
            return true;
        }
        if count == 0 && matches!(phase, DRAINING | RESETTING) {
            self.state.phase.store(FILLING, Relaxed);
            return true;
        }
        false
    }

    /// Empties the records of dead processes (under the lock), each a
    /// departure by death; bumps `wake` if anything changed. `true` if
    /// sleepers must be woken after unlocking.
    fn reap(&self, lock: &impl StateLock) -> bool {
        let mut changed = false;
        for (index, holder, count) in dead_holdings(self.inside, lock.me(), lock) {
            if process_state::take_if_unchanged(self.inside, index, holder, count) {
                self.depart(count, true);
                changed = true;
            }
        }
        changed && process_state::bump(&self.state.wake)
    }

    /// Whether every process with parties inside is alive and the state
    /// lock is not a dead process's: a sleeper's `still_valid`.
    fn all_alive(&self, lock: &impl StateLock) -> bool {
        dead_holdings(self.inside, lock.me(), lock).next().is_none() && !lock.held_by_the_dead()
    }

    /// Unlocks `held`, wakes sleepers if `woke`, and sleeps on `wake`
    /// (announced under `held`) until it changes, `deadline`, or a death.
    fn sleep<L: StateLock>(
        &self,
        held: Held<'_, L>,
        woke: bool,
        deadline: Option<Instant>,
        lock: &L,
    ) -> Wake {
        let seen = process_state::announce_sleeper(&self.state.wake);
        drop(held);
        if woke {
            process_state::wake_sleepers(&self.state.wake);
        }
        process_state::sleep(&self.state.wake, seen, deadline, || self.all_alive(lock))
    }

    /// Waits for the round as process `lock.me()` until `deadline`
    /// (`None`: forever): `Ok(true)` for the round's leader (the last to
    /// arrive), `Ok(false)` for the others of a round that tripped.
    ///
    /// # Errors
    ///
    /// [`Broken`] if the barrier was or became broken (or was reset)
    /// before this party's round tripped.
    pub fn wait(&self, deadline: Option<Instant>, lock: &impl StateLock) -> Result<bool, Broken> {
        let me = lock.me();
        // The state lock without a deadline, as the thread barrier takes its
        // mutex: a timed party that gave up on the lock would not be
        // counted, and the others would wait for it (module docs).
        let (mut held, repaired) = self.lock_always(lock);
        let mut woke = self.reap(lock) | repaired;
        // Let the previous round finish leaving.
        while matches!(self.phase(), DRAINING | RESETTING) {
            let wake = self.sleep(held, woke, deadline, lock);
            let repaired;
            (held, repaired) = self.lock_always(lock);
            woke = self.reap(lock) | repaired;
            if wake == Wake::TimedOut && matches!(self.phase(), DRAINING | RESETTING) {
                self.state.phase.store(BROKEN, Relaxed);
                woke |= process_state::bump(&self.state.wake);
            }
        }
        if self.phase() == BROKEN {
            drop(held);
            if woke {
                process_state::wake_sleepers(&self.state.wake);
            }
            return Err(Broken);
        }
        let (my_round, tripped) = self.arrive(me, &mut woke);
        let mine = mine(self.inside, me);
        let result = if tripped {
            Ok(true)
        } else {
            let mut audit = false;
            while self.phase() == FILLING {
                let wake = self.sleep(held, woke, deadline, lock);
                let repaired;
                (held, repaired) = self.lock_always(lock);
                woke = repaired;
                if std::mem::take(&mut audit) {
                    woke |= self.audit();
                }
                woke |= self.reap(lock);
                match wake {
                    Wake::TimedOut => {
                        // Still filling means our round has not tripped: we
                        // are counted in it, so it cannot have drained and
                        // reopened without us.
                        if self.phase() == FILLING {
                            self.state.phase.store(BROKEN, Relaxed);
                            woke |= process_state::bump(&self.state.wake);
                        }
                        break;
                    }
                    Wake::Recheck => audit = true,
                    Wake::Woken | Wake::Invalid => {}
                }
            }
            // Our round tripped (even if `reset` or `abort` came after the
            // trip, before we got the lock back): we pass.
            if self.state.trips.load(Relaxed) != my_round {
                Ok(false)
            } else {
                Err(Broken)
            }
        };
        // Leave.
        if mine.holder() == me {
            mine.set_count(mine.count().saturating_sub(1));
        }
        if self.depart(1, false) {
            woke |= process_state::bump(&self.state.wake);
        }
        drop(held);
        if woke {
            process_state::wake_sleepers(&self.state.wake);
        }
        result
    }

    /// Counts process `me` in (under the lock, filling): its round's
    /// `trips`, and whether its arrival tripped the round. Sets `woke` if
    /// sleepers must be woken after unlocking.
    fn arrive(&self, me: u32, woke: &mut bool) -> (u32, bool) {
        let mine = mine(self.inside, me);
        let left = mine.claim(me);
        if left != 0 {
            // Garbage (a dead predecessor's record was reaped before).
            *woke |= self.depart(left, true) && process_state::bump(&self.state.wake);
        }
        mine.set_count(mine.count().saturating_add(1));
        let count = self.count().saturating_add(1);
        self.state.count.store(count, Relaxed);
        let my_round = self.state.trips.load(Relaxed);
        let tripped = count >= self.parties;
        if tripped {
            self.state.phase.store(DRAINING, Relaxed);
            self.state.trips.store(my_round.wrapping_add(1), Relaxed);
            *woke |= process_state::bump(&self.state.wake);
        }
        (my_round, tripped)
    }

    /// For the loom suite: process `lock.me()` arrives as `wait` does,
    /// and returns without waiting or leaving — the state a party asleep in
    /// `wait` leaves when it is killed. `false` if it could not arrive now
    /// (draining, resetting or broken).
    #[cfg(verisync_loom)]
    pub fn arrive_for_the_model(&self, lock: &impl StateLock) -> bool {
        self.with_state(lock, |barrier| {
            if barrier.phase() != FILLING {
                return (false, false);
            }
            let mut woke = false;
            barrier.arrive(lock.me(), &mut woke);
            (true, woke)
        })
    }

    /// Runs `change` under the lock after reaping the dead, and wakes the
    /// sleepers if anything changed; returns what `change` returned.
    fn with_state<R>(&self, lock: &impl StateLock, change: impl FnOnce(&Self) -> (R, bool)) -> R {
        let (held, repaired) = self.lock_always(lock);
        let mut woke = self.reap(lock) | repaired;
        let (result, changed) = change(self);
        if changed {
            woke |= process_state::bump(&self.state.wake);
        }
        drop(held);
        if woke {
            process_state::wake_sleepers(&self.state.wake);
        }
        result
    }

    /// Breaks the barrier: every waiting and later `wait` fails until
    /// `reset` (the parties of a round that tripped still pass).
    pub fn abort(&self, lock: &impl StateLock) {
        self.with_state(lock, |barrier| {
            barrier.state.phase.store(BROKEN, Relaxed);
            ((), true)
        });
    }

    /// Returns the barrier to its empty, unbroken state (module docs).
    pub fn reset(&self, lock: &impl StateLock) {
        self.with_state(lock, |barrier| {
            let next = match barrier.phase() {
                DRAINING => DRAINING,
                _ if barrier.count() > 0 => RESETTING,
                _ => FILLING,
            };
            barrier.state.phase.store(next, Relaxed);
            ((), true)
        });
    }

    /// Whether it is broken (after looking for dead parties).
    pub fn is_broken(&self, lock: &impl StateLock) -> bool {
        self.with_state(lock, |barrier| (barrier.phase() == BROKEN, false))
    }

    /// How many parties wait for the current round (0 unless filling),
    /// after looking for dead parties.
    pub fn n_waiting(&self, lock: &impl StateLock) -> u32 {
        self.with_state(lock, |barrier| {
            let waiting = if barrier.phase() == FILLING {
                barrier.count()
            } else {
                0
            };
            (waiting, false)
        })
    }
}
