//! `deadlock::panic_on_lock_order_violation(true)` panics at the
//! acquisition that closes a lock-order cycle, before taking the lock. Its
//! own binary: the switch is process-wide.
#![cfg(feature = "deadlock-detection")]

use verisync::{deadlock, Mutex};

#[test]
fn the_closing_acquisition_panics_with_the_report_and_leaves_nothing_locked() {
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
