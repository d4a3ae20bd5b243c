//! `JoinableQueue` on bad input and at the edges (issue 3, "Bad input"):
//!
//! - a capacity of 0 panics, saying why (there is no rendezvous mode);
//! - `task_done` called too often is an error that changes nothing;
//! - a put after shutdown hands the item back;
//! - `Duration::MAX` timeouts wait until satisfied instead of panicking;
//! - blocked putters, getters and joiners wake on `shutdown` /
//!   `shutdown_now`;
//! - a consumer that panics while holding a `get_task` guard still marks
//!   its task done, so `join` returns;
//! - an item whose `Ord` panics inside a priority put or get: the panic
//!   reaches the caller, and every item stays queued and counted.
//!
//! Tests that block run under a watchdog, so a lost wake-up fails instead of
//! hanging. Where a test sleeps briefly to let a thread reach its blocking
//! call, its assertions hold whether or not the thread got there in time.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use verisync::{GetError, JoinableQueue, PutError, ShutDown, TaskDoneError};

mod common;
use common::with_watchdog;

/// Far above anything these tests wait for; only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

/// Long enough for a spawned thread to reach its blocking call on an idle
/// machine (it may not on a busy one; the assertions do not depend on it).
const SETTLE: Duration = Duration::from_millis(50);

fn join<T>(handle: thread::JoinHandle<T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => resume_unwind(panic),
    }
}

// --- capacity 0 ------------------------------------------------------------

#[test]
#[should_panic(
    expected = "bounded to 0 items could never accept one (there is no rendezvous mode)"
)]
fn bounded_zero_panics_saying_why() {
    let _ = JoinableQueue::<u8>::bounded(0);
}

#[test]
#[should_panic(
    expected = "bounded to 0 items could never accept one (there is no rendezvous mode)"
)]
fn lifo_bounded_zero_panics_saying_why() {
    let _ = JoinableQueue::<u8>::lifo_bounded(0);
}

#[test]
#[should_panic(
    expected = "bounded to 0 items could never accept one (there is no rendezvous mode)"
)]
fn priority_bounded_zero_panics_saying_why() {
    let _ = JoinableQueue::<u8>::priority_bounded(0);
}

#[test]
fn capacity_zero_panic_points_at_the_caller_and_says_what_to_do() {
    let panic = catch_unwind(|| JoinableQueue::<u8>::bounded(0)).unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .expect("a text panic message");
    assert!(
        message.contains("use a capacity of at least 1"),
        "{message}"
    );
    // The smallest legal capacity works.
    let queue = JoinableQueue::bounded(1);
    queue.put(1).unwrap();
    assert_eq!(queue.try_put(2), Err(PutError::Full(2)));
}

// --- task_done too often -----------------------------------------------------

#[test]
fn task_done_too_often_is_an_error_that_changes_nothing() {
    for queue in [
        JoinableQueue::new(),
        JoinableQueue::bounded(2),
        JoinableQueue::lifo(),
        JoinableQueue::priority_bounded(2),
    ] {
        assert_eq!(queue.task_done(), Err(TaskDoneError));
        assert_eq!(queue.unfinished_tasks(), 0);

        queue.put("a").unwrap();
        queue.put("b").unwrap();
        let mut got = [queue.get().unwrap(), queue.get().unwrap()];
        got.sort_unstable();
        assert_eq!(got, ["a", "b"]);
        assert_eq!(queue.task_done(), Ok(()));
        assert_eq!(queue.task_done(), Ok(()));
        assert_eq!(queue.unfinished_tasks(), 0);
        assert_eq!(queue.task_done(), Err(TaskDoneError));
        assert_eq!(queue.task_done(), Err(TaskDoneError));
        assert_eq!(
            queue.unfinished_tasks(),
            0,
            "a refused task_done changes nothing"
        );

        // The queue still works and counts from zero.
        queue.put("c").unwrap();
        assert_eq!(queue.unfinished_tasks(), 1);
        assert!(!queue.join_timeout(Duration::from_millis(1)));
        assert_eq!(queue.get(), Ok("c"));
        assert_eq!(queue.task_done(), Ok(()));
        assert!(queue.join_timeout(Duration::ZERO));
    }
}

