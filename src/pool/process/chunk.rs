//! Chunks: how a process map sends many items in one task.
//!
//! A task costs two pipe messages and a board update, tens of microseconds;
//! an item of a map may take far less. So a map groups items into chunks
//! (`map.rs` decides how many per chunk) and runs each chunk as one task,
//! whose trampoline (`function.rs`) runs the items one after another.
//!
//! ```text
//!  chunk argument:  [function prefix] [result_budget: u64, 8 bytes LE] item*
//!                   item = [length: varint] [the encoded argument]
//!  chunk result:    ChunkOutcome { nanos: u64, outcomes: byte string }
//!                   outcomes = outcome*
//!                   outcome = [kind: u8] [length: varint] [the encoded result,
//!                             or the failure's message in UTF-8]
//!                   kind: 0 a result, 1 `Panicked`, 2 `Serialization`
//! ```
//!
//! Both are flat buffers, built in place: the parent encodes each item
//! straight into its chunk's argument, the worker each result straight
//! after the one before, and each side reads them where they lie. Per item
//! nothing is allocated but what the item's own values need.
//!
//! Each item travels already encoded, and each outcome comes back encoded
//! on its own, so one item's hostile `Serialize`, `Deserialize` or panic
//! fails that item alone: the others of its chunk still deliver.
//!
//! The results of a chunk travel in one frame, which must fit the pool's
//! frame limit. The parent gives each chunk of more than one item a
//! `result_budget` (half the room in a frame: `(max_frame_size - 96) / 2`): the worker stops running
//! items once the outcomes exceed it, and sends those it has; the parent
//! sends the items not run again in a new chunk (so each item runs once).
//! A single result larger than the budget becomes that item's
//! `Serialization` failure. So a chunk's answer holds at most twice the
//! budget, which fits. A chunk of one item has no budget: its result is
//! checked against the frame limit like any task's.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::wire::Failure;

/// No budget: the chunk of one item.
pub(crate) const UNLIMITED: u64 = u64::MAX;

/// Bytes an outcome adds around its encoded result (kind and length),
/// rounded up: what the worker counts against the budget.
const OUTCOME_OVERHEAD: u64 = 16;

/// Bytes of the budget in a chunk's argument.
const BUDGET_SIZE: usize = 8;

/// An outcome's kinds.
const KIND_RESULT: u8 = 0;
const KIND_PANICKED: u8 = 1;
const KIND_SERIALIZATION: u8 = 2;

/// A chunk's argument, built in the parent as its items come.
#[derive(Debug)]
pub(crate) struct ChunkItems {
    /// The function's prefix, the budget, then the items.
    bytes: Vec<u8>,
    /// Where the budget starts: the prefix's length.
    budget_at: usize,
    /// Where each item starts in `bytes`.
    starts: Vec<usize>,
}

impl ChunkItems {
    /// No items yet, for a function with `prefix` (see `function.rs`).
    pub(crate) fn new(prefix: &[u8]) -> Self {
        Self::with_capacity(prefix, 0, 0)
    }

    /// As [`new`](Self::new), with room for `items` items of `bytes`
    /// encoded bytes in all (an estimate: more may come).
    pub(crate) fn with_capacity(prefix: &[u8], items: usize, bytes: usize) -> Self {
        let mut buffer = Vec::with_capacity(prefix.len() + BUDGET_SIZE + bytes);
        buffer.extend_from_slice(prefix);
        buffer.extend_from_slice(&[0; BUDGET_SIZE]);
        ChunkItems {
            bytes: buffer,
            budget_at: prefix.len(),
            starts: Vec::with_capacity(items),
        }
    }

    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The argument's size beyond the prefix: what must fit in a frame
    /// beside it.
    pub(crate) fn size(&self) -> usize {
        self.bytes.len() - self.budget_at
    }

    /// What [`size`](Self::size) would be after pushing an item of
    /// `length` encoded bytes.
    pub(crate) fn size_with(&self, length: usize) -> usize {
        self.size()
            .saturating_add(varint_length(length as u64))
            .saturating_add(length)
    }

    /// The size of a chunk of one item of `length` encoded bytes.
    pub(crate) fn size_alone(length: usize) -> usize {
        BUDGET_SIZE
            .saturating_add(varint_length(length as u64))
            .saturating_add(length)
    }

    /// Appends an encoded item.
    pub(crate) fn push(&mut self, item: &[u8]) {
        self.starts.push(self.bytes.len());
        push_varint(&mut self.bytes, item.len() as u64);
        self.bytes.extend_from_slice(item);
    }

    /// The chunk's argument with `result_budget`, for its task. (A copy:
    /// these items stay, to send again those a worker did not run.)
    pub(crate) fn argument(&self, result_budget: u64) -> Vec<u8> {
        let mut argument = self.bytes.clone();
        argument[self.budget_at..self.budget_at + BUDGET_SIZE]
            .copy_from_slice(&result_budget.to_le_bytes());
        argument
    }

