//! The process-shared joinable queue's state machine: a ring of bytes in
//! shared memory holding postcard-encoded items, its counts, one holding
//! of taken tasks per process, and three futex words to sleep on. Every
//! change happens under a robust state lock (`raw/process_lock.rs`, through
//! [`StateLock`]) and is committed through a redo journal, so a process
//! killed at any instruction leaves a state the next locker completes or
//! ignores, never a half-written item that a getter could receive.
//!
//! # Layout (`QueueState`, then the holdings, then the ring)
//!
//! ```text
//!  getters putters joiners        futex words: sequence (bits 0..=30) | SLEEPERS (bit 31)
//!  live:    head used items unfinished lost shut
//!  journal                        0: nothing pending; 1: `shadow` holds a commit
//!  shadow:  head used items unfinished lost shut  holding (slot + 1, holder, count)
//!  max_items                      the item bound (checked against the handle on open)
//!  holdings: one per process-table slot: holder (identity), count (tasks taken, not done)
//!  ring:     `capacity` bytes of records: length (u32 LE) | postcard bytes, wrapping
//! ```
//!
//! - **head** (`< capacity`): where the oldest record starts. **used**
//!   (`≤ capacity`): bytes of committed records from `head` on, wrapping.
//!   **items**: how many records (`items ≤ used / 4`, and `items == 0`
//!   exactly when `used == 0`).
//! - **unfinished**: tasks put and not yet marked done (the thread queue's
//!   `put - done`). **lost**: tasks that can never be marked done: taken
//!   by a process that exited or died before they were marked, or
//!   discarded with garbage found in the ring; a `task_done` that finds no
//!   held task marks one of these instead (below). `join` reports it.
//! - **shut**: `shutdown` was called.
//! - **holding** of slot `s`: the tasks the process of slot `s` (named by
//!   its identity, as in `raw/process_semaphore.rs`) took with `get` and has
//!   not marked done. A holding whose process is dead is *lost*: its count
//!   (at most `unfinished`) moves from `unfinished` to `lost`.
//!
//! # Transitions (each under the state lock, committed as below)
//!
//! | operation | needs | new state |
//! |-----------|-------|-----------|
//! | put (record of `r = 4 + len` bytes) | open, `items < max_items`, `used + r ≤ capacity` | record written at `head + used`; then `used += r`, `items += 1`, `unfinished += 1` |
//! | get | `items > 0` | record copied out; then `head += r`, `used -= r`, `items -= 1`, my holding `+= 1` |
//! | task_done of a held task | `unfinished > 0`, the holding chosen below has a task | `unfinished -= 1`, that holding `-= 1` |
//! | task_done of a lost task | no holding has a task but live ones, `lost > 0` | `lost -= 1` |
//! | reclaim a dead holding of `c` | its holder is dead | `k = min(c, unfinished)`: `unfinished -= k`, `lost += k`, holding `= 0` |
//! | shutdown | | `shut = 1` |
//! | shutdown_now | | `shut = 1`, every record copied out, ring empty, `unfinished -= min(n, unfinished)` |
//!
//! A process that takes a holding for its slot first reclaims what an
//! earlier process of that slot left there (slots are reused only after
//! their process died), in the same commit.
//!
//! # Whose task `task_done` marks
//!
//! Any process may mark a task done, also one another process took, so
//! the caller's own holding may be empty. Without garbage the counts keep
//! `puts = done + lost + unfinished` and `unfinished = items + Σ holdings`
//! (each task queued, held, done or lost), and `task_done` keeps both by
//! marking, in this order:
//!
//! 1. a task of the caller's own holding;
//! 2. else one of a holding whose process has ended (or garbage): the
//!    caller finishes it for the process that took it, which can no
//!    longer; had a reclaim come first, that task would be lost, so
//! 3. else one already counted lost turns done (`lost -= 1`): the state
//!    is the same whether or not the reclaim came before the `task_done`;
//! 4. else one of a live process's holding (which may then find its own
//!    empty, and fall to the rules above);
//! 5. else none: refused. A task still queued is never marked done.
//!
//! The counts say how many tasks each process holds, not which: when
//! processes mark tasks done for others, the rule above may charge the
//! wrong holder. Two cases (review 12), both keeping the totals exact:
//! a task marked done twice (once by its taker, once by another process)
//! takes a task of a third, live process by rule 4, and that process's own
//! `task_done` is then refused; and a process marking done for a live
//! worker while another worker that died still holds a task charges the
//! dead one (rule 2), so the live worker still counts as holding a task
//! and `join` waits until it exits (then reports one lost). Mark each task
//! done once, in the process that took it, and neither happens.
//!
//! So `lost`, which `join` reports once `unfinished` is 0, is the number of
//! tasks whose processes ended holding them, plus those discarded as
//! garbage, minus the `task_done` calls that found no holding with a task
//! (each marks one of them done). A reclaim never moves a queued task.
//!
//! **The write of a put** goes to bytes outside the committed records
//! (`head + used` on), which nobody reads; only the commit makes them an
//! item. That is the reservation: the bytes past the committed tail,
//! owned by whoever holds the state lock. A producer killed before its
//! commit leaves bytes nobody will read, overwritten by the next put: its
//! half-written item is never delivered.
//!
//! # The commit: a redo journal
//!
//! A transition changes several words. It writes the new values into
//! `shadow` (and the holding it changes), then `journal = 1`, then the live
//! words, then `journal = 0`. Whoever takes the state lock next and finds
//! `journal = 1` (the committer died, or garbage) re-applies `shadow` (if
//! it passes the checks below; otherwise the state is reset). So a death
//! before `journal = 1` leaves the old state whole, and a death after it
//! the new state, once redone: every transition is all or nothing.
//!
//! # Waiting, and who wakes whom
//!
//! As `raw/process_semaphore.rs`: a waiter sets `SLEEPERS` on its word and
//! reads it *under the state lock*, unlocks, and sleeps on the value it
//! read. Every transition that may let a waiter on a word proceed bumps
//! that word under the lock if `SLEEPERS` is set (a new sequence number,
//! `SLEEPERS` cleared) and then wakes every sleeper on it after
//! unlocking: a put bumps `getters`, a get `putters`, a task count
//! reaching 0 `joiners`, a shutdown all three (`shutdown` only the first
//! two, as the thread queue). A bump after the waiter's unlock changes the
//! word, so its futex wait returns at once or is woken: no lost wake-up.
//! A word without `SLEEPERS` is left alone (a load, no store, no wake):
//! every waiter since the last bump would have set it, and a waiter that
//! announces later does so under the lock, after this transition, and
//! sees its state. (Every write of the word is under the lock, so the bump
//! is a load and a store, not a read-modify-write.) A process killed
//! between a bump and its wake wakes nobody, and one killed mid-transition
//! may owe wake-ups too: so the next locker, told by the state lock that
//! its holder died, bumps all three words and wakes every sleeper after
//! unlocking (they look again). Until a process takes the lock, the
//! sleepers' waits end within `HOLDER_POLL` (the model: at the death step),
//! and they take it.
//!
//! Before it sleeps, a waiter checks (as the futex's `still_valid`, so in
//! the model atomically with queuing) that the state lock is not held by a
//! dead process, and a joiner also that no holding belongs to a dead
//! process: either makes it take the lock instead (repairing it) or reclaim
//! the holding, instead of sleeping.
//!
//! # Garbage
//!
//! Shared memory is untrusted. Every lock checks the live words: `head <
//! capacity`, `used ≤ capacity`, `items ≤ used / 4`, `items == 0` exactly
//! when `used == 0`, and a journal entry is checked the same way (and its
//! holding's slot in range) before it is redone. A get checks the record's
//! length against `used`. A state that fails is reset: the ring emptied,
//! its `items` (at most `unfinished`) counted lost. Lengths are read from
//! the ring only after they are checked, copies go through [`RingBytes`],
//! which checks its own bounds, and nothing is allocated here beyond
//! `capacity`, which comes from the caller's own memory. The capacity and
//! the item bound are the caller's (`RawQueue::new`), never read from the
//! shared state.