#[test]
fn task_done_error_displays_a_sentence_a_user_can_act_on() {
    let text = TaskDoneError.to_string();
    assert!(text.contains("task_done"), "{text}");
    assert!(text.contains("more times than items were put"), "{text}");
    assert!(
        text.contains("get_task"),
        "{text}: should say how to avoid it"
    );
    assert!(
        text.split_whitespace().count() >= 8,
        "{text}: not a sentence"
    );
    let error: &dyn std::error::Error = &TaskDoneError;
    assert_eq!(error.to_string(), text);
}

// --- put after shutdown --------------------------------------------------------

#[test]
fn put_after_shutdown_hands_the_item_back() {
    let queues: Vec<JoinableQueue<String>> = vec![
        JoinableQueue::new(),
        JoinableQueue::bounded(1),
        JoinableQueue::lifo(),
        JoinableQueue::lifo_bounded(1),
        JoinableQueue::priority(),
        JoinableQueue::priority_bounded(1),
    ];
    for queue in queues {
        queue.put("queued".to_string()).unwrap();
        queue.shutdown();
        // Full and shut down: shut down wins, and the item comes back.
        assert_eq!(
            queue.put("late".to_string()),
            Err(ShutDown("late".to_string()))
        );
        let refused = queue.try_put("try".to_string()).unwrap_err();
        assert!(matches!(&refused, PutError::ShutDown(item) if item == "try"));
        assert_eq!(refused.into_inner(), "try");
        assert_eq!(
            queue.put_timeout("timed".to_string(), Duration::from_millis(1)),
            Err(PutError::ShutDown("timed".to_string()))
        );
        assert_eq!(
            queue.put_timeout("zero".to_string(), Duration::ZERO),
            Err(PutError::ShutDown("zero".to_string()))
        );
        assert_eq!(
            queue.put_timeout("forever".to_string(), Duration::MAX),
            Err(PutError::ShutDown("forever".to_string()))
        );
        // Refused puts are not counted; the queued item still drains.
        assert_eq!(queue.unfinished_tasks(), 1);
        assert_eq!(queue.get(), Ok("queued".to_string()));
        assert_eq!(queue.get(), Err(ShutDown(())));
        assert_eq!(queue.try_get(), Err(GetError::ShutDown));
        assert_eq!(queue.get_timeout(Duration::MAX), Err(GetError::ShutDown));
        queue.task_done().unwrap();
        queue.join();
    }
}

#[test]
fn put_after_shutdown_now_hands_the_item_back() {
    let queue = JoinableQueue::bounded(2);
    queue.put(1).unwrap();
    assert_eq!(queue.shutdown_now(), vec![1]);
    assert_eq!(queue.put(2), Err(ShutDown(2)));
    assert_eq!(queue.try_put(3), Err(PutError::ShutDown(3)));
    assert_eq!(queue.shutdown_now(), Vec::<i32>::new());
    assert_eq!(queue.unfinished_tasks(), 0);
}

#[test]
fn refusals_display_sentences_and_carry_the_item() {
    let shut = ShutDown(5);
    assert!(shut.to_string().contains("shut down"), "{shut}");
    assert_eq!(format!("{shut:?}"), "ShutDown(..)");
    assert_eq!(shut.into_inner(), 5);
    let full = PutError::Full(6);
    // Debug names the refusal but not the item (T need not be Debug).
    assert_eq!(format!("{full:?}"), "Full(..)");
    assert_eq!(format!("{:?}", PutError::ShutDown(8)), "ShutDown(..)");
    assert!(full.to_string().contains("full"), "{full}");
    assert!(full.to_string().contains("handed back"), "{full}");
    assert_eq!(full.into_inner(), 6);
    let refused = PutError::ShutDown(7);
    assert!(refused.to_string().contains("shut down"), "{refused}");
    assert_eq!(refused.into_inner(), 7);
    assert!(GetError::Empty.to_string().contains("empty"));
    assert!(GetError::ShutDown.to_string().contains("shut down"));
}

// --- Duration::MAX waits until satisfied ----------------------------------------

