//! Process maps: [`ProcessPool::map`], [`ProcessPool::map_with_chunksize`]
//! and [`ProcessPool::map_unordered`].
//!
//! A map reads its input lazily, encodes each item in the caller's thread,
//! and sends the items in chunks, each chunk one task (`chunk.rs`), with a
//! bounded number of chunks in flight. Results are decoded in the caller's
//! thread as they are consumed.
//!
//! # Chunk size
//!
//! - `map` over an input whose length is known (an exact `size_hint`, as a
//!   range, a `Vec` or a slice iterator have): about `len / (4 × workers)`
//!   items per chunk, rounded up, as Python's `Pool.map` does — so about
//!   four chunks per worker, all in flight at once;
//! - `map` over an input of unknown length, and `map_unordered`: adaptive.
//!   The first chunks have one item; from then on each chunk is sized so
//!   that it takes about [`ADAPTIVE_TARGET`] in the worker, from the time
//!   per item the worker reported for the chunks that came back (at most
//!   [`ADAPTIVE_MAX`] items). Slow items stay one per task; tiny items are
//!   sent by the thousand;
//! - `map_with_chunksize`: the size given.
//!
//! With a task timeout (`ProcessPoolBuilder::task_timeout`) `map` and
//! `map_unordered` send one item per task, since the timeout is per task;
//! with `map_with_chunksize` it applies to each whole chunk. A chunk counts
//! as one task for `max_tasks_per_worker`.
//!
//! # Failures
//!
//! Each item succeeds or fails on its own: a panic, or an argument or
//! result that cannot be encoded or decoded, fails that item only (its
//! `Err` comes at its place). What fails a whole chunk is what fails a
//! task: a worker that dies or is killed while it runs the chunk fails every
//! item of that chunk, run or not, with `WorkerDied` (or `TimedOut`); the
//! chunks before and after it are not affected. Items never run twice.
//!
//! # Limits of chunking
//!
//! - A chunk's results travel in one frame. A worker stops a chunk once
//!   its results fill half a frame and the parent sends the rest again (a
//!   new task). So in a chunk of more than one item, a result larger than
//!   half the frame limit less framing (`(max_frame_size - 96) / 2` bytes;
//!   the limit is 64 MiB by default) fails its item with `Serialization` (the message says to map
//!   with a chunk size of 1 or raise the limit), and a failure message is
//!   cut to a quarter of it.
//! - The rest of a chunk cut short that way is new work for the pool: if
//!   the pool is shut down meanwhile, those items (which never ran) get
//!   `ShutDown` like any task submitted after the shutdown.
//! - A chunk of one item carries up to about two dozen bytes of framing
//!   more than a task from `submit` (`chunk.rs`): an argument or result
//!   within that much of the frame limit passes `submit` and fails in a
//!   map.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::chunk::{ChunkItems, ChunkOutcome, UNLIMITED};
use super::crossing::{decode_result_from, encode_argument_into};
use super::function::{prepare_chunk_function, PreparedChunkFunction, PreparedTask};
use super::pool::ProcessPool;
use super::wire::MESSAGE_OVERHEAD;
use crate::panic_payload::drop_reporting_panics;
use crate::pool::map::known_length_chunk;
use crate::pool::task::{TaskError, TaskHandle};
use crate::queue::JoinableQueue;

/// How long an adaptive chunk should take in the worker: long enough that
/// a task's own cost (two pipe messages, tens of microseconds) is a few
/// percent of it, short enough to balance the work between the workers.
pub(crate) const ADAPTIVE_TARGET: Duration = Duration::from_millis(2);

/// The most items in an adaptive chunk.
pub(crate) const ADAPTIVE_MAX: usize = 4096;

/// The most a chunk's buffers reserve before its items come.
const PREALLOCATED_BYTES: usize = 1 << 20;

/// Chunks in flight per worker while chunks have one item...
const SINGLE_ITEM_CHUNKS_PER_WORKER: usize = 16;
/// ...and while they have more.
const CHUNKS_PER_WORKER: usize = 4;

