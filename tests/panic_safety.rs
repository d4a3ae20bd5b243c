//! Panic safety: user code that panics at any call.
//!
//! Items, results and callbacks here are *hostile*: every call the library
//! makes into them (`Ord`, `PartialEq`, `Clone`, `Drop`, a task body, an
//! `on_done` callback, a `map` closure) ticks one shared fuse, and the k-th
//! tick panics. Each scenario is run for k = 1, 2, … until a run finishes
//! without the fuse firing, so every call the scenario makes is, in some
//! run, the one that panics. After each run the suite checks what the crate
//! promises whatever user code does:
//!
//! - nothing lost or duplicated: every item created ends up back with the
//!   test exactly once (got, handed back in an error, or drained at the
//!   end), and every value is dropped exactly once;
//! - counts consistent: `len()` and `unfinished_tasks()` end at zero and
//!   `join` returns once every task is done;
//! - every blocked party wakes (each scenario runs under a watchdog);
//! - a pool still runs tasks afterwards and shuts down.

verisync::process_test_support!();

mod common;

use std::cmp::Ordering as CmpOrdering;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use common::{with_watchdog, PATIENCE};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use verisync::{
    as_completed, GetError, JoinableQueue, ProcessPool, PutError, TaskError, ThreadPool,
};

/// How many calls a scenario may make before the suite gives up on reaching
/// a run in which the fuse does not fire.
const MAX_CALLS: usize = 400;

/// Silences the panics this suite provokes (they would flood the output);
/// any other panic is reported as usual. `SHOW_HOSTILE=1` shows them all.
fn quiet_hostile_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("hostile ") || std::env::var_os("SHOW_HOSTILE").is_some() {
                default_hook(info);
            }
        }));
    });
}

/// The shared state of one run: the fuse and the ledger of every item.
struct World {
    /// Calls into user code so far.
    calls: AtomicUsize,
    /// The call that panics (1-based); `usize::MAX` when disarmed.
    panic_at: AtomicUsize,
    /// Whether the fuse fired in this run.
    fired: AtomicUsize,
    next_id: AtomicU64,
    /// For each item id: how many times it was dropped.
    drops: Mutex<BTreeMap<u64, usize>>,
}

impl World {
    fn new(panic_at: usize) -> Arc<Self> {
        quiet_hostile_panics();
        Arc::new(Self {
            calls: AtomicUsize::new(0),
            panic_at: AtomicUsize::new(panic_at),
            fired: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            drops: Mutex::new(BTreeMap::new()),
        })
    }

    /// One call into user code: panics if it is the armed one. Never
    /// panics while the thread is already unwinding (that would abort the
    /// process, in any library).
    fn tick(&self, what: &str) {
        if thread::panicking() {
            return;
        }
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call == self.panic_at.load(Ordering::SeqCst) {
            self.fired.fetch_add(1, Ordering::SeqCst);
            panic!("hostile {what} (call {call})");
        }
    }

    fn disarm(&self) {
        self.panic_at.store(usize::MAX, Ordering::SeqCst);
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst) != 0
    }

    fn item(self: &Arc<Self>, key: u8) -> Item {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.drops.lock().unwrap().insert(id, 0);
        Item {
            id,
            key,
            world: Arc::clone(self),
        }
    }

    /// Every item created was dropped exactly once.
    fn assert_each_dropped_once(&self, context: &str) {
        let drops = self.drops.lock().unwrap();
        let wrong: Vec<_> = drops.iter().filter(|(_, count)| **count != 1).collect();
        assert!(
            wrong.is_empty(),
            "{context}: items (id, times dropped) not dropped exactly once: {wrong:?}"
        );
    }
}

/// A hostile value: `Ord`, `PartialEq`, `Clone` and `Drop` each tick the fuse.
struct Item {
    id: u64,
    key: u8,
    world: Arc<World>,
}