#[test]
fn get_timeout_max_waits_for_a_put() {
    with_watchdog(PATIENCE, || {
        for queue in [
            JoinableQueue::new(),
            JoinableQueue::bounded(1),
            JoinableQueue::priority(),
        ] {
            let queue = Arc::new(queue);
            let getter = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.get_timeout(Duration::MAX))
            };
            thread::sleep(SETTLE);
            queue.put(42).unwrap();
            assert_eq!(join(getter), Ok(42));
        }
    });
}

#[test]
fn put_timeout_max_waits_for_room() {
    with_watchdog(PATIENCE, || {
        for queue in [
            JoinableQueue::bounded(1),
            JoinableQueue::lifo_bounded(1),
            JoinableQueue::priority_bounded(1),
        ] {
            let queue = Arc::new(queue);
            queue.put(1).unwrap();
            let putter = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.put_timeout(2, Duration::MAX))
            };
            thread::sleep(SETTLE);
            assert_eq!(queue.get(), Ok(1));
            assert_eq!(join(putter), Ok(()));
            assert_eq!(queue.get(), Ok(2));
        }
    });
}

#[test]
fn join_timeout_max_waits_for_the_last_task_done() {
    with_watchdog(PATIENCE, || {
        let queue = Arc::new(JoinableQueue::new());
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let joiner = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.join_timeout(Duration::MAX))
        };
        thread::sleep(SETTLE);
        queue.get().unwrap();
        queue.task_done().unwrap();
        queue.get().unwrap();
        queue.task_done().unwrap();
        assert!(
            join(joiner),
            "join_timeout(MAX) returns true: every task done"
        );
    });
}

#[test]
fn max_timeouts_return_at_once_when_already_satisfied() {
    with_watchdog(PATIENCE, || {
        let queue = JoinableQueue::bounded(1);
        assert_eq!(queue.put_timeout(1, Duration::MAX), Ok(()));
        assert_eq!(queue.get_timeout(Duration::MAX), Ok(1));
        queue.task_done().unwrap();
        assert!(queue.join_timeout(Duration::MAX));
    });
}

// --- blocked parties wake on shutdown -------------------------------------------

/// Blocks `getters` threads in `get`/`get_timeout(MAX)`/`get_task`, then calls
/// `stop` and checks that each one wakes with "shut down".
fn getters_wake_on(stop: fn(&JoinableQueue<u32>)) {
    with_watchdog(PATIENCE, move || {
        for queue in [
            JoinableQueue::new(),
            JoinableQueue::bounded(2),
            JoinableQueue::lifo(),
        ] {
            let queue = Arc::new(queue);
            let getters: Vec<_> = (0..3)
                .map(|which| {
                    let queue = Arc::clone(&queue);
                    thread::spawn(move || match which {
                        0 => queue.get().is_err(),
                        1 => queue.get_timeout(Duration::MAX) == Err(GetError::ShutDown),
                        _ => queue.get_task().is_err(),
                    })
                })
                .collect();
            thread::sleep(SETTLE);
            stop(&queue);
            for getter in getters {
                assert!(join(getter), "a blocked getter woke with ShutDown");
            }
        }
    });
}

#[test]
fn blocked_getters_wake_on_shutdown() {
    getters_wake_on(JoinableQueue::shutdown);
}

#[test]
fn blocked_getters_wake_on_shutdown_now() {
    getters_wake_on(|queue| {
        assert!(queue.shutdown_now().is_empty());
    });
}

/// Blocks putters on a full queue, then calls `stop`: each wakes and gets
/// its own item back.
fn putters_wake_on(now: bool) {
    with_watchdog(PATIENCE, move || {
        for queue in [
            JoinableQueue::bounded(1),
            JoinableQueue::lifo_bounded(1),
            JoinableQueue::priority_bounded(1),
        ] {
            let queue = Arc::new(queue);
            queue.put(0).unwrap();
            let putters: Vec<_> = (1..=3)
                .map(|item| {
                    let queue = Arc::clone(&queue);
                    thread::spawn(move || {
                        if item == 1 {
                            queue.put(item).map_err(ShutDown::into_inner)
                        } else {
                            queue
                                .put_timeout(item, Duration::MAX)
                                .map_err(|error| match error {
                                    PutError::ShutDown(item) => item,
                                    PutError::Full(item) => panic!("Full({item}) with no timeout"),
                                })
                        }
                    })
                })
                .collect();
            thread::sleep(SETTLE);
            let left = if now {
                queue.shutdown_now()
            } else {
                queue.shutdown();
                Vec::new()
            };
            for (putter, item) in putters.into_iter().zip(1..) {
                assert_eq!(join(putter), Err(item), "the putter got its item back");
            }
            // Nothing but the first item was ever queued.
            let drained: Vec<u32> = queue.iter().collect();
            let mut all = [left, drained].concat();
            all.sort_unstable();
            assert_eq!(all, [0]);
        }
    });
}

