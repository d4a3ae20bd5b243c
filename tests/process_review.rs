//! Adversarial cases for the process pool: a worker that lies on its pipe
//! or its task board, a task that closes the worker's pipes, and pool
//! operations from the places user code runs. Each test here failed (or
//! crashed, or hung) before the fix it names.

verisync::process_test_support!();

mod common;

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::with_watchdog;
use verisync::{ProcessPool, TaskError};

/// Read: this test starts processes. Write: this test counts this
/// process's descriptors and shared memory, so nobody else may start any.
static PROCESSES: RwLock<()> = RwLock::new(());

fn processes() -> RwLockReadGuard<'static, ()> {
    PROCESSES.read().unwrap_or_else(PoisonError::into_inner)
}

/// How long a test may take before its watchdog calls it hung.
const LIMIT: Duration = Duration::from_secs(60);

/// How long to wait for something that must happen promptly.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Worker side: a task that forges what the worker tells the parent
// ---------------------------------------------------------------------------

/// A frame as the worker writes it: mark, little-endian length, body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = b"vs".to_vec();
    bytes.extend((body.len() as u32).to_le_bytes());
    bytes.extend(body);
    bytes
}

/// Postcard body of `FromWorker::Done { id, outcome: Ok(result) }` for a
/// small `id` and a one-byte encoded result.
fn done_body(id: u8, result: u8) -> Vec<u8> {
    vec![1, id, 0, 1, result]
}

/// Postcard body of `FromWorker::Skipped { id }` for a small `id`.
fn skipped_body(id: u8) -> Vec<u8> {
    vec![2, id]
}

/// The address of this worker's task board, found in `/proc/self/maps`
/// (the shared memory the worker mapped, named `/dev/shm/vs...`).
fn board_address() -> Option<usize> {
    let maps = fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|line| line.contains("/dev/shm/vs"))?;
    usize::from_str_radix(line.split('-').next()?, 16).ok()
}

/// The board's cell of task `id` (after the two `u64`s `running` and
/// `started`).
fn board_cell(id: usize) -> Option<&'static std::sync::atomic::AtomicU8> {
    let address = board_address()? + 16 + id;
    // SAFETY: the board is mapped for the worker's life, and the cell is
    // an `AtomicU8` in it (the layout of `board.rs`).
    Some(unsafe { &*(address as *const std::sync::atomic::AtomicU8) })
}

/// Task 0 of a fresh worker: waits until the parent cancelled task 1 on
/// the board (cell 1 reads `CANCELLED`), then answers task 0 *and* task 1
/// with forged `Done` frames, and exits.
fn answers_a_cancelled_task(_: ()) -> u64 {
    let cell = board_cell(1).expect("a pool worker has a board");
    let deadline = Instant::now() + PATIENCE;
    while cell.load(Ordering::SeqCst) != 2 {
        assert!(Instant::now() < deadline, "task 1 was never cancelled");
        thread::sleep(Duration::from_millis(1));
    }
    let mut bytes = frame(&done_body(0, 7));
    bytes.extend(frame(&done_body(1, 9)));
    verisync::process::__write_raw_to_parent(&bytes);
    std::process::exit(0)
}

/// Task 0 of a fresh worker: waits until the parent cancelled task 1 on
/// the board, then writes `SENT` over the cell again (a wild write into the
/// shared memory), so the worker runs task 1 and answers it.
fn uncancels_the_next_task(_: ()) -> u64 {
    let cell = board_cell(1).expect("a pool worker has a board");
    let deadline = Instant::now() + PATIENCE;
    while cell.load(Ordering::SeqCst) != 2 {
        assert!(Instant::now() < deadline, "task 1 was never cancelled");
        thread::sleep(Duration::from_millis(1));
    }
    cell.store(0, Ordering::SeqCst);
    7
}

/// Task 0 of a fresh worker: says it skipped itself (it was never
/// cancelled), and exits.
fn skips_itself(_: ()) -> u64 {
    verisync::process::__write_raw_to_parent(&frame(&skipped_body(0)));
    std::process::exit(0)
}

