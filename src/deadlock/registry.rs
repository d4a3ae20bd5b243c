//! The registry of threads for the diagnostics: what each thread holds and
//! what it is blocked on.
//!
//! # Design: private while running, published while blocked
//!
//! Taking and releasing a lock that does not block must be cheap, so each
//! thread keeps its own bookkeeping in a thread-local [`Local`] that no
//! other thread reads: the locks it holds, in the order it took them, and
//! the lock pairs it already entered in the order graph. Taking a lock
//! pushes on that list and releasing pops from it; no lock, no atomic
//! read-modify-write.
//!
//! Only a thread that is about to block *publishes*: under its record's
//! `std::sync::Mutex` (its [`ThreadRecord`], listed in [`THREADS`] from
//! its first tracked lock to its end) it writes what it waits for and a
//! copy of its held list; while published, every change to its held list
//! is mirrored there (user code may take locks inside a marked operation,
//! e.g. a priority item's `Ord` inside `JoinableQueue::get`). When it stops
//! waiting it clears the entry. The reports lock [`THREADS`] and then every
//! record, so they read one consistent snapshot, and they only need the
//! blocked threads: every thread of a deadlock is blocked.
//!
//! The held list never claims a lock that is not held (it is pushed after
//! the lock is taken and popped before it is released), and a thread sets
//! and clears its own entry, so a reported cycle is a real one. Nothing
//! here is lock-free (the thread-local needs no synchronisation and the
//! records are mutexes); what races is the order of the publications and
//! clears with the locks' own acquire and release, modelled by the loom
//! suite (`loom-tests/tests/deadlock_bookkeeping.rs`): there the
//! thread-locals are loom's (`sys::thread::thread_local`, one per modelled
//! thread) and each `std` mutex below is one atomic step (no loom operation
//! runs while one is held, so loom never switches threads inside), which
//! loom places among the other threads' steps because each is entered
//! through `sys::before_std_lock` (never called with a registry lock held).
//!
//! Lock order (never taken the other way round): [`THREADS`], then records
//! (a thread takes only its own; a report takes all, in list order), then
//! the order graph (`order.rs`). No lock here is a verisync lock.
//!
//! # Ends
//!
//! A thread's record goes when its [`Local`] is dropped (the thread ends);
//! a guard leaked with `mem::forget` stays in its thread's held list while
//! the thread lives. A guard dropped after `Local` (kept in another
//! thread-local) has nothing left to update: the held list went with the
//! thread, and a thread being torn down is never published.
//!
//! A lock dropped while a thread still lists it (its guard was leaked) is
//! put in that thread's `dropped` mailbox; the thread removes it from its
//! own list the next time it publishes, enters a new pair in the graph, or
//! finds its list full (so the list never grows past twice what the thread
//! really holds, however it takes its locks), and the published copy, if
//! any, is cleaned at once.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::report::{HeldLock, LockId, LockInfo, ThreadId, ThreadInfo};
use crate::sys::{before_std_lock, thread};

/// Every thread that has a record, in the order they registered.
pub(crate) static THREADS: Mutex<Vec<Arc<ThreadRecord>>> = Mutex::new(Vec::new());

/// The serial number of the next thread to register (serials start at 1;
/// 0 means "no thread").
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// At most this many lock pairs are remembered per thread as already
/// checked; past it the cache starts over (it is only a cache: the graph
/// in `order.rs` still knows every edge).
const SEEN_PAIRS_LIMIT: usize = 4096;

/// One thread's public record.
pub(crate) struct ThreadRecord {
    pub(crate) thread: ThreadInfo,
    /// The thread's serial number (what a lock's `holder` names).
    serial: u64,
    pub(crate) published: Mutex<Published>,
}

/// What a thread has published.
pub(crate) struct Published {
    /// What it is blocked on, set before it parks and cleared after.
    pub(crate) blocked: Option<Blocked>,
    /// While `blocked` is set: every lock level it holds, in the order
    /// taken (a reentrant lock taken twice is here twice). Empty otherwise.
    pub(crate) held: Vec<HeldLock>,
    /// Locks dropped while this thread listed them as held (leaked
    /// guards), not yet removed from its thread-local list.
    dropped: Vec<LockId>,
    /// The lock of the thread's latest wait, until it gets that lock,
    /// releases any lock or waits for anything else: see
    /// [`Blocked::episode`].
    unanswered: Option<LockId>,
    /// How many waits the thread started that were not retries of an
    /// unanswered wait for the same lock (see [`Blocked::episode`]).
    episodes: u64,
}