#[test]
fn blocked_putters_wake_on_shutdown() {
    putters_wake_on(false);
}

#[test]
fn blocked_putters_wake_on_shutdown_now() {
    putters_wake_on(true);
}

#[test]
fn blocked_joiners_wake_when_shutdown_now_finishes_every_task() {
    with_watchdog(PATIENCE, || {
        let queue = Arc::new(JoinableQueue::bounded(4));
        for item in 0..3 {
            queue.put(item).unwrap();
        }
        let joiners: Vec<_> = (0..2)
            .map(|which| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    if which == 0 {
                        queue.join();
                        true
                    } else {
                        queue.join_timeout(Duration::MAX)
                    }
                })
            })
            .collect();
        thread::sleep(SETTLE);
        assert_eq!(queue.shutdown_now(), vec![0, 1, 2]);
        assert_eq!(queue.unfinished_tasks(), 0);
        for joiner in joiners {
            assert!(join(joiner));
        }
    });
}

#[test]
fn graceful_shutdown_does_not_release_joiners_early() {
    // `shutdown` refuses puts but the queued items still have to be done.
    let queue = JoinableQueue::new();
    queue.put(1).unwrap();
    queue.shutdown();
    assert!(!queue.join_timeout(Duration::from_millis(5)));
    assert_eq!(queue.get(), Ok(1));
    queue.task_done().unwrap();
    assert!(queue.join_timeout(Duration::ZERO));
}

// --- a panicking consumer cannot leave join hanging -------------------------------

#[test]
fn panic_while_holding_a_task_guard_marks_it_done() {
    let queue = JoinableQueue::new();
    queue.put("poison").unwrap();
    queue.put("fine").unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let task = queue.get_task().unwrap();
        if *task == "poison" {
            panic!("the consumer choked on {}", *task);
        }
    }));
    assert!(outcome.is_err());
    assert_eq!(
        queue.unfinished_tasks(),
        1,
        "the panicking consumer's task is done"
    );
    let task = queue.get_task().unwrap();
    assert_eq!(*task, "fine");
    drop(task);
    assert_eq!(queue.unfinished_tasks(), 0);
    assert!(queue.join_timeout(Duration::ZERO));
}

#[test]
fn a_consumer_thread_that_panics_does_not_leave_join_hanging() {
    with_watchdog(PATIENCE, || {
        let queue = Arc::new(JoinableQueue::bounded(2));
        let consumer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                for _ in 0..3 {
                    let task = queue.get_task().unwrap();
                    if *task == 2 {
                        panic!("dish {} was burnt", *task);
                    }
                }
            })
        };
        let joiner = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.join())
        };
        for dish in 0..3 {
            queue.put(dish).unwrap();
        }
        // The consumer dies on its third dish, holding the guard.
        assert!(consumer.join().is_err(), "the consumer panicked");
        queue.join();
        join(joiner);
        assert_eq!(queue.unfinished_tasks(), 0);
    });
}

// --- a panicking `Ord` in a priority queue ----------------------------------

/// A priority item whose comparisons panic while its `touchy` flag is set
/// (each test has its own flag, so tests running in parallel don't meet).
struct Touchy {
    key: u32,
    touchy: Arc<std::sync::atomic::AtomicBool>,
}

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Touchy {}
impl PartialOrd for Touchy {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Touchy {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        assert!(
            !self.touchy.load(std::sync::atomic::Ordering::Relaxed),
            "Touchy items refuse to be compared"
        );
        self.key.cmp(&other.key)
    }
}

