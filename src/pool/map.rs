//! [`PoolMap`]: the lazy, ordered iterator behind [`ThreadPool::map`].
//!
//! Inputs are sent to the pool in chunks, a bounded number of chunks in
//! flight; results come back in input order. The chunk size adapts: it
//! starts at one item (so a few expensive items still spread over every
//! worker) and grows while chunks finish in under `FAST_CHUNK` — by as
//! many times as the last chunk fits into `FAST_CHUNK`, at least 2× and
//! at most `MAX_GROWTH` (64×), and at most as many times as that chunk
//! had items (one quick item says little about the next ones) — up to its
//! cap, halving again when they take longer than `SLOW_CHUNK`; so a
//! million cheap items do not pay a task's overhead each, and reach the
//! cap in five chunks (1, 2, 4, 16, 256, then the cap). The cap is
//! `MAX_CHUNK` items, fewer if the items or results are large (a chunk
//! holds at most about `MAX_CHUNK_BYTES` of either), and when the input's
//! length is known (an exact `size_hint`) also about `len / (4 × workers)`,
//! Python's rule, so a short input is still spread over every worker. So
//! the read-ahead is at most `CHUNKS_PER_WORKER × workers` chunks in flight
//! plus the one being handed out.
//!
//! # What one item costs
//!
//! With cheap items the caller's thread is the bottleneck: it reads every
//! input and hands out every result, while the workers share the calls.
//! So the per-item work on both sides is a plain loop:
//!
//! - the caller reads a chunk with one `extend` (one `catch_unwind` per
//!   chunk, not per item: a panicking input iterator still keeps the items
//!   read before it, see [`read_chunk`]);
//! - a worker runs a chunk with one `extend` inside one `catch_unwind`
//!   that it re-enters after a panic, at the item after the one that
//!   panicked, so a panic still fails only its own item (see
//!   [`run_chunk`]);
//! - a chunk's results travel as the returned values alone, cut into runs
//!   at the items that failed (see [`ChunkResults`]), not as one
//!   `Result<R, TaskError>` per item, which is several times larger;
//! - handing out a value is one step of a raw cursor over the run (see
//!   [`hand_out`](super::hand_out)) that the map keeps beside its boxed
//!   state and gives to the slow path by value, so that a `collect`'s
//!   loop keeps it in registers; all else (a failure, the next chunk) is
//!   one cold call, and `fold` (behind `for_each`, `count`, `last`) walks
//!   a run in one go.
//!
//! Measured (callgrind, 1,000,000 `u64`s collected into a
//! `Result<Vec<_>, _>`, 2 workers, `tests/perf_counts.rs`): about 15
//! instructions per item on the caller's thread (one of them the
//! workload's own check), most of them the `collect` loop's own, and 3.8
//! on the workers; rayon's `par_iter` takes about 5.5 per item in all.
//!
//! The floor under this design (measured on a 2-core AMD EPYC VM,
//! `tests/perf_counts.rs`, fastest rounds): the same `collect` with no
//! pool at all (`map_serial_collect_floor`: read, apply, hand out, on one
//! thread) takes 0.57-0.70 ns per item, 2× rayon's 0.30; handing out
//! results from chunks already made, with the cursor in registers, takes
//! the same 0.58 (0.85 with the cursor in memory). Shipping the items to
//! a worker adds the caller's copy of each input into its chunk (0.4-0.5
//! ns per item: stores to lines the other core last held) and the read of
//! results another core wrote: a minimal two-thread pipeline of the same
//! shape (a channel, no pool, no panic handling) takes 1.9-2.2 ns per
//! item, and this map 1.8-2.1. Recycling the chunk buffers, or running a
//! chunk in place in its input buffer, measured no faster.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::hand_out::{Unhanded, ValueCursor};
use super::task::{TaskError, TaskHandle};
use super::thread::ThreadPool;
use crate::panic_payload::{drop_reporting_panics, take_panic_message};