/// What a blocked thread waits for.
#[derive(Clone)]
pub(crate) struct Blocked {
    /// The operation, e.g. `"Mutex::lock"`.
    pub(crate) operation: &'static str,
    /// The primitive's name, if any.
    pub(crate) name: Option<&'static str>,
    /// The lock, when it waits for one.
    pub(crate) lock: Option<LockInfo>,
    /// The call it blocks in.
    pub(crate) at: &'static Location<'static>,
    /// When it started to wait.
    pub(crate) since: Instant,
    /// Which of the thread's waits this is, set by [`Local::publish`]: a
    /// new number for each wait, except that a wait for a lock whose
    /// previous wait did not get it (a timed wait given up and retried)
    /// keeps the number of that wait, unless the thread released a lock in
    /// between. So a deadlock whose threads retry while holding their
    /// locks keeps its threads' numbers, and one that ended (a thread got
    /// its lock, released one, or waited for anything else) and formed
    /// again has new ones.
    pub(crate) episode: u64,
}

/// The hash of the seen-pairs cache: lock ids are small distinct numbers,
/// so one multiply mixes them enough (as rustc's `FxHasher`), and it costs
/// far less than the default SipHash on the fast path.
#[derive(Default)]
pub(crate) struct PairHasher(u64);

impl Hasher for PairHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A thread's own bookkeeping, read and written only by that thread.
pub(crate) struct Local {
    record: Arc<ThreadRecord>,
    /// Every lock level it holds, in the order taken.
    held: RefCell<Vec<HeldLock>>,
    /// Lock pairs (held, then taken) already entered in the order graph by
    /// this thread: the fast path's seen-pair check.
    seen_pairs: RefCell<HashSet<(LockId, LockId), BuildHasherDefault<PairHasher>>>,
    /// Whether `record.published.blocked` is set (then changes to `held`
    /// are mirrored in the record).
    published: Cell<bool>,
    /// `record.published.unanswered`'s id, or [`NO_UNANSWERED_WAIT`]: the
    /// copy an acquisition checks without taking the record's lock.
    unanswered: Cell<u64>,
}

/// `Local::unanswered` when the latest wait got its lock (lock ids are
/// never 0).
const NO_UNANSWERED_WAIT: u64 = 0;

impl Local {
    fn register() -> Self {
        let current = thread::current();
        let record = Arc::new(ThreadRecord {
            thread: ThreadInfo {
                name: current.name().map(str::to_owned),
                id: current.id(),
            },
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            published: Mutex::new(Published {
                blocked: None,
                held: Vec::new(),
                dropped: Vec::new(),
                unanswered: None,
                episodes: 0,
            }),
        });
        before_std_lock();
        lock(&THREADS).push(Arc::clone(&record));
        Self {
            record,
            held: RefCell::new(Vec::new()),
            seen_pairs: RefCell::default(),
            published: Cell::new(false),
            unanswered: Cell::new(NO_UNANSWERED_WAIT),
        }
    }

    /// The thread, as reports name it.
    pub(crate) fn thread(&self) -> &ThreadInfo {
        &self.record.thread
    }

    /// The thread's serial number (never 0).
    #[inline]
    pub(crate) fn serial(&self) -> u64 {
        self.record.serial
    }

