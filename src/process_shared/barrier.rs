//! `process::Barrier`: a rendezvous for processes that breaks when a party
//! dies while waiting. The state machine is in `raw/process_barrier.rs`.
//!
//! # Layout in the arena
//!
//! ```text
//!  0    object header                                       (16 bytes)
//!  16   state lock word (robust.rs)                         (4 bytes)
//!  20   state: wake, phase, count, trips                    (16 bytes)
//!  64   inside: one record per process-table slot, SLOTS × (holder, count)
//! ```
//!
//! 8 KiB and a line per barrier. The header records `parties`, and so does
//! the handle: an opener knows it from its own memory from then on.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, Object, KIND_BARRIER, LINE, NO_ELEMENT};
use super::error::{open_failed, SharedError};
use super::robust::RobustLock;
use super::table::SLOTS;
use crate::barrier::{BarrierWaitResult, BrokenBarrier};
use crate::raw::process_barrier::{BarrierState, Holding, RawProcessBarrier};
use crate::sys::time::deadline_after;

/// Where the state sits in the object (after the state lock word).
const STATE_AT: usize = 20;
/// Where the records start: the second line.
const INSIDE_AT: usize = LINE;
/// The object's extent.
const BARRIER_SIZE: usize = INSIDE_AT + SLOTS * std::mem::size_of::<Holding>();

/// A rendezvous for a fixed number of parties in any processes of the tree
/// — Python's `multiprocessing.Barrier` — that **breaks when a party dies
/// while waiting**, instead of leaving the others waiting forever.
///
/// The thread [`Barrier`](crate::Barrier)'s methods and semantics: each
/// [`wait`](Self::wait) blocks until `parties` parties (threads of any
/// processes) are waiting, then all are released together; exactly one of
/// each round is the [leader](BarrierWaitResult::is_leader); a timeout or
/// [`abort`](Self::abort) breaks it until [`reset`](Self::reset); a round
/// that tripped completes for all its parties even if `reset` or `abort`
/// follows. Create it before starting the processes that use it and pass
/// it to them as a task argument; clones name the same barrier.
///
/// What a death does:
///
/// - **A party that dies while waiting** breaks the barrier: every waiter
///   gets [`BrokenBarrier`] within about 10 ms (waiters look at the
///   processes inside `wait` before they sleep and every 10 ms while they
///   sleep), and so does every later `wait` until `reset`.
///   [`is_broken`](Self::is_broken) and [`n_waiting`](Self::n_waiting)
///   look too.
/// - A party of a round that already tripped, dying before it left `wait`,
///   breaks nothing: its round completed.
/// - A process that dies inside any call of this barrier while it updates
///   the shared state (a few instructions) breaks it too.
/// - **A party that dies before it arrives cannot be noticed**: nothing
///   records the parties that *will* come, so the others wait for it as for
///   a slow party. Use [`wait_timeout`](Self::wait_timeout) where that can
///   happen: it breaks the barrier at the deadline, as any timeout does.
///
/// A process that writes garbage over the barrier's shared memory can break
/// it or make a round trip early or late, never anything unsafe, and no
/// hang past a deadline, with one exception: a *live* process that writes
/// its own identity into the barrier's internal state-lock word holds
/// every call (timed ones past their deadline) until it next uses the
/// barrier or exits, since the internal lock is taken without a deadline.
///
/// ```
/// verisync::process::init();
/// use verisync::process::Barrier;
///
/// fn runner(start: Barrier) -> bool {
///     start.wait().unwrap().is_leader()
/// }
///
/// let start = Barrier::new(3)?;
/// let runners: Vec<_> = (0..2)
///     .map(|_| verisync::process::spawn(runner, start.clone()).unwrap())
///     .collect();
/// let mut leaders = usize::from(start.wait().unwrap().is_leader());
/// for runner in runners {
///     leaders += usize::from(runner.join().unwrap());
/// }
/// assert_eq!(leaders, 1);
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    robust: RobustLock,
    parties: u32,
}

