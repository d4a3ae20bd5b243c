//! `verisync::deadlock::blocked_threads()` explains hangs in the queue and
//! in task handles: every blocking form of `JoinableQueue::{put, get,
//! join}` and `TaskHandle::{join, wait, wait_timeout, wait_until}` (thread
//! and process pools) is listed with its operation and the user's call
//! site — a `join` whose consumer died is explained, not just stuck. Every
//! thread blocked here is released by the test (or times out), and the
//! pools' idle workers are not listed.
//!
//! The tests of one binary share the process-wide registry, so each test
//! names its threads with its own prefix and looks only at those.
#![cfg(feature = "deadlock-detection")]

verisync::process_test_support!();

mod common;

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{with_watchdog, PATIENCE};
use verisync::deadlock::{self, BlockedThread};
use verisync::{Event, JoinableQueue, ProcessPool, TaskError, ThreadPool};

/// The timeout of the timed forms: far longer than the test needs to see
/// them (they are released before it passes).
const LONG: Duration = Duration::from_secs(15);

/// How long the test polls `blocked_threads()` for every expected thread
/// before it fails with what it saw (under [`PATIENCE`], so the failure is
/// this explanation, not the watchdog's).
const LOOK_FOR: Duration = Duration::from_secs(12);

/// What a thread says before it blocks: its name, the operation it is
/// about to block in, and the line of that call in this file.
type Expected = (String, &'static str, u32);

/// Spawns a thread named `name` that first tells, through `at`, the line
/// of the call it is about to block in (`operation`), then makes that call.
fn spawn_blocker(
    said: &mpsc::Sender<Expected>,
    name: &'static str,
    operation: &'static str,
    body: impl FnOnce(&dyn Fn(u32)) + Send + 'static,
) -> JoinHandle<()> {
    let said = said.clone();
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let at = |line: u32| said.send((name.to_owned(), operation, line)).unwrap();
            body(&at);
        })
        .unwrap()
}

/// The blocked threads whose names start with `prefix`, by name.
fn blocked_with_prefix(prefix: &str) -> HashMap<String, BlockedThread> {
    deadlock::blocked_threads()
        .into_iter()
        .filter_map(|blocked| {
            let name = blocked.thread.name.clone()?;
            name.starts_with(prefix).then_some((name, blocked))
        })
        .collect()
}

/// Polls until every expected thread is listed, then checks each one's
/// operation and call site; fails with the dump if some never show up.
fn check_listed(prefix: &str, expected: &[Expected]) {
    let started = Instant::now();
    let dump = loop {
        let dump = blocked_with_prefix(prefix);
        if expected.iter().all(|(name, _, _)| dump.contains_key(name)) {
            break dump;
        }
        if started.elapsed() > LOOK_FOR {
            let missing: Vec<&str> = expected
                .iter()
                .filter(|(name, _, _)| !dump.contains_key(name))
                .map(|(name, _, _)| name.as_str())
                .collect();
            let listed: Vec<String> = dump.values().map(ToString::to_string).collect();
            panic!(
                "after {LOOK_FOR:?}, blocked_threads() does not list {missing:?}; it lists \
                 {listed:#?}"
            );
        }
        thread::sleep(Duration::from_millis(2));
    };
    for (name, operation, line) in expected {
        let blocked = &dump[name];
        assert_eq!(blocked.operation, *operation, "{blocked}");
        assert_eq!(
            (blocked.waiting_at.file(), blocked.waiting_at.line()),
            (file!(), *line),
            "the user's call site: {blocked}"
        );
        assert!(blocked.lock.is_none(), "{blocked}");
        assert!(
            blocked
                .to_string()
                .contains(&format!("in {operation} (at {}:{line})", file!())),
            "{blocked}"
        );
    }
}

/// Waits until none of the threads named with `prefix` is listed.
fn check_none_listed(prefix: &str) {
    let left = blocked_with_prefix(prefix);
    assert!(left.is_empty(), "still listed: {:?}", left.keys());
}

