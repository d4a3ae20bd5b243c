//! The list of lock-order violations keeps one entry per inversion in the
//! code: locks made per request and taken in the wrong order on every
//! request are one violation, not one per request (which filled the list,
//! capped at 1024, so that a different inversion found later was never
//! reported). Its own test binary: before the fix it filled the list that
//! every test of a binary shares.
#![cfg(feature = "deadlock-detection")]

mod common;

use common::{with_watchdog, PATIENCE};
use verisync::deadlock::{self, LockOrderViolation};
use verisync::Mutex;

fn naming(name: &str) -> Vec<LockOrderViolation> {
    deadlock::lock_order_violations()
        .into_iter()
        .filter(|violation| {
            violation
                .steps
                .iter()
                .any(|step| step.first.lock.name == Some(name) || step.then.lock.name == Some(name))
        })
        .collect()
}

/// One request's work: two fresh locks, taken in both orders.
fn one_request() {
    let first = Mutex::with_name("per-request-first", ());
    let second = Mutex::with_name("per-request-second", ());
    drop((first.lock(), second.lock()));
    let _second = second.lock();
    let _first = first.lock();
}

#[test]
fn a_later_distinct_inversion_is_reported_after_many_per_request_ones() {
    with_watchdog(PATIENCE, || {
        for _ in 0..1100 {
            one_request();
        }
        assert_eq!(
            naming("per-request-first").len(),
            1,
            "one inversion in the code, kept once"
        );
        let x = Mutex::with_name("late-X", ());
        let y = Mutex::with_name("late-Y", ());
        drop((x.lock(), y.lock()));
        {
            let _y = y.lock();
            let _x = x.lock();
        }
        let total = deadlock::lock_order_violations().len();
        assert_eq!(
            naming("late-X").len(),
            1,
            "the X/Y inversion is missing from lock_order_violations() ({total} kept)"
        );
        // The same inversion again, by other calls (other lines): another
        // path in the code, kept too.
        let (x2, y2) = (
            Mutex::with_name("late-X", ()),
            Mutex::with_name("late-Y", ()),
        );
        drop((x2.lock(), y2.lock()));
        drop((y2.lock(), x2.lock()));
        assert_eq!(naming("late-X").len(), 2);
    });
}
