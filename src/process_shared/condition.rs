//! `process::Condition`: a condition variable for processes, used with a
//! [`process::Lock`](super::Lock)'s guard. The state machine is in
//! `raw/process_condition.rs`.
//!
//! # Layout in the arena
//!
//! ```text
//!  0             object header                                  (16 bytes)
//!  16            state lock word (robust.rs)                    (4 bytes)
//!  20            state: wake, lock, waiting, cursor             (16 bytes)
//!  64            waiting: one record per process-table slot, SLOTS × (holder, count)
//!  64 + 8 KiB    granted: one record per process-table slot, SLOTS × (holder, count)
//! ```
//!
//! 16 KiB and a line per condition. Each process also keeps, in its own
//! memory, the list of its threads waiting on each condition it uses
//! ([`LocalWaiters`], one per object, found by the object's offset as the
//! in-process locks of `known.rs` are).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, Object, KIND_CONDITION, LINE, NO_ELEMENT};
use super::error::{open_failed, OwnerDied, SharedError};
use super::lock::{guard_result, LockGuard};
use super::robust::RobustLock;
use super::table::SLOTS;
use crate::condition::WaitTimeoutResult;
use crate::mutex::Mutex;
use crate::raw::process_condition::{
    ConditionState, Holding, LocalWaiters, OtherLock, RawProcessCondition,
};
use crate::raw::process_lock::Acquired;
use crate::sys::time::deadline_after;

/// Where the state sits in the object (after the state lock word).
const STATE_AT: usize = 20;
/// Where the waiting records start: the second line.
const WAITING_AT: usize = LINE;
/// Where the granted records start.
const GRANTED_AT: usize = WAITING_AT + SLOTS * std::mem::size_of::<Holding>();
/// The object's extent.
const CONDITION_SIZE: usize = GRANTED_AT + SLOTS * std::mem::size_of::<Holding>();

/// What a wait hands back when the lock it takes back is marked: a holder
/// died holding it, while this thread waited or before the wait, and
/// nobody acknowledged that yet (a guard reached through
/// [`OwnerDied::get_mut`] keeps the mark). It carries the caller's guard
/// (it holds the lock again); [`into_guard`](OwnerDied::into_guard)
/// acknowledges the death.
///
/// ```
/// use std::time::Duration;
/// verisync::process::init();
/// let (lock, ready) = (verisync::process::Lock::new()?, verisync::process::Condition::new()?);
/// let mut guard = lock.lock().unwrap();
/// match ready.wait_timeout(&mut guard, Duration::from_millis(1)) {
///     Ok(result) => assert!(result.timed_out()),
///     Err(owner_died) => {
///         // Repair the data the lock guards, then mark it consistent:
///         owner_died.into_guard();
///     }
/// }
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
pub type OwnerDiedWhileWaiting<'g, 'l> = OwnerDied<&'g mut LockGuard<'l>>;

