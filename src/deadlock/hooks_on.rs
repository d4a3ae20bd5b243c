//! The diagnostics hooks with the `deadlock-detection` feature on: each
//! lock carries a [`LockTracking`], and each acquisition and release keeps
//! the current thread's bookkeeping (`registry.rs`) and the lock-order
//! graph (`order.rs`) up to date. `hooks_off.rs` has the same items as
//! no-ops.
//!
//! # What an acquisition does
//!
//! 1. A reentrant re-lock is noted and nothing else. Otherwise each held
//!    lock paired with this one is checked against the thread's seen-pairs
//!    cache (a thread-local hash set) and, only if new, entered in the
//!    order graph (a violation found there is recorded, and panics here if
//!    [`panic_on_lock_order_violation`](super::panic_on_lock_order_violation)
//!    is on, before the lock is taken).
//! 2. Room for one more entry is made in the held list, then one
//!    non-blocking attempt; on success the lock is pushed on the
//!    thread-local held list (which then never allocates: an allocator may
//!    take this very lock) and its `holder` is set, and that is all: the
//!    fast path takes no lock and does no atomic read-modify-write.
//! 3. Otherwise the thread spins a little, trying again (a holder usually
//!    lets go within a few hundred nanoseconds), and only then publishes
//!    what it is blocked on (with what it holds) in its record, waits,
//!    and clears the entry and pushes the lock if it got it. So "blocked"
//!    is set before the thread can park and cleared after it stops
//!    waiting, by the thread itself. ("Cleared" means put back as it was:
//!    user code that runs inside a marked operation, like a priority
//!    item's `Ord` inside `JoinableQueue::get`, may take a lock, and the
//!    operation's mark must outlive that wait.)
//!
//! All of it runs as the diagnostics' own work (`registry::as_tracker`, a
//! thread-local flag): an acquisition made meanwhile on the same thread (by
//! an allocator the bookkeeping called) is not tracked, so it cannot
//! re-enter the bookkeeping.
//!
//! # Marks of the other primitives
//!
//! [`BlockedIn`] marks a thread blocked in an `Event`, `Condition`,
//! `Barrier`, `Semaphore`, `JoinableQueue` or `TaskHandle` call, with the
//! user's call site (`#[track_caller]`). An operation that can finish
//! without waiting marks only when it is about to park (`unless`, or
//! `later` and then `mark`), so the calls that never wait cost nothing
//! here. The outermost mark wins: `Barrier::wait` is reported, not the
//! `Condition::wait` inside it.
//!
//! A release pops the lock from the held list *before* the lock is
//! released, and an acquisition pushes it *after* the lock is taken, so the
//! held lists never claim a lock that is not held: a reported cycle is a
//! real one (its threads were all blocked at one instant of the snapshot).
//!
//! # Lock ids and holders
//!
//! Constructors are `const`, so the id is given lazily: `id` is 0 until the
//! first tracked use, which takes the next value of [`NEXT_LOCK_ID`] and
//! installs it with a compare-exchange (the loser adopts the winner's id).
//! `Relaxed` suffices: the id is only an identity, and all accesses to one
//! atomic agree on its value.
//!
//! `holder` is the serial number of the thread that lists the lock as held
//! (0 if none), so that a lock dropped while a leaked guard still lists it
//! can tell that thread. Only the thread holding the lock writes it (plain
//! `Relaxed` stores, no read-modify-write), and the lock's own
//! acquire/release order those writes from one holder to the next; the
//! drop reads it through `&mut self`.
//!
//! # Under loom
//!
//! The loom suite (`loom-tests/tests/deadlock_bookkeeping.rs`, cargo
//! feature `deadlock-detection` of `loom-tests`) models what is lock-free
//! here: `id` and `holder` are `crate::sys` atomics (loom's, so it explores
//! the id's install race and checks that the drop's read of `holder` comes
//! after every holder's write), and the thread-local bookkeeping is loom's
//! thread-local (one per modelled thread, dropped when it ends, so each
//! execution starts with no records). The records, the thread list and the
//! order graph are `std` mutexes, never held across a loom operation: loom
//! treats each critical section as one atomic step, as it cannot switch
//! threads inside one; the registry enters each of its sections through
//! `sys::before_std_lock`, a loom-visible step, so that loom explores where
//! each publication, clear and report falls among the other threads' steps
//! (the order graph's sections are not modelled). [`NEXT_LOCK_ID`] and the thread serials stay `std`
//! counters: they only hand out distinct numbers, and keep counting across
//! executions (an id is never reused).