    /// A chunk of the items from the `first`th on (each encoded as here).
    pub(crate) fn rest(&self, first: usize) -> ChunkItems {
        let mut rest = ChunkItems::with_capacity(
            &self.bytes[..self.budget_at],
            self.len().saturating_sub(first),
            self.bytes.len() - self.starts.get(first).copied().unwrap_or(self.bytes.len()),
        );
        if let Some(&from) = self.starts.get(first) {
            let moved = rest.bytes.len() as isize - from as isize;
            rest.starts.extend(
                self.starts[first..]
                    .iter()
                    .map(|&start| start.wrapping_add_signed(moved)),
            );
            rest.bytes.extend_from_slice(&self.bytes[from..]);
        }
        rest
    }
}

/// What a worker answers for a chunk.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ChunkOutcome {
    /// How long the items took in the worker, in nanoseconds.
    pub(crate) nanos: u64,
    /// One outcome per item run, in item order (see the module docs).
    /// Fewer than the items if the budget stopped the chunk.
    #[serde(with = "serde_bytes")]
    pub(crate) outcomes: Vec<u8>,
}

impl ChunkOutcome {
    /// Each item's outcome, in item order: its encoded result, or why there
    /// is none; or why these are not outcomes (a worker that does not run
    /// this executable's code). All are checked before the first is given.
    pub(crate) fn items(&self) -> Result<ItemOutcomes<'_>, String> {
        let mut count = 0;
        let mut budget_used: u64 = 0;
        let mut rest = self.outcomes.as_slice();
        while let Some((&kind, after_kind)) = rest.split_first() {
            if kind > KIND_SERIALIZATION {
                return Err(format!("outcome {count} has kind {kind}"));
            }
            let (payload, after) =
                take_sized(after_kind).ok_or_else(|| format!("outcome {count} is cut short"))?;
            // Counted as the worker counts it in `run_chunk`.
            budget_used = budget_used.saturating_add(payload.len() as u64 + OUTCOME_OVERHEAD);
            rest = after;
            count += 1;
        }
        Ok(ItemOutcomes {
            rest: &self.outcomes,
            left: count,
            budget_used,
        })
    }
}

/// The outcomes of a chunk, checked: from [`ChunkOutcome::items`].
#[derive(Clone, Debug)]
pub(crate) struct ItemOutcomes<'a> {
    rest: &'a [u8],
    left: usize,
    /// How much of the result budget these outcomes use, counted as the
    /// worker counts it.
    budget_used: u64,
}

impl ItemOutcomes<'_> {
    /// Whether a worker running this executable could have stopped the
    /// chunk after these outcomes: it stops only once they use more than
    /// `result_budget`. An answer with fewer outcomes than items that does
    /// not is forged (the items not run may be running still), so the
    /// parent must not send them again.
    pub(crate) fn could_stop_at(&self, result_budget: u64) -> bool {
        self.budget_used > result_budget
    }
}

impl<'a> Iterator for ItemOutcomes<'a> {
    type Item = Result<&'a [u8], Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        // Checked in `items`: every step succeeds until `rest` is empty.
        let (&kind, after_kind) = self.rest.split_first()?;
        let (payload, after) = take_sized(after_kind)?;
        self.rest = after;
        self.left -= 1;
        let message = || String::from_utf8_lossy(payload).into_owned();
        Some(match kind {
            KIND_RESULT => Ok(payload),
            KIND_PANICKED => Err(Failure::Panicked(message())),
            _ => Err(Failure::Serialization(message())),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ItemOutcomes<'_> {}

/// The size of `value` as a varint (LEB128, as postcard writes integers).
#[inline]
fn varint_length(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
fn push_varint(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push(value as u8 | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// Splits a varint off the front of `bytes`.
#[inline]
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    match bytes.split_first() {
        // One byte: lengths below 128, the common case.
        Some((&byte, rest)) if byte < 0x80 => Some((u64::from(byte), rest)),
        _ => take_long_varint(bytes),
    }
}

/// [`take_varint`] of two bytes or more.
fn take_long_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f).checked_shl(7 * index as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[index + 1..]));
        }
    }
    None
}

/// Splits a length-prefixed run of bytes off the front of `bytes`.
#[inline]
fn take_sized(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, rest) = take_varint(bytes)?;
    let length = usize::try_from(length).ok()?;
    (length <= rest.len()).then(|| rest.split_at(length))
}