/// Closes every pipe the worker holds (as code that daemonizes, or closes
/// the descriptors it inherited, does), then sleeps `millis`.
fn closes_its_pipes_then_sleeps(millis: u64) -> u64 {
    let pipes: Vec<i32> = fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &i32| {
            fd > 2
                && fs::read_link(format!("/proc/self/fd/{fd}"))
                    .is_ok_and(|link| link.to_string_lossy().starts_with("pipe:"))
        })
        .collect();
    for fd in pipes {
        use std::os::fd::FromRawFd;
        // SAFETY: an open descriptor of this process (just listed), which
        // nothing else in this task uses.
        drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    }
    thread::sleep(Duration::from_millis(millis));
    millis
}

/// The flag file that makes [`slow_once_flagged`] slow in the workers of
/// this test process.
fn slow_initializer_flag(test_process: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("verisync-process-review-slow-init-{test_process}"))
}

/// An initializer that takes 90 s once the test created its flag file.
fn slow_once_flagged() {
    if slow_initializer_flag(std::os::unix::process::parent_id()).exists() {
        thread::sleep(Duration::from_secs(90));
    }
}

/// The flag file that makes [`a_little_slow_once_flagged`] slow.
fn little_slow_flag(test_process: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "verisync-process-review-little-slow-{test_process}"
    ))
}

/// An initializer that takes 2 s once the test created its flag file.
fn a_little_slow_once_flagged() {
    if little_slow_flag(std::os::unix::process::parent_id()).exists() {
        thread::sleep(Duration::from_secs(2));
    }
}

fn sleeps(millis: u64) -> u64 {
    thread::sleep(Duration::from_millis(millis));
    millis
}

fn aborts(_: ()) -> u64 {
    std::process::abort()
}

/// Waits until the pool's queue is empty: every task submitted so far went
/// to a worker (so a `cancel` now is one on the board).
fn wait_until_sent(pool: &ProcessPool) {
    let deadline = Instant::now() + PATIENCE;
    while !format!("{pool:?}").contains("queued: 0") {
        assert!(Instant::now() < deadline, "the tasks were never sent");
        thread::sleep(Duration::from_millis(1));
    }
}

fn one(_: ()) -> u64 {
    1
}

/// Appends "<tag> <pid>" to the run log at `path` (one write, so lines of
/// several workers never mix).
fn record_run(path: &str, tag: u64) {
    use std::io::Write;
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    log.write_all(format!("{tag} {}\n", std::process::id()).as_bytes())
        .unwrap();
}

/// The pids of the processes that ran task `tag`, one per run.
fn runs_of(path: &std::path::Path, tag: u64) -> Vec<u32> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(logged, _)| *logged == tag.to_string())
        .map(|(_, pid)| pid.parse().unwrap())
        .collect()
}

/// Records its run, then writes a frame header announcing 32 MiB (under
/// the 64 MiB limit) and returns: its answer, and everything after it,
/// vanish into that "body" until the parent gives up on the stalled frame
/// and kills the worker.
fn records_then_garbles(path: String) -> u64 {
    record_run(&path, 1);
    let mut header = b"vs".to_vec();
    header.extend((1u32 << 25).to_le_bytes());
    verisync::process::__write_raw_to_parent(&header);
    1
}

/// Records its run, then sleeps `millis`.
fn records_then_sleeps((path, millis): (String, u64)) -> u64 {
    record_run(&path, 2);
    thread::sleep(Duration::from_millis(millis));
    2
}

// ---------------------------------------------------------------------------
// A lying worker
// ---------------------------------------------------------------------------