use std::panic::Location;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::order;
use super::registry::{self, Blocked, Local};
pub(crate) use super::report::LockKind;
use super::report::{HeldLock, LockId, LockInfo, LockOrderStep, LockOrderViolation};
use crate::sys::atomic::{read_exclusive, AtomicU64, Ordering};
use crate::sys::spin::SpinWait;

/// The next lock id to give out (ids start at 1). A plain `std` counter
/// even under loom: it only hands out distinct numbers.
static NEXT_LOCK_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `id` of a lock that is never tracked (the crate's internal locks).
const UNTRACKED: u64 = u64::MAX;

/// `id` of a lock not used yet.
const NO_ID_YET: u64 = 0;

/// `holder` of a lock no thread lists as held.
const NO_HOLDER: u64 = 0;

/// Whether a lock-order violation panics at the acquisition closing it (a
/// `std` switch even under loom: the models never set it).
pub(crate) static PANIC_ON_VIOLATION: AtomicBool = AtomicBool::new(false);

/// What a lock knows about itself for the diagnostics.
pub(crate) struct LockTracking {
    /// The lock's id, [`NO_ID_YET`] or [`UNTRACKED`].
    id: AtomicU64,
    /// Where the lock was created.
    created_at: &'static Location<'static>,
    /// The serial number of the thread whose held list names this lock,
    /// or [`NO_HOLDER`].
    holder: AtomicU64,
}

/// The held-list entries a condition wait took off, to put back after.
pub struct SavedHolds(Vec<HeldLock>);

/// Marks the current thread as blocked in a primitive until dropped.
///
/// Made by [`new`](BlockedIn::new) (marks at once), or by
/// [`later`](BlockedIn::later) (remembers the call site; [`mark`](BlockedIn::mark)
/// marks when the operation is about to park) or
/// [`never`](BlockedIn::never) (the crate's own internal waits).
pub(crate) struct BlockedIn {
    /// What `mark` will record (operation, name, call site); `None` once
    /// marked, or for `never`.
    pending: Option<PendingMark>,
    /// This value set the thread's mark and clears it when dropped.
    tracked: bool,
}

/// The operation, primitive name and call site a [`BlockedIn`] marks.
type PendingMark = (
    &'static str,
    Option<&'static str>,
    &'static Location<'static>,
);

/// How a tracked acquisition's first step ended.
enum FirstStep {
    /// The lock was taken at once.
    Taken,
    /// The thread must wait; it published this (and replaced the outer
    /// entry, put back after).
    Waits { outer: Option<Blocked> },
    /// The acquisition closes a lock-order cycle and the switch is on.
    Violation(LockOrderViolation),
}

impl LockTracking {
    /// Tracking for a lock created by the user, here.
    #[cfg(not(verisync_loom))]
    #[track_caller]
    pub(crate) const fn new() -> Self {
        Self {
            id: AtomicU64::new(NO_ID_YET),
            created_at: Location::caller(),
            holder: AtomicU64::new(NO_HOLDER),
        }
    }

    /// As in the real build (loom's atomics are not `const`).
    #[cfg(verisync_loom)]
    #[track_caller]
    pub(crate) fn new() -> Self {
        Self {
            id: AtomicU64::new(NO_ID_YET),
            created_at: Location::caller(),
            holder: AtomicU64::new(NO_HOLDER),
        }
    }

    /// No tracking: for the crate's own internal locks.
    #[cfg(not(verisync_loom))]
    #[track_caller]
    pub(crate) const fn untracked() -> Self {
        Self {
            id: AtomicU64::new(UNTRACKED),
            created_at: Location::caller(),
            holder: AtomicU64::new(NO_HOLDER),
        }
    }

    /// As in the real build (loom's atomics are not `const`).
    #[cfg(verisync_loom)]
    #[track_caller]
    pub(crate) fn untracked() -> Self {
        Self {
            id: AtomicU64::new(UNTRACKED),
            created_at: Location::caller(),
            holder: AtomicU64::new(NO_HOLDER),
        }
    }

    /// The lock as reports name it; `None` if untracked.
    #[inline]
    fn info(&self, name: Option<&'static str>, kind: LockKind) -> Option<LockInfo> {
        let mut id = self.id.load(Ordering::Relaxed);
        if id == UNTRACKED {
            return None;
        }
        if id == NO_ID_YET {
            id = self.assign_id();
        }
        Some(self.info_of(LockId(id), name, kind))
    }

    /// The lock, whose id is `id`, as reports name it.
    #[inline]
    fn info_of(&self, id: LockId, name: Option<&'static str>, kind: LockKind) -> LockInfo {
        LockInfo {
            id,
            name,
            created_at: self.created_at,
            kind,
        }
    }

    #[cold]
    fn assign_id(&self) -> u64 {
        let fresh = NEXT_LOCK_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self
            .id
            .compare_exchange(NO_ID_YET, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(winner) => winner,
        }
    }

    /// A blocking or timed acquisition: `attempt` tries once without
    /// waiting (it may be called several times), `wait` takes the lock
    /// (waiting until `deadline`, `None`: as long as it takes) and says
    /// whether it got it. The spin before publishing the wait stops at
    /// `deadline` too (see `SpinWait::spin_before`).
    ///
    /// The fast path (every pair with the held locks already seen by this
    /// thread, and the lock free) is inline; the rest is
    /// [`acquire_slow`](Self::acquire_slow).
    #[inline]
    #[track_caller]
    pub(crate) fn acquire(
        &self,
        name: Option<&'static str>,
        kind: LockKind,
        deadline: Option<Instant>,
        attempt: impl Fn() -> bool,
        wait: impl FnOnce() -> bool,
    ) -> bool {
        let id = self.id.load(Ordering::Relaxed);
        if id == UNTRACKED {
            return wait();
        }
        let site = Location::caller();
        if id != NO_ID_YET {
            let taken = registry::with_local(|local| {
                local.make_room();
                let taken = local.pairs_known(LockId(id)) && attempt();
                if taken {
                    self.push_held(local, self.info_of(LockId(id), name, kind), site);
                }
                taken
            });
            if taken == Some(true) {
                return true;
            }
        }
        self.acquire_slow(name, kind, site, deadline, attempt, wait)
    }

    /// [`acquire`](Self::acquire) of a lock not used yet, taking a new
    /// pair, or held by another thread.
    #[inline(never)]
    fn acquire_slow(
        &self,
        name: Option<&'static str>,
        kind: LockKind,
        site: &'static Location<'static>,
        deadline: Option<Instant>,
        attempt: impl Fn() -> bool,
        wait: impl FnOnce() -> bool,
    ) -> bool {
        let Some(lock) = self.info(name, kind) else {
            return wait();
        };
        let first = registry::with_local(|local| {
            let reentry = matches!(kind, LockKind::ReentrantLock) && local.holds(lock.id);
            if !reentry {
                // Not while unwinding: a second panic would abort the
                // process (the violation is recorded all the same).
                let panics =
                    PANIC_ON_VIOLATION.load(Ordering::Relaxed) && !std::thread::panicking();
                let closing = if panics {
                    Closing::Refused
                } else {
                    Closing::Taken
                };
                if let Some(violation) = check_order(local, &lock, site, closing) {
                    if panics {
                        return FirstStep::Violation(violation);
                    }
                }
            }
            // Room for the entry before the lock is taken (see `make_room`).
            local.make_room();
            if attempt() {
                self.push_held(local, lock.clone(), site);
                return FirstStep::Taken;
            }
            self.before_waiting(local, &lock, name, kind, site, deadline, &attempt)
        });
        match first {
            Some(FirstStep::Taken) => true,
            Some(FirstStep::Violation(violation)) => panic_at_violation(&violation),
            Some(FirstStep::Waits { outer }) => {
                // Nothing in `wait` unwinds (it only parks), so the entry is
                // always put back below.
                let acquired = wait();
                registry::with_local(|local| {
                    local.restore(outer);
                    if acquired {
                        self.push_held(local, lock, site);
                    }
                });
                acquired
            }
            // The thread is being torn down: untracked.
            None => wait(),
        }
    }

    /// The attempt failed: spin a little (not past `deadline`), trying
    /// again, then publish that the thread is blocked.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn before_waiting(
        &self,
        local: &Local,
        lock: &LockInfo,
        name: Option<&'static str>,
        kind: LockKind,
        site: &'static Location<'static>,
        deadline: Option<Instant>,
        attempt: &impl Fn() -> bool,
    ) -> FirstStep {
        let mut spin = SpinWait::default();
        while spin.spin_before(deadline) {
            if attempt() {
                self.push_held(local, lock.clone(), site);
                return FirstStep::Taken;
            }
        }
        // An outer mark (user code taking a lock inside a queue operation,
        // e.g. a priority item's `Ord`) is put back after.
        let outer = local.publish(Blocked {
            operation: operation(kind),
            name,
            lock: Some(lock.clone()),
            at: site,
            since: Instant::now(),
            episode: 0, // set by `publish`
        });
        FirstStep::Waits { outer }
    }

    /// A non-blocking acquisition (no lock-order edge: it cannot block).
    #[inline]
    #[track_caller]
    pub(crate) fn try_acquire(
        &self,
        name: Option<&'static str>,
        kind: LockKind,
        attempt: impl FnOnce() -> bool,
    ) -> bool {
        let site = Location::caller();
        let Some(lock) = self.info(name, kind) else {
            return attempt();
        };
        let mut attempt = Some(attempt);
        let tracked = registry::with_local(|local| {
            // Room for the entry before the lock is taken (see `make_room`).
            local.make_room();
            let taken = attempt.take().is_some_and(|attempt| attempt());
            if taken {
                self.push_held(local, lock, site);
            }
            taken
        });
        match tracked {
            Some(taken) => taken,
            // Untracked (see `with_local`): the attempt was not made.
            None => attempt.is_some_and(|attempt| attempt()),
        }
    }

    #[inline]
    fn push_held(&self, local: &Local, lock: LockInfo, site: &'static Location<'static>) {
        local.push(lock, site);
        self.holder.store(local.serial(), Ordering::Relaxed);
    }

    /// One level of the lock is about to be released.
    #[inline]
    pub(crate) fn release(&self) {
        let id = self.id.load(Ordering::Relaxed);
        if id == UNTRACKED || id == NO_ID_YET {
            return;
        }
        // `Some(false)` (no level left) or `None` (the thread is being
        // torn down and lists nothing any more): no holder. But `None`
        // from inside the diagnostics' own work (an allocator they called
        // releasing its lock) releases a level whose acquisition was not
        // tracked either: the holder, if any, stays.
        let still_held = registry::with_local(|local| local.remove_one(LockId(id)));
        if still_held != Some(true) && !(still_held.is_none() && registry::in_tracker()) {
            self.holder.store(NO_HOLDER, Ordering::Relaxed);
        }
    }

    /// Every level is about to be released for a condition wait.
    pub(crate) fn release_for_wait(&self) -> SavedHolds {
        let id = self.id.load(Ordering::Relaxed);
        if id == UNTRACKED || id == NO_ID_YET {
            return SavedHolds(Vec::new());
        }
        self.holder.store(NO_HOLDER, Ordering::Relaxed);
        let removed = registry::with_local(|local| local.remove_all(LockId(id)));
        SavedHolds(removed.unwrap_or_default())
    }

    /// Takes the lock again after a condition wait (`relock` blocks until
    /// it has it), recorded as blocked on the lock at the wait's call site.
    #[track_caller]
    pub(crate) fn reacquire_after_wait(
        &self,
        name: Option<&'static str>,
        kind: LockKind,
        saved: SavedHolds,
        relock: impl FnOnce(),
    ) {
        let site = Location::caller();
        let Some(lock) = self.info(name, kind) else {
            return relock();
        };
        let outer = registry::with_local(|local| {
            // Taking the lock again while holding others is an acquisition
            // like any: its order is recorded. (Recorded only, never a
            // panic here: the waiter's guard must get its lock back.)
            let _ = check_order(local, &lock, site, Closing::Taken);
            local.publish(Blocked {
                operation: "Condition::wait (taking its lock again)",
                name,
                lock: Some(lock),
                at: site,
                since: Instant::now(),
                episode: 0, // set by `publish`
            })
        });
        relock();
        if let Some(outer) = outer {
            registry::with_local(|local| {
                local.restore(outer);
                // Its wait got its lock (`extend` is no `push`).
                local.answered();
                if !saved.0.is_empty() {
                    self.holder.store(local.serial(), Ordering::Relaxed);
                }
                local.extend(saved.0);
            });
        }
    }
}

