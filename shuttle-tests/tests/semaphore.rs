//! shuttle: `verisync::Semaphore` with 3–5 threads running random scripts
//! of blocking, non-blocking and timed acquires of one or several permits,
//! released by dropping the permit or by `forget` and `release`. A shadow
//! count of the permits held checks that never more than the semaphore's
//! permits are out at once; at the end every permit is back and nobody
//! stayed blocked (shuttle fails a deadlocked execution).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shuttle::sync::Arc;
use shuttle::thread;
use verisync::{Semaphore, SemaphorePermit};
use verisync_shuttle_tests::{check, let_others_run, random_below};

/// Operations per thread.
const OPERATIONS: usize = 4;

/// A timeout long in name only: the model has no clock, and a timed wait
/// ends after a random number of scheduling rounds.
const TIMEOUT: Duration = Duration::from_secs(1);

/// The semaphore and a shadow count of the permits held (a plain std
/// atomic: bookkeeping outside the model, read and written only by the
/// thread that holds the permits in question).
struct Shared {
    semaphore: Semaphore,
    permits: usize,
    held: AtomicUsize,
}

/// One attempt to take permits: which call, and how many.
fn try_take(shared: &Shared) -> Option<SemaphorePermit<'_>> {
    let count = 1 + random_below(shared.permits);
    let semaphore = &shared.semaphore;
    match random_below(5) {
        0 => Some(semaphore.acquire()),
        1 => Some(semaphore.acquire_many(count)),
        2 => semaphore.try_acquire(),
        3 => semaphore.try_acquire_many(count),
        _ => semaphore.try_acquire_many_for(count, TIMEOUT),
    }
}

fn run_script(shared: &Shared) {
    for _ in 0..OPERATIONS {
        let Some(permit) = try_take(shared) else {
            let_others_run();
            continue;
        };
        let count = permit.count();
        let held = shared.held.fetch_add(count, Ordering::Relaxed) + count;
        assert!(
            held <= shared.permits,
            "{held} permits held at once, of {}",
            shared.permits
        );
        let_others_run();
        shared.held.fetch_sub(count, Ordering::Relaxed);
        if random_below(2) == 0 {
            drop(permit);
        } else {
            permit.forget();
            shared
                .semaphore
                .release(count)
                .expect("giving back what was taken never exceeds the bound");
        }
    }
}

#[test]
fn permits_are_never_over_issued_and_all_come_back() {
    check(|| {
        let permits = 1 + random_below(3);
        let bounded = random_below(2) == 0;
        let shared = Arc::new(Shared {
            semaphore: if bounded {
                Semaphore::bounded(permits)
            } else {
                Semaphore::new(permits)
            },
            permits,
            held: AtomicUsize::new(0),
        });
        let threads = 3 + random_below(3);
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || run_script(&shared))
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(shared.held.load(Ordering::Relaxed), 0);
        assert_eq!(
            shared.semaphore.available_permits(),
            permits,
            "permits lost or created"
        );
    });
}
