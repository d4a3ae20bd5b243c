//! Property tests for `ThreadPool` and `TaskHandle`.
//!
//! Random scripts run from 1–3 threads against one pool of 1–3 workers:
//! submit (a value, a panic, or either one after waiting on a gate — an
//! `Event` the test controls), cancel, join, wait_timeout, is_finished,
//! on_done (before and after completion, some callbacks panicking), dropping
//! a handle unjoined, map (panicking items, endless inputs, dropping the
//! iterator early), as_completed, wait_all, opening a gate, and a `shutdown`
//! or `shutdown_now` at a random point of some scripts.
//!
//! Every task counts its runs in an atomic; every callback records how often
//! it ran, on which thread, and the result it saw. At the end:
//!
//! - every handle resolved exactly once, to its task's value, `Panicked`
//!   with its message, `Cancelled` or `ShutDown`; a task that resolved
//!   `Cancelled`/`ShutDown` never ran, and one that ran resolved with its
//!   value or panic;
//! - every callback ran exactly once and saw the result `join` gave, on a
//!   worker, or on the thread that registered it (once finished) or that
//!   cancelled the task;
//! - `cancel() == true` means `Cancelled` (also when it was cancelled
//!   before, so a second `cancel()` says `true` again); `Cancelled` without it happens
//!   only through `shutdown_now`, and the sum of `shutdown_now`'s returns
//!   equals the handles it cancelled (when no `map` had chunks queued at the
//!   time — those are cancelled and counted too, so then it is at least);
//! - `ShutDown` only after a shutdown began, and always once one finished;
//! - `shutdown` / `shutdown_now` return only when the caller's earlier
//!   tasks have finished.
//!
//! Tasks are held by gates, never by sleeps. A gatekeeper thread opens the
//! gates one by one whenever every script thread is blocked (in a join, a
//! map, a shutdown...), so a script can never wait forever on a gate nobody
//! opens; the watchdog turns a real hang into a failure.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex as StdMutex};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use verisync::{as_completed, wait_all, Event, TaskError, TaskHandle, ThreadPool};

use common::{join_scoped, quiet_deliberate_panics, with_watchdog, PATIENCE};

/// How many gates tasks may wait on.
const GATES: usize = 2;
/// The workers are `prop-worker-0`, `prop-worker-1`, ...
const WORKER_NAME: &str = "prop-worker";
/// The script threads are `script-0`, `script-1`, ...
const SCRIPT_NAME: &str = "script";

fn current_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

// ---------------------------------------------------------------------------
// Scripts

/// What a submitted task does.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Value,
    Panic,
    /// Waits for the gate, then returns its value.
    Gated(usize),
    /// Waits for the gate, then panics.
    GatedPanic(usize),
}

impl Kind {
    fn gate(self) -> Option<usize> {
        match self {
            Kind::Gated(gate) | Kind::GatedPanic(gate) => Some(gate),
            Kind::Value | Kind::Panic => None,
        }
    }

    fn panics(self) -> bool {
        matches!(self, Kind::Panic | Kind::GatedPanic(_))
    }
}

fn value_of(id: usize) -> u64 {
    id as u64 * 10 + 7
}

fn panic_message(id: usize) -> String {
    format!("deliberate panic in task {id}")
}

fn map_panic_message(item: usize) -> String {
    format!("deliberate panic in map item {item}")
}