/// A worker that answers `Done` for a task the parent cancelled on the
/// board (which a worker keeping the protocol never does) must not make
/// the parent resolve that task a second time: it stays `Cancelled`, its
/// callback runs once, and the parent carries on. Before the fix the
/// reader finished the cancelled task's completion again (undefined
/// behaviour: it freed the "callbacks ran" mark as a node and crashed).
#[test]
fn a_done_for_a_cancelled_task_does_not_resolve_it_twice() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let forger = pool.submit(answers_a_cancelled_task, ());
        let victim = pool.submit(one, ());
        let callbacks = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&callbacks);
        victim.on_done(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        wait_until_sent(&pool);
        assert!(victim.cancel());
        assert_eq!(forger.join(), Ok(7));
        // The pool goes on: the liar was replaced.
        assert_eq!(pool.submit(one, ()).join(), Ok(1));
        pool.shutdown();
        assert_eq!(victim.join(), Err(TaskError::Cancelled));
        assert_eq!(callbacks.load(Ordering::SeqCst), 1, "callbacks run once");
    });
}

/// The same through the board: a task that writes over its worker's board
/// makes the worker run (and answer) a task the parent had cancelled. The
/// parent's record of what it cancelled is its own, so the task stays
/// `Cancelled` with one callback. Before the fix: a crash, as above.
#[test]
fn a_board_overwritten_by_the_worker_does_not_resolve_a_task_twice() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let vandal_worker = pool.worker_pids();
        let vandal = pool.submit(uncancels_the_next_task, ());
        let victim = pool.submit(one, ());
        let callbacks = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&callbacks);
        victim.on_done(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        wait_until_sent(&pool);
        assert!(victim.cancel());
        assert_eq!(vandal.join(), Ok(7));
        // The vandal's worker is killed for its garbage answer; a task sent
        // to it before the reader read that answer would be the one it was
        // running, and fail with it. Wait for the replacement.
        let deadline = Instant::now() + PATIENCE;
        while pool.worker_pids() == vandal_worker {
            assert!(
                Instant::now() < deadline,
                "the vandal's worker was never replaced"
            );
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(pool.submit(one, ()).join(), Ok(1));
        pool.shutdown();
        assert_eq!(victim.join(), Err(TaskError::Cancelled));
        assert_eq!(callbacks.load(Ordering::SeqCst), 1, "callbacks run once");
    });
}

/// A worker whose result pipe closed while the worker lives on (its task
/// closed it) is still under the pool's control: its task times out, and
/// `terminate` kills it at once. Before the fix the reader held the
/// worker's lock while it waited for the worker to exit, so the watcher
/// (and with it every timeout of the pool) and `terminate` blocked on that
/// lock until the task ended by itself.
#[test]
fn a_worker_that_closed_its_pipes_is_still_timed_out_and_terminated() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .workers(2)
            .task_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let closer = pool.submit(closes_its_pipes_then_sleeps, 90_000);
        assert!(
            closer.wait_timeout(PATIENCE),
            "the task over its timeout was not timed out"
        );
        assert_eq!(closer.join(), Err(TaskError::TimedOut));
        // The same with no timeout: `terminate` ends it.
        let pool = ProcessPool::new(1).unwrap();
        let closer = pool.submit(closes_its_pipes_then_sleeps, 90_000);
        thread::sleep(Duration::from_millis(300)); // it runs, its pipes close
        let started = Instant::now();
        pool.terminate();
        assert!(
            started.elapsed() < PATIENCE,
            "terminate waited for the task"
        );
        assert_eq!(closer.join(), Err(TaskError::Cancelled));
    });
}

/// A worker that says it skipped a task the parent never cancelled must
/// not leave that task's handle unresolved forever. Before the fix the
/// reader only counted the task out of the pool: `join` hung.
#[test]
fn a_skipped_for_a_task_not_cancelled_resolves_it() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let liar = pool.submit(skips_itself, ());
        assert!(
            liar.wait_timeout(PATIENCE),
            "the task the worker falsely skipped never resolved"
        );
        assert!(
            matches!(liar.join(), Err(TaskError::Serialization(_))),
            "a false `Skipped` is garbage from the worker"
        );
        assert_eq!(pool.submit(one, ()).join(), Ok(1));
    });
}

