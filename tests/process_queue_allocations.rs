//! A garbage length in a queue record makes decoding preallocate, as
//! serde's cautious size hint allows: at most 1 MiB of elements per
//! collection being decoded (a hash map's table for that many is about
//! 2.2 MiB), whatever the queue's byte capacity (the limit documented on
//! `process::JoinableQueue`). Its own binary: it counts with a global
//! allocator.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::arena::{arena_base, u32_at};
use verisync::process::{GetError, JoinableQueue, Lock};

/// Records the largest allocation made while `WATCH` is on.
struct Largest;
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static WATCH: AtomicBool = AtomicBool::new(false);

// SAFETY: every call is passed straight on to `System`; the bookkeeping
// only touches atomics, which never allocate.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCH.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: as the caller promised for this call.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as the caller promised for this call.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The ring's offset in the queue object (`src/process_shared/queue.rs`).
const RING_AT: usize = 128 + 1024 * 8;

/// A map record whose entry count is overwritten with 2^60 (as a
/// scribbling process could): the get fails to decode, having allocated
/// at most serde's cautious bound at once: about 2.2 MiB for a
/// `HashMap<u64, u64>`, more than the 64-byte queue, far less than 2^60.
#[test]
fn a_garbage_map_length_preallocates_at_most_serdes_cautious_bound() {
    const BYTES: usize = 64;
    const BOUND: usize = 3 << 20;
    let lock = Lock::new().unwrap();
    let queue = JoinableQueue::<HashMap<u64, u64>>::with_capacity(None, BYTES).unwrap();
    let at = serde_json::to_value(&queue).unwrap()["handle"]["offset"]
        .as_u64()
        .unwrap() as usize;
    queue.put((1..=6).map(|k| (k, k)).collect()).unwrap();
    // Record: length 13 | varint 6 | six (k, k) pairs. Claim 2^60 entries:
    // varint 0x80 x8, 0x10, then the pairs' bytes (1, 1, 1, ...).
    let record = at + RING_AT;
    let base = arena_base(&lock);
    u32_at(base, record + 4).store(0x8080_8080, Ordering::SeqCst);
    u32_at(base, record + 8).store(0x8080_8080, Ordering::SeqCst);
    u32_at(base, record + 12).store(0x0101_0110, Ordering::SeqCst);
    WATCH.store(true, Ordering::SeqCst);
    let got = queue.try_get();
    WATCH.store(false, Ordering::SeqCst);
    let largest = LARGEST.load(Ordering::SeqCst);
    assert!(matches!(got, Err(GetError::Undecodable(_))), "{got:?}");
    assert!(
        largest <= BOUND,
        "a get allocated {largest} bytes at once, more than the documented bound"
    );
    assert!(
        largest > BYTES,
        "serde no longer preallocates ({largest} bytes): tighten the documented limit"
    );
}