#[derive(Clone, Debug)]
enum Op {
    Submit(Kind),
    Cancel(Index),
    Join(Index),
    /// Waits 0 or 1 ms.
    WaitTimeout(Index, u64),
    IsFinished(Index),
    /// Registers a callback; `true`: it panics.
    OnDone(Index, bool),
    /// Registers a recording callback, then drops the handle unjoined.
    Drop(Index),
    Map {
        len: usize,
        /// Items divisible by this panic.
        panic_every: Option<usize>,
        /// Take only this many results, then drop the iterator.
        take: Option<usize>,
        /// Map `0..` instead of `0..len` (then `take` or `len` results).
        endless: bool,
    },
    /// `as_completed` over up to this many of the script's handles.
    AsCompleted(usize),
    WaitAll,
    Open(usize),
    Shutdown,
    ShutdownNow,
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Value),
        1 => Just(Kind::Panic),
        2 => (0..GATES).prop_map(Kind::Gated),
        1 => (0..GATES).prop_map(Kind::GatedPanic),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => kind_strategy().prop_map(Op::Submit),
        2 => any::<Index>().prop_map(Op::Cancel),
        2 => any::<Index>().prop_map(Op::Join),
        1 => (any::<Index>(), 0..2u64).prop_map(|(index, ms)| Op::WaitTimeout(index, ms)),
        1 => any::<Index>().prop_map(Op::IsFinished),
        3 => (any::<Index>(), any::<bool>()).prop_map(|(index, panics)| Op::OnDone(index, panics)),
        1 => any::<Index>().prop_map(Op::Drop),
        1 => (
            0..24usize,
            prop::option::of(2..6usize),
            prop::option::of(0..12usize),
            any::<bool>(),
        )
            .prop_map(|(len, panic_every, take, endless)| Op::Map {
                len,
                panic_every,
                take,
                endless,
            }),
        1 => (1..5usize).prop_map(Op::AsCompleted),
        1 => Just(Op::WaitAll),
        2 => (0..GATES).prop_map(Op::Open),
    ]
}

/// A script: its operations, with a shutdown inserted at a random point in
/// some of them.
fn script_strategy() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(op_strategy(), 1..25),
        prop::option::weighted(0.6, (any::<Index>(), any::<bool>())),
    )
        .prop_map(|(mut ops, shutdown)| {
            if let Some((at, now)) = shutdown {
                let op = if now { Op::ShutdownNow } else { Op::Shutdown };
                ops.insert(at.index(ops.len() + 1), op);
            }
            ops
        })
}

// ---------------------------------------------------------------------------
// Shared state

/// How many script threads are blocked or finished (for the gatekeeper).
#[derive(Default)]
struct Progress {
    blocked: usize,
    finished: usize,
}

struct Shared {
    pool: ThreadPool,
    gates: Arc<Vec<Event>>,
    threads: usize,
    progress: StdMutex<Progress>,
    changed: Condvar,
    next_id: AtomicUsize,
    /// Set just before any `shutdown`/`shutdown_now` call.
    shutdown_began: AtomicBool,
    /// Set just after one returned.
    shutdown_done: AtomicBool,
    shutdown_now_called: AtomicBool,
    /// The sum of `shutdown_now`'s returns.
    shutdown_now_cancelled: AtomicUsize,
    /// Some `shutdown_now` ran while a `map` may have had chunks queued.
    shutdown_now_overlapped_map: AtomicBool,
    maps_started: AtomicUsize,
    maps_active: AtomicUsize,
}

/// Marks the script thread blocked while it lives.
struct Blocking<'a>(&'a Shared);

impl<'a> Blocking<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.progress.lock().unwrap().blocked += 1;
        shared.changed.notify_all();
        Blocking(shared)
    }
}

impl Drop for Blocking<'_> {
    fn drop(&mut self) {
        // Also while unwinding from a failed assertion: never poison-panic.
        let mut progress = match self.0.progress.lock() {
            Ok(progress) => progress,
            Err(poisoned) => poisoned.into_inner(),
        };
        progress.blocked -= 1;
        drop(progress);
        self.0.changed.notify_all();
    }
}

/// Marks the script thread finished when dropped (also on a panic, so the
/// gatekeeper still ends).
struct Finished<'a>(&'a Shared);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let mut progress = match self.0.progress.lock() {
            Ok(progress) => progress,
            Err(poisoned) => poisoned.into_inner(),
        };
        progress.finished += 1;
        drop(progress);
        self.0.changed.notify_all();
    }
}