impl Drop for LockTracking {
    fn drop(&mut self) {
        let id = read_exclusive(&mut self.id);
        if id == UNTRACKED || id == NO_ID_YET {
            return;
        }
        let holder = read_exclusive(&mut self.holder);
        // Not from inside the diagnostics' own work (a lock dropped by an
        // allocator they called): its registry locks may be held by this
        // thread. The lock's traces then stay (see the module's limits).
        registry::as_tracker(|| {
            order::forget_lock(LockId(id));
            if holder != NO_HOLDER {
                // A guard was leaked with `mem::forget` and the lock dropped.
                registry::forget_dropped_lock(holder, LockId(id));
            }
        });
    }
}

impl BlockedIn {
    /// The current thread is about to block in `operation` (e.g.
    /// `"Event::wait"`) of a primitive named `name`, if it has one. If it
    /// is already marked (a primitive built on another, like `Barrier` on
    /// `Condition`), the outermost operation stays: that is the user's call.
    #[inline]
    #[track_caller]
    pub(crate) fn new(operation: &'static str, name: Option<&'static str>) -> Self {
        let mut waiting = Self::later(operation, name);
        waiting.mark();
        waiting
    }

    /// As [`new`](Self::new), unless `done()` says the call will return at
    /// once (e.g. the event is already set).
    #[inline]
    #[track_caller]
    pub(crate) fn unless(
        operation: &'static str,
        name: Option<&'static str>,
        done: impl FnOnce() -> bool,
    ) -> Self {
        if done() {
            Self::never()
        } else {
            Self::new(operation, name)
        }
    }