/// How a map chooses the size of its next chunk.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ChunkSize {
    /// Always this many (at least 1).
    Fixed(usize),
    /// From the time per item the worker reports.
    Adaptive,
}

impl ChunkSize {
    /// `map`'s rule for `inputs` on `pool` (see the module docs).
    pub(crate) fn for_map(pool: &ProcessPool, inputs: &impl Iterator) -> Self {
        if pool.has_task_timeout() {
            return Self::Fixed(1);
        }
        // Capped: an "exact" length can be endless in practice
        // (`0..u64::MAX`), and a chunk is read whole before it goes.
        known_length_chunk(inputs, pool.workers()).map_or(Self::Adaptive, |size| {
            Self::Fixed(size.clamp(1, ADAPTIVE_MAX))
        })
    }

    /// `map_unordered`'s rule.
    pub(crate) fn for_unordered(pool: &ProcessPool) -> Self {
        if pool.has_task_timeout() {
            Self::Fixed(1)
        } else {
            Self::Adaptive
        }
    }
}

/// The sizing state: the rule, and what the adaptive rule has learnt.
#[derive(Debug)]
struct Sizer {
    rule: ChunkSize,
    /// Smoothed nanoseconds per item, once a chunk has come back.
    nanos_per_item: Option<f64>,
}

impl Sizer {
    fn next_size(&self) -> usize {
        match self.rule {
            ChunkSize::Fixed(size) => size.max(1),
            ChunkSize::Adaptive => match self.nanos_per_item {
                None => 1,
                Some(nanos) => {
                    let items = ADAPTIVE_TARGET.as_nanos() as f64 / nanos.max(1.0);
                    // `as` saturates (and maps NaN to 0): clamped after.
                    (items as usize).clamp(1, ADAPTIVE_MAX)
                }
            },
        }
    }

    /// Learns from a chunk that ran `items` items in `nanos`.
    fn learn(&mut self, nanos: u64, items: usize) {
        if items == 0 {
            return;
        }
        let sample = nanos as f64 / items as f64;
        self.nanos_per_item = Some(match self.nanos_per_item {
            None => sample,
            Some(before) => (before + sample) / 2.0,
        });
    }

    fn chunk_limit(&self, workers: usize) -> usize {
        let per_worker = if self.next_size() == 1 {
            SINGLE_ITEM_CHUNKS_PER_WORKER
        } else {
            CHUNKS_PER_WORKER
        };
        workers.max(1) * per_worker
    }
}

/// Something a map has put in flight, in input order.
enum Entry {
    /// One item that never left the parent (its argument could not be
    /// encoded, or the function cannot travel): its error.
    Failed(TaskError),
    /// Items sent as one task.
    Chunk(Chunk),
}

/// A chunk in flight: its task, and its items (kept to send again the
/// ones the worker did not run, see `chunk.rs`).
struct Chunk {
    handle: TaskHandle<ChunkOutcome>,
    items: ChunkItems,
    /// The result budget it was sent with (see `chunk.rs`).
    result_budget: u64,
}

/// Reads the input and sends chunks: what both maps share.
struct Feeder<'a, I> {
    pool: &'a ProcessPool,
    function: Result<PreparedChunkFunction, TaskError>,
    inputs: I,
    sizer: Sizer,
    /// An item read and encoded that did not fit the last chunk's frame:
    /// the first of the next chunk.
    carried: Option<Vec<u8>>,
    /// Where each item is encoded before it joins its chunk (kept, so
    /// items are not each allocated).
    encoded: Vec<u8>,
    /// Bytes per item in the last chunk sent, to size the next one's
    /// buffer.
    bytes_per_item: usize,
    /// The input has ended, or the pool was found closed.
    done: bool,
    /// Why the rest of the input was not run; reported once, last.
    refusal: Option<TaskError>,
}

