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

use std::collections::HashSet;
use std::panic::Location;
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

/// One thread's record.
pub(crate) struct ThreadRecord {
    pub(crate) thread: ThreadInfo,
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
        let record = Arc::new(ThreadRecord {
            thread: ThreadInfo {
                name: current.name().map(str::to_owned),
                id: current.id(),
            },
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
}

/// Runs `f` with the current thread's record; `None` while the thread is
/// being torn down (its locks are then untracked).
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&ThreadRecord) -> R) -> Option<R> {
    CURRENT.try_with(|registration| f(&registration.0)).ok()
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
    use super::{lock, THREADS};
    use crate::Mutex;

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
