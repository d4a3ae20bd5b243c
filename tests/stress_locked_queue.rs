//! Adversarial tests (review 16) of the LIFO/priority queues' condition-variable
//! wait protocol (merge 328838f). Many threads, tiny capacities, mixed timeouts,
//! shutdown mid-way, panicking `Ord`. Rounds: `LOCKED_QUEUE_ROUNDS` (default 50).

mod common;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use common::{with_watchdog, Rng};
use verisync::{GetError, JoinableQueue, PutError};

fn rounds() -> usize {
    std::env::var("LOCKED_QUEUE_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(50)
}

/// An item whose comparisons panic now and then (when `PANICKY` is on).
#[derive(Debug)]
struct Item {
    producer: usize,
    sequence: usize,
    /// Few distinct priorities, so ties are common.
    priority: u8,
    /// Comparisons with it panic now and then.
    hostile: bool,
}

static COMPARISONS: AtomicUsize = AtomicUsize::new(0);

fn maybe_panic(a: &Item, b: &Item) {
    // About one comparison in 200, scattered (a plain "every Nth" would hit
    // every pop of a large heap, which then never drains).
    if (a.hostile || b.hostile)
        && COMPARISONS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(2_654_435_761)
            % 1000
            < 5
    {
        panic!("hostile Ord");
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        maybe_panic(self, other);
        self.priority == other.priority
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        maybe_panic(self, other);
        self.priority.cmp(&other.priority)
    }
    // `<` goes through partial_cmp -> cmp.
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Lifo,
    Priority,
}

fn make(kind: Kind, capacity: Option<usize>) -> JoinableQueue<Item> {
    match (kind, capacity) {
        (Kind::Lifo, None) => JoinableQueue::lifo(),
        (Kind::Lifo, Some(capacity)) => JoinableQueue::lifo_bounded(capacity),
        (Kind::Priority, None) => JoinableQueue::priority(),
        (Kind::Priority, Some(capacity)) => JoinableQueue::priority_bounded(capacity),
    }
}

#[derive(Default)]
struct Ledger {
    /// Put accepted (Ok, or a panicking put: the heap keeps the item).
    accepted: Vec<(usize, usize)>,
    refused: Vec<(usize, usize)>,
    got: Vec<(usize, usize)>,
    handed_back: Vec<(usize, usize)>,
}

/// One round: 8 producers, 8 consumers, tiny capacity, every put/get form,
/// shutdown or shutdown_now while producers still run.
fn one_round(seed: usize, kind: Kind, panicky: bool) {
    if std::env::var_os("LOCKED_QUEUE_VERBOSE").is_some() {
        eprintln!("round seed {seed} {kind:?}");
    }
    const PRODUCERS: usize = 8;
    const CONSUMERS: usize = 8;
    const PER_PRODUCER: usize = 300;
    let mut rng = Rng::new(seed);
    let capacity = match rng.below(3) {
        0 => None,
        1 => Some(1),
        _ => Some(2),
    };
    let graceful = rng.below(2) == 0;
    let stop_after = rng.below((PRODUCERS * PER_PRODUCER) as u64) as usize;
    let queue = make(kind, capacity);
    let attempts = AtomicUsize::new(0);
    let ledger = StdMutex::new(Ledger::default());
    std::thread::scope(|scope| {
        for producer in 0..PRODUCERS {
            let (queue, ledger, attempts) = (&queue, &ledger, &attempts);
            scope.spawn(move || {
                let mut rng = Rng::new(seed * 31 + producer);
                let mut mine = Ledger::default();
                for sequence in 0..PER_PRODUCER {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let item = Item {
                        producer,
                        sequence,
                        priority: rng.below(3) as u8,
                        hostile: panicky,
                    };
                    let mode = rng.below(4);
                    let micros = rng.below(300);
                    let result = catch_unwind(AssertUnwindSafe(|| match mode {
                        0 => queue
                            .put(item)
                            .map_err(|refused| PutError::ShutDown(refused.0)),
                        1 => queue.put_timeout(item, Duration::from_micros(micros)),
                        2 => queue.put_timeout(item, Duration::ZERO),
                        _ => queue.try_put(item),
                    }));
                    match result {
                        Ok(Ok(())) => mine.accepted.push((producer, sequence)),
                        Ok(Err(PutError::Full(item) | PutError::ShutDown(item))) => {
                            assert_eq!((item.producer, item.sequence), (producer, sequence));
                            mine.refused.push((producer, sequence));
                        }
                        // The heap kept it (documented).
                        Err(_) => mine.accepted.push((producer, sequence)),
                    }
                }
                let mut ledger = ledger.lock().unwrap();
                ledger.accepted.extend(mine.accepted);
                ledger.refused.extend(mine.refused);
            });
        }
        for consumer in 0..CONSUMERS {
            let (queue, ledger) = (&queue, &ledger);
            scope.spawn(move || {
                let mut rng = Rng::new(seed * 77 + consumer);
                let mut got = Vec::new();
                loop {
                    let mode = rng.below(4);
                    let micros = rng.below(300);
                    let result = catch_unwind(AssertUnwindSafe(|| match mode {
                        0 => queue.get().map_err(|_| GetError::ShutDown),
                        1 => queue.get_timeout(Duration::from_micros(micros)),
                        2 => queue.get_timeout(Duration::from_millis(50)),
                        _ => queue.try_get(),
                    }));
                    match result {
                        Ok(Ok(item)) => {
                            got.push((item.producer, item.sequence));
                            queue.task_done().unwrap();
                        }
                        Ok(Err(GetError::ShutDown)) => break,
                        Ok(Err(GetError::Empty)) => {}
                        Err(_) => {} // hostile Ord in pop: the heap kept the item
                    }
                }
                ledger.lock().unwrap().got.extend(got);
            });
        }
        // Shut down mid-way.
        while attempts.load(Ordering::Relaxed) < stop_after {
            std::thread::yield_now();
        }
        if graceful {
            queue.shutdown();
        } else {
            // Ord may panic inside shutdown_now's sort only: it is caught there.
            let left = queue.shutdown_now();
            ledger
                .lock()
                .unwrap()
                .handed_back
                .extend(left.iter().map(|item| (item.producer, item.sequence)));
        }
    });
    // Everyone has returned. A queue shut down gracefully is drained by the
    // consumers; collect anything left (there must be nothing).
    let mut ledger = ledger.into_inner().unwrap();
    let left = queue.shutdown_now();
    ledger
        .handed_back
        .extend(left.iter().map(|item| (item.producer, item.sequence)));
    assert!(
        graceful || left.is_empty(),
        "seed {seed} {kind:?} cap {capacity:?}: {} items put after shutdown_now",
        left.len()
    );
    if graceful {
        assert!(
            left.is_empty(),
            "seed {seed} {kind:?} cap {capacity:?}: consumers got ShutDown with {} items still queued",
            left.len()
        );
    }
    let mut out: HashMap<(usize, usize), usize> = HashMap::new();
    for key in ledger.got.iter().chain(&ledger.handed_back) {
        *out.entry(*key).or_default() += 1;
    }
    let duplicated: Vec<_> = out.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicated.is_empty(),
        "seed {seed}: duplicated {duplicated:?}"
    );
    let mut accepted = ledger.accepted.clone();
    accepted.sort();
    let mut came_out: Vec<_> = out.keys().copied().collect();
    came_out.sort();
    assert_eq!(
        accepted, came_out,
        "seed {seed} {kind:?} cap {capacity:?} graceful {graceful}: accepted items vs got+handed back"
    );
    assert_eq!(
        accepted.len() + ledger.refused.len(),
        PRODUCERS * PER_PRODUCER,
        "seed {seed}: every attempt accounted"
    );
    assert_eq!(
        queue.unfinished_tasks(),
        0,
        "seed {seed} {kind:?} cap {capacity:?}: task count drifted"
    );
    assert!(queue.join_timeout(Duration::from_secs(1)));
}

