//! User code around a process task — the argument's and result's
//! `Serialize`, `Deserialize` and `Drop`, in the parent and in the worker —
//! may panic: each panic fails at most its own task. The pool, its threads
//! and its workers carry on, and `shutdown` returns.

verisync::process_test_support!();

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{with_watchdog, PATIENCE};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use verisync::{ProcessPool, TaskError};

/// Shuts the pool down on another thread and fails if that hangs.
fn shutdown_within_patience(pool: ProcessPool) {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        pool.shutdown();
        drop(pool);
        let _ = done.send(());
    });
    finished
        .recv_timeout(PATIENCE)
        .expect("shutdown hung: a pool thread is gone and a task was never resolved");
}

fn serialization_message<T: std::fmt::Debug>(result: Result<T, TaskError>) -> String {
    match result {
        Err(TaskError::Serialization(message)) => message,
        other => panic!("expected a Serialization error, got {other:?}"),
    }
}

/// The square, and which process computed it.
fn tagged(x: u64) -> (u32, u64) {
    (std::process::id(), x * x)
}

fn sleeps(millis: u64) -> u64 {
    thread::sleep(Duration::from_millis(millis));
    millis
}

// ---------------------------------------------------------------------------
// Types with panicking serde impls and destructors
// ---------------------------------------------------------------------------

/// Encodes fine; decoding panics (in whichever process decodes it).
#[derive(Debug)]
struct DecodePanics;

impl Serialize for DecodePanics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for DecodePanics {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("Deserialize for DecodePanics panicked on purpose")
    }
}

/// Encoding panics.
#[derive(Debug, Deserialize)]
struct EncodePanics;

impl Serialize for EncodePanics {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("Serialize for EncodePanics panicked on purpose")
    }
}

/// Panics when dropped in the process `panic_in`, and only there.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct LoudDrop {
    panic_in: u32,
}

impl Drop for LoudDrop {
    fn drop(&mut self) {
        if std::process::id() == self.panic_in {
            panic!("Drop for LoudDrop panicked on purpose")
        }
    }
}

fn makes_decode_panics(_: ()) -> DecodePanics {
    DecodePanics
}

fn takes_decode_panics(_: DecodePanics) -> u64 {
    unreachable!("the argument never decodes")
}

fn makes_encode_panics(_: ()) -> EncodePanics {
    EncodePanics
}

fn takes_encode_panics(_: EncodePanics) -> u64 {
    unreachable!("the argument never encodes")
}

/// A result that panics when dropped in process `panic_in`.
fn makes_loud_drop(panic_in: u32) -> LoudDrop {
    LoudDrop { panic_in }
}

/// A result that panics when the worker drops it (after encoding it).
fn makes_loud_drop_here(_: ()) -> LoudDrop {
    LoudDrop {
        panic_in: std::process::id(),
    }
}

// ---------------------------------------------------------------------------
// In the parent
// ---------------------------------------------------------------------------

/// The pool's reader thread decodes results: a panicking `Deserialize`
/// there must fail that task only, not kill the thread (which stranded the
/// worker's other tasks and hung `shutdown`).
#[test]
fn a_result_whose_deserialize_panics_in_the_parent_fails_only_its_task() {
    with_watchdog(PATIENCE * 2, || {
        let pool = ProcessPool::new(1).unwrap();
        let [worker] = pool.worker_pids()[..] else {
            panic!("one worker")
        };
        let before = pool.submit(tagged, 2);
        let bad = pool.submit(makes_decode_panics, ());
        let after: Vec<_> = (0..10).map(|x| pool.submit(tagged, x)).collect();
        assert!(
            bad.wait_timeout(PATIENCE),
            "the task whose result's Deserialize panicked never resolved"
        );
        let message = serialization_message(bad.join());
        assert!(
            message.contains("Deserialize") && message.contains("panicked on purpose"),
            "{message}"
        );
        assert_eq!(before.join(), Ok((worker, 4)));
        for (x, handle) in after.into_iter().enumerate() {
            assert!(handle.wait_timeout(PATIENCE), "task {x} never resolved");
            assert_eq!(handle.join(), Ok((worker, (x * x) as u64)));
        }
        shutdown_within_patience(pool);
    });
}