/// Chunks in flight per worker.
pub(super) const CHUNKS_PER_WORKER: usize = 2;
/// The largest chunk, in items. Large enough that a chunk of cheap items
/// (a nanosecond each) takes tens of microseconds, so that waking a worker
/// for it and handing its results over is a small part of it.
const MAX_CHUNK: usize = 16_384;
/// The most bytes of items, or of results, a chunk holds (the larger of
/// the two sizes counts): big items make smaller chunks.
const MAX_CHUNK_BYTES: usize = 512 * 1024;
/// A chunk this quick means the items are cheap: make chunks bigger.
const FAST_CHUNK: Duration = Duration::from_micros(50);
/// A chunk this slow means the items are expensive: make chunks smaller.
const SLOW_CHUNK: Duration = Duration::from_micros(500);
/// The most a chunk grows by after one fast chunk: the next chunk is as
/// many times larger as the last one fits into `FAST_CHUNK`, at least 2×
/// and at most this — and at most as many times as the last chunk had
/// items, since a chunk of one quick item says little about the items
/// after it (review 20: a cheap first item followed by slow ones sent
/// them all to one worker). So cheap items reach the cap in a few chunks
/// (16,384 from 1 in 5 chunks, not 14 doublings, each of which the caller
/// may wait through while a worker wakes), while items of a few
/// microseconds still grow only a few times per chunk.
const MAX_GROWTH: u128 = 64;

/// Chunks per worker that an input of known length is cut into at least
/// (Python's `Pool.map` rule), shared with the process pool's map.
pub(crate) const CHUNKS_PER_WORKER_OF_KNOWN_LENGTH: usize = 4;

/// Python's `Pool.map` chunk size for `inputs` over `workers`: about
/// `len / (4 × workers)` items, rounded up, if the length is known (an
/// exact `size_hint`), else `None`. Not capped: the caller caps it.
pub(crate) fn known_length_chunk(inputs: &impl Iterator, workers: usize) -> Option<usize> {
    match inputs.size_hint() {
        (low, Some(high)) if low == high => {
            Some(low.div_ceil(workers.max(1) * CHUNKS_PER_WORKER_OF_KNOWN_LENGTH))
        }
        _ => None,
    }
}

/// One chunk's results, as the worker that ran it hands them over, and
/// how long the worker spent on it.
///
/// Stored as the values of the items that returned, cut into runs at the
/// items that failed: `values` is the first run, and each failure comes
/// with the run of values after it. A cheap item's result is then as
/// small as the value itself (a `Result<R, TaskError>` per item would be
/// the size of a `TaskError` at least, and the caller's thread reads every
/// byte of it from another core's cache), and handing out a value is a
/// step of a [`ValueCursor`](super::hand_out::ValueCursor) over a run,
/// with no failure position to compare against. A chunk without failures
/// (the usual case) is one run; cutting a run costs a copy of the values
/// after the cut, paid by the worker, and only for chunks with failures.
///
/// The values are the user's, and each one's `Drop` may panic. A `Vec` of
/// them dropped whole would abort the process at the second such panic,
/// wherever it is dropped: by the iterator, or by the worker when the
/// iterator was dropped first. So this drops them one by one, each panic
/// caught and reported.
pub(super) struct ChunkResults<R> {
    /// The values before the first failure, in input order.
    values: Vec<R>,
    /// The failures, in input order, each with the run of values that
    /// follows it.
    failures: VecDeque<(TaskError, Vec<R>)>,
    pub(super) spent: Duration,
}

impl<R> ChunkResults<R> {
    /// `failures` hold, for each failed item in input order, how many
    /// values come before it, and its error.
    fn new(mut values: Vec<R>, failures: VecDeque<(usize, TaskError)>, spent: Duration) -> Self {
        let mut runs = VecDeque::with_capacity(failures.len());
        // From the last failure back: each value is copied at most once.
        for (values_before, error) in failures.into_iter().rev() {
            let run = values.split_off(values_before);
            runs.push_front((error, run));
        }
        Self {
            values,
            failures: runs,
            spent,
        }
    }

    /// A chunk that never ran (the pool shut down): each item reports why.
    pub(super) fn failed(error: &TaskError, items: usize) -> Self {
        Self::new(
            Vec::new(),
            (0..items).map(|_| (0, error.clone())).collect(),
            Duration::ZERO,
        )
    }

