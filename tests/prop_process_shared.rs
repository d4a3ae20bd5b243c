//! Property tests: the process-shared primitives against their thread
//! versions as models. The same random operations go to both, and every
//! observable result must agree:
//!
//! - `process::Semaphore` against `verisync::Semaphore` (plain and bounded):
//!   the acquire forms, release (over-release of a bounded one included),
//!   dropped and forgotten permits, `available_permits`, and whether a call
//!   panics (a count that could never be satisfied);
//! - `process::Event` against `verisync::Event`: set, clear, is_set,
//!   `wait_timeout` zero and short;
//! - `process::Lock` against `verisync::Mutex`: try_lock, `lock_timeout`
//!   (zero and short) and unlock from two threads of this process, one
//!   operation at a time in a random order;
//! - `process::Value<u8>` and `process::Array<u8>` against a
//!   `verisync::Mutex` of the same data: load, store, `fetch_add` (wrapping),
//!   a read-modify-write through the guard, and out-of-bounds indexes (both
//!   panic, neither changes anything).
//!
//! Every process-shared object lives in the process tree's shared memory
//! for good (64 MiB; a semaphore takes 8 KiB), hence the modest case counts.
#![cfg(target_os = "linux")]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use verisync::process;

use common::{with_watchdog, CASE_PATIENCE};

/// Few cases and bounded shrinking: each semaphore case takes 8 KiB of the
/// arena for good.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

/// `Ok(value)`, or `Err(())` if `call` panicked.
fn outcome<R>(call: impl FnOnce() -> R) -> Result<R, ()> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|_| ())
}

// ---------------------------------------------------------------- Semaphore

/// How long a timed acquire waits: zero (tries once) or a millisecond.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Zero,
    Short,
}

impl Wait {
    fn duration(self) -> Duration {
        match self {
            Wait::Zero => Duration::ZERO,
            Wait::Short => Duration::from_millis(1),
        }
    }
}

#[derive(Clone, Debug)]
enum SemaphoreOp {
    TryAcquire,
    /// `try_acquire_many(n)`, `n` up to past the bound.
    TryAcquireMany(usize),
    TryAcquireManyFor(usize, Wait),
    /// Blocking `acquire_many`, issued only when the thread version has the
    /// permits (or would panic): nothing else runs to release them.
    AcquireMany(usize),
    Release(usize),
    /// Release up to the bound (or a little past the initial count on an
    /// unbounded one), plus `extra`: 1 over-releases a bounded one.
    ReleaseToLimit {
        extra: usize,
    },
    DropPermit(usize),
    ForgetPermit(usize),
    Available,
}

fn semaphore_op() -> impl Strategy<Value = SemaphoreOp> {
    let wait = prop_oneof![Just(Wait::Zero), Just(Wait::Short)];
    prop_oneof![
        3 => Just(SemaphoreOp::TryAcquire),
        3 => (0..=8usize).prop_map(SemaphoreOp::TryAcquireMany),
        2 => (0..=8usize, wait).prop_map(|(n, w)| SemaphoreOp::TryAcquireManyFor(n, w)),
        3 => (0..=8usize).prop_map(SemaphoreOp::AcquireMany),
        3 => (0..=4usize).prop_map(SemaphoreOp::Release),
        1 => (0..=1usize).prop_map(|extra| SemaphoreOp::ReleaseToLimit { extra }),
        4 => any::<usize>().prop_map(SemaphoreOp::DropPermit),
        2 => any::<usize>().prop_map(SemaphoreOp::ForgetPermit),
        2 => Just(SemaphoreOp::Available),
    ]
}

/// A permit from each, taken together.
type PermitPair<'a> = (verisync::SemaphorePermit<'a>, process::SemaphorePermit<'a>);

