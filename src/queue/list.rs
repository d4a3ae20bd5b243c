//! The unbounded FIFO storage: a linked list of blocks of slots, lock-free
//! on both ends (the design of Dmitry Vyukov's unbounded MPMC queue as
//! crossbeam's list channel uses it, written afresh for this crate).
//!
//! # Positions
//!
//! `head` (next position to take) and `tail` (next position to fill) each
//! pair an index with a pointer to the block that index is in:
//!
//! ```text
//!  index    = position << SHIFT | flag
//!  position = lap * LAP + offset          offset < LAP = BLOCK_SLOTS + 1
//!  flag     = MARK      in tail: shut down, no more pushes
//!           = HAS_NEXT  in head: the head's block has a successor
//! ```
//!
//! Offsets `0..BLOCK_SLOTS` are slots. Offset `BLOCK_SLOTS` is not a slot:
//! `tail` rests there while the pusher that took a block's last slot
//! installs the next block, and `head` while the popper that took the last
//! slot moves on to it. Anyone else who sees that offset waits (briefly)
//! for the move to finish.
//!
//! # Steps
//!
//! A push claims position `tail` with a CAS on `tail.index`; if it took a
//! block's last slot it installs the next block (taken before the claim):
//! `tail.block = next`, then `tail.index += 1` (past the lap end, into the
//! next block's lap), and only then `block.next = next` (`Release`). It
//! then writes the value and sets the slot's `WRITTEN` bit (`Release`).
//! A linked `next` thus means `tail` has already left the block: every
//! position of the block was claimed, and `tail` is at least at the start
//! of the next block.
//!
//! A pop claims position `head` with a CAS on `head.index`, after deciding
//! that the queue is not empty: `HAS_NEXT` already says so, or — after a
//! `SeqCst` fence — `tail` is beyond `head`. If it took a block's last
//! slot it waits for `block.next` and moves `head` to the next block,
//! setting `HAS_NEXT` if that block is linked to a successor already. It
//! then waits for `WRITTEN` (the pusher may still be writing), reads the
//! value, and takes part in freeing the block.
//!
//! Invariant: `head <= tail` as positions (counting a lap's end as the
//! next lap's start). Pops claim only below `tail`, and `head` jumps into
//! a new block only after acquiring the link, which is made after `tail`
//! entered that block. This is why the link comes last: were it made
//! before `tail` moves, a popper could take the block's last slot, follow
//! the link and put `head` at the next block's start while `tail` still
//! rests at this block's end; the next popper would then read `head` in a
//! later lap than `tail`, conclude "not empty" and claim a position that
//! no push had claimed, waiting for it forever (and `len` would wrap).
//! `HAS_NEXT` stays right for the same reason: it is set only when `tail`
//! was seen in a later lap, or when the block `head` moves onto is already
//! linked — which, by the order above, means `tail` has left it too.
//!
//! # Retiring a block
//!
//! Each slot's state has three bits: `WRITTEN`, `READ` (its value was
//! taken) and `DESTROY` (the block may be retired once this slot is read).
//! The popper of a block's last slot walks the other slots: it retires the
//! block if all were read; at the first unread one it sets `DESTROY` and
//! leaves the job to that slot's reader, who, on setting `READ` and
//! finding `DESTROY`, continues the walk from the next slot. So exactly one
//! thread retires each block, after every value in it was read. No one else
//! touches a block by then: pushers touch it only before their `WRITTEN`,
//! and a thread that loaded a stale block pointer dereferences it only
//! after a CAS proves the pointer current, i.e. with an unread slot in it.
//! (Indices only grow, so a CAS that succeeds proves the index — and the
//! block pointer read after it — unchanged since it was read.)
//!
//! A retired block is reset and kept as the list's one spare, which the
//! next pusher that needs a block takes; only a block with no room there
//! is freed.
//!
//! Shutting down sets `MARK` in `tail.index` with one `fetch_or`, as the
//! ring does: every later claim fails, earlier claims complete normally,
//! and pops drain until `head` reaches the marked `tail`.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;

