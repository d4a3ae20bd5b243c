//! The public entry points of the diagnostics.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::hooks::PANIC_ON_VIOLATION;
use super::order;
use super::registry::{self, Blocked};
use super::report::ThreadInfo as Thread;
pub use super::report::{
    BlockedThread, Deadlock, DeadlockedThread, HeldLock, LockId, LockInfo, LockKind, LockOrderStep,
    LockOrderViolation, ThreadInfo,
};
pub use super::watchdog::{watchdog, WatchdogHandle};

/// Every cycle of threads blocked right now, each waiting for a lock
/// (`Mutex`, `ReentrantLock`, or a `Condition` waiter's lock) that the next
/// one holds. Each cycle is reported once, starting with the thread that
/// first used a tracked lock.
///
/// Non-destructive: it reads one consistent snapshot of the threads' records
/// and wakes, moves or kills nobody, so threads waiting with a timeout go on
/// as if it had not run. A thread locking a `Mutex` it already holds is a
/// cycle of one.
///
/// ```
/// // Nothing is blocked here, so there is no deadlock.
/// let m = verisync::Mutex::with_name("m", 0);
/// let _held = m.lock();
/// assert!(verisync::deadlock::detect().is_empty());
/// ```
pub fn detect() -> Vec<Deadlock> {
    detect_with_episodes()
        .into_iter()
        .map(|(deadlock, _)| deadlock)
        .collect()
}

/// [`detect`], with the [`episode`](registry::Blocked::episode) of each
/// member's wait (in the order of `threads`), from the same snapshot: what
/// tells the watchdog a deadlock of retried waits from one formed anew.
pub(crate) fn detect_with_episodes() -> Vec<(Deadlock, Vec<u64>)> {
    registry::with_snapshot(|threads| {
        let now = Instant::now();
        let mut holder: HashMap<LockId, usize> = HashMap::new();
        for (index, (_, _, held_list)) in threads.iter().enumerate() {
            for held in *held_list {
                holder.entry(held.lock.id).or_insert(index);
            }
        }
        // Each blocked thread waits for one lock, held by at most one
        // thread: the wait-for graph has at most one edge out of each node.
        let next: Vec<Option<usize>> = threads
            .iter()
            .map(|(_, blocked, _)| {
                let lock = blocked.lock.as_ref()?;
                holder.get(&lock.id).copied()
            })
            .collect();
        const UNSEEN: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let mut mark = vec![UNSEEN; threads.len()];
        let mut found = Vec::new();
        for start in 0..threads.len() {
            let mut path = Vec::new();
            let mut at = Some(start);
            while let Some(index) = at {
                match mark[index] {
                    DONE => break,
                    ON_PATH => {
                        let first = path.iter().position(|&member| member == index);
                        let mut cycle = path[first.unwrap_or(0)..].to_vec();
                        let smallest = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                        cycle.rotate_left(smallest);
                        found.push(deadlock_of(threads, &cycle, now));
                        break;
                    }
                    _ => {
                        mark[index] = ON_PATH;
                        path.push(index);
                        at = next[index];
                    }
                }
            }
            for member in path {
                mark[member] = DONE;
            }
        }
        found
    })
}

fn deadlock_of(
    threads: &[(&Thread, &Blocked, &[HeldLock])],
    cycle: &[usize],
    now: Instant,
) -> (Deadlock, Vec<u64>) {
    let (threads, episodes) = cycle
        .iter()
        .filter_map(|&index| {
            let (thread, blocked, held) = threads[index];
            let member = DeadlockedThread {
                thread: thread.clone(),
                waits_for: blocked.lock.clone()?,
                waiting_at: blocked.at,
                since: blocked.since,
                waited: now.saturating_duration_since(blocked.since),
                holds: held.to_vec(),
            };
            Some((member, blocked.episode))
        })
        .unzip();
    (Deadlock { threads }, episodes)
}