/// A result whose handle was dropped is dropped by the pool when it
/// arrives: a panicking `Drop` there fails nothing.
#[test]
fn a_result_whose_drop_panics_in_the_parent_fails_nothing() {
    with_watchdog(PATIENCE * 2, || {
        let pool = ProcessPool::new(1).unwrap();
        // The worker is busy for a while, so the handle below is surely
        // dropped before its result arrives: the pool drops the result.
        let busy = pool.submit(sleeps, 300);
        drop(pool.submit(makes_loud_drop, std::process::id()));
        let after: Vec<_> = (0..10).map(|x| pool.submit(tagged, x)).collect();
        assert_eq!(busy.join(), Ok(300));
        for (x, handle) in after.into_iter().enumerate() {
            assert!(handle.wait_timeout(PATIENCE), "task {x} never resolved");
            assert_eq!(handle.join().map(|(_, square)| square), Ok((x * x) as u64));
        }
        shutdown_within_patience(pool);
    });
}

/// `submit` encodes the argument on the caller's thread: a panicking
/// `Serialize` fails the task, it does not unwind out of `submit`.
#[test]
fn an_argument_whose_serialize_panics_fails_only_its_task() {
    with_watchdog(PATIENCE * 2, || {
        let pool = ProcessPool::new(1).unwrap();
        let message = serialization_message(pool.submit(takes_encode_panics, EncodePanics).join());
        assert!(
            message.contains("argument")
                && message.contains("Serialize")
                && message.contains("panicked on purpose"),
            "{message}"
        );
        assert_eq!(pool.submit(tagged, 3).join().map(|(_, v)| v), Ok(9));
        shutdown_within_patience(pool);

        let message = serialization_message(
            verisync::process::spawn(takes_encode_panics, EncodePanics).map(|_| ()),
        );
        assert!(message.contains("panicked on purpose"), "{message}");
    });
}

/// `Process::join` decodes the result on the caller's thread: a panicking
/// `Deserialize` is an error, not a panic out of `join`.
#[test]
fn a_spawned_result_whose_deserialize_panics_is_an_error() {
    with_watchdog(PATIENCE, || {
        let child = verisync::process::spawn(makes_decode_panics, ()).unwrap();
        let message = serialization_message(child.join());
        assert!(message.contains("panicked on purpose"), "{message}");
    });
}

// ---------------------------------------------------------------------------
// In the worker
// ---------------------------------------------------------------------------

/// The worker decodes arguments, encodes results and drops them: a panic
/// in any of those fails that task (or nothing, for the drop of a result
/// already encoded), and the same worker serves the next task.
#[test]
fn serde_and_drop_panics_in_the_worker_fail_only_their_task_and_keep_the_worker() {
    with_watchdog(PATIENCE * 2, || {
        let pool = ProcessPool::new(1).unwrap();
        let [worker] = pool.worker_pids()[..] else {
            panic!("one worker")
        };

        let message = serialization_message(pool.submit(takes_decode_panics, DecodePanics).join());
        assert!(
            message.contains("argument") && message.contains("panicked on purpose"),
            "{message}"
        );
        assert_eq!(pool.submit(tagged, 2).join(), Ok((worker, 4)));

        let message = serialization_message(pool.submit(makes_encode_panics, ()).join());
        assert!(
            message.contains("result") && message.contains("panicked on purpose"),
            "{message}"
        );
        assert_eq!(pool.submit(tagged, 3).join(), Ok((worker, 9)));

        // Encoded, then dropped in the worker, where its Drop panics: the
        // parent still gets the value.
        let result = pool.submit(makes_loud_drop_here, ()).join().unwrap();
        assert_eq!(result.panic_in, worker);
        assert_eq!(pool.submit(tagged, 4).join(), Ok((worker, 16)));

        assert_eq!(
            pool.worker_pids(),
            [worker],
            "the worker was never replaced"
        );
        shutdown_within_patience(pool);
    });
}