    /// Takes the runs out (the first run, and the failures with theirs),
    /// leaving none.
    pub(super) fn take_runs(&mut self) -> (Vec<R>, VecDeque<(TaskError, Vec<R>)>) {
        (
            std::mem::take(&mut self.values),
            std::mem::take(&mut self.failures),
        )
    }
}

impl<R> Drop for ChunkResults<R> {
    fn drop(&mut self) {
        let runs = self.failures.iter_mut().map(|(_, run)| run);
        for run in std::iter::once(&mut self.values).chain(runs) {
            for value in run.drain(..) {
                drop_reporting_panics(
                    value,
                    "a result of a pool map that was never handed out (the map was dropped \
                     first)",
                );
            }
        }
    }
}

/// The adaptive chunk size (see the module docs), shared with
/// [`PoolMapUnordered`](super::map_unordered::PoolMapUnordered).
#[derive(Debug)]
pub(super) struct ChunkSize {
    size: usize,
    /// `MAX_CHUNK`, or less for an input of known length.
    cap: usize,
    /// The cap for large items only (what `cap` becomes if the input's
    /// length turns out to be wrong).
    cap_for_item_size: usize,
    /// The length the input claimed (an exact `size_hint`), while reads
    /// have not passed it.
    claimed_length: Option<usize>,
    /// Items read so far.
    read: usize,
}

impl ChunkSize {
    /// Starts at one item, capped for `inputs` of `T` giving results of
    /// `R` over `workers` (see the module docs).
    pub(super) fn new<T, R>(inputs: &impl Iterator<Item = T>, workers: usize) -> Self {
        let largest = size_of::<T>().max(size_of::<R>()).max(1);
        let cap_for_item_size = MAX_CHUNK.min(MAX_CHUNK_BYTES / largest).max(1);
        let share = known_length_chunk(inputs, workers);
        Self {
            size: 1,
            cap: share.map_or(cap_for_item_size, |share| share.clamp(1, cap_for_item_size)),
            cap_for_item_size,
            claimed_length: share.map(|_| inputs.size_hint().0),
            read: 0,
        }
    }

    /// Counts `items` more read. An input that yields more than the length
    /// it claimed loses the cap that length set (a hint of 10 for a
    /// million items would otherwise keep every chunk at 2 items).
    pub(super) fn note_read(&mut self, items: usize) {
        self.read = self.read.saturating_add(items);
        if self
            .claimed_length
            .is_some_and(|claimed| self.read > claimed)
        {
            self.claimed_length = None;
            self.cap = self.cap_for_item_size;
        }
    }

    pub(super) fn get(&self) -> usize {
        self.size
    }

