//! Function identities: how a worker process finds the function to run.
//!
//! The worker is the same executable as the parent, so every function sits
//! at the same distance from any other function in both processes, even
//! with address-space layout randomisation. A task is sent as the distance
//! from [`anchor`] to a *trampoline* monomorphised for the task's function
//! type: it decodes the argument, calls the function, and encodes the
//! result.
//!
//! A task's function is one of two kinds:
//!
//! - zero-sized (a `fn` item, or a closure that captures nothing): the
//!   trampoline `run_item::<F, A, R>` materialises it from its type alone;
//! - a function pointer `fn(A) -> R` (a table of tasks): the pointer
//!   travels as its own distance from the anchor, in front of the encoded
//!   argument, and the trampoline `run_pointer::<A, R>` calls it. Only a
//!   pointer into this executable's own code can travel (checked where the
//!   system tells: on Linux, `/proc/self/maps`); a function from a library
//!   loaded at run time sits elsewhere in every process.
//!
//! Every address that travels is checked to lie in the file that holds
//! [`anchor`] (where the system tells): a trampoline is monomorphised in the
//! crate that submits the task, so if verisync is linked as a dynamic
//! library, the trampoline sits in another file than the anchor, at a
//! distance that differs between processes; such a task fails instead of
//! making the worker jump to a wrong address.
//!
//! Anything else is a closure that captures data, which cannot be sent: a
//! compile-time error when its size is not a pointer's (a `const`
//! assertion), else a `TaskError::Serialization` at run time.

use std::any::{type_name, TypeId};
use std::mem::size_of;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::chunk::run_chunk;
use super::crossing::{decode_argument, encode_argument, encode_result_into};
use super::wire::Failure;
use crate::panic_payload::take_panic_message;
use crate::pool::task::TaskError;

/// Runs a task in the worker: encoded argument in, encoded result out.
pub(crate) type Trampoline = fn(&[u8]) -> Result<Vec<u8>, Failure>;

/// The reference point for identities. Never inlined, so it has an address.
#[inline(never)]
fn anchor() {}

fn anchor_address() -> i64 {
    anchor as fn() as usize as i64
}

/// The identity of `trampoline` (the one of the function type `function`),
/// valid in any process running this executable, if it lies in the same
/// executable's code as [`anchor`].
fn identity_of(trampoline: Trampoline, function: &str) -> Result<i64, TaskError> {
    identity_of_trampoline_at(trampoline as usize, function)
}

/// [`identity_of`] for the trampoline at `address`.
fn identity_of_trampoline_at(address: usize, function: &str) -> Result<i64, TaskError> {
    if !is_in_this_executable(address) {
        return Err(misplaced_trampoline(function));
    }
    Ok((address as i64).wrapping_sub(anchor_address()))
}

#[cold]
fn misplaced_trampoline(function: &str) -> TaskError {
    TaskError::Serialization(format!(
        "the code that runs `{function}` in a worker was compiled outside the file that holds \
         verisync's own code (is verisync linked as a dynamic library?), so a worker process \
         could not find it; link verisync statically (the default)"
    ))
}

/// The identity of a plain `fn()` (the pool's initializer), if it is in
/// this executable's code.
pub(crate) fn identity_of_initializer(initializer: fn()) -> Result<i64, TaskError> {
    let address = initializer as usize;
    if !is_in_this_executable(address) {
        return Err(TaskError::Spawn(
            "the pool's initializer points outside this executable's code (a library loaded at \
             run time?), so a worker process could not find it"
                .into(),
        ));
    }
    Ok((address as i64).wrapping_sub(anchor_address()))
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

/// A task ready to travel: its trampoline's identity and its encoded
/// argument (for a function pointer, prefixed with the pointer's identity).
pub(crate) struct PreparedTask {
    pub(crate) function: i64,
    pub(crate) argument: Vec<u8>,
}

/// Prepares `function(argument)` to run in a worker, or says why it cannot.
pub(crate) fn prepare_task<F, A, R>(function: F, argument: &A) -> Result<PreparedTask, TaskError>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let kind = kind_of(function)?;
    let argument = encode_argument(argument)?;
    Ok(match kind {
        Kind::ZeroSized => PreparedTask {
            function: identity_of(run_item::<F, A, R>, type_name::<F>())?,
            argument,
        },
        Kind::Pointer(prefix) => PreparedTask {
            function: identity_of(run_pointer::<A, R>, type_name::<F>())?,
            argument: [prefix, argument].concat(),
        },
    })
}

/// The function of a chunked map, ready to travel: its chunk trampoline's
/// identity, and the bytes every chunk's argument starts with.
#[derive(Clone, Debug)]
pub(crate) struct PreparedChunkFunction {
    pub(crate) function: i64,
    pub(crate) prefix: Vec<u8>,
}