/// Opens the next closed gate whenever every script thread is blocked or
/// finished (pausing briefly after each so the released tasks can run);
/// opens them all once every script is finished.
fn gatekeeper(shared: &Shared) {
    let mut progress = shared.progress.lock().unwrap();
    while progress.finished < shared.threads {
        if progress.blocked + progress.finished == shared.threads {
            if let Some(gate) = shared.gates.iter().find(|gate| !gate.is_set()) {
                drop(progress);
                gate.set();
                progress = shared.progress.lock().unwrap();
                // Pacing only: one gate at a time gives more interleavings.
                progress = shared
                    .changed
                    .wait_timeout(progress, Duration::from_millis(2))
                    .unwrap()
                    .0;
                continue;
            }
        }
        progress = shared.changed.wait(progress).unwrap();
    }
    drop(progress);
    for gate in shared.gates.iter() {
        gate.set();
    }
}

// ---------------------------------------------------------------------------
// Records

/// One registered `on_done` callback.
struct Callback {
    registered_on: String,
    panics: bool,
    runs: AtomicUsize,
    seen: StdMutex<Option<Result<u64, TaskError>>>,
    ran_on: StdMutex<Option<String>>,
}

impl Callback {
    fn new(panics: bool) -> Arc<Self> {
        Arc::new(Callback {
            registered_on: current_name(),
            panics,
            runs: AtomicUsize::new(0),
            seen: StdMutex::new(None),
            ran_on: StdMutex::new(None),
        })
    }