impl Drop for Item {
    fn drop(&mut self) {
        // Recorded first: a value whose `Drop` panics is still gone.
        *self.world.drops.lock().unwrap().entry(self.id).or_insert(0) += 1;
        self.world.tick("Drop");
    }
}

impl Clone for Item {
    fn clone(&self) -> Self {
        self.world.tick("Clone");
        self.world.item(self.key)
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.world.tick("PartialEq");
        self.key == other.key
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.world.tick("Ord");
        self.key.cmp(&other.key)
    }
}

impl std::fmt::Debug for Item {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Item#{}", self.id)
    }
}

/// Runs `scenario(k)` for k = 1, 2, … until a run in which the fuse did not
/// fire, each under the watchdog. `scenario` returns whether it fired.
fn for_every_panic_point(name: &str, scenario: impl Fn(usize) -> bool + Send + Sync + 'static) {
    let scenario = Arc::new(scenario);
    for panic_at in 1..=MAX_CALLS {
        let run = Arc::clone(&scenario);
        let fired = with_watchdog(PATIENCE, move || run(panic_at));
        if !fired {
            return;
        }
    }
    panic!("{name}: the fuse still fired after {MAX_CALLS} calls; raise MAX_CALLS");
}

// ---------------------------------------------------------------------------
// JoinableQueue
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fifo,
    FifoBounded,
    Lifo,
    LifoBounded,
    Priority,
    PriorityBounded,
}

const KINDS: [Kind; 6] = [
    Kind::Fifo,
    Kind::FifoBounded,
    Kind::Lifo,
    Kind::LifoBounded,
    Kind::Priority,
    Kind::PriorityBounded,
];

/// Capacity of the bounded kinds: small, so puts meet a full queue.
const CAPACITY: usize = 4;

fn make_queue(kind: Kind) -> JoinableQueue<Item> {
    match kind {
        Kind::Fifo => JoinableQueue::new(),
        Kind::FifoBounded => JoinableQueue::bounded(CAPACITY),
        Kind::Lifo => JoinableQueue::lifo(),
        Kind::LifoBounded => JoinableQueue::lifo_bounded(CAPACITY),
        Kind::Priority => JoinableQueue::priority(),
        Kind::PriorityBounded => JoinableQueue::priority_bounded(CAPACITY),
    }
}

/// Everything the test got back from the queue, by item id.
#[derive(Default)]
struct Returned {
    items: Vec<Item>,
    /// Items got with a get (not handed back): each needs a `task_done`.
    taken: usize,
}

impl Returned {
    fn got(&mut self, item: Item) {
        self.items.push(item);
        self.taken += 1;
    }

    fn handed_back(&mut self, item: Item) {
        self.items.push(item);
    }
}

/// A put in one of its forms; the item comes back to `returned` if refused.
/// (The blocking form only on an unbounded queue: the consumer may have
/// been stopped by a panic, so nobody would make room.)
fn put_any(queue: &JoinableQueue<Item>, item: Item, form: usize, returned: &mut Returned) {
    let blocking_is_safe = queue.capacity().is_none();
    let outcome = catch_unwind(AssertUnwindSafe(|| match form % 3 {
        0 => queue.try_put(item),
        2 if blocking_is_safe => queue.put(item).map_err(|error| PutError::ShutDown(error.0)),
        _ => queue.put_timeout(item, Duration::from_millis(1)),
    }));
    if let Ok(Err(refused)) = outcome {
        returned.handed_back(refused.into_inner());
    }
    // A panic inside put (the item's `Ord`) must leave the item queued:
    // the final drain finds it, or the ledger check fails.
}

/// A get in one of its forms.
fn get_any(queue: &JoinableQueue<Item>, form: usize, returned: &mut Returned) {
    let outcome = catch_unwind(AssertUnwindSafe(|| match form % 2 {
        0 => queue.try_get(),
        _ => queue.get_timeout(Duration::from_millis(1)),
    }));
    match outcome {
        Ok(Ok(item)) => returned.got(item),
        Ok(Err(GetError::Empty | GetError::ShutDown)) => {}
        Err(_) => {} // a panic in get must leave the item queued
    }
}