/// Prepares `function` to run chunks of items in a worker (`chunk.rs`),
/// or says why it cannot.
pub(crate) fn prepare_chunk_function<F, A, R>(
    function: F,
) -> Result<PreparedChunkFunction, TaskError>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    Ok(match kind_of(function)? {
        Kind::ZeroSized => PreparedChunkFunction {
            function: identity_of(run_item_chunk::<F, A, R>, type_name::<F>())?,
            prefix: Vec::new(),
        },
        Kind::Pointer(prefix) => PreparedChunkFunction {
            function: identity_of(run_pointer_chunk::<A, R>, type_name::<F>())?,
            prefix,
        },
    })
}

/// How a task's function travels.
enum Kind {
    /// Zero-sized: its type says it all.
    ZeroSized,
    /// A function pointer: its identity, encoded (the argument's prefix).
    Pointer(Vec<u8>),
}

/// Which [`Kind`] `function` is, or why it cannot travel.
fn kind_of<F, A, R>(function: F) -> Result<Kind, TaskError>
where
    F: Fn(A) -> R + Copy + 'static,
    A: 'static,
    R: 'static,
{
    const {
        assert!(
            size_of::<F>() == 0 || size_of::<F>() == size_of::<fn()>(),
            "verisync: a process task must be a `fn` item, a function pointer, or a closure that \
             captures nothing; this closure captures data, which cannot be sent to another \
             process: pass the data in the argument instead"
        )
    };
    if size_of::<F>() == 0 {
        let _ = function;
        return Ok(Kind::ZeroSized);
    }
    if TypeId::of::<F>() != TypeId::of::<fn(A) -> R>() {
        return Err(TaskError::Serialization(format!(
            "a process task must be a `fn` item, a function pointer, or a closure that captures \
             nothing; `{}` captures data, which cannot be sent to another process: pass the \
             data in the argument instead",
            type_name::<F>()
        )));
    }
    // SAFETY: `F` and `fn(A) -> R` have the same `TypeId`: they are one type.
    let pointer: fn(A) -> R = unsafe { std::mem::transmute_copy(&function) };
    let address = pointer as usize;
    if !is_in_this_executable(address) {
        return Err(TaskError::Serialization(format!(
            "the function pointer `{}` points outside this executable's code (a library loaded \
             at run time?), so a worker process could not find it",
            type_name::<F>()
        )));
    }
    let identity = (address as i64).wrapping_sub(anchor_address());
    let prefix = postcard::to_allocvec(&identity).map_err(|error| {
        TaskError::Serialization(format!("could not encode a function identity: {error}"))
    })?;
    Ok(Kind::Pointer(prefix))
}

/// Whether `address` lies in this executable's own code, where the system
/// tells (Linux: an executable mapping of the file that holds [`anchor`]);
/// elsewhere `true`.
fn is_in_this_executable(address: usize) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::sync::OnceLock;
        /// This executable's code: `(start, end)` of each executable mapping.
        static CODE: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
        let code = CODE.get_or_init(|| {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
            executable_code(&maps, anchor_address() as usize)
        });
        // No map to read (no /proc): do not refuse what cannot be checked.
        code.is_empty()
            || code
                .iter()
                .any(|&(start, end)| (start..end).contains(&address))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = address;
        true
    }
}

/// From `/proc/self/maps` text: the executable mappings of the file that
/// holds `anchor` (lines "start-end perms offset dev inode path").
#[cfg(any(target_os = "linux", target_os = "android"))]
fn executable_code(maps: &str, anchor: usize) -> Vec<(usize, usize)> {
    struct Mapping<'a> {
        start: usize,
        end: usize,
        executable: bool,
        file: (&'a str, &'a str),
    }
    let mappings: Vec<Mapping<'_>> = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?;
            let _offset = fields.next()?;
            let device = fields.next()?;
            let inode = fields.next()?;
            Some(Mapping {
                start: usize::from_str_radix(start, 16).ok()?,
                end: usize::from_str_radix(end, 16).ok()?,
                executable: perms.contains('x'),
                file: (device, inode),
            })
        })
        .collect();
    let Some(home) = mappings
        .iter()
        .find(|mapping| (mapping.start..mapping.end).contains(&anchor))
    else {
        return Vec::new();
    };
    mappings
        .iter()
        .filter(|mapping| mapping.executable && mapping.file == home.file)
        .map(|mapping| (mapping.start, mapping.end))
        .collect()
}

/// The trampoline of a zero-sized function type `F`.
fn run_item<F, A, R>(argument: &[u8]) -> Result<Vec<u8>, Failure>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let mut result = Vec::new();
    run_item_into::<F, A, R>(argument, &mut result)?;
    Ok(result)
}

