//! The deadlock diagnostics' bookkeeping (`src/deadlock/`), proven by loom.
//!
//! Run with the feature on (`cargo test --release --features
//! deadlock-detection --test deadlock_bookkeeping`); this target requires it.
//!
//! # What is modelled
//!
//! - The lock-free words of each lock (`LockTracking` in
//!   `src/deadlock/hooks_on.rs`): its lazily installed `id` (a
//!   compare-exchange) and its `holder` (Relaxed stores by the holding
//!   thread, read through `&mut` by the lock's drop, which loom checks as a
//!   non-atomic access: it fails if a holder's store does not happen-before
//!   the drop).
//! - The thread-local bookkeeping (held list, seen pairs), as loom's
//!   thread-locals: one per modelled thread, dropped when it ends (which
//!   also removes its record), so each execution starts with no records.
//! - The locks' own acquire, release, parking and wake-ups, and the timed
//!   waits' timeouts (the parking seam's loom model).
//!
//! # What is treated as atomic
//!
//! The thread list, each thread's record ("blocked on X, holding Y") and
//! the lock-order graph are `std` mutexes that no loom operation runs
//! inside: loom cannot switch threads within one, so each publication,
//! clear and report snapshot is a single step. The registry enters each
//! through `sys::before_std_lock`, one loom read-modify-write on a shared
//! atomic (nothing in a real build): without it loom would not reorder
//! these steps it cannot see (its search reorders only operations on a
//! shared loom object), and the ABBA model never reached the cycle. The
//! lock-order graph's sections are not modelled (no model here needs them).
//!
//! # Global state
//!
//! Those `std` structures are process-wide: they outlive an execution, and
//! every model in this binary shares them (and loom's thread ids repeat
//! from one model to the next). So the models here run one at a time
//! ([`one_model_at_a_time`]), every thread a model creates has ended when
//! its execution does (its record goes with it), and lock ids keep counting
//! across executions (a fresh lock never reuses one): each execution starts
//! with no record and reports nothing but its own threads and locks.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread::{self, ThreadId};
use verisync::deadlock::{blocked_threads, detect, BlockedThread, LockId, LockInfo};
use verisync::{Event, Mutex};

/// Runs the models of this binary one after the other (see "Global state").
fn one_model_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static MODELS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    MODELS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `thread`'s entry in `dump`, if it is blocked.
fn entry_of(dump: &[BlockedThread], thread: ThreadId) -> Option<&BlockedThread> {
    dump.iter().find(|blocked| blocked.thread.id == thread)
}

/// Every lock a report names: those waited for and those held.
fn locks_named(dump: &[BlockedThread]) -> impl Iterator<Item = &LockInfo> {
    dump.iter().flat_map(|blocked| {
        blocked
            .lock
            .iter()
            .chain(blocked.holds.iter().map(|held| &held.lock))
    })
}

/// Two threads use one lock for the first time at once, so both may find
/// it without an id and draw one: the compare-exchange installs one and the
/// loser adopts it. A report taken while one holds the lock and the other
/// waits for it names it by one id.
#[test]
fn two_first_uses_of_one_lock_agree_on_its_id() {
    let _alone = one_model_at_a_time();
    static BOTH_LISTED: AtomicUsize = AtomicUsize::new(0);
    BOTH_LISTED.store(0, Relaxed);
    loom::model(|| {
        let lock = Arc::new(Mutex::with_name("first-used", ()));
        let release = Arc::new(Event::new());
        // Holds the lock while blocked in `Event::wait`: listed with it.
        let holder = thread::spawn({
            let (lock, release) = (Arc::clone(&lock), Arc::clone(&release));
            move || {
                let _held = lock.lock();
                release.wait();
            }
        });
        let observer = thread::spawn({
            let release = Arc::clone(&release);
            move || {
                let dump = blocked_threads();
                let cycles = detect();
                release.set();
                (dump, cycles)
            }
        });
        // The main thread's first use races the holder's.
        drop(lock.lock());
        let main = thread::current().id();
        let holder_id = holder.thread().id();
        holder.join().unwrap();
        let (dump, cycles) = observer.join().unwrap();

        assert!(cycles.is_empty(), "a cycle where there is none: {cycles:?}");
        let ids: HashSet<LockId> = locks_named(&dump).map(|lock| lock.id).collect();
        assert!(
            ids.len() <= 1,
            "one lock under several ids {ids:?} in one report: {dump:#?}"
        );
        let holds = entry_of(&dump, holder_id).is_some_and(|entry| entry.holds.len() == 1);
        let waits = entry_of(&dump, main).is_some_and(|entry| entry.lock.is_some());
        if holds && waits {
            BOTH_LISTED.fetch_add(1, Relaxed);
        }
    });
    let both_listed = BOTH_LISTED.load(Relaxed);
    eprintln!("executions reporting the holder and the waiter together: {both_listed}");
    assert!(
        both_listed > 0,
        "loom never reported the holder and the waiter together: the ids were never compared"
    );
}