/// One run of the queue script with the fuse at `panic_at`.
///
/// A consumer thread blocks in `iter()` on the empty queue, a producer
/// thread blocks in `put` (on a full bounded queue), the test thread puts
/// and gets in every form and calls `task_done`, then ends the queue
/// (`shutdown` or `shutdown_now`), and the last step checks the ledger.
fn queue_run(kind: Kind, graceful: bool, panic_at: usize) -> bool {
    let world = World::new(panic_at);
    let queue = Arc::new(make_queue(kind));

    // A consumer blocked in `get` on the empty queue; later, once the
    // queue is ended, it takes what is left with `iter` (so the queue still
    // holds items when `shutdown_now` runs).
    let end_reached = Arc::new(verisync::Event::new());
    let consumer = {
        let queue = Arc::clone(&queue);
        let end_reached = Arc::clone(&end_reached);
        thread::spawn(move || {
            let mut returned = Returned::default();
            let take = |item: Item, returned: &mut Returned| {
                returned.got(item);
                queue.task_done().expect("one task_done per got item");
                returned.taken -= 1;
            };
            if let Ok(Ok(item)) = catch_unwind(AssertUnwindSafe(|| queue.get())) {
                take(item, &mut returned);
            }
            end_reached.wait();
            let _ = catch_unwind(AssertUnwindSafe(|| {
                for item in queue.iter() {
                    take(item, &mut returned);
                }
            }));
            returned
        })
    };

    let mut returned = Returned::default();
    let keys = [5u8, 1, 5, 3, 0, 2, 5, 4];
    for (form, key) in keys.iter().enumerate() {
        let item = world.item(*key);
        put_any(&queue, item, form, &mut returned);
        if form % 3 == 2 {
            get_any(&queue, form, &mut returned);
        }
    }
    // A producer blocked on a full queue (bounded kinds) until the end.
    let producer = {
        let queue = Arc::clone(&queue);
        let item = world.item(9);
        thread::spawn(move || {
            let mut returned = Returned::default();
            if let Ok(Err(refused)) = catch_unwind(AssertUnwindSafe(|| queue.put(item))) {
                returned.handed_back(refused.into_inner());
            }
            returned
        })
    };
    get_any(&queue, 1, &mut returned);
    for _ in 0..returned.taken {
        queue.task_done().expect("one task_done per got item");
    }
    returned.taken = 0;

    // The end of the queue, with the fuse still armed.
    if graceful {
        queue.shutdown();
    } else if let Ok(left) = catch_unwind(AssertUnwindSafe(|| queue.shutdown_now())) {
        left.into_iter().for_each(|item| returned.handed_back(item));
    }

    end_reached.set();
    // Every blocked party wakes (the watchdog fails the run otherwise).
    let from_consumer = common::join(consumer);
    let from_producer = common::join(producer);
    world.disarm();

    // Whatever is still queued is handed back by a clean shutdown_now.
    queue
        .shutdown_now()
        .into_iter()
        .for_each(|item| returned.handed_back(item));
    let fired = world.fired();
    let context = format!("{kind:?} (graceful: {graceful}) with a panic at call {panic_at}");

    assert_eq!(queue.len(), 0, "{context}: len after the drain");
    assert_eq!(queue.unfinished_tasks(), 0, "{context}: unfinished tasks");
    assert!(
        queue.join_timeout(Duration::ZERO),
        "{context}: join after the drain"
    );

    // Nothing lost, nothing duplicated.
    let mut ids: Vec<u64> = returned
        .items
        .iter()
        .chain(&from_consumer.items)
        .chain(&from_producer.items)
        .map(|item| item.id)
        .collect();
    ids.sort_unstable();
    let created = world.next_id.load(Ordering::SeqCst);
    assert_eq!(
        ids,
        (0..created).collect::<Vec<_>>(),
        "{context}: every item must come back exactly once"
    );
    let dropped_early: Vec<_> = world
        .drops
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, count)| **count != 0)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        dropped_early.is_empty(),
        "{context}: the queue dropped items it should have kept: {dropped_early:?}"
    );
    drop((returned, from_consumer, from_producer));
    drop(queue);
    world.assert_each_dropped_once(&context);
    fired
}

