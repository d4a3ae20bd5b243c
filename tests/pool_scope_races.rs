//! Adversarial tests (review 15) of the counting `ThreadPool::scope`
//! (`scope_tasks.rs`, `scoped_task.rs`). Racy tests loop many times; every
//! test runs under a watchdog.

mod common;

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;

use verisync::ThreadPool;

use common::{with_progress_watchdog, with_watchdog, PATIENCE};

/// Set by a test right after its `scope` returned; a drop that sees it was
/// a drop after the scope's stack was gone.
static SCOPE_RETURNED: AtomicBool = AtomicBool::new(false);
static DROPPED_AFTER_RETURN: AtomicUsize = AtomicUsize::new(0);

/// Counts its drops in a borrowed counter, and notes a drop that came after
/// the scope returned, or after the body returned on the body's thread
/// (only the scope's last pass drops a result there, and it must not drop
/// one whose handle the body dropped).
struct CountsDrops<'a> {
    drops: &'a AtomicUsize,
    body: thread::ThreadId,
    body_returned: &'a AtomicBool,
    in_last_pass: &'a AtomicBool,
}

impl Drop for CountsDrops<'_> {
    fn drop(&mut self) {
        if SCOPE_RETURNED.load(SeqCst) {
            DROPPED_AFTER_RETURN.fetch_add(1, SeqCst);
        }
        if thread::current().id() == self.body && self.body_returned.load(SeqCst) {
            self.in_last_pass.store(true, SeqCst);
        }
        self.drops.fetch_add(1, SeqCst);
    }
}

/// How many rounds a racy test runs: `SCOPE_RACE_ROUNDS`, else `default`.
fn rounds(default: usize) -> usize {
    std::env::var("SCOPE_RACE_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn spin(iterations: usize) {
    for _ in 0..iterations {
        spin_loop();
    }
}

/// Waits for `flag`, spinning so that on two free cores the waiter sees it
/// within nanoseconds, and yielding after a while so that on one core
/// (pinned, or beside a busy loop) the thread that will set it gets to run
/// instead of waiting for this one's whole scheduler slice to end.
fn wait_for(flag: &AtomicBool) {
    let mut spins = 0u32;
    while !flag.load(SeqCst) {
        if spins < 1_000 {
            spins += 1;
            spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// The ownership word's race: the body drops a task's handle just as a
/// worker settles the task (both sides released by one flag, the body's
/// drop swept over a range of delays so the two read-modify-writes land on
/// top of each other). The unjoined result must be dropped exactly once and
/// before `scope` returns, whichever side wins. Under a progress watchdog
/// (a round that never ends fails the test within `PATIENCE`): each round
/// needs both threads to run, which on one CPU beside a busy loop costs
/// scheduler slices.
#[test]
fn a_handle_dropped_as_its_task_settles_drops_the_result_once_inside_the_scope() {
    let rounds = rounds(20_000);
    with_progress_watchdog(PATIENCE, move |progress| {
        let pool = ThreadPool::new(1);
        for round in 0..rounds {
            SCOPE_RETURNED.store(false, SeqCst);
            let drops = AtomicUsize::new(0);
            let go = AtomicBool::new(false);
            let started = AtomicBool::new(false);
            let (body_returned, in_last_pass) = (AtomicBool::new(false), AtomicBool::new(false));
            let body = thread::current().id();
            pool.scope(|s| {
                let (drops, go, started) = (&drops, &go, &started);
                let (body_returned, in_last_pass) = (&body_returned, &in_last_pass);
                let handle = s.submit(move || {
                    started.store(true, SeqCst);
                    wait_for(go);
                    CountsDrops {
                        drops,
                        body,
                        body_returned,
                        in_last_pass,
                    }
                });
                wait_for(started);
                go.store(true, SeqCst);
                spin(round % 200);
                drop(handle);
                body_returned.store(true, SeqCst);
            });
            let seen = drops.load(SeqCst);
            SCOPE_RETURNED.store(true, SeqCst);
            assert_eq!(
                seen, 1,
                "round {round}: the result was dropped {seen} times inside the scope"
            );
            assert!(
                !in_last_pass.load(SeqCst),
                "round {round}: the result of a dropped handle was left to the scope's last pass"
            );
            progress.tick();
        }
        // Let any late drop happen, then look.
        drop(pool);
        assert_eq!(
            DROPPED_AFTER_RETURN.load(SeqCst),
            0,
            "a result was dropped after its scope returned"
        );
    });
}

/// A closure guard: counts its drop (the closure ran, or was dropped unrun).
struct Guard<'a>(&'a AtomicUsize);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Scopes racing `shutdown_now` (and a plain `shutdown`) from another
/// thread: every closure is dropped exactly once (ran or not) and every
/// unjoined result exactly once, before `scope` returns; nothing hangs.
#[test]
fn scopes_racing_shutdown_now_drop_every_closure_and_result_once() {
    let rounds = rounds(300);
    with_watchdog(PATIENCE * 6, move || {
        for round in 0..rounds {
            let pool = Arc::new(ThreadPool::new(2));
            let stopper = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    spin(round * 37 % 3000);
                    if round % 2 == 0 {
                        pool.shutdown_now();
                    } else {
                        pool.shutdown();
                    }
                })
            };
            for _ in 0..3 {
                let (guards, results, ran) = (
                    AtomicUsize::new(0),
                    AtomicUsize::new(0),
                    AtomicUsize::new(0),
                );
                let made = AtomicUsize::new(0);
                let submitted = pool.scope(|s| {
                    let (guards, results, ran, made) = (&guards, &results, &ran, &made);
                    let mut submitted = 0;
                    for i in 0..8 {
                        let guard = Guard(guards);
                        let handle = s.submit(move || {
                            let _guard = guard;
                            ran.fetch_add(1, SeqCst);
                            // A task that submits (may be refused).
                            s.submit(move || ran.fetch_add(0, SeqCst));
                            made.fetch_add(1, SeqCst);
                            Guard(results)
                        });
                        submitted += 1;
                        match i % 4 {
                            0 => drop(handle),
                            1 => {
                                let _ = handle.cancel();
                            }
                            2 => std::mem::forget(handle),
                            _ => {
                                let _ = handle.join();
                            }
                        }
                    }
                    submitted
                });
                assert_eq!(
                    guards.load(SeqCst),
                    submitted,
                    "round {round}: closures dropped"
                );
                assert_eq!(
                    results.load(SeqCst),
                    made.load(SeqCst),
                    "round {round}: results made vs dropped"
                );
                assert_eq!(ran.load(SeqCst), made.load(SeqCst));
            }
            stopper.join().unwrap();
        }
    });
}

