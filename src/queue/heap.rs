//! The priority order: a min-heap, smallest item first, ties in insertion
//! order.
//!
//! It is std's `BinaryHeap` of `Reverse<(item, insertion number)>`. Its
//! `push` and `pop` are taken as function pointers when the queue is built
//! (where `T: Ord` is known), so the queue's other methods need no `Ord`
//! bound, while the comparisons inside them are still inlined.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry<T> {
    item: T,
    /// Insertion number: equal items leave in the order they came.
    sequence: u64,
}

type Entries<T> = BinaryHeap<Reverse<Entry<T>>>;

/// A min-heap of `T`, FIFO among equals.
pub(crate) struct Heap<T> {
    entries: Entries<T>,
    push: fn(&mut Entries<T>, Reverse<Entry<T>>),
    pop: fn(&mut Entries<T>) -> Option<Reverse<Entry<T>>>,
    next_sequence: u64,
}

impl<T: Ord> Heap<T> {
    pub(crate) fn new() -> Self {
        Self {
            entries: BinaryHeap::new(),
            push: BinaryHeap::push,
            pop: BinaryHeap::pop,
            next_sequence: 0,
        }
    }
}

impl<T> Heap<T> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn push(&mut self, item: T) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        (self.push)(&mut self.entries, Reverse(Entry { item, sequence }));
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        (self.pop)(&mut self.entries).map(|Reverse(entry)| entry.item)
    }

    /// Every item, smallest first.
    pub(crate) fn drain_in_order(&mut self) -> Vec<T> {
        let mut items = Vec::with_capacity(self.entries.len());
        while let Some(item) = self.pop() {
            items.push(item);
        }
        items
    }
}

#[cfg(all(test, not(verisync_loom)))]
mod tests {
    use super::Heap;

    #[test]
    fn smallest_first() {
        let mut heap = Heap::new();
        for item in [3, 1, 4, 1, 5, 9, 2, 6] {
            heap.push(item);
        }
        assert_eq!(heap.drain_in_order(), [1, 1, 2, 3, 4, 5, 6, 9]);
    }

    #[test]
    fn ties_leave_in_insertion_order() {
        #[derive(Debug)]
        struct Tie(char);
        impl PartialEq for Tie {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }
        impl Eq for Tie {}
        impl PartialOrd for Tie {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Tie {
            fn cmp(&self, _: &Self) -> std::cmp::Ordering {
                std::cmp::Ordering::Equal
            }
        }
        let mut heap = Heap::new();
        for tag in ['x', 'y', 'z'] {
            heap.push(Tie(tag));
        }
        let order: String = heap.drain_in_order().into_iter().map(|tie| tie.0).collect();
        assert_eq!(order, "xyz");
    }
}
