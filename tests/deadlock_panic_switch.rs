//! `deadlock::panic_on_lock_order_violation(true)` panics at the
//! acquisition that closes a lock-order cycle, before taking the lock. Its
//! own binary: the switch is process-wide.
#![cfg(feature = "deadlock-detection")]

use std::panic::{catch_unwind, AssertUnwindSafe};

use verisync::{deadlock, Mutex};

/// The switch is process-wide: the tests of this file take turns.
static SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_closing_acquisition_panics_with_the_report_and_leaves_nothing_locked() {
    let _turn = SWITCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    deadlock::panic_on_lock_order_violation(true);
    let a = Mutex::with_name("switch-A", ());
    let b = Mutex::with_name("switch-B", ());
    {
        let _a = a.lock();
        let _b = b.lock();
    }
    let closing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _b = b.lock();
        let _a = a.lock();
    }));
    let message = *closing.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("lock order violation"), "{message}");
    assert!(message.contains("took switch-B"), "{message}");
    assert!(!a.is_locked() && !b.is_locked());
    // The thread's records are consistent: the same locks work normally.
    let _a = a.lock();
    drop(b.lock());
}

fn closes(first: &Mutex<()>, second: &Mutex<()>) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        let _first = first.lock();
        let _second = second.lock();
    }))
    .is_err()
}

/// The order.rs doc: "The acquisition closing each cycle still sees its
/// violation (the panic switch panics every time)". The same inversion of
/// the same two locks, done again (by the same thread, then by another
/// thread) after the first panic.
#[test]
fn the_switch_panics_every_time_the_inversion_is_done() {
    let _turn = SWITCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    deadlock::panic_on_lock_order_violation(true);
    let a = Mutex::with_name("again-A", ());
    let b = Mutex::with_name("again-B", ());
    assert!(!closes(&a, &b), "the first order is fine");
    assert!(closes(&b, &a), "first inversion panics");
    let again_same_thread = closes(&b, &a);
    let again_other_thread = std::thread::scope(|s| s.spawn(|| closes(&b, &a)).join().unwrap());
    deadlock::panic_on_lock_order_violation(false);
    assert!(
        again_same_thread && again_other_thread,
        "the repeated inversion panicked: same thread {again_same_thread}, \
         other thread {again_other_thread}"
    );
}
