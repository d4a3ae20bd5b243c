//! Frame limits: an argument or result larger than the pool's
//! `max_frame_size` fails its own task with a clear error, and a worker
//! cannot make the parent read (and allocate for) a larger frame.

verisync::process_test_support!();

mod common;

use std::time::Duration;

use common::{with_watchdog, PATIENCE};
use verisync::{ProcessPool, TaskError};

/// The mark every frame starts with (`FRAME_MARK` in `wire.rs`).
const FRAME_MARK: [u8; 2] = *b"vs";

fn zeros(length: usize) -> Vec<u8> {
    vec![0; length]
}

fn length_of(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

/// Writes a frame header announcing `length` bytes, then nothing more.
fn announces(length: u32) -> u64 {
    let mut header = FRAME_MARK.to_vec();
    header.extend(length.to_le_bytes());
    verisync::process::__write_raw_to_parent(&header);
    std::thread::sleep(Duration::from_secs(10));
    0
}

/// Writes the first `cut` bytes of a frame header, then exits with `code`.
fn cuts_a_header_short((cut, code): (usize, i32)) -> u64 {
    let mut header = FRAME_MARK.to_vec();
    header.extend(100u32.to_le_bytes());
    verisync::process::__write_raw_to_parent(&header[..cut]);
    std::process::exit(code)
}

/// The message of a `Serialization` error (a value is not printed: it may
/// be megabytes).
fn serialization_message<T>(result: Result<T, TaskError>) -> String {
    match result {
        Err(TaskError::Serialization(message)) => message,
        Err(other) => panic!("expected a Serialization error, got {other:?}"),
        Ok(_) => panic!("expected a Serialization error, got a value"),
    }
}

#[test]
fn a_result_over_max_frame_size_fails_its_task_and_the_worker_lives_on() {
    with_watchdog(PATIENCE, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .max_frame_size(1 << 20)
            .build()
            .unwrap();
        let [worker] = pool.worker_pids()[..] else {
            panic!("one worker")
        };
        assert_eq!(
            pool.submit(zeros, 1000 << 10).join().map(|v| v.len()),
            Ok(1000 << 10)
        );
        let message = serialization_message(pool.submit(zeros, 2 << 20).join());
        assert!(
            message.contains("result") && message.contains("max_frame_size"),
            "{message}"
        );
        assert_eq!(pool.submit(pid, ()).join(), Ok(worker), "the same worker");
    });
}

#[test]
fn an_argument_over_max_frame_size_fails_its_task() {
    with_watchdog(PATIENCE, || {
        let pool = ProcessPool::builder()
            .workers(1)
            .max_frame_size(1 << 20)
            .build()
            .unwrap();
        let [worker] = pool.worker_pids()[..] else {
            panic!("one worker")
        };
        let message = serialization_message(pool.submit(length_of, vec![1; 2 << 20]).join());
        assert!(
            message.contains("argument") && message.contains("max_frame_size"),
            "{message}"
        );
        assert_eq!(pool.submit(length_of, vec![1; 1000]).join(), Ok(1000));
        assert_eq!(pool.submit(pid, ()).join(), Ok(worker), "the same worker");
    });
}

/// Without `max_frame_size`, the limit is 64 MiB (it was 1 GiB).
#[test]
fn the_default_limit_is_64_mib() {
    with_watchdog(PATIENCE * 2, || {
        let pool = ProcessPool::new(1).unwrap();
        let message = serialization_message(pool.submit(zeros, 65 << 20).join());
        assert!(message.contains("67108864"), "{message}");
        assert_eq!(pool.submit(zeros, 10).join(), Ok(vec![0; 10]));
    });
}

/// A worker announcing a frame over the limit is refused at its header, at
/// once (not after the body stalls), and the task fails saying why.
#[test]
fn a_header_announcing_more_than_the_limit_is_refused_before_the_body() {
    with_watchdog(PATIENCE, || {
        let pool = ProcessPool::new(1).unwrap();
        let [worker] = pool.worker_pids()[..] else {
            panic!("one worker")
        };
        let handle = pool.submit(announces, 100 << 20);
        let message = serialization_message(handle.join());
        assert!(
            message.contains(&format!("worker {worker}")) && message.contains("max_frame_size"),
            "{message}"
        );
        assert_ne!(
            pool.submit(pid, ()).join(),
            Ok(worker),
            "the worker was replaced"
        );
    });
}

/// A worker that dies in the middle of writing a frame header: the header
/// says nothing yet, so the task is reported as what happened — the worker
/// died, with its exit code — not as garbage.
#[test]
fn a_header_cut_short_is_the_worker_dying() {
    with_watchdog(PATIENCE, || {
        let pool = ProcessPool::new(1).unwrap();
        for cut in [1, 3, 5] {
            assert!(
                matches!(
                    pool.submit(cuts_a_header_short, (cut, 7)).join(),
                    Err(TaskError::WorkerDied {
                        signal: None,
                        exit_code: Some(7),
                        ..
                    })
                ),
                "a header cut after {cut} bytes"
            );
        }
    });
}

#[test]
fn process_spawn_has_the_default_limit() {
    with_watchdog(PATIENCE * 2, || {
        let message =
            serialization_message(verisync::process::spawn(zeros, 65 << 20).unwrap().join());
        assert!(message.contains("67108864"), "{message}");
        let message = serialization_message(
            verisync::process::spawn(length_of, vec![1; 65 << 20]).map(|_| ()),
        );
        assert!(message.contains("argument"), "{message}");
    });
}