#[test]
fn a_panicking_ord_in_put_or_get_loses_no_item_and_leaves_join_working() {
    with_watchdog(PATIENCE, || {
        let touchy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let item = |key| Touchy {
            key,
            touchy: Arc::clone(&touchy),
        };
        let queue = JoinableQueue::priority_bounded(16);
        for key in [5, 3, 8, 1, 9, 2] {
            queue.put(item(key)).unwrap();
        }

        touchy.store(true, std::sync::atomic::Ordering::Relaxed);
        let put = catch_unwind(AssertUnwindSafe(|| queue.put(item(4))));
        assert!(put.is_err(), "the put's comparison panicked");
        let get = catch_unwind(AssertUnwindSafe(|| queue.get()));
        assert!(get.is_err(), "the get's comparison panicked");
        touchy.store(false, std::sync::atomic::Ordering::Relaxed);

        // Both items stayed queued and counted: the put's and the one the
        // get had taken out.
        assert_eq!(queue.len(), 7);
        assert_eq!(queue.unfinished_tasks(), 7);
        let mut keys: Vec<u32> = (0..7)
            .map(|_| {
                let task = queue.get_task().unwrap();
                task.key
            })
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, [1, 2, 3, 4, 5, 8, 9]);
        assert_eq!(queue.try_get().err(), Some(GetError::Empty));
        queue.join();
        assert_eq!(queue.unfinished_tasks(), 0);
    });
}

// --- hostile items: `Ord` and `Drop` that panic (issue 12, defects 4 and 5) --

/// A priority item that counts its drops, and whose comparisons panic
/// while `panics_left` is above zero (each panic spends one).
#[derive(Debug)]
struct Hostile {
    key: u32,
    drops: Arc<std::sync::atomic::AtomicUsize>,
    panics_left: Arc<std::sync::atomic::AtomicUsize>,
    /// Whether dropping this item panics (after counting the drop).
    drop_panics: bool,
}

impl Hostile {
    fn maker(
        drops: &Arc<std::sync::atomic::AtomicUsize>,
        panics_left: &Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl Fn(u32) -> Hostile {
        let (drops, panics_left) = (Arc::clone(drops), Arc::clone(panics_left));
        move |key| Hostile {
            key,
            drops: Arc::clone(&drops),
            panics_left: Arc::clone(&panics_left),
            drop_panics: false,
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.drop_panics && !thread::panicking() {
            panic!("Hostile item {} panics in drop", self.key);
        }
    }
}
impl PartialEq for Hostile {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Hostile {}
impl PartialOrd for Hostile {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Hostile {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let spent = self.panics_left.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |left| left.checked_sub(1),
        );
        assert!(spent.is_err(), "Hostile items refuse to be compared");
        self.key.cmp(&other.key)
    }
}

/// `shutdown_now` on a full bounded priority queue whose items' `Ord`
/// panics while they are put in order: the panic reaches the caller, but
/// the queue is shut down and empty, the blocked putter and joiner wake,
/// and the items that could not be handed back are counted done (and
/// dropped, once each).
#[test]
fn shutdown_now_with_a_panicking_ord_shuts_down_wakes_everyone_and_counts_done() {
    with_watchdog(PATIENCE, || {
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let panics_left = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let item = Hostile::maker(&drops, &panics_left);
        let queue = Arc::new(JoinableQueue::priority_bounded(3));
        for key in [5, 3, 8] {
            queue.put(item(key)).unwrap();
        }
        let putter = {
            let (queue, item) = (Arc::clone(&queue), Hostile::maker(&drops, &panics_left));
            thread::spawn(move || queue.put(item(1)).map_err(|refused| refused.0.key))
        };
        let joiner = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.join())
        };
        thread::sleep(SETTLE);

        panics_left.store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
        let now = catch_unwind(AssertUnwindSafe(|| queue.shutdown_now()));
        panics_left.store(0, std::sync::atomic::Ordering::SeqCst);
        let handed_back = now.expect("a panicking Ord in the final sort is caught");
        assert_eq!(
            handed_back.iter().map(|item| item.key).collect::<Vec<_>>(),
            [5, 3, 8],
            "no item lost: they come back in insertion order"
        );
        drop(handed_back);

        assert!(queue.is_shut_down());
        assert_eq!(queue.len(), 0, "the length mirror is stale");
        assert_eq!(queue.try_get(), Err(GetError::ShutDown));
        // The putter was either blocked (and woken) or had not reached put.
        assert_eq!(join(putter), Err(1), "the blocked putter was refused");
        join(joiner);
        assert_eq!(
            queue.unfinished_tasks(),
            0,
            "the handed-back items count as done"
        );
        // The three queued items and the refused one, each dropped once.
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert_eq!(queue.task_done(), Err(TaskDoneError));
    });
}