/// A condition variable for processes — Python's
/// `multiprocessing.Condition` — used with a [`Lock`](super::Lock)'s
/// guard: a thread of any process of the tree waits on it, releasing the
/// lock, until a thread of any process notifies it.
///
/// The thread [`Condition`](crate::Condition)'s methods (`wait`,
/// `wait_timeout`, `wait_until`, `wait_while`, `wait_timeout_while`,
/// `notify_one`, `notify`, `notify_all`, each notify returning how many it
/// woke), with these differences:
///
/// - **The lock's holder may die while you wait.** Each wait takes the
///   lock again before it returns; if the lock is marked then (a holder
///   died holding it, meanwhile or before the wait, and nobody
///   acknowledged it yet), the wait returns [`OwnerDied`] carrying your
///   guard (you hold the lock): repair
///   the data, then [`into_guard`](OwnerDied::into_guard) it to mark the
///   lock consistent, as after [`Lock::lock`](super::Lock::lock). Whether
///   that wait was notified or timed out is not reported then: look at the
///   data. The `_while` forms return it at once, without calling the
///   predicate over half-updated data; while the mark stays (a guard of
///   [`OwnerDied::get_mut`]), every wait returns it, so a `_while` form
///   returns it after its first wait.
/// - **No spurious wake-ups**: a wait returns notified only when a
///   notification was handed to it, and timed out only when none was by
///   its deadline. Every wake-up a notify counts is taken by exactly one
///   wait, and notify hands them only to processes alive when it looks.
///   If the process it handed one to dies before one of its threads takes
///   it, the notification **passes to another waiting thread** (found by
///   the waiters, who look every 10 ms): a `notify_one` meant for a thread
///   that was killed is not lost. The thread it passes to may have started
///   waiting after the `notify`. Nobody else waiting: it is dropped.
/// - **Order**: within a process, its threads are woken oldest first;
///   across processes, notifications take turns among the processes with
///   waiters (so none starves), rather than going strictly to the
///   longest-waiting thread of the tree.
/// - The predicate of the `_while` forms takes no argument (the lock
///   guards no data of its own: read your [`Value`](super::Value)s or
///   [`Array`](super::Array)s in it).
/// - Waiting with two different locks at once panics, as for the thread
///   `Condition`.
///
/// Create it before starting the processes that use it and pass it to them
/// as a task argument; clones name the same condition. A process that
/// writes garbage over the condition's shared memory can lose or add
/// notifications, never anything unsafe, never a hang past a deadline —
/// but for one write, as for the [`Barrier`](super::Barrier): a *live*
/// process writing its own identity into the condition's internal state
/// lock word makes that lock look held by it, and every call takes that
/// lock without a deadline (a timed waiter that gave up on it could not
/// deregister), so every call, timed waits past their deadline and
/// notifies included, waits until that process next calls the condition
/// or exits.
///
/// ```
/// verisync::process::init();
/// use verisync::process::{Condition, Lock, Value};
///
/// fn cook((lock, ready, dishes): (Lock, Condition, Value<u32>)) {
///     let _guard = lock.lock().unwrap();
///     dishes.store(1);
///     ready.notify_all();
/// }
///
/// let (lock, ready, dishes) = (Lock::new()?, Condition::new()?, Value::new(0u32)?);
/// let mut guard = lock.lock().unwrap();
/// let cook = verisync::process::spawn(cook, (lock.clone(), ready.clone(), dishes.clone())).unwrap();
/// ready.wait_while(&mut guard, || dishes.load() == 0).unwrap();
/// assert_eq!(dishes.load(), 1);
/// drop(guard);
/// cook.join().unwrap();
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    robust: RobustLock,
    local: &'static LocalWaiters,
}