    /// Runs `attempt` (one try that never waits); only if it fails, marks
    /// the thread as blocked in `operation` while `wait` runs. Whether it
    /// succeeded (`attempt` or `wait`).
    #[inline]
    #[track_caller]
    pub(crate) fn attempt_or_wait(
        operation: &'static str,
        name: Option<&'static str>,
        attempt: impl FnOnce() -> bool,
        wait: impl FnOnce() -> bool,
    ) -> bool {
        if attempt() {
            return true;
        }
        let _waiting = Self::new(operation, name);
        wait()
    }

    /// Remembers the call site of `operation` without marking yet: an
    /// operation that first tries (and may spin) calls [`mark`](Self::mark)
    /// only when it is about to park, so a call that never waits costs no
    /// bookkeeping.
    #[inline]
    #[track_caller]
    pub(crate) fn later(operation: &'static str, name: Option<&'static str>) -> Self {
        Self {
            pending: Some((operation, name, Location::caller())),
            tracked: false,
        }
    }

    /// Never marks: for the crate's own internal waits (an idle pool
    /// worker waiting for a job is not a hang of the user's program).
    #[inline]
    pub(crate) const fn never() -> Self {
        Self {
            pending: None,
            tracked: false,
        }
    }

    /// Marks the thread as blocked, the first time it is called (later
    /// calls, and calls on [`never`](Self::never), do nothing).
    #[inline]
    pub(crate) fn mark(&mut self) {
        if let Some((operation, name, at)) = self.pending.take() {
            self.tracked = mark_blocked(operation, name, at);
        }
    }
}