impl<I> Feeder<'_, I>
where
    I: Iterator,
    I::Item: Serialize,
{
    /// Reads at most one chunk's worth of input (the size the sizer says,
    /// counting the items that fail in the parent) and puts what it makes
    /// in flight through `put`, in input order. An item that would make the
    /// chunk outgrow a frame is carried over to start the next chunk.
    ///
    /// If the input iterator panics, the items read before are put in
    /// flight first, then the panic goes on to the caller: nothing read is
    /// lost, and the map can go on.
    fn feed(&mut self, mut put: impl FnMut(Entry)) {
        if let Some(refusal) = self.pool.refusal_if_closed() {
            // A carried item is the first of "the rest of the input", which
            // the refusal reports.
            self.done = true;
            self.refusal = Some(refusal);
            return;
        }
        let size = self.sizer.next_size();
        // What one chunk may carry and still fit a frame.
        let room = (self.pool.max_frame() as usize)
            .saturating_sub(MESSAGE_OVERHEAD)
            .saturating_sub(self.prefix().len());
        // Room for as many bytes per item as the last chunk took, within
        // reason (a chunk may end early; its size may be any the user set).
        let mut items = ChunkItems::with_capacity(
            self.prefix(),
            size.min(PREALLOCATED_BYTES / size_of::<usize>()),
            size.saturating_mul(self.bytes_per_item)
                .min(PREALLOCATED_BYTES),
        );
        if let Some(carried) = self.carried.take() {
            items.push(&carried);
        }
        let mut read = items.len();
        while read < size {
            let input = match catch_unwind(AssertUnwindSafe(|| self.inputs.next())) {
                Ok(Some(input)) => input,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(payload) => {
                    self.send(&mut items, &mut put);
                    resume_unwind(payload);
                }
            };
            read += 1;
            let encoded = encode_argument_into(&input, &mut self.encoded);
            drop_reporting_panics(input, "an input of a process map");
            let function_error = self.function.as_ref().err().cloned();
            if let Some(error) = function_error.or(encoded.err()) {
                self.send(&mut items, &mut put);
                put(Entry::Failed(error));
                continue;
            }
            let length = self.encoded.len();
            if ChunkItems::size_alone(length) > room {
                self.send(&mut items, &mut put);
                put(Entry::Failed(too_large_argument(
                    length,
                    self.pool.max_frame(),
                )));
                continue;
            }
            if items.size_with(length) > room {
                self.carried = Some(self.encoded.clone());
                break;
            }
            items.push(&self.encoded);
        }
        self.send(&mut items, &mut put);
    }

    /// The bytes every chunk's argument starts with.
    fn prefix(&self) -> &[u8] {
        self.function
            .as_ref()
            .map_or(&[], |function| &function.prefix)
    }

    /// Sends `items` (if any) as one chunk, leaving `items` empty.
    fn send(&mut self, items: &mut ChunkItems, put: &mut impl FnMut(Entry)) {
        if items.is_empty() {
            return;
        }
        let items = std::mem::replace(items, ChunkItems::new(self.prefix()));
        self.bytes_per_item = items.size() / items.len();
        put(Entry::Chunk(self.send_chunk(items)));
    }

    fn send_chunk(&self, items: ChunkItems) -> Chunk {
        let function = self
            .function
            .as_ref()
            .expect("items are only collected for a function that can travel");
        let budget = if items.len() == 1 {
            UNLIMITED
        } else {
            // Half the room in an answer frame: the worker stops past it,
            // and no single result may exceed it (see `chunk.rs`).
            (self.pool.max_frame() as u64).saturating_sub(MESSAGE_OVERHEAD as u64 + 64) / 2
        };
        let prepared = PreparedTask {
            function: function.function,
            argument: items.argument(budget),
        };
        Chunk {
            handle: self.pool.submit_prepared(Ok(prepared)),
            items,
            result_budget: budget,
        }
    }

    /// The results of a finished chunk, in item order; the chunk of the
    /// items the worker did not run, sent again, if any.
    fn finish<R: DeserializeOwned>(
        &mut self,
        chunk: Chunk,
        ready: &mut VecDeque<Result<R, TaskError>>,
    ) -> Option<Chunk> {
        let Chunk {
            handle,
            items,
            result_budget,
        } = chunk;
        let answer = handle.join();
        let outcomes = answer.as_ref().map_err(Clone::clone).and_then(|answer| {
            let outcomes = answer.items().map_err(|why| {
                TaskError::Serialization(format!("a worker answered a chunk with garbage: {why}"))
            })?;
            if outcomes.len() == 0 || outcomes.len() > items.len() {
                // Not what a worker running this executable sends.
                return Err(TaskError::Serialization(format!(
                    "a worker answered {} results for a chunk of {} items",
                    outcomes.len(),
                    items.len()
                )));
            }
            Ok((answer.nanos, outcomes))
        });
        match outcomes {
            Ok((nanos, outcomes)) => {
                let ran = outcomes.len();
                // A worker stops a chunk short only past its budget; one that
                // says it stopped sooner may be running the rest still, so
                // the rest fails instead of running twice.
                let forged = ran < items.len() && !outcomes.could_stop_at(result_budget);
                self.sizer.learn(nanos, ran);
                ready.extend(outcomes.into_iter().map(|outcome| match outcome {
                    Ok(bytes) => decode_result_from(bytes),
                    Err(failure) => Err(TaskError::from(failure)),
                }));
                if forged {
                    let error = TaskError::Serialization(format!(
                        "a worker answered {ran} results for a chunk of {} items without \
                         filling the chunk's result budget: not what a worker running this \
                         executable sends, so the items it did not answer fail rather than \
                         risk running twice",
                        items.len()
                    ));
                    ready.extend((ran..items.len()).map(|_| Err(error.clone())));
                    return None;
                }
                (ran < items.len()).then(|| self.send_chunk(items.rest(ran)))
            }
            Err(error) => {
                ready.extend((0..items.len()).map(|_| Err(error.clone())));
                None
            }
        }
    }
}