/// In the worker: runs each item of the chunk in `bytes` with `run_one`
/// (a task trampoline's body, which encodes the item's result into the
/// buffer it is given), and encodes the outcomes.
pub(crate) fn run_chunk(
    bytes: &[u8],
    mut run_one: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), Failure>,
) -> Result<Vec<u8>, Failure> {
    let garbled =
        |why: &str| Failure::Serialization(format!("the worker could not decode a chunk: {why}"));
    let (budget, mut rest) = bytes
        .split_first_chunk::<BUDGET_SIZE>()
        .ok_or_else(|| garbled("it has no budget"))?;
    let result_budget = u64::from_le_bytes(*budget);
    // Every item is checked before any runs: garbage fails the chunk whole.
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (item, after) = take_sized(rest).ok_or_else(|| garbled("an item is cut short"))?;
        items.push(item);
        rest = after;
    }
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut result = Vec::new();
    let mut used: u64 = 0;
    for item in items {
        if used > result_budget {
            break;
        }
        result.clear();
        let (kind, payload): (u8, &[u8]) = match run_one(item, &mut result) {
            Ok(()) if result.len() as u64 > result_budget => {
                let failure =
                    Failure::Serialization(too_large_for_a_chunk(result.len(), result_budget));
                result.clear();
                push_failure(&mut result, failure, result_budget / 4)
            }
            Ok(()) => (KIND_RESULT, &result),
            Err(failure) => {
                result.clear();
                push_failure(&mut result, failure, result_budget / 4)
            }
        };
        outcomes.push(kind);
        push_varint(&mut outcomes, payload.len() as u64);
        outcomes.extend_from_slice(payload);
        used = used.saturating_add(payload.len() as u64 + OUTCOME_OVERHEAD);
    }
    let outcome = ChunkOutcome {
        nanos: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        outcomes,
    };
    postcard::to_allocvec(&outcome).map_err(|error| {
        Failure::Serialization(format!(
            "the worker could not encode a chunk's results: {error}"
        ))
    })
}