use std::time::Instant;

use super::process_lock::{slot_index, Acquired, StateLock, Wait, HOLDER_MASK};
pub use super::process_state::Holding;
use crate::sys::atomic::Ordering::Relaxed;
use crate::sys::futex::{self, Wake, Word};

/// Bytes before each record's postcard bytes: its length (`u32`, LE).
pub const RECORD_HEADER: u32 = 4;
/// In a futex word: someone may sleep on it.
const SLEEPERS: u32 = 1 << 31;
/// In a futex word: the sequence number.
const SEQUENCE: u32 = SLEEPERS - 1;
/// "Every waiter" for `futex::wake` (the kernel takes an `int`).
const EVERY_WAITER: u32 = i32::MAX as u32;
/// The number of live (and shadow) words.
const FIELDS: usize = 6;

/// The queue's words in shared memory (see the module docs).
#[repr(C)]
pub struct QueueState {
    getters: Word,
    putters: Word,
    joiners: Word,
    live: [Word; FIELDS],
    journal: Word,
    shadow: [Word; FIELDS],
    /// The journal's holding: slot index + 1 (0: none), holder, count.
    shadow_holding: [Word; 3],
    max_items: Word,
}

impl QueueState {
    /// An empty, open queue's state, for the loom suite.
    #[cfg(verisync_loom)]
    pub fn new(max_items: u32) -> Self {
        Self {
            getters: Word::new(0),
            putters: Word::new(0),
            joiners: Word::new(0),
            live: std::array::from_fn(|_| Word::new(0)),
            journal: Word::new(0),
            shadow: std::array::from_fn(|_| Word::new(0)),
            shadow_holding: std::array::from_fn(|_| Word::new(0)),
            max_items: Word::new(max_items),
        }
    }