/// An item whose `Drop` panics while a queue is dropped: every other item
/// is still dropped, then the panic goes on (issue 12: the ring and the
/// list used to leak the rest). For every order, and for the list with
/// items across several blocks.
#[test]
fn dropping_a_queue_drops_every_item_even_if_one_drop_panics() {
    type Build = fn() -> JoinableQueue<Hostile>;
    let orders: [(&str, Build, u32); 5] = [
        ("fifo bounded", || JoinableQueue::bounded(8), 8),
        ("fifo", JoinableQueue::new, 100),
        ("lifo", JoinableQueue::lifo, 8),
        ("priority", JoinableQueue::priority, 8),
        ("priority bounded", || JoinableQueue::priority_bounded(8), 8),
    ];
    for (name, build, count) in orders {
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let panics_left = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let item = Hostile::maker(&drops, &panics_left);
        let queue = build();
        // Two items far apart panic: the first panic must not stop the
        // rest, and the second (caught while the first is pending) must
        // not abort.
        for key in 0..count {
            let mut next = item(key);
            next.drop_panics = key == 1 || key == count - 2;
            queue.put(next).unwrap();
        }
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(queue)));
        assert!(
            dropped.is_err(),
            "{name}: the item's panic reached the caller"
        );
        let message = dropped.unwrap_err();
        assert!(
            message
                .downcast_ref::<String>()
                .is_some_and(|text| text.contains("panics in drop")),
            "{name}: a different panic"
        );
        assert_eq!(
            drops.load(std::sync::atomic::Ordering::SeqCst),
            count as usize,
            "{name}: items leaked"
        );
    }
}

// --- taking the item out of a task guard (issue 13, item 8) -----------------

/// `into_parts` moves the item out and keeps the task open until the
/// `PendingTask` drops — also when that happens while unwinding — while
/// `into_inner` marks it done at once.
#[test]
fn a_task_guard_hands_its_item_out_and_still_marks_it_done_once() {
    with_watchdog(PATIENCE, || {
        let queue = Arc::new(JoinableQueue::new());
        queue.put(String::from("kept open")).unwrap();
        queue.put(String::from("done at once")).unwrap();
        queue.put(String::from("dies with its worker")).unwrap();

        let (item, pending) = queue.get_task().unwrap().into_parts();
        assert_eq!(item, "kept open");
        drop(item);
        assert_eq!(
            queue.unfinished_tasks(),
            3,
            "moving the item out is not done"
        );
        let joiner = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.join())
        };

        assert_eq!(queue.get_task().unwrap().into_inner(), "done at once");
        assert_eq!(queue.unfinished_tasks(), 2);

        let worker = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let (_item, _pending) = queue.get_task().unwrap().into_parts();
                panic!("the worker dies holding its pending task");
            })
        };
        assert!(worker.join().is_err());
        assert_eq!(queue.unfinished_tasks(), 1, "unwinding marked it done");
        assert!(
            !queue.join_timeout(Duration::from_millis(1)),
            "the pending task holds join back"
        );

        drop(pending);
        join(joiner);
        assert_eq!(queue.unfinished_tasks(), 0);
        assert_eq!(queue.task_done(), Err(TaskDoneError), "each counted once");
    });
}

