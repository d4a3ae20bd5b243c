//! [`PoolMap`]: the lazy, ordered iterator behind [`ThreadPool::map`].
//!
//! Inputs are sent to the pool in chunks, a bounded number of chunks in
//! flight; results come back in input order. The chunk size adapts: it
//! starts at one item (so a few expensive items still spread over every
//! worker) and doubles while chunks finish in under `FAST_CHUNK`, up to
//! `MAX_CHUNK`, halving again when they take longer than `SLOW_CHUNK` — so
//! a million cheap items do not pay a task's overhead each.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::task::{TaskError, TaskHandle};
use super::thread::ThreadPool;
use crate::panic_payload::{drop_reporting_panics, take_panic_message};

/// Chunks in flight per worker.
pub(super) const CHUNKS_PER_WORKER: usize = 2;
/// The largest chunk, in items.
const MAX_CHUNK: usize = 1024;
/// A chunk this quick means the items are cheap: make chunks bigger.
const FAST_CHUNK: Duration = Duration::from_micros(20);
/// A chunk this slow means the items are expensive: make chunks smaller.
const SLOW_CHUNK: Duration = Duration::from_micros(200);

/// One chunk's results (those not handed out yet), and how long the
/// worker spent on it.
///
/// The items are the user's results, and each one's `Drop` may panic. A
/// `Vec` of them dropped whole would abort the process at the second such
/// panic (a panic while unwinding from the first), wherever it is dropped:
/// by the iterator, or by the worker when the iterator was dropped first.
/// So this drops them one by one, each panic caught and reported.
pub(super) struct ChunkResults<R> {
    results: std::vec::IntoIter<Result<R, TaskError>>,
    pub(super) spent: Duration,
}

impl<R> ChunkResults<R> {
    pub(super) fn new(results: Vec<Result<R, TaskError>>, spent: Duration) -> Self {
        Self {
            results: results.into_iter(),
            spent,
        }
    }

    /// A chunk that never ran (the pool shut down): each item reports why.
    pub(super) fn failed(error: &TaskError, items: usize) -> Self {
        Self::new(
            (0..items).map(|_| Err(error.clone())).collect(),
            Duration::ZERO,
        )
    }

    pub(super) fn empty() -> Self {
        Self::new(Vec::new(), Duration::ZERO)
    }
}

impl<R> Iterator for ChunkResults<R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.results.next()
    }
}

impl<R> Drop for ChunkResults<R> {
    fn drop(&mut self) {
        for result in self.results.by_ref() {
            drop_reporting_panics(
                result,
                "a result of a pool map that was never handed out (the map was dropped first)",
            );
        }
    }
}

/// The adaptive chunk size (see the module docs), shared with
/// [`PoolMapUnordered`](super::map_unordered::PoolMapUnordered).
#[derive(Debug)]
pub(super) struct ChunkSize(usize);

impl ChunkSize {
    pub(super) fn new() -> Self {
        Self(1)
    }

    pub(super) fn get(&self) -> usize {
        self.0
    }

    /// Grows or shrinks after a chunk that took `spent`.
    pub(super) fn adapt(&mut self, spent: Duration) {
        if spent < FAST_CHUNK {
            self.0 = (self.0 * 2).min(MAX_CHUNK);
        } else if spent > SLOW_CHUNK {
            self.0 = (self.0 / 2).max(1);
        }
    }
}

/// What [`read_chunk`] read: the items, whether the input ended, and the
/// input iterator's panic, if it panicked.
pub(super) struct ChunkRead<T> {
    pub(super) items: Vec<T>,
    /// The input ran out before the chunk was full.
    pub(super) ended: bool,
    /// The input iterator panicked after `items` were read; the caller
    /// sends `items` on, then resumes this panic.
    pub(super) panic: Option<Box<dyn std::any::Any + Send>>,
}