    /// The record's published state, locked.
    fn published(&self) -> MutexGuard<'_, Published> {
        before_std_lock();
        lock(&self.record.published)
    }

    /// Whether the thread holds (a level of) `lock`.
    #[inline]
    pub(crate) fn holds(&self, lock: LockId) -> bool {
        self.held.borrow().iter().any(|held| held.lock.id == lock)
    }

    /// How many lock levels the thread holds.
    #[inline]
    pub(crate) fn held_count(&self) -> usize {
        self.held.borrow().len()
    }

    /// The id of the `index`-th lock level held (`index < held_count()`).
    #[inline]
    pub(crate) fn held_id(&self, index: usize) -> LockId {
        self.held.borrow()[index].lock.id
    }

    /// The `index`-th lock level held.
    pub(crate) fn held_at(&self, index: usize) -> HeldLock {
        self.held.borrow()[index].clone()
    }

    /// Makes room for one more level in the held list (and in its
    /// published copy, if any), *before* the lock is tried: so that
    /// [`push`](Self::push), after the lock is taken, never allocates. An
    /// allocation while the lock is held would re-enter an allocator that
    /// takes this very lock (a counting `#[global_allocator]` with a
    /// `verisync::Mutex`): it would wait for itself.
    #[inline(always)]
    pub(crate) fn make_room(&self) {
        let full = {
            let list = self.held.borrow();
            list.len() == list.capacity()
        };
        if full || self.published.get() {
            self.grow();
        }
    }

    /// The list is full (or published): first removes the locks dropped
    /// while listed (leaked guards), so a thread that leaks guards of locks
    /// it then drops keeps a list as long as what it really holds (at most
    /// twice, amortized), whatever it takes them with; then makes room.
    #[cold]
    fn grow(&self) {
        let mut published = self.published();
        let mut list = self.held.borrow_mut();
        remove_dropped(&mut list, &mut published.dropped);
        if list.len() == list.capacity() {
            list.reserve(1);
        }
        if self.published.get() {
            // The copy never lists more than the list itself.
            let room = (list.len() + 1).saturating_sub(published.held.len());
            published.held.reserve(room);
        }
    }

    /// Records one more level of `lock`, just taken at `taken_at` (after
    /// [`make_room`](Self::make_room): this never allocates then).
    #[inline(always)]
    pub(crate) fn push(&self, lock: LockInfo, taken_at: &'static Location<'static>) {
        let mut list = self.held.borrow_mut();
        // Room first (there is, after `make_room`: this check is there for
        // the code it makes), and the entry built only then: so it is
        // written straight into the list (built before a possible
        // reallocation, it went through the stack, and reading it back
        // stalled the fast path on store forwarding).
        if list.len() == list.capacity() {
            list.reserve(1);
        }
        let id = lock.id;
        list.push(HeldLock { lock, taken_at });
        if self.published.get() {
            self.mirror_push(list.last());
        }
        if id.0 == self.unanswered.get() {
            self.answered();
        }
    }

    /// The thread's latest wait is over: it got the lock that wait was
    /// for (that wait, or a later attempt, took it), or it released a lock
    /// (so the deadlock that wait was part of, if any, dissolved).
    #[cold]
    pub(crate) fn answered(&self) {
        self.unanswered.set(NO_UNANSWERED_WAIT);
        self.published().unanswered = None;
    }

    #[cold]
    fn mirror_push(&self, held: Option<&HeldLock>) {
        self.published().held.extend(held.cloned());
    }

    /// Puts back the levels a condition wait took off.
    pub(crate) fn extend(&self, levels: Vec<HeldLock>) {
        if self.published.get() {
            self.published().held.extend(levels.iter().cloned());
        }
        self.held.borrow_mut().extend(levels);
    }

    /// Forgets one level of `lock` (the most recent); whether any level of
    /// it is still held afterwards.
    #[inline]
    pub(crate) fn remove_one(&self, lock: LockId) -> bool {
        let mut held = self.held.borrow_mut();
        // Locks are mostly released in the reverse order of taking them.
        if held.last().is_some_and(|last| last.lock.id == lock) {
            held.pop();
        } else {
            remove_one_from(&mut held, lock);
        }
        if self.published.get() {
            self.mirror_remove_one(lock);
        }
        // A release ends the episode of an unanswered wait: a deadlock its
        // threads dissolve by letting go of their locks (giving up, backing
        // off) and form again is a new one (see `Blocked::episode`).
        if self.unanswered.get() != NO_UNANSWERED_WAIT {
            self.answered();
        }
        held.iter().any(|held| held.lock.id == lock)
    }

    #[cold]
    fn mirror_remove_one(&self, lock: LockId) {
        remove_one_from(&mut self.published().held, lock);
    }

    /// Forgets every level of `lock`, returning them.
    pub(crate) fn remove_all(&self, lock: LockId) -> Vec<HeldLock> {
        if self.published.get() {
            take_all_from(&mut self.published().held, lock);
        }
        take_all_from(&mut self.held.borrow_mut(), lock)
    }

    /// Whether every pair (held lock, `lock`) was already entered in the
    /// order graph by this thread (or is `lock` itself): then taking `lock`
    /// adds nothing to the graph.
    #[inline]
    pub(crate) fn pairs_known(&self, lock: LockId) -> bool {
        let held = self.held.borrow();
        if held.is_empty() {
            return true;
        }
        let seen = self.seen_pairs.borrow();
        held.iter()
            .all(|held| held.lock.id == lock || seen.contains(&(held.lock.id, lock)))
    }

    /// Records that the pair was checked; `false` if it already was.
    #[inline]
    pub(crate) fn first_time(&self, pair: (LockId, LockId)) -> bool {
        let mut seen = self.seen_pairs.borrow_mut();
        if seen.contains(&pair) {
            return false;
        }
        if seen.len() >= SEEN_PAIRS_LIMIT {
            seen.clear();
        }
        seen.insert(pair);
        true
    }

    /// Forgets that the pair was checked (its edge was not entered: the
    /// acquisition was refused by the panic switch).
    #[cold]
    pub(crate) fn forget_pair(&self, pair: (LockId, LockId)) {
        self.seen_pairs.borrow_mut().remove(&pair);
    }

    /// Removes the locks dropped while this thread held them (leaked
    /// guards) from its held list.
    #[cold]
    pub(crate) fn forget_dropped_locks(&self) {
        let mut published = self.published();
        remove_dropped(&mut self.held.borrow_mut(), &mut published.dropped);
    }

    /// Publishes that the thread is blocked (with what it holds); returns
    /// the entry it replaces (an outer operation's, put back by
    /// [`restore`](Self::restore)).
    #[cold]
    pub(crate) fn publish(&self, mut blocked: Blocked) -> Option<Blocked> {
        let mut published = self.published();
        remove_dropped(&mut self.held.borrow_mut(), &mut published.dropped);
        if !self.published.get() {
            published.held.clone_from(&self.held.borrow());
        }
        // Room for the lock waited for, mirrored once taken: no allocation
        // then (see `make_room`).
        published.held.reserve(1);
        self.published.set(true);
        let waits_for = blocked.lock.as_ref().map(|lock| lock.id);
        let retry = waits_for.is_some() && waits_for == published.unanswered;
        if !retry {
            published.episodes += 1;
        }
        blocked.episode = published.episodes;
        published.unanswered = waits_for;
        self.unanswered
            .set(waits_for.map_or(NO_UNANSWERED_WAIT, |lock| lock.0));
        published.blocked.replace(blocked)
    }

    /// Publishes `blocked` unless the thread is published already (the
    /// outermost operation stays); whether it did.
    #[cold]
    pub(crate) fn publish_unless_blocked(&self, blocked: Blocked) -> bool {
        if self.published.get() {
            return false;
        }
        self.publish(blocked);
        true
    }

    /// Puts back what [`publish`](Self::publish) replaced: `None` ends the
    /// publication.
    #[cold]
    pub(crate) fn restore(&self, outer: Option<Blocked>) {
        let mut published = self.published();
        if outer.is_none() {
            published.held.clear();
        }
        self.published.set(outer.is_some());
        published.blocked = outer;
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // No `before_std_lock`: under loom the main thread's thread-locals
        // are dropped after the execution's other state, and a thread's end
        // needs no modelling (it is ordered by its join).
        lock(&THREADS).retain(|record| !Arc::ptr_eq(record, &self.record));
    }
}