#[test]
fn lifo_8x8_tiny_capacity_shutdown_midway() {
    with_watchdog(Duration::from_secs(120), || {
        for round in 0..rounds() {
            one_round(round, Kind::Lifo, false);
        }
    });
}

#[test]
fn priority_8x8_tiny_capacity_shutdown_midway() {
    with_watchdog(Duration::from_secs(120), || {
        for round in 0..rounds() {
            one_round(1000 + round, Kind::Priority, false);
        }
    });
}

#[test]
fn priority_8x8_hostile_ord() {
    // Quiet: thousands of expected panics (the hook is process-wide, so a
    // test failing meanwhile in parallel loses its message; run with
    // --test-threads=1 to read one).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(|| {
        with_watchdog(Duration::from_secs(120), || {
            for round in 0..rounds() {
                one_round(2000 + round, Kind::Priority, true);
            }
        })
    });
    std::panic::set_hook(hook);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// N getters sleep with a long timeout; N items are put. Every getter must
/// get one (a timed waiter must not lose a wake-up meant for it).
#[test]
fn timed_getters_each_get_one_of_as_many_items() {
    with_watchdog(Duration::from_secs(120), || {
        for round in 0..rounds() * 4 {
            for kind in [Kind::Lifo, Kind::Priority] {
                let queue = make(kind, if round % 2 == 0 { None } else { Some(1) });
                let ready = AtomicUsize::new(0);
                std::thread::scope(|scope| {
                    let getters: Vec<_> = (0..8)
                        .map(|_| {
                            let (queue, ready) = (&queue, &ready);
                            scope.spawn(move || {
                                ready.fetch_add(1, Ordering::Relaxed);
                                queue.get_timeout(Duration::from_secs(20))
                            })
                        })
                        .collect();
                    while ready.load(Ordering::Relaxed) < 8 {
                        std::thread::yield_now();
                    }
                    let putters: Vec<_> = (0..8)
                        .map(|sequence| {
                            let queue = &queue;
                            scope.spawn(move || {
                                queue
                                    .put_timeout(
                                        Item {
                                            producer: 0,
                                            sequence,
                                            priority: 0,
                                            hostile: false,
                                        },
                                        Duration::from_secs(20),
                                    )
                                    .map_err(|_| ())
                            })
                        })
                        .collect();
                    for putter in putters {
                        assert_eq!(putter.join().unwrap(), Ok(()), "round {round} {kind:?}");
                    }
                    for getter in getters {
                        let got = getter.join().unwrap();
                        assert!(got.is_ok(), "round {round} {kind:?}: a getter got {got:?}");
                    }
                });
            }
        }
    });
}

