//! Review 17: the per-thread buffers a `process::JoinableQueue` keeps
//! between calls (`with_kept_buffer` in `src/process_shared/queue.rs`:
//! `RECORD_BUFFER` for gets, `ENCODE_BUFFER` for puts): what they promise
//! (a get or put of an item up to 64 KiB allocates nothing once the
//! thread's buffer is long enough), and what they must survive (a
//! `Deserialize` that gets from a queue itself, a get from a thread-local
//! destructor, items over 64 KiB, lengths going up and down). Its own
//! binary: it counts allocations with a global allocator.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use common::{with_watchdog, PATIENCE};
use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use verisync::process::JoinableQueue;

/// Counts the allocations this thread makes while `COUNTING` is on.
struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: AtomicBool = const { AtomicBool::new(false) };
}

fn counting() -> bool {
    COUNTING
        .try_with(|on| on.load(Ordering::Relaxed))
        .unwrap_or(false)
}

// SAFETY: every call is passed straight on to `System`; the bookkeeping
// touches only atomics and a const-initialised thread-local, which never
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as the caller promised for this call.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as the caller promised for this call.
        unsafe { System.realloc(pointer, layout, size) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as the caller promised for this call.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations `body` made on this thread.
fn allocations_in(body: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|on| on.store(true, Ordering::SeqCst));
    body();
    COUNTING.with(|on| on.store(false, Ordering::SeqCst));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// Bytes that encode as postcard bytes and decode without allocating:
/// the decoded value keeps only their length and checksum.
#[derive(Debug, Default, PartialEq, Eq)]
struct Blob {
    bytes: Vec<u8>,
    len: usize,
    sum: u64,
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |sum, &byte| {
        (sum ^ u64::from(byte)).wrapping_mul(0x100_0000_01B3)
    })
}

impl Blob {
    fn new(len: usize, seed: u8) -> Self {
        let bytes: Vec<u8> = (0..len)
            .map(|index| (index as u8).wrapping_mul(31) ^ seed)
            .collect();
        Self {
            len,
            sum: checksum(&bytes),
            bytes,
        }
    }

    /// What a get of `self` decodes to.
    fn decoded(&self) -> Self {
        Self {
            bytes: Vec::new(),
            len: self.len,
            sum: self.sum,
        }
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Summing;
        impl Visitor<'_> for Summing {
            type Value = Blob;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("bytes")
            }
            fn visit_bytes<E>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob {
                    bytes: Vec::new(),
                    len: bytes.len(),
                    sum: checksum(bytes),
                })
            }
        }
        deserializer.deserialize_bytes(Summing)
    }
}

/// Item lengths, all under the 64 KiB the queue keeps a buffer for, that
/// go up by less than double from over 32 KiB: a doubling growth takes the
/// buffer's capacity past 64 KiB (review 17: it was then freed after that
/// call; now it is cut back to 64 KiB and kept).
const LENGTHS: [usize; 2] = [33 << 10, 40 << 10];

/// Gets of items of up to 64 KiB allocate nothing once this thread's
/// record buffer has been long enough for them (the promise of
/// `get_into`/`RECORD_BUFFER`: "a get allocates nothing and zeroes nothing
/// under the queue's lock"). Lengths 33 KiB and 40 KiB in turn broke it
/// (review 17): growing the buffer from 33 to 40 KiB (`Vec::resize`,
/// amortized) gave it 66 KiB of capacity, over `KEPT_BUFFER`, so it was
/// freed, and every get allocated and zeroed its item's length again,
/// under the state lock.
#[test]
fn gets_of_items_under_64_kib_allocate_nothing_once_the_buffer_is_long_enough() {
    with_watchdog(PATIENCE, || {
        let queue = JoinableQueue::<Blob>::with_capacity(None, 1 << 20).unwrap();
        let items: Vec<Blob> = (0..8)
            .map(|round| Blob::new(LENGTHS[round % 2], round as u8))
            .collect();
        // Warm up: one get of each length.
        for item in &items[..2] {
            queue.put(Blob::new(item.len, 0)).unwrap();
            queue.get().unwrap();
            queue.task_done().unwrap();
        }
        let expected: Vec<Blob> = items.iter().map(Blob::decoded).collect();
        for item in items {
            queue.put(item).unwrap();
        }
        let mut got = Vec::with_capacity(expected.len());
        let allocations = allocations_in(|| {
            for _ in 0..expected.len() {
                got.push(queue.get().unwrap());
            }
        });
        assert_eq!(got, expected);
        assert_eq!(
            allocations, 0,
            "8 gets of items of 33 and 40 KiB in turn allocated {allocations} times"
        );
    });
}

