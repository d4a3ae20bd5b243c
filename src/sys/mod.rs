//! The facade: the only module that knows whether the crate runs for real or
//! inside a model checker.
//!
//! Everything above this module uses `sys::atomic`, `sys::cell`, `sys::park`,
//! `sys::thread` and `sys::spin` instead of `std`/`loom`/`shuttle` directly
//! (and the deadlock diagnostics `sys::thread::thread_local!` and
//! `sys::before_std_lock`).
//! There are three backends, chosen by a `--cfg`:
//!
//! | cfg | backend | what runs the code |
//! |-----|---------|--------------------|
//! | (none) | production | `std` and `parking_lot_core`, through thin `#[inline]` forwards |
//! | `verisync_loom` | loom | loom's types and a loom model of the parking seam ([`park_loom`]); exhaustive for 2–3 threads |
//! | `verisync_shuttle` | shuttle | shuttle's atomics and threads, std's `UnsafeCell`, and a shuttle model of the same seam ([`park_shuttle`]); randomized and PCT schedules for 3–6 threads and long scripts |
//!
//! So what either model checker runs is the code users run. Both model
//! cfgs at once is a compile error. Outside this module, code that must
//! differ under a model (smaller queue blocks, no `const fn` where loom's
//! atomics are not `const`) says `any(verisync_loom, verisync_shuttle)` or
//! names the one backend it is about.

#[cfg(all(verisync_loom, verisync_shuttle))]
compile_error!("verisync: `--cfg verisync_loom` and `--cfg verisync_shuttle` exclude each other; pick one model backend");

#[cfg(verisync_loom)]
mod cell_loom;
#[cfg(not(verisync_loom))]
mod cell_std;
#[cfg(verisync_loom)]
mod park_loom;
#[cfg(verisync_shuttle)]
mod park_shuttle;

/// The model seam as the loom suite sees it (through `verisync::__loom`).
#[cfg(verisync_loom)]
pub(crate) mod model_seam {
    pub use super::park_loom::{park, unpark_filter, unpark_one};
    pub use parking_lot_core::{FilterOp, ParkResult, ParkToken, UnparkResult, UnparkToken};
}
#[cfg(not(any(verisync_loom, verisync_shuttle)))]
mod park_lot;

pub(crate) mod spin;
pub(crate) mod time;

#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
mod futex_common;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod futex_linux;
#[cfg(verisync_loom)]
mod futex_loom;

/// The futex seam of the process-shared primitives: `wait(word, expected,
/// deadline, still_valid)` / `wake(word, count)` on a 32-bit word in shared
/// memory. Production: Linux `futex(2)`, shared (not private)
/// ([`futex_linux`]); under loom: a model keyed by the word's address, with
/// a "this process died" step ([`futex_loom`]). Not modelled under shuttle,
/// and only Linux has it: elsewhere the process-shared types say
/// "unsupported".
#[cfg(any(verisync_loom, all(target_os = "linux", not(verisync_shuttle))))]
pub(crate) mod futex {
    pub(crate) use super::futex_common::Wake;
    #[cfg(all(target_os = "linux", not(verisync_loom)))]
    pub(crate) use super::futex_linux::{wait, wake, Word};
    #[cfg(verisync_loom)]
    pub(crate) use super::futex_loom::{wait, wake, Word};
}

/// The futex model as the loom suite sees it (through `verisync::__loom`):
/// the word type and the "a process died" step.
#[cfg(verisync_loom)]
pub(crate) mod model_futex {
    pub use super::futex_loom::{process_died, Word};
}

/// Call right before taking a `std` mutex whose critical sections loom
/// must order against other threads' (the deadlock diagnostics' records).
///
/// Nothing in a real build. Under loom, one `AcqRel` read-modify-write on a
/// per-execution atomic: loom cannot see a `std` mutex, and a critical
/// section with no loom operation is one step it never reorders against
/// the other threads' (its exploration only reorders operations on a
/// shared loom object). Every such section touching this one atomic first,
/// loom explores their orders relative to each other and to the
/// surrounding loom operations, with the happens-before a mutex gives.
///
/// Never call it while holding a `std` lock: loom may switch threads here,
/// and another modelled thread taking that lock would block the one OS
/// thread they all run on.
#[cfg(all(feature = "deadlock-detection", verisync_loom))]
pub(crate) fn before_std_lock() {
    loom::lazy_static! {
        static ref STD_LOCK_STEPS: loom::sync::atomic::AtomicUsize =
            loom::sync::atomic::AtomicUsize::new(0);
    }
    STD_LOCK_STEPS.fetch_add(1, atomic::Ordering::AcqRel);
}

/// Nothing in a real build (see the loom version).
#[cfg(all(
    feature = "deadlock-detection",
    not(any(verisync_loom, verisync_shuttle))
))]
#[inline(always)]
pub(crate) fn before_std_lock() {}