    fn record(&self, result: &Result<u64, TaskError>) {
        *self.seen.lock().unwrap() = Some(result.clone());
        *self.ran_on.lock().unwrap() = Some(current_name());
        self.runs.fetch_add(1, SeqCst);
        if self.panics {
            panic!("deliberate panic in a callback");
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(SeqCst)
    }

    fn ran_on(&self) -> String {
        self.ran_on.lock().unwrap().clone().unwrap_or_default()
    }

    fn seen(&self) -> Option<Result<u64, TaskError>> {
        self.seen.lock().unwrap().clone()
    }
}

/// One submitted task, as its script thread sees it.
struct Task {
    id: usize,
    kind: Kind,
    runs: Arc<AtomicUsize>,
    handle: Option<TaskHandle<u64>>,
    /// From `join` or `as_completed`.
    result: Option<Result<u64, TaskError>>,
    /// Reports the result of a handle dropped unjoined.
    dropped_with: Option<Arc<Callback>>,
    callbacks: Vec<Arc<Callback>>,
    /// A `cancel()` of its script resolved it (the call that won the claim).
    cancelled_by_call: bool,
    /// Some `cancel()` said `true` / `false`.
    cancel_said_true: bool,
    cancel_said_false: bool,
    /// A shutdown had returned before the submit.
    submitted_after_shutdown: bool,
    /// A shutdown had begun by the time the submit returned.
    shutdown_began_by_submit_end: bool,
}

impl Task {
    /// Every callback registered so far has run (the task is finished).
    fn assert_callbacks_ran(&self) {
        for callback in &self.callbacks {
            assert_eq!(
                callback.runs(),
                1,
                "task {}: finished, but a callback has not run exactly once",
                self.id
            );
        }
    }
}

/// The script's tasks that still have their handle.
fn owned(tasks: &[Task]) -> Vec<usize> {
    (0..tasks.len())
        .filter(|&task| tasks[task].handle.is_some())
        .collect()
}

fn pick(tasks: &[Task], index: &Index) -> Option<usize> {
    let owned = owned(tasks);
    (!owned.is_empty()).then(|| owned[index.index(owned.len())])
}

// ---------------------------------------------------------------------------
// Running a script

fn submit(shared: &Shared, kind: Kind) -> Task {
    let id = shared.next_id.fetch_add(1, SeqCst);
    let runs = Arc::new(AtomicUsize::new(0));
    let submitted_after_shutdown = shared.shutdown_done.load(SeqCst);
    let handle = {
        let (runs, gates) = (Arc::clone(&runs), Arc::clone(&shared.gates));
        shared.pool.submit(move || {
            runs.fetch_add(1, SeqCst);
            if let Some(gate) = kind.gate() {
                gates[gate].wait();
            }
            if kind.panics() {
                panic!("{}", panic_message(id));
            }
            value_of(id)
        })
    };
    let shutdown_began_by_submit_end = shared.shutdown_began.load(SeqCst);
    if submitted_after_shutdown {
        assert!(
            handle.is_finished(),
            "task {id} was submitted after a shutdown returned: it must resolve at once"
        );
    }
    Task {
        id,
        kind,
        runs,
        handle: Some(handle),
        result: None,
        dropped_with: None,
        callbacks: Vec::new(),
        cancelled_by_call: false,
        cancel_said_true: false,
        cancel_said_false: false,
        submitted_after_shutdown,
        shutdown_began_by_submit_end,
    }
}

fn check_map_results(
    shared: &Shared,
    results: &[Result<u64, TaskError>],
    panic_every: Option<usize>,
) {
    let panicky = |item: usize| panic_every.is_some_and(|every| item.is_multiple_of(every));
    let began = shared.shutdown_began.load(SeqCst);
    for (item, result) in results.iter().enumerate() {
        match result {
            Ok(value) => {
                assert!(!panicky(item), "map item {item} should have panicked");
                assert_eq!(*value, item as u64 * 3, "map item {item} out of order");
            }
            Err(TaskError::Panicked(message)) => {
                assert!(panicky(item), "map item {item} panicked: {message}");
                assert_eq!(*message, map_panic_message(item));
            }
            Err(TaskError::Cancelled | TaskError::ShutDown) => {
                assert!(began, "map item {item}: {result:?} without a shutdown");
            }
            Err(other) => panic!("map item {item}: unexpected {other:?}"),
        }
    }
}

fn run_map(
    shared: &Shared,
    len: usize,
    panic_every: Option<usize>,
    take: Option<usize>,
    endless: bool,
) {
    shared.maps_started.fetch_add(1, SeqCst);
    shared.maps_active.fetch_add(1, SeqCst);
    let function = move |item: usize| -> u64 {
        if panic_every.is_some_and(|every| item.is_multiple_of(every)) {
            panic!("{}", map_panic_message(item));
        }
        item as u64 * 3
    };
    let (results, expected) = {
        let _blocking = Blocking::new(shared);
        if endless {
            let wanted = take.unwrap_or(len);
            let results: Vec<_> = shared.pool.map(0usize.., function).take(wanted).collect();
            (results, wanted)
        } else {
            let map = shared.pool.map(0..len, function);
            match take {
                Some(wanted) => (map.take(wanted).collect(), wanted.min(len)),
                None => (map.collect::<Vec<_>>(), len),
            }
        }
    };
    // The iterator is gone: none of its chunks is queued any more.
    shared.maps_active.fetch_sub(1, SeqCst);
    assert_eq!(
        results.len(),
        expected,
        "map gave the wrong number of results"
    );
    check_map_results(shared, &results, panic_every);
}

/// After this thread's `shutdown`/`shutdown_now` returned, every task it
/// submitted before has finished.
fn assert_all_finished_after_shutdown(tasks: &[Task], which: &str) {
    for task in tasks {
        if let Some(handle) = &task.handle {
            assert!(
                handle.is_finished(),
                "task {} ({:?}) is not finished after this thread's {which} returned",
                task.id,
                task.kind
            );
            task.assert_callbacks_ran();
        }
    }
}

fn run_script(shared: &Shared, ops: &[Op]) -> Vec<Task> {
    let _finished = Finished(shared);
    let me = current_name();
    let mut tasks: Vec<Task> = Vec::new();
    for op in ops {
        match op {
            Op::Submit(kind) => tasks.push(submit(shared, *kind)),
            Op::Cancel(index) => {
                let Some(task) = pick(&tasks, index) else {
                    continue;
                };
                let task = &mut tasks[task];
                let handle = task.handle.as_ref().unwrap();
                // A probe tells whether this very call cancelled the task:
                // then the probe runs here, inside `cancel` (not at
                // registration, which would mean the task had finished).
                let probe = Arc::new(StdMutex::new(None::<(String, bool)>));
                let registering = Arc::new(AtomicBool::new(true));
                {
                    let (probe, registering) = (Arc::clone(&probe), Arc::clone(&registering));
                    handle.on_done(move |_| {
                        *probe.lock().unwrap() = Some((current_name(), registering.load(SeqCst)));
                    });
                }
                registering.store(false, SeqCst);
                if handle.cancel() {
                    let won = probe.lock().unwrap().as_ref() == Some(&(me.clone(), false));
                    // True also when it was cancelled before: by an earlier
                    // cancel, or by a shutdown_now that may still be running
                    // its callbacks on another thread (hence the wait).
                    handle.wait();
                    assert_eq!(
                        task.runs.load(SeqCst),
                        0,
                        "task {}: cancelled but ran",
                        task.id
                    );
                    task.assert_callbacks_ran();
                    assert!(
                        handle.cancel(),
                        "task {}: a second cancel of a cancelled task said false",
                        task.id
                    );
                    task.cancelled_by_call |= won;
                    task.cancel_said_true = true;
                } else {
                    task.cancel_said_false = true;
                }
            }
            Op::Join(index) => {
                let Some(task) = pick(&tasks, index) else {
                    continue;
                };
                let handle = tasks[task].handle.take().unwrap();
                let result = {
                    let _blocking = Blocking::new(shared);
                    handle.join()
                };
                tasks[task].assert_callbacks_ran();
                tasks[task].result = Some(result);
            }
            Op::WaitTimeout(index, ms) => {
                let Some(task) = pick(&tasks, index) else {
                    continue;
                };
                let task = &tasks[task];
                let handle = task.handle.as_ref().unwrap();
                if handle.wait_timeout(Duration::from_millis(*ms)) {
                    assert!(handle.is_finished());
                    task.assert_callbacks_ran();
                }
            }
            Op::IsFinished(index) => {
                let Some(task) = pick(&tasks, index) else {
                    continue;
                };
                let task = &tasks[task];
                let handle = task.handle.as_ref().unwrap();
                if handle.is_finished() {
                    assert!(handle.wait_timeout(Duration::ZERO));
                    task.assert_callbacks_ran();
                }
            }
            Op::OnDone(index, panics) => {
                let Some(task) = pick(&tasks, index) else {
                    continue;
                };
                let task = &mut tasks[task];
                let handle = task.handle.as_ref().unwrap();
                let callback = Callback::new(*panics);
                let finished_before = handle.is_finished();
                let record = Arc::clone(&callback);
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    handle.on_done(move |result| record.record(result))
                }));
                if finished_before {
                    assert_eq!(
                        callback.runs(),
                        1,
                        "task {}: a callback added after it finished must run at once",
                        task.id
                    );
                    assert_eq!(callback.ran_on(), me, "and on the registering thread");
                }
                assert!(
                    outcome.is_ok(),
                    "task {}: on_done passed a callback's panic on to its caller",
                    task.id
                );
                task.callbacks.push(callback);
            }
            Op::Drop(index) => {
                let Some(task) = pick(&tasks, index) else {
                    continue;
                };
                let task = &mut tasks[task];
                let handle = task.handle.take().unwrap();
                let callback = Callback::new(false);
                let record = Arc::clone(&callback);
                handle.on_done(move |result| record.record(result));
                task.dropped_with = Some(callback);
                drop(handle);
            }
            Op::Map {
                len,
                panic_every,
                take,
                endless,
            } => run_map(shared, *len, *panic_every, *take, *endless),
            Op::AsCompleted(count) => {
                let chosen: Vec<usize> = owned(&tasks).into_iter().take(*count).collect();
                let handles: Vec<_> = chosen
                    .iter()
                    .map(|&task| tasks[task].handle.take().unwrap())
                    .collect();
                let mut yielded = vec![false; chosen.len()];
                let _blocking = Blocking::new(shared);
                for (index, result) in as_completed(handles) {
                    assert!(!yielded[index], "as_completed yielded index {index} twice");
                    yielded[index] = true;
                    let task = &mut tasks[chosen[index]];
                    task.assert_callbacks_ran();
                    task.result = Some(result);
                }
                assert!(
                    yielded.iter().all(|&yielded| yielded),
                    "as_completed missed a task"
                );
            }
            Op::WaitAll => {
                {
                    let _blocking = Blocking::new(shared);
                    wait_all(tasks.iter().filter_map(|task| task.handle.as_ref()));
                }
                for task in tasks.iter().filter(|task| task.handle.is_some()) {
                    assert!(task.handle.as_ref().unwrap().is_finished());
                    task.assert_callbacks_ran();
                }
            }
            Op::Open(gate) => shared.gates[*gate].set(),
            Op::Shutdown => {
                shared.shutdown_began.store(true, SeqCst);
                {
                    let _blocking = Blocking::new(shared);
                    shared.pool.shutdown();
                }
                shared.shutdown_done.store(true, SeqCst);
                assert_all_finished_after_shutdown(&tasks, "shutdown");
            }
            Op::ShutdownNow => {
                shared.shutdown_began.store(true, SeqCst);
                shared.shutdown_now_called.store(true, SeqCst);
                let maps_before = shared.maps_started.load(SeqCst);
                let active_before = shared.maps_active.load(SeqCst);
                let cancelled = {
                    let _blocking = Blocking::new(shared);
                    shared.pool.shutdown_now()
                };
                if active_before != 0 || shared.maps_started.load(SeqCst) != maps_before {
                    shared.shutdown_now_overlapped_map.store(true, SeqCst);
                }
                shared.shutdown_now_cancelled.fetch_add(cancelled, SeqCst);
                shared.shutdown_done.store(true, SeqCst);
                assert_all_finished_after_shutdown(&tasks, "shutdown_now");
            }
        }
    }
    tasks
}

