//! Python's threading toolkit for Rust, each primitive model-checked with
//! [loom](https://docs.rs/loom) and property-tested.
//!
//! | verisync | Python | what it is |
//! |----------|--------|------------|
//! | [`Mutex`] | `threading.Lock` | mutual exclusion with the data inside; no poisoning, eventual fairness |
//! | [`ReentrantLock`] | `threading.RLock` | a lock its owner may take again |
//! | [`Semaphore`] | `threading.Semaphore`, `BoundedSemaphore` | counting permits, first come first served |
//! | [`Event`] | `threading.Event` | a flag threads wait for |
//! | [`Condition`] | `threading.Condition` | wait for a change under a lock, no spurious wake-ups |
//! | [`Barrier`] | `threading.Barrier` | a rendezvous for *n* threads, breakable by timeout |
//! | [`JoinableQueue`] | `queue.Queue`, `multiprocessing.JoinableQueue` | FIFO/LIFO/priority work queue with `task_done`/`join` and shutdown |
//! | [`ThreadPool`], [`TaskHandle`] | `concurrent.futures.ThreadPoolExecutor`, `Future` | results, cancel, callbacks, ordered lazy `map` and [`map_unordered`](ThreadPool::map_unordered), borrowing [`scope`](ThreadPool::scope)s, [`as_completed`] (also [with a timeout](as_completed_timeout)), [`wait`] with [`ReturnWhen`] |
//!
//! Every blocking call has a blocking form (`lock`, `acquire`, `wait`), a
//! non-blocking one (`try_…`) and a bounded one (`…_for`/`…_timeout` with a
//! `Duration`, `…_until` with an `Instant`). A zero timeout tries once;
//! `Duration::MAX` waits forever.
//!
//! ```
//! use std::sync::Arc;
//! use verisync::{Condition, Mutex};
//!
//! let tickets = Arc::new(Mutex::with_name("tickets", 10u32));
//! let buyers: Vec<_> = (0..4)
//!     .map(|_| {
//!         let tickets = Arc::clone(&tickets);
//!         std::thread::spawn(move || {
//!             let mut left = tickets.lock();
//!             if *left > 0 {
//!                 *left -= 1;
//!             }
//!         })
//!     })
//!     .collect();
//! for buyer in buyers {
//!     buyer.join().unwrap();
//! }
//! assert_eq!(*tickets.lock(), 6);
//! ```
//!
//! # How it is built
//!
//! Each primitive is an atomic state machine (documented where its state
//! word is defined) that blocks through one small parking seam, which
//! forwards to `parking_lot_core` in a normal build and is replaced by a
//! loom model under `--cfg verisync_loom` (exhaustive for 2–3 threads) or
//! a shuttle model under `--cfg verisync_shuttle` (randomized and PCT
//! schedules for 3–6 threads and long operation scripts). The suites in
//! `loom-tests/` and `shuttle-tests/` therefore check the code you run.

#![warn(missing_docs)]
// A guard in an `if let`/`match` scrutinee lives to the end of the whole
// statement (edition 2021): a lock held across the body is how a callback
// run there deadlocks on it. The guards carry `has_significant_drop`.
#![warn(clippy::significant_drop_in_scrutinee)]

mod sys;

mod panic_payload;

mod raw;

mod barrier;
mod condition;
#[cfg(feature = "deadlock-detection")]
pub mod deadlock;
/// Without the `deadlock-detection` feature there is no `verisync::deadlock`,
/// only the hooks the locks call, as `#[inline]` no-ops.
#[cfg(not(feature = "deadlock-detection"))]
mod deadlock {
    #[path = "hooks_off.rs"]
    pub(crate) mod hooks;
}
mod event;
mod mutex;
mod pool;
#[cfg(not(verisync_loom))]
mod process_shared;
mod queue;
mod reentrant;
mod semaphore;

pub use barrier::{Barrier, BarrierWaitResult, BrokenBarrier};
pub use condition::{Condition, ConditionGuard, WaitTimeoutResult};
pub use event::Event;
pub use mutex::{Mutex, MutexGuard};
#[cfg(all(unix, not(verisync_loom)))]
pub use pool::process::{ProcessMap, ProcessMapUnordered, ProcessPool, ProcessPoolBuilder};
#[cfg(all(not(unix), not(verisync_loom)))]
pub use pool::process_unsupported::{
    ProcessMap, ProcessMapUnordered, ProcessPool, ProcessPoolBuilder,
};

/// Process-based parallelism: on this platform (not Unix) every way to
/// start a process returns `TaskError::Spawn` saying it is unsupported,
/// and every process-shared object `SharedError::Unsupported`.
#[cfg(all(not(unix), not(verisync_loom)))]
pub mod process {
    pub use crate::barrier::{BarrierWaitResult, BrokenBarrier};
    pub use crate::condition::WaitTimeoutResult;
    pub use crate::pool::process_unsupported::{init, spawn, Process};
    pub use crate::process_shared::{
        AcknowledgeOwnerDeath, Array, ArrayGuard, Barrier, Condition, Event, GetError,
        JoinableQueue, Lock, LockGuard, OwnerDied, OwnerDiedWhileWaiting, PutError, QueueIter,
        QueueTask, Semaphore, SemaphorePermit, SharedError, TasksLost, TryLockError, Undecodable,
        Value, ValueGuard, ValueInteger,
    };
}
pub use pool::{
    as_completed, as_completed_timeout, wait, wait_all, AsCompleted, AsCompletedTimedOut,
    AsCompletedTimeout, PoolMap, PoolMapUnordered, ReturnWhen, Scope, ScopedTaskHandle, TaskError,
    TaskHandle, ThreadPool, ThreadPoolBuilder,
};