#[test]
fn a_join_whose_consumer_died_and_every_queue_wait_are_explained() {
    with_watchdog(PATIENCE, || {
        // A consumer takes the only item and dies before marking it done:
        // `join` can never return on its own.
        let orders = Arc::new(JoinableQueue::<u32>::new());
        orders.put(1).unwrap();
        let consumer = {
            let orders = Arc::clone(&orders);
            thread::spawn(move || {
                let _order = orders.get().unwrap();
                panic!("the consumer died before task_done");
            })
        };
        assert!(consumer.join().is_err());
        assert_eq!(orders.unfinished_tasks(), 1);

        let empty = Arc::new(JoinableQueue::<u32>::new());
        let full = Arc::new(JoinableQueue::<u32>::bounded(1));
        full.put(0).unwrap();
        let (said, hear) = mpsc::channel::<Expected>();
        let threads = vec![
            spawn_blocker(&said, "qdump-join", "JoinableQueue::join", {
                let orders = Arc::clone(&orders);
                move |at| {
                    at(line!() + 1);
                    orders.join();
                }
            }),
            spawn_blocker(
                &said,
                "qdump-join_timeout",
                "JoinableQueue::join_timeout",
                {
                    let orders = Arc::clone(&orders);
                    move |at| {
                        at(line!() + 1);
                        let all_done = orders.join_timeout(LONG);
                        assert!(all_done, "released by the test's task_done");
                    }
                },
            ),
            spawn_blocker(&said, "qdump-put", "JoinableQueue::put", {
                let full = Arc::clone(&full);
                move |at| {
                    at(line!() + 1);
                    let _ = full.put(1);
                }
            }),
            spawn_blocker(&said, "qdump-put_timeout", "JoinableQueue::put_timeout", {
                let full = Arc::clone(&full);
                move |at| {
                    at(line!() + 1);
                    let _ = full.put_timeout(2, LONG);
                }
            }),
            spawn_blocker(&said, "qdump-get", "JoinableQueue::get", {
                let empty = Arc::clone(&empty);
                move |at| {
                    at(line!() + 1);
                    let _ = empty.get();
                }
            }),
            spawn_blocker(&said, "qdump-get_timeout", "JoinableQueue::get_timeout", {
                let empty = Arc::clone(&empty);
                move |at| {
                    at(line!() + 1);
                    let _ = empty.get_timeout(LONG);
                }
            }),
            spawn_blocker(&said, "qdump-get_task", "JoinableQueue::get_task", {
                let empty = Arc::clone(&empty);
                move |at| {
                    at(line!() + 1);
                    let _ = empty.get_task().map(|task| task.into_inner());
                }
            }),
            spawn_blocker(&said, "qdump-iter", "JoinableQueue::iter", {
                let empty = Arc::clone(&empty);
                move |at| {
                    at(line!() + 1);
                    for _item in empty.iter() {}
                }
            }),
        ];
        let expected: Vec<Expected> = hear.iter().take(threads.len()).collect();

        check_listed("qdump-", &expected);
        let joiner = &blocked_with_prefix("qdump-")["qdump-join"];
        eprintln!("{joiner}");
        assert!(deadlock::detect()
            .iter()
            .all(|found| found.threads.iter().all(|member| !member
                .thread
                .name
                .as_deref()
                .unwrap_or("")
                .starts_with("qdump-"))));

        // Release everyone: the dead consumer's task_done, and shutdowns.
        orders.task_done().unwrap();
        full.shutdown();
        empty.shutdown();
        for thread in threads {
            thread.join().unwrap();
        }
        check_none_listed("qdump-");
    });
}

/// The LIFO and priority orders sleep on their own lock (a condition
/// variable's protocol, not the wait lists of the FIFO orders): their
/// blocked puts and gets are listed all the same, with the user's call
/// site and no lock (their internal mutex is not the user's), and leave
/// the list when a shutdown releases them.
#[test]
fn lifo_and_priority_waits_are_explained() {
    with_watchdog(PATIENCE, || {
        let empty_lifo = Arc::new(JoinableQueue::<u32>::lifo());
        let full_lifo = Arc::new(JoinableQueue::<u32>::lifo_bounded(1));
        let empty_priority = Arc::new(JoinableQueue::<u32>::priority());
        let full_priority = Arc::new(JoinableQueue::<u32>::priority_bounded(1));
        full_lifo.put(0).unwrap();
        full_priority.put(0).unwrap();
        let (said, hear) = mpsc::channel::<Expected>();
        let threads = vec![
            spawn_blocker(&said, "ldump-lifo-get", "JoinableQueue::get", {
                let empty = Arc::clone(&empty_lifo);
                move |at| {
                    at(line!() + 1);
                    assert!(empty.get().is_err(), "released by the shutdown");
                }
            }),
            spawn_blocker(&said, "ldump-lifo-put", "JoinableQueue::put_timeout", {
                let full = Arc::clone(&full_lifo);
                move |at| {
                    at(line!() + 1);
                    let refused = full.put_timeout(1, LONG);
                    assert_eq!(refused, Err(verisync::PutError::ShutDown(1)));
                }
            }),
            spawn_blocker(&said, "ldump-priority-get", "JoinableQueue::get_timeout", {
                let empty = Arc::clone(&empty_priority);
                move |at| {
                    at(line!() + 1);
                    let got = empty.get_timeout(LONG);
                    assert_eq!(got, Err(verisync::GetError::ShutDown));
                }
            }),
            spawn_blocker(&said, "ldump-priority-put", "JoinableQueue::put", {
                let full = Arc::clone(&full_priority);
                move |at| {
                    at(line!() + 1);
                    assert!(full.put(2).is_err(), "released by the shutdown");
                }
            }),
        ];
        let expected: Vec<Expected> = hear.iter().take(threads.len()).collect();

        check_listed("ldump-", &expected);

        empty_lifo.shutdown();
        full_lifo.shutdown();
        empty_priority.shutdown();
        full_priority.shutdown();
        for thread in threads {
            thread.join().unwrap();
        }
        check_none_listed("ldump-");
    });
}