    /// Resets memory that holds (garbage) state to an empty, open queue.
    pub fn reset(&self, max_items: u32) {
        for word in [&self.getters, &self.putters, &self.joiners, &self.journal]
            .into_iter()
            .chain(&self.live)
            .chain(&self.shadow)
            .chain(&self.shadow_holding)
        {
            word.store(0, Relaxed);
        }
        self.max_items.store(max_items, Relaxed);
    }

    /// The item bound it records (untrusted: for a handle's check).
    pub fn recorded_max_items(&self) -> u32 {
        self.max_items.load(Relaxed)
    }

    /// Its live words `[head, used, items, unfinished, lost, shut]` and its
    /// journal word, for the loom suite to check and scribble on.
    #[cfg(verisync_loom)]
    pub fn words(&self) -> (&[Word; FIELDS], &Word) {
        (&self.live, &self.journal)
    }
}

/// The ring's bytes. Implementations check their own bounds (a bad
/// position is a bug here, never memory unsafety).
pub trait RingBytes {
    /// Copies `data` to bytes `at..at + data.len()` of the ring.
    fn write(&self, at: usize, data: &[u8]);
    /// Copies bytes `at..at + out.len()` of the ring into `out`.
    fn read(&self, at: usize, out: &mut [u8]);
}

/// Why a put did not put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutRefused {
    /// No room (for `Try`, or until the deadline).
    Full,
    /// The queue is shut down.
    ShutDown,
}

/// Why a get got nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetRefused {
    /// Nothing queued (for `Try`, or until the deadline).
    Empty,
    /// Shut down and drained.
    ShutDown,
}

/// How a join ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// No task is unfinished; `lost` tasks were lost since the queue was
    /// created.
    Done {
        /// Tasks lost (module docs).
        lost: u32,
    },
    /// Tasks were still unfinished at the deadline.
    TimedOut,
}

/// The live words, as read or to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fields {
    head: u32,
    used: u32,
    items: u32,
    unfinished: u32,
    lost: u32,
    shut: bool,
}

impl Fields {
    fn load(words: &[Word; FIELDS]) -> Self {
        Self {
            head: words[0].load(Relaxed),
            used: words[1].load(Relaxed),
            items: words[2].load(Relaxed),
            unfinished: words[3].load(Relaxed),
            lost: words[4].load(Relaxed),
            shut: words[5].load(Relaxed) != 0,
        }
    }

    /// The values, in the words' order.
    fn values(&self) -> [u32; FIELDS] {
        [
            self.head,
            self.used,
            self.items,
            self.unfinished,
            self.lost,
            u32::from(self.shut),
        ]
    }

    /// Whether the ring's words describe records that fit `capacity`.
    fn is_valid(&self, capacity: u32) -> bool {
        self.head < capacity
            && self.used <= capacity
            && self.items <= self.used / RECORD_HEADER
            && (self.items == 0) == (self.used == 0)
    }

    /// Moves `count` (at most `unfinished`) tasks from unfinished to lost.
    fn lose(&mut self, count: u32) {
        let lost = count.min(self.unfinished);
        self.unfinished -= lost;
        self.lost = self.lost.saturating_add(lost);
    }
}

/// A holding to write in a commit.
#[derive(Clone, Copy, Debug)]
struct HoldingWrite {
    index: usize,
    holder: u32,
    count: u32,
}

/// The task a `task_done` marks (module docs).
#[derive(Clone, Copy, Debug)]
enum Marked {
    /// One of a holding's tasks: `unfinished -= 1`, and the holding, as
    /// written here, one task fewer.
    Held(HoldingWrite),
    /// One already counted lost (its holder ended first): `lost -= 1`.
    Lost,
}

/// The futex words, by name.
#[derive(Clone, Copy)]
enum Sleepers {
    Getters = 0,
    Putters = 1,
    Joiners = 2,
}

/// The state lock, held, with the live words as read (and repaired) when
/// it was taken; unlocks and then wakes the sleepers its transitions
/// found, when dropped.
struct Held<'q, L: StateLock> {
    lock: &'q L,
    state: &'q QueueState,
    fields: Fields,
    wake: [bool; 3],
}

