//! Values crossing the process boundary: the serde calls on the user's
//! argument and result types, each isolated.
//!
//! `Serialize`, `Deserialize` and `Drop` of the argument and result types
//! are user code, and may panic. None of them runs unguarded on a thread
//! the pool depends on: a panic while encoding an argument (in `submit`),
//! decoding a result (on the pool's reader thread) or encoding a result (in
//! the worker) becomes that one task's `TaskError::Serialization`, saying
//! which impl panicked. The pool, its reader thread and the worker carry on.

use std::any::type_name;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::encode::encode_into;
use super::wire::{Failure, MESSAGE_OVERHEAD};
use crate::panic_payload::{drop_panic_payload, take_panic_message};
use crate::pool::task::TaskError;
use crate::process_shared::take_open_failure;

/// Encodes a task's argument in the parent (`submit`, `spawn`).
pub(crate) fn encode_argument<A: Serialize>(argument: &A) -> Result<Vec<u8>, TaskError> {
    let mut bytes = Vec::new();
    encode_argument_into(argument, &mut bytes)?;
    Ok(bytes)
}

/// As [`encode_argument`], into `bytes` (cleared first), reusing its
/// memory: a map encodes each of its items so. On an error `bytes` holds
/// no meaning.
pub(crate) fn encode_argument_into<A: Serialize>(
    argument: &A,
    bytes: &mut Vec<u8>,
) -> Result<(), TaskError> {
    match catch_unwind(AssertUnwindSafe(|| encode_into(argument, bytes))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(TaskError::Serialization(format!(
            "could not encode the argument {reason}"
        ))),
        Err(payload) => Err(TaskError::Serialization(format!(
            "could not encode the argument: `Serialize` for `{}` panicked: {}",
            type_name::<A>(),
            take_panic_message(payload)
        ))),
    }
}

/// Refuses an encoded argument that would make a task frame larger than
/// `max_frame`, which the worker would refuse.
pub(crate) fn check_argument_size(argument: &[u8], max_frame: u32) -> Result<(), TaskError> {
    if argument.len().saturating_add(MESSAGE_OVERHEAD) <= max_frame as usize {
        return Ok(());
    }
    Err(TaskError::Serialization(format!(
        "the argument is {} bytes encoded, more than the pool's frame limit of {max_frame} \
         bytes; raise it with ProcessPoolBuilder::max_frame_size, or pass less",
        argument.len()
    )))
}

/// Decodes a task's result in the parent, or passes on why there is none.
pub(crate) fn decode_result<R: DeserializeOwned>(
    outcome: Result<Vec<u8>, TaskError>,
) -> Result<R, TaskError> {
    decode_result_from(&outcome?)
}

/// Decodes a task's result from its encoded `bytes` in the parent.
pub(crate) fn decode_result_from<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, TaskError> {
    match catch_unwind(AssertUnwindSafe(|| decode::<R>(bytes))) {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(error)) => Err(TaskError::Serialization(format!(
            "the parent could not decode the result as `{}`: {error}",
            type_name::<R>()
        ))),
        Err(payload) => Err(TaskError::Serialization(format!(
            "the parent could not decode the result: `Deserialize` for `{}` panicked: {}",
            type_name::<R>(),
            take_panic_message(payload)
        ))),
    }
}

/// Decodes a task's argument in the worker.
pub(crate) fn decode_argument<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, Failure> {
    match catch_unwind(AssertUnwindSafe(|| decode::<A>(bytes))) {
        Ok(Ok(argument)) => Ok(argument),
        Ok(Err(error)) => Err(Failure::Serialization(format!(
            "the worker could not decode the argument as `{}`: {error}",
            type_name::<A>()
        ))),
        Err(payload) => Err(Failure::Serialization(format!(
            "the worker could not decode the argument: `Deserialize` for `{}` panicked: {}",
            type_name::<A>(),
            take_panic_message(payload)
        ))),
    }
}

/// Decodes `bytes` as a `T`; the error text says why, including why a
/// process-shared handle in it did not open (which postcard's own error
/// drops: see `process_shared::error::open_failed`).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    // Forget a failure from an earlier decode (whose error was handled).
    let _ = take_open_failure();
    postcard::from_bytes::<T>(bytes).map_err(|error| match take_open_failure() {
        Some(why) => format!("{error}: {why}"),
        None => error.to_string(),
    })
}

/// Encodes a task's result in the worker into `bytes` (cleared first,
/// its memory reused: a chunk encodes each of its results so), then drops
/// it. A panic in the result's `Drop` is reported on stderr by the panic
/// hook and otherwise ignored: the result was computed and encoded, and
/// the parent gets it. On an error `bytes` holds no meaning.
pub(crate) fn encode_result_into<R: Serialize>(
    result: R,
    bytes: &mut Vec<u8>,
) -> Result<(), Failure> {
    let encoded = match catch_unwind(AssertUnwindSafe(|| encode_into(&result, bytes))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(Failure::Serialization(format!(
            "the worker could not encode the result {reason}"
        ))),
        Err(payload) => Err(Failure::Serialization(format!(
            "the worker could not encode the result: `Serialize` for `{}` panicked: {}",
            type_name::<R>(),
            take_panic_message(payload)
        ))),
    };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(result))) {
        drop_panic_payload(payload);
    }
    encoded
}
