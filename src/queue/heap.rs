//! The priority order: a min-heap, smallest item first, ties in insertion
//! order.
//!
//! # Layout
//!
//! A 4-ary heap in a `Vec` of [`Entry`]s: the children of slot `i` are
//! `4i + 1 ..= 4i + 4`, its parent is `(i - 1) / 4`, and every entry comes
//! [`before`] each of its children or equals it. Four children per node
//! halve the levels a `pop` walks compared with a binary heap, and the
//! four sit next to each other in memory. Measured in the queue benchmark
//! (priority, capacity 1024, medians of three): 4-ary 91 ns per message
//! 1P/1C and 89 ns 2P/2C; the same code binary 103 and 110, 8-ary 104 and
//! 114; std's `BinaryHeap` of (item, insertion number) before it 117 and
//! 130.
//!
//! # Order
//!
//! An entry is its item and an insertion number. `a` comes before `b` if
//! `a.item < b.item`, or if the items are equal and `a` was put first —
//! so equal items leave in the order they came.
//!
//! A `pop` walks from the root to a leaf choosing, at each level, the
//! child that leaves first. For unordered items that choice is a coin
//! toss, so it is made without a branch ([`Hole::first_of`] uses
//! `select_unpredictable` on `<`); only the test for equal items is a
//! branch, and it is almost never taken unless items repeat. Comparing
//! with a three-way `cmp` and then the insertion numbers (what a derived
//! `Ord` on the pair does) compiled to a mispredicted branch per child
//! pair and was the difference between 117 and 91 ns above.
//!
//! # Moving entries
//!
//! `push` and `pop` move a "hole" along a path instead of swapping: the
//! entry being placed is held aside, entries on the path shift one level
//! into the hole, and the held entry is written once at the end. A
//! [`Hole`] writes the held entry back when dropped, and an interrupted
//! pop puts its entry back ([`PopInProgress`]), so a panicking `Ord`
//! implementation never loses, frees or duplicates an item: whether it
//! panics in a push or a pop, every item stays in the heap (in an order
//! that may no longer be a heap, as with std's `BinaryHeap`, which would
//! instead drop the item a panicking pop had taken).
//!
//! `take_all` (for `shutdown_now`) moves the entries out without a
//! comparison; they are sorted afterwards, outside the queue's lock, so a
//! panicking `Ord` there cannot leave anything behind in the queue.
//!
//! `push`, `pop` and the sort are taken as function pointers when the queue is built
//! (where `T: Ord` is known), so the queue's other methods need no `Ord`
//! bound, while the comparisons inside them are still inlined.

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::panic_payload::take_panic_message;

/// Children per node.
const ARITY: usize = 4;

/// One queued item.
struct Entry<T> {
    item: T,
    /// Insertion number: equal items leave in the order they came.
    sequence: u64,
}

/// Whether `a` leaves before `b`.
#[inline(always)]
fn before<T: Ord>(a: &Entry<T>, b: &Entry<T>) -> bool {
    let less = a.item < b.item;
    if !less && a.item == b.item {
        return inserted_before(a, b);
    }
    less
}

/// The tie-break, out of line: equal items are the rare case.
#[cold]
#[inline(never)]
fn inserted_before<T>(a: &Entry<T>, b: &Entry<T>) -> bool {
    a.sequence < b.sequence
}

/// A min-heap of `T`, FIFO among equals.
pub(crate) struct Heap<T> {
    entries: Vec<Entry<T>>,
    push: fn(&mut Vec<Entry<T>>, Entry<T>),
    pop: fn(&mut Vec<Entry<T>>) -> Option<Entry<T>>,
    sort: fn(&mut [Entry<T>]),
    next_sequence: u64,
}

impl<T: Ord> Heap<T> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Vec::new(),
            push: push_entry::<T>,
            pop: pop_entry::<T>,
            sort: sort_entries::<T>,
            next_sequence: 0,
        }
    }
}

/// Every entry a heap held, taken out at once and not yet in order: see
/// [`Heap::take_all`].
pub(crate) struct Unordered<T> {
    entries: Vec<Entry<T>>,
    sort: fn(&mut [Entry<T>]),
}