/// Marks the current thread as blocked in `operation` unless it already is
/// (the outermost operation stays); whether it marked.
#[cold]
fn mark_blocked(
    operation: &'static str,
    name: Option<&'static str>,
    at: &'static Location<'static>,
) -> bool {
    #[cfg(test)]
    tests::MARKS_ON_THIS_THREAD.with(|marks| marks.set(marks.get() + 1));
    let marked = registry::with_local(|local| {
        local.publish_unless_blocked(Blocked {
            operation,
            name,
            lock: None,
            at,
            since: Instant::now(),
            episode: 0, // set by `publish`
        })
    });
    marked == Some(true)
}

impl Drop for BlockedIn {
    fn drop(&mut self) {
        if self.tracked {
            registry::with_local(|local| local.restore(None));
        }
    }
}

/// The operation name of a blocking acquisition.
fn operation(kind: LockKind) -> &'static str {
    match kind {
        LockKind::Mutex => "Mutex::lock",
        LockKind::ReentrantLock => "ReentrantLock::lock",
    }
}

/// Whether the acquisition goes ahead when it closes a lock-order cycle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// It does: its edges are entered in the order graph like any.
    Taken,
    /// It panics instead (the panic switch): the edge that closes the
    /// cycle is neither entered in the graph nor remembered as seen, so
    /// the next acquisition in that order, by any thread, closes the cycle
    /// again and panics again.
    Refused,
}

