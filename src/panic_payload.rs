//! Caught panics: their messages, and disposing of their payloads safely.
//!
//! Every place that catches a panic of user code (a task, a callback, an
//! item's `Ord` or `Drop`, a serde impl) goes through here. A payload is
//! user data too (`std::panic::panic_any`): its `Drop` may panic in turn,
//! and that second panic must not escape from the crate's own code.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic whose payload is not a string".to_owned()
    }
}

/// The message of a caught panic, disposing of its payload safely (see
/// [`drop_panic_payload`]).
pub(crate) fn take_panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = panic_message(&*payload);
    drop_panic_payload(payload);
    message
}

/// Drops a caught panic's payload. Its `Drop` may panic in turn; that
/// second panic must not escape (it would leave a claimed task unresolved
/// or a count half-updated). The second payload is leaked rather than
/// dropped: it could panic again.
pub(crate) fn drop_panic_payload(payload: Box<dyn Any + Send>) {
    if let Err(nested) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(nested);
    }
}

/// Drops `value`, a user type whose `Drop` may panic, where nobody is left
/// to fail (a task's handle is gone, a map was dropped with results nobody
/// took): a panic is reported on stderr, naming `what` was dropped, and
/// goes no further.
pub(crate) fn drop_reporting_panics<T>(value: T, what: &str) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        report_drop_panic(payload, what);
    }
}

#[cold]
#[inline(never)]
fn report_drop_panic(payload: Box<dyn Any + Send>, what: &str) {
    let message = take_panic_message(payload);
    eprintln!("verisync: dropping {what} panicked: {message}; the panic was caught and ignored");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("the payload's own drop");
        }
    }

    #[test]
    fn a_payload_whose_drop_panics_is_disposed_of_without_a_second_panic() {
        let payload = catch_unwind(|| std::panic::panic_any(PanicsOnDrop)).unwrap_err();
        assert_eq!(
            take_panic_message(payload),
            "a panic whose payload is not a string"
        );
        let payload = catch_unwind(|| panic!("plain {}", 1)).unwrap_err();
        assert_eq!(take_panic_message(payload), "plain 1");
    }
}