impl<T> Unordered<T> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The items, smallest first, ties in insertion order: the order pops
    /// would have given. Runs the items' `Ord`. If that panics, no item is
    /// lost: a panicking sort leaves every entry in the vector, so the
    /// items come back in insertion order instead (which needs no `Ord`),
    /// and the panic is reported on stderr — the caller asked for the
    /// items, and handing them back matters more than their order.
    pub(crate) fn into_sorted(mut self) -> Vec<T> {
        let sort = self.sort;
        let entries = &mut self.entries;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| sort(entries))) {
            report_unsorted(take_panic_message(payload));
            self.entries.sort_unstable_by_key(|entry| entry.sequence);
        }
        self.entries.into_iter().map(|entry| entry.item).collect()
    }

    /// The items in no particular order, running no user code (to drop
    /// them).
    pub(crate) fn into_unsorted(self) -> impl Iterator<Item = T> {
        self.entries.into_iter().map(|entry| entry.item)
    }
}

#[cold]
#[inline(never)]
fn report_unsorted(message: String) {
    eprintln!(
        "verisync: an item's `Ord` panicked while `shutdown_now` put a priority queue's items \
         in order ({message}); the items are handed back in insertion order instead, none lost"
    );
}

impl<T> Heap<T> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn push(&mut self, item: T) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        (self.push)(&mut self.entries, Entry { item, sequence });
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        (self.pop)(&mut self.entries).map(|entry| entry.item)
    }

    /// Takes every item out at once, without comparing any: the heap is
    /// empty afterwards whatever the items' `Ord` does later, when
    /// [`Unordered::into_sorted`] puts them in order.
    pub(crate) fn take_all(&mut self) -> Unordered<T> {
        Unordered {
            entries: std::mem::take(&mut self.entries),
            sort: self.sort,
        }
    }
}

/// Pop order: by item, then by insertion number (unique, so the sort need
/// not be stable).
fn sort_entries<T: Ord>(entries: &mut [Entry<T>]) {
    entries.sort_unstable_by(|a, b| {
        a.item
            .cmp(&b.item)
            .then_with(|| a.sequence.cmp(&b.sequence))
    });
}

fn push_entry<T: Ord>(entries: &mut Vec<Entry<T>>, entry: Entry<T>) {
    entries.push(entry);
    let last = entries.len() - 1;
    let mut hole = Hole::new(entries, last);
    hole.sift_up();
}

fn pop_entry<T: Ord>(entries: &mut Vec<Entry<T>>) -> Option<Entry<T>> {
    let mut smallest = entries.pop()?;
    let Some(root) = entries.first_mut() else {
        return Some(smallest);
    };
    // The old last entry goes to the root and sinks back down.
    std::mem::swap(&mut smallest, root);
    let mut pop = PopInProgress {
        entries,
        popped: Some(smallest),
    };
    {
        let mut hole = Hole::new(pop.entries, 0);
        hole.sink_to_bottom();
        hole.sift_up();
    }
    pop.popped.take()
}

/// A pop between taking its entry out and restoring the heap below it.
/// If a comparison panics in between, dropping this puts the entry back
/// (at the end), so the item stays queued instead of being dropped.
struct PopInProgress<'a, T> {
    entries: &'a mut Vec<Entry<T>>,
    /// `Some` until the pop completes.
    popped: Option<Entry<T>>,
}

impl<T> Drop for PopInProgress<'_, T> {
    fn drop(&mut self) {
        if let Some(entry) = self.popped.take() {
            // The vector held this entry a moment ago: no reallocation.
            self.entries.push(entry);
        }
    }
}

/// A slot whose entry has been taken out and is held aside.
///
/// Invariants: `position < entries.len()`; every slot but `position`
/// holds a live entry that is not `held`; the slot at `position` holds a
/// stale bitwise copy that must be overwritten, never dropped or returned.
/// Dropping the hole writes `held` into `position`, restoring "every slot
/// holds a distinct live entry".
struct Hole<'a, T> {
    entries: &'a mut [Entry<T>],
    held: ManuallyDrop<Entry<T>>,
    position: usize,
}