impl Condition {
    /// A condition nobody waits on, in the process tree's shared memory.
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](super::Lock::new).
    ///
    /// ```
    /// verisync::process::init();
    /// let ready = verisync::process::Condition::new()?;
    /// assert_eq!(ready.notify_all(), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn new() -> Result<Self, SharedError> {
        let object = arena::for_new_object()?.allocate(
            KIND_CONDITION,
            NO_ELEMENT,
            CONDITION_SIZE,
            0,
            |object| {
                state(object).reset_memory();
                records(object, WAITING_AT).iter().for_each(Holding::reset);
                records(object, GRANTED_AT).iter().for_each(Holding::reset);
                RobustLock::reset(object);
            },
        )?;
        Ok(Self::with(object))
    }

    fn with(object: Object) -> Self {
        Self {
            local: local_waiters(&object),
            robust: RobustLock::new(object),
        }
    }

    fn raw(&self) -> RawProcessCondition<'static> {
        let object = self.robust.object();
        RawProcessCondition::new(
            state(object),
            records(object, WAITING_AT),
            records(object, GRANTED_AT),
            self.local,
        )
    }

    /// Releases the guard's lock, waits until notified, and takes the lock
    /// again before returning.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (carrying the guard: you hold the lock) if the lock
    /// is marked when the wait takes it back: a holder died holding it,
    /// during the wait or before it, and nobody acknowledged that yet (a
    /// guard reached through [`OwnerDied::get_mut`] keeps the mark, so
    /// every wait with it returns this). Acknowledge it with
    /// [`into_guard`](OwnerDied::into_guard).
    ///
    /// # Panics
    ///
    /// If threads are waiting on this condition with a different lock.
    ///
    /// ```
    /// verisync::process::init();
    /// use verisync::process::{Condition, Lock, Value};
    ///
    /// fn set((lock, changed, flag): (Lock, Condition, Value<u8>)) {
    ///     let _guard = lock.lock().unwrap();
    ///     flag.store(1);
    ///     changed.notify_one();
    /// }
    ///
    /// let (lock, changed, flag) = (Lock::new()?, Condition::new()?, Value::new(0u8)?);
    /// let mut guard = lock.lock().unwrap();
    /// let setter = verisync::process::spawn(set, (lock.clone(), changed.clone(), flag.clone())).unwrap();
    /// while flag.load() == 0 {
    ///     changed.wait(&mut guard).unwrap();
    /// }
    /// drop(guard);
    /// setter.join().unwrap();
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait<'g, 'l>(
        &self,
        guard: &'g mut LockGuard<'l>,
    ) -> Result<(), OwnerDiedWhileWaiting<'g, 'l>> {
        let (_, acquired) = self.wait_internal(guard, None);
        guard_result(guard, acquired).map(|_| ())
    }

    /// As [`wait`](Self::wait), giving up after `timeout`. A zero timeout
    /// returns timed out at once without releasing the lock;
    /// `Duration::MAX` waits forever.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let (lock, c) = (verisync::process::Lock::new()?, verisync::process::Condition::new()?);
    /// let mut guard = lock.lock().unwrap();
    /// assert!(c.wait_timeout(&mut guard, Duration::from_millis(2)).unwrap().timed_out());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait_timeout<'g, 'l>(
        &self,
        guard: &'g mut LockGuard<'l>,
        timeout: Duration,
    ) -> Result<WaitTimeoutResult, OwnerDiedWhileWaiting<'g, 'l>> {
        if timeout.is_zero() {
            return Ok(WaitTimeoutResult::new(true));
        }
        let (notified, acquired) = self.wait_internal(guard, deadline_after(timeout));
        guard_result(guard, acquired).map(|_| WaitTimeoutResult::new(!notified))
    }

    /// As [`wait`](Self::wait), giving up at `deadline`.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// verisync::process::init();
    /// let (lock, c) = (verisync::process::Lock::new()?, verisync::process::Condition::new()?);
    /// let mut guard = lock.lock().unwrap();
    /// let deadline = Instant::now() + Duration::from_millis(2);
    /// assert!(c.wait_until(&mut guard, deadline).unwrap().timed_out());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait_until<'g, 'l>(
        &self,
        guard: &'g mut LockGuard<'l>,
        deadline: Instant,
    ) -> Result<WaitTimeoutResult, OwnerDiedWhileWaiting<'g, 'l>> {
        let (notified, acquired) = self.wait_internal(guard, Some(deadline));
        guard_result(guard, acquired).map(|_| WaitTimeoutResult::new(!notified))
    }

    /// Waits while `condition` holds — Python's `wait_for(predicate)`.
    /// Returns at once if it does not hold. The predicate runs with the
    /// lock held.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait), returned at once (the predicate is not
    /// called again over data its holder may have half-updated). While
    /// the mark stays unacknowledged, that is after the first wait, every
    /// time.
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// verisync::process::init();
    /// use verisync::process::{Condition, Lock, Value};
    ///
    /// fn produce((lock, more, items): (Lock, Condition, Value<u32>)) {
    ///     for _ in 0..3 {
    ///         let _guard = lock.lock().unwrap();
    ///         items.fetch_add(1);
    ///         more.notify_one();
    ///     }
    /// }
    ///
    /// let (lock, more, items) = (Lock::new()?, Condition::new()?, Value::new(0u32)?);
    /// let producer = verisync::process::spawn(produce, (lock.clone(), more.clone(), items.clone())).unwrap();
    /// let mut guard = lock.lock().unwrap();
    /// more.wait_while(&mut guard, || items.load() < 3).unwrap();
    /// assert_eq!(items.load(), 3);
    /// drop(guard);
    /// producer.join().unwrap();
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait_while<'g, 'l>(
        &self,
        guard: &'g mut LockGuard<'l>,
        mut condition: impl FnMut() -> bool,
    ) -> Result<(), OwnerDiedWhileWaiting<'g, 'l>> {
        while condition() {
            let (_, acquired) = self.wait_internal(guard, None);
            if acquired == Acquired::OwnerDied {
                return Err(OwnerDied::new(guard));
            }
        }
        Ok(())
    }

    /// Waits while `condition` holds, for at most `timeout`. The result
    /// says `timed_out` only if the condition still held at the timeout.
    ///
    /// # Errors
    ///
    /// As [`wait_while`](Self::wait_while).
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let (lock, c) = (verisync::process::Lock::new()?, verisync::process::Condition::new()?);
    /// let mut guard = lock.lock().unwrap();
    /// let result = c.wait_timeout_while(&mut guard, Duration::from_millis(2), || true).unwrap();
    /// assert!(result.timed_out());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait_timeout_while<'g, 'l>(
        &self,
        guard: &'g mut LockGuard<'l>,
        timeout: Duration,
        mut condition: impl FnMut() -> bool,
    ) -> Result<WaitTimeoutResult, OwnerDiedWhileWaiting<'g, 'l>> {
        let deadline = deadline_after(timeout);
        while condition() {
            if timeout.is_zero() {
                return Ok(WaitTimeoutResult::new(true));
            }
            let (notified, acquired) = self.wait_internal(guard, deadline);
            if acquired == Acquired::OwnerDied {
                return Err(OwnerDied::new(guard));
            }
            if !notified {
                return Ok(WaitTimeoutResult::new(condition()));
            }
        }
        Ok(WaitTimeoutResult::new(false))
    }

    /// Wakes one waiting thread (of any process); returns how many it woke
    /// (0 or 1).
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::Condition::new()?.notify_one(), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn notify_one(&self) -> usize {
        self.notify(1)
    }

    /// Wakes up to `count` waiting threads (of any processes); returns how
    /// many it woke.
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::Condition::new()?.notify(3), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn notify(&self, count: usize) -> usize {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        let woken = self.raw().notify(count, &self.robust);
        usize::try_from(woken).unwrap_or(usize::MAX)
    }

    /// Wakes every waiting thread (of every process); returns how many it
    /// woke.
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::Condition::new()?.notify_all(), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn notify_all(&self) -> usize {
        self.notify(usize::MAX)
    }

    /// Registers, releases the guard's lock, waits until notified (`true`)
    /// or `deadline`, and takes the lock again (how it got it).
    fn wait_internal(
        &self,
        guard: &mut LockGuard<'_>,
        deadline: Option<Instant>,
    ) -> (bool, Acquired) {
        let raw = self.raw();
        let registered = match raw.register(guard.lock_id(), &self.robust) {
            Ok(registered) => registered,
            Err(OtherLock) => used_with_two_locks(),
        };
        let released = Released::new(guard);
        let notified = raw.await_notification(registered, deadline, &self.robust);
        (notified, released.relock())
    }
}