/// Every thread blocked right now in a verisync primitive, in the order
/// they first used one: the operation, the primitive's name, the call site,
/// the wait so far and the locks it holds. Explains a hang that is not a
/// lock cycle (an `Event` nobody sets, a `JoinableQueue::join` whose
/// consumer died, a lock held by a thread that leaked its guard).
///
/// Covered: `Mutex` and `ReentrantLock` locks, `Condition`, `Event`,
/// `Barrier` and `Semaphore` waits, `JoinableQueue` puts, gets and joins
/// (every form) and `TaskHandle` joins and waits (both pools). A call is
/// listed only once it is about to park, never while it finishes at once.
/// The pools' own threads waiting for work are not listed (a task blocked
/// on a worker is).
///
/// ```
/// use std::time::Duration;
/// let m = verisync::Mutex::with_name("config", ());
/// let _held = m.lock();
/// std::thread::scope(|scope| {
///     scope.spawn(|| m.try_lock_for(Duration::from_millis(300)).is_some());
///     let dump = loop {
///         let dump = verisync::deadlock::blocked_threads();
///         if !dump.is_empty() {
///             break dump;
///         }
///         std::thread::yield_now();
///     };
///     assert_eq!(dump[0].lock.as_ref().unwrap().name, Some("config"));
///     eprintln!("{}", dump[0]); // "... has waited 0.0ns in Mutex::lock for config (at src/...)"
/// });
/// ```
pub fn blocked_threads() -> Vec<BlockedThread> {
    registry::with_snapshot(|threads| {
        let now = Instant::now();
        threads
            .iter()
            .map(|&(thread, blocked, held)| BlockedThread {
                thread: (*thread).clone(),
                operation: blocked.operation,
                name: blocked.name,
                lock: blocked.lock.clone(),
                waiting_at: blocked.at,
                since: blocked.since,
                waited: now.saturating_duration_since(blocked.since),
                holds: held.to_vec(),
            })
            .collect()
    })
}

/// Every lock-order violation found so far in this process, oldest first:
/// locks taken in orders that can deadlock, whether or not a deadlock
/// happened. Each is reported once, when the acquisition that closes the
/// cycle is first attempted.
///
/// One entry is kept per inversion in the code: violations whose every
/// step names the same locks (name and creation site) taken at the same
/// lines are kept once, the first. So locks made per request and taken in
/// the wrong order on every request are one entry, and an inversion
/// elsewhere found later is still listed. At most 1024 are kept.
///
/// ```
/// use verisync::{deadlock, Mutex};
///
/// let a = Mutex::with_name("first", ());
/// let b = Mutex::with_name("second", ());
/// {
///     let _a = a.lock();
///     let _b = b.lock(); // first → second
/// }
/// {
///     let _b = b.lock();
///     let _a = a.lock(); // second → first: can deadlock with the above
/// }
/// let found = deadlock::lock_order_violations();
/// let report = found.iter().map(ToString::to_string).find(|r| r.contains("first")).unwrap();
/// assert!(report.contains("took first"));
/// assert!(report.contains("and then first"));
/// ```
pub fn lock_order_violations() -> Vec<LockOrderViolation> {
    order::violations()
}

/// Whether the acquisition that closes a lock-order cycle panics (with the
/// violation's report) instead of only recording it. Off by default; turn
/// it on at the start of a test suite. The panic happens before the lock is
/// taken, so nothing is left locked.
///
/// It does not panic while the thread is already unwinding (a second panic
/// would abort the process); the violation is recorded all the same.
///
/// **Limit: thread-local destructors.** An acquisition that closes a cycle
/// inside a thread-local's destructor (a value kept in a `thread_local!`
/// that takes locks when dropped, or a guard kept there) panics there too,
/// and Rust aborts the process on a panic in a thread-local's destructor
/// ("thread local panicked on drop, aborting"). No code can tell reliably
/// that it runs in such a destructor, so the switch cannot spare it. With
/// the switch on, empty such thread-locals before the thread ends (e.g.
/// `KEPT.take()` at the end of the thread's function), so that their locks
/// are taken in ordinary code where the panic unwinds; or leave the switch
/// off for those threads' code and check [`lock_order_violations`], which
/// records the violation either way.
///
/// ```
/// use verisync::{deadlock, Mutex};
///
/// deadlock::panic_on_lock_order_violation(true);
/// let a = Mutex::with_name("left", ());
/// let b = Mutex::with_name("right", ());
/// drop((a.lock(), b.lock()));
/// let closing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
///     let _b = b.lock();
///     let _a = a.lock();
/// }));
/// deadlock::panic_on_lock_order_violation(false);
/// assert!(closing.is_err());
/// assert!(!a.is_locked() && !b.is_locked());
/// ```
pub fn panic_on_lock_order_violation(panic: bool) {
    PANIC_ON_VIOLATION.store(panic, Ordering::Relaxed);
}
