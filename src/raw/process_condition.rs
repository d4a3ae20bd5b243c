//! The process-shared condition variable: per process, how many of its
//! threads wait and how many notifications it was handed, under a robust
//! state lock; per process, in its own memory, which of its threads wait,
//! oldest first. `notify` hands notifications only to live processes, and
//! a notification handed to a process that died before one of its threads
//! took it passes to a live waiter (found by the waiters, who look at the
//! records before every sleep and every `HOLDER_POLL` while asleep).
//!
//! # The state
//!
//! ```text
//!  state:    wake (u32)   lock (u32)   waiting (u32)   cursor (u32)
//!  waiting:  one record per process-table slot: (holder, its threads waiting, not yet handed a notification)
//!  granted:  one record per process-table slot: (holder, notifications handed to it, not yet taken by a thread)
//!  local:    in each process's own memory: its waiting threads, oldest first, each notified or not
//! ```
//!
//! `wake` is the futex sequence word of `raw/process_state.rs`; the rest
//! is read and written only under the state lock. `lock` names the lock
//! the waiters release (meaningful while `waiting > 0`); `waiting` is
//! `Σ waiting records`; `cursor` is the slot `notify` looks at first.
//! Invariant (under the lock), per process `P`:
//! `waiting[P] + granted[P] = P's local entries not yet notified`.
//! The local list lives in `P`'s own memory (trusted), so each time a
//! thread of `P` takes the state lock it restores `P`'s records from it
//! (`settle_mine`): whatever another process wrote there, `P`'s own
//! counts come back.
//!
//! # Transitions (all under the state lock)
//!
//! | operation | writes |
//! |-----------|--------|
//! | register (a thread of `P`, holding the user's lock) | local: a new entry, last; `waiting[P] += 1`; `waiting += 1`; `lock = L` |
//! | notify `n` | after reaping the dead (always, even with nobody waiting): up to `n` times, round robin over the slots from `cursor`, a live `P` with `waiting[P] > 0`: `waiting[P] -= 1`, `granted[P] += 1`, `waiting -= 1` |
//! | settle (a thread of `P`) | local: the oldest `granted[P]` entries not yet notified become notified; `granted[P] = 0`; `waiting[P]` = the entries not notified |
//! | take (a notified thread) | local: its entry leaves |
//! | time out (a thread not notified) | local: its entry leaves; `waiting[P] -= 1`; `waiting -= 1` |
//! | reap a dead `P` | `waiting -= waiting[P]`, `waiting[P] = 0`; `granted[P]` is handed out again as by notify, then `granted[P] = 0` |
//!
//! Every transition that hands out a notification bumps `wake` and wakes
//! every sleeper after unlocking (each looks at its own process's records:
//! there is no waking one process's threads only).
//!
//! # Who wakes whom
//!
//! A waiter registers while it holds the user's lock `L`, announces itself
//! as a sleeper (reading `wake`) under the state lock, and only then
//! releases `L`. A notifier that changed the data under `L` takes the state
//! lock after that, finds the waiter registered and bumps `wake`: the
//! waiter's futex wait returns at once or is woken. No lost wake-up. A
//! thread returns "notified" only when its entry was notified, and "timed
//! out" only when, at its deadline, under the state lock, it was not (a
//! notification that raced the deadline is taken, not lost): no spurious
//! wake-up, and every notification `notify` counted is taken by exactly one
//! wait — unless the process it went to dies first, and then it passes on.
//!
//! Within a process, notifications go to its threads oldest first. Across
//! processes, `notify` takes turns (round robin from `cursor`), so no
//! process's waiters starve, but the longest-waiting thread overall is not
//! necessarily the first woken (no shared record orders the threads of
//! different processes).
//!
//! # Death
//!
//! - **A waiter's process dies before a notification reaches it**: `notify`
//!   reaps dead processes' records first, so it hands notifications to
//!   processes alive when it looks, and counts only those.
//! - **A process dies holding notifications** (handed to it, not yet taken
//!   by one of its threads: it died just after `notify` looked): the
//!   waiters' `still_valid` (before each sleep and every `HOLDER_POLL`
//!   asleep; in the model, at the death step) finds its record dead; the
//!   waiter reaps it and hands its notifications to live waiters — which
//!   may have started waiting after the `notify` (documented on the type).
//!   Every `notify` reaps first too, waiters or not, so a notify that
//!   finds nobody waiting drops them, as a notify of nobody is: a thread
//!   that starts waiting after it is not handed them.
//! - **A process dies holding the state lock** (mid-transition): the next
//!   locker is told (`OwnerDied`) and repairs: reaps the dead, recounts
//!   `waiting` from the records. A notifier that died between taking a
//!   waiter's count and handing it the notification loses that one
//!   notification (it never returned); the waiter's process restores its
//!   count from its local list when it next looks.
//!
//! # Garbage
//!
//! Shared memory is untrusted. `cursor` is taken modulo the slots; counts
//! saturate; records that do not name their own slot are reaped as a dead
//! process's; a process's own records are restored from its local list
//! each time one of its threads takes the state lock; a waiter that slept
//! a whole `HOLDER_POLL` recounts `waiting` (an audit), and a waiter that
//! finds another lock named recounts before it believes it. What a
//! scribbler can still do, never out of bounds, never a hang past a
//! deadline: lose notifications (a `waiting` written 0 makes a notify of
//! live waiters return 0; untimed waits then wait for the next one), hand
//! out extra ones within a process (its threads take them, as a notify),
//! or name another lock while threads wait (the next waiter panics as if
//! two locks were used). Handing out notifications is bounded by the
//! slots: each pass of the round robin gives every process with waiters
//! its share, so it ends within `SLOTS + 1` passes whatever the counts.
//! Another *live* process's identity written into the state lock's word
//! holds every call until that process next calls the condition or exits
//! (as for the barrier: `raw/process_barrier.rs`).
//!
//! # Memory ordering
//!
//! Everything but `wake` is ordered by the state lock (`Relaxed` inside
//! it); the user's data is ordered by the user's lock, which every waiter
//! takes again before it returns.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::process_lock::{slot_index, Acquired, Wait, HOLDER_MASK};
use super::process_state::{self, dead_holdings, lock_state, mine, Held, StateLock};
use crate::sys::atomic::Ordering::Relaxed;
use crate::sys::futex::{Wake, Word};