impl<'a, I> Feeder<'a, I> {
    fn new<F, A, R>(pool: &'a ProcessPool, function: F, inputs: I, rule: ChunkSize) -> Self
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Feeder {
            pool,
            function: prepare_chunk_function(function),
            inputs,
            sizer: Sizer {
                rule,
                nanos_per_item: None,
            },
            carried: None,
            encoded: Vec::new(),
            bytes_per_item: 0,
            done: false,
            refusal: None,
        }
    }
}

#[cold]
fn too_large_argument(length: usize, max_frame: u32) -> TaskError {
    TaskError::Serialization(format!(
        "the argument is {length} bytes encoded, more than the pool's frame limit of \
         {max_frame} bytes; raise it with ProcessPoolBuilder::max_frame_size, or pass less"
    ))
}

/// Results of [`ProcessPool::map`] and [`ProcessPool::map_with_chunksize`],
/// in input order.
pub struct ProcessMap<'a, F, I: Iterator, R> {
    feeder: Feeder<'a, I>,
    in_flight: VecDeque<Entry>,
    chunks_in_flight: usize,
    /// Results of the front chunk not yet handed out.
    ready: VecDeque<Result<R, TaskError>>,
    _function: PhantomData<fn() -> F>,
}

impl<'a, F, I, R> ProcessMap<'a, F, I, R>
where
    F: Fn(I::Item) -> R + Copy + Send + 'static,
    I: Iterator,
    I::Item: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(pool: &'a ProcessPool, function: F, inputs: I, rule: ChunkSize) -> Self {
        ProcessMap {
            feeder: Feeder::new(pool, function, inputs, rule),
            in_flight: VecDeque::new(),
            chunks_in_flight: 0,
            ready: VecDeque::new(),
            _function: PhantomData,
        }
    }

    /// Reads input until `chunk_limit` entries are in flight (items that
    /// failed in the parent count too, so an input whose every item fails
    /// is not read to its end at once).
    fn top_up(&mut self) {
        let workers = self.feeder.pool.workers();
        while !self.feeder.done && self.in_flight.len() < self.feeder.sizer.chunk_limit(workers) {
            let (in_flight, chunks) = (&mut self.in_flight, &mut self.chunks_in_flight);
            self.feeder.feed(|entry| {
                if let Entry::Chunk(_) = entry {
                    *chunks += 1;
                }
                in_flight.push_back(entry);
            });
        }
    }
}