/// A guarded item also marked done by hand is counted twice. When that
/// drives the count below zero the guard notices: debug builds panic
/// saying why; release builds leave the count at zero, as a refused
/// `task_done` does.
#[test]
fn a_guarded_item_also_marked_by_hand_is_reported_in_debug_builds() {
    let queue = JoinableQueue::new();
    queue.put(1).unwrap();
    let task = queue.get_task().unwrap();
    queue.task_done().unwrap(); // the mistake: the guard will mark it too
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(task)));
    if cfg!(debug_assertions) {
        let panic = dropped.expect_err("the double count went unnoticed");
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(
            message.contains("marked done twice") && message.contains("do not also call task_done"),
            "unhelpful message: {message:?}"
        );
    } else {
        assert!(dropped.is_ok());
    }
    assert_eq!(queue.unfinished_tasks(), 0);
    assert_eq!(queue.task_done(), Err(TaskDoneError));
}

/// A guarded item whose `Drop` panics: the panic reaches whoever dropped
/// the guard, and the task is still marked done (after the item's drop).
#[test]
fn a_task_guard_whose_item_panics_in_drop_still_marks_it_done() {
    let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let panics_left = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let item = Hostile::maker(&drops, &panics_left);
    let queue = JoinableQueue::new();
    let mut hostile = item(1);
    hostile.drop_panics = true;
    queue.put(hostile).unwrap();
    let task = queue.get_task().unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| drop(task))).is_err());
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(queue.unfinished_tasks(), 0);
    queue.join();
}

/// An item whose `Drop` always panics — also while the thread is already
/// unwinding, as hostile code may — with a payload of its own kind, whose
/// `Drop` panics again when `payload_panics` says so.
struct AlwaysPanicsOnDrop {
    drops: Arc<std::sync::atomic::AtomicUsize>,
    payload_panics: bool,
}

/// A panic payload whose own `Drop` panics.
struct PanickingPayload;

impl Drop for PanickingPayload {
    fn drop(&mut self) {
        panic!("a panic payload's own drop panics");
    }
}

impl Drop for AlwaysPanicsOnDrop {
    fn drop(&mut self) {
        self.drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.payload_panics {
            std::panic::panic_any(PanickingPayload);
        }
        panic!("an item that always panics in drop");
    }
}