/// Writes `failure`'s message, cut to at most `limit` bytes (a panic
/// message can be any size; in a chunk it must not crowd out the others),
/// into the empty `buffer`; returns its kind and the message's bytes.
fn push_failure(buffer: &mut Vec<u8>, failure: Failure, limit: u64) -> (u8, &[u8]) {
    let (kind, message) = match failure {
        Failure::Panicked(message) => (KIND_PANICKED, message),
        Failure::Serialization(message) => (KIND_SERIALIZATION, message),
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if message.len() > limit {
        const MARK: &str = " … (cut to fit the chunk's answer)";
        let mut end = limit.saturating_sub(MARK.len());
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        buffer.extend_from_slice(&message.as_bytes()[..end]);
        buffer.extend_from_slice(MARK.as_bytes());
    } else {
        buffer.extend_from_slice(message.as_bytes());
    }
    (kind, buffer)
}

#[cold]
fn too_large_for_a_chunk(length: usize, budget: u64) -> String {
    format!(
        "the result is {length} bytes encoded, more than one result may take in a chunk of a \
         process map ({budget} bytes: the pool's frame limit less 96 bytes of framing, \
         halved); raise \
         ProcessPoolBuilder::max_frame_size, or map with a chunk size of 1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(item: &[u8], result: &mut Vec<u8>) -> Result<(), Failure> {
        result.extend_from_slice(item);
        Ok(())
    }

    fn chunk(items: &[Vec<u8>], result_budget: u64) -> Vec<u8> {
        let mut chunk = ChunkItems::new(&[]);
        for item in items {
            chunk.push(item);
        }
        chunk.argument(result_budget)
    }

    fn outcomes(answer: Result<Vec<u8>, Failure>) -> Vec<Result<Vec<u8>, Failure>> {
        let answer = answer.expect("the chunk ran");
        let outcome = postcard::from_bytes::<ChunkOutcome>(&answer).expect("a chunk outcome");
        let items = outcome.items().expect("well-formed outcomes");
        assert_eq!(items.len(), items.clone().count());
        items.map(|item| item.map(<[u8]>::to_vec)).collect()
    }

    #[test]
    fn every_item_runs_once_in_order() {
        let items = vec![vec![1], vec![2, 2], vec![], vec![3; 300]];
        let got = outcomes(run_chunk(&chunk(&items, UNLIMITED), echo));
        assert_eq!(got, items.into_iter().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_item_fails_alone() {
        let items = vec![vec![1], vec![0], vec![3]];
        let got = outcomes(run_chunk(&chunk(&items, UNLIMITED), |item, result| {
            if item == [0] {
                // What it wrote before it failed is not its result.
                result.push(99);
                Err(Failure::Panicked("zero".into()))
            } else {
                echo(item, result)
            }
        }));
        assert_eq!(
            got,
            [
                Ok(vec![1]),
                Err(Failure::Panicked("zero".into())),
                Ok(vec![3])
            ]
        );
    }

    /// The budget stops the chunk once it is exceeded (the items not run
    /// are the parent's to send again), and a result larger than the budget
    /// alone fails its item.
    #[test]
    fn the_budget_stops_the_chunk_and_refuses_a_result_larger_than_it() {
        let items = vec![vec![1; 40], vec![2; 40], vec![3; 40], vec![4; 40]];
        let mut ran = 0;
        let got = outcomes(run_chunk(&chunk(&items, 100), |item, result| {
            ran += 1;
            echo(item, result)
        }));
        // 56 bytes after the first, 112 after the second: over 100, stop.
        assert_eq!(got.len(), 2);
        assert_eq!(ran, 2, "an item past the budget ran");
        let items = vec![vec![9; 1001], vec![1]];
        let got = outcomes(run_chunk(&chunk(&items, 1000), echo));
        match &got[0] {
            Err(Failure::Serialization(message)) => {
                assert!(message.contains("1001 bytes"), "{message}");
                assert!(message.contains("chunk size of 1"), "{message}");
            }
            other => panic!("a result over the budget was accepted: {other:?}"),
        }
        assert_eq!(got[1], Ok(vec![1]));
    }

    /// A long failure message is cut (keeping its kind), so it cannot
    /// crowd the other items' results out of the chunk's frame.
    #[test]
    fn a_long_failure_message_is_cut_to_a_quarter_of_the_budget() {
        let items = vec![vec![0], vec![1], vec![2]];
        let got = outcomes(run_chunk(&chunk(&items, 1000), |item, result| {
            if item == [1] {
                Err(Failure::Panicked("é".repeat(5000)))
            } else {
                echo(item, result)
            }
        }));
        assert_eq!(got.len(), 3, "the long message stopped the chunk");
        match &got[1] {
            Err(Failure::Panicked(message)) => {
                assert!(message.len() <= 250, "{} bytes", message.len());
                assert!(message.starts_with('é') && message.ends_with("answer)"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_failure_not_a_panic() {
        let never = |_: &[u8], _: &mut Vec<u8>| -> Result<(), Failure> {
            panic!("an item of a garbled chunk ran")
        };
        // No budget; an item longer than the bytes; a varint that never ends.
        let mut cut = chunk(&[vec![1, 2, 3]], UNLIMITED);
        cut.pop();
        let mut endless = chunk(&[], UNLIMITED);
        endless.extend([0xff; 11]);
        for garbage in [vec![0xff; 3], cut, endless] {
            match run_chunk(&garbage, never) {
                Err(Failure::Serialization(message)) => assert!(message.contains("chunk")),
                other => panic!("garbage decoded as a chunk: {other:?}"),
            }
        }
    }

    /// Outcomes that are not what a worker writes are an error, not a
    /// panic or a wrong result.
    #[test]
    fn garbled_outcomes_are_refused() {
        for outcomes in [vec![7, 0], vec![KIND_RESULT, 5, 1], vec![KIND_RESULT, 0x80]] {
            let answer = ChunkOutcome { nanos: 0, outcomes };
            assert!(answer.items().is_err(), "{answer:?}");
        }
    }

    /// The rest of a chunk is those items, each as it was, behind the same
    /// prefix.
    #[test]
    fn the_rest_of_a_chunk_is_its_last_items() {
        let prefix = [5, 6];
        let mut items = ChunkItems::new(&prefix);
        let values: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100 * usize::from(i)]).collect();
        for value in &values {
            items.push(value);
        }
        assert_eq!(items.len(), 5);
        for first in 0..=5 {
            let rest = items.rest(first);
            assert_eq!(rest.len(), 5 - first);
            let argument = rest.argument(UNLIMITED);
            assert_eq!(argument[..2], prefix);
            let got = outcomes(run_chunk(&argument[2..], echo));
            let expected: Vec<_> = values[first..].iter().cloned().map(Ok).collect();
            assert_eq!(got, expected, "from {first}");
            assert_eq!(
                rest.size(),
                BUDGET_SIZE
                    + values[first..]
                        .iter()
                        .map(|value| value.len() + varint_length(value.len() as u64))
                        .sum::<usize>()
            );
        }
    }

    #[test]
    fn varints_are_postcards() {
        for value in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut mine = Vec::new();
            push_varint(&mut mine, value);
            assert_eq!(mine, postcard::to_allocvec(&value).unwrap(), "{value}");
            assert_eq!(varint_length(value), mine.len(), "{value}");
            assert_eq!(take_varint(&mine), Some((value, &[][..])));
        }
        let empty = ChunkItems::new(&[]);
        assert_eq!(empty.size_with(300), BUDGET_SIZE + 2 + 300);
        assert_eq!(ChunkItems::size_alone(300), BUDGET_SIZE + 2 + 300);
    }
}