/// Enters each new (held, `lock`) pair in the order graph; returns the
/// first violation this acquisition closes, if any. A pair already seen by
/// this thread costs one lookup in its seen-pairs cache.
#[inline]
fn check_order(
    local: &Local,
    lock: &LockInfo,
    site: &'static Location<'static>,
    closing: Closing,
) -> Option<LockOrderViolation> {
    let mut new_pair = false;
    for index in 0..local.held_count() {
        let held_id = local.held_id(index);
        // Every pair goes through `first_time`, so that each is remembered.
        new_pair |= held_id != lock.id && local.first_time((held_id, lock.id));
    }
    if new_pair {
        enter_pairs(local, lock, site, closing)
    } else {
        None
    }
}

/// Enters every (held, `lock`) pair in the order graph (those already
/// there cost a lookup), first forgetting held locks that were dropped (a
/// dropped lock's node must not come back).
#[cold]
fn enter_pairs(
    local: &Local,
    lock: &LockInfo,
    site: &'static Location<'static>,
    closing: Closing,
) -> Option<LockOrderViolation> {
    local.forget_dropped_locks();
    let mut found = None;
    for index in 0..local.held_count() {
        let first = local.held_at(index);
        if first.lock.id == lock.id {
            continue;
        }
        let step = LockOrderStep {
            thread: local.thread().clone(),
            first,
            then: HeldLock {
                lock: lock.clone(),
                taken_at: site,
            },
        };
        let refused = closing == Closing::Refused;
        if let Some(violation) = order::add_edge(&step, !refused) {
            if refused {
                local.forget_pair((step.first.lock.id, lock.id));
            }
            found.get_or_insert(violation);
        }
    }
    found
}