pub use super::process_state::Holding;

/// The condition's state words (in shared memory).
#[repr(C)]
pub struct ConditionState {
    wake: Word,
    lock: Word,
    waiting: Word,
    cursor: Word,
}

impl ConditionState {
    /// Its words `[wake, lock, waiting, cursor]`, for the loom suite to cut a transition
    /// short (as a process killed mid-way would).
    #[cfg(verisync_loom)]
    pub fn words(&self) -> [&Word; 4] {
        [&self.wake, &self.lock, &self.waiting, &self.cursor]
    }

    /// A condition nobody waits on, for the loom suite (production's lives
    /// in the arena: `reset_memory`).
    #[cfg(verisync_loom)]
    pub fn new() -> Self {
        Self {
            wake: Word::new(0),
            lock: Word::new(0),
            waiting: Word::new(0),
            cursor: Word::new(0),
        }
    }

    /// Resets memory that holds a (garbage) state to a condition nobody
    /// waits on.
    pub fn reset_memory(&self) {
        self.wake.store(0, Relaxed);
        self.lock.store(0, Relaxed);
        self.waiting.store(0, Relaxed);
        self.cursor.store(0, Relaxed);
    }
}

#[cfg(verisync_loom)]
impl Default for ConditionState {
    fn default() -> Self {
        Self::new()
    }
}

/// One process's waiting threads on one condition, oldest first, in that
/// process's own memory. Read and written only under the condition's
/// state lock (which excludes the process's threads from each other), so
/// its mutex is never contended.
#[derive(Default)]
pub struct LocalWaiters {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    next_token: u64,
    /// (token, notified), oldest first.
    queue: VecDeque<(u64, bool)>,
}