thread::thread_local! {
    static LOCAL: Local = Local::register();
}

thread::thread_local! {
    /// Whether the diagnostics' own code is running on this thread (see
    /// [`as_tracker`]). Const-initialized and without a destructor, so
    /// reading it never allocates and works until the thread's very end.
    static IN_TRACKER: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the current thread's bookkeeping; `None` while the thread
/// is being torn down, or while the diagnostics' own code already runs on
/// this thread (see [`as_tracker`]): its locks are then untracked.
#[inline]
pub(crate) fn with_local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    as_tracker(|| LOCAL.try_with(f).ok()).flatten()
}

/// Runs `f` as the diagnostics' own work on this thread; `None` (and `f`
/// not run) if the thread is already inside such work.
///
/// The bookkeeping allocates (the first use creates the thread's record,
/// the held list grows, the order graph and the reports build maps and
/// lists) and takes `std` locks ([`THREADS`], the records, the order
/// graph). An allocator may itself take a tracked lock (a user's counting
/// `#[global_allocator]` with a `verisync::Mutex`): that acquisition would
/// re-enter the bookkeeping, recursing without end (the thread-local being
/// created allocates again) or locking a `std` lock this thread already
/// holds. So the acquisitions made while this flag is set are simply not
/// tracked, and a lock dropped meanwhile is not cleaned up (see the
/// module's limits).
#[inline]
pub(crate) fn as_tracker<R>(f: impl FnOnce() -> R) -> Option<R> {
    /// Clears the flag when the work ends (even by a panic).
    struct Leave;
    impl Drop for Leave {
        #[inline]
        fn drop(&mut self) {
            IN_TRACKER.with(|inside| inside.set(false));
        }
    }
    if IN_TRACKER.with(|inside| inside.replace(true)) {
        return None;
    }
    let _leave = Leave;
    Some(f())
}

