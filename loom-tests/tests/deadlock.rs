//! The deadlock lesson, proven by loom.
//!
//! Thread 1 takes lock A then lock B; thread 2 takes B then A. If each gets
//! its first lock before the other's second, both wait forever. loom finds
//! that interleaving; the two classic fixes are then proven deadlock-free
//! over every interleaving: one shared reentrant lock for both names
//! (Python's `mutexA = mutexB = RLock()`), and a single global lock order.

use loom::sync::Arc;
use loom::thread;
use verisync::{Mutex, ReentrantLock};

#[test]
fn loom_finds_the_two_lock_deadlock() {
    verisync_loom_tests::assert_loom_reports_deadlock("two_locks_taken_in_opposite_orders");
}

#[test]
#[ignore = "deadlocks by design; run in a child process by loom_finds_the_two_lock_deadlock"]
fn two_locks_taken_in_opposite_orders() {
    loom::model(|| {
        let a = Arc::new(Mutex::with_name("A", 0));
        let b = Arc::new(Mutex::with_name("B", 0));
        let thread_1 = {
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            thread::spawn(move || {
                let mut first = a.lock();
                let mut second = b.lock();
                *first += 1;
                *second += 1;
            })
        };
        {
            let mut first = b.lock();
            let mut second = a.lock();
            *first += 1;
            *second += 1;
        }
        thread_1.join().unwrap();
    });
}

/// Fix 1: both names refer to one reentrant lock, so "taking B while
/// holding A" is re-entering a lock the thread already owns.
#[test]
fn one_shared_reentrant_lock_cannot_deadlock() {
    loom::model(|| {
        let shared = Arc::new(ReentrantLock::new(std::cell::Cell::new(0)));
        let (a, b) = (Arc::clone(&shared), Arc::clone(&shared));
        let thread_1 = {
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            thread::spawn(move || {
                let first = a.lock();
                let second = b.lock();
                first.set(first.get() + 1);
                second.set(second.get() + 1);
            })
        };
        {
            let first = b.lock();
            let second = a.lock();
            first.set(first.get() + 1);
            second.set(second.get() + 1);
        }
        thread_1.join().unwrap();
        assert_eq!(shared.lock().get(), 4);
    });
}

/// Fix 2: every thread takes A before B.
#[test]
fn one_global_lock_order_cannot_deadlock() {
    loom::model(|| {
        let a = Arc::new(Mutex::with_name("A", 0));
        let b = Arc::new(Mutex::with_name("B", 0));
        let thread_1 = {
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            thread::spawn(move || {
                let mut first = a.lock();
                let mut second = b.lock();
                *first += 1;
                *second += 1;
            })
        };
        {
            let mut first = a.lock();
            let mut second = b.lock();
            *first += 1;
            *second += 1;
        }
        thread_1.join().unwrap();
        assert_eq!((*a.lock(), *b.lock()), (2, 2));
    });
}
