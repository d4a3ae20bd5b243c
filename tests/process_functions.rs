//! What a process task may be: a `fn` item, a function pointer (a table
//! of tasks), or a closure that captures nothing. A closure that captures
//! data does not compile (see the `compile_fail` example on
//! `ProcessPool::submit`) unless its captures are pointer-sized, and then
//! it fails with `TaskError::Serialization` — never a panic.

verisync::process_test_support!();

mod common;

use common::{with_watchdog, PATIENCE};
use verisync::{ProcessPool, TaskError};

fn square(x: u64) -> u64 {
    x * x
}

fn cube(x: u64) -> u64 {
    x * x * x
}

fn abort_now(_: u64) -> u64 {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = setrlimit(Resource::Core, no_core);
    std::process::abort()
}

fn shout(word: String) -> String {
    word.to_uppercase()
}

/// A task of the table.
type Task = fn(u64) -> u64;

/// The table of tasks from the issue: names and function pointers.
const TASKS: [(&str, Task); 3] = [("square", square), ("abort", abort_now), ("cube", cube)];

#[test]
fn a_table_of_function_pointers_runs_in_a_pool() {
    with_watchdog(PATIENCE, || {
        let pool = ProcessPool::new(2).unwrap();
        let handles: Vec<_> = TASKS
            .iter()
            .map(|&(name, task)| (name, pool.submit(task, 3)))
            .collect();
        for (name, handle) in handles {
            match (name, handle.join()) {
                ("square", result) => assert_eq!(result, Ok(9)),
                ("cube", result) => assert_eq!(result, Ok(27)),
                ("abort", result) => assert!(
                    matches!(
                        result,
                        Err(TaskError::WorkerDied {
                            signal: Some(6),
                            ..
                        })
                    ),
                    "{result:?}"
                ),
                (other, _) => unreachable!("{other}"),
            }
        }
        // Pointers picked at run time, through map, and with other types.
        let pick = |name: &str| TASKS.iter().find(|(n, _)| *n == name).unwrap().1;
        let cubes: Vec<u64> = pool
            .map(pick("cube"), 1..=4u64)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(cubes, [1, 8, 27, 64]);
        let shouting: fn(String) -> String = shout;
        assert_eq!(pool.submit(shouting, "hi".into()).join(), Ok("HI".into()));
    });
}

#[test]
fn a_function_pointer_runs_in_a_spawned_process() {
    with_watchdog(PATIENCE, || {
        let (_, task) = TASKS[2];
        assert_eq!(verisync::process::spawn(task, 5).unwrap().join(), Ok(125));
    });
}

/// A closure capturing one `u64` is pointer-sized, so it passes the
/// compile-time check: it must be refused at run time with an error.
#[test]
fn a_closure_capturing_a_pointer_sized_value_is_a_serialization_error() {
    with_watchdog(PATIENCE, || {
        let offset = 10u64;
        let adds = move |x: u64| x + offset;
        let pool = ProcessPool::new(1).unwrap();
        let expect_refusal = |result: Result<u64, TaskError>| match result {
            Err(TaskError::Serialization(message)) => {
                assert!(message.contains("captures data"), "{message}")
            }
            other => panic!("expected a Serialization error, got {other:?}"),
        };
        expect_refusal(pool.submit(adds, 1).join());
        let mapped: Vec<_> = pool.map(adds, 0..3u64).collect();
        assert_eq!(mapped.len(), 3);
        mapped.into_iter().for_each(expect_refusal);
        expect_refusal(verisync::process::spawn(adds, 1).and_then(|child| child.join()));
        // The pool is unharmed, and a capture-free closure is fine.
        assert_eq!(pool.submit(|x: u64| x + 10, 1).join(), Ok(11));
    });
}