impl<L: StateLock> Held<'_, L> {
    fn word(&self, which: Sleepers) -> &Word {
        match which {
            Sleepers::Getters => &self.state.getters,
            Sleepers::Putters => &self.state.putters,
            Sleepers::Joiners => &self.state.joiners,
        }
    }

    /// Bumps `which` (under the lock) if a waiter announced itself on it,
    /// remembering to wake its sleepers. Without `SLEEPERS` nobody needs
    /// the bump: every waiter announces under the lock, so one that has
    /// not yet announced will look at the state after this transition,
    /// and one that announced before the last bump saw its value change
    /// (module docs). Every write of the word is under the lock, so a load
    /// and a store do (no read-modify-write on the common path).
    fn bump(&mut self, which: Sleepers) {
        let word = self.word(which);
        let seen = word.load(Relaxed);
        if seen & SLEEPERS != 0 {
            word.store(seen.wrapping_add(1) & SEQUENCE, Relaxed);
            self.wake[which as usize] = true;
        }
    }

    /// Bumps every word whether or not a waiter announced itself, and
    /// wakes every sleeper after unlocking: for a locker that found the
    /// previous holder dead. That holder may have bumped a word (clearing
    /// `SLEEPERS`) and died before its wake, leaving a sleeper in the futex
    /// on the old value, which no conditional bump would ever wake (it sees
    /// no `SLEEPERS`); the new value also turns away a waiter that read the
    /// old one and has not yet slept. Woken waiters look at the state again.
    fn bump_all_after_a_death(&mut self) {
        for which in [Sleepers::Getters, Sleepers::Putters, Sleepers::Joiners] {
            let word = self.word(which);
            word.store(word.load(Relaxed).wrapping_add(1) & SEQUENCE, Relaxed);
            self.wake[which as usize] = true;
        }
    }

    /// Announces a sleeper on `which` (under the lock): the value to sleep on.
    fn announce(&self, which: Sleepers) -> u32 {
        self.word(which).fetch_or(SLEEPERS, Relaxed) | SLEEPERS
    }
}

impl<L: StateLock> Drop for Held<'_, L> {
    fn drop(&mut self) {
        self.lock.unlock();
        for which in [Sleepers::Getters, Sleepers::Putters, Sleepers::Joiners] {
            if self.wake[which as usize] {
                wake_all(self.word(which));
            }
        }
    }
}

/// `position % capacity`, for [`RawQueue::advance`]'s impossible case.
#[cold]
fn wrap_slowly(position: u64, capacity: u64) -> u32 {
    (position % capacity) as u32
}

/// Lengthens `buffer` to `len` bytes (zeros): the first get of an item this
/// long. Exactly: a doubled capacity could pass the size a caller keeps
/// between gets, and it would then be freed and grown again every time.
#[cold]
fn grow(buffer: &mut Vec<u8>, len: usize) {
    buffer.reserve_exact(len - buffer.len());
    buffer.resize(len, 0);
}

#[cold]
fn wake_all(word: &Word) {
    futex::wake(word, EVERY_WAITER);
}

/// The state machine over one queue.
pub struct RawQueue<'a, B: RingBytes> {
    state: &'a QueueState,
    holdings: &'a [Holding],
    bytes: &'a B,
    /// The ring's length in bytes (the caller's own copy).
    capacity: u32,
    /// The most items queued at once (the caller's own copy).
    max_items: u32,
}

impl<'a, B: RingBytes> RawQueue<'a, B> {
    /// The queue over `state`, `holdings` (one per process-table slot:
    /// every caller's slot index must be in range) and a ring of
    /// `capacity` bytes (at least [`RECORD_HEADER`]), holding at most
    /// `max_items` items.
    pub fn new(
        state: &'a QueueState,
        holdings: &'a [Holding],
        bytes: &'a B,
        capacity: u32,
        max_items: u32,
    ) -> Self {
        debug_assert!(capacity >= RECORD_HEADER);
        Self {
            state,
            holdings,
            bytes,
            capacity,
            max_items,
        }
    }

    /// Takes the state lock, then redoes a pending journal entry and
    /// resets garbage (module docs); `None` if `wait` ran out.
    fn lock<'q, L: StateLock>(&'q self, lock: &'q L, wait: Wait) -> Option<Held<'q, L>> {
        // A clean unlock leaves no journal entry: only a death mid-commit
        // (the lock then reports `OwnerDied`) or garbage does; either way
        // the checks below decide the state whichever way the lock was taken.
        let acquired = lock.lock(wait)?;
        let mut held = Held {
            lock,
            state: self.state,
            fields: Fields::load(&self.state.live),
            wake: [false; 3],
        };
        if acquired == Acquired::OwnerDied {
            // The dead holder may owe wake-ups (review 17).
            held.bump_all_after_a_death();
        }
        if self.state.journal.load(Relaxed) != 0 {
            self.redo(&mut held);
        }
        if !held.fields.is_valid(self.capacity) {
            self.reset(&mut held);
        }
        Some(held)
    }

    /// Writes `fields` (and `holding`) through the journal.
    fn commit<L: StateLock>(
        &self,
        held: &mut Held<'_, L>,
        fields: Fields,
        holding: Option<HoldingWrite>,
    ) {
        self.commit_stopping(held, fields, holding, usize::MAX);
    }

