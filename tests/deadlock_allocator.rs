//! A tracked lock used inside the program's `#[global_allocator]` (a
//! user's counting allocator with a `verisync::Mutex`): with the
//! `deadlock-detection` feature on, the diagnostics' own bookkeeping
//! allocates, which re-enters the allocator and its lock. It must neither
//! recurse (the thread's first tracked lock creates its record, which
//! allocates), nor wait for itself (the held list growing while the
//! allocator's lock is held), nor lock a registry lock twice (a report
//! allocating under the registry's locks). Built and run with the feature
//! on and off; this file is its own test binary because it installs its own
//! allocator.
//!
//! The allocator also counts each thread's net allocated bytes, which shows
//! exactly what the diagnostics keep: locks taken with `try_lock`, whose
//! guards are leaked and which are then dropped, must leave nothing behind.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, Barrier};
use std::thread;
#[cfg(feature = "deadlock-detection")]
use std::time::Duration;

use common::{with_watchdog, PATIENCE};
use verisync::{Mutex, ReentrantLock};

/// Counts allocations under a tracked lock.
struct Counting;

static ALLOCATIONS: Mutex<u64> = Mutex::with_name("allocator-count", 0);

thread_local! {
    /// Bytes allocated minus bytes freed by this thread.
    static NET_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count_bytes(change: isize) {
    NET_BYTES.with(|bytes| bytes.set(bytes.get() + change));
}

// SAFETY: every call is forwarded unchanged to `System`; the count is kept
// on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        *ALLOCATIONS.lock() += 1;
        count_bytes(layout.size().cast_signed());
        // SAFETY: the caller's contract, forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_bytes(-layout.size().cast_signed());
        // SAFETY: the caller's contract, forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    *ALLOCATIONS.lock()
}

/// This thread's net allocated bytes.
fn net_bytes() -> isize {
    NET_BYTES.with(Cell::get)
}

/// The reviewer's case: allocations on the main test thread and on a new
/// thread (whose first tracked lock is the allocator's, taken while the
/// diagnostics create its record).
#[test]
fn a_tracked_lock_inside_the_global_allocator() {
    with_watchdog(PATIENCE, || {
        let before = allocations();
        let v: Vec<u64> = (0..1000).collect();
        let other = thread::spawn(|| vec![1u8; 64].len()).join().unwrap();
        assert_eq!(v.len() + other, 1064);
        assert!(allocations() > before);
    });
}

/// Many threads allocating at once (the allocator's lock contended, so
/// waiters publish that they are blocked, which allocates), while holding
/// other tracked locks (new pairs for the order graph, entered under its
/// lock, which allocates), with the reports and the watchdog running.
#[test]
fn contended_allocations_with_held_locks_and_reports() {
    with_watchdog(PATIENCE, || {
        #[cfg(feature = "deadlock-detection")]
        let watchdog = verisync::deadlock::watchdog(Duration::from_millis(1), |_| {});
        let outer = Arc::new(Mutex::with_name("allocator-outer", ()));
        let start = Arc::new(Barrier::new(4));
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let (outer, start) = (Arc::clone(&outer), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    let mut kept = Vec::new();
                    for round in 0..2_000 {
                        let mine = Mutex::new(round);
                        let _outer = (round % 2 == 0).then(|| outer.lock());
                        let _mine = mine.lock();
                        kept.push(format!("{worker}-{round}"));
                        if round % 100 == 0 {
                            #[cfg(feature = "deadlock-detection")]
                            {
                                assert!(verisync::deadlock::detect().is_empty());
                                drop(verisync::deadlock::blocked_threads());
                                drop(verisync::deadlock::lock_order_violations());
                            }
                            thread::yield_now();
                        }
                    }
                    kept.len()
                })
            })
            .collect();
        for worker in workers {
            assert_eq!(worker.join().unwrap(), 2_000);
        }
        #[cfg(feature = "deadlock-detection")]
        drop(watchdog);
        assert!(allocations() >= 8_000);
    });
}

/// How many bytes this thread keeps after `rounds` of `leak_and_drop`,
/// past a warm-up of the same (which sizes the diagnostics' caches).
fn bytes_kept_by(leak_and_drop: impl Fn()) -> isize {
    for _ in 0..5_000 {
        leak_and_drop();
    }
    let before = net_bytes();
    for _ in 0..100_000 {
        leak_and_drop();
    }
    net_bytes() - before
}

/// A lock taken with `try_lock`, its guard leaked with `mem::forget`, then
/// the lock dropped: "dropping the lock removes every trace of it", so
/// 100,000 of them keep no memory (the thread's held list grew by one
/// entry each, never cleaned: +10 MB per 200,000). The locks live on the
/// stack: a `Box` would take the allocator's tracked lock while the leaked
/// ones are listed, a new lock pair, whose entry in the order graph cleans
/// the list on the way.
#[test]
fn try_locked_leaked_and_dropped_locks_keep_no_memory() {
    with_watchdog(PATIENCE, || {
        let mutexes = bytes_kept_by(|| {
            let lock = Mutex::new(());
            std::mem::forget(lock.try_lock().unwrap());
            // `lock` is dropped here.
        });
        let reentrant = bytes_kept_by(|| {
            let lock = ReentrantLock::new(());
            std::mem::forget(lock.try_lock().unwrap());
            // `lock` is dropped here.
        });
        let blocking = bytes_kept_by(|| {
            let lock = Mutex::new(());
            std::mem::forget(lock.lock());
            // `lock` is dropped here.
        });
        for (kept, how) in [
            (mutexes, "Mutex::try_lock"),
            (reentrant, "ReentrantLock::try_lock"),
            (blocking, "Mutex::lock"),
        ] {
            assert!(
                kept < 64 * 1024,
                "{how}: 100,000 leaked and dropped locks kept {kept} bytes"
            );
        }
    });
}