/// A task sent to a worker right behind one the worker falsely skipped
/// (it then exits) never started: it is put back and runs on the
/// replacement. It used to be blamed for the garbage — the stranded task
/// nobody's board showed started was taken for the one running — and
/// failed with the other task's "skipped task 0" error (seen in CI).
#[test]
fn a_task_behind_a_false_skip_is_not_blamed_for_it() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        for round in 0..20 {
            let pool = ProcessPool::new(1).unwrap();
            let liar = pool.submit(skips_itself, ());
            let behind = pool.submit(one, ());
            assert!(matches!(liar.join(), Err(TaskError::Serialization(_))));
            assert_eq!(behind.join(), Ok(1), "round {round}");
        }
    });
}

/// A task put back on the pool's queue because the worker it waited on
/// died has not started: `cancel` cancels it (`true`), and it never runs.
#[test]
fn a_task_put_back_after_its_worker_died_can_be_cancelled() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let flag = little_slow_flag(std::process::id());
        let pool = ProcessPool::builder()
            .workers(1)
            .initializer(a_little_slow_once_flagged)
            .build()
            .unwrap();
        fs::write(&flag, b"").unwrap();
        let crasher = pool.submit(aborts, ());
        let waiting = pool.submit(one, ());
        // The worker dies with `waiting` sent to it; it goes back on the
        // queue while the replacement starts (2 s).
        let deadline = Instant::now() + PATIENCE;
        while !format!("{pool:?}").contains("queued: 1") {
            assert!(Instant::now() < deadline, "the task was never put back");
            thread::sleep(Duration::from_millis(1));
        }
        let cancelled = waiting.cancel();
        let _ = fs::remove_file(&flag);
        assert!(
            cancelled,
            "a task that never started could not be cancelled"
        );
        assert_eq!(waiting.join(), Err(TaskError::Cancelled));
        assert!(matches!(crasher.join(), Err(TaskError::WorkerDied { .. })));
        pool.shutdown();
    });
}

// ---------------------------------------------------------------------------
// Stopping the pool
// ---------------------------------------------------------------------------

/// `terminate` kills the workers now, also a replacement still starting
/// (running the pool's initializer) when it is called.
#[test]
fn terminate_does_not_wait_for_a_replacement_workers_initializer() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let flag = slow_initializer_flag(std::process::id());
        let pool = ProcessPool::builder()
            .workers(1)
            .initializer(slow_once_flagged)
            .build()
            .unwrap();
        fs::write(&flag, b"").unwrap();
        let crasher = pool.submit(aborts, ());
        // The worker dies; the reader starts a replacement, whose
        // initializer now takes 90 s.
        thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        pool.terminate();
        let _ = fs::remove_file(&flag);
        assert!(
            started.elapsed() < PATIENCE,
            "terminate waited {:?} for a replacement's initializer",
            started.elapsed()
        );
        assert!(crasher.join().is_err());
    });
}

/// The flag file that lets [`waits_for_flag`] return.
fn release_flag(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "verisync-process-review-{test}-{}",
        std::process::id()
    ))
}

/// Waits until the file `flag` exists (the test registered its callbacks),
/// then returns 1.
fn waits_for_flag(flag: std::path::PathBuf) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    while !flag.exists() {
        assert!(
            Instant::now() < deadline,
            "the test never released the task"
        );
        thread::sleep(Duration::from_millis(1));
    }
    1
}