// Orderable, so that the priority orders hold it too (all items are equal).
impl PartialEq for AlwaysPanicsOnDrop {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for AlwaysPanicsOnDrop {}
impl PartialOrd for AlwaysPanicsOnDrop {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for AlwaysPanicsOnDrop {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// Every item of a dropped queue panics in its `Drop`, unconditionally (not
/// only when the thread is not yet unwinding), and in a second round every
/// panic payload panics when dropped too. For every order: each item is
/// dropped once, one panic reaches the caller, and the process does not
/// abort (a `Vec` of such items — the LIFO and priority storages — aborted
/// on the second panic; the ring and the list aborted on a payload whose
/// `Drop` panics).
#[test]
fn dropping_a_queue_whose_every_item_and_payload_panics_in_drop_does_not_abort() {
    type Build = fn() -> JoinableQueue<AlwaysPanicsOnDrop>;
    let orders: [(&str, Build, usize); 5] = [
        ("fifo bounded", || JoinableQueue::bounded(8), 8),
        ("fifo", JoinableQueue::new, 100),
        ("lifo", JoinableQueue::lifo, 8),
        ("priority", JoinableQueue::priority, 8),
        ("priority bounded", || JoinableQueue::priority_bounded(8), 8),
    ];
    for payload_panics in [false, true] {
        for (name, build, count) in orders {
            let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let queue = build();
            for _ in 0..count {
                let item = AlwaysPanicsOnDrop {
                    drops: Arc::clone(&drops),
                    payload_panics,
                };
                // The refused item would panic in this test's own drop.
                assert!(queue.put(item).is_ok(), "{name}: put refused");
            }
            let dropped = catch_unwind(AssertUnwindSafe(|| drop(queue)));
            let payload = dropped.expect_err("the items' panic reached the caller");
            if payload_panics {
                assert!(
                    payload.is::<PanickingPayload>(),
                    "{name}: a different panic"
                );
                // The caller's to dispose of; this test's own way is to leak it.
                std::mem::forget(payload);
            } else {
                assert!(
                    payload.downcast_ref::<&str>() == Some(&"an item that always panics in drop"),
                    "{name}: a different panic"
                );
            }
            assert_eq!(
                drops.load(std::sync::atomic::Ordering::SeqCst),
                count,
                "{name} (payloads panic: {payload_panics}): items leaked"
            );
        }
    }
}

/// A priority item whose comparisons panic on threads named `getter-*`
/// while `budget` lasts (puts compare on the test's own thread, and never
/// panic).
struct PanicsInAGettersCompare {
    key: u32,
    budget: Arc<std::sync::atomic::AtomicUsize>,
}

impl PartialEq for PanicsInAGettersCompare {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for PanicsInAGettersCompare {}
impl PartialOrd for PanicsInAGettersCompare {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PanicsInAGettersCompare {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let on_a_getter = thread::current()
            .name()
            .is_some_and(|name| name.starts_with("getter-"));
        let spent = on_a_getter
            && self
                .budget
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |left| left.checked_sub(1),
                )
                .is_ok();
        assert!(!spent, "deliberate: a getter's comparison panics");
        self.key.cmp(&other.key)
    }
}

/// Four getters sleep on an empty priority queue; three puts wake three of
/// them. The first getter to pop finds three items, so its pop compares,
/// and that comparison panics: the item stays queued. The wake-up that
/// getter used must go on to the fourth, still sleeping getter, which
/// otherwise sleeps beside a queued item until some later put (as a panic
/// inside a put's comparison already wakes a getter for the item it
/// leaves). Whether the first pop finds three items depends on timing, so
/// rounds are repeated until one does; at least one must.
#[test]
fn a_getter_whose_comparison_panics_passes_its_wake_up_on() {
    with_watchdog(PATIENCE, || {
        const ROUNDS: usize = 20;
        let mut checked = false;
        for _ in 0..ROUNDS {
            let queue = Arc::new(JoinableQueue::<PanicsInAGettersCompare>::priority());
            let budget = Arc::new(std::sync::atomic::AtomicUsize::new(1));
            let (outcomes, outcome) = std::sync::mpsc::channel();
            let getters: Vec<_> = (0..4)
                .map(|index| {
                    let (tids, tid) = std::sync::mpsc::channel();
                    let (queue, outcomes) = (Arc::clone(&queue), outcomes.clone());
                    let getter = thread::Builder::new()
                        .name(format!("getter-{index}"))
                        .spawn(move || {
                            tids.send(common::kernel_thread_id()).unwrap();
                            let got = catch_unwind(AssertUnwindSafe(|| queue.get()));
                            let got: Option<u32> = got.ok().map(|item| item.unwrap().key);
                            outcomes.send(got).unwrap();
                        })
                        .unwrap();
                    // In arrival order: the first asleep is woken first.
                    common::wait_until_asleep(tid.recv().unwrap());
                    getter
                })
                .collect();
            for key in 0..3 {
                let item = PanicsInAGettersCompare {
                    key,
                    budget: Arc::clone(&budget),
                };
                assert!(queue.put(item).is_ok());
            }
            let mut outcomes: Vec<Option<u32>> = (0..3).map(|_| outcome.recv().unwrap()).collect();
            // The budget is spent before the comparison panics, and only a
            // pop that still finds three items compares.
            let compared = budget.load(std::sync::atomic::Ordering::SeqCst) == 0;
            if compared {
                // The panicking getter's own outcome may come last: the
                // others can finish while it unwinds. Hangs (the watchdog
                // fires) if its wake-up was lost.
                outcomes.push(outcome.recv().unwrap());
                assert_eq!(outcomes.iter().filter(|got| got.is_none()).count(), 1);
                let mut keys: Vec<u32> = outcomes.into_iter().flatten().collect();
                keys.sort_unstable();
                assert_eq!(keys, [0, 1, 2], "every item got once");
                checked = true;
            } else {
                // Each pop found fewer than three items: nothing compared,
                // and the three getters took the three items. Release the
                // fourth getter and try again.
                assert!(outcomes.iter().all(Option::is_some));
                let item = PanicsInAGettersCompare {
                    key: 3,
                    budget: Arc::clone(&budget),
                };
                assert!(queue.put(item).is_ok());
                assert_eq!(outcome.recv().unwrap(), Some(3));
            }
            for getter in getters {
                join(getter);
            }
            assert_eq!(queue.len(), 0);
            if checked {
                break;
            }
        }
        assert!(checked, "in {ROUNDS} rounds no getter's pop compared");
    });
}
