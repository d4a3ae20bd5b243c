//! Chunks: how a process map sends many items in one task.
//!
//! A task costs two pipe messages and a board update, tens of microseconds;
//! an item of a map may take far less. So a map groups items into chunks
//! (`map.rs` decides how many per chunk) and runs each chunk as one task,
//! whose trampoline (`function.rs`) runs the items one after another.
//!
//! ```text
//!  chunk argument:  [function prefix] (result_budget: u64, items: Vec<Vec<u8>>)
//!  chunk result:    ChunkOutcome { outcomes: Vec<Result<Vec<u8>, Failure>>, nanos }
//! ```
//!
//! Each item travels already encoded, and each outcome comes back encoded
//! on its own, so one item's hostile `Serialize`, `Deserialize` or panic
//! fails that item alone: the others of its chunk still deliver.
//!
//! The results of a chunk travel in one frame, which must fit the pool's
//! frame limit. The parent gives each chunk of more than one item a
//! `result_budget` (half the room in a frame): the worker stops running
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

/// Bytes an outcome adds around its encoded result (tag and length).
const OUTCOME_OVERHEAD: u64 = 16;

/// What a worker answers for a chunk.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ChunkOutcome {
    /// One per item run, in item order: the encoded result, or why there
    /// is none. Fewer than the items if the budget stopped the chunk.
    pub(crate) outcomes: Vec<Result<Vec<u8>, Failure>>,
    /// How long the items took in the worker, in nanoseconds.
    pub(crate) nanos: u64,
}

/// Encodes a chunk's argument: `prefix` (the function's, see
/// `function.rs`), then the budget and the already encoded items.
pub(crate) fn encode_chunk(prefix: &[u8], result_budget: u64, items: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = prefix.to_vec();
    // Infallible: integers and byte vectors always encode.
    let body = postcard::to_allocvec(&(result_budget, items))
        .expect("a chunk of byte vectors always encodes");
    bytes.extend(body);
    bytes
}

/// The size of `items` in a chunk's argument: the encoded bytes plus a
/// length prefix each (at most 10 bytes, a `u64` varint).
pub(crate) fn chunk_argument_size(items: &[Vec<u8>]) -> usize {
    items.iter().map(|item| item.len() + 10).sum::<usize>() + 20
}

/// In the worker: runs each item of the chunk in `bytes` with `run_one`
/// (a task trampoline's body), and encodes the outcomes.
pub(crate) fn run_chunk(
    bytes: &[u8],
    mut run_one: impl FnMut(&[u8]) -> Result<Vec<u8>, Failure>,
) -> Result<Vec<u8>, Failure> {
    let (result_budget, items): (u64, Vec<Vec<u8>>) =
        postcard::from_bytes(bytes).map_err(|error| {
            Failure::Serialization(format!("the worker could not decode a chunk: {error}"))
        })?;
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut used: u64 = 0;
    for item in &items {
        if used > result_budget {
            break;
        }
        let outcome = match run_one(item) {
            Ok(result) if result.len() as u64 > result_budget => Err(Failure::Serialization(
                too_large_for_a_chunk(result.len(), result_budget),
            )),
            outcome => outcome,
        };
        let outcome = outcome.map_err(|failure| shortened(failure, result_budget / 4));
        used = used.saturating_add(outcome_size(&outcome));
        outcomes.push(outcome);
    }
    let outcome = ChunkOutcome {
        outcomes,
        nanos: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
    };
    postcard::to_allocvec(&outcome).map_err(|error| {
        Failure::Serialization(format!(
            "the worker could not encode a chunk's results: {error}"
        ))
    })
}

/// `failure` with its message cut to at most `limit` bytes (a panic
/// message can be any size; in a chunk it must not crowd out the others).
fn shortened(failure: Failure, limit: u64) -> Failure {
    let cut = |mut message: String| {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if message.len() > limit {
            const MARK: &str = " … (cut to fit the chunk's answer)";
            let mut end = limit.saturating_sub(MARK.len());
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(MARK);
        }
        message
    };
    match failure {
        Failure::Panicked(message) => Failure::Panicked(cut(message)),
        Failure::Serialization(message) => Failure::Serialization(cut(message)),
    }
}

/// Roughly how many bytes `outcome` takes encoded.
fn outcome_size(outcome: &Result<Vec<u8>, Failure>) -> u64 {
    let payload = match outcome {
        Ok(bytes) => bytes.len(),
        Err(Failure::Panicked(message) | Failure::Serialization(message)) => message.len(),
    };
    payload as u64 + OUTCOME_OVERHEAD
}

#[cold]
fn too_large_for_a_chunk(length: usize, budget: u64) -> String {
    format!(
        "the result is {length} bytes encoded, more than one result may take in a chunk of a \
         process map ({budget} bytes, half the pool's frame limit); raise \
         ProcessPoolBuilder::max_frame_size, or map with a chunk size of 1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(item: &[u8]) -> Result<Vec<u8>, Failure> {
        Ok(item.to_vec())
    }

    fn outcomes(answer: Result<Vec<u8>, Failure>) -> Vec<Result<Vec<u8>, Failure>> {
        let answer = answer.expect("the chunk ran");
        postcard::from_bytes::<ChunkOutcome>(&answer)
            .expect("a chunk outcome")
            .outcomes
    }

    #[test]
    fn every_item_runs_once_in_order() {
        let items = vec![vec![1], vec![2, 2], vec![3]];
        let bytes = encode_chunk(&[], UNLIMITED, &items);
        let got = outcomes(run_chunk(&bytes, echo));
        assert_eq!(got, items.into_iter().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_item_fails_alone() {
        let items = vec![vec![1], vec![0], vec![3]];
        let bytes = encode_chunk(&[], UNLIMITED, &items);
        let got = outcomes(run_chunk(&bytes, |item| {
            if item == [0] {
                Err(Failure::Panicked("zero".into()))
            } else {
                echo(item)
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
        let bytes = encode_chunk(&[], 100, &items);
        let mut ran = 0;
        let got = outcomes(run_chunk(&bytes, |item| {
            ran += 1;
            echo(item)
        }));
        // 56 bytes after the first, 112 after the second: over 100, stop.
        assert_eq!(got.len(), 2);
        assert_eq!(ran, 2, "an item past the budget ran");
        let items = vec![vec![9; 1001], vec![1]];
        let bytes = encode_chunk(&[], 1000, &items);
        let got = outcomes(run_chunk(&bytes, echo));
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
        let bytes = encode_chunk(&[], 1000, &items);
        let got = outcomes(run_chunk(&bytes, |item| {
            if item == [1] {
                Err(Failure::Panicked("é".repeat(5000)))
            } else {
                echo(item)
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
        match run_chunk(&[0xff, 0xff, 0xff], echo) {
            Err(Failure::Serialization(message)) => assert!(message.contains("chunk")),
            other => panic!("garbage decoded as a chunk: {other:?}"),
        }
    }
}