impl Entries {
    fn not_notified(&self) -> u32 {
        let count = self.queue.iter().filter(|(_, notified)| !notified).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }
}

impl LocalWaiters {
    /// No thread waits.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // Never poisoned: nothing panics while it is held.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waiters of another lock are waiting on this condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtherLock;

/// A registered waiter: its entry in the local list, and the wake word's
/// value it sleeps on first.
#[derive(Clone, Copy, Debug)]
#[must_use = "a registered waiter must await its notification (or time out)"]
pub struct Registered {
    token: u64,
    seen: u32,
}

/// The state machine over one condition's state and records, as one
/// process sees it (with that process's local list).
pub struct RawProcessCondition<'a> {
    state: &'a ConditionState,
    waiting: &'a [Holding],
    granted: &'a [Holding],
    local: &'a LocalWaiters,
}

impl<'a> RawProcessCondition<'a> {
    /// The condition over `state`, `waiting` and `granted` (one record each
    /// per process-table slot, the same number: every caller's slot index
    /// must be in range), with this process's `local` list.
    pub fn new(
        state: &'a ConditionState,
        waiting: &'a [Holding],
        granted: &'a [Holding],
        local: &'a LocalWaiters,
    ) -> Self {
        debug_assert_eq!(waiting.len(), granted.len());
        Self {
            state,
            waiting,
            granted,
            local,
        }
    }

    fn total(&self) -> u32 {
        self.state.waiting.load(Relaxed)
    }

    fn add_to_total(&self, added: u32) {
        let total = self.total().saturating_add(added);
        self.state.waiting.store(total, Relaxed);
    }

    fn take_from_total(&self, taken: u32) {
        let total = self.total().saturating_sub(taken);
        self.state.waiting.store(total, Relaxed);
    }