impl<F, I, R> Iterator for ProcessMap<'_, F, I, R>
where
    F: Fn(I::Item) -> R + Copy + Send + 'static,
    I: Iterator,
    I::Item: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Item = Result<R, TaskError>;

    /// Tops up the chunks in flight from the input, then waits for the
    /// oldest. Once the pool is closed (shut down, terminated), no more
    /// input is read: the items in flight finish, then one
    /// `Err(ShutDown)` (or `Cancelled`) says the rest of the input was not
    /// run, and the iterator ends — an endless input is not drained.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(result) = self.ready.pop_front() {
                return Some(result);
            }
            self.top_up();
            match self.in_flight.pop_front() {
                None => return self.feeder.refusal.take().map(Err),
                Some(Entry::Failed(error)) => return Some(Err(error)),
                Some(Entry::Chunk(chunk)) => {
                    self.chunks_in_flight -= 1;
                    if let Some(rest) = self.feeder.finish(chunk, &mut self.ready) {
                        self.in_flight.push_front(Entry::Chunk(rest));
                        self.chunks_in_flight += 1;
                    }
                }
            }
        }
    }
}

impl<F, I: Iterator, R> Drop for ProcessMap<'_, F, I, R> {
    fn drop(&mut self) {
        for entry in &self.in_flight {
            if let Entry::Chunk(chunk) = entry {
                chunk.handle.cancel();
            }
        }
        dispose_of_results(&mut self.ready);
    }
}

impl<F, I: Iterator, R> fmt::Debug for ProcessMap<'_, F, I, R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ProcessMap")
            .field("chunks_in_flight", &self.chunks_in_flight)
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

/// Drops results nobody took, one by one: a panicking `Drop` of one is
/// reported and does not stop the others (or abort a map dropped while
/// unwinding).
fn dispose_of_results<R>(ready: &mut VecDeque<Result<R, TaskError>>) {
    while let Some(result) = ready.pop_front() {
        drop_reporting_panics(result, "a result of a process map nobody took");
    }
}

/// Results of [`ProcessPool::map_unordered`], in the order they finish.
pub struct ProcessMapUnordered<'a, F, I: Iterator, R> {
    feeder: Feeder<'a, I>,
    /// Chunks in flight, by slot; `free` lists the empty slots.
    slots: Vec<Option<Chunk>>,
    free: Vec<usize>,
    chunks_in_flight: usize,
    /// Slots of chunks that finished, in the order they did (fed by each
    /// chunk's completion callback, so the map never polls).
    finished: Arc<JoinableQueue<usize>>,
    ready: VecDeque<Result<R, TaskError>>,
    _function: PhantomData<fn() -> F>,
}

impl<'a, F, I, R> ProcessMapUnordered<'a, F, I, R>
where
    F: Fn(I::Item) -> R + Copy + Send + 'static,
    I: Iterator,
    I::Item: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(pool: &'a ProcessPool, function: F, inputs: I, rule: ChunkSize) -> Self {
        ProcessMapUnordered {
            feeder: Feeder::new(pool, function, inputs, rule),
            slots: Vec::new(),
            free: Vec::new(),
            chunks_in_flight: 0,
            finished: Arc::new(JoinableQueue::new()),
            ready: VecDeque::new(),
            _function: PhantomData,
        }
    }

    fn track(&mut self, chunk: Chunk) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let finished = Arc::clone(&self.finished);
        // The queue is never shut down, so the put cannot be refused.
        chunk.handle.on_done_notify(move || {
            let _ = finished.put(slot);
        });
        self.slots[slot] = Some(chunk);
        self.chunks_in_flight += 1;
    }

    /// Reads input until `chunk_limit` chunks are in flight, or until some
    /// item failed in the parent (its error is ready to hand out).
    fn top_up(&mut self) {
        let workers = self.feeder.pool.workers();
        while !self.feeder.done
            && self.ready.is_empty()
            && self.chunks_in_flight < self.feeder.sizer.chunk_limit(workers)
        {
            let mut entries = Vec::new();
            self.feeder.feed(|entry| entries.push(entry));
            for entry in entries {
                match entry {
                    Entry::Failed(error) => self.ready.push_back(Err(error)),
                    Entry::Chunk(chunk) => self.track(chunk),
                }
            }
        }
    }
}