/// A guard whose lock a wait released: taken again when this is dropped,
/// even by a panic, so the guard never outlives its lock unheld.
struct Released<'g, 'l> {
    guard: Option<&'g mut LockGuard<'l>>,
}

impl<'g, 'l> Released<'g, 'l> {
    fn new(guard: &'g mut LockGuard<'l>) -> Self {
        guard.unlock_for_wait();
        Self { guard: Some(guard) }
    }

    /// Takes the lock again; how.
    fn relock(mut self) -> Acquired {
        self.guard.take().expect("relocked once").relock()
    }
}

impl Drop for Released<'_, '_> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.relock();
        }
    }
}

#[cold]
#[track_caller]
fn used_with_two_locks() -> ! {
    panic!(
        "verisync: a process::Condition was waited on with two different locks at the same time; \
         a condition serves one lock at a time, so use one Condition per lock"
    )
}

/// This process's lists of waiting threads, one per condition object, by
/// offset (objects this process uses never overlap: `known.rs`). Entries
/// are never removed, as objects are never freed.
static LOCAL: Mutex<BTreeMap<usize, &'static LocalWaiters>> = Mutex::new_untracked(BTreeMap::new());

/// This process's list of waiting threads of the condition `object`.
fn local_waiters(object: &Object) -> &'static LocalWaiters {
    let offset = object.handle().offset() as usize;
    LOCAL
        .lock()
        .entry(offset)
        .or_insert_with(|| Box::leak(Box::new(LocalWaiters::new())))
}

/// The state of the condition `object`.
fn state(object: &Object) -> &'static ConditionState {
    // SAFETY: `STATE_AT..STATE_AT + 16` lies inside the object's checked
    // extent (`CONDITION_SIZE`), 4-aligned (the object is 64-aligned);
    // `ConditionState` is `repr(C)` atomics only, valid for any bytes; the
    // arena lives for the process's life.
    unsafe { &*object.bytes(STATE_AT).cast::<ConditionState>() }
}

/// The records at `at` (`WAITING_AT` or `GRANTED_AT`) of the condition
/// `object`, one per process-table slot.
fn records(object: &Object, at: usize) -> &'static [Holding] {
    debug_assert!(at == WAITING_AT || at == GRANTED_AT);
    // SAFETY: `at..at + SLOTS * 8` lies inside the object's checked extent
    // (`CONDITION_SIZE` ends with the granted records), 64-aligned;
    // `Holding` is `repr(C)` atomics only, valid for any bytes; the arena
    // lives for the process's life.
    unsafe { std::slice::from_raw_parts(object.bytes(at).cast::<Holding>(), SLOTS) }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("handle", &self.robust.object().handle())
            .finish_non_exhaustive()
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.robust.object().handle().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Condition {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not a condition of this process tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(deserializer)?;
        let object = Object::open(handle, KIND_CONDITION, NO_ELEMENT, CONDITION_SIZE, 0)
            .map_err(open_failed)?;
        Ok(Self::with(object))
    }
}
