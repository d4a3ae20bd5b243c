//! Dropping many items whose `Drop` may panic: [`DropAll`] drops each one,
//! goes on past a panic, and passes the first panic on once every item is
//! dropped — so one panicking item cannot leak the others (what a `Vec`
//! does for its elements, for storages that drop their items one by one).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::panic_payload::drop_panic_payload;

/// Collects the first panic of a series of drops.
pub(crate) struct DropAll {
    first_panic: Option<Box<dyn Any + Send>>,
}

impl DropAll {
    pub(crate) fn new() -> Self {
        Self { first_panic: None }
    }

    /// Runs `drop_one` (which drops one item), keeping its panic, if any,
    /// for [`finish`](Self::finish). Later panics are disposed of: one
    /// panic can be passed on. (Their payloads are user data whose own
    /// `Drop` may panic: [`drop_panic_payload`] keeps that in.)
    pub(crate) fn drop_one(&mut self, drop_one: impl FnOnce()) {
        // `AssertUnwindSafe`: after a panic the only state used is the
        // storage being dropped, which the caller walks on regardless.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(drop_one)) {
            if self.first_panic.is_none() {
                self.first_panic = Some(panic);
            } else {
                drop_panic_payload(panic);
            }
        }
    }

    /// Drops each of `items` (see [`drop_one`](Self::drop_one)).
    pub(crate) fn drop_each<T>(&mut self, items: impl IntoIterator<Item = T>) {
        for item in items {
            self.drop_one(|| drop(item));
        }
    }

    /// Passes the first panic on — unless the thread is already unwinding
    /// (the storage is being dropped during another panic), where a second
    /// panic leaving a destructor would abort the process.
    pub(crate) fn finish(self) {
        if let Some(panic) = self.first_panic {
            if std::thread::panicking() {
                drop_panic_payload(panic);
            } else {
                resume_unwind(panic);
            }
        }
    }
}