fn semaphores_agree(
    initial: usize,
    bounded: bool,
    ops: &[SemaphoreOp],
) -> Result<(), TestCaseError> {
    let (model, shared) = if bounded {
        (
            verisync::Semaphore::bounded(initial),
            process::Semaphore::bounded(initial).unwrap(),
        )
    } else {
        (
            verisync::Semaphore::new(initial),
            process::Semaphore::new(initial).unwrap(),
        )
    };
    prop_assert_eq!(shared.bound(), model.bound());
    let mut held: Vec<PermitPair<'_>> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let acquired = match *op {
            SemaphoreOp::TryAcquire => Some((
                outcome(|| model.try_acquire()),
                outcome(|| shared.try_acquire()),
            )),
            SemaphoreOp::TryAcquireMany(n) => Some((
                outcome(|| model.try_acquire_many(n)),
                outcome(|| shared.try_acquire_many(n)),
            )),
            SemaphoreOp::TryAcquireManyFor(n, wait) => Some((
                outcome(|| model.try_acquire_many_for(n, wait.duration())),
                outcome(|| shared.try_acquire_many_for(n, wait.duration())),
            )),
            SemaphoreOp::AcquireMany(n) => {
                let would_panic = model.bound().is_some_and(|bound| n > bound);
                if would_panic || model.available_permits() >= n {
                    Some((
                        outcome(|| Some(model.acquire_many(n))),
                        outcome(|| Some(shared.acquire_many(n))),
                    ))
                } else {
                    None
                }
            }
            SemaphoreOp::Release(n) => {
                prop_assert_eq!(
                    shared.release(n).is_ok(),
                    model.release(n).is_ok(),
                    "step {}: release({})",
                    step,
                    n
                );
                None
            }
            SemaphoreOp::ReleaseToLimit { extra } => {
                let limit = model.bound().unwrap_or(initial + 3);
                let n = limit.saturating_sub(model.available_permits()) + extra;
                let expected = model.release(n);
                let actual = shared.release(n);
                prop_assert_eq!(
                    actual.is_ok(),
                    expected.is_ok(),
                    "step {}: release({}) up to the limit",
                    step,
                    n
                );
                if let (Err(actual), Err(expected)) = (actual, expected) {
                    prop_assert_eq!(actual.released, expected.released);
                    prop_assert_eq!(actual.available, expected.available);
                    prop_assert_eq!(actual.limit, expected.limit);
                }
                None
            }
            SemaphoreOp::DropPermit(index) => {
                if !held.is_empty() {
                    drop(held.swap_remove(index % held.len()));
                }
                None
            }
            SemaphoreOp::ForgetPermit(index) => {
                if !held.is_empty() {
                    let (thread_permit, process_permit) = held.swap_remove(index % held.len());
                    thread_permit.forget();
                    process_permit.forget();
                }
                None
            }
            SemaphoreOp::Available => None,
        };
        if let Some((expected, actual)) = acquired {
            match (expected, actual) {
                (Ok(Some(expected)), Ok(Some(actual))) => {
                    prop_assert_eq!(actual.count(), expected.count(), "step {}", step);
                    held.push((expected, actual));
                }
                (Ok(None), Ok(None)) | (Err(()), Err(())) => {}
                (expected, actual) => prop_assert!(
                    false,
                    "step {}: {:?}: the thread semaphore {}, the process semaphore {}",
                    step,
                    op,
                    describe(expected.as_ref().map(Option::is_some)),
                    describe(actual.as_ref().map(Option::is_some)),
                ),
            }
        }
        prop_assert_eq!(
            shared.available_permits(),
            model.available_permits(),
            "step {}: available permits after {:?}",
            step,
            op
        );
    }
    while let Some(pair) = held.pop() {
        drop(pair);
        prop_assert_eq!(shared.available_permits(), model.available_permits());
    }
    Ok(())
}

fn describe(result: Result<bool, &()>) -> &'static str {
    match result {
        Ok(true) => "acquired",
        Ok(false) => "did not acquire",
        Err(()) => "panicked",
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn process_semaphore_agrees_with_the_thread_semaphore(
        initial in 0..=5usize,
        bounded in any::<bool>(),
        ops in prop::collection::vec(semaphore_op(), 1..40),
    ) {
        with_watchdog(CASE_PATIENCE, move || semaphores_agree(initial, bounded, &ops))?;
    }
}

// -------------------------------------------------------------------- Event

#[derive(Clone, Copy, Debug)]
enum EventOp {
    Set,
    Clear,
    IsSet,
    WaitTimeout(Wait),
}

fn event_op() -> impl Strategy<Value = EventOp> {
    prop_oneof![
        3 => Just(EventOp::Set),
        3 => Just(EventOp::Clear),
        2 => Just(EventOp::IsSet),
        3 => Just(EventOp::WaitTimeout(Wait::Zero)),
        1 => Just(EventOp::WaitTimeout(Wait::Short)),
    ]
}