/// Whether process `pid` is gone and reaped (a zombie still has its
/// `/proc` entry).
fn reaped(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What a pool operation in a callback on the reader thread saw.
#[derive(Default)]
struct FromCallback {
    /// The name of the thread the callback ran on.
    thread: Option<String>,
    /// The pool operation returned.
    returned: bool,
}

/// Submits a task that finishes only once its callback (`operation`,
/// given the callback's `Arc` of the pool, which it may drop) is
/// registered, and returns the task and what the callback saw.
fn callback_on_the_reader(
    test: &str,
    pool: &Arc<ProcessPool>,
    operation: impl FnOnce(Arc<ProcessPool>) + Send + 'static,
) -> (
    verisync::TaskHandle<u64>,
    Arc<std::sync::Mutex<FromCallback>>,
    std::path::PathBuf,
) {
    let flag = release_flag(test);
    let _ = fs::remove_file(&flag);
    let handle = pool.submit(waits_for_flag, flag.clone());
    let seen = Arc::new(std::sync::Mutex::new(FromCallback::default()));
    let from_callback = Arc::clone(pool);
    let record = Arc::clone(&seen);
    handle.on_done(move |_| {
        let name = thread::current().name().map(str::to_owned);
        record.lock().unwrap().thread = name;
        operation(from_callback);
        record.lock().unwrap().returned = true;
    });
    (handle, seen, flag)
}

/// Lets the task of [`callback_on_the_reader`] finish, and checks that its
/// callback ran on the pool's reader thread and returned.
fn release_and_check(
    handle: verisync::TaskHandle<u64>,
    seen: &std::sync::Mutex<FromCallback>,
    flag: &std::path::Path,
) {
    fs::write(flag, b"").unwrap();
    let finished = handle.wait_timeout(PATIENCE);
    let _ = fs::remove_file(flag);
    let seen = seen.lock().unwrap();
    assert!(
        seen.thread
            .as_deref()
            .is_some_and(|name| name.starts_with("verisync-reader")),
        "the callback did not run on the pool's reader thread: {:?}",
        seen.thread
    );
    assert!(finished, "the callback on the reader thread never returned");
    assert!(seen.returned, "the pool operation in the callback failed");
    assert_eq!(handle.join(), Ok(1));
}

/// A callback runs on the pool's reader thread; one that shuts the pool
/// down must not deadlock the pool: it returns, the tasks submitted before
/// still run, later ones are refused, and the worker is reaped. Before the
/// fix `shutdown` waited for every task to leave the pool, the one whose
/// callback was running included: the callback never returned.
#[test]
fn a_callback_may_shut_the_pool_down() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = Arc::new(ProcessPool::new(1).unwrap());
        let pid = pool.worker_pids()[0];
        let (handle, seen, flag) =
            callback_on_the_reader("shutdown", &pool, |pool| pool.shutdown());
        let queued: Vec<_> = (0..3).map(|_| pool.submit(one, ())).collect();
        release_and_check(handle, &seen, &flag);
        for task in queued {
            assert_eq!(task.join(), Ok(1), "a task submitted before shutdown");
        }
        assert_eq!(pool.submit(one, ()).join(), Err(TaskError::ShutDown));
        common::wait_for("the worker to be reaped", || reaped(pid));
        pool.shutdown();
        assert!(pool.worker_pids().is_empty());
    });
}

/// A callback on the reader thread that terminates the pool: it returns,
/// the other tasks are cancelled, and the worker is reaped. Before the fix
/// `terminate` tried to join the reader thread it ran on, and panicked.
#[test]
fn a_callback_may_terminate_the_pool() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = Arc::new(ProcessPool::new(1).unwrap());
        let pid = pool.worker_pids()[0];
        let (handle, seen, flag) =
            callback_on_the_reader("terminate", &pool, |pool| pool.terminate());
        let long: Vec<_> = (0..3).map(|_| pool.submit(sleeps, 60_000)).collect();
        release_and_check(handle, &seen, &flag);
        for task in long {
            assert!(task.wait_timeout(PATIENCE), "terminate did not end a task");
            assert_eq!(task.join(), Err(TaskError::Cancelled));
        }
        common::wait_for("the worker to be reaped", || reaped(pid));
        pool.shutdown();
        assert!(pool.worker_pids().is_empty());
    });
}

