//! loom: `verisync::ThreadPool` and `TaskHandle` — every task runs at most
//! once and resolves exactly once (value, `Cancelled`, or `ShutDown`),
//! callbacks run exactly once, and shutdown loses no task; `cancel` says
//! `true` exactly when the task ends up cancelled; a pool dropped inside its
//! own task keeps that task's result; a task run inline by a worker that
//! joins it (issue 16) still runs at most once, and `cancel` agrees; a
//! scope returns only after its task ran or was cancelled, also when it
//! waits on a worker of its pool while its task runs on another; the
//! scope's settle count (issue 16, item 3) is never read as 0 too early nor
//! slept through, with tasks submitting while the scope waits, a handle
//! dropped while its task settles, and a panicking task.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::{Event, Mutex, TaskError, TaskHandle, ThreadPool};

fn bounded_model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(test);
}

#[test]
fn submit_then_join_returns_the_value() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let handle = pool.submit(|| 6 * 7);
        assert_eq!(handle.join(), Ok(42));
    });
}

/// `cancel` racing with the worker starting the task: exactly one wins,
/// and the handle says which.
#[test]
fn cancel_and_start_race_has_exactly_one_winner() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let handle = {
            let runs = Arc::clone(&runs);
            pool.submit(move || {
                runs.fetch_add(1, Ordering::Relaxed);
            })
        };
        let cancelled = handle.cancel();
        // A second cancel says the same: true iff the task ended up cancelled.
        assert_eq!(handle.cancel(), cancelled);
        let result = handle.join();
        pool.shutdown();
        if cancelled {
            assert_eq!(result, Err(TaskError::Cancelled));
            assert_eq!(runs.load(Ordering::Relaxed), 0, "a cancelled task ran");
        } else {
            assert_eq!(result, Ok(()));
            assert_eq!(runs.load(Ordering::Relaxed), 1);
        }
    });
}

/// A callback registered (from another thread) while the task completes
/// runs exactly once, before `join` returns.
#[test]
fn on_done_racing_completion_runs_exactly_once() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let calls = Arc::new(AtomicUsize::new(0));
        let handle = Arc::new(pool.submit(|| 1u32));
        let registrar = {
            let (handle, calls) = (Arc::clone(&handle), Arc::clone(&calls));
            thread::spawn(move || {
                handle.on_done(move |result| {
                    assert_eq!(result, &Ok(1));
                    calls.fetch_add(1, Ordering::Relaxed);
                });
            })
        };
        registrar.join().unwrap();
        let handle = Arc::try_unwrap(handle).expect("the registrar is gone");
        assert_eq!(handle.join(), Ok(1));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    });
}

/// `shutdown` racing with `submit`: the task runs, or its handle resolves
/// to `ShutDown`; it never vanishes (a vanished task would hang `join`).
#[test]
fn shutdown_racing_submit_loses_no_task() {
    bounded_model(|| {
        let pool = Arc::new(ThreadPool::new(1));
        let submitter = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.submit(|| 5u32))
        };
        pool.shutdown();
        let handle = submitter.join().unwrap();
        match handle.join() {
            Ok(value) => assert_eq!(value, 5),
            Err(error) => assert_eq!(error, TaskError::ShutDown),
        }
    });
}

/// `shutdown_now` cancels exactly the tasks that had not started.
#[test]
fn shutdown_now_cancels_exactly_the_unstarted_tasks() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let first = pool.submit(|| 1u32);
        let second = pool.submit(|| 2u32);
        let cancelled = pool.shutdown_now();
        let results = [first.join(), second.join()];
        let cancelled_results = results
            .iter()
            .filter(|result| **result == Err(TaskError::Cancelled))
            .count();
        assert_eq!(cancelled, cancelled_results);
        for (result, value) in results.iter().zip([1, 2]) {
            assert!(*result == Ok(value) || *result == Err(TaskError::Cancelled));
        }
    });
}

/// A panicking task fails only its own handle; the worker serves the next.
#[test]
fn a_panic_fails_only_its_own_task() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let failing = pool.submit(|| -> u32 { panic!("boom") });
        let next = pool.submit(|| 2u32);
        assert_eq!(failing.join(), Err(TaskError::Panicked("boom".into())));
        assert_eq!(next.join(), Ok(2));
    });
}