    /// [`commit`](Self::commit), stopping (as a process killed there would)
    /// after `stores` stores: the loom suite's death points.
    fn commit_stopping<L: StateLock>(
        &self,
        held: &mut Held<'_, L>,
        fields: Fields,
        holding: Option<HoldingWrite>,
        stores: usize,
    ) {
        let journal_entry = match holding {
            Some(write) => [write.index as u32 + 1, write.holder, write.count],
            None => [0; 3],
        };
        let mut left = stores;
        let mut store = |word: &Word, value: u32| {
            if left == 0 {
                return false;
            }
            left -= 1;
            word.store(value, Relaxed);
            true
        };
        let state = self.state;
        let shadow = fields.values();
        for (word, value) in state.shadow.iter().zip(shadow) {
            if !store(word, value) {
                return;
            }
        }
        for (word, value) in state.shadow_holding.iter().zip(journal_entry) {
            if !store(word, value) {
                return;
            }
        }
        if !store(&state.journal, 1) {
            return;
        }
        for (word, value) in state.live.iter().zip(shadow) {
            if !store(word, value) {
                return;
            }
        }
        if let Some(write) = holding {
            let holding = &self.holdings[write.index];
            if !store(holding.holder_word(), write.holder)
                || !store(holding.count_word(), write.count)
            {
                return;
            }
        }
        if store(&state.journal, 0) {
            held.fields = fields;
        }
    }

    /// Re-applies the journal's entry (a committer died after writing it,
    /// or garbage): if it passes the checks, as written; otherwise the
    /// state is reset.
    #[cold]
    fn redo<L: StateLock>(&self, held: &mut Held<'_, L>) {
        let state = self.state;
        let fields = Fields::load(&state.shadow);
        let [slot, holder, count] = state
            .shadow_holding
            .each_ref()
            .map(|word| word.load(Relaxed));
        let holding = match slot {
            0 => Some(None),
            slot => ((slot - 1) as usize)
                .lt(&self.holdings.len())
                .then_some(Some(HoldingWrite {
                    index: (slot - 1) as usize,
                    holder,
                    count,
                })),
        };
        match holding {
            Some(holding) if fields.is_valid(self.capacity) => {
                self.commit(held, fields, holding);
                self.wake_everyone(held);
            }
            _ => {
                state.journal.store(0, Relaxed);
                self.reset(held);
            }
        }
    }

    /// Empties a ring whose words are garbage: its items (at most the
    /// unfinished tasks) count as lost.
    #[cold]
    fn reset<L: StateLock>(&self, held: &mut Held<'_, L>) {
        let mut fields = held.fields;
        fields.lose(fields.items);
        let fields = Fields {
            head: 0,
            used: 0,
            items: 0,
            ..fields
        };
        self.commit(held, fields, None);
        self.wake_everyone(held);
    }

    /// After a repair: anyone may now proceed.
    fn wake_everyone<L: StateLock>(&self, held: &mut Held<'_, L>) {
        held.bump(Sleepers::Getters);
        held.bump(Sleepers::Putters);
        held.bump(Sleepers::Joiners);
    }

    /// Copies `data` into the ring at position `at` (wrapping).
    fn write_at(&self, at: u32, data: &[u8]) {
        let at = at as usize;
        let first = data.len().min(self.capacity as usize - at);
        self.bytes.write(at, &data[..first]);
        if first < data.len() {
            self.bytes.write(0, &data[first..]);
        }
    }

    /// Copies from the ring at position `at` (wrapping) into `out`.
    fn read_at(&self, at: u32, out: &mut [u8]) {
        let at = at as usize;
        let first = out.len().min(self.capacity as usize - at);
        self.bytes.read(at, &mut out[..first]);
        if first < out.len() {
            self.bytes.read(0, &mut out[first..]);
        }
    }

    /// `at + by`, wrapped into the ring. Every caller's `at` is below
    /// `capacity` and its `by` at most `capacity` (positions and sizes of
    /// checked records), so one subtraction wraps it: no division under the
    /// lock. (Anything larger is a bug here; it still wraps, by division.)
    fn advance(&self, at: u32, by: u32) -> u32 {
        let capacity = u64::from(self.capacity);
        let sum = u64::from(at) + u64::from(by);
        let wrapped = if sum >= capacity { sum - capacity } else { sum };
        if wrapped < capacity {
            wrapped as u32
        } else {
            wrap_slowly(wrapped, capacity)
        }
    }

    /// The caller's holding (slot index, count), after moving what an
    /// earlier process of its slot left there into `fields.lost`.
    fn mine(&self, me: u32, fields: &mut Fields) -> (usize, u32) {
        let index = slot_index(me).expect("verisync: a process identity names a slot");
        let holding = &self.holdings[index];
        let count = holding.count_word().load(Relaxed);
        if holding.holder_word().load(Relaxed) == me {
            (index, count)
        } else {
            fields.lose(count);
            (index, 0)
        }
    }

    /// The bytes a record of `len` postcard bytes takes, if it could ever
    /// fit this ring.
    pub fn record_size(&self, len: usize) -> Option<u32> {
        u32::try_from(len)
            .ok()
            .and_then(|len| len.checked_add(RECORD_HEADER))
            .filter(|&size| size <= self.capacity)
    }

