//! What a scope's tasks leave behind is settled as each task finishes
//! (`scoped_task.rs`: dropped by the handle or the settling thread, or left
//! with the scope under the task's handle state at that moment) and the
//! rest dropped after the scope's wait. These tests mix every kind of
//! leftover in one scope — unrun closures (cancelled), unjoined results
//! whose handle is gone, results whose handle lives (forgotten), results
//! whose handle a running task drops while the scope already waits — and
//! check that each is dropped exactly once, before `scope` returns.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use verisync::{Event, ThreadPool};

use common::{with_watchdog, PATIENCE};

/// Counts its drops in a borrowed counter: a drop after the scope ended
/// would touch a dead stack slot, a second drop shows in the count.
struct CountsDrops<'a>(&'a AtomicUsize);

impl Drop for CountsDrops<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn every_kind_of_leftover_is_dropped_once_before_scope_returns() {
    with_watchdog(PATIENCE, || {
        let pool = ThreadPool::new(2);
        for round in 0..200 {
            let (closures, results) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let gate = Event::new();
            let ran_anyway = pool.scope(|s| {
                let (closures, results, gate) = (&closures, &results, &gate);
                // Holds one worker until the cancels below are done.
                s.submit(move || gate.wait());
                // Handle gone at once: the result is the scope's.
                for _ in 0..3 {
                    drop(s.submit(move || CountsDrops(results)));
                }
                // A handle that a later task drops, maybe while the scope
                // already waits (noted live, then gone).
                let handed_on = s.submit(move || CountsDrops(results));
                s.submit(move || {
                    handed_on.wait();
                    drop(handed_on);
                });
                // Forgotten: its result is dropped by the scope's last pass.
                std::mem::forget(s.submit(move || CountsDrops(results)));
                // Cancelled while queued behind the gate: the closure never
                // runs and is dropped by the scope.
                let guard = CountsDrops(closures);
                let cancelled = s.submit(move || {
                    let _guard = &guard;
                    CountsDrops(results)
                });
                let ran_anyway = if cancelled.cancel() {
                    drop(cancelled);
                    false
                } else {
                    // Already started (a worker got to it first): it ran.
                    drop(cancelled.join());
                    true
                };
                gate.set();
                ran_anyway
            });
            // Each result once: 3 gone, 1 handed on, 1 forgotten, and the
            // cancelled task's if it ran anyway; its closure's guard once.
            assert_eq!(closures.load(SeqCst), 1, "round {round}: closure drops");
            let expected = if ran_anyway { 6 } else { 5 };
            assert_eq!(
                results.load(SeqCst),
                expected,
                "round {round}: result drops"
            );
        }
    });
}