/// A one-worker pool: a task opens a scope (helping), whose tasks open
/// scopes, and every level joins handles of the level above, which may be
/// queued behind the running task: all run inline, nothing deadlocks.
#[test]
fn nested_scopes_on_the_only_worker_join_handles_of_outer_scopes() {
    let rounds = rounds(2000);
    with_watchdog(PATIENCE * 3, move || {
        let pool = ThreadPool::new(1);
        for _ in 0..rounds {
            let total = AtomicUsize::new(0);
            pool.scope(|outer| {
                let total = &total;
                let queued = outer.submit(move || total.fetch_add(1, SeqCst));
                let pool = &pool;
                outer.submit(move || {
                    pool.scope(|inner| {
                        let deeper = inner.submit(move || {
                            pool.scope(|innermost| {
                                let last = innermost.submit(move || queued.join().unwrap());
                                drop(innermost.submit(move || total.fetch_add(10, SeqCst)));
                                last.join().unwrap()
                            })
                        });
                        deeper.join().unwrap();
                    });
                });
            });
            assert_eq!(total.load(SeqCst), 11);
        }
    });
}

/// Scope after scope on one thread (so at one stack address), each ending
/// parked until its last task settles: the last settle's unpark may come
/// after the scope returned and land on the next scope at the same
/// address, which must look again, never return early (the borrowed
/// counter says every task finished) nor sleep forever.
#[test]
fn back_to_back_parked_scopes_at_one_address_survive_late_wakes() {
    let rounds = rounds(5000);
    with_watchdog(PATIENCE * 3, move || {
        let pool = ThreadPool::new(2);
        for round in 0..rounds {
            let finished = AtomicUsize::new(0);
            pool.scope(|s| {
                let finished = &finished;
                for task in 0..2 {
                    drop(s.submit(move || {
                        spin((round + task * 97) % 2000);
                        finished.fetch_add(1, SeqCst);
                    }));
                }
            });
            assert_eq!(
                finished.load(SeqCst),
                2,
                "round {round}: scope returned early"
            );
        }
    });
}