/// Reads up to `size` items of `inputs`. A panicking input iterator does
/// not lose the items read before it: they come back with the panic, for
/// the caller to send before passing the panic on (the map can go on
/// afterwards, as after any panic in `next`).
pub(super) fn read_chunk<I: Iterator>(inputs: &mut I, size: usize) -> ChunkRead<I::Item> {
    let mut items = Vec::with_capacity(size);
    while items.len() < size {
        match catch_unwind(AssertUnwindSafe(|| inputs.next())) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {
                return ChunkRead {
                    items,
                    ended: true,
                    panic: None,
                }
            }
            Err(payload) => {
                return ChunkRead {
                    items,
                    ended: false,
                    panic: Some(payload),
                }
            }
        }
    }
    ChunkRead {
        items,
        ended: false,
        panic: None,
    }
}

/// Submits one chunk: `function` over each item, each item's panic caught
/// into its own `Err(Panicked)`.
pub(super) fn submit_chunk<T, F, R>(
    pool: &ThreadPool,
    function: &Arc<F>,
    chunk: Vec<T>,
) -> TaskHandle<ChunkResults<R>>
where
    T: Send + 'static,
    F: Fn(T) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let function = Arc::clone(function);
    pool.submit(move || {
        let started = Instant::now();
        let results = chunk
            .into_iter()
            .map(|item| {
                catch_unwind(AssertUnwindSafe(|| function(item)))
                    .map_err(|payload| TaskError::Panicked(take_panic_message(payload)))
            })
            .collect();
        ChunkResults::new(results, started.elapsed())
    })
}

/// A chunk on its way: its handle and how many items it holds.
struct Chunk<R> {
    handle: TaskHandle<ChunkResults<R>>,
    items: usize,
}

/// Results of [`ThreadPool::map`], in input order; from that method.
///
/// Dropping it cancels the chunks that have not started.
///
/// ```
/// let pool = verisync::ThreadPool::new(2);
/// let lengths: Vec<usize> = pool
///     .map(["a", "bb", "ccc"], |word| word.len())
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(lengths, [1, 2, 3]);
/// ```
pub struct PoolMap<'a, I: Iterator, F, R> {
    pool: &'a ThreadPool,
    inputs: I,
    function: Arc<F>,
    in_flight: VecDeque<Chunk<R>>,
    ready: ChunkResults<R>,
    chunk_size: ChunkSize,
    max_in_flight: usize,
    inputs_done: bool,
}

impl<'a, I, F, R> PoolMap<'a, I, F, R>
where
    I: Iterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    pub(crate) fn new(pool: &'a ThreadPool, inputs: I, function: F) -> Self {
        Self {
            pool,
            inputs,
            function: Arc::new(function),
            in_flight: VecDeque::new(),
            ready: ChunkResults::empty(),
            chunk_size: ChunkSize::new(),
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
            let items = read.items.len();
            if items > 0 {
                let handle = submit_chunk(self.pool, &self.function, read.items);
                self.in_flight.push_back(Chunk { handle, items });
            }
            if let Some(panic) = read.panic {
                resume_unwind(panic);
            }
        }
    }
}

impl<I, F, R> Iterator for PoolMap<'_, I, F, R>
where
    I: Iterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(result) = self.ready.next() {
                return Some(result);
            }
            self.fill();
            let chunk = self.in_flight.pop_front()?;
            match chunk.handle.join() {
                Ok(results) => {
                    self.chunk_size.adapt(results.spent);
                    self.ready = results;
                }
                // The chunk never ran (the pool shut down): every item in it
                // reports why.
                Err(error) => self.ready = ChunkResults::failed(&error, chunk.items),
            }
        }
    }
}

impl<I: Iterator, F, R> Drop for PoolMap<'_, I, F, R> {
    fn drop(&mut self) {
        for chunk in &self.in_flight {
            chunk.handle.cancel();
        }
    }
}

impl<I: Iterator, F, R> fmt::Debug for PoolMap<'_, I, F, R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PoolMap")
            .field("chunks_in_flight", &self.in_flight.len())
            .field("chunk_size", &self.chunk_size.get())
            .finish_non_exhaustive()
    }
}