    /// Puts `record` (postcard bytes, with `record_size` `Some`) for
    /// process `lock.me()`, waiting for room as `wait` says.
    pub fn put(&self, record: &[u8], wait: Wait, lock: &impl StateLock) -> Result<(), PutRefused> {
        self.put_stopping(record, wait, lock, usize::MAX)
    }

    fn put_stopping(
        &self,
        record: &[u8],
        wait: Wait,
        lock: &impl StateLock,
        stores: usize,
    ) -> Result<(), PutRefused> {
        let size = self
            .record_size(record.len())
            .expect("verisync: the caller checked that the record fits the ring");
        loop {
            let Some(mut held) = self.lock(lock, wait) else {
                return Err(PutRefused::Full);
            };
            let fields = held.fields;
            if fields.shut {
                return Err(PutRefused::ShutDown);
            }
            if fields.items < self.max_items && self.capacity - fields.used >= size {
                // The reservation: past the committed records (module docs).
                let tail = self.advance(fields.head, fields.used);
                self.write_at(tail, &(record.len() as u32).to_le_bytes());
                self.write_at(self.advance(tail, RECORD_HEADER), record);
                let next = Fields {
                    used: fields.used + size,
                    items: fields.items + 1,
                    unfinished: fields.unfinished.saturating_add(1),
                    ..fields
                };
                self.commit_stopping(&mut held, next, None, stores);
                if stores != usize::MAX {
                    // The loom suite's death: no unlock, no wake.
                    std::mem::forget(held);
                    return Ok(());
                }
                held.bump(Sleepers::Getters);
                return Ok(());
            }
            let Wait::Until(deadline) = wait else {
                return Err(PutRefused::Full);
            };
            let seen = held.announce(Sleepers::Putters);
            drop(held);
            if self.sleep(&self.state.putters, seen, deadline, lock, false) == Wake::TimedOut {
                // The last look (no wake-up was spent on this waiter).
                return self.put_stopping(record, Wait::Try, lock, stores);
            }
        }
    }

    /// As a producer killed after `stores` stores of its put's commit (0:
    /// after writing the record, before committing anything): it returns
    /// holding the state lock. For the loom suite, whose caller then marks
    /// the process dead.
    #[cfg(verisync_loom)]
    pub fn put_and_die(&self, record: &[u8], lock: &impl StateLock, stores: usize) {
        let _ = self.put_stopping(record, Wait::Until(None), lock, stores);
    }

    /// Takes the oldest item's postcard bytes for process `lock.me()`,
    /// waiting as `wait` says; the caller now holds its task. (For the loom
    /// suite: the queue keeps a buffer, [`get_into`](Self::get_into).)
    #[cfg(verisync_loom)]
    pub fn get(&self, wait: Wait, lock: &impl StateLock) -> Result<Vec<u8>, GetRefused> {
        let mut buffer = Vec::new();
        let len = self.get_into(wait, lock, &mut buffer)?;
        buffer.truncate(len);
        Ok(buffer)
    }

    /// Takes the oldest item's postcard bytes for process `lock.me()`,
    /// waiting as `wait` says (the caller now holds its task), copying them
    /// into `buffer[..len]` and returning `len`. `buffer` is only ever
    /// lengthened (with zeros, under the state lock, to at most `capacity`
    /// bytes), so a caller that keeps it between gets neither allocates nor
    /// zeroes once it is long enough: the lock is held for the copy alone.
    pub fn get_into(
        &self,
        wait: Wait,
        lock: &impl StateLock,
        buffer: &mut Vec<u8>,
    ) -> Result<usize, GetRefused> {
        let me = lock.me();
        debug_assert!(me != 0 && me & !HOLDER_MASK == 0);
        loop {
            let Some(mut held) = self.lock(lock, wait) else {
                return Err(GetRefused::Empty);
            };
            let mut fields = held.fields;
            let unfinished_before = fields.unfinished;
            if fields.items > 0 {
                let mut header = [0; RECORD_HEADER as usize];
                self.read_at(fields.head, &mut header);
                let len = u32::from_le_bytes(header);
                let size = u64::from(len) + u64::from(RECORD_HEADER);
                if size > u64::from(fields.used) {
                    // Garbage: a record longer than the ring holds.
                    self.reset(&mut held);
                    continue;
                }
                let size = size as u32;
                // `len < used ≤ capacity`: checked above.
                let len = len as usize;
                if buffer.len() < len {
                    grow(buffer, len);
                }
                self.read_at(self.advance(fields.head, RECORD_HEADER), &mut buffer[..len]);
                let (index, count) = self.mine(me, &mut fields);
                let next = Fields {
                    head: self.advance(fields.head, size),
                    used: fields.used - size,
                    items: fields.items - 1,
                    ..fields
                };
                let holding = HoldingWrite {
                    index,
                    holder: me,
                    count: count.saturating_add(1),
                };
                self.commit(&mut held, next, Some(holding));
                held.bump(Sleepers::Putters);
                if next.unfinished == 0 && unfinished_before != 0 {
                    held.bump(Sleepers::Joiners);
                }
                return Ok(len);
            }
            if fields.shut {
                return Err(GetRefused::ShutDown);
            }
            let Wait::Until(deadline) = wait else {
                return Err(GetRefused::Empty);
            };
            let seen = held.announce(Sleepers::Getters);
            drop(held);
            if self.sleep(&self.state.getters, seen, deadline, lock, false) == Wake::TimedOut {
                return self.get_into(Wait::Try, lock, buffer);
            }
        }
    }