/// A waiter publishes "blocked on the lock" while the holder unlocks and
/// wakes it: whichever comes first, once the waiter has its lock no report
/// lists it as waiting (checked by the waiter itself, and by an observer
/// that reads the waiter's "got it" flag before its report), and no report
/// shows a cycle.
#[test]
fn a_waiter_that_got_its_lock_is_not_listed_as_waiting() {
    let _alone = one_model_at_a_time();
    static WAITER_LISTED: AtomicUsize = AtomicUsize::new(0);
    WAITER_LISTED.store(0, Relaxed);
    loom::model(|| {
        let lock = Arc::new(Mutex::with_name("contended", ()));
        let got_it = Arc::new(AtomicBool::new(false));
        let held = lock.lock();
        let waiter = thread::spawn({
            let (lock, got_it) = (Arc::clone(&lock), Arc::clone(&got_it));
            move || {
                let guard = lock.lock();
                let me = thread::current().id();
                let dump = blocked_threads();
                assert!(
                    entry_of(&dump, me).is_none(),
                    "the waiter has its lock but is listed as blocked: {dump:#?}"
                );
                assert!(detect().is_empty());
                // Release: the observer that sees it sees the entry cleared.
                got_it.store(true, Ordering::Release);
                drop(guard);
            }
        });
        let waiter_id = waiter.thread().id();
        let observer = thread::spawn({
            let got_it = Arc::clone(&got_it);
            move || {
                let had_it = got_it.load(Ordering::Acquire);
                let dump = blocked_threads();
                let cycles = detect();
                assert!(cycles.is_empty(), "a cycle where there is none: {cycles:?}");
                if let Some(entry) = entry_of(&dump, waiter_id) {
                    assert!(!had_it, "stale entry: the waiter has its lock: {entry:#?}");
                    assert_eq!(entry.operation, "Mutex::lock");
                    let waits_for = entry.lock.as_ref().and_then(|lock| lock.name);
                    assert_eq!(waits_for, Some("contended"));
                    assert!(entry.holds.is_empty(), "holds nothing: {entry:#?}");
                    WAITER_LISTED.fetch_add(1, Relaxed);
                }
                // The holder never blocks: never listed.
                assert!(dump.iter().all(|blocked| blocked.thread.id == waiter_id));
            }
        });
        // The unlock and its wake-up race the waiter's publication.
        drop(held);
        waiter.join().unwrap();
        observer.join().unwrap();
        assert!(blocked_threads().is_empty());
    });
    let listed = WAITER_LISTED.load(Relaxed);
    eprintln!("executions whose observer saw the waiter waiting: {listed}");
    assert!(listed > 0, "loom never showed the waiter waiting");
}

/// Two threads take two locks in opposite orders; the main thread's second
/// acquisition is a timed wait, so every execution ends (loom explores its
/// timeout at every point; when it gives up, it releases its first lock and
/// the other thread gets it). A third thread's `detect()` finds nothing or
/// exactly the real cycle: both threads, each waiting for the lock the
/// other holds, each holding the one it took first. Never a false cycle
/// (none at all once either thread is seen past its second acquisition:
/// the deadlock is over then); and loom does reach the cycle.
///
/// Only one of the two waits is timed: loom runs a timed wait's "did the
/// deadline pass" step right after it parks, so keeping a second timed
/// waiter parked would cost a preemption more (a third, past the bound of
/// 2) before the detector could see both.
#[test]
fn detect_reports_the_real_abba_cycle_or_nothing() {
    let _alone = one_model_at_a_time();
    static CYCLES_FOUND: AtomicUsize = AtomicUsize::new(0);
    CYCLES_FOUND.store(0, Relaxed);
    loom::model(|| {
        let a = Arc::new(Mutex::with_name("A", ()));
        let b = Arc::new(Mutex::with_name("B", ()));
        // Set (Release) once each thread stops waiting for its second lock.
        let main_done = Arc::new(AtomicBool::new(false));
        let other_done = Arc::new(AtomicBool::new(false));
        let other = thread::spawn({
            let (a, b, done) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&other_done));
            move || {
                let _b = b.lock();
                drop(a.lock());
                done.store(true, Ordering::Release);
            }
        });
        let detector = thread::spawn({
            let (main_done, other_done) = (Arc::clone(&main_done), Arc::clone(&other_done));
            move || {
                let over = main_done.load(Ordering::Acquire) || other_done.load(Ordering::Acquire);
                let cycles = detect();
                assert!(
                    !over || cycles.is_empty(),
                    "a cycle reported after it ended: {cycles:#?}"
                );
                cycles
            }
        });
        {
            let _a = a.lock();
            // Any timeout: the model has no clock, it explores both ways.
            drop(b.try_lock_for(Duration::from_secs(1)));
            main_done.store(true, Ordering::Release);
        }
        let (main_id, other_id) = (thread::current().id(), other.thread().id());
        other.join().unwrap();
        let cycles = detector.join().unwrap();

        assert!(cycles.len() <= 1, "one cycle at most: {cycles:#?}");
        if let Some(cycle) = cycles.first() {
            let mut members: Vec<(ThreadId, &str, Vec<&str>)> = cycle
                .threads
                .iter()
                .map(|member| {
                    let holds = member.holds.iter().filter_map(|held| held.lock.name);
                    (
                        member.thread.id,
                        member.waits_for.name.unwrap_or("?"),
                        holds.collect(),
                    )
                })
                .collect();
            members.sort_by_key(|(thread, ..)| *thread == other_id);
            assert_eq!(
                members,
                [(main_id, "B", vec!["A"]), (other_id, "A", vec!["B"])],
                "not the real cycle: {cycle:#?}"
            );
            CYCLES_FOUND.fetch_add(1, Relaxed);
        }
    });
    let found = CYCLES_FOUND.load(Relaxed);
    eprintln!("executions whose detect() found the cycle: {found}");
    assert!(found > 0, "loom never reached the deadlock");
}