#[test]
fn thread_pool_task_handle_waits_are_explained_and_idle_workers_are_not() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::builder()
            .workers(1)
            .thread_name("tdump-worker")
            .build();
        let gate = Arc::new(Event::new());
        let running = Arc::new({
            let gate = Arc::clone(&gate);
            pool.submit(move || gate.wait())
        });
        let queued = pool.submit(|| 7);
        let (said, hear) = mpsc::channel::<Expected>();
        let threads = vec![
            spawn_blocker(&said, "tdump-join", "TaskHandle::join", move |at| {
                at(line!() + 1);
                assert_eq!(queued.join(), Ok(7));
            }),
            spawn_blocker(&said, "tdump-wait", "TaskHandle::wait", {
                let running = Arc::clone(&running);
                move |at| {
                    at(line!() + 1);
                    running.wait();
                }
            }),
            spawn_blocker(&said, "tdump-wait_timeout", "TaskHandle::wait_timeout", {
                let running = Arc::clone(&running);
                move |at| {
                    at(line!() + 1);
                    let finished = running.wait_timeout(LONG);
                    assert!(finished);
                }
            }),
            spawn_blocker(&said, "tdump-wait_until", "TaskHandle::wait_until", {
                let running = Arc::clone(&running);
                move |at| {
                    at(line!() + 1);
                    let finished = running.wait_until(Instant::now() + LONG);
                    assert!(finished);
                }
            }),
        ];
        let expected: Vec<Expected> = hear.iter().take(threads.len()).collect();
        check_listed("tdump-", &expected);
        // The worker is inside the user's task, blocked in Event::wait: that
        // is listed (it is the user's wait). The waiters above do not wait
        // for the worker to start the task, so it may get there later.
        let started = Instant::now();
        let mut workers = blocked_with_prefix("tdump-worker");
        while workers.is_empty() && started.elapsed() < LOOK_FOR {
            thread::sleep(Duration::from_millis(2));
            workers = blocked_with_prefix("tdump-worker");
        }
        assert_eq!(workers.len(), 1, "{:?}", workers.keys());
        assert!(workers
            .values()
            .all(|worker| worker.operation == "Event::wait"));

        gate.set();
        for thread in threads {
            thread.join().unwrap();
        }
        check_none_listed("tdump-");
        // Idle now, the worker waits for a job in the pool's own queue:
        // the pool's business, not listed.
        let idle_since = Instant::now();
        while idle_since.elapsed() < Duration::from_millis(200) {
            check_none_listed("tdump-worker");
            thread::sleep(Duration::from_millis(5));
        }
    });
}

fn nap(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn process_pool_task_handle_waits_are_explained() {
    with_watchdog(PATIENCE, || {
        let pool = ProcessPool::new(1).unwrap();
        // Ends only when the pool is terminated.
        let running = Arc::new(pool.submit(nap, 600_000));
        let queued = pool.submit(nap, 1);
        let (said, hear) = mpsc::channel::<Expected>();
        let threads = vec![
            spawn_blocker(&said, "pdump-join", "TaskHandle::join", move |at| {
                at(line!() + 1);
                let result = queued.join();
                assert_eq!(result, Err(TaskError::Cancelled));
            }),
            spawn_blocker(&said, "pdump-wait", "TaskHandle::wait", {
                let running = Arc::clone(&running);
                move |at| {
                    at(line!() + 1);
                    running.wait();
                }
            }),
            spawn_blocker(&said, "pdump-wait_timeout", "TaskHandle::wait_timeout", {
                let running = Arc::clone(&running);
                move |at| {
                    at(line!() + 1);
                    let finished = running.wait_timeout(LONG);
                    assert!(finished, "terminate resolves it");
                }
            }),
        ];
        let expected: Vec<Expected> = hear.iter().take(threads.len()).collect();
        check_listed("pdump-", &expected);
        // The pool's own threads (its writer waiting for work, its watcher
        // waiting for a deadline) are not listed: every listed wait is at a
        // call site of this file.
        let internal: Vec<String> = deadlock::blocked_threads()
            .iter()
            .filter(|blocked| blocked.waiting_at.file() != file!())
            .map(ToString::to_string)
            .collect();
        assert!(internal.is_empty(), "{internal:#?}");
        pool.terminate();
        for thread in threads {
            thread.join().unwrap();
        }
        check_none_listed("pdump-");
    });
}