#[test]
fn queue_operations_survive_a_panic_at_every_call() {
    for kind in KINDS {
        for graceful in [false, true] {
            for_every_panic_point("queue script", move |panic_at| {
                queue_run(kind, graceful, panic_at)
            });
        }
    }
}

/// Dropping a queue whose items' `Drop` panics still drops every item.
#[test]
fn dropping_a_queue_drops_every_item_even_when_one_drop_panics() {
    for kind in KINDS {
        for_every_panic_point("queue drop", move |panic_at| {
            let world = World::new(usize::MAX);
            let queue = make_queue(kind);
            let count = if matches!(kind, Kind::Fifo | Kind::Lifo | Kind::Priority) {
                70 // crosses the unbounded list's block boundaries
            } else {
                CAPACITY
            };
            for key in 0..count {
                queue.try_put(world.item(key as u8)).expect("room");
            }
            // Armed for the drops only.
            let calls = world.calls.load(Ordering::SeqCst);
            world.panic_at.store(calls + panic_at, Ordering::SeqCst);
            let _ = catch_unwind(AssertUnwindSafe(move || drop(queue)));
            world.assert_each_dropped_once(&format!("{kind:?} dropped, panic at drop {panic_at}"));
            world.fired()
        });
    }
}

// ---------------------------------------------------------------------------
// ThreadPool and TaskHandle
// ---------------------------------------------------------------------------

/// One run of the pool script: tasks, results, callbacks and a `map`
/// closure are all hostile; some handles are dropped before their task
/// finishes (so the worker drops the result), some are joined, some are
/// read through `as_completed`. Afterwards the pool must still run a task
/// on every worker and shut down, and every result must be dropped once.
fn pool_run(panic_at: usize) -> bool {
    const WORKERS: usize = 2;
    let world = World::new(panic_at);
    let pool = ThreadPool::new(WORKERS);
    let callbacks_run = Arc::new(AtomicUsize::new(0));

    let mut handles = Vec::new();
    for key in 0..6u8 {
        let task_world = Arc::clone(&world);
        let handle = pool.submit(move || {
            task_world.tick("task");
            task_world.item(key)
        });
        let callback_world = Arc::clone(&world);
        let counter = Arc::clone(&callbacks_run);
        // Registering never panics on the caller, whether or not the task
        // has finished; a panicking callback is the pool's to report.
        let registered = catch_unwind(AssertUnwindSafe(|| {
            handle.on_done(move |_result| {
                counter.fetch_add(1, Ordering::SeqCst);
                callback_world.tick("callback");
            })
        }));
        assert!(
            registered.is_ok(),
            "on_done let a callback's panic reach its caller (panic at call {panic_at})"
        );
        handles.push(handle);
    }
    // Two handles dropped at once: their workers drop the results.
    let joined = handles.split_off(2);
    drop(handles);
    let mut joined = joined;
    let completed = joined.split_off(2);
    for handle in joined {
        let outcome = catch_unwind(AssertUnwindSafe(|| handle.join()));
        if let Ok(result) = outcome {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(result)));
        }
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        for (_, result) in as_completed(completed) {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(result)));
        }
    }));
    let map_world = Arc::clone(&world);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        for result in pool.map(0..5u8, move |key| {
            map_world.tick("map closure");
            map_world.item(key)
        }) {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(result)));
        }
    }));
    world.disarm();

    // The pool still works: a task on each worker at once.
    let gate = Arc::new(verisync::Barrier::new(WORKERS));
    let probes: Vec<_> = (0..WORKERS)
        .map(|_| {
            let gate = Arc::clone(&gate);
            pool.submit(move || gate.wait_timeout(PATIENCE).is_ok())
        })
        .collect();
    for probe in probes {
        assert_eq!(
            probe.join(),
            Ok(true),
            "a worker died (panic at call {panic_at})"
        );
    }
    pool.shutdown();
    drop(pool);
    assert_eq!(
        callbacks_run.load(Ordering::SeqCst),
        6,
        "every callback runs exactly once (panic at call {panic_at})"
    );
    world.assert_each_dropped_once(&format!("pool, panic at call {panic_at}"));
    world.fired()
}