fn events_agree(ops: &[EventOp]) -> Result<(), TestCaseError> {
    let model = verisync::Event::new();
    let shared = process::Event::new().unwrap();
    for (step, op) in ops.iter().enumerate() {
        let (expected, actual) = match *op {
            EventOp::Set => {
                model.set();
                shared.set();
                (model.is_set(), shared.is_set())
            }
            EventOp::Clear => {
                model.clear();
                shared.clear();
                (model.is_set(), shared.is_set())
            }
            EventOp::IsSet => (model.is_set(), shared.is_set()),
            EventOp::WaitTimeout(wait) => (
                model.wait_timeout(wait.duration()),
                shared.wait_timeout(wait.duration()),
            ),
        };
        prop_assert_eq!(actual, expected, "step {}: {:?}", step, op);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn process_event_agrees_with_the_thread_event(
        ops in prop::collection::vec(event_op(), 1..40),
    ) {
        with_watchdog(CASE_PATIENCE, move || events_agree(&ops))?;
    }
}

// --------------------------------------------------------------------- Lock

#[derive(Clone, Copy, Debug)]
enum LockOp {
    TryLock,
    /// `lock_timeout` on the process lock, `try_lock_for` on the mutex.
    LockTimeout(Wait),
    Unlock,
}

fn lock_op() -> impl Strategy<Value = (usize, LockOp)> {
    let op = prop_oneof![
        3 => Just(LockOp::TryLock),
        2 => Just(LockOp::LockTimeout(Wait::Zero)),
        1 => Just(LockOp::LockTimeout(Wait::Short)),
        3 => Just(LockOp::Unlock),
    ];
    (0..2usize, op)
}

/// What one thread answers for one operation: did each lock give it the
/// lock (or, for an unlock, was it holding one to drop)?
type Answer = Result<(bool, bool), String>;

/// One of the two threads: holds its guards (they are not `Send`) and
/// carries out one operation at a time.
fn lock_thread(
    mutex: Arc<verisync::Mutex<()>>,
    lock: process::Lock,
    ops: mpsc::Receiver<LockOp>,
    answers: mpsc::Sender<Answer>,
) {
    let mut mutex_guard = None;
    let mut lock_guard = None;
    for op in ops {
        let answer = match op {
            // A thread that holds them does not ask again: the process
            // lock panics on a relock, the mutex would wait for ever.
            LockOp::TryLock | LockOp::LockTimeout(_) if mutex_guard.is_some() => {
                Ok((true, lock_guard.is_some()))
            }
            LockOp::TryLock => {
                mutex_guard = mutex.try_lock();
                match lock.try_lock() {
                    Ok(guard) => {
                        lock_guard = Some(guard);
                        Ok((mutex_guard.is_some(), true))
                    }
                    Err(process::TryLockError::WouldBlock) => Ok((mutex_guard.is_some(), false)),
                    Err(process::TryLockError::OwnerDied(_)) => {
                        Err("OwnerDied, but nobody died".to_string())
                    }
                }
            }
            LockOp::LockTimeout(wait) => {
                mutex_guard = mutex.try_lock_for(wait.duration());
                match lock.lock_timeout(wait.duration()) {
                    Ok(guard) => {
                        lock_guard = Some(guard);
                        Ok((mutex_guard.is_some(), true))
                    }
                    Err(process::TryLockError::WouldBlock) => Ok((mutex_guard.is_some(), false)),
                    Err(process::TryLockError::OwnerDied(_)) => {
                        Err("OwnerDied, but nobody died".to_string())
                    }
                }
            }
            LockOp::Unlock => Ok((mutex_guard.take().is_some(), lock_guard.take().is_some())),
        };
        if answers.send(answer).is_err() {
            return;
        }
    }
}

fn locks_agree(ops: &[(usize, LockOp)]) -> Result<(), TestCaseError> {
    let mutex = Arc::new(verisync::Mutex::new(()));
    let lock = process::Lock::new().unwrap();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (op_sender, op_receiver) = mpsc::channel();
        let (answer_sender, answer_receiver) = mpsc::channel();
        let (mutex, lock) = (Arc::clone(&mutex), lock.clone());
        threads.push(thread::spawn(move || {
            lock_thread(mutex, lock, op_receiver, answer_sender);
        }));
        senders.push(op_sender);
        receivers.push(answer_receiver);
    }
    let mut result = Ok(());
    for (step, &(thread, op)) in ops.iter().enumerate() {
        senders[thread].send(op).unwrap();
        let (by_mutex, by_lock) = match receivers[thread].recv().unwrap() {
            Ok(answer) => answer,
            Err(error) => {
                result = Err(TestCaseError::fail(format!("step {step}: {error}")));
                break;
            }
        };
        if by_mutex != by_lock {
            result = Err(TestCaseError::fail(format!(
                "step {step}: thread {thread} {op:?}: the mutex says {by_mutex}, the process \
                 lock {by_lock}"
            )));
            break;
        }
    }
    // Ends the threads, which drop their guards.
    drop(senders);
    for thread in threads {
        thread.join().unwrap();
    }
    result?;
    prop_assert!(lock.try_lock().is_ok(), "the lock is free at the end");
    prop_assert!(mutex.try_lock().is_some());
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn process_lock_on_two_threads_agrees_with_the_thread_mutex(
        ops in prop::collection::vec(lock_op(), 1..40),
    ) {
        with_watchdog(CASE_PATIENCE, move || locks_agree(&ops))?;
    }
}