/// The same for puts (`ENCODE_BUFFER`, whose growth is postcard's
/// appends: the same doubling). The encode buffer had the same defect
/// before review 17's change to gets.
#[test]
fn puts_of_items_under_64_kib_allocate_nothing_once_the_buffer_is_long_enough() {
    with_watchdog(PATIENCE, || {
        let queue = JoinableQueue::<Blob>::with_capacity(None, 1 << 20).unwrap();
        let items: Vec<Blob> = (0..8)
            .map(|round| Blob::new(LENGTHS[round % 2], round as u8))
            .collect();
        for item in &items[..2] {
            queue.put(Blob::new(item.len, 0)).unwrap();
            queue.get().unwrap();
            queue.task_done().unwrap();
        }
        let expected: Vec<Blob> = items.iter().map(Blob::decoded).collect();
        let allocations = allocations_in(|| {
            for item in items {
                queue.put(item).unwrap();
            }
        });
        let got: Vec<Blob> = (0..expected.len()).map(|_| queue.get().unwrap()).collect();
        assert_eq!(got, expected);
        assert_eq!(
            allocations, 0,
            "8 puts of items of 33 and 40 KiB in turn allocated {allocations} times"
        );
    });
}

// ------------------------------------------------------- what they survive

thread_local! {
    /// The queue a `Nesting` item's `Deserialize` gets from.
    static INNER: RefCell<Option<JoinableQueue<Blob>>> = const { RefCell::new(None) };
}
static NESTED_GETS: AtomicU64 = AtomicU64::new(0);

/// An item whose `Deserialize` first gets a `Blob` from `INNER` (same
/// thread: the kept buffer is taken by the outer get meanwhile).
#[derive(Debug, PartialEq, Eq)]
struct Nesting(Blob);

impl Serialize for Nesting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Nesting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let inner = INNER.with(|inner| inner.borrow().clone());
        if let Some(inner) = inner {
            let got = inner.get().expect("the inner queue has an item");
            inner.task_done().unwrap();
            assert_eq!(got.len, 70 << 10, "the inner item came out whole");
            NESTED_GETS.fetch_add(1, Ordering::SeqCst);
        }
        Blob::deserialize(deserializer).map(Nesting)
    }
}

#[test]
fn a_deserialize_that_gets_from_a_queue_itself_leaves_both_items_whole() {
    with_watchdog(PATIENCE, || {
        let outer = JoinableQueue::<Nesting>::with_capacity(None, 1 << 20).unwrap();
        let inner = JoinableQueue::<Blob>::with_capacity(None, 1 << 20).unwrap();
        INNER.with(|slot| *slot.borrow_mut() = Some(inner.clone()));
        for (round, len) in [1000usize, 50 << 10, 10, 60 << 10, 3]
            .into_iter()
            .enumerate()
        {
            let item = Blob::new(len, round as u8);
            let expected = item.decoded();
            inner.put(Blob::new(70 << 10, 9)).unwrap();
            outer.put(Nesting(item)).unwrap();
            assert_eq!(outer.get(), Ok(Nesting(expected)));
            outer.task_done().unwrap();
        }
        INNER.with(|slot| *slot.borrow_mut() = None);
        assert_eq!(NESTED_GETS.load(Ordering::SeqCst), 5);
        assert_eq!(outer.join(), Ok(()));
        assert_eq!(inner.join(), Ok(()));
    });
}

/// Gets from its queue when the thread's locals are destroyed.
struct GetsWhenDropped(JoinableQueue<Blob>, std::sync::mpsc::Sender<Blob>);

impl Drop for GetsWhenDropped {
    fn drop(&mut self) {
        let got = self.0.get().expect("an item is queued");
        self.0.task_done().unwrap();
        let _ = self.1.send(got);
    }
}

thread_local! {
    static GETS_WHEN_DROPPED: RefCell<Option<GetsWhenDropped>> = const { RefCell::new(None) };
}

#[test]
fn a_get_from_a_thread_local_destructor_gets_its_item_whole() {
    with_watchdog(PATIENCE, || {
        let queue = JoinableQueue::<Blob>::with_capacity(None, 1 << 20).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let item = Blob::new(20 << 10, 4);
        let expected = item.decoded();
        queue.put(Blob::new(30 << 10, 5)).unwrap();
        queue.put(item).unwrap();
        let thread = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                // Fill this thread's record buffer first (longer than the
                // item the destructor gets).
                queue.get().unwrap();
                queue.task_done().unwrap();
                GETS_WHEN_DROPPED
                    .with(|slot| *slot.borrow_mut() = Some(GetsWhenDropped(queue, sender)));
            })
        };
        thread.join().unwrap();
        assert_eq!(receiver.recv().unwrap(), expected);
        assert_eq!(queue.join(), Ok(()));
    });
}

#[test]
fn items_over_64_kib_and_lengths_up_and_down_come_out_exactly() {
    with_watchdog(PATIENCE, || {
        let queue = JoinableQueue::<Blob>::with_capacity(None, 4 << 20).unwrap();
        for (round, len) in [
            0usize,
            1 << 20,
            5,
            (64 << 10) + 1,
            64 << 10,
            0,
            200 << 10,
            7,
        ]
        .into_iter()
        .enumerate()
        {
            let item = Blob::new(len, round as u8);
            let expected = item.decoded();
            queue.put(item).unwrap();
            assert_eq!(queue.get(), Ok(expected), "round {round}: {len} bytes");
            queue.task_done().unwrap();
        }
    });
}