    /// Grows or shrinks after a chunk of `items` that took `spent`.
    pub(super) fn adapt(&mut self, spent: Duration, items: usize) {
        if spent < FAST_CHUNK {
            let fits = FAST_CHUNK.as_nanos() / spent.as_nanos().max(1);
            let measured = u128::try_from(items).unwrap_or(u128::MAX).max(2);
            // At most 64: the cast cannot truncate.
            let growth = fits.clamp(2, MAX_GROWTH).min(measured) as usize;
            self.size = self.size.saturating_mul(growth).min(self.cap);
        } else if spent > SLOW_CHUNK {
            self.size = (self.size / 2).max(1);
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

/// Reads up to `size` items of `inputs`, in one `extend` (a slice's
/// iterator is copied as a block). A panicking input iterator does not
/// lose the items read before it: `extend` keeps every item it pushed
/// when it unwinds, and they come back with the panic, for the caller to
/// send before passing the panic on (the map can go on afterwards, as
/// after any panic in `next`).
pub(super) fn read_chunk<I: Iterator>(inputs: &mut I, size: usize) -> ChunkRead<I::Item> {
    let mut items = Vec::new();
    let read = catch_unwind(AssertUnwindSafe(|| {
        items.extend(inputs.by_ref().take(size));
    }));
    match read {
        Ok(()) => ChunkRead {
            ended: items.len() < size,
            items,
            panic: None,
        },
        Err(payload) => ChunkRead {
            items,
            ended: false,
            panic: Some(payload),
        },
    }
}

/// A chunk's input items on their way to the worker that runs them.
///
/// The items are the user's, and each one's `Drop` may panic. A chunk that
/// never runs (cancelled when the map is dropped, refused when the pool
/// shuts down) is dropped wherever its task's last reference goes — in a
/// worker, or on the caller's thread inside `next` — and a `Vec` dropped
/// whole would abort the process at the second panicking `Drop`, or let a
/// panic escape `next` and lose the chunk's results. So the items left
/// are dropped one by one, each panic caught and reported, as
/// [`ChunkResults`] does for results.
pub(super) struct ChunkItems<T>(std::vec::IntoIter<T>);

impl<T> ChunkItems<T> {
    pub(super) fn new(items: Vec<T>) -> Self {
        Self(items.into_iter())
    }
}

impl<T> Iterator for ChunkItems<T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        self.0.next()
    }
}

impl<T> Drop for ChunkItems<T> {
    fn drop(&mut self) {
        for item in self.0.by_ref() {
            drop_reporting_panics(
                item,
                "an input of a pool map whose chunk never ran (the map was dropped, or the pool \
                 shut down)",
            );
        }
    }
}

/// Runs `function` over a chunk's items in order, each item's panic
/// caught into its own `Err(Panicked)`.
///
/// The loop runs inside one `catch_unwind`; after a panic it is entered
/// again at the next item (the panicking item was moved into the call and
/// is gone), so every item runs exactly once. A failure is recorded with
/// the number of values before it, which places it among them.
pub(super) fn run_chunk<T, F, R>(function: &F, chunk: ChunkItems<T>) -> ChunkResults<R>
where
    F: Fn(T) -> R,
{
    let started = Instant::now();
    let mut values = Vec::with_capacity(chunk.0.len());
    let mut failures = VecDeque::new();
    let mut items = chunk;
    // One `extend` of a trusted length (`&mut vec::IntoIter` mapped): no
    // capacity check per item, and on a panic `extend` keeps the values it
    // wrote, while the item that panicked was already taken out of `items`.
    while let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
        values.extend(items.0.by_ref().map(function));
    })) {
        let values_before = values.len();
        failures.push_back((
            values_before,
            TaskError::Panicked(take_panic_message(payload)),
        ));
    }
    ChunkResults::new(values, failures, started.elapsed())
}

/// Submits one chunk, run by [`run_chunk`].
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
    let chunk = ChunkItems::new(chunk);
    pool.submit(move || run_chunk(&*function, chunk))
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
    /// The ready chunk's values up to its next failure. Kept out of
    /// `state`, and given to the slow path by value, so that a loop of
    /// `next` keeps it in registers (see [`hand_out`](super::hand_out)).
    values: ValueCursor<R>,
    state: Box<MapState<'a, I, F, R>>,
}

/// All of a [`PoolMap`] but the cursor over the values handed out now.
struct MapState<'a, I, F, R> {
    pool: &'a ThreadPool,
    inputs: I,
    function: Arc<F>,
    in_flight: VecDeque<Chunk<R>>,
    /// The items of the chunks in `in_flight`, all together.
    items_in_flight: usize,
    /// The ready chunk's results behind the map's cursor.
    ready: Unhanded<R>,
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
            values: ValueCursor::default(),
            state: Box::new(MapState {
                pool,
                chunk_size: ChunkSize::new::<I::Item, R>(&inputs, pool.workers()),
                inputs,
                function: Arc::new(function),
                in_flight: VecDeque::new(),
                items_in_flight: 0,
                ready: Unhanded::default(),
                max_in_flight: pool.workers() * CHUNKS_PER_WORKER,
                inputs_done: false,
            }),
        }
    }

    /// The slow path of `next` (and of `fold`), when the cursor is used
    /// up: the ready chunk's next failure, else the next chunk's first
    /// result. Inlined, so that only the boxed state's address goes to the
    /// cold call: the cursor goes in and comes back by value (see the
    /// field).
    #[inline]
    fn next_slow(&mut self) -> Option<Result<R, TaskError>> {
        let used_up = std::mem::take(&mut self.values);
        let (result, values) = self.state.next_failure_or_from_next_chunk(used_up);
        self.values = values;
        result
    }
}