/// Atomic integers, pointers and orderings.
pub(crate) mod atomic {
    #[cfg(verisync_loom)]
    pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize};
    // Only the deadlock diagnostics use 64-bit atomics (lock ids and
    // holders); shuttle does not build them.
    #[cfg(all(feature = "deadlock-detection", verisync_loom))]
    pub(crate) use loom::sync::atomic::AtomicU64;
    #[cfg(all(
        feature = "deadlock-detection",
        not(any(verisync_loom, verisync_shuttle))
    ))]
    pub(crate) use std::sync::atomic::AtomicU64;
    // shuttle runs every atomic access as `SeqCst` (shuttle's `sync::atomic`
    // docs, "Warning about relaxed behaviors"): it finds interleaving bugs,
    // not missing orderings; those are loom's job.
    #[cfg(verisync_shuttle)]
    pub(crate) use shuttle::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize};
    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize};

    pub(crate) use std::sync::atomic::Ordering;

    /// The value of `word`, read through `&mut` (no other thread can touch
    /// it): `get_mut` in a real build. Under loom it is a tracked
    /// non-atomic read, so the model fails if some access by another
    /// thread does not happen-before it.
    #[cfg(all(
        feature = "deadlock-detection",
        not(any(verisync_loom, verisync_shuttle))
    ))]
    #[inline]
    pub(crate) fn read_exclusive(word: &mut AtomicU64) -> u64 {
        *word.get_mut()
    }

    /// As in the real build, as a tracked non-atomic read.
    #[cfg(all(feature = "deadlock-detection", verisync_loom))]
    pub(crate) fn read_exclusive(word: &mut AtomicU64) -> u64 {
        word.with_mut(|value| *value)
    }

    /// Nothing in a real build (and under shuttle, which makes every access
    /// `SeqCst`); `fence(SeqCst)` under loom.
    ///
    /// Put it between a `SeqCst` store or read-modify-write and a later
    /// `SeqCst` load where the code relies on the two being ordered — the
    /// Dekker handshake "I write X then read Y; you write Y then read X; one
    /// of us sees the other's write". In the C++/Rust memory model all
    /// `SeqCst` operations form one total order consistent with program
    /// order, which already gives that guarantee, without a fence (on x86
    /// the read-modify-write is a locked instruction and the load a plain
    /// move). Loom does not model that order: it treats `SeqCst` accesses
    /// as `AcqRel` (loom's README, "Unsupported features") and would report
    /// lost wake-ups that cannot happen. It does model `fence(SeqCst)`,
    /// which gives the same guarantee between the same two accesses, so the
    /// model checks the algorithm with the ordering the real build has.
    #[inline(always)]
    pub(crate) fn seq_cst_fence_under_loom() {
        #[cfg(verisync_loom)]
        fence(Ordering::SeqCst);
    }
}

/// `UnsafeCell` with loom-tracked accesses.
///
/// Under shuttle it is the production cell: shuttle has no model of
/// `UnsafeCell` accesses, so there a lock that fails to exclude shows only
/// through the tests' own invariants (a lost or doubled item or count).
pub(crate) mod cell {
    #[cfg(verisync_loom)]
    pub(crate) use super::cell_loom::{MutAccess, SharedAccess, UnsafeCell};
    #[cfg(not(verisync_loom))]
    pub(crate) use super::cell_std::{MutAccess, SharedAccess, UnsafeCell};
}

/// The parking seam: `park`, `unpark_one`, `unpark_filter`.
///
/// The contract is `parking_lot_core`'s, and so are the token and result
/// types; see that crate's documentation for each function.
pub(crate) mod park {
    pub(crate) use parking_lot_core::{
        FilterOp, ParkResult, ParkToken, UnparkResult, UnparkToken, DEFAULT_PARK_TOKEN,
        DEFAULT_UNPARK_TOKEN,
    };

    #[cfg(verisync_loom)]
    pub(crate) use super::park_loom::{park, parked_on, unpark_filter, unpark_one};
    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    pub(crate) use super::park_lot::{park, unpark_filter, unpark_one};
    #[cfg(verisync_shuttle)]
    pub(crate) use super::park_shuttle::{park, unpark_filter, unpark_one};

    /// Wakes up to `count` threads parked on `key`, longest-waiting first;
    /// `callback` runs under the queue lock as for `unpark_filter`.
    ///
    /// # Safety
    ///
    /// As `unpark_filter`: `callback` must not panic or call into the seam.
    pub(crate) unsafe fn unpark_up_to(
        key: usize,
        count: usize,
        callback: impl FnOnce(UnparkResult) -> UnparkToken,
    ) -> UnparkResult {
        let mut remaining = count;
        let filter = |_token| {
            if remaining == 0 {
                return FilterOp::Stop;
            }
            remaining -= 1;
            FilterOp::Unpark
        };
        // SAFETY: `filter` only counts; the caller vouches for `callback`.
        unsafe { unpark_filter(key, filter, callback) }
    }
}