// ------------------------------------------------------------ Value, Array

/// One operation on a `Value<u8>` (and on the `Mutex<u8>` model).
#[derive(Clone, Copy, Debug)]
enum ValueOp {
    Load,
    Store(u8),
    FetchAdd(u8),
    /// `*guard = guard.wrapping_mul(factor)` under `lock()`.
    MultiplyLocked(u8),
}

fn value_op() -> impl Strategy<Value = ValueOp> {
    prop_oneof![
        Just(ValueOp::Load),
        any::<u8>().prop_map(ValueOp::Store),
        any::<u8>().prop_map(ValueOp::FetchAdd),
        any::<u8>().prop_map(ValueOp::MultiplyLocked),
    ]
}

/// One operation on an `Array<u8>` of `len` elements (and on the
/// `Mutex<Vec<u8>>` model); indexes may be out of bounds.
#[derive(Clone, Copy, Debug)]
enum ArrayOp {
    Load(usize),
    Store(usize, u8),
    /// `guard[index] = guard[index].wrapping_add(delta)` under `lock()`.
    AddLocked(usize, u8),
    ToVec,
}

fn array_op() -> impl Strategy<Value = ArrayOp> {
    // Indexes up to 9 over arrays of 1 to 8 elements: some out of bounds.
    prop_oneof![
        (0..10usize).prop_map(ArrayOp::Load),
        (0..10usize, any::<u8>()).prop_map(|(index, value)| ArrayOp::Store(index, value)),
        (0..10usize, any::<u8>()).prop_map(|(index, delta)| ArrayOp::AddLocked(index, delta)),
        Just(ArrayOp::ToVec),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn process_value_agrees_with_a_mutex(
        initial in any::<u8>(),
        ops in prop::collection::vec(value_op(), 1..40),
    ) {
        let value = process::Value::new(initial).unwrap();
        let model = verisync::Mutex::new(initial);
        for (step, op) in ops.iter().enumerate() {
            let (by_model, by_value) = match *op {
                ValueOp::Load => (*model.lock(), value.load()),
                ValueOp::Store(new) => {
                    *model.lock() = new;
                    value.store(new);
                    (new, value.load())
                }
                ValueOp::FetchAdd(delta) => {
                    let mut guard = model.lock();
                    let previous = *guard;
                    *guard = previous.wrapping_add(delta);
                    (previous, value.fetch_add(delta))
                }
                ValueOp::MultiplyLocked(factor) => {
                    let mut guard = model.lock();
                    *guard = guard.wrapping_mul(factor);
                    let mut shared = value.lock().unwrap();
                    *shared = shared.wrapping_mul(factor);
                    (*guard, *shared)
                }
            };
            prop_assert_eq!(by_model, by_value, "step {}: {:?}", step, op);
        }
        prop_assert_eq!(*model.lock(), value.load(), "the final values");
    }

    #[test]
    fn process_array_agrees_with_a_mutex_of_a_vec(
        initial in prop::collection::vec(any::<u8>(), 1..8),
        ops in prop::collection::vec(array_op(), 1..40),
    ) {
        let array = process::Array::from_slice(&initial).unwrap();
        prop_assert_eq!(array.len(), initial.len());
        let model = verisync::Mutex::new(initial);
        for (step, op) in ops.iter().enumerate() {
            let (by_model, by_array) = match *op {
                ArrayOp::Load(index) => (
                    outcome(|| model.lock()[index]).map(|element| vec![element]),
                    outcome(|| array.load(index)).map(|element| vec![element]),
                ),
                ArrayOp::Store(index, value) => (
                    outcome(|| model.lock()[index] = value).map(|()| Vec::new()),
                    outcome(|| array.store(index, value)).map(|()| Vec::new()),
                ),
                ArrayOp::AddLocked(index, delta) => (
                    outcome(|| {
                        let mut guard = model.lock();
                        guard[index] = guard[index].wrapping_add(delta);
                        vec![guard[index]]
                    }),
                    outcome(|| {
                        let mut guard = array.lock().unwrap();
                        guard[index] = guard[index].wrapping_add(delta);
                        vec![guard[index]]
                    }),
                ),
                ArrayOp::ToVec => (Ok(model.lock().clone()), Ok(array.to_vec())),
            };
            prop_assert_eq!(&by_model, &by_array, "step {}: {:?}", step, op);
            // A panic (an index out of bounds) changed nothing, and left
            // neither lock held.
            prop_assert_eq!(&*model.lock(), &array.to_vec(), "step {}: {:?}", step, op);
        }
    }
}