/// Two cancels racing each other and the worker: they agree — both `true`
/// (one resolved it, the other saw it cancelling or cancelled) exactly when
/// the task ends up cancelled, both `false` when it ran.
#[test]
fn two_racing_cancels_agree_with_the_outcome() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let handle = Arc::new(pool.submit(|| 3u32));
        let other = {
            let handle = Arc::clone(&handle);
            thread::spawn(move || handle.cancel())
        };
        let mine = handle.cancel();
        let theirs = other.join().unwrap();
        assert_eq!(mine, theirs, "the two cancels disagree");
        let handle = Arc::try_unwrap(handle).expect("the other canceller is gone");
        let result = handle.join();
        if mine {
            assert_eq!(result, Err(TaskError::Cancelled));
        } else {
            assert_eq!(result, Ok(3));
        }
        pool.shutdown();
    });
}

/// The pool's last owner is one of its own tasks: the drop inside the task
/// shuts the pool down without joining that worker, and the task keeps its
/// result.
#[test]
fn dropping_the_pool_inside_its_own_task_keeps_the_result() {
    bounded_model(|| {
        let pool = Arc::new(ThreadPool::new(1));
        let inner = Arc::clone(&pool);
        let handle = pool.submit(move || {
            drop(inner);
            7u32
        });
        drop(pool);
        assert_eq!(handle.join(), Ok(7));
    });
}

/// Inline join: the one worker runs `outer`, which waits for `inner`
/// (queued behind it) and so runs it inline unless `cancel`, racing on the
/// main thread, wins first; afterwards the worker dequeues `inner` and must
/// skip it. Exactly one party wins the claim: the task runs at most once,
/// and `cancel` says `true` exactly when it never ran. Both outcomes must
/// occur among the executions (without the inline run only `cancel` could
/// ever win, since the one worker waits for `inner`).
#[test]
fn inline_run_worker_and_cancel_race_for_one_claim() {
    // Plain std atomics, outside the model: which outcomes some execution saw.
    static SAW_CANCELLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static SAW_INLINE_RUN: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let slot: Arc<Mutex<Option<Arc<TaskHandle<u32>>>>> = Arc::new(Mutex::new(None));
        let ready = Arc::new(Event::new());
        let outer = {
            let (slot, ready) = (Arc::clone(&slot), Arc::clone(&ready));
            pool.submit(move || {
                ready.wait();
                let inner = slot.lock().take().expect("the main thread filled the slot");
                inner.wait();
            })
        };
        let inner = {
            let runs = Arc::clone(&runs);
            Arc::new(pool.submit(move || {
                runs.fetch_add(1, Ordering::Relaxed);
                7u32
            }))
        };
        *slot.lock() = Some(Arc::clone(&inner));
        ready.set();
        let cancelled = inner.cancel();
        assert_eq!(inner.cancel(), cancelled, "a second cancel disagrees");
        outer.join().unwrap();
        let inner = Arc::try_unwrap(inner).expect("the outer task is done");
        let result = inner.join();
        pool.shutdown();
        if cancelled {
            assert_eq!(result, Err(TaskError::Cancelled));
            assert_eq!(runs.load(Ordering::Relaxed), 0, "a cancelled task ran");
            SAW_CANCELLED.store(true, std::sync::atomic::Ordering::Relaxed);
        } else {
            assert_eq!(result, Ok(7));
            assert_eq!(runs.load(Ordering::Relaxed), 1, "ran twice or never");
            SAW_INLINE_RUN.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(SAW_CANCELLED.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        SAW_INLINE_RUN.load(std::sync::atomic::Ordering::Relaxed),
        "no execution ran the task inline: the worker could only wait for itself"
    );
}

/// A counter on the scope's stack that a scoped task writes without
/// synchronisation: loom reports any access to it that is not ordered
/// after the task's write.
struct Unsynchronised(loom::cell::UnsafeCell<usize>);

// SAFETY: shared only with one scoped task; the test relies on the scope
// to order the task's accesses before the main thread's read, which loom
// checks.
unsafe impl Sync for Unsynchronised {}

impl Unsynchronised {
    fn add_one(&self) {
        // SAFETY: the scope orders this before the test's `get` (checked).
        self.0.with_mut(|count| unsafe { *count += 1 });
    }

    fn get(&self) -> usize {
        // SAFETY: as above.
        self.0.with(|count| unsafe { *count })
    }
}

/// Counts its drop in a borrowed counter: the closure's capture, dropped
/// when the task ran, or by the scope if it never did.
struct CountsDrop<'a>(&'a Unsynchronised);

impl Drop for CountsDrop<'_> {
    fn drop(&mut self) {
        self.0.add_one();
    }
}

