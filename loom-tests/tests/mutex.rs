//! loom: `verisync::Mutex` excludes, never loses a wake-up, and never loses
//! the lock when a timed waiter gives up just as it is handed over.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::{Mutex, MutexGuard};

/// Enters a critical section: the shadow count of threads inside must be 0.
fn enter(inside: &AtomicUsize) {
    assert_eq!(
        inside.fetch_add(1, Ordering::SeqCst),
        0,
        "two threads hold the lock"
    );
}

fn leave(inside: &AtomicUsize) {
    inside.fetch_sub(1, Ordering::SeqCst);
}

#[test]
fn lock_excludes_and_every_increment_lands() {
    loom::model(|| {
        let counter = Arc::new(Mutex::new(0usize));
        let inside = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (counter, inside) = (Arc::clone(&counter), Arc::clone(&inside));
                thread::spawn(move || {
                    let mut guard = counter.lock();
                    enter(&inside);
                    *guard += 1;
                    leave(&inside);
                })
            })
            .collect();
        {
            let mut guard = counter.lock();
            enter(&inside);
            *guard += 1;
            leave(&inside);
        }
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(*counter.lock(), 3);
        assert!(!counter.is_locked());
    });
}

#[test]
fn try_lock_never_succeeds_while_held() {
    loom::model(|| {
        let lock = Arc::new(Mutex::new(0usize));
        let inside = Arc::new(AtomicUsize::new(0));
        let other = {
            let (lock, inside) = (Arc::clone(&lock), Arc::clone(&inside));
            thread::spawn(move || {
                if let Some(mut guard) = lock.try_lock() {
                    enter(&inside);
                    *guard += 1;
                    leave(&inside);
                    true
                } else {
                    false
                }
            })
        };
        {
            let mut guard = lock.lock();
            enter(&inside);
            *guard += 10;
            leave(&inside);
        }
        let took_it = other.join().unwrap();
        assert_eq!(*lock.lock(), if took_it { 11 } else { 10 });
    });
}

/// The timeout-versus-hand-off race: the holder releases (fairly, so the lock
/// is handed to the waiter) exactly while the waiter's timeout fires. Either
/// the waiter gets the lock, or it times out and the lock ends up free —
/// never held by nobody.
#[test]
fn a_timed_waiter_never_strands_a_fair_hand_off() {
    loom::model(|| {
        let lock = Arc::new(Mutex::new(0usize));
        let held = lock.lock();
        let waiter = {
            let lock = Arc::clone(&lock);
            thread::spawn(
                move || match lock.try_lock_for(std::time::Duration::from_secs(1)) {
                    Some(mut guard) => {
                        *guard += 1;
                        true
                    }
                    None => false,
                },
            )
        };
        MutexGuard::unlock_fair(held);
        let got_it = waiter.join().unwrap();
        let guard = lock
            .try_lock()
            .expect("the lock was stranded: nobody holds it, yet it is locked");
        assert_eq!(*guard, usize::from(got_it));
    });
}

/// Same race with the ordinary unlock; the seam model chooses `be_fair`
/// (false: release and wake; true: hand off) at the unlock, so both run.
#[test]
fn a_timed_waiter_never_strands_an_unlock() {
    loom::model(|| {
        let lock = Arc::new(Mutex::new(0usize));
        let held = lock.lock();
        let waiter = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                lock.try_lock_for(std::time::Duration::from_secs(1))
                    .is_some()
            })
        };
        drop(held);
        waiter.join().unwrap();
        assert!(lock.try_lock().is_some(), "the lock was stranded");
    });
}

/// Three threads contend, one with a timeout; whatever happens, everyone
/// finishes (no lost wake-up) and exclusion holds. The bound keeps it fast.
#[test]
fn three_contenders_with_a_timeout_all_finish() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let lock = Arc::new(Mutex::new(0usize));
        let inside = Arc::new(AtomicUsize::new(0));
        let blocking: Vec<_> = (0..2)
            .map(|_| {
                let (lock, inside) = (Arc::clone(&lock), Arc::clone(&inside));
                thread::spawn(move || {
                    let mut guard = lock.lock();
                    enter(&inside);
                    *guard += 1;
                    leave(&inside);
                })
            })
            .collect();
        let timed = match lock.try_lock_for(std::time::Duration::from_secs(1)) {
            Some(mut guard) => {
                enter(&inside);
                *guard += 1;
                leave(&inside);
                1
            }
            None => 0,
        };
        for thread in blocking {
            thread.join().unwrap();
        }
        assert_eq!(*lock.lock(), 2 + timed);
    });
}

/// Unlocks with a second waiter still queued, each one choosing (in the
/// seam model) to hand off or to release: hand-offs pass the lock from
/// thread to thread without it ever being free, mixed with releases, and
/// nobody is left parked.
#[test]
fn fair_and_unfair_unlocks_through_a_queue_of_two() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let lock = Arc::new(Mutex::new(0usize));
        let inside = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (lock, inside) = (Arc::clone(&lock), Arc::clone(&inside));
                thread::spawn(move || {
                    let mut guard = lock.lock();
                    enter(&inside);
                    *guard += 1;
                    leave(&inside);
                })
            })
            .collect();
        {
            let mut guard = lock.lock();
            enter(&inside);
            *guard += 1;
            leave(&inside);
        }
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(*lock.lock(), 3);
    });
}