/// A callback on the reader thread that drops the last `Arc` of the pool
/// (so the pool shuts down there): it returns, the tasks submitted before
/// still run, and every worker is reaped. Before the fix the drop's
/// `shutdown` waited for the callback's own task: it never returned.
#[test]
fn a_callback_may_drop_the_last_arc_of_the_pool() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = Arc::new(ProcessPool::new(2).unwrap());
        let pids = pool.worker_pids();
        let (handle, seen, flag) = callback_on_the_reader("drop", &pool, drop);
        let queued: Vec<_> = (0..6).map(|_| pool.submit(one, ())).collect();
        drop(pool); // the callback holds the last `Arc`
        release_and_check(handle, &seen, &flag);
        for task in queued {
            assert_eq!(task.join(), Ok(1), "a task submitted before the drop");
        }
        for pid in pids {
            common::wait_for("the workers to be reaped", || reaped(pid));
        }
    });
}

// ---------------------------------------------------------------------------
// Leaks
// ---------------------------------------------------------------------------

/// This process's open descriptors.
fn descriptor_count() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The task boards of this process still named in `/dev/shm`.
fn boards_left() -> Vec<String> {
    let prefix = format!("vs{:x}-", std::process::id());
    fs::read_dir("/dev/shm")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Crashes, timeouts, recycling, terminate and shutdown leave no
/// descriptor and no shared memory behind.
#[test]
fn a_pool_leaves_no_descriptors_or_shared_memory() {
    let _alone = PROCESSES.write().unwrap_or_else(PoisonError::into_inner);
    with_watchdog(LIMIT, || {
        let descriptors = descriptor_count();
        for round in 0..3 {
            let pool = ProcessPool::builder()
                .workers(2)
                .max_tasks_per_worker(3)
                .task_timeout(Duration::from_millis(300))
                .build()
                .unwrap();
            let handles: Vec<_> = (0..12)
                .map(|i| match i % 4 {
                    0 => pool.submit(aborts, ()),
                    1 => pool.submit(sleeps, 5_000),
                    _ => pool.submit(one, ()),
                })
                .collect();
            for (i, handle) in handles.into_iter().enumerate() {
                let result = handle.join();
                match i % 4 {
                    0 => assert!(matches!(result, Err(TaskError::WorkerDied { .. }))),
                    1 => assert_eq!(result, Err(TaskError::TimedOut)),
                    _ => assert_eq!(result, Ok(1)),
                }
            }
            if round == 1 {
                pool.terminate();
            }
        }
        assert_eq!(boards_left(), Vec::<String>::new(), "shared memory left");
        assert_eq!(descriptor_count(), descriptors, "descriptors left open");
    });
}

/// `terminate` from a user thread resolves the queued tasks `Cancelled`
/// there, so their callbacks run on that thread; one that shuts the pool
/// down (a "stop everything on the first failure" callback) must not
/// deadlock: `shutdown` returns once the pool is drained, and so does
/// `terminate`.
#[test]
fn a_callback_run_by_terminate_may_shut_the_pool_down() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let pool = Arc::new(ProcessPool::new(1).unwrap());
        let pid = pool.worker_pids()[0];
        let busy = pool.submit(sleeps, 60_000);
        // More than a worker ever has in flight: the last stays queued.
        let queued: Vec<_> = (0..200).map(|_| pool.submit(one, ())).collect();
        let last = queued.last().unwrap();
        let from_callback = Arc::clone(&pool);
        let returned = Arc::new(AtomicUsize::new(0));
        let record = Arc::clone(&returned);
        last.on_done(move |_| {
            from_callback.shutdown();
            record.fetch_add(1, Ordering::SeqCst);
        });
        let started = Instant::now();
        pool.terminate();
        assert!(
            started.elapsed() < PATIENCE,
            "terminate waited {:?}",
            started.elapsed()
        );
        assert_eq!(
            returned.load(Ordering::SeqCst),
            1,
            "the callback's shutdown"
        );
        assert_eq!(busy.join(), Err(TaskError::Cancelled));
        for task in queued {
            assert_eq!(task.join(), Err(TaskError::Cancelled));
        }
        assert!(reaped(pid));
        assert!(pool.worker_pids().is_empty());
    });
}

