//! loom: `verisync::ReentrantLock` lets its owner re-enter, excludes every
//! other thread until the last level is released, and survives timeouts.

use std::cell::Cell;
use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::ReentrantLock;

#[test]
fn nested_levels_exclude_other_threads_until_the_last_release() {
    loom::model(|| {
        let lock = Arc::new(ReentrantLock::new(Cell::new(0usize)));
        let inside = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (lock, inside) = (Arc::clone(&lock), Arc::clone(&inside));
                thread::spawn(move || {
                    let outer = lock.lock();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two owners");
                    {
                        let inner = lock.lock();
                        inner.set(inner.get() + 1);
                        assert!(lock.is_owned_by_current_thread());
                    }
                    // One level released: still ours.
                    assert!(lock.is_owned_by_current_thread());
                    outer.set(outer.get() + 1);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(outer);
                    assert!(!lock.is_owned_by_current_thread());
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(lock.lock().get(), 4);
        assert!(!lock.is_locked());
    });
}

#[test]
fn a_timed_waiter_gets_the_lock_or_leaves_it_free() {
    loom::model(|| {
        let lock = Arc::new(ReentrantLock::new(Cell::new(0usize)));
        let outer = lock.lock();
        let inner = lock.lock();
        let waiter = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || match lock.try_lock_for(Duration::from_secs(1)) {
                Some(guard) => {
                    guard.set(guard.get() + 1);
                    true
                }
                None => false,
            })
        };
        drop(inner);
        // Still held at depth 1: the waiter cannot have it yet.
        outer.set(outer.get() + 10);
        drop(outer);
        let got_it = waiter.join().unwrap();
        let guard = lock.try_lock().expect("the lock was stranded");
        assert_eq!(guard.get(), 10 + usize::from(got_it));
    });
}
