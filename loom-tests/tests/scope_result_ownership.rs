//! A loom model of the scoped task's ownership word (`HANDLE_GONE`
//! / `SETTLED`, `scoped_task.rs`) racing its two sides — the body dropping
//! the handle and the worker settling the task. It fails if either
//! `fetch_or` is split into a load and a store (checked by hand, review 15:
//! fails at every preemption bound from 2), which the models of
//! `pool.rs` do not catch.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use loom::thread;
use verisync::ThreadPool;

/// A result that notes being dropped on the scope's own thread after the
/// body returned: only the scope's last pass drops a result there, and it
/// must not for a task whose handle the body dropped (the handle or the
/// settling worker drops that result, before the scope closes).
struct NotesLateDrop<'a> {
    body: thread::ThreadId,
    body_returned: &'a AtomicBool,
    dropped_late: &'a AtomicBool,
}

impl Drop for NotesLateDrop<'_> {
    fn drop(&mut self) {
        if thread::current().id() == self.body && self.body_returned.load(Relaxed) {
            self.dropped_late.store(true, Relaxed);
        }
    }
}

/// The body drops a task's handle while a worker settles the task. Exactly
/// one of the two sees the other's bit in the ownership word and drops the
/// result, before the scope closes; the scope's last pass never sees it.
/// Splitting either `fetch_or` into a load and a store lets both read the
/// word before either writes: then the result is left to the scope's last
/// pass (or to the last `Arc`), after the scope closed — this model then
/// fails. (A drop counter cannot show it under loom: the worker's settle
/// and its drop of the job's `Arc` are one step for loom, so the scope's
/// share is always the last and drops the result before `scope` returns.)
#[test]
fn a_handle_dropped_while_its_task_settles_leaves_nothing_to_the_scopes_last_pass() {
    // The preemption bound from LOOM_MAX_PREEMPTIONS, as every model here.
    loom::model(|| {
        let pool = ThreadPool::new(1);
        let body_returned = AtomicBool::new(false);
        let dropped_late = AtomicBool::new(false);
        let body = thread::current().id();
        pool.scope(|s| {
            let (body_returned, dropped_late) = (&body_returned, &dropped_late);
            let handle = s.submit(move || NotesLateDrop {
                body,
                body_returned,
                dropped_late,
            });
            handle.wait();
            drop(handle);
            body_returned.store(true, Relaxed);
        });
        assert!(
            !dropped_late.load(Relaxed),
            "the result of a dropped handle was left to the scope's last pass"
        );
    });
}
