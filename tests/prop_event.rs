//! Property tests for `Event`.
//!
//! - Model-based: random set/clear/is_set/wait sequences on one thread
//!   against a boolean flag; zero and short timeouts report the flag, and
//!   `Duration::MAX` waits return at once when it is set.
//! - Concurrent: waiters woken by a `set` report `true` even when `clear`
//!   follows at once (Python's semantics), and what the setter wrote before
//!   `set` is visible to every waiter that returns `true`.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use verisync::Event;

use common::{
    concurrent_config, join_scoped, kernel_thread_id, wait_until_asleep, with_watchdog, work,
    CASE_PATIENCE, PATIENCE,
};

#[derive(Clone, Debug)]
enum Op {
    Set,
    Clear,
    IsSet,
    /// `wait_timeout(Duration::ZERO)`: reads the flag.
    WaitZero,
    /// `wait_timeout` of this many microseconds (≤ 1 ms).
    WaitShort(u64),
    /// `wait_timeout(Duration::MAX)` (only issued while set: nothing else runs).
    WaitForever,
    /// `wait()` (only issued while set).
    Wait,
    /// `wait_until` a deadline already past.
    WaitUntilPast,
    /// `wait_until` a deadline this many microseconds ahead (≤ 1 ms).
    WaitUntilSoon(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Set),
        4 => Just(Op::Clear),
        2 => Just(Op::IsSet),
        3 => Just(Op::WaitZero),
        1 => (1..=1_000u64).prop_map(Op::WaitShort),
        2 => Just(Op::WaitForever),
        2 => Just(Op::Wait),
        1 => Just(Op::WaitUntilPast),
        1 => (1..=1_000u64).prop_map(Op::WaitUntilSoon),
    ]
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let event = Event::default();
    let mut flag = false;
    prop_assert!(!event.is_set());
    for (step, op) in ops.into_iter().enumerate() {
        let started = Instant::now();
        match op {
            Op::Set => {
                event.set();
                flag = true;
            }
            Op::Clear => {
                event.clear();
                flag = false;
            }
            Op::IsSet => prop_assert_eq!(event.is_set(), flag),
            Op::WaitZero => {
                prop_assert_eq!(event.wait_timeout(Duration::ZERO), flag, "step {}", step);
            }
            Op::WaitShort(micros) => {
                let timeout = Duration::from_micros(micros);
                prop_assert_eq!(event.wait_timeout(timeout), flag, "step {}", step);
                if !flag {
                    // It really waited (timed out), it did not give up early.
                    prop_assert!(
                        started.elapsed() >= timeout,
                        "step {}: returned early",
                        step
                    );
                }
            }
            Op::WaitForever => {
                if flag {
                    prop_assert!(event.wait_timeout(Duration::MAX), "step {}", step);
                }
            }
            Op::Wait => {
                if flag {
                    event.wait();
                }
            }
            Op::WaitUntilPast => {
                let past = Instant::now() - Duration::from_millis(1);
                prop_assert_eq!(event.wait_until(past), flag, "step {}", step);
            }
            Op::WaitUntilSoon(micros) => {
                let deadline = Instant::now() + Duration::from_micros(micros);
                prop_assert_eq!(event.wait_until(deadline), flag, "step {}", step);
                if !flag {
                    prop_assert!(Instant::now() >= deadline, "step {}: returned early", step);
                }
            }
        }
        // Nothing here waits long: a set event never blocks.
        if flag {
            prop_assert!(started.elapsed() < Duration::from_secs(5));
        }
        prop_assert_eq!(event.is_set(), flag, "step {}: is_set", step);
        prop_assert_eq!(
            format!("{event:?}"),
            format!("Event {{ is_set: {flag} }}"),
            "step {}",
            step
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn event_matches_flag_model(ops in prop::collection::vec(op_strategy(), 1..40)) {
        run_model(ops)?;
    }
}

/// How a waiter waits in the concurrent tests.
#[derive(Clone, Copy, Debug)]
enum WaitKind {
    Wait,
    Timeout,
    Forever,
    Until,
}

fn wait_kind_strategy() -> impl Strategy<Value = WaitKind> {
    prop_oneof![
        Just(WaitKind::Wait),
        Just(WaitKind::Timeout),
        Just(WaitKind::Forever),
        Just(WaitKind::Until),
    ]
}

impl WaitKind {
    /// Waits; `true` if the event was (or became) set.
    fn wait(self, event: &Event) -> bool {
        match self {
            WaitKind::Wait => {
                event.wait();
                true
            }
            WaitKind::Timeout => event.wait_timeout(PATIENCE),
            WaitKind::Forever => event.wait_timeout(Duration::MAX),
            WaitKind::Until => event.wait_until(Instant::now() + PATIENCE),
        }
    }
}

/// Waiters wait `rounds` times each; a pulser sets and at once clears the
/// event again and again until every wait has returned. Every wait must
/// return `true`: each was woken by a `set`, even though the flag was
/// already clear again when it ran.
fn run_pulses(waiters: Vec<(WaitKind, u8)>, rounds: usize, gap: u8) {
    let event = Event::new();
    let finished = AtomicUsize::new(0);
    let total = waiters.len() * rounds;
    std::thread::scope(|scope| {
        let threads: Vec<_> = waiters
            .into_iter()
            .map(|(kind, pause)| {
                let (event, finished) = (&event, &finished);
                scope.spawn(move || {
                    for round in 0..rounds {
                        assert!(
                            kind.wait(event),
                            "wait {round} ({kind:?}) missed every pulse"
                        );
                        finished.fetch_add(1, Ordering::SeqCst);
                        work(pause);
                    }
                })
            })
            .collect();
        let mut pulses = 0u64;
        while finished.load(Ordering::SeqCst) < total {
            event.set();
            event.clear();
            pulses += 1;
            assert!(pulses < 100_000_000, "waiters never finished");
            work(gap);
        }
        for thread in threads {
            join_scoped(thread);
        }
    });
    assert!(!event.is_set());
}

/// The setter publishes a value and then sets; every waiter that sees the
/// event set also sees the value. With `clear_after`, the setter clears at
/// once, after making sure every waiter is asleep in its wait (so each was
/// present at the `set` and must report `true`).
fn run_publish(waiters: Vec<WaitKind>, value: u64, clear_after: bool) {
    let event = Event::new();
    let data = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (ids, kernel_ids) = std::sync::mpsc::channel();
        let threads: Vec<_> = waiters
            .into_iter()
            .map(|kind| {
                let (event, data, ids) = (&event, &data, ids.clone());
                scope.spawn(move || {
                    ids.send(kernel_thread_id()).unwrap();
                    drop(ids);
                    assert!(kind.wait(event), "{kind:?} missed the set");
                    assert_eq!(
                        data.load(Ordering::Relaxed),
                        value,
                        "set published too early"
                    );
                })
            })
            .collect();
        drop(ids);
        let kernel_ids: Vec<Option<u32>> = kernel_ids.iter().take(threads.len()).collect();
        // Where the kernel cannot tell us a waiter is asleep, do not clear:
        // a waiter arriving after set + clear would rightly wait forever.
        let clear_after = clear_after && kernel_ids.iter().all(Option::is_some);
        if clear_after {
            for id in kernel_ids {
                wait_until_asleep(id);
            }
        }
        data.store(value, Ordering::Relaxed);
        event.set();
        if clear_after {
            event.clear();
            assert!(!event.is_set());
        }
        for thread in threads {
            join_scoped(thread);
        }
    });
}

proptest! {
    #![proptest_config(concurrent_config())]

    #[test]
    fn pulses_wake_every_waiter_even_when_cleared_at_once(
        waiters in prop::collection::vec((wait_kind_strategy(), 0..30u8), 1..=3),
        rounds in 1..8usize,
        gap in 0..30u8,
    ) {
        with_watchdog(CASE_PATIENCE, move || run_pulses(waiters, rounds, gap));
    }

    #[test]
    fn a_set_publishes_what_came_before_it(
        waiters in prop::collection::vec(wait_kind_strategy(), 1..=4),
        value in 1..u64::MAX,
        clear_after in any::<bool>(),
    ) {
        with_watchdog(CASE_PATIENCE, move || run_publish(waiters, value, clear_after));
    }
}