/// Whether the diagnostics' own code is running on this thread (a lock
/// acquired now was not tracked, so its release must not be either).
#[cold]
pub(crate) fn in_tracker() -> bool {
    IN_TRACKER.with(Cell::get)
}

/// Removes one level of `lock` from `held` (the most recent).
#[cold]
fn remove_one_from(held: &mut Vec<HeldLock>, lock: LockId) {
    if let Some(index) = held.iter().rposition(|held| held.lock.id == lock) {
        held.remove(index);
    }
}

/// Removes the locks of the `dropped` mailbox from `held`, emptying it (a
/// sort and a binary search per entry: the mailbox may be long).
fn remove_dropped(held: &mut Vec<HeldLock>, dropped: &mut Vec<LockId>) {
    if dropped.is_empty() {
        return;
    }
    dropped.sort_unstable();
    held.retain(|level| dropped.binary_search(&level.lock.id).is_err());
    dropped.clear();
}

/// Removes every level of `lock` from `held`, returning them.
fn take_all_from(held: &mut Vec<HeldLock>, lock: LockId) -> Vec<HeldLock> {
    let mut removed = Vec::new();
    held.retain(|level| {
        if level.lock.id == lock {
            removed.push(level.clone());
            false
        } else {
            true
        }
    });
    removed
}

/// Locks a registry mutex; nothing panics while holding one, but if a
/// panic ever did, the data is still consistent (each change is one step).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A lock was dropped while the thread numbered `holder` listed it as held
/// (its guard was leaked): tells that thread, and cleans its published
/// copy at once. Nothing to do if the thread has ended.
#[cold]
pub(crate) fn forget_dropped_lock(holder: u64, lock_id: LockId) {
    before_std_lock();
    let threads = lock(&THREADS);
    if let Some(record) = threads.iter().find(|record| record.serial == holder) {
        let mut published = lock(&record.published);
        published.dropped.push(lock_id);
        take_all_from(&mut published.held, lock_id);
    }
}