use crossbeam_utils::CachePadded;

use super::drop_all::DropAll;
use super::ring::{PopError, PushError};
use crate::sys::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use crate::sys::cell::UnsafeCell;
use crate::sys::spin::Backoff;

/// Slots per block. Small under the model checkers (loom, shuttle), so that
/// a model with a handful of items already crosses block boundaries.
#[cfg(not(any(verisync_loom, verisync_shuttle)))]
const BLOCK_SLOTS: usize = 31;
#[cfg(any(verisync_loom, verisync_shuttle))]
const BLOCK_SLOTS: usize = 2;

/// Positions per block: the slots and the "moving to the next block" end.
const LAP: usize = BLOCK_SLOTS + 1;
/// Indices keep a flag in their lowest bit.
const SHIFT: usize = 1;
/// In `tail.index`: shut down.
const MARK: usize = 1;
/// In `head.index`: the head's block has a successor, so it is not empty.
const HAS_NEXT: usize = 1;
/// One position, as an index step.
const STEP: usize = 1 << SHIFT;

/// Slot states (bits).
const WRITTEN: usize = 1;
const READ: usize = 2;
const DESTROY: usize = 4;

struct Slot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    state: AtomicUsize,
}

struct Block<T> {
    next: AtomicPtr<Block<T>>,
    slots: [Slot<T>; BLOCK_SLOTS],
}

impl<T> Block<T> {
    fn new() -> Box<Self> {
        Box::new(Self {
            next: AtomicPtr::new(ptr::null_mut()),
            slots: std::array::from_fn(|_| Slot {
                value: UnsafeCell::new(MaybeUninit::uninit()),
                state: AtomicUsize::new(0),
            }),
        })
    }

    /// Waits until the pusher of this block's last slot has linked the
    /// next block.
    fn wait_for_next(&self) -> *mut Block<T> {
        let backoff = Backoff::new();
        loop {
            let next = self.next.load(Ordering::Acquire);
            if !next.is_null() {
                return next;
            }
            backoff.snooze();
        }
    }

    /// Makes a block that was used before look new. Needs sole ownership.
    fn reset(&mut self) {
        self.next.store(ptr::null_mut(), Ordering::Relaxed);
        for slot in &self.slots {
            slot.state.store(0, Ordering::Relaxed);
        }
    }
}

/// An index and the block it is in.
struct End<T> {
    index: AtomicUsize,
    block: AtomicPtr<Block<T>>,
}

impl<T> End<T> {
    /// The index, then the block. In this order the block is the index's
    /// own (or a later one) and, once a CAS on the index succeeds, exactly
    /// its own: the block is replaced only after the index leaves its lap.
    #[inline]
    fn load(&self) -> (usize, *mut Block<T>) {
        let index = self.index.load(Ordering::Acquire);
        (index, self.block.load(Ordering::Acquire))
    }
}

/// An unbounded multi-producer multi-consumer FIFO list.
pub(crate) struct List<T> {
    head: CachePadded<End<T>>,
    tail: CachePadded<End<T>>,
    /// One emptied block kept for the next push that needs one (or null),
    /// so that a steady stream allocates nothing: with glibc's allocator a
    /// block allocated by a producer and freed by a consumer makes the two
    /// threads contend for the allocator's lock.
    spare: CachePadded<AtomicPtr<Block<T>>>,
    /// The list owns values of type `T` (for the drop check).
    _owns: PhantomData<Box<T>>,
}

// SAFETY: values move between threads through the list (`T: Send`); a
// slot's value is accessed only by the pusher and then the popper that
// claimed its position, ordered by the slot's `WRITTEN` bit.
unsafe impl<T: Send> Send for List<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for List<T> {}

impl<T> List<T> {
    pub(crate) fn new() -> Self {
        let first = Box::into_raw(Block::new());
        Self {
            head: CachePadded::new(End {
                index: AtomicUsize::new(0),
                block: AtomicPtr::new(first),
            }),
            tail: CachePadded::new(End {
                index: AtomicUsize::new(0),
                block: AtomicPtr::new(first),
            }),
            spare: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            _owns: PhantomData,
        }
    }