/// Threads: spawning (for the pools), and a cheap, unique, non-zero
/// identity for the calling thread.
pub(crate) mod thread {
    #[cfg(verisync_loom)]
    pub(crate) use loom::thread::{current, Builder, JoinHandle, ThreadId};
    #[cfg(verisync_shuttle)]
    pub(crate) use shuttle::thread::{current, Builder, JoinHandle, ThreadId};
    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    pub(crate) use std::thread::{current, Builder, JoinHandle, ThreadId};

    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    #[inline]
    pub(crate) fn current_id() -> usize {
        use std::cell::Cell;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        std::thread_local!(static ID: Cell<usize> = const { Cell::new(0) });
        ID.with(|id| {
            let known = id.get();
            if known != 0 {
                return known;
            }
            // Relaxed: the counter only hands out distinct numbers; no other
            // memory is published through it.
            let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            assert!(fresh != 0, "verisync: ran out of thread identities");
            id.set(fresh);
            fresh
        })
    }

    #[cfg(verisync_loom)]
    pub(crate) fn current_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A plain std counter: it only hands out distinct numbers, so it needs
        // no modelling; loom's thread-locals are reset for every execution.
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        loom::thread_local!(static ID: usize = NEXT_ID.fetch_add(1, Ordering::Relaxed));
        ID.with(|id| *id)
    }

    /// Which pool the calling thread works for: a non-zero tag the pool
    /// picks (its queue's address), or 0 for a thread that is no pool's
    /// worker. A worker sets it once, before its first task.
    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    #[inline]
    pub(crate) fn current_pool() -> usize {
        CURRENT_POOL.with(std::cell::Cell::get)
    }

    /// Marks the calling thread as a worker of the pool tagged `pool`.
    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    pub(crate) fn set_current_pool(pool: usize) {
        CURRENT_POOL.with(|current| current.set(pool));
    }

    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    std::thread_local!(static CURRENT_POOL: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });

    /// As in the production build, with loom's per-execution thread-locals.
    #[cfg(verisync_loom)]
    pub(crate) fn current_pool() -> usize {
        CURRENT_POOL.with(std::cell::Cell::get)
    }

    /// As in the production build.
    #[cfg(verisync_loom)]
    pub(crate) fn set_current_pool(pool: usize) {
        CURRENT_POOL.with(|current| current.set(pool));
    }

    #[cfg(verisync_loom)]
    loom::thread_local!(static CURRENT_POOL: std::cell::Cell<usize> = std::cell::Cell::new(0));

    /// As in the production build, with shuttle's per-task thread-locals.
    #[cfg(verisync_shuttle)]
    pub(crate) fn current_pool() -> usize {
        CURRENT_POOL.with(std::cell::Cell::get)
    }

    /// As in the production build.
    #[cfg(verisync_shuttle)]
    pub(crate) fn set_current_pool(pool: usize) {
        CURRENT_POOL.with(|current| current.set(pool));
    }

    #[cfg(verisync_shuttle)]
    shuttle::thread_local!(static CURRENT_POOL: std::cell::Cell<usize> = std::cell::Cell::new(0));

    /// `thread_local!` (one declaration per call) whose values the model
    /// checker sees: std's in a real build; under loom, loom's, which gives
    /// each modelled thread its own value (loom runs all of them on one OS
    /// thread, which a std thread-local would share) and drops them when
    /// the modelled thread ends, so every execution starts clean. Only the
    /// deadlock diagnostics use it (shuttle does not build them).
    #[cfg(all(
        feature = "deadlock-detection",
        not(any(verisync_loom, verisync_shuttle))
    ))]
    macro_rules! model_thread_local {
        ($($declaration:tt)*) => { std::thread_local! { $($declaration)* } };
    }
    /// As in the real build; loom has no `const { .. }` initializer form,
    /// so it is dropped (the value is made on the thread's first use).
    #[cfg(all(feature = "deadlock-detection", verisync_loom))]
    macro_rules! model_thread_local {
        ($(#[$attribute:meta])* $visibility:vis static $name:ident: $type:ty = const { $init:expr } $(;)?) => {
            loom::thread_local! { $(#[$attribute])* $visibility static $name: $type = $init; }
        };
        ($(#[$attribute:meta])* $visibility:vis static $name:ident: $type:ty = $init:expr $(;)?) => {
            loom::thread_local! { $(#[$attribute])* $visibility static $name: $type = $init; }
        };
    }
    #[cfg(feature = "deadlock-detection")]
    pub(crate) use model_thread_local as thread_local;

    #[cfg(verisync_shuttle)]
    pub(crate) fn current_id() -> usize {
        // shuttle numbers the tasks of an execution from 0, each distinct
        // for the execution's whole life; the `+ 1` keeps 0 for "nobody".
        usize::from(shuttle::thread::current().id()) + 1
    }
}
