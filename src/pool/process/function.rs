//! Function identities: how a worker process finds the function to run.
//!
//! The worker is the same executable as the parent, so every function sits
//! at the same distance from any other function in both processes, even
//! with address-space layout randomisation. A task is sent as the distance
//! from [`anchor`] to a *trampoline* monomorphised for the task's function
//! type: it decodes the argument, calls the function, and encodes the
//! result. The function itself must be zero-sized (a `fn` item or a closure
//! that captures nothing), so the trampoline can materialise it from its
//! type alone.

use std::any::type_name;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::Failure;
use crate::pool::task::panic_message;

/// Runs a task in the worker: encoded argument in, encoded result out.
pub(crate) type Trampoline = fn(&[u8]) -> Result<Vec<u8>, Failure>;

/// The reference point for identities. Never inlined, so it has an address.
#[inline(never)]
fn anchor() {}

fn anchor_address() -> i64 {
    anchor as fn() as usize as i64
}

/// The identity of `trampoline`, valid in any process running this executable.
pub(crate) fn identity_of(trampoline: Trampoline) -> i64 {
    (trampoline as usize as i64).wrapping_sub(anchor_address())
}

/// The identity of a plain `fn()` (the pool's initializer).
pub(crate) fn identity_of_initializer(initializer: fn()) -> i64 {
    (initializer as usize as i64).wrapping_sub(anchor_address())
}

/// The trampoline with `identity`.
///
/// # Safety
///
/// `identity` came from [`identity_of`] in a process running this same
/// executable.
pub(crate) unsafe fn trampoline_at(identity: i64) -> Trampoline {
    let address = anchor_address().wrapping_add(identity) as usize;
    // SAFETY: by the caller's promise this is the address of a function of
    // type `Trampoline` in this executable.
    unsafe { std::mem::transmute::<usize, Trampoline>(address) }
}

/// The initializer with `identity`.
///
/// # Safety
///
/// As [`trampoline_at`], for an identity from [`identity_of_initializer`].
pub(crate) unsafe fn initializer_at(identity: i64) -> fn() {
    let address = anchor_address().wrapping_add(identity) as usize;
    // SAFETY: by the caller's promise this is the address of a `fn()`.
    unsafe { std::mem::transmute::<usize, fn()>(address) }
}

/// Panics unless `F` is zero-sized (a `fn` item or a non-capturing closure).
#[track_caller]
pub(crate) fn check_function_type<F>() {
    assert!(
        std::mem::size_of::<F>() == 0,
        "verisync: a process task must be a function or a closure that captures nothing \
         (`{}` carries data, which cannot be sent to another process); pass the data as the \
         argument instead",
        type_name::<F>()
    );
}

/// The trampoline for function type `F`.
pub(crate) fn trampoline<F, A, R>() -> Trampoline
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    run::<F, A, R>
}

fn run<F, A, R>(argument: &[u8]) -> Result<Vec<u8>, Failure>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let argument: A = postcard::from_bytes(argument).map_err(|error| {
        Failure::Serialization(format!(
            "the worker could not decode the argument as `{}`: {error}",
            type_name::<A>()
        ))
    })?;
    // SAFETY: `F` is zero-sized (checked by `check_function_type` before the
    // task was sent) and a function or capture-free closure: it has no bytes
    // and no invariants, so a value of it can be made from nothing.
    let function: F = unsafe { std::mem::zeroed() };
    let result = catch_unwind(AssertUnwindSafe(|| function(argument)))
        .map_err(|payload| Failure::Panicked(panic_message(&*payload)))?;
    super::encode::encode(&result).map_err(|reason| {
        Failure::Serialization(format!("the worker could not encode the result {reason}"))
    })
}