#[test]
fn thread_pool_survives_a_panic_at_every_call() {
    for_every_panic_point("pool script", pool_run);
}

/// A result whose `Drop` panics, dropped by the worker because nobody holds
/// the handle, fails nothing else: later tasks run and `wait` returns.
#[test]
fn a_result_whose_drop_panics_does_not_kill_the_worker() {
    with_watchdog(PATIENCE, || {
        let world = World::new(usize::MAX);
        let pool = ThreadPool::new(1);
        let gate = Arc::new(verisync::Event::new());
        let blocker = {
            let gate = Arc::clone(&gate);
            pool.submit(move || gate.wait())
        };
        let doomed = {
            let world = Arc::clone(&world);
            pool.submit(move || world.item(1))
        };
        drop(doomed); // the worker will drop the result itself
        let later = pool.submit(|| 7);
        world.panic_at.store(1, Ordering::SeqCst); // the result's Drop panics
        gate.set();
        blocker.join().unwrap();
        assert!(later.wait_timeout(PATIENCE), "the task after it never ran");
        assert_eq!(later.join(), Ok(7));
        assert!(world.fired(), "the result's Drop ran and panicked");
        pool.shutdown();
    });
}

/// Cancelling a task, before or after it was cancelled already, agrees
/// with the outcome: `true` whenever it ends up cancelled.
#[test]
fn cancel_is_true_whenever_the_task_ends_up_cancelled() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(verisync::Event::new());
        let blocker = {
            let gate = Arc::clone(&gate);
            pool.submit(move || gate.wait())
        };
        let queued = pool.submit(|| 1);
        assert!(queued.cancel());
        assert!(queued.cancel(), "a second cancel of a cancelled task");
        gate.set();
        blocker.join().unwrap();
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
    });
}

// ---------------------------------------------------------------------------
// ProcessPool and process::spawn: serde impls and a result's Drop
// ---------------------------------------------------------------------------

/// The process that runs the tests (0 in a worker: statics start afresh).
static PARENT: AtomicU32 = AtomicU32::new(0);

fn in_parent() -> bool {
    PARENT.load(Ordering::SeqCst) == std::process::id()
}

/// Where a [`Poison`] value panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Serialising the argument in the parent (inside `submit`).
    ParentSerialize,
    /// Deserialising the argument in the worker.
    WorkerDeserialize,
    /// Serialising the result in the worker.
    WorkerSerialize,
    /// Deserialising the result in the parent.
    ParentDeserialize,
    /// Dropping the result in the parent (the handle was already dropped).
    ParentDrop,
}

const STAGES: [Stage; 5] = [
    Stage::ParentSerialize,
    Stage::WorkerDeserialize,
    Stage::WorkerSerialize,
    Stage::ParentDeserialize,
    Stage::ParentDrop,
];

/// A value whose serde impls or `Drop` panic at one stage.
#[derive(Debug)]
struct Poison(Stage);

impl Poison {
    fn code(&self) -> u8 {
        code_of(self.0)
    }
}

/// A stage as the plain number that crosses to the worker.
fn code_of(stage: Stage) -> u8 {
    STAGES.iter().position(|each| *each == stage).unwrap() as u8
}

