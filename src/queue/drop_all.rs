//! Dropping many items whose `Drop` may panic: [`DropAll`] drops each one,
//! goes on past a panic, and passes the first panic on once every item is
//! dropped — so one panicking item cannot leak the others (what a `Vec`
//! does for its elements, for storages that drop their items one by one).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// Collects the first panic of a series of drops.
pub(crate) struct DropAll {
    first_panic: Option<Box<dyn Any + Send>>,
}

impl DropAll {
    pub(crate) fn new() -> Self {
        Self { first_panic: None }
    }

    /// Runs `drop_one` (which drops one item), keeping its panic, if any,
    /// for [`finish`](Self::finish). Later panics are dropped: one panic
    /// can be passed on.
    pub(crate) fn drop_one(&mut self, drop_one: impl FnOnce()) {
        // `AssertUnwindSafe`: after a panic the only state used is the
        // storage being dropped, which the caller walks on regardless.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(drop_one)) {
            self.first_panic.get_or_insert(panic);
        }
    }

    /// Passes the first panic on — unless the thread is already unwinding
    /// (the storage is being dropped during another panic), where a second
    /// panic leaving a destructor would abort the process.
    pub(crate) fn finish(self) {
        if let Some(panic) = self.first_panic {
            if !std::thread::panicking() {
                resume_unwind(panic);
            }
        }
    }
}