    /// Takes the state lock (without a deadline: a waiter that gave up on
    /// it could not leave the records), repairing the state if its holder
    /// died. The flag: sleepers must be woken after unlocking.
    fn lock<'l, L: StateLock>(&self, lock: &'l L) -> (Held<'l, L>, bool) {
        let (held, acquired) = lock_state(lock, &self.state.wake, Wait::Until(None))
            .expect("a wait without deadline ends holding the lock");
        let woke = acquired == Acquired::OwnerDied && self.repair(lock);
        (held, woke)
    }

    /// Reaps the dead and recounts `waiting` (under the lock; module docs);
    /// `true` if sleepers must be woken.
    #[cold]
    fn repair(&self, lock: &impl StateLock) -> bool {
        let woke = self.reap(lock);
        self.recount();
        woke
    }

    /// Sets `waiting` to `Σ waiting records` (under the lock).
    #[cold]
    fn recount(&self) {
        let total = process_state::total(self.waiting).min(u64::from(u32::MAX));
        self.state.waiting.store(total as u32, Relaxed);
    }

    /// Empties the records of dead processes (under the lock): their
    /// waiters leave `waiting`, their notifications are handed out again.
    /// `true` if sleepers must be woken after unlocking.
    fn reap(&self, lock: &impl StateLock) -> bool {
        let me = lock.me();
        for (index, holder, count) in dead_holdings(self.waiting, me, lock) {
            if process_state::take_if_unchanged(self.waiting, index, holder, count) {
                self.take_from_total(count);
            }
        }
        let mut orphaned = 0u64;
        for (index, holder, count) in dead_holdings(self.granted, me, lock) {
            if process_state::take_if_unchanged(self.granted, index, holder, count) {
                orphaned += u64::from(count);
            }
        }
        self.pass_on(orphaned)
    }

    /// Hands out `orphaned` notifications of dead processes again (under
    /// the lock); `true` if sleepers must be woken after unlocking.
    fn pass_on(&self, orphaned: u64) -> bool {
        orphaned > 0 && self.hand_out(orphaned) > 0 && process_state::bump(&self.state.wake)
    }

    /// Hands up to `wanted` notifications to the waiting records, round
    /// robin from `cursor` (under the lock, after `reap`: the records with
    /// waiters are live processes'); how many it handed out. Each pass
    /// gives every record with waiters its share of what is left, so it
    /// ends within `SLOTS + 1` passes (a record that cannot take its share
    /// is emptied, and leaves the next pass).
    fn hand_out(&self, wanted: u64) -> u64 {
        let slots = self.waiting.len();
        let mut given = 0u64;
        while given < wanted && self.total() > 0 {
            let takers = (0..slots).filter(|&index| self.takes(index)).count() as u64;
            if takers == 0 {
                break;
            }
            let share = (wanted - given).div_ceil(takers);
            let start = self.state.cursor.load(Relaxed) as usize % slots;
            for step in 0..slots {
                let index = (start + step) % slots;
                if given == wanted {
                    break;
                }
                if !self.takes(index) {
                    continue;
                }
                let record = &self.waiting[index];
                let count = record.count();
                let grant = u64::from(count).min(share).min(wanted - given) as u32;
                record.set_count(count - grant);
                let granted = &self.granted[index];
                // Another holder in the record: a dead predecessor's
                // (reaped: empty) or garbage, dropped.
                granted.claim(record.holder());
                granted.set_count(granted.count().saturating_add(grant));
                self.take_from_total(grant);
                given += u64::from(grant);
                self.state.cursor.store((index + 1) as u32, Relaxed);
            }
        }
        given
    }

    /// Whether record `index` has waiters and names its own slot.
    fn takes(&self, index: usize) -> bool {
        let record = &self.waiting[index];
        let holder = record.holder();
        record.count() > 0 && holder & !HOLDER_MASK == 0 && slot_index(holder) == Some(index)
    }

    /// Brings process `me`'s records in line with its local list (under
    /// the lock): takes over what an earlier process of the slot (or
    /// garbage) left, marks the oldest entries notified for the
    /// notifications handed to it, and sets its waiting count to the
    /// entries left. `true` if sleepers must be woken after unlocking.
    fn settle_mine(&self, me: u32, entries: &mut Entries) -> bool {
        let waiting = mine(self.waiting, me);
        let granted = mine(self.granted, me);
        self.take_from_total(waiting.claim(me));
        // An earlier process of this slot died holding these: pass them on
        // (they may come back to us: so before we look at ours, or a
        // waiter here would sleep past the bump).
        let orphaned = granted.claim(me);
        let woke = self.pass_on(u64::from(orphaned));
        let mut handed = granted.count();
        granted.set_count(0);
        for (_, notified) in entries.queue.iter_mut().filter(|(_, notified)| !notified) {
            if handed == 0 {
                break;
            }
            *notified = true;
            handed -= 1;
        }
        // Left over (`handed > 0`): garbage, dropped (a notification is
        // only handed to a process for a waiter it has).
        self.sync_mine(me, entries);
        woke
    }

    /// Sets process `me`'s waiting count to its entries not notified, and
    /// `waiting` to match (under the lock).
    fn sync_mine(&self, me: u32, entries: &Entries) {
        let waiting = mine(self.waiting, me);
        let (was, is) = (waiting.count(), entries.not_notified());
        if was != is {
            waiting.set_count(is);
            self.take_from_total(was.saturating_sub(is));
            self.add_to_total(is.saturating_sub(was));
        }
    }

    /// Whether every process with waiters or notifications is alive and
    /// the state lock is not a dead process's: a sleeper's `still_valid`.
    fn all_alive(&self, lock: &impl StateLock) -> bool {
        let me = lock.me();
        dead_holdings(self.waiting, me, lock).next().is_none()
            && dead_holdings(self.granted, me, lock).next().is_none()
            && !lock.held_by_the_dead()
    }

    /// Registers the calling thread of process `lock.me()` as a waiter of
    /// the user's lock `lock_id` (non-zero; the caller holds that lock and
    /// releases it only after this returns).
    ///
    /// # Errors
    ///
    /// [`OtherLock`] if waiters of another lock are waiting (nothing
    /// changed for this thread).
    pub fn register(&self, lock_id: u32, lock: &impl StateLock) -> Result<Registered, OtherLock> {
        let me = lock.me();
        let (held, mut woke) = self.lock(lock);
        let mut entries = self.local.entries();
        woke |= self.settle_mine(me, &mut entries);
        let named = self.state.lock.load(Relaxed);
        if self.total() > 0 && named != lock_id {
            // Another lock's waiters, or garbage: recount before believing it.
            woke |= self.repair(lock);
        }
        let result = if self.total() > 0 && self.state.lock.load(Relaxed) != lock_id {
            Err(OtherLock)
        } else {
            self.state.lock.store(lock_id, Relaxed);
            let token = entries.next_token;
            entries.next_token += 1;
            entries.queue.push_back((token, false));
            self.sync_mine(me, &entries);
            let seen = process_state::announce_sleeper(&self.state.wake);
            Ok(Registered { token, seen })
        };
        drop(entries);
        drop(held);
        if woke {
            process_state::wake_sleepers(&self.state.wake);
        }
        result
    }

    /// Waits, as the thread `registered` (of process `lock.me()`), until it
    /// is notified (`true`) or `deadline` passes first (`false`). The
    /// caller has released the user's lock, and takes it again after.
    pub fn await_notification(
        &self,
        registered: Registered,
        deadline: Option<Instant>,
        lock: &impl StateLock,
    ) -> bool {
        let me = lock.me();
        let mut seen = registered.seen;
        loop {
            let wake =
                process_state::sleep(&self.state.wake, seen, deadline, || self.all_alive(lock));
            let (held, mut woke) = self.lock(lock);
            match wake {
                Wake::Invalid => woke |= self.reap(lock),
                // Slept a whole poll: an audit too (module docs, "Garbage").
                Wake::Recheck => woke |= self.repair(lock),
                Wake::Woken | Wake::TimedOut => {}
            }
            let mut entries = self.local.entries();
            woke |= self.settle_mine(me, &mut entries);
            let position = entries
                .queue
                .iter()
                .position(|&(token, _)| token == registered.token)
                .expect("a waiter's entry stays in its process's list until it leaves");
            let notified = entries.queue[position].1;
            let outcome = if notified || wake == Wake::TimedOut {
                entries.queue.remove(position);
                self.sync_mine(me, &entries);
                Some(notified)
            } else {
                seen = process_state::announce_sleeper(&self.state.wake);
                None
            };
            drop(entries);
            drop(held);
            if woke {
                process_state::wake_sleepers(&self.state.wake);
            }
            if let Some(notified) = outcome {
                return notified;
            }
        }
    }

    /// Hands up to `count` notifications to waiters of live processes;
    /// how many it handed out (each is taken by exactly one wait, passed
    /// on if its process dies first).
    pub fn notify(&self, count: u64, lock: &impl StateLock) -> u64 {
        let (held, mut woke) = self.lock(lock);
        // Always, even with nobody waiting: a dead process's notifications
        // pass to live waiters, or are dropped if there are none, rather
        // than kept for a thread that starts waiting after this notify.
        woke |= self.reap(lock);
        let handed = self.hand_out(count);
        if handed > 0 {
            woke |= process_state::bump(&self.state.wake);
        }
        drop(held);
        if woke {
            process_state::wake_sleepers(&self.state.wake);
        }
        handed
    }

    /// For the loom suite: whether process `lock.me()`'s records hold a
    /// notification handed to it and not yet taken (read under the lock).
    #[cfg(verisync_loom)]
    pub fn holds_a_notification(&self, lock: &impl StateLock) -> bool {
        let (held, woke) = self.lock(lock);
        let holding = mine(self.granted, lock.me());
        let holds = holding.holder() == lock.me() && holding.count() > 0;
        drop(held);
        if woke {
            process_state::wake_sleepers(&self.state.wake);
        }
        holds
    }
}
