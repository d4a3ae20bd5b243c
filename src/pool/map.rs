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
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::task::{TaskError, TaskHandle};
use super::thread::ThreadPool;
use crate::panic_payload::take_panic_message;

/// Chunks in flight per worker.
const CHUNKS_PER_WORKER: usize = 2;
/// The largest chunk, in items.
const MAX_CHUNK: usize = 1024;
/// A chunk this quick means the items are cheap: make chunks bigger.
const FAST_CHUNK: Duration = Duration::from_micros(20);
/// A chunk this slow means the items are expensive: make chunks smaller.
const SLOW_CHUNK: Duration = Duration::from_micros(200);

/// One chunk's results and how long the worker spent on it.
type ChunkResults<R> = (Vec<Result<R, TaskError>>, Duration);

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
    ready: std::vec::IntoIter<Result<R, TaskError>>,
    chunk_size: usize,
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
            ready: Vec::new().into_iter(),
            chunk_size: 1,
            max_in_flight: pool.workers() * CHUNKS_PER_WORKER,
            inputs_done: false,
        }
    }

    /// Sends chunks until the in-flight bound is reached or inputs run out.
    fn fill(&mut self) {
        while !self.inputs_done && self.in_flight.len() < self.max_in_flight {
            let chunk: Vec<I::Item> = self.inputs.by_ref().take(self.chunk_size).collect();
            if chunk.len() < self.chunk_size {
                self.inputs_done = true;
            }
            if chunk.is_empty() {
                break;
            }
            let items = chunk.len();
            let function = Arc::clone(&self.function);
            let handle = self.pool.submit(move || {
                let started = Instant::now();
                let results = chunk
                    .into_iter()
                    .map(|item| {
                        catch_unwind(AssertUnwindSafe(|| function(item)))
                            .map_err(|payload| TaskError::Panicked(take_panic_message(payload)))
                    })
                    .collect();
                (results, started.elapsed())
            });
            self.in_flight.push_back(Chunk { handle, items });
        }
    }

    fn adapt(&mut self, spent: Duration) {
        if spent < FAST_CHUNK {
            self.chunk_size = (self.chunk_size * 2).min(MAX_CHUNK);
        } else if spent > SLOW_CHUNK {
            self.chunk_size = (self.chunk_size / 2).max(1);
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
                Ok((results, spent)) => {
                    self.adapt(spent);
                    self.ready = results.into_iter();
                }
                // The chunk never ran (the pool shut down): every item in it
                // reports why.
                Err(error) => {
                    let errors: Vec<_> = (0..chunk.items).map(|_| Err(error.clone())).collect();
                    self.ready = errors.into_iter();
                }
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
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}