/// A scope racing `shutdown_now` on another thread: its one task, never
/// joined, runs (writing a plain counter on the scope's stack), is
/// cancelled, or is refused. `scope` returns only after that is settled and
/// the task's closure is dropped: reading the counters after it is never a
/// data race (loom checks the cells' accesses).
#[test]
fn scope_returns_only_after_its_unjoined_task_settled_and_its_closure_dropped() {
    bounded_model(|| {
        let pool = Arc::new(ThreadPool::new(1));
        let stopper = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.shutdown_now())
        };
        let runs = Unsynchronised(loom::cell::UnsafeCell::new(0));
        let drops = Unsynchronised(loom::cell::UnsafeCell::new(0));
        pool.scope(|s| {
            let guard = CountsDrop(&drops);
            let runs = &runs;
            s.submit(move || {
                let _guard = guard;
                runs.add_one();
            });
        });
        let (ran, dropped) = (runs.get(), drops.get());
        let cancelled = stopper.join().unwrap();
        assert_eq!(dropped, 1, "the closure was not dropped exactly once");
        assert!(ran <= 1, "the task ran {ran} times");
        if cancelled == 1 {
            assert_eq!(ran, 0, "a cancelled task ran");
        }
    });
}

/// A scope opened on a worker of a two-worker pool (issue 16, review a5):
/// its task runs inline on the scope's thread or on the other worker. When
/// it runs elsewhere, the scope sleeps on its signal, raised by the task's
/// resolution: that wake-up is never lost (loom would report the deadlock),
/// and the scope returns only after the task's write.
#[test]
fn a_scope_helping_on_a_worker_never_misses_its_task_finishing_elsewhere() {
    static SAW_INLINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static SAW_ELSEWHERE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    bounded_model(|| {
        let pool = Arc::new(ThreadPool::new(2));
        let inner = Arc::clone(&pool);
        let outer = pool.submit(move || {
            let runs = Unsynchronised(loom::cell::UnsafeCell::new(0));
            let inline = Unsynchronised(loom::cell::UnsafeCell::new(0));
            let scope_thread = thread::current().id();
            inner.scope(|s| {
                let (runs, inline) = (&runs, &inline);
                // Not joined: the scope's own wait (its help) settles it.
                s.submit(move || {
                    runs.add_one();
                    if thread::current().id() == scope_thread {
                        inline.add_one();
                    }
                });
            });
            (runs.get(), inline.get())
        });
        let (runs, inline) = outer.join().unwrap();
        assert_eq!(runs, 1, "the scope returned before its task's write");
        let flag = if inline == 1 {
            &SAW_INLINE
        } else {
            &SAW_ELSEWHERE
        };
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(SAW_INLINE.load(std::sync::atomic::Ordering::Relaxed));
    assert!(SAW_ELSEWHERE.load(std::sync::atomic::Ordering::Relaxed));
}

// ---------------------------------------------------------------------------
// The scope's settle count (issue 16, item 3): `scope_tasks.rs`,
// `scoped_task.rs`.
// ---------------------------------------------------------------------------

/// Submits racing the scope's wait: a task submits a second task while
/// the body may already be waiting for the count. The scope returns only
/// after both tasks' writes (loom checks the unsynchronised counter's
/// accesses), and never sleeps through the last settle (loom would report
/// the deadlock).
#[test]
fn a_scope_waits_for_a_task_submitted_by_a_task_while_it_waits() {
    bounded_model(|| {
        let pool = ThreadPool::new(2);
        let runs = Unsynchronised(loom::cell::UnsafeCell::new(0));
        let later = Unsynchronised(loom::cell::UnsafeCell::new(0));
        pool.scope(|s| {
            let (runs, later) = (&runs, &later);
            s.submit(move || {
                runs.add_one();
                s.submit(move || later.add_one());
            });
        });
        assert_eq!((runs.get(), later.get()), (1, 1));
    });
}

/// A handle dropped by the body while a worker finishes its task: the
/// result (which borrows the scope's stack) is dropped exactly once — by
/// the handle if the task settled first, else by the worker as it settles
/// — and before `scope` returns (loom checks the counter's accesses). Both
/// orders are explored (checked after the model).
#[test]
fn a_dropped_handle_racing_its_task_drops_the_result_exactly_once() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let drops = Unsynchronised(loom::cell::UnsafeCell::new(0));
        let body = thread::current().id();
        pool.scope(|s| {
            let drops = &drops;
            let handle = s.submit(move || DropsWhere(CountsDrop(drops), body));
            drop(handle);
        });
        assert_eq!(
            drops.get(),
            1,
            "the unjoined result was not dropped exactly once"
        );
    });
    assert!(
        DROPPED_BY_BODY.load(std::sync::atomic::Ordering::Relaxed),
        "never dropped by the handle"
    );
    assert!(
        DROPPED_ELSEWHERE.load(std::sync::atomic::Ordering::Relaxed),
        "never dropped by the worker"
    );
}