/// Timeouts are exact-ish: never early, not much late.
#[test]
fn timeouts_on_empty_and_full_are_not_early() {
    with_watchdog(Duration::from_secs(120), || {
        for kind in [Kind::Lifo, Kind::Priority] {
            let queue = make(kind, Some(1));
            for millis in [1u64, 5, 20] {
                let start = Instant::now();
                let got = queue.get_timeout(Duration::from_millis(millis));
                let took = start.elapsed();
                assert_eq!(got.map(|_| ()), Err(GetError::Empty));
                assert!(
                    took >= Duration::from_millis(millis),
                    "{kind:?} get early: {took:?}"
                );
            }
            queue
                .put(Item {
                    producer: 0,
                    sequence: 0,
                    priority: 0,
                    hostile: false,
                })
                .unwrap();
            for millis in [1u64, 5, 20] {
                let start = Instant::now();
                let refused = queue.put_timeout(
                    Item {
                        producer: 0,
                        sequence: 1,
                        priority: 0,
                        hostile: false,
                    },
                    Duration::from_millis(millis),
                );
                let took = start.elapsed();
                assert!(matches!(refused, Err(PutError::Full(_))));
                assert!(
                    took >= Duration::from_millis(millis),
                    "{kind:?} put early: {took:?}"
                );
            }
        }
    });
}