#[cold]
#[track_caller]
fn panic_at_violation(violation: &LockOrderViolation) -> ! {
    panic!("verisync: {violation}")
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::BlockedIn;
    use crate::deadlock::blocked_threads;
    use crate::{Event, JoinableQueue, Mutex, Semaphore, ThreadPool};

    thread_local! {
        /// How many times this thread was marked blocked (`mark_blocked`).
        pub(super) static MARKS_ON_THIS_THREAD: Cell<usize> = const { Cell::new(0) };
    }

    /// How many marks `body` made on this thread.
    fn marks_made_by(body: impl FnOnce()) -> usize {
        let before = MARKS_ON_THIS_THREAD.with(Cell::get);
        body();
        MARKS_ON_THIS_THREAD.with(Cell::get) - before
    }

    /// A call that can finish at once does no blocked-thread bookkeeping
    /// (which takes the thread's record lock twice); only a call that is
    /// about to park marks the thread.
    #[test]
    fn calls_that_do_not_wait_mark_nothing() {
        let semaphore = Semaphore::new(3);
        let event = Event::new();
        event.set();
        let queue = JoinableQueue::bounded(2);
        let pool = ThreadPool::new(1);
        let done = pool.submit(|| 1);
        done.wait();
        let soon = Instant::now() + Duration::from_secs(5);
        let marks = marks_made_by(|| {
            drop(semaphore.acquire());
            drop(semaphore.acquire_many(3));
            drop(semaphore.try_acquire_for(Duration::from_secs(5)));
            drop(semaphore.try_acquire_many_until(2, soon));
            event.wait();
            assert!(event.wait_timeout(Duration::from_secs(5)));
            queue.put(1).unwrap();
            queue.put_timeout(2, Duration::from_secs(5)).unwrap();
            assert_eq!(queue.get(), Ok(1));
            assert_eq!(queue.get_timeout(Duration::from_secs(5)), Ok(2));
            queue.task_done().unwrap();
            queue.task_done().unwrap();
            queue.join();
            assert!(queue.join_timeout(Duration::from_secs(5)));
            done.wait();
            assert!(done.wait_timeout(Duration::from_secs(5)));
            assert!(done.wait_until(soon));
        });
        assert_eq!(marks, 0);
        // The counter does count a call that waits.
        let empty = Semaphore::new(0);
        let waited = marks_made_by(|| {
            assert!(empty.try_acquire_for(Duration::from_millis(5)).is_none());
        });
        assert_eq!(waited, 1);
    }

    /// The operation `thread` is blocked in, per `blocked_threads()`.
    fn blocked_in(thread: thread::ThreadId) -> Option<&'static str> {
        blocked_threads()
            .into_iter()
            .find(|blocked| blocked.thread.id == thread)
            .map(|blocked| blocked.operation)
    }

    /// User code inside a marked operation (a priority item's `Ord` inside
    /// `JoinableQueue::get`) waits for a lock: the report says so while it
    /// waits, and the operation's mark is back afterwards.
    #[test]
    fn a_lock_waited_for_inside_a_marked_operation_puts_the_mark_back() {
        let inner = Arc::new(Mutex::with_name("inside-an-operation", ()));
        let held = inner.lock();
        thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let _outer = BlockedIn::new("Outer::wait", None);
                drop(inner.lock());
                blocked_in(thread::current().id())
            });
            let id = waiter.thread().id();
            while blocked_in(id) != Some("Mutex::lock") {
                thread::sleep(Duration::from_millis(1));
            }
            drop(held);
            assert_eq!(waiter.join().unwrap(), Some("Outer::wait"));
        });
    }
}