/// A task that started on a worker the parent then kills for *another*
/// task's garbage ran (part of) its course: it fails with the worker and is
/// never sent again. Before the fix only the first started task stranded
/// on the worker was failed; the second was re-sent and ran twice ("task B
/// ran 2 times", its second run `Ok` — the first one's side effects
/// unreported).
#[test]
fn a_started_task_killed_for_another_tasks_garbage_is_not_run_again() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let log = std::env::temp_dir().join(format!(
            "verisync-process-review-rerun-{}",
            std::process::id()
        ));
        let _ = fs::remove_file(&log);
        let path = log.to_string_lossy().into_owned();
        let pool = ProcessPool::new(1).unwrap();
        let first_worker = pool.worker_pids()[0];
        let garbles = pool.submit(records_then_garbles, path.clone());
        // Sent right behind it; long enough to still run when the parent
        // gives up on the garbled frame (about a second).
        let bystander = pool.submit(records_then_sleeps, (path.clone(), 10_000));
        let garbled = garbles.join();
        let bystander_result = bystander.join();
        pool.shutdown();
        let bystander_runs = runs_of(&log, 2);
        let _ = fs::remove_file(&log);
        assert!(
            matches!(garbled, Err(TaskError::Serialization(_))),
            "{garbled:?}"
        );
        assert_eq!(
            bystander_runs.len(),
            1,
            "the task behind the garbage ran {} times (in {bystander_runs:?}; result {bystander_result:?})",
            bystander_runs.len()
        );
        if bystander_runs[0] == first_worker {
            assert!(
                matches!(
                    &bystander_result,
                    Err(TaskError::Serialization(message))
                        if message.contains("had started on that worker")
                ),
                "it ran on the worker that was killed: {bystander_result:?}"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// A worker that fails before any of its tasks started
// ---------------------------------------------------------------------------

/// The worker's pipe descriptor (not 0-2) open with access mode `mode`
/// (0: the task pipe, read; 1: the result pipe, write), from /proc.
fn worker_pipe(mode: u32) -> Option<i32> {
    fs::read_dir("/proc/self/fd")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .find(|&fd: &i32| {
            fd > 2
                && fs::read_link(format!("/proc/self/fd/{fd}"))
                    .is_ok_and(|link| link.to_string_lossy().starts_with("pipe:"))
                && fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).is_ok_and(|info| {
                    info.lines()
                        .find_map(|line| line.strip_prefix("flags:"))
                        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
                        .is_some_and(|flags| flags & 3 == mode)
                })
        })
}

/// Bytes this process has read so far (`rchar` in /proc/self/io).
fn bytes_read() -> u64 {
    fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("rchar:"))
                .and_then(|count| count.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Records its run and returns at once (it is answered), leaving a thread
/// behind: once the worker is reading the next task's frame (it has read
/// another MiB), the thread swaps the task pipe for one that never
/// delivers (so that task can never start here), then writes a complete
/// frame of garbage to the parent.
fn leaves_a_scribbler(path: String) -> u64 {
    record_run(&path, 1);
    let tasks = worker_pipe(0).expect("the task pipe");
    let baseline = bytes_read();
    thread::spawn(move || {
        use std::os::fd::FromRawFd;
        while bytes_read() < baseline + (1 << 20) {
            thread::sleep(Duration::from_micros(200));
        }
        let (never, keeps_it_open) = std::io::pipe().unwrap();
        std::mem::forget(keeps_it_open);
        // SAFETY: the worker's task pipe descriptor, open (just found);
        // never closed here (`ManuallyDrop`): `dup2` only replaces what it
        // refers to.
        let mut tasks =
            std::mem::ManuallyDrop::new(unsafe { std::os::fd::OwnedFd::from_raw_fd(tasks) });
        rustix::io::dup2(&never, &mut tasks).unwrap();
        let mut garbage = b"vs".to_vec();
        garbage.extend(4u32.to_le_bytes());
        garbage.extend([0xFF; 4]);
        verisync::process::__write_raw_to_parent(&garbage);
        thread::sleep(Duration::from_secs(60));
    });
    1
}

/// Records its run; the padding makes its frame take a while to read.
fn records_a_big_argument((path, padding): (String, Vec<u8>)) -> u64 {
    record_run(&path, 2);
    drop(padding);
    2
}

/// A task whose frame the worker was still reading — it never started, its
/// board cell says so — when garbage from a thread an earlier, answered
/// task left behind arrived is sent again, and runs once. Before the fix
/// the reader took the oldest unanswered task for the one running when no
/// board showed a started task, so it failed with the other task's garbage
/// ("garbage from worker ...: could not be decoded") and never ran.
#[test]
fn a_task_that_never_started_is_not_failed_for_another_tasks_garbage() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let log = std::env::temp_dir().join(format!(
            "verisync-process-review-scribbler-{}",
            std::process::id()
        ));
        let _ = fs::remove_file(&log);
        let path = log.to_string_lossy().into_owned();
        let pool = ProcessPool::new(1).unwrap();
        let first_worker = pool.worker_pids();
        assert_eq!(pool.submit(leaves_a_scribbler, path.clone()).join(), Ok(1));
        let victim = pool
            .submit(records_a_big_argument, (path.clone(), vec![7u8; 30 << 20]))
            .join();
        assert_ne!(
            pool.worker_pids(),
            first_worker,
            "the scribbler's worker was replaced"
        );
        pool.shutdown();
        let victim_runs = runs_of(&log, 2);
        let _ = fs::remove_file(&log);
        assert_eq!(
            (victim_runs.len(), &victim),
            (1, &Ok(2)),
            "the task that never started ran {} times; its result: {victim:?}",
            victim_runs.len()
        );
    });
}