impl<'a, T: Ord> Hole<'a, T> {
    /// Takes the entry at `position` out of `entries`.
    ///
    /// Panics if `position` is out of bounds.
    #[inline]
    fn new(entries: &'a mut [Entry<T>], position: usize) -> Self {
        // SAFETY: the index is in bounds (checked by the indexing); the
        // value read becomes `held` and the slot is treated as vacant from
        // here on (see the type's invariants), so it is owned exactly once.
        let held = unsafe { ptr::read(&entries[position]) };
        Self {
            entries,
            held: ManuallyDrop::new(held),
            position,
        }
    }

    /// Moves the entry at `from` into the hole; the hole moves to `from`.
    ///
    /// `from` must be in bounds and not `position`: every caller passes a
    /// parent or a child of `position` that it has just compared through
    /// checked indexing (a parent is below `position`, a child above it).
    /// Checked all the same, in release builds too (one predictable
    /// branch): the copy below must never read past the live entries
    /// (mutation testing showed a sink that picked the slot one past the
    /// end, a Vec's spare capacity, with no test able to tell).
    #[inline(always)]
    fn fill_from(&mut self, from: usize) {
        assert!(
            from < self.entries.len() && from != self.position,
            "verisync: heap slot {from} moved into the hole at {} of {}",
            self.position,
            self.entries.len()
        );
        let base = self.entries.as_mut_ptr();
        // SAFETY: both indices are in bounds (`from` by the caller's
        // checked read, `position` by the invariant) and distinct, so the
        // regions do not overlap; the live entry at `from` moves into the
        // vacant slot and `from` becomes the vacant slot, so nothing is
        // owned twice.
        unsafe { ptr::copy_nonoverlapping(base.add(from), base.add(self.position), 1) };
        self.position = from;
    }

    /// Moves the held entry up while it leaves before its parent.
    #[inline(always)]
    fn sift_up(&mut self) {
        while self.position > 0 {
            let parent = (self.position - 1) / ARITY;
            if !before(&self.held, &self.entries[parent]) {
                break;
            }
            self.fill_from(parent);
        }
    }

    /// Moves the hole down to a leaf, always along the child that leaves
    /// first (the held entry is not compared: it came from the bottom and
    /// will nearly always go back there; `sift_up` puts it in its place).
    #[inline(always)]
    fn sink_to_bottom(&mut self) {
        let len = self.entries.len();
        loop {
            let first = ARITY * self.position + 1;
            let next = if first + ARITY <= len {
                // Four children: two pairs, then their winners.
                let left = self.first_of(first + 1, first);
                let right = self.first_of(first + 3, first + 2);
                self.first_of(right, left)
            } else if first < len {
                let mut best = first;
                for child in first + 1..len {
                    best = self.first_of(child, best);
                }
                best
            } else {
                return;
            };
            self.fill_from(next);
        }
    }

    /// Of the entries at `later` and `earlier` (`earlier < later`), the
    /// index of the one that leaves first.
    ///
    /// Which child wins is a coin toss for unordered items, so it is
    /// chosen without a branch (`select_unpredictable`); a mispredicted
    /// branch per child pair measured as most of a `pop`. Equal items
    /// take a separate branch that is almost never taken.
    #[inline(always)]
    fn first_of(&self, later: usize, earlier: usize) -> usize {
        let (later_entry, earlier_entry) = (&self.entries[later], &self.entries[earlier]);
        if later_entry.item == earlier_entry.item {
            return if inserted_before(later_entry, earlier_entry) {
                later
            } else {
                earlier
            };
        }
        std::hint::select_unpredictable(later_entry.item < earlier_entry.item, later, earlier)
    }
}

impl<T> Drop for Hole<'_, T> {
    fn drop(&mut self) {
        // SAFETY: `position` is in bounds and vacant (the invariant); the
        // held entry is written there once and never used again.
        unsafe {
            let held = ManuallyDrop::take(&mut self.held);
            ptr::write(self.entries.as_mut_ptr().add(self.position), held);
        }
    }
}

#[cfg(all(test, not(verisync_loom)))]
mod tests {
    use std::cell::Cell;
    use std::cmp::{Ordering, Reverse};
    use std::collections::BinaryHeap;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    use super::Heap;

    #[test]
    fn smallest_first() {
        let mut heap = Heap::new();
        for item in [3, 1, 4, 1, 5, 9, 2, 6] {
            heap.push(item);
        }
        assert_eq!(heap.take_all().into_sorted(), [1, 1, 2, 3, 4, 5, 6, 9]);
    }