/// Process-based parallelism (Unix): [`process::init`], [`process::spawn`],
/// [`process::Process`]; the pool itself is [`ProcessPool`].
///
/// Process-shared primitives (Linux; elsewhere `SharedError::Unsupported`):
/// [`process::Lock`] (robust: a holder's death is reported to the next
/// locker as [`process::OwnerDied`]), [`process::Semaphore`] (a dead
/// holder's permits come back), [`process::Event`], [`process::Condition`]
/// (used with a `process::Lock` guard; a notification handed to a waiter
/// that dies passes to a live one), [`process::Barrier`]
/// (a party that dies while waiting breaks it), [`process::Value`],
/// [`process::Array`] and [`process::JoinableQueue`] (items encoded with
/// postcard in shared memory; a consumer's death is reported by `join`).
/// Create them before starting the processes that use
/// them and pass them as task arguments.
#[cfg(all(unix, not(verisync_loom)))]
pub mod process {
    pub use crate::barrier::{BarrierWaitResult, BrokenBarrier};
    pub use crate::condition::WaitTimeoutResult;
    pub use crate::pool::process::{init, spawn, Process};
    pub use crate::process_shared::{
        AcknowledgeOwnerDeath, Array, ArrayGuard, Barrier, Condition, Event, GetError,
        JoinableQueue, Lock, LockGuard, OwnerDied, OwnerDiedWhileWaiting, PutError, QueueIter,
        QueueTask, Semaphore, SemaphorePermit, SharedError, TasksLost, TryLockError, Undecodable,
        Value, ValueGuard, ValueInteger,
    };

    /// Test support, outside semver: see `write_raw_to_parent` in the source.
    #[doc(hidden)]
    pub use crate::pool::process::write_raw_to_parent as __write_raw_to_parent;

    /// Test support, outside semver: a lock's words in shared memory.
    #[doc(hidden)]
    pub use crate::process_shared::__lock_words;
}
pub use queue::{
    GetError, JoinableQueue, PendingTask, PutError, QueueIter, QueueTask, ShutDown, TaskDoneError,
};
pub use reentrant::{ReentrantLock, ReentrantLockGuard};
pub use semaphore::{OwnedSemaphorePermit, Semaphore, SemaphorePermit, TooManyReleases};

/// Hooks for the loom suite (`loom-tests/`). Compiled only under
/// `--cfg verisync_loom`; not part of the public API and outside semver.
#[cfg(verisync_loom)]
#[doc(hidden)]
pub mod __loom {
    /// The model parking seam, for testing the model itself.
    pub mod seam {
        pub use crate::sys::model_seam::{
            park, unpark_filter, unpark_one, FilterOp, ParkResult, ParkToken, UnparkResult,
            UnparkToken,
        };
    }

    /// Whether threads are parked on `event` (its `PARKED` bit), so a test
    /// can wait until a waiter is really asleep before it sets the event.
    pub fn event_has_parked_waiters(event: &crate::Event) -> bool {
        event.has_parked_waiters()
    }

    /// The robust process-shared lock's state machine and the futex
    /// model's "a process died" step (`loom-tests/tests/process_lock.rs`).
    pub mod process_lock {
        pub use crate::raw::process_lock::{Acquired, Holders, RawProcessLock, StateLock, Wait};
        pub use crate::sys::model_futex::{process_died, Word};
    }

    /// The process-shared event's state machine
    /// (`loom-tests/tests/process_event.rs`).
    pub mod process_event {
        pub use crate::raw::process_event::RawProcessEvent;
    }

    /// The process-shared barrier's state machine
    /// (`loom-tests/tests/process_barrier.rs`).
    pub mod process_barrier {
        pub use crate::raw::process_barrier::{BarrierState, Broken, RawProcessBarrier};
        pub use crate::raw::process_state::Holding;
    }

    /// The process-shared condition's state machine
    /// (`loom-tests/tests/process_condition.rs`).
    pub mod process_condition {
        pub use crate::raw::process_condition::{
            ConditionState, LocalWaiters, OtherLock, RawProcessCondition, Registered,
        };
        pub use crate::raw::process_state::Holding;
    }

    /// The process-shared queue's state machine
    /// (`loom-tests/tests/process_queue.rs`).
    pub mod process_queue {
        pub use crate::raw::process_queue::{
            GetRefused, Holding, Joined, PutRefused, QueueState, RawQueue, RingBytes,
        };
    }

    /// The process-shared semaphore's state machine
    /// (`loom-tests/tests/process_semaphore.rs`).
    pub mod process_semaphore {
        pub use crate::raw::process_semaphore::{Counts, Holding, RawProcessSemaphore};
    }

    /// Whether threads are queued on `semaphore` (its `QUEUED` bit), so a
    /// test can wait until a waiter is really in line before it releases.
    pub fn semaphore_has_queued_waiters(semaphore: &crate::Semaphore) -> bool {
        semaphore.has_queued_waiters()
    }

    /// How many threads are parked on `semaphore`, so a test can wait until
    /// every waiter it started is in line.
    pub fn semaphore_parked_waiters(semaphore: &crate::Semaphore) -> usize {
        semaphore.parked_waiters()
    }
}

/// The README's Rust examples, compiled and run as doc tests so they never rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