    /// Marks one task done for process `lock.me()`, choosing whose task as
    /// the module docs say ("Whose task `task_done` marks"): `false`
    /// (changing nothing) if there is none to mark.
    pub fn task_done(&self, lock: &impl StateLock) -> bool {
        let mut held = self
            .lock(lock, Wait::Until(None))
            .expect("a wait without deadline ends holding the lock");
        let mut fields = held.fields;
        let holding = match self.task_to_mark(lock, &fields) {
            None => return false,
            Some(Marked::Held(write)) => {
                fields.unfinished -= 1;
                Some(write)
            }
            Some(Marked::Lost) => {
                fields.lost -= 1;
                None
            }
        };
        self.commit(&mut held, fields, holding);
        if fields.unfinished == 0 {
            held.bump(Sleepers::Joiners);
        }
        true
    }

    /// Which task a `task_done` by `lock.me()` marks (under the state
    /// lock): its own holding's, else a dead process's holding's, else one
    /// already counted lost, else a live process's holding's (module docs).
    fn task_to_mark(&self, lock: &impl StateLock, fields: &Fields) -> Option<Marked> {
        let me = lock.me();
        let index = slot_index(me).expect("verisync: a process identity names a slot");
        let own = &self.holdings[index];
        let count = own.count_word().load(Relaxed);
        if fields.unfinished > 0 && own.holder_word().load(Relaxed) == me && count > 0 {
            return Some(Marked::Held(HoldingWrite {
                index,
                holder: me,
                count: count - 1,
            }));
        }
        self.task_to_mark_elsewhere(lock, fields)
    }

    /// [`task_to_mark`](Self::task_to_mark) when the caller holds none: a
    /// scan of every holding, checking liveness (`/proc`) under the lock.
    #[cold]
    fn task_to_mark_elsewhere(&self, lock: &impl StateLock, fields: &Fields) -> Option<Marked> {
        let mut live = None;
        if fields.unfinished > 0 {
            for (index, holding) in self.holdings.iter().enumerate() {
                let count = holding.count_word().load(Relaxed);
                if count == 0 {
                    continue;
                }
                let holder = holding.holder_word().load(Relaxed);
                let write = HoldingWrite {
                    index,
                    holder,
                    count: count - 1,
                };
                if !self.is_held_by_the_living(lock, index, holder) {
                    return Some(Marked::Held(write));
                }
                live.get_or_insert(write);
            }
        }
        if fields.lost > 0 {
            return Some(Marked::Lost);
        }
        live.map(Marked::Held)
    }

    /// Whether holding `index`, naming `holder`, belongs to a live process
    /// (the caller's own counts as live): not a dead one's, nor garbage.
    fn is_held_by_the_living(&self, lock: &impl StateLock, index: usize, holder: u32) -> bool {
        let in_place = holder & !HOLDER_MASK == 0 && slot_index(holder) == Some(index);
        in_place && (holder == lock.me() || lock.is_alive(holder))
    }

    /// Waits until no task is unfinished (reclaiming dead processes'
    /// holdings as lost) or `wait` runs out.
    pub fn join(&self, wait: Wait, lock: &impl StateLock) -> Joined {
        loop {
            self.reclaim_dead(lock, wait);
            let Some(held) = self.lock(lock, wait) else {
                return Joined::TimedOut;
            };
            let fields = held.fields;
            if fields.unfinished == 0 {
                return Joined::Done { lost: fields.lost };
            }
            let Wait::Until(deadline) = wait else {
                return Joined::TimedOut;
            };
            let seen = held.announce(Sleepers::Joiners);
            drop(held);
            if self.sleep(&self.state.joiners, seen, deadline, lock, true) == Wake::TimedOut {
                return self.join(Wait::Try, lock);
            }
        }
    }

    /// Shuts the queue down: later puts are refused, getters drain it.
    pub fn shutdown(&self, lock: &impl StateLock) {
        let mut held = self
            .lock(lock, Wait::Until(None))
            .expect("a wait without deadline ends holding the lock");
        if !held.fields.shut {
            let fields = Fields {
                shut: true,
                ..held.fields
            };
            self.commit(&mut held, fields, None);
        }
        held.bump(Sleepers::Getters);
        held.bump(Sleepers::Putters);
    }