    /// Ordered by `key` only; `tag` tells equal keys apart.
    #[derive(Debug)]
    struct Tie {
        key: u32,
        tag: u32,
    }
    impl PartialEq for Tie {
        fn eq(&self, other: &Self) -> bool {
            self.key == other.key
        }
    }
    impl Eq for Tie {}
    impl PartialOrd for Tie {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Tie {
        fn cmp(&self, other: &Self) -> Ordering {
            self.key.cmp(&other.key)
        }
    }

    #[test]
    fn ties_leave_in_insertion_order() {
        let mut heap = Heap::new();
        for tag in 0..3 {
            heap.push(Tie { key: 7, tag });
        }
        let tags: Vec<u32> = heap
            .take_all()
            .into_sorted()
            .iter()
            .map(|tie| tie.tag)
            .collect();
        assert_eq!(tags, [0, 1, 2]);
    }

    /// Interleaved pushes and pops of few distinct keys (so ties are
    /// everywhere), against std's heap keyed by (key, insertion number).
    #[test]
    fn matches_a_heap_of_key_and_insertion_number() {
        let mut heap = Heap::new();
        let mut model = BinaryHeap::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for tag in 0..20_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = (state % 13) as u32;
            heap.push(Tie { key, tag });
            model.push(Reverse((key, tag)));
            if state.is_multiple_of(3) {
                let expected = model.pop().map(|Reverse(entry)| entry);
                let got = heap.pop().map(|tie| (tie.key, tie.tag));
                assert_eq!(got, expected);
            }
        }
        let rest: Vec<(u32, u32)> = heap
            .take_all()
            .into_sorted()
            .iter()
            .map(|tie| (tie.key, tie.tag))
            .collect();
        let expected: Vec<(u32, u32)> = model
            .into_sorted_vec()
            .into_iter()
            .rev()
            .map(|Reverse(entry)| entry)
            .collect();
        assert_eq!(rest, expected);
    }

    /// An item that counts its drops and can make comparisons panic.
    struct Fragile {
        key: u32,
        drops: Rc<Cell<usize>>,
        comparisons_left: Rc<Cell<usize>>,
    }
    impl Drop for Fragile {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }
    impl PartialEq for Fragile {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other) == Ordering::Equal
        }
    }
    impl Eq for Fragile {}
    impl PartialOrd for Fragile {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Fragile {
        fn cmp(&self, other: &Self) -> Ordering {
            let left = self.comparisons_left.get();
            assert!(left > 0, "comparison budget spent");
            self.comparisons_left.set(left - 1);
            self.key.cmp(&other.key)
        }
    }

    /// A panicking `Ord` in the middle of a push or a pop loses and
    /// duplicates nothing: the pushed or popped item stays in the heap,
    /// and every item is dropped exactly once in all.
    #[test]
    fn a_panicking_comparison_loses_and_duplicates_nothing() {
        let (mut push_panics, mut pop_panics) = (0, 0);
        for budget in 0..40 {
            let drops = Rc::new(Cell::new(0));
            let comparisons_left = Rc::new(Cell::new(usize::MAX));
            let fragile = |key| Fragile {
                key,
                drops: Rc::clone(&drops),
                comparisons_left: Rc::clone(&comparisons_left),
            };
            let mut heap = Heap::new();
            for key in [50, 40, 30, 20, 10, 60, 70, 5, 45, 35, 25, 15, 55] {
                heap.push(fragile(key));
            }
            comparisons_left.set(budget);
            let push_panicked = catch_unwind(AssertUnwindSafe(|| heap.push(fragile(1)))).is_err();
            let pop_panicked = catch_unwind(AssertUnwindSafe(|| drop(heap.pop()))).is_err();
            push_panics += usize::from(push_panicked);
            pop_panics += usize::from(pop_panicked);
            let in_heap = if pop_panicked { 14 } else { 13 };
            assert_eq!(heap.len(), in_heap, "budget {budget}");
            assert_eq!(drops.get(), 14 - in_heap, "budget {budget}");
            comparisons_left.set(usize::MAX);
            drop(heap);
            assert_eq!(drops.get(), 14, "budget {budget}");
        }
        assert!(push_panics > 0 && pop_panics > 0, "no comparison panicked");
    }
}