/// The holder word: thread 1 takes the lock (racing the main thread's
/// `try_lock`, whose release clears the word) and leaks the guard; the main
/// thread then drops the lock, whose drop reads the word (loom checks that
/// every holder's store happens-before that read) and tells thread 1. From
/// then on no report lists the lock among thread 1's holds: neither its
/// published copy (thread 1 blocked while the lock is dropped) nor its own
/// held list (published again by its next wait).
#[test]
fn a_leaked_guard_of_a_dropped_lock_leaves_no_entry() {
    let _alone = one_model_at_a_time();
    static LISTED_WHILE_DROPPED: AtomicUsize = AtomicUsize::new(0);
    static LISTED_AFTER: AtomicUsize = AtomicUsize::new(0);
    LISTED_WHILE_DROPPED.store(0, Relaxed);
    LISTED_AFTER.store(0, Relaxed);
    loom::model(|| {
        let lock = Arc::new(Mutex::with_name("leaked", ()));
        let leaked = Arc::new(Event::new());
        let dropped = Arc::new(Event::new());
        let finish = Arc::new(Event::new());
        let past_dropped = Arc::new(AtomicBool::new(false));
        let leaker = thread::spawn({
            let lock = Arc::clone(&lock);
            let (leaked, dropped, finish) = (
                Arc::clone(&leaked),
                Arc::clone(&dropped),
                Arc::clone(&finish),
            );
            let past_dropped = Arc::clone(&past_dropped);
            move || {
                std::mem::forget(lock.lock());
                drop(lock);
                leaked.set();
                // Published, holding the leaked lock, until it is dropped.
                dropped.wait();
                past_dropped.store(true, Ordering::Release);
                // Published again, from the thread-local held list.
                finish.wait();
            }
        });
        let leaker_id = leaker.thread().id();
        // Races the leaker's acquisition: its release clears the holder.
        drop(lock.try_lock());
        leaked.wait();
        let lock = Arc::try_unwrap(lock).ok();
        drop(lock.expect("the leaker dropped its handle"));

        let while_dropped = blocked_threads();
        if let Some(entry) = entry_of(&while_dropped, leaker_id) {
            assert!(
                entry.holds.is_empty(),
                "the dropped lock is still listed: {entry:#?}"
            );
            LISTED_WHILE_DROPPED.fetch_add(1, Relaxed);
        }
        dropped.set();
        let past = past_dropped.load(Ordering::Acquire);
        let after = blocked_threads();
        if let Some(entry) = entry_of(&after, leaker_id) {
            assert!(
                entry.holds.is_empty(),
                "the dropped lock is still listed: {entry:#?}"
            );
            if past {
                LISTED_AFTER.fetch_add(1, Relaxed);
            }
        }
        assert!(detect().is_empty());
        finish.set();
        leaker.join().unwrap();
    });
    let (while_dropped, after) = (
        LISTED_WHILE_DROPPED.load(Relaxed),
        LISTED_AFTER.load(Relaxed),
    );
    eprintln!(
        "executions listing the leaker blocked while the lock was dropped: {while_dropped}, \
         in its next wait: {after}"
    );
    assert!(
        while_dropped > 0 && after > 0,
        "loom never listed the leaker"
    );
}
