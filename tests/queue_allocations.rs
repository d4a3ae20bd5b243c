//! The unbounded FIFO reuses its blocks: once warm, a queue that is filled
//! and drained lap after lap allocates nothing (a retired block becomes the
//! spare the next lap takes). Counted with a global allocator that counts
//! allocations made by the thread under test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use verisync::JoinableQueue;

struct Counting;

thread_local! {
    /// Allocations made by this thread while `COUNTING` is on.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is passed straight on to `System`; the counting only
// touches `const`-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
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
static ALLOCATOR: Counting = Counting;

/// Allocations `body` makes on this thread.
fn allocations_of(body: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    body();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn a_warm_fifo_allocates_nothing_lap_after_lap() {
    let queue = JoinableQueue::new();
    let cycle = |items: u64| {
        for item in 0..items {
            queue.put(item).unwrap();
            assert_eq!(queue.get(), Ok(item));
            queue.task_done().unwrap();
        }
    };
    // Warm: the first laps allocate the blocks.
    cycle(1_000);
    let allocations = allocations_of(|| cycle(10_000));
    assert_eq!(
        allocations, 0,
        "10,000 items through a warm FIFO (hundreds of block boundaries) allocated {allocations} times"
    );
}
