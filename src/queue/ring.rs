//! The bounded FIFO storage: a ring of slots with per-slot stamps
//! (Dmitry Vyukov's bounded MPMC queue), plus a shut-down mark.
//!
//! # Positions
//!
//! `head` (next slot to take) and `tail` (next slot to fill) are positions:
//!
//! ```text
//!  position = lap + index      index < capacity < MARK,  lap = k * ONE_LAP
//!  MARK     = (capacity + 1).next_power_of_two()     (only ever set in `tail`)
//!  ONE_LAP  = 2 * MARK
//! ```
//!
//! so the `MARK` bit is free in every position, and `tail | MARK` means
//! "shut down: no more pushes".
//!
//! # Slot stamps
//!
//! | stamp of slot `i`          | meaning                                      |
//! |----------------------------|----------------------------------------------|
//! | `== tail` (same lap)       | empty, ready to be filled at position `tail` |
//! | `== head + 1`              | filled, ready to be taken at position `head` |
//! | `== position + ONE_LAP`    | taken; ready for the next lap's fill         |
//!
//! A push claims position `tail` with a CAS on `tail`, writes the value and
//! publishes it by storing `stamp = tail + 1` (`Release`). A pop claims
//! `head` with a CAS on `head` once the stamp says "filled" (`Acquire`),
//! reads the value and frees the slot by storing `stamp = head + ONE_LAP`.
//!
//! A slot whose stamp is behind the claimant's position is mid-step in
//! another thread (claimed, not yet published); the claimant backs off and
//! retries. Full and empty are decided by comparing `head` and `tail` after
//! a `SeqCst` fence, so a stale stamp is never mistaken for "full"/"empty"
//! while a step is in flight.
//!
//! Shutting down sets `MARK` in `tail` with one `fetch_or`: every later
//! claim fails, claims made before it complete normally, and pops drain
//! until `head` reaches the marked `tail`.

use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use super::drop_all::DropAll;
use crate::sys::atomic::{fence, AtomicUsize, Ordering};
use crate::sys::cell::UnsafeCell;
use crate::sys::spin::Backoff;

/// Why a push was refused; the value comes back.
pub(crate) enum PushError<T> {
    Full(T),
    ShutDown(T),
}

/// Why a pop found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PopError {
    Empty,
    ShutDown,
}

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded multi-producer multi-consumer FIFO ring.
pub(crate) struct Ring<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    capacity: usize,
    mark: usize,
    one_lap: usize,
}

// SAFETY: values move between threads through the ring (`T: Send`); a slot's
// value is accessed only by the one thread that claimed its position.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// A ring holding at most `capacity` (≥ 1) values.
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a ring needs at least one slot");
        let mark = (capacity + 1).next_power_of_two();
        let slots = (0..capacity)
            .map(|index| Slot {
                stamp: AtomicUsize::new(index),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Self {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots,
            capacity,
            mark,
            one_lap: mark * 2,
        }
    }

    /// The position after `position`.
    #[inline]
    fn next(&self, position: usize) -> usize {
        let index = position & (self.mark - 1);
        if index + 1 < self.capacity {
            position + 1
        } else {
            (position & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Appends `value`; `claimed` runs after the slot is claimed and before
    /// the value is visible to poppers.
    #[inline]
    pub(crate) fn push(&self, value: T, claimed: impl FnOnce()) -> Result<(), PushError<T>> {
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & self.mark != 0 {
                return Err(PushError::ShutDown(value));
            }
            let slot = &self.slots[tail & (self.mark - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                match self.tail.compare_exchange_weak(
                    tail,
                    self.next(tail),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        claimed();
                        // SAFETY: we own position `tail`: the CAS gave it to
                        // us and the stamp says the slot is empty.
                        slot.value.with_mut(|cell| unsafe { (*cell).write(value) });
                        slot.stamp.store(tail + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(actual) => {
                        tail = actual;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds last lap's value: full, unless a pop
                // of it is in flight.
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return Err(PushError::Full(value));
                }
                backoff.snooze();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another pusher claimed this position; catch up.
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest value.
    #[inline]
    pub(crate) fn pop(&self) -> Result<T, PopError> {
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[head & (self.mark - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head + 1 {
                match self.head.compare_exchange_weak(
                    head,
                    self.next(head),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: we own position `head`: the CAS gave it to
                        // us and the stamp says the value was published.
                        let value = slot
                            .value
                            .with_mut(|cell| unsafe { (*cell).assume_init_read() });
                        slot.stamp
                            .store(head.wrapping_add(self.one_lap), Ordering::Release);
                        return Ok(value);
                    }
                    Err(actual) => {
                        head = actual;
                        backoff.spin();
                    }
                }
            } else if stamp == head {
                // Not filled yet: empty, unless a push of it is in flight.
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed);
                if tail & !self.mark == head {
                    return Err(if tail & self.mark != 0 {
                        PopError::ShutDown
                    } else {
                        PopError::Empty
                    });
                }
                backoff.snooze();
                head = self.head.load(Ordering::Relaxed);
            } else {
                // Another popper took this position; catch up.
                backoff.spin();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Refuses every later push (again: no change).
    pub(crate) fn shut_down(&self) {
        self.tail.fetch_or(self.mark, Ordering::SeqCst);
    }

    /// Whether pushes are refused.
    #[inline]
    pub(crate) fn is_shut_down(&self) -> bool {
        self.tail.load(Ordering::SeqCst) & self.mark != 0
    }

    /// Values in the ring (a snapshot).
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) != tail {
                continue;
            }
            let tail = tail & !self.mark;
            let head_index = head & (self.mark - 1);
            let tail_index = tail & (self.mark - 1);
            return if head_index < tail_index {
                tail_index - head_index
            } else if head_index > tail_index {
                self.capacity - head_index + tail_index
            } else if tail == head {
                0
            } else {
                self.capacity
            };
        }
    }

    /// Whether a pop would find nothing (read under a seam lock: atomics only).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        tail & !self.mark == head
    }

    /// Whether a push would find no free slot (atomics only).
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        let tail = self.tail.load(Ordering::SeqCst);
        let head = self.head.load(Ordering::SeqCst);
        head.wrapping_add(self.one_lap) == tail & !self.mark
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

impl<T> Drop for Ring<T> {
    /// Drops the values left; if one's `Drop` panics, the rest are still
    /// dropped, then the panic goes on.
    fn drop(&mut self) {
        let mut drops = DropAll::new();
        drops.drop_each(std::iter::from_fn(|| self.pop().ok()));
        drops.finish();
    }
}
