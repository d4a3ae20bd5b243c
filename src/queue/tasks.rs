//! Task accounting for `task_done`/`join`, split between producers and
//! consumers so that neither side writes a cache line the other writes.
//!
//! # Counters
//!
//! ```text
//!  put   producers' line   items put (incremented when a put claims its place,
//!                          before the item is visible to getters)
//!  done  consumers' line   tasks marked done (task_done, guards, shutdown_now)
//!  seen  consumers' line   a value `put` had recently (seen <= put always)
//!
//!  unfinished = put - done          done <= put, except for the instant
//!                                   between a refused task_done's add and
//!                                   its undo (then every task is done)
//! ```
//!
//! A single `unfinished` counter would be written by every put and every
//! `task_done`, bouncing its cache line between the producers' and the
//! consumers' cores on every item. Here a `task_done` adds to `done` and
//! compares with `seen`, both on the consumers' line; only when `done`
//! catches up with `seen` does it read `put` (and refresh `seen`) to decide
//! whether it was the last task or one too many.
//!
//! # Reading a consistent "all done"
//!
//! `done` is read before `put`: both only grow, so if `done >= put` then at
//! the moment `done` was read every task put by then was done. (Reading
//! `put` first could pair an old `put` with a newer `done` and see "all
//! done" at a moment when a later put was still unfinished.)
//!
//! # Orderings
//!
//! `done` changes by `SeqCst` read-modify-writes and is read `SeqCst`, so
//! the joiners' wait list handshake (`raw/wait_list.rs`) holds: a joiner
//! either sees the last `task_done` or is seen, as a sleeper, by it.

use crossbeam_utils::CachePadded;

use super::error::TaskDoneError;
use crate::sys::atomic::{AtomicUsize, Ordering};

/// The consumers' side.
struct Done {
    done: AtomicUsize,
    seen: AtomicUsize,
}

/// Items put and tasks done.
pub(crate) struct TaskCount {
    put: CachePadded<AtomicUsize>,
    consumers: CachePadded<Done>,
}

impl TaskCount {
    pub(crate) fn new() -> Self {
        Self {
            put: CachePadded::new(AtomicUsize::new(0)),
            consumers: CachePadded::new(Done {
                done: AtomicUsize::new(0),
                seen: AtomicUsize::new(0),
            }),
        }
    }

    /// Counts one put. Call before the item is visible to getters (its
    /// publication then carries this count to whoever gets it).
    #[inline]
    pub(crate) fn put_one(&self) {
        self.put.fetch_add(1, Ordering::Relaxed);
    }

    /// As [`put_one`](Self::put_one), for a storage whose every put holds
    /// one lock while it counts (the locked storages): a load and a store
    /// instead of a read-modify-write, which on x86 is a locked instruction
    /// on every put. The lock orders each holder's store before the next
    /// holder's load, so no count is lost; readers that do not hold the
    /// lock (`task_done`, `unfinished`) see each store whole, as with
    /// `fetch_add`.
    #[inline]
    pub(crate) fn put_one_serialized(&self) {
        let put = self.put.load(Ordering::Relaxed);
        self.put.store(put + 1, Ordering::Relaxed);
    }

    /// Counts one task done. `Ok(true)` if it was the last unfinished one;
    /// `Err` (and nothing counted) if every task put was already done.
    ///
    /// If a refused call races with a put, which of two concurrent calls is
    /// refused is not specified; the counts stay exact either way.
    #[inline]
    pub(crate) fn done_one(&self) -> Result<bool, TaskDoneError> {
        let done = self.consumers.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done < self.consumers.seen.load(Ordering::Relaxed) {
            // `seen <= put`: more tasks are unfinished, and this one was
            // legitimately put.
            return Ok(false);
        }
        self.done_near_put(done)
    }

    /// The slow end of `done_one`: `done` caught up with `seen`.
    #[cold]
    fn done_near_put(&self, done: usize) -> Result<bool, TaskDoneError> {
        let put = self.put.load(Ordering::SeqCst);
        self.consumers.seen.fetch_max(put, Ordering::Relaxed);
        if done > put {
            self.consumers.done.fetch_sub(1, Ordering::SeqCst);
            return Err(TaskDoneError);
        }
        Ok(done == put)
    }

    /// Counts up to `count` tasks done at once (items `shutdown_now` handed
    /// back), never more than are unfinished: `task_done` may legally have
    /// run ahead of `get`. Returns whether this made every task done.
    pub(crate) fn done_handed_back(&self, count: usize) -> bool {
        let mut done = self.consumers.done.load(Ordering::SeqCst);
        loop {
            let put = self.put.load(Ordering::SeqCst);
            let unfinished = put.saturating_sub(done);
            if unfinished == 0 {
                return false;
            }
            let counted = unfinished.min(count);
            match self.consumers.done.compare_exchange_weak(
                done,
                done + counted,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return counted == unfinished,
                Err(actual) => done = actual,
            }
        }
    }

    /// Items put and not yet marked done (a snapshot).
    pub(crate) fn unfinished(&self) -> usize {
        let done = self.consumers.done.load(Ordering::SeqCst);
        let put = self.put.load(Ordering::SeqCst);
        put.saturating_sub(done)
    }

    /// Whether every item put has been marked done (atomics only: safe in a
    /// wait list's validation).
    pub(crate) fn all_done(&self) -> bool {
        self.unfinished() == 0
    }
}