/// [`run_item`] encoding the result into `result` (cleared first): a
/// chunk runs its items so, with one buffer for them all.
fn run_item_into<F, A, R>(argument: &[u8], result: &mut Vec<u8>) -> Result<(), Failure>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let argument: A = decode_argument(argument)?;
    // SAFETY: `F` is zero-sized (`prepare_task` sends this trampoline only
    // then) and a function or capture-free closure: it has no bytes and no
    // invariants, so a value of it can be made from nothing.
    let function: F = unsafe { std::mem::zeroed() };
    let value = catch_unwind(AssertUnwindSafe(|| function(argument)))
        .map_err(|payload| Failure::Panicked(take_panic_message(payload)))?;
    encode_result_into(value, result)
}

/// The trampoline of function pointers `fn(A) -> R`: the pointer's
/// identity comes in front of the argument.
fn run_pointer<A, R>(bytes: &[u8]) -> Result<Vec<u8>, Failure>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let (identity, argument) = take_identity(bytes)?;
    let mut result = Vec::new();
    call_pointer_into::<A, R>(identity, argument, &mut result)?;
    Ok(result)
}

/// The chunk trampoline of a zero-sized function type `F`.
fn run_item_chunk<F, A, R>(bytes: &[u8]) -> Result<Vec<u8>, Failure>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    run_chunk(bytes, run_item_into::<F, A, R>)
}

/// The chunk trampoline of function pointers `fn(A) -> R`: the pointer's
/// identity comes in front of the chunk.
fn run_pointer_chunk<A, R>(bytes: &[u8]) -> Result<Vec<u8>, Failure>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let (identity, chunk) = take_identity(bytes)?;
    run_chunk(chunk, |argument, result| {
        call_pointer_into::<A, R>(identity, argument, result)
    })
}

/// Splits a function pointer's identity off the front of `bytes`.
fn take_identity(bytes: &[u8]) -> Result<(i64, &[u8]), Failure> {
    postcard::take_from_bytes::<i64>(bytes).map_err(|error| {
        Failure::Serialization(format!(
            "the worker could not decode a function identity: {error}"
        ))
    })
}

/// Calls the `fn(A) -> R` with `identity` on the encoded `argument`, and
/// encodes the result into `result` (cleared first).
fn call_pointer_into<A, R>(
    identity: i64,
    argument: &[u8],
    result: &mut Vec<u8>,
) -> Result<(), Failure>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let argument: A = decode_argument(argument)?;
    let address = anchor_address().wrapping_add(identity) as usize;
    // SAFETY: `prepare_task`/`prepare_chunk_function` computed this
    // identity from a `fn(A) -> R` in this executable's code (checked), and
    // sent it with a trampoline monomorphised for the same `A` and `R`; the
    // worker runs the same executable, so the same address holds the same
    // function.
    let function = unsafe { std::mem::transmute::<usize, fn(A) -> R>(address) };
    let value = catch_unwind(AssertUnwindSafe(|| function(argument)))
        .map_err(|payload| Failure::Panicked(take_panic_message(payload)))?;
    encode_result_into(value, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_executables_code_holds_its_functions_and_nothing_else() {
        fn square(x: u64) -> u64 {
            x * x
        }
        let pointer: fn(u64) -> u64 = square;
        assert!(is_in_this_executable(pointer as usize));
        assert!(is_in_this_executable(anchor_address() as usize));
        // The heap is no code.
        let on_the_heap = Box::new(0u64);
        assert!(!is_in_this_executable(&*on_the_heap as *const u64 as usize));
    }

    /// A trampoline outside the anchor's file (verisync linked as a
    /// dynamic library, the trampoline in the user's executable) fails the
    /// task instead of sending an identity that means another address in
    /// the worker.
    #[test]
    fn a_trampoline_outside_the_anchors_file_is_refused() {
        fn square(x: u64) -> u64 {
            x * x
        }
        let trampoline: Trampoline = run_item::<fn(u64) -> u64, u64, u64>;
        assert!(identity_of(trampoline, "square").is_ok());
        assert!(prepare_task(square, &3u64).is_ok());
        // Where a trampoline outside this executable's code would be: any
        // address outside it (here, on the heap).
        let elsewhere = Box::new(0u64);
        let refused =
            identity_of_trampoline_at(&*elsewhere as *const u64 as usize, "my_crate::square");
        match refused {
            Err(TaskError::Serialization(message)) => {
                assert!(message.contains("my_crate::square"), "{message}");
                assert!(message.contains("dynamic library"), "{message}");
            }
            other => panic!("a misplaced trampoline was not refused: {other:?}"),
        }
    }
}