/// The run log of [`small_address_space`]'s workers in this test process.
fn small_workers_log(test_process: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "verisync-process-review-small-workers-{test_process}"
    ))
}

/// An initializer that records the worker's start and limits its address
/// space to what it uses now and 16 MiB more: reading a task frame of
/// 40 MiB aborts the worker before the task starts.
fn small_address_space() {
    record_run(
        &small_workers_log(std::os::unix::process::parent_id()).to_string_lossy(),
        0,
    );
    let used: u64 = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|size| size.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize");
    let limit = used * 1024 + (16 << 20);
    rustix::process::setrlimit(
        rustix::process::Resource::As,
        rustix::process::Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        },
    )
    .unwrap();
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// A task whose frame kills every worker that reads it, before it can
/// start, is put back only so often: at its third such death it fails with
/// `WorkerDied`, and the pool carries on (it does not kill worker after
/// worker). Tasks that fit run.
#[test]
fn a_task_whose_frame_kills_every_worker_before_it_starts_fails_at_the_third() {
    let _processes = processes();
    with_watchdog(LIMIT, || {
        let log = small_workers_log(std::process::id());
        let _ = fs::remove_file(&log);
        let pool = ProcessPool::builder()
            .workers(1)
            .initializer(small_address_space)
            .build()
            .unwrap();
        assert_eq!(pool.submit(length, vec![1; 1000]).join(), Ok(1000));
        let killer = pool.submit(length, vec![1; 40 << 20]).join();
        assert!(
            matches!(
                killer,
                Err(TaskError::WorkerDied {
                    signal: Some(6),
                    ..
                })
            ),
            "{killer:?}"
        );
        assert_eq!(pool.submit(length, vec![1; 1000]).join(), Ok(1000));
        pool.shutdown();
        let workers = runs_of(&log, 0);
        let _ = fs::remove_file(&log);
        assert_eq!(
            workers.len(),
            4,
            "workers started: the first, and one after each death: {workers:?}"
        );
    });
}
