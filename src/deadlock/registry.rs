//! The registry of threads for the diagnostics: one record per thread that
//! ever used a tracked lock, holding what it holds and what it is blocked on.
//!
//! # Design
//!
//! Each thread owns an `Arc<ThreadRecord>` in a thread-local and is listed
//! in the global [`THREADS`]. A thread changes only its own record, under
//! the record's `std::sync::Mutex` (uncontended except while a report is
//! being made); reports lock [`THREADS`] and then every record, so they
//! read one consistent snapshot of all threads. Nothing here is lock-free,
//! so there is no race to model with loom: a thread sets and clears its own
//! "blocked" entry, and the thread that wakes it never touches it.
//!
//! Lock order (never taken the other way round): [`THREADS`], then records
//! (a thread takes only its own; a report takes all, in list order), then
//! the order graph (`order.rs`). No lock here is a verisync lock.
//!
//! A thread that ends while holding locks (a guard leaked with
//! `mem::forget`) stays listed, marked exited, so the reports still show
//! who holds them; its record goes when those locks are dropped.
//!
//! A guard kept in a thread-local may be dropped as its thread ends, after
//! [`CURRENT`] is gone: the release finds the record by the thread's serial
//! number ([`SERIAL`], a thread-local with no destructor, readable to the
//! end), so the ended thread is not left holding a lock it released.

use std::cell::Cell;
use std::collections::HashSet;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use super::report::{HeldLock, LockId, LockInfo, ThreadInfo};

/// Every thread that has a record, in the order they registered.
pub(crate) static THREADS: Mutex<Vec<Arc<ThreadRecord>>> = Mutex::new(Vec::new());

/// At most this many lock pairs are remembered per thread as already
/// checked; past it the cache starts over (it is only a cache: the graph
/// in `order.rs` still knows every edge).
const SEEN_PAIRS_LIMIT: usize = 4096;

/// The serial number of the next thread to register (serials start at 1;
/// 0 means "not registered").
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// One thread's record.
pub(crate) struct ThreadRecord {
    pub(crate) thread: ThreadInfo,
    /// The thread's serial number, as in its [`SERIAL`].
    serial: u64,
    pub(crate) state: Mutex<ThreadState>,
}

/// What a thread holds and waits for.
pub(crate) struct ThreadState {
    /// Every lock level it holds, in the order taken (a reentrant lock
    /// taken twice is here twice).
    pub(crate) held: Vec<HeldLock>,
    /// What it is blocked on, set before it parks and cleared after.
    pub(crate) blocked: Option<Blocked>,
    /// Lock pairs (held, then taken) already entered in the order graph
    /// by this thread: the fast path's seen-pair check.
    pub(crate) seen_pairs: HashSet<(LockId, LockId)>,
    /// The thread has ended (it still holds leaked locks).
    pub(crate) exited: bool,
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
}

impl ThreadState {
    /// Whether the thread holds (a level of) `lock`.
    pub(crate) fn holds(&self, lock: LockId) -> bool {
        self.held.iter().any(|held| held.lock.id == lock)
    }

    /// Forgets one level of `lock` (the most recent); whether it had one.
    pub(crate) fn remove_one(&mut self, lock: LockId) -> bool {
        match self.held.iter().rposition(|held| held.lock.id == lock) {
            Some(index) => {
                self.held.remove(index);
                true
            }
            None => false,
        }
    }

    /// Forgets every level of `lock`, returning them.
    pub(crate) fn remove_all(&mut self, lock: LockId) -> Vec<HeldLock> {
        let mut removed = Vec::new();
        self.held.retain(|held| {
            if held.lock.id == lock {
                removed.push(held.clone());
                false
            } else {
                true
            }
        });
        removed
    }

    /// Records that the pair was checked; `false` if it already was.
    pub(crate) fn first_time(&mut self, pair: (LockId, LockId)) -> bool {
        if self.seen_pairs.contains(&pair) {
            return false;
        }
        if self.seen_pairs.len() >= SEEN_PAIRS_LIMIT {
            self.seen_pairs.clear();
        }
        self.seen_pairs.insert(pair);
        true
    }
}

impl ThreadRecord {
    /// The record's state, locked.
    pub(crate) fn state(&self) -> MutexGuard<'_, ThreadState> {
        lock(&self.state)
    }
}

/// Locks a registry mutex; nothing panics while holding one, but if a
/// panic ever did, the data is still consistent (each change is one step).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The current thread's registration; unregisters when the thread ends.
struct Registration(Arc<ThreadRecord>);

