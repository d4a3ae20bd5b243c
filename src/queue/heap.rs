//! The priority order: a binary min-heap, smallest item first, ties in
//! insertion order.
//!
//! The comparison is a function pointer taken when the queue is built (where
//! `T: Ord` is known), so the queue's other methods need no `Ord` bound.

use std::cmp::Ordering;

struct Entry<T> {
    item: T,
    /// Insertion number: equal items leave in the order they came.
    sequence: u64,
}

/// A min-heap of `T` by a stored comparison, FIFO among equals.
pub(crate) struct Heap<T> {
    entries: Vec<Entry<T>>,
    compare: fn(&T, &T) -> Ordering,
    next_sequence: u64,
}

impl<T> Heap<T> {
    pub(crate) fn new(compare: fn(&T, &T) -> Ordering) -> Self {
        Self {
            entries: Vec::new(),
            compare,
            next_sequence: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether entry `a` must leave before entry `b`.
    fn before(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.entries[a], &self.entries[b]);
        match (self.compare)(&a.item, &b.item) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => a.sequence < b.sequence,
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.entries.push(Entry { item, sequence });
        let mut child = self.entries.len() - 1;
        while child > 0 {
            let parent = (child - 1) / 2;
            if !self.before(child, parent) {
                break;
            }
            self.entries.swap(child, parent);
            child = parent;
        }
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.entries.is_empty() {
            return None;
        }
        let last = self.entries.len() - 1;
        self.entries.swap(0, last);
        let first = self.entries.pop().map(|entry| entry.item);
        let mut parent = 0;
        loop {
            let left = 2 * parent + 1;
            let right = left + 1;
            let mut smallest = parent;
            if left < self.entries.len() && self.before(left, smallest) {
                smallest = left;
            }
            if right < self.entries.len() && self.before(right, smallest) {
                smallest = right;
            }
            if smallest == parent {
                break;
            }
            self.entries.swap(parent, smallest);
            parent = smallest;
        }
        first
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
    fn smallest_first_and_equal_items_in_insertion_order() {
        let mut heap = Heap::new(|a: &(u8, char), b: &(u8, char)| a.0.cmp(&b.0));
        for item in [(3, 'a'), (1, 'b'), (3, 'c'), (1, 'd'), (2, 'e'), (1, 'f')] {
            heap.push(item);
        }
        let order: String = std::iter::from_fn(|| heap.pop())
            .map(|(_, tag)| tag)
            .collect();
        assert_eq!(order, "bdfeac");
    }
}