// ---------------------------------------------------------------------------
// The final accounting

/// Checks one task after everything finished; returns its result.
fn check_task(task: &mut Task, shutdown_now_called: bool) -> Result<u64, TaskError> {
    let id = task.id;
    if let Some(handle) = task.handle.take() {
        assert!(
            handle.is_finished(),
            "task {id} not finished after the pool shut down"
        );
        task.result = Some(handle.join());
    }
    let result = match (&task.result, &task.dropped_with) {
        (Some(result), None) => result.clone(),
        (None, Some(callback)) => callback
            .seen()
            .unwrap_or_else(|| panic!("task {id}: dropped handle, callback never ran")),
        _ => unreachable!("a task is joined or dropped, not both"),
    };
    let runs = task.runs.load(SeqCst);
    match &result {
        Ok(value) => {
            assert!(!task.kind.panics(), "task {id} ({:?}) returned", task.kind);
            assert_eq!(*value, value_of(id), "task {id}: another task's value");
            assert_eq!(
                runs, 1,
                "task {id} resolved with its value but ran {runs} times"
            );
        }
        Err(TaskError::Panicked(message)) => {
            assert!(
                task.kind.panics(),
                "task {id} ({:?}) panicked: {message}",
                task.kind
            );
            assert_eq!(*message, panic_message(id));
            assert_eq!(runs, 1, "task {id} resolved Panicked but ran {runs} times");
        }
        Err(TaskError::Cancelled) => {
            assert_eq!(runs, 0, "task {id} resolved Cancelled but ran");
            assert!(
                task.cancelled_by_call || shutdown_now_called,
                "task {id} resolved Cancelled without cancel() or shutdown_now()"
            );
        }
        Err(TaskError::ShutDown) => {
            assert_eq!(runs, 0, "task {id} resolved ShutDown but ran");
            assert!(
                task.shutdown_began_by_submit_end,
                "task {id} was refused, but no shutdown had begun"
            );
        }
        Err(other) => panic!("task {id}: unexpected {other:?}"),
    }
    if task.cancel_said_true {
        assert_eq!(
            result,
            Err(TaskError::Cancelled),
            "task {id}: cancel() said true"
        );
    }
    if task.cancel_said_false {
        assert_ne!(
            result,
            Err(TaskError::Cancelled),
            "task {id}: cancel() said false, but it ended up cancelled"
        );
    }
    if task.submitted_after_shutdown {
        assert_eq!(
            result,
            Err(TaskError::ShutDown),
            "task {id}: submitted after shutdown"
        );
    }
    for callback in task.callbacks.iter().chain(&task.dropped_with) {
        assert_eq!(
            callback.runs(),
            1,
            "task {id}: a callback ran {} times",
            callback.runs()
        );
        assert_eq!(
            callback.seen().as_ref(),
            Some(&result),
            "task {id}: callback saw another result"
        );
        let ran_on = callback.ran_on();
        let on_worker = ran_on.starts_with(WORKER_NAME);
        let on_registrar = ran_on == callback.registered_on;
        match &result {
            Ok(_) | Err(TaskError::Panicked(_)) => assert!(
                on_worker || on_registrar,
                "task {id}: callback ran on {ran_on}, neither a worker nor its registrar"
            ),
            Err(TaskError::Cancelled) if task.cancelled_by_call => assert!(
                on_registrar,
                "task {id}: cancelled by its owner, callback ran on {ran_on}"
            ),
            // Cancelled by some thread's shutdown_now.
            Err(TaskError::Cancelled) => assert!(
                ran_on.starts_with(SCRIPT_NAME),
                "task {id}: callback ran on {ran_on}"
            ),
            _ => assert!(on_registrar, "task {id}: refused, callback ran on {ran_on}"),
        }
    }
    result
}

