//! A timed wait whose deadline has passed by the time it would spin goes
//! straight to its last attempt: it does not spin and yield the CPU first.
//! Beside a busy thread on the same CPU each yield may hand the CPU away
//! for a whole scheduler slice, so a poll with a tiny timeout cost about a
//! millisecond there, and polling `wait(…, Some(Duration::ZERO), …)` made
//! seven `sched_yield` calls a poll.
//!
//! Each test polls on a thread sharing one CPU with a thread that spins all
//! the while, and counts how often the kernel switched the poller out
//! without its asking (a `sched_yield` that lets the spinner run counts as
//! one). Linux only: elsewhere the count is not available.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use verisync::{
    wait, Event, JoinableQueue, Mutex, ReentrantLock, ReturnWhen, Semaphore, ThreadPool,
};

use common::{with_watchdog, PATIENCE};

/// How many polls each test makes.
const POLLS: u64 = 200;

/// A timeout that has run out by the time a wait would spin.
const TINY: Duration = Duration::from_nanos(1);

/// The calling thread's involuntary context switches so far, if known.
fn involuntary_switches() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("nonvoluntary_ctxt_switches:"))?;
    line.trim().parse().ok()
}

/// Runs `poll` [`POLLS`] times on a thread pinned to the same CPU as a
/// thread spinning all the while, and asserts that the poller was switched
/// out fewer than `POLLS / 4` times (a timer tick or two may preempt it;
/// each poll used to yield seven times, and each yield let the spinner run).
fn assert_polls_do_not_yield(what: &'static str, poll: impl Fn() + Send + Sync + 'static) {
    with_watchdog(PATIENCE, move || {
        let Some(core) = core_affinity::get_core_ids().and_then(|cores| cores.last().copied())
        else {
            return; // where threads cannot be pinned there is nothing to measure
        };
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = Arc::new(AtomicBool::new(false));
        let spinner = {
            let (stop, spinning) = (Arc::clone(&stop), Arc::clone(&spinning));
            std::thread::spawn(move || {
                let pinned = core_affinity::set_for_current(core);
                spinning.store(true, Ordering::SeqCst);
                while pinned && !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let switches = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    if !core_affinity::set_for_current(core) {
                        return None;
                    }
                    while !spinning.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    let before = involuntary_switches()?;
                    for _ in 0..POLLS {
                        poll();
                    }
                    Some(involuntary_switches()? - before)
                })
                .join()
                .unwrap()
        });
        stop.store(true, Ordering::Relaxed);
        common::join(spinner);
        if let Some(switches) = switches {
            assert!(
                switches < POLLS / 4,
                "{POLLS} polls of {what} were switched out {switches} times: \
                 an expired wait yielded the CPU"
            );
        }
    });
}

#[test]
fn an_expired_semaphore_acquire_does_not_yield() {
    let semaphore = Semaphore::new(0);
    assert_polls_do_not_yield("Semaphore::try_acquire_for", move || {
        assert!(semaphore.try_acquire_for(TINY).is_none());
    });
}

#[test]
fn an_expired_event_wait_does_not_yield() {
    let event = Event::new();
    assert_polls_do_not_yield("Event::wait_timeout", move || {
        assert!(!event.wait_timeout(TINY));
    });
}

#[test]
fn an_expired_mutex_lock_does_not_yield() {
    let mutex = Arc::new(Mutex::new(()));
    let held = Arc::clone(&mutex);
    let _guard = held.lock();
    assert_polls_do_not_yield("Mutex::try_lock_for", move || {
        assert!(mutex.try_lock_for(TINY).is_none());
    });
}

#[test]
fn an_expired_reentrant_lock_does_not_yield() {
    let lock = Arc::new(ReentrantLock::new(()));
    let held = Arc::clone(&lock);
    let _guard = held.lock();
    assert_polls_do_not_yield("ReentrantLock::try_lock_for", move || {
        assert!(lock.try_lock_for(TINY).is_none());
    });
}

#[test]
fn an_expired_queue_get_or_put_does_not_yield() {
    let empty = JoinableQueue::<u32>::new();
    assert_polls_do_not_yield("JoinableQueue::get_timeout", move || {
        assert!(empty.get_timeout(TINY).is_err());
    });
    let full = JoinableQueue::bounded(1);
    full.put(0).unwrap();
    assert_polls_do_not_yield("JoinableQueue::put_timeout", move || {
        assert!(full.put_timeout(1, TINY).is_err());
    });
}

/// The case that showed it: `polling_wait_first_completed_does_not_pile_up_memory_on_an_unfinished_handle`
/// in `pool_wait.rs` polls like this 200,000 times, and took more than its
/// 60 s watchdog pinned beside a busy loop.
#[test]
fn polling_wait_with_a_zero_timeout_does_not_yield() {
    let pool = ThreadPool::new(1);
    let gate = Arc::new(Event::new());
    let handle = {
        let gate = Arc::clone(&gate);
        pool.submit(move || gate.wait())
    };
    let handles = Arc::new([handle]);
    let polled = {
        let handles = Arc::clone(&handles);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            assert_polls_do_not_yield("wait(…, Some(ZERO), FirstCompleted)", move || {
                let (done, _) = wait(&*handles, Some(Duration::ZERO), ReturnWhen::FirstCompleted);
                assert!(done.is_empty());
            });
        }))
    };
    // Let the task end whatever happened, or dropping the pool would wait
    // for it forever.
    gate.set();
    if let Err(failure) = polled {
        std::panic::resume_unwind(failure);
    }
    let [handle] = Arc::into_inner(handles).unwrap();
    handle.join().unwrap();
}