    /// A block for the next lap: the spare one, or a new one.
    fn take_spare_block(&self) -> Box<Block<T>> {
        let spare = self.spare.swap(ptr::null_mut(), Ordering::Acquire);
        if spare.is_null() {
            Block::new()
        } else {
            // SAFETY: a spare block was put there by `retire`, which gave up
            // every reference to it; the swap made it ours alone.
            unsafe { Box::from_raw(spare) }
        }
    }

    /// Keeps `block` as the spare, or frees it if there is one already.
    fn keep_as_spare(&self, mut block: Box<Block<T>>) {
        block.reset();
        let block = Box::into_raw(block);
        if self
            .spare
            .compare_exchange(ptr::null_mut(), block, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: the exchange failed, so `block` is still ours alone.
            drop(unsafe { Box::from_raw(block) });
        }
    }

    /// Retires `block` once the slots from `start` on (all but the last)
    /// are read, or hands the job to the reader of the first unread one.
    ///
    /// # Safety
    ///
    /// `block` is live, every one of its positions was claimed by a pop,
    /// and the caller is the reader of the last slot (`start == 0`) or of
    /// slot `start - 1` who found `DESTROY` set.
    unsafe fn retire(&self, block: *mut Block<T>, start: usize) {
        for index in start..BLOCK_SLOTS - 1 {
            // SAFETY: the block is live until this walk retires it (see the
            // module docs: only the walk's owner does).
            let slot = unsafe { &(*block).slots[index] };
            if slot.state.load(Ordering::Acquire) & READ == 0
                && slot.state.fetch_or(DESTROY, Ordering::AcqRel) & READ == 0
            {
                // Its reader is still at work and will continue the walk.
                return;
            }
        }
        // SAFETY: every slot was read and nobody else refers to the block.
        self.keep_as_spare(unsafe { Box::from_raw(block) });
    }