fn run_case(workers: usize, scripts: Vec<Vec<Op>>) {
    quiet_deliberate_panics();
    let pool = ThreadPool::builder()
        .workers(workers)
        .thread_name(WORKER_NAME)
        .build();
    let shared = Shared {
        pool,
        gates: Arc::new((0..GATES).map(|_| Event::new()).collect()),
        threads: scripts.len(),
        progress: StdMutex::new(Progress::default()),
        changed: Condvar::new(),
        next_id: AtomicUsize::new(0),
        shutdown_began: AtomicBool::new(false),
        shutdown_done: AtomicBool::new(false),
        shutdown_now_called: AtomicBool::new(false),
        shutdown_now_cancelled: AtomicUsize::new(0),
        shutdown_now_overlapped_map: AtomicBool::new(false),
        maps_started: AtomicUsize::new(0),
        maps_active: AtomicUsize::new(0),
    };
    let mut tasks: Vec<Task> = thread::scope(|scope| {
        let shared = &shared;
        let keeper = scope.spawn(move || gatekeeper(shared));
        let threads: Vec<_> = scripts
            .iter()
            .enumerate()
            .map(|(index, ops)| {
                thread::Builder::new()
                    .name(format!("{SCRIPT_NAME}-{index}"))
                    .spawn_scoped(scope, move || run_script(shared, ops))
                    .unwrap()
            })
            .collect();
        let tasks = threads.into_iter().flat_map(join_scoped).collect();
        join_scoped(keeper);
        tasks
    });
    // Every gate is open: the remaining tasks finish.
    shared.pool.shutdown();

    let shutdown_now_called = shared.shutdown_now_called.load(SeqCst);
    let (mut values, mut panicked, mut cancelled, mut by_call, mut refused, mut ran) =
        (0, 0, 0, 0, 0, 0);
    for task in &mut tasks {
        match check_task(task, shutdown_now_called) {
            Ok(_) => values += 1,
            Err(TaskError::Panicked(_)) => panicked += 1,
            Err(TaskError::Cancelled) => cancelled += 1,
            Err(_) => refused += 1,
        }
        by_call += usize::from(task.cancelled_by_call);
        ran += task.runs.load(SeqCst);
    }
    assert_eq!(
        tasks.len(),
        shared.next_id.load(SeqCst),
        "a task went missing"
    );
    assert_eq!(values + panicked + cancelled + refused, tasks.len());
    assert_eq!(
        ran,
        values + panicked,
        "the tasks that ran are those with a value or panic"
    );
    let by_shutdown_now = cancelled - by_call;
    let reported = shared.shutdown_now_cancelled.load(SeqCst);
    if shared.shutdown_now_overlapped_map.load(SeqCst) {
        // Queued map chunks were cancelled and counted too.
        assert!(
            reported >= by_shutdown_now,
            "shutdown_now reported {reported} but cancelled {by_shutdown_now} handles"
        );
    } else {
        assert_eq!(
            reported, by_shutdown_now,
            "shutdown_now's returns do not match the handles it cancelled"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_handle_resolves_once_and_the_counts_add_up(
        workers in 1..=3usize,
        scripts in prop::collection::vec(script_strategy(), 1..=3),
    ) {
        with_watchdog(PATIENCE * 2, move || run_case(workers, scripts));
    }
}