/// Each live thread's unanswered wait: the lock its latest wait was for,
/// if it has not got that lock since (a timed wait that gave up, or one
/// going on), with that wait's [`Blocked::episode`]. A thread of a
/// deadlock whose waits time out and are retried keeps it between two
/// retries; a thread that got its lock, waited for anything else, or ended
/// has none (or another).
pub(crate) fn unanswered_waits() -> HashMap<ThreadId, (LockId, u64)> {
    as_tracker(|| {
        before_std_lock();
        lock(&THREADS)
            .iter()
            .filter_map(|record| {
                let published = lock(&record.published);
                Some((
                    record.thread.id,
                    (published.unanswered?, published.episodes),
                ))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Runs `f` on a consistent snapshot of the blocked threads: every record
/// locked at once.
/// Run from inside the diagnostics' own work (an allocator taking a
/// tracked lock that reports), it sees no thread: the registry's locks may
/// be held by this very thread.
pub(crate) fn with_snapshot<R>(f: impl FnOnce(&[(&ThreadInfo, &Blocked, &[HeldLock])]) -> R) -> R {
    if in_tracker() {
        return f(&[]);
    }
    as_tracker(|| snapshot_then(f)).expect("checked just above: not inside the diagnostics")
}

/// [`with_snapshot`], as the diagnostics' own work.
fn snapshot_then<R>(f: impl FnOnce(&[(&ThreadInfo, &Blocked, &[HeldLock])]) -> R) -> R {
    before_std_lock();
    let threads = lock(&THREADS);
    let guards: Vec<_> = threads
        .iter()
        .map(|record| lock(&record.published))
        .collect();
    let view: Vec<(&ThreadInfo, &Blocked, &[HeldLock])> = threads
        .iter()
        .zip(&guards)
        .filter_map(|(record, published)| {
            let blocked = published.blocked.as_ref()?;
            Some((&record.thread, blocked, &published.held[..]))
        })
        .collect();
    f(&view)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::{lock, THREADS};
    use crate::{Mutex, MutexGuard};

    /// Whether any record of a live thread names `id`.
    fn has_record(id: std::thread::ThreadId) -> bool {
        lock(&THREADS).iter().any(|record| record.thread.id == id)
    }

    /// A guard kept in a thread-local is dropped after the thread's own
    /// bookkeeping is gone: the ended thread leaves no record.
    #[test]
    fn a_guard_released_during_teardown_leaves_no_record() {
        static KEPT_LOCK: Mutex<()> = Mutex::with_name("registry-teardown", ());
        thread_local! {
            static KEPT: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
        }
        let ended = std::thread::spawn(|| {
            KEPT.with(|kept| *kept.borrow_mut() = Some(KEPT_LOCK.lock()));
            std::thread::current().id()
        })
        .join()
        .unwrap();
        assert!(!KEPT_LOCK.is_locked());
        assert!(!has_record(ended), "the ended thread still has a record");
    }

    /// A thread that ends holding a leaked lock leaves no record either
    /// (no report can show an ended thread), and dropping the lock is clean.
    #[test]
    fn a_thread_ending_with_a_leaked_guard_leaves_no_record() {
        let (m, ended) = std::thread::spawn(|| {
            let m = Box::new(Mutex::with_name("registry-leaked", ()));
            std::mem::forget(m.lock());
            (m, std::thread::current().id())
        })
        .join()
        .unwrap();
        assert!(m.is_locked());
        assert!(!has_record(ended));
        drop(m);
    }

    /// A thread blocked (published) while listing a leaked lock: when the
    /// lock is dropped, the published copy forgets it at once.
    #[test]
    fn a_dropped_lock_leaves_the_published_list_of_a_blocked_thread() {
        use crate::deadlock::blocked_threads;
        use crate::Event;
        let release = std::sync::Arc::new(Event::new());
        let (send_lock, lock_sent) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let release = std::sync::Arc::clone(&release);
            move || {
                let leaked = Box::new(Mutex::with_name("registry-published", ()));
                std::mem::forget(leaked.lock());
                send_lock.send(leaked).unwrap();
                release.wait();
                std::thread::current().id()
            }
        });
        let leaked = lock_sent.recv().unwrap();
        let holds = || {
            blocked_threads()
                .into_iter()
                .find(|blocked| blocked.thread.id == waiter.thread().id())
                .map(|blocked| blocked.holds.len())
        };
        while holds() != Some(1) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(leaked);
        assert_eq!(holds(), Some(0), "the dropped lock is still listed");
        release.set();
        waiter.join().unwrap();
    }

    /// A lock dropped while a live thread lists it (a leaked guard) is
    /// gone from that thread's list, published or not.
    #[test]
    fn a_dropped_lock_leaves_no_entry_even_after_a_leak() {
        let leaked = Box::new(Mutex::with_name("registry-dropped", ()));
        std::mem::forget(leaked.lock());
        let listed = || {
            super::with_local(|local| {
                local.forget_dropped_locks();
                (0..local.held_count())
                    .any(|index| local.held_at(index).lock.name == Some("registry-dropped"))
            })
            .unwrap()
        };
        assert!(listed());
        drop(leaked);
        assert!(!listed(), "dropping the lock removed every trace");
    }
}