    /// Appends `value`; `claimed` runs after the slot is claimed and before
    /// the value is visible to poppers.
    #[inline]
    pub(crate) fn push(&self, value: T, claimed: impl FnOnce()) -> Result<(), PushError<T>> {
        let backoff = Backoff::new();
        let (mut tail, mut block) = self.tail.load();
        let mut next_block: Option<Box<Block<T>>> = None;
        loop {
            if tail & MARK != 0 {
                return Err(PushError::ShutDown(value));
            }
            let offset = (tail >> SHIFT) % LAP;
            if offset == BLOCK_SLOTS {
                // The pusher of the last slot is installing the next block.
                backoff.snooze();
                (tail, block) = self.tail.load();
                continue;
            }
            let takes_last_slot = offset + 1 == BLOCK_SLOTS;
            if takes_last_slot && next_block.is_none() {
                // Get it before claiming: the others wait while we install.
                next_block = Some(self.take_spare_block());
            }
            match self.tail.index.compare_exchange_weak(
                tail,
                tail.wrapping_add(STEP),
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: the CAS proved `block` current (it is replaced
                    // only after `tail.index` leaves its lap), and it stays
                    // live until our slot is read, which needs `WRITTEN`.
                    let block = unsafe { &*block };
                    if takes_last_slot {
                        // Move `tail` into the next lap first, link second:
                        // a popper follows the link only after taking this
                        // block's last slot, so `head` can enter the next
                        // block only once `tail` is there. Linking first
                        // let `head` pass `tail`, and a popper then claimed
                        // a position nobody had pushed (issue 12).
                        let next = Box::into_raw(next_block.take().expect("taken above"));
                        self.tail.block.store(next, Ordering::Release);
                        // `Release`: orders the block store above before the
                        // index that announces it, for pushers (see `load`).
                        self.tail.index.fetch_add(STEP, Ordering::Release);
                        // `Release`, after the index: whoever acquires the
                        // link also sees `tail` in the next lap.
                        block.next.store(next, Ordering::Release);
                    }
                    claimed();
                    let slot = &block.slots[offset];
                    // SAFETY: position `tail` is ours; nobody reads the slot
                    // before `WRITTEN`.
                    slot.value.with_mut(|cell| unsafe { (*cell).write(value) });
                    slot.state.fetch_or(WRITTEN, Ordering::Release);
                    if let Some(unused) = next_block {
                        // We lost the last slot to another pusher.
                        self.keep_as_spare(unused);
                    }
                    return Ok(());
                }
                Err(actual) => {
                    tail = actual;
                    block = self.tail.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Takes the oldest value.
    #[inline]
    pub(crate) fn pop(&self) -> Result<T, PopError> {
        let backoff = Backoff::new();
        let (mut head, mut block) = self.head.load();
        loop {
            let offset = (head >> SHIFT) % LAP;
            if offset == BLOCK_SLOTS {
                // The popper of the last slot is moving to the next block.
                backoff.snooze();
                (head, block) = self.head.load();
                continue;
            }
            let mut new_head = head.wrapping_add(STEP);
            if head & HAS_NEXT == 0 {
                fence(Ordering::SeqCst);
                let tail = self.tail.index.load(Ordering::Relaxed);
                if head >> SHIFT == tail >> SHIFT {
                    return Err(if tail & MARK != 0 {
                        PopError::ShutDown
                    } else {
                        PopError::Empty
                    });
                }
                if (head >> SHIFT) / LAP != (tail >> SHIFT) / LAP {
                    // The tail is in a later block: every slot of this one
                    // was claimed by a push.
                    new_head |= HAS_NEXT;
                }
            }
            match self.head.index.compare_exchange_weak(
                head,
                new_head,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let takes_last_slot = offset + 1 == BLOCK_SLOTS;
                    // SAFETY: the CAS proved `block` current; it stays live
                    // until our slot is read (we are its reader).
                    let block_ref = unsafe { &*block };
                    if takes_last_slot {
                        let next = block_ref.wait_for_next();
                        // Skip the lap's end position; the flag is recomputed.
                        let mut next_index = (new_head & !HAS_NEXT).wrapping_add(STEP);
                        // SAFETY: `next` holds unread slots (ours to move
                        // the head onto), so it is live.
                        if !unsafe { &*next }.next.load(Ordering::Relaxed).is_null() {
                            next_index |= HAS_NEXT;
                        }
                        self.head.block.store(next, Ordering::Release);
                        self.head.index.store(next_index, Ordering::Release);
                    }
                    let slot = &block_ref.slots[offset];
                    while slot.state.load(Ordering::Acquire) & WRITTEN == 0 {
                        // The pusher claimed the slot and is writing it.
                        backoff.snooze();
                    }
                    // SAFETY: `WRITTEN` says the value is there; the claim
                    // makes us its only reader.
                    let value = slot
                        .value
                        .with_mut(|cell| unsafe { (*cell).assume_init_read() });
                    if takes_last_slot {
                        // SAFETY: we read the last slot: the walk is ours.
                        unsafe { self.retire(block, 0) };
                    } else if slot.state.fetch_or(READ, Ordering::AcqRel) & DESTROY != 0 {
                        // SAFETY: the last slot's reader handed us the walk.
                        unsafe { self.retire(block, offset + 1) };
                    }
                    return Ok(value);
                }
                Err(actual) => {
                    head = actual;
                    block = self.head.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Refuses every later push (again: no change).
    pub(crate) fn shut_down(&self) {
        self.tail.index.fetch_or(MARK, Ordering::SeqCst);
    }

    /// Whether pushes are refused.
    #[inline]
    pub(crate) fn is_shut_down(&self) -> bool {
        self.tail.index.load(Ordering::SeqCst) & MARK != 0
    }

    /// Values in the list (a snapshot; claimed positions count).
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.index.load(Ordering::SeqCst);
            let head = self.head.index.load(Ordering::SeqCst);
            if self.tail.index.load(Ordering::SeqCst) != tail {
                continue;
            }
            let tail = tail >> SHIFT;
            let head = head >> SHIFT;
            // Every lap boundary between them is one position that is not
            // a slot (a lap's end position). An index sitting on a lap's
            // end (a pusher or popper moving to the next block) needs no
            // care: one step on to the next lap adds one to the distance
            // and one boundary, which cancel.
            let boundaries = (tail / LAP).wrapping_sub(head / LAP);
            return tail.wrapping_sub(head).wrapping_sub(boundaries);
        }
    }

    /// Whether a pop would find nothing (read under a seam lock: atomics only).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        let head = self.head.index.load(Ordering::SeqCst);
        let tail = self.tail.index.load(Ordering::SeqCst);
        head >> SHIFT == tail >> SHIFT
    }
}

impl<T> Drop for List<T> {
    /// Drops the values left and frees the blocks; if a value's `Drop`
    /// panics, the rest are still dropped and every block freed, then the
    /// panic goes on.
    fn drop(&mut self) {
        // `&mut self`: no other thread is inside a push or pop, so every
        // position between head and tail holds a written value.
        let mut drops = DropAll::new();
        let mut head = self.head.index.load(Ordering::Relaxed) & !HAS_NEXT;
        let tail = self.tail.index.load(Ordering::Relaxed) & !MARK;
        let mut block = self.head.block.load(Ordering::Relaxed);
        while head != tail {
            let offset = (head >> SHIFT) % LAP;
            if offset < BLOCK_SLOTS {
                // SAFETY: `block` is live (it is freed below, after its
                // last position).
                let slot = unsafe { &(*block).slots[offset] };
                // SAFETY: the position was pushed and never popped; it is
                // dropped once (a panic in its `Drop` counts as dropped).
                drops.drop_one(|| {
                    slot.value
                        .with_mut(|cell| unsafe { (*cell).assume_init_drop() })
                });
            } else {
                // SAFETY: every slot of `block` was dropped or popped; the
                // pushes past it linked the next block.
                let next = unsafe { (*block).next.load(Ordering::Relaxed) };
                // SAFETY: as above; nothing refers to `block` any more.
                drop(unsafe { Box::from_raw(block) });
                block = next;
            }
            head = head.wrapping_add(STEP);
        }
        // SAFETY: the head's block is owned by the list alone now.
        drop(unsafe { Box::from_raw(block) });
        let spare = self.spare.load(Ordering::Relaxed);
        if !spare.is_null() {
            // SAFETY: the spare block belongs to the list alone.
            drop(unsafe { Box::from_raw(spare) });
        }
        drops.finish();
    }
}

#[cfg(all(test, not(any(verisync_loom, verisync_shuttle))))]
mod tests {
    use super::*;

    /// `len` is exact at every count, across many laps (every lap's end
    /// position, which holds no slot, is skipped), filling and draining,
    /// and with the head and the tail in different laps.
    #[test]
    fn len_is_exact_across_many_laps() {
        let list = List::new();
        let items = 40 * BLOCK_SLOTS + 7;
        for pushed in 0..items {
            assert_eq!(list.len(), pushed, "after {pushed} pushes");
            assert!(list.push(pushed, || {}).is_ok());
        }
        for popped in 0..items {
            assert_eq!(list.len(), items - popped, "after {popped} pops");
            assert_eq!(list.pop().ok(), Some(popped));
        }
        assert_eq!(list.len(), 0);
        // A window of 3 items sliding over many laps.
        for item in 0..3 {
            assert!(list.push(item, || {}).is_ok());
        }
        for item in 3..40 * LAP {
            assert!(list.push(item, || {}).is_ok());
            assert_eq!(list.len(), 4, "window at {item}");
            assert_eq!(list.pop().ok(), Some(item - 3));
            assert_eq!(list.len(), 3, "window at {item}");
        }
    }
}