impl<I, F, R> MapState<'_, I, F, R>
where
    I: Iterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    /// Sends chunks until the in-flight bound is reached or inputs run out.
    /// If the input iterator panics, the items read before it are sent
    /// first, then the panic goes on to the caller.
    fn fill(&mut self) {
        while !self.inputs_done && self.in_flight.len() < self.max_in_flight {
            let read = read_chunk(&mut self.inputs, self.chunk_size.get());
            self.inputs_done = read.ended;
            let items = read.items.len();
            self.chunk_size.note_read(items);
            if items > 0 {
                let handle = submit_chunk(self.pool, &self.function, read.items);
                self.in_flight.push_back(Chunk { handle, items });
                self.items_in_flight += items;
            }
            if let Some(panic) = read.panic {
                resume_unwind(panic);
            }
        }
    }

    /// With the cursor `used_up`: the ready chunk's next failure, or, if
    /// none is left, top up the chunks in flight, wait for the oldest and
    /// take its first result. Gives the cursor over the values after the
    /// result handed out.
    ///
    /// `used_up` is the map's cursor (the map keeps a default one while
    /// this runs, so that a panic here — the input iterator's, passed on by
    /// `fill` — leaves no cursor over values behind).
    #[cold]
    #[inline(never)]
    fn next_failure_or_from_next_chunk(
        &mut self,
        used_up: ValueCursor<R>,
    ) -> (Option<Result<R, TaskError>>, ValueCursor<R>) {
        // SAFETY (each call on `ready` below): the map has one `Unhanded`
        // and one cursor from it, given here by value; each call's cursor
        // is the one the call before gave.
        let mut values = used_up;
        loop {
            let (failure, after) = unsafe { self.ready.next_failure(values) };
            values = after;
            if let Some(error) = failure {
                return (Some(Err(error)), values);
            }
            self.fill();
            let Some(chunk) = self.in_flight.pop_front() else {
                return (None, values);
            };
            self.items_in_flight -= chunk.items;
            let results = match chunk.handle.join() {
                Ok(results) => {
                    self.chunk_size.adapt(results.spent, chunk.items);
                    results
                }
                // The chunk never ran (the pool shut down): every item in it
                // reports why.
                Err(error) => ChunkResults::failed(&error, chunk.items),
            };
            values = unsafe { self.ready.load(values, results) };
            if let Some(value) = values.next() {
                return (Some(Ok(value)), values);
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

    /// The fast path hands out the cursor's next value; everything else
    /// (a failure, the next chunk) is one call to a cold function, so
    /// that the loop around `next` (a `collect`, a `for`) keeps the cursor
    /// in registers.
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self.values.next() {
            Some(value) => Some(Ok(value)),
            None => self.next_slow(),
        }
    }

    /// Walks the values of each run in one go (a `for_each`, `count`,
    /// `last`, or a `fold` of one's own), the failures and the next chunk
    /// as `next` takes them: the same results in the same order as a loop
    /// of `next`.
    fn fold<B, G>(mut self, init: B, mut function: G) -> B
    where
        G: FnMut(B, Self::Item) -> B,
    {
        let mut accumulated = init;
        loop {
            // Walked from the map's own cursor, so that a panic in
            // `function` leaves the values after it to the map's `Drop`.
            for value in self.values.by_ref() {
                accumulated = function(accumulated, Ok(value));
            }
            match self.next_slow() {
                Some(result) => accumulated = function(accumulated, result),
                None => return accumulated,
            }
        }
    }

    /// Every item read gives one result: those of the ready chunk and the
    /// chunks in flight are certain, the input's own hint adds the rest.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let state = &self.state;
        let certain = state.ready.len(&self.values) + state.items_in_flight;
        if state.inputs_done {
            return (certain, Some(certain));
        }
        let (low, high) = state.inputs.size_hint();
        (
            certain.saturating_add(low),
            high.and_then(|high| high.checked_add(certain)),
        )
    }
}