    /// Shuts the queue down and takes every queued item's postcard bytes,
    /// oldest first; their tasks count as done.
    pub fn shutdown_now(&self, lock: &impl StateLock) -> Vec<Vec<u8>> {
        let mut held = self
            .lock(lock, Wait::Until(None))
            .expect("a wait without deadline ends holding the lock");
        let mut fields = held.fields;
        let mut records = Vec::new();
        let (mut head, mut used) = (fields.head, fields.used);
        while records.len() < fields.items as usize {
            let mut header = [0; RECORD_HEADER as usize];
            self.read_at(head, &mut header);
            let len = u32::from_le_bytes(header);
            let size = u64::from(len) + u64::from(RECORD_HEADER);
            if size > u64::from(used) {
                break; // garbage: the rest is lost
            }
            let mut record = vec![0; len as usize];
            self.read_at(self.advance(head, RECORD_HEADER), &mut record);
            records.push(record);
            head = self.advance(head, size as u32);
            used -= size as u32;
        }
        let taken = (records.len() as u32).min(fields.unfinished);
        fields.unfinished -= taken;
        fields.lose(fields.items - records.len() as u32);
        let fields = Fields {
            head: 0,
            used: 0,
            items: 0,
            shut: true,
            ..fields
        };
        self.commit(&mut held, fields, None);
        self.wake_everyone(&mut held);
        records
    }

    /// Items queued (a snapshot, unchecked: at most what the ring could hold).
    pub fn len(&self) -> u32 {
        let items = self.state.live[2].load(Relaxed);
        items.min(self.capacity / RECORD_HEADER).min(self.max_items)
    }

    /// Whether no item could be put now (a snapshot): the item bound is
    /// reached, or not even an empty record fits.
    pub fn is_full(&self) -> bool {
        let used = self.state.live[1].load(Relaxed).min(self.capacity);
        self.len() >= self.max_items || self.capacity - used < RECORD_HEADER
    }

    /// Whether the queue is shut down (a snapshot).
    pub fn is_shut_down(&self) -> bool {
        self.state.live[5].load(Relaxed) != 0
    }

    /// Tasks unfinished now, after reclaiming dead processes' holdings.
    pub fn unfinished(&self, lock: &impl StateLock) -> u32 {
        self.reclaim_dead(lock, Wait::Try);
        self.state.live[3].load(Relaxed)
    }

    /// Tasks lost so far (a snapshot), after reclaiming dead processes'
    /// holdings.
    pub fn lost(&self, lock: &impl StateLock) -> u32 {
        self.reclaim_dead(lock, Wait::Try);
        self.state.live[4].load(Relaxed)
    }

    /// Sleeps on `word` unless it changed since `seen`, or the state lock's
    /// holder is dead, or (`holdings`) a holding's process is dead: then
    /// [`Wake::Invalid`], and the caller looks again.
    #[cold]
    fn sleep(
        &self,
        word: &Word,
        seen: u32,
        deadline: Option<Instant>,
        lock: &impl StateLock,
        holdings: bool,
    ) -> Wake {
        futex::wait(word, seen, deadline, || {
            !(lock.held_by_the_dead() || (holdings && self.dead_holdings(lock).next().is_some()))
        })
    }

    /// The holdings (index, holder, count) with tasks whose holder is dead,
    /// or does not name the holding's slot (garbage): a scan outside the
    /// state lock, checked again under it.
    fn dead_holdings<'s>(
        &'s self,
        lock: &'s impl StateLock,
    ) -> impl Iterator<Item = (usize, u32, u32)> + 's {
        self.holdings
            .iter()
            .enumerate()
            .filter_map(move |(index, holding)| {
                let count = holding.count_word().load(Relaxed);
                if count == 0 {
                    return None;
                }
                let holder = holding.holder_word().load(Relaxed);
                let alive = self.is_held_by_the_living(lock, index, holder);
                (!alive).then_some((index, holder, count))
            })
    }

    /// Counts the tasks of every dead holding as lost; `true` if any was.
    #[cold]
    fn reclaim_dead(&self, lock: &impl StateLock, wait: Wait) -> bool {
        let mut any = false;
        for (index, holder, count) in self.dead_holdings(lock) {
            let Some(mut held) = self.lock(lock, wait) else {
                return any;
            };
            let holding = &self.holdings[index];
            if holding.holder_word().load(Relaxed) != holder
                || holding.count_word().load(Relaxed) != count
            {
                continue;
            }
            let mut fields = held.fields;
            fields.lose(count);
            let write = HoldingWrite {
                index,
                holder,
                count: 0,
            };
            self.commit(&mut held, fields, Some(write));
            if fields.unfinished == 0 {
                held.bump(Sleepers::Joiners);
            }
            any = true;
        }
        any
    }
}