impl Serialize for Poison {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let panics = match self.0 {
            Stage::ParentSerialize => in_parent(),
            Stage::WorkerSerialize => !in_parent(),
            _ => false,
        };
        if panics {
            panic!("hostile Serialize at {:?}", self.0);
        }
        serializer.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for Poison {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stage = STAGES[usize::from(u8::deserialize(deserializer)?) % STAGES.len()];
        let panics = match stage {
            Stage::WorkerDeserialize => !in_parent(),
            Stage::ParentDeserialize => in_parent(),
            _ => false,
        };
        if panics {
            panic!("hostile Deserialize at {stage:?}");
        }
        Ok(Poison(stage))
    }
}

impl Drop for Poison {
    fn drop(&mut self) {
        if self.0 == Stage::ParentDrop && in_parent() && !thread::panicking() {
            panic!("hostile Drop at {:?}", self.0);
        }
    }
}

/// Argument-side stages: the task takes the poison.
fn swallow(poison: Poison) -> u8 {
    let code = poison.code();
    std::mem::forget(poison);
    code
}

/// Result-side stages: the task returns the poison.
fn produce(code: u8) -> Poison {
    Poison(STAGES[usize::from(code)])
}

fn plus_one(x: u64) -> u64 {
    x + 1
}

fn argument_side(stage: Stage) -> bool {
    matches!(stage, Stage::ParentSerialize | Stage::WorkerDeserialize)
}

/// A task whose argument or result panics in serde or `Drop`, on either
/// side, fails at most its own task: `submit` does not panic, the handle
/// resolves with an error (or, for a result dropped by the pool, nobody
/// is told), the pool still runs tasks, and shutting it down returns.
#[test]
fn process_pool_isolates_panicking_serde_and_drop() {
    quiet_hostile_panics();
    PARENT.store(std::process::id(), Ordering::SeqCst);
    with_watchdog(PATIENCE * 2, || {
        let pool = ProcessPool::new(1).expect("a pool");
        for stage in STAGES {
            if stage == Stage::ParentDrop {
                // Nobody holds the handle: the pool drops the result.
                drop(pool.submit(produce, code_of(stage)));
            } else {
                let submitted = catch_unwind(AssertUnwindSafe(|| {
                    if argument_side(stage) {
                        pool.submit(swallow, Poison(stage)).join().map(|_| ())
                    } else {
                        let result = pool.submit(produce, code_of(stage)).join();
                        result.map(std::mem::forget)
                    }
                }));
                let outcome = submitted
                    .unwrap_or_else(|_| panic!("{stage:?}: the panic reached submit's caller"));
                assert!(
                    matches!(
                        outcome,
                        Err(TaskError::Panicked(_) | TaskError::Serialization(_))
                    ),
                    "{stage:?}: expected the task to fail with Panicked or Serialization, got {outcome:?}"
                );
            }
            // The pool lives on, with every worker.
            assert_eq!(
                pool.submit(plus_one, 41).join(),
                Ok(42),
                "{stage:?}: the pool stopped running tasks"
            );
        }
        // A map with one poisoned item fails that item only.
        let results: Vec<_> = pool
            .map(produce, [0u8, 2, 0])
            .map(|result| result.map(std::mem::forget).is_ok())
            .collect();
        assert_eq!(
            results,
            [true, false, true],
            "map: only the poisoned item fails"
        );
        pool.shutdown();
    });
}

/// The same for a single child process.
#[test]
fn spawn_isolates_panicking_serde() {
    quiet_hostile_panics();
    PARENT.store(std::process::id(), Ordering::SeqCst);
    with_watchdog(PATIENCE * 2, || {
        for stage in STAGES {
            if stage == Stage::ParentDrop {
                continue; // join hands the value to the caller, who drops it
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                if argument_side(stage) {
                    verisync::process::spawn(swallow, Poison(stage))
                        .and_then(|child| child.join())
                        .map(|_| ())
                } else {
                    verisync::process::spawn(produce, code_of(stage))
                        .and_then(|child| child.join())
                        .map(std::mem::forget)
                }
            }))
            .unwrap_or_else(|_| panic!("{stage:?}: the panic reached spawn's caller"));
            assert!(
                outcome.is_err(),
                "{stage:?}: expected an error, got {outcome:?}"
            );
        }
    });
}
