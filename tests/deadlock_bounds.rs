//! `verisync::deadlock` stays bounded on a big program: 10,000 tracked
//! locks (each in the lock-order graph, with more violations than the
//! report keeps), 64 threads holding 16 locks each, 8 of them in four real
//! deadlocks, 8 waiting for a lock held by a running thread and 8 waiting
//! on an `Event`. `detect()`, `blocked_threads()` and
//! `lock_order_violations()` each answer within [`BOUND`] (the measured
//! times are printed; run with `--nocapture` to see them), with the right
//! content. Then every lock is dropped and every thread ends, and nothing
//! of them is left in the reports.
//!
//! Its own binary: the process-wide registry holds only this test's threads.
#![cfg(feature = "deadlock-detection")]

mod common;

use std::sync::{mpsc, Arc, Barrier as StdBarrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{with_watchdog, PATIENCE};
use verisync::deadlock;
use verisync::{Event, Mutex};

const LOCKS: usize = 10_000;
const THREADS: usize = 64;
/// Each thread's share of the locks.
const SHARE: usize = LOCKS.div_ceil(THREADS);
/// Locks each thread holds while the reports are made.
const HELD: usize = 16;
/// Threads `0..DEADLOCKED` form pairs that deadlock (ABBA).
const DEADLOCKED: usize = 8;
/// Threads `DEADLOCKED..DEADLOCKED + CHAINED` wait for a lock held by a
/// thread that is not blocked (no cycle).
const CHAINED: usize = 8;
/// The next `ON_EVENT` threads wait on an event.
const ON_EVENT: usize = 8;
/// How long a report may take, even on a slow and loaded machine.
const BOUND: Duration = Duration::from_secs(1);
/// The timed wait that ends each deadlock (the other thread of the pair
/// waits with a plain `lock()` and goes on when this one gives up): long
/// enough to make the reports while every thread is still blocked.
const DEADLOCK_ENDS_AFTER: Duration = Duration::from_secs(6);

fn name(index: usize) -> String {
    format!("bound-{index:02}")
}

/// The first lock of thread `index`'s share.
fn share_start(index: usize) -> usize {
    index * SHARE
}

/// Runs `report` once, prints how long it took, and checks the bound.
fn timed<R>(what: &str, report: impl FnOnce() -> R) -> R {
    let started = Instant::now();
    let result = report();
    let took = started.elapsed();
    println!("{what} took {took:?} ({LOCKS} locks, {THREADS} threads)");
    assert!(took <= BOUND, "{what} took {took:?}, more than {BOUND:?}");
    result
}

#[test]
fn reports_on_ten_thousand_locks_and_sixty_four_threads_stay_bounded() {
    with_watchdog(PATIENCE, || {
        // Each lock has a name of its own, so that each violation below is
        // a different one (the list keeps one entry per inversion in the
        // code: same lock names, creation and acquisition lines).
        let locks: Arc<Vec<Mutex<()>>> = Arc::new(
            (0..LOCKS)
                .map(|index| Mutex::with_name(format!("lock-{index}").leak(), ()))
                .collect(),
        );
        let gate = Arc::new(Event::new());
        // Every thread holds its locks from `holding` until `release`.
        let holding = Arc::new(StdBarrier::new(THREADS + 1));
        let (release_tx, release_rx) = (0..THREADS)
            .map(|_| mpsc::channel::<()>())
            .unzip::<_, _, Vec<_>, Vec<_>>();
        let threads: Vec<_> = release_rx
            .into_iter()
            .enumerate()
            .map(|(index, release)| {
                let (locks, gate, holding) =
                    (Arc::clone(&locks), Arc::clone(&gate), Arc::clone(&holding));
                thread::Builder::new()
                    .name(name(index))
                    .spawn(move || {
                        let share = share_start(index)..(share_start(index) + SHARE).min(LOCKS);
                        // Every lock of the share enters the order graph:
                        // i then i + 1 (a chain), and for even i also
                        // i + 1 then i (a violation each).
                        for i in share.start..share.end - 1 {
                            let first = locks[i].lock();
                            drop(locks[i + 1].lock());
                            drop(first);
                            if i % 2 == 0 {
                                let first = locks[i + 1].lock();
                                drop(locks[i].lock());
                                drop(first);
                            }
                        }
                        let held: Vec<_> = locks[share.start..share.start + HELD]
                            .iter()
                            .map(|lock| lock.lock())
                            .collect();
                        holding.wait();
                        if index < DEADLOCKED {
                            // Pairs (0, 1), (2, 3), …: each waits for the
                            // other's first held lock.
                            let other = share_start(index ^ 1);
                            if index % 2 == 0 {
                                drop(locks[other].lock());
                            } else {
                                let got = locks[other].try_lock_for(DEADLOCK_ENDS_AFTER);
                                assert!(got.is_none(), "the other thread of the pair holds it");
                                // Giving up ends the deadlock: the partner
                                // gets our first lock once we let go.
                                drop(held);
                                return;
                            }
                        } else if index < DEADLOCKED + CHAINED {
                            // Waits for a lock of a thread that only holds.
                            let holder = index + CHAINED + ON_EVENT;
                            drop(locks[share_start(holder)].lock());
                        } else if index < DEADLOCKED + CHAINED + ON_EVENT {
                            gate.wait();
                        }
                        release.recv().unwrap();
                        drop(held);
                    })
                    .unwrap()
            })
            .collect();
        holding.wait();

        // Wait until every blocked thread is in place.
        let blocked_count = DEADLOCKED + CHAINED + ON_EVENT;
        loop {
            let ours = deadlock::blocked_threads()
                .into_iter()
                .filter(|blocked| {
                    blocked
                        .thread
                        .name
                        .as_deref()
                        .is_some_and(|name| name.starts_with("bound-"))
                })
                .count();
            if ours == blocked_count {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }

        let found = timed("detect()", deadlock::detect);
        let dump = timed("blocked_threads()", deadlock::blocked_threads);
        let violations = timed("lock_order_violations()", deadlock::lock_order_violations);

        assert_eq!(found.len(), DEADLOCKED / 2, "{found:#?}");
        for cycle in &found {
            assert_eq!(cycle.threads.len(), 2);
            for member in &cycle.threads {
                assert_eq!(member.holds.len(), HELD, "{member}");
            }
        }
        assert_eq!(dump.len(), blocked_count);
        let holding_everywhere: usize = dump.iter().map(|blocked| blocked.holds.len()).sum();
        assert_eq!(holding_everywhere, blocked_count * HELD);
        // Many more different violations happened than the report keeps.
        assert_eq!(violations.len(), 1024);

        // Release everyone: the deadlocks end by their timed waits.
        gate.set();
        for index in (0..THREADS).rev() {
            // The chained waiters go on once their holder lets go; the
            // timed-out pair member returned without waiting for this.
            let _ = release_tx[index].send(());
        }
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(deadlock::blocked_threads().is_empty());
        assert!(deadlock::detect().is_empty());
        drop(Arc::into_inner(locks).unwrap());
    });
}