impl<I: Iterator, F, R> Drop for PoolMap<'_, I, F, R> {
    /// Cancels the chunks not started, and drops the results not handed
    /// out one by one. Small and inlined: the cursor goes to the cold
    /// part by value (see the field).
    #[inline]
    fn drop(&mut self) {
        let values = std::mem::take(&mut self.values);
        self.state.finish(values);
    }
}

impl<I, F, R> MapState<'_, I, F, R> {
    /// The map's `Drop`, given the map's cursor.
    #[cold]
    #[inline(never)]
    fn finish(&mut self, values: ValueCursor<R>) {
        for chunk in &self.in_flight {
            chunk.handle.cancel();
        }
        // SAFETY: `values` is the map's one cursor from `ready` (see
        // `next_failure_or_from_next_chunk`).
        unsafe { self.ready.drop_all(values) };
    }
}

impl<I: Iterator, F, R> fmt::Debug for PoolMap<'_, I, F, R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PoolMap")
            .field("chunks_in_flight", &self.state.in_flight.len())
            .field("chunk_size", &self.state.chunk_size.get())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk_size(length: usize) -> ChunkSize {
        ChunkSize::new::<u64, u64>(&(0..length as u64), 2)
    }

    /// Adapts `size` after a chunk of its current size that took `spent`.
    fn adapt_after_a_full_chunk(size: &mut ChunkSize, spent: Duration) {
        let items = size.get();
        size.adapt(spent, items);
    }

    #[test]
    fn cheap_chunks_reach_the_cap_in_five_chunks() {
        let mut size = chunk_size(1_000_000);
        let mut sizes = vec![size.get()];
        for _ in 0..6 {
            adapt_after_a_full_chunk(&mut size, Duration::from_nanos(100));
            sizes.push(size.get());
        }
        assert_eq!(sizes, [1, 2, 4, 16, 256, MAX_CHUNK, MAX_CHUNK]);
    }

    #[test]
    fn a_chunk_grows_the_next_at_most_by_its_own_item_count() {
        // Review 20: one cheap item grew the next chunk 64×, so every slow
        // item after it went to one worker.
        let mut size = chunk_size(1_000_000);
        size.adapt(Duration::from_nanos(1), 1);
        assert_eq!(size.get(), 2);
        size.adapt(Duration::from_nanos(1), 3);
        assert_eq!(size.get(), 6);
        // An older, smaller chunk finishing late counts for what it held.
        size.adapt(Duration::from_nanos(1), 2);
        assert_eq!(size.get(), 12);
    }

    #[test]
    fn growth_slows_near_the_fast_limit_and_slow_chunks_halve() {
        let mut size = chunk_size(1_000_000);
        for _ in 0..4 {
            adapt_after_a_full_chunk(&mut size, Duration::from_nanos(100));
        }
        assert_eq!(size.get(), 256);
        // 5 µs: fits 10 times into FAST_CHUNK.
        adapt_after_a_full_chunk(&mut size, Duration::from_micros(5));
        assert_eq!(size.get(), 2560);
        // 40 µs: fits once, grows by the least, 2×.
        adapt_after_a_full_chunk(&mut size, Duration::from_micros(40));
        assert_eq!(size.get(), 5120);
        // Between FAST_CHUNK and SLOW_CHUNK: stays.
        adapt_after_a_full_chunk(&mut size, Duration::from_micros(100));
        assert_eq!(size.get(), 5120);
        adapt_after_a_full_chunk(&mut size, Duration::from_millis(1));
        assert_eq!(size.get(), 2560);
    }

    #[test]
    fn a_short_input_keeps_its_python_cap() {
        // 100 items over 2 workers: at most 100 / 8, rounded up.
        let mut size = chunk_size(100);
        for _ in 0..4 {
            adapt_after_a_full_chunk(&mut size, Duration::from_nanos(100));
        }
        assert_eq!(size.get(), 13);
    }
}