/// Priority ties leave in insertion order, also through a bounded queue
/// with blocked putters woken one by one.
#[test]
fn priority_ties_in_insertion_order_through_blocked_putters() {
    with_watchdog(Duration::from_secs(120), || {
        let queue = JoinableQueue::priority_bounded(1);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for sequence in 0..2000usize {
                    queue.put((0u8, sequence)).unwrap();
                }
            });
            for expected in 0..2000usize {
                assert_eq!(queue.get(), Ok((0u8, expected)));
            }
        });
    });
}

/// No shutdown to rescue a sleeper: 8 blocking producers, 8 blocking (or
/// long-timed) consumers, capacity 1–2; `join` must return once everything
/// put was got, so a lost wake-up on either side shows as a `join` timeout.
fn join_round(seed: usize, kind: Kind) {
    const PRODUCERS: usize = 8;
    const CONSUMERS: usize = 8;
    const PER_PRODUCER: usize = 200;
    let mut rng = Rng::new(seed);
    let capacity = match rng.below(3) {
        0 => None,
        1 => Some(1),
        _ => Some(2),
    };
    let queue = make(kind, capacity);
    let got = AtomicUsize::new(0);
    let producers_done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for producer in 0..PRODUCERS {
            let (queue, producers_done) = (&queue, &producers_done);
            scope.spawn(move || {
                let mut rng = Rng::new(seed * 13 + producer);
                for sequence in 0..PER_PRODUCER {
                    let item = Item {
                        producer,
                        sequence,
                        priority: rng.below(3) as u8,
                        hostile: false,
                    };
                    // Refused only by the shutdown after a failed join.
                    let accepted = if rng.below(2) == 0 {
                        queue.put(item).is_ok()
                    } else {
                        queue.put_timeout(item, Duration::from_secs(60)).is_ok()
                    };
                    if !accepted {
                        return;
                    }
                }
                producers_done.fetch_add(1, Ordering::Release);
            });
        }
        for consumer in 0..CONSUMERS {
            let (queue, got) = (&queue, &got);
            scope.spawn(move || {
                let mut rng = Rng::new(seed * 17 + consumer);
                loop {
                    let result = if rng.below(2) == 0 {
                        queue.get().map_err(|_| GetError::ShutDown)
                    } else {
                        queue.get_timeout(Duration::from_secs(60))
                    };
                    match result {
                        Ok(_) => {
                            got.fetch_add(1, Ordering::Relaxed);
                            queue.task_done().unwrap();
                        }
                        Err(GetError::ShutDown) => return,
                        Err(GetError::Empty) => panic!("seed {seed}: a 60 s get timed out"),
                    }
                }
            });
        }
        // Every put done (they block while a bounded queue is full), then
        // every item got: each bounded, so a lost wake-up fails the test.
        let deadline = Instant::now() + Duration::from_secs(20);
        while producers_done.load(Ordering::Acquire) < PRODUCERS && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let joined = producers_done.load(Ordering::Acquire) == PRODUCERS
            && queue.join_timeout(deadline.saturating_duration_since(Instant::now()));
        let (len, unfinished) = (queue.len(), queue.unfinished_tasks());
        let finished_producers = producers_done.load(Ordering::Acquire);
        // Releases everyone blocked (refused puts then panic: a failure anyway).
        queue.shutdown();
        assert!(
            joined,
            "seed {seed} {kind:?} cap {capacity:?}: join timed out with {len} queued, \
             {unfinished} unfinished, {} got, {finished_producers}/{PRODUCERS} producers \
             finished (a lost wake-up)",
            got.load(Ordering::Relaxed)
        );
    });
    assert_eq!(got.into_inner(), PRODUCERS * PER_PRODUCER);
}

#[test]
fn lifo_and_priority_8x8_join_without_shutdown() {
    with_watchdog(Duration::from_secs(120), || {
        for round in 0..rounds() {
            join_round(3000 + round, Kind::Lifo);
            join_round(4000 + round, Kind::Priority);
        }
    });
}