impl<F, I, R> Iterator for ProcessMapUnordered<'_, F, I, R>
where
    F: Fn(I::Item) -> R + Copy + Send + 'static,
    I: Iterator,
    I::Item: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Item = Result<R, TaskError>;

    /// Tops up the chunks in flight from the input, then waits for
    /// whichever finishes first. Once the pool is closed, as for
    /// [`ProcessMap`]: the items in flight finish, then one `Err(ShutDown)`
    /// (or `Cancelled`) ends it.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(result) = self.ready.pop_front() {
                return Some(result);
            }
            self.top_up();
            if !self.ready.is_empty() {
                continue;
            }
            if self.chunks_in_flight == 0 {
                return self.feeder.refusal.take().map(Err);
            }
            let slot = self
                .finished
                .get()
                .expect("the completion queue is never shut down");
            let chunk = self.slots[slot].take().expect("each chunk finishes once");
            self.free.push(slot);
            self.chunks_in_flight -= 1;
            if let Some(rest) = self.feeder.finish(chunk, &mut self.ready) {
                self.track(rest);
            }
        }
    }
}

impl<F, I: Iterator, R> Drop for ProcessMapUnordered<'_, F, I, R> {
    fn drop(&mut self) {
        for chunk in self.slots.iter().flatten() {
            chunk.handle.cancel();
        }
        dispose_of_results(&mut self.ready);
    }
}

impl<F, I: Iterator, R> fmt::Debug for ProcessMapUnordered<'_, F, I, R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ProcessMapUnordered")
            .field("chunks_in_flight", &self.chunks_in_flight)
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adaptive_chunk_aims_at_the_target_time() {
        let mut sizer = Sizer {
            rule: ChunkSize::Adaptive,
            nanos_per_item: None,
        };
        assert_eq!(sizer.next_size(), 1, "one item until something came back");
        // 5 ms per item: one per chunk.
        sizer.learn(5_000_000, 1);
        assert_eq!(sizer.next_size(), 1);
        // Then 100 ns per item, smoothed: (5 ms + 100 ns) / 2 per item.
        sizer.learn(1_000, 10);
        assert_eq!(sizer.next_size(), 1);
        // Again: about 1.25 ms per item, so 2 ms is one item...
        sizer.learn(1_000, 10);
        assert_eq!(sizer.next_size(), 1);
        // ...then 0.63 ms: three.
        sizer.learn(1_000, 10);
        assert_eq!(sizer.next_size(), 3);
        // 1 µs per item, long enough to forget the rest: about 2000.
        for _ in 0..40 {
            sizer.learn(100_000, 100);
        }
        assert!(
            (1990..=2000).contains(&sizer.next_size()),
            "{}",
            sizer.next_size()
        );
        // Free items: capped.
        for _ in 0..60 {
            sizer.learn(0, 100);
        }
        assert_eq!(sizer.next_size(), ADAPTIVE_MAX);
        // A chunk that ran nothing teaches nothing.
        let before = sizer.nanos_per_item;
        sizer.learn(5, 0);
        assert_eq!(sizer.nanos_per_item, before);
    }

    #[test]
    fn fixed_sizes_are_at_least_one_and_fewer_chunks_fly_when_they_are_big() {
        let sizer = Sizer {
            rule: ChunkSize::Fixed(0),
            nanos_per_item: None,
        };
        assert_eq!(sizer.next_size(), 1);
        assert_eq!(sizer.chunk_limit(2), 2 * SINGLE_ITEM_CHUNKS_PER_WORKER);
        let sizer = Sizer {
            rule: ChunkSize::Fixed(625),
            nanos_per_item: None,
        };
        assert_eq!(sizer.chunk_limit(2), 2 * CHUNKS_PER_WORKER);
    }
}
