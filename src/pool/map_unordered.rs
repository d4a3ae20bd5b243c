//! [`PoolMapUnordered`]: the lazy iterator behind
//! [`ThreadPool::map_unordered`] — Python's `imap_unordered`.
//!
//! Built like [`PoolMap`](super::PoolMap): inputs go to the pool in chunks
//! of the same adaptive size, a bounded number of chunks in flight. Each
//! chunk's handle gets a completion callback that queues the chunk's
//! number, and the iterator hands out whichever chunk finishes first, its
//! items in input order among themselves — so a slow item delays only the
//! items of its own chunk, never the rest. The iterator blocks on that
//! queue, never polls.
//!
//! Waiting on one of the pool's own workers (a task that iterates a map of
//! its pool), the iterator first waits for the oldest chunk in flight
//! through its handle, which runs it inline if it has not started (see
//! [`TaskHandle::join`]): the queue alone would wait for a worker that may
//! be this one.

use std::collections::HashMap;
use std::fmt;
use std::panic::resume_unwind;
use std::sync::Arc;

use super::hand_out::{Unhanded, ValueCursor};
use super::map::{read_chunk, submit_chunk, ChunkResults, ChunkSize, CHUNKS_PER_WORKER};
use super::task::{TaskError, TaskHandle};
use super::thread::ThreadPool;
use crate::queue::JoinableQueue;

/// A chunk on its way: its handle and how many items it holds.
struct Chunk<R> {
    handle: TaskHandle<ChunkResults<R>>,
    items: usize,
}

/// Results of [`ThreadPool::map_unordered`], in completion order; from that
/// method.
///
/// Dropping it cancels the chunks that have not started.
///
/// ```
/// let pool = verisync::ThreadPool::new(2);
/// let mut lengths: Vec<usize> = pool
///     .map_unordered(["a", "bb", "ccc"], |word| word.len())
///     .collect::<Result<_, _>>()
///     .unwrap();
/// lengths.sort();
/// assert_eq!(lengths, [1, 2, 3]);
/// ```
pub struct PoolMapUnordered<'a, I: Iterator, F, R> {
    pool: &'a ThreadPool,
    inputs: I,
    function: Arc<F>,
    /// The chunks in flight, by number.
    in_flight: HashMap<u64, Chunk<R>>,
    /// The numbers of finished chunks, in the order they finished.
    finished: Arc<JoinableQueue<u64>>,
    next_chunk: u64,
    /// The ready chunk's values up to its next failure, and the rest of
    /// its results.
    values: ValueCursor<R>,
    ready: Unhanded<R>,
    chunk_size: ChunkSize,
    max_in_flight: usize,
    inputs_done: bool,
}

impl<'a, I, F, R> PoolMapUnordered<'a, I, F, R>
where
    I: Iterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    pub(crate) fn new(pool: &'a ThreadPool, inputs: I, function: F) -> Self {
        Self {
            pool,
            chunk_size: ChunkSize::new::<I::Item, R>(&inputs, pool.workers()),
            inputs,
            function: Arc::new(function),
            in_flight: HashMap::new(),
            finished: Arc::new(JoinableQueue::new()),
            next_chunk: 0,
            values: ValueCursor::default(),
            ready: Unhanded::default(),
            max_in_flight: pool.workers() * CHUNKS_PER_WORKER,
            inputs_done: false,
        }
    }

    /// Sends chunks until the in-flight bound is reached or inputs run out.
    /// If the input iterator panics, the items read before it are sent
    /// first, then the panic goes on to the caller.
    fn fill(&mut self) {
        while !self.inputs_done && self.in_flight.len() < self.max_in_flight {
            let read = read_chunk(&mut self.inputs, self.chunk_size.get());
            self.inputs_done = read.ended;
            self.chunk_size.note_read(read.items.len());
            if !read.items.is_empty() {
                self.send(read.items);
            }
            if let Some(panic) = read.panic {
                resume_unwind(panic);
            }
        }
    }

    /// Submits one chunk and notes its number on the completion queue
    /// when it finishes.
    fn send(&mut self, chunk: Vec<I::Item>) {
        let items = chunk.len();
        let handle = submit_chunk(self.pool, &self.function, chunk);
        let number = self.next_chunk;
        self.next_chunk += 1;
        let finished = Arc::clone(&self.finished);
        // The queue is never shut down, so the put cannot be refused.
        handle.on_done_notify(move || {
            let _ = finished.put(number);
        });
        self.in_flight.insert(number, Chunk { handle, items });
    }

    /// The number of the next chunk to finish, waiting for one.
    fn next_finished(&self) -> u64 {
        if self.pool.is_own_worker() && self.finished.is_empty() {
            self.help_oldest_chunk();
        }
        self.finished
            .get()
            .expect("the completion queue is never shut down")
    }

    /// On one of the pool's workers: waits for the oldest chunk in flight,
    /// running it inline if it has not started.
    #[cold]
    fn help_oldest_chunk(&self) {
        if let Some(oldest) = self.in_flight.keys().min() {
            self.in_flight[oldest].handle.wait();
        }
    }
}

impl<I, F, R> Iterator for PoolMapUnordered<'_, I, F, R>
where
    I: Iterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(value) = self.values.next() {
            return Some(Ok(value));
        }
        // SAFETY (each call on `ready` below): the map has one `Unhanded`
        // and one cursor from it, `values`, taken out and put back around
        // each call, so that each call's cursor is the one the call before
        // gave (a panic in `fill` leaves a default cursor, over nothing).
        loop {
            let (failure, values) =
                unsafe { self.ready.next_failure(std::mem::take(&mut self.values)) };
            self.values = values;
            if let Some(error) = failure {
                return Some(Err(error));
            }
            self.fill();
            if self.in_flight.is_empty() {
                return None;
            }
            let number = self.next_finished();
            let chunk = self
                .in_flight
                .remove(&number)
                .expect("each chunk finishes once");
            let results = match chunk.handle.join() {
                Ok(results) => {
                    self.chunk_size.adapt(results.spent, chunk.items);
                    results
                }
                // The chunk never ran (the pool shut down): every item in it
                // reports why.
                Err(error) => ChunkResults::failed(&error, chunk.items),
            };
            let used_up = std::mem::take(&mut self.values);
            self.values = unsafe { self.ready.load(used_up, results) };
            if let Some(value) = self.values.next() {
                return Some(Ok(value));
            }
        }
    }
}

impl<I: Iterator, F, R> Drop for PoolMapUnordered<'_, I, F, R> {
    fn drop(&mut self) {
        for chunk in self.in_flight.values() {
            chunk.handle.cancel();
        }
        // SAFETY: `values` is the map's one cursor from `ready` (see
        // `next`).
        unsafe { self.ready.drop_all(std::mem::take(&mut self.values)) };
    }
}

impl<I: Iterator, F, R> fmt::Debug for PoolMapUnordered<'_, I, F, R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PoolMapUnordered")
            .field("chunks_in_flight", &self.in_flight.len())
            .field("chunk_size", &self.chunk_size.get())
            .finish_non_exhaustive()
    }
}