impl Barrier {
    /// A barrier for `parties` parties, in the process tree's shared memory.
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](super::Lock::new).
    ///
    /// # Panics
    ///
    /// If `parties` is 0 (no round could ever complete), as the thread
    /// [`Barrier::new`](crate::Barrier::new), or more than `u32::MAX`.
    ///
    /// ```
    /// verisync::process::init();
    /// let b = verisync::process::Barrier::new(2)?;
    /// assert_eq!(b.parties(), 2);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn new(parties: usize) -> Result<Self, SharedError> {
        let parties = match u32::try_from(parties) {
            Ok(parties) if parties > 0 => parties,
            _ => unpassable(parties),
        };
        let object = arena::for_new_object()?.allocate(
            KIND_BARRIER,
            NO_ELEMENT,
            BARRIER_SIZE,
            parties,
            |object| {
                state(object).reset_memory();
                inside(object).iter().for_each(Holding::reset);
                RobustLock::reset(object);
            },
        )?;
        Ok(Self {
            robust: RobustLock::new(object),
            parties,
        })
    }

    fn raw(&self) -> RawProcessBarrier<'static> {
        let object = self.robust.object();
        RawProcessBarrier::new(state(object), inside(object), self.parties)
    }

    /// Waits until `parties` parties are waiting, then returns in all of
    /// them.
    ///
    /// # Errors
    ///
    /// [`BrokenBarrier`] if the barrier is or becomes broken (a timeout,
    /// [`abort`](Self::abort), a party's death) or is
    /// [`reset`](Self::reset) before this party's round trips.
    ///
    /// ```
    /// verisync::process::init();
    /// let b = verisync::process::Barrier::new(1)?;
    /// assert!(b.wait().is_ok());
    /// b.abort();
    /// assert!(b.wait().is_err());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult, BrokenBarrier> {
        self.wait_until_internal(None)
    }

    /// As [`wait`](Self::wait), but if the round has not completed within
    /// `timeout` the barrier breaks for everyone and this call fails.
    /// `Duration::MAX` waits forever.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait), and on the timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let b = verisync::process::Barrier::new(2)?;
    /// assert!(b.wait_timeout(Duration::from_millis(5)).is_err());
    /// assert!(b.is_broken());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, BrokenBarrier> {
        self.wait_until_internal(deadline_after(timeout))
    }

    /// As [`wait_timeout`](Self::wait_timeout) with a deadline.
    ///
    /// # Errors
    ///
    /// As [`wait_timeout`](Self::wait_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// verisync::process::init();
    /// let b = verisync::process::Barrier::new(2)?;
    /// assert!(b.wait_until(Instant::now() + Duration::from_millis(2)).is_err());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait_until(&self, deadline: Instant) -> Result<BarrierWaitResult, BrokenBarrier> {
        self.wait_until_internal(Some(deadline))
    }

    fn wait_until_internal(
        &self,
        deadline: Option<Instant>,
    ) -> Result<BarrierWaitResult, BrokenBarrier> {
        self.raw()
            .wait(deadline, &self.robust)
            .map(BarrierWaitResult::new)
            .map_err(|_| BrokenBarrier)
    }

    /// Breaks the barrier: every waiting and later `wait`, in every
    /// process, fails with [`BrokenBarrier`] until [`reset`](Self::reset).
    /// The parties of a round that has already tripped still pass.
    ///
    /// ```
    /// verisync::process::init();
    /// let b = verisync::process::Barrier::new(3)?;
    /// b.abort();
    /// assert!(b.is_broken());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn abort(&self) {
        self.raw().abort(&self.robust);
    }

    /// Returns the barrier to its empty, unbroken state. Parties waiting
    /// now fail with [`BrokenBarrier`]; parties arriving meanwhile wait
    /// until they have left. The parties of a round that has already
    /// tripped still pass.
    ///
    /// ```
    /// verisync::process::init();
    /// let b = verisync::process::Barrier::new(2)?;
    /// b.abort();
    /// b.reset();
    /// assert!(!b.is_broken());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn reset(&self) {
        self.raw().reset(&self.robust);
    }

    /// Whether the barrier is broken (after looking for parties that died
    /// while waiting, which break it).
    ///
    /// ```
    /// verisync::process::init();
    /// assert!(!verisync::process::Barrier::new(2)?.is_broken());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn is_broken(&self) -> bool {
        self.raw().is_broken(&self.robust)
    }

    /// How many parties are waiting for the current round (0 while the
    /// barrier drains, resets or is broken), after looking for parties that
    /// died while waiting.
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::Barrier::new(2)?.n_waiting(), 0);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn n_waiting(&self) -> usize {
        self.raw().n_waiting(&self.robust) as usize
    }

    /// The number of parties each round needs.
    ///
    /// ```
    /// verisync::process::init();
    /// assert_eq!(verisync::process::Barrier::new(4)?.parties(), 4);
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn parties(&self) -> usize {
        self.parties as usize
    }
}

#[cold]
#[track_caller]
fn unpassable(parties: usize) -> ! {
    panic!(
        "verisync: process::Barrier::new({parties}) makes a barrier no group of parties can pass; \
         give the number of parties that will wait (at least 1, at most {})",
        u32::MAX
    )
}

/// The state of the barrier `object`.
fn state(object: &Object) -> &'static BarrierState {
    // SAFETY: `STATE_AT..STATE_AT + 16` lies inside the object's checked
    // extent (`BARRIER_SIZE`), 4-aligned (the object is 64-aligned);
    // `BarrierState` is `repr(C)` atomics only, valid for any bytes; the
    // arena lives for the process's life.
    unsafe { &*object.bytes(STATE_AT).cast::<BarrierState>() }
}

/// The records of the barrier `object`, one per process-table slot.
fn inside(object: &Object) -> &'static [Holding] {
    // SAFETY: `INSIDE_AT..BARRIER_SIZE` (SLOTS records) lies inside the
    // object's checked extent, 64-aligned; `Holding` is `repr(C)` atomics
    // only, valid for any bytes; the arena lives for the process's life.
    unsafe { std::slice::from_raw_parts(object.bytes(INSIDE_AT).cast::<Holding>(), SLOTS) }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("handle", &self.robust.object().handle())
            .field("parties", &self.parties)
            .finish_non_exhaustive()
    }
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.robust.object().handle().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not a barrier of this process tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(deserializer)?;
        let parties = handle.recorded();
        if parties == 0 {
            return Err(open_failed(SharedError::InvalidHandle(
                "a barrier for 0 parties".into(),
            )));
        }
        let object = Object::open(handle, KIND_BARRIER, NO_ELEMENT, BARRIER_SIZE, parties)
            .map_err(open_failed)?;
        Ok(Self {
            robust: RobustLock::new(object),
            parties,
        })
    }
}