impl Registration {
    fn register() -> Self {
        let current = thread::current();
        let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
        SERIAL.set(serial);
        let record = Arc::new(ThreadRecord {
            thread: ThreadInfo {
                name: current.name().map(str::to_owned),
                id: current.id(),
            },
            serial,
            state: Mutex::new(ThreadState {
                held: Vec::new(),
                blocked: None,
                seen_pairs: HashSet::new(),
                exited: false,
            }),
        });
        lock(&THREADS).push(Arc::clone(&record));
        Self(record)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut threads = lock(&THREADS);
        let mut state = self.0.state();
        if state.held.is_empty() {
            threads.retain(|record| !Arc::ptr_eq(record, &self.0));
        } else {
            state.exited = true;
            state.blocked = None;
        }
    }
}

thread_local! {
    static CURRENT: Registration = Registration::register();
    /// The current thread's serial number once it registered, else 0. No
    /// destructor, so it can be read while the thread is torn down.
    static SERIAL: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with the current thread's record; `None` while the thread is
/// being torn down (its locks are then untracked).
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&ThreadRecord) -> R) -> Option<R> {
    CURRENT.try_with(|registration| f(&registration.0)).ok()
}

/// Runs `f` (a release: it only removes held entries) with the current
/// thread's record, also while the thread is being torn down and
/// [`CURRENT`] is gone (a guard kept in a thread-local); `None` if the
/// thread never registered.
#[inline]
pub(crate) fn with_current_for_release<R>(f: impl FnOnce(&mut ThreadState) -> R) -> Option<R> {
    let mut f = Some(f);
    let done = with_current(|record| f.take().map(|f| f(&mut record.state())));
    match (done, f) {
        (Some(result), _) => result,
        (None, Some(f)) => release_after_teardown(f),
        (None, None) => None,
    }
}

/// A release after [`CURRENT`] is gone: the record is found by serial
/// number, and removed once it holds nothing (it is marked exited).
#[cold]
fn release_after_teardown<R>(f: impl FnOnce(&mut ThreadState) -> R) -> Option<R> {
    let serial = SERIAL.with(Cell::get);
    if serial == 0 {
        return None;
    }
    let mut threads = lock_threads();
    let index = threads.iter().position(|record| record.serial == serial)?;
    let record = Arc::clone(&threads[index]);
    let mut state = record.state();
    let result = f(&mut state);
    if state.exited && state.held.is_empty() {
        threads.remove(index);
    }
    Some(result)
}

/// Removes every trace of a dropped lock from every record (it can only be
/// held if a guard was leaked with `mem::forget`).
#[cold]
pub(crate) fn forget_lock_everywhere(lock: LockId) {
    let mut threads = lock_threads();
    threads.retain(|record| {
        let mut state = record.state();
        state.remove_all(lock);
        !(state.exited && state.held.is_empty())
    });
}

fn lock_threads() -> MutexGuard<'static, Vec<Arc<ThreadRecord>>> {
    lock(&THREADS)
}

/// Runs `f` on a consistent snapshot: every record locked at once.
pub(crate) fn with_snapshot<R>(f: impl FnOnce(&[(&ThreadInfo, &ThreadState)]) -> R) -> R {
    let threads = lock_threads();
    let guards: Vec<_> = threads.iter().map(|record| record.state()).collect();
    let view: Vec<(&ThreadInfo, &ThreadState)> = threads
        .iter()
        .zip(&guards)
        .map(|(record, state)| (&record.thread, &**state))
        .collect();
    f(&view)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::{lock, THREADS};
    use crate::{Mutex, MutexGuard};

    /// A guard kept in a thread-local is dropped after the registration is
    /// gone: the release is recorded all the same, and the ended thread's
    /// record goes with it.
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
        assert!(
            lock(&THREADS)
                .iter()
                .all(|record| record.thread.id != ended),
            "the ended thread still has a record"
        );
    }

    /// A thread that ends holding a leaked lock stays listed (marked
    /// exited) until the lock is dropped; then no record names the lock.
    #[test]
    fn a_dropped_lock_leaves_no_entry_even_after_a_leak() {
        let named = |name: &str| {
            lock(&THREADS).iter().any(|record| {
                record
                    .state()
                    .held
                    .iter()
                    .any(|held| held.lock.name == Some(name))
            })
        };
        let m = std::thread::spawn(|| {
            let m = Box::new(Mutex::with_name("registry-leaked", ()));
            std::mem::forget(m.lock());
            m
        })
        .join()
        .unwrap();
        assert!(named("registry-leaked"), "the exited thread still holds it");
        drop(m);
        assert!(
            !named("registry-leaked"),
            "dropping the lock removed every trace"
        );
    }
}