/// A panicking task, its handle dropped at once, settles like any other:
/// its closure's capture is dropped (during the unwinding) before `scope`
/// returns (loom checks the counter's accesses), and the scope does not
/// wait forever for it (loom would report the deadlock).
#[test]
fn a_panicking_task_settles_before_its_scope_returns() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let drops = Unsynchronised(loom::cell::UnsafeCell::new(0));
        pool.scope(|s| {
            let guard = CountsDrop(&drops);
            drop(s.submit(move || -> u32 {
                let _guard = guard;
                panic!("boom")
            }));
        });
        assert_eq!(
            drops.get(),
            1,
            "the panicking task's capture was not dropped once"
        );
    });
}

static DROPPED_BY_BODY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static DROPPED_ELSEWHERE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A result that records whether it was dropped on the scope's body
/// thread (by its handle) or elsewhere (by the worker that settled it).
struct DropsWhere<'a>(#[allow(dead_code)] CountsDrop<'a>, thread::ThreadId);

impl Drop for DropsWhere<'_> {
    fn drop(&mut self) {
        let flag = if thread::current().id() == self.1 {
            &DROPPED_BY_BODY
        } else {
            &DROPPED_ELSEWHERE
        };
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The scope's thread counts its tasks ahead (two at a time under loom,
/// `scope_tasks.rs`): three submits take credit twice, and the wait gives
/// the one left back while the worker settles the tasks. The scope returns
/// only after every task's write (loom checks the counter's accesses) and
/// never sleeps through the last settle (loom would report the deadlock).
/// Fails if the credit is never given back (a deadlock), or given back by
/// a load and a store instead of one read-modify-write (a settle between
/// them is lost: a deadlock, checked by hand).
#[test]
fn the_scope_gives_back_its_credit_racing_the_last_settle() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let runs = Unsynchronised(loom::cell::UnsafeCell::new(0));
        pool.scope(|s| {
            let runs = &runs;
            for _ in 0..3 {
                s.submit(move || runs.add_one());
            }
        });
        assert_eq!(runs.get(), 3, "the scope returned before a task's write");
    });
}

/// review19: the body keeps one task of credit (one submit of a batch of
/// two) while its task, on the worker, submits a child one at a time; the
/// scope's give-back races that submit and both settles. The scope returns
/// only after both writes and never sleeps through the last settle.
#[test]
fn review19_a_worker_submits_while_the_scope_holds_credit() {
    bounded_model(|| {
        let pool = ThreadPool::new(1);
        let runs = Unsynchronised(loom::cell::UnsafeCell::new(0));
        let child = Unsynchronised(loom::cell::UnsafeCell::new(0));
        pool.scope(|s| {
            let (runs, child) = (&runs, &child);
            s.submit(move || {
                runs.add_one();
                s.submit(move || child.add_one());
            });
        });
        assert_eq!((runs.get(), child.get()), (1, 1));
    });
}

/// review19: a scope on the only worker of its pool (it helps) counts
/// ahead in its body: the body joins its first task inline, whose child is
/// then counted from the scope's credit on that same thread; the help gives
/// the credit left after a third submit back first and runs that task. The scope returns after both
/// writes and does not wait forever on credit it kept.
#[test]
fn review19_a_helping_scope_counts_ahead_and_gives_back_before_it_helps() {
    bounded_model(|| {
        let pool = Arc::new(ThreadPool::new(1));
        let inner = Arc::clone(&pool);
        let outer = pool.submit(move || {
            let first = Unsynchronised(loom::cell::UnsafeCell::new(0));
            let child = Unsynchronised(loom::cell::UnsafeCell::new(0));
            let second = Unsynchronised(loom::cell::UnsafeCell::new(0));
            inner.scope(|s| {
                let (first, child, second) = (&first, &child, &second);
                s.submit(move || {
                    first.add_one();
                    s.submit(move || child.add_one());
                })
                .join()
                .unwrap();
                // A new batch: one task of credit left for the help to give back.
                s.submit(move || second.add_one());
            });
            (first.get(), child.get(), second.get())
        });
        assert_eq!(outer.join(), Ok((1, 1, 1)));
    });
}
