//! Bounded spinning before parking.
//!
//! A lock holder usually lets go within a few hundred nanoseconds, far less
//! than a park/unpark round trip, so a waiter retries a few times with an
//! exponentially growing pause, then yields, then parks.
//!
//! Under loom one retry is allowed and it does not yield: the caller's
//! re-read of the state word is already a loom branch point, so the model
//! explores "retry once, then park" without an unbounded loop. (It must not
//! be `loom::thread::yield_now()`: loom then runs the yielding thread only
//! after every other thread has blocked or finished, so a waiter would never
//! reach `park` while the holder is still about to unlock, and the
//! park-versus-unlock races would go unexplored.)
//!
//! Under shuttle the same holds: one retry, no yield. Every atomic access
//! is a shuttle scheduling point already, and `shuttle::thread::yield_now`
//! is a hint to run the yielder later (the PCT scheduler lowers its
//! priority), which would hide the same races.

use std::time::Instant;

/// Counts the spins of one wait.
#[derive(Default)]
pub(crate) struct SpinWait {
    counter: u32,
}

impl SpinWait {
    /// [`spin`](Self::spin) for a wait that ends at `deadline` (`None`:
    /// never): `false` at once when the deadline has passed, so a wait
    /// that has already timed out (a poll with a zero timeout) goes straight
    /// to its last attempt instead of spinning and yielding up to ten times.
    /// Beside a busy thread on the same CPU each yield may hand the CPU
    /// away for a whole scheduler slice: a `try_get_for(Duration::ZERO)` on
    /// an empty queue took about 1 ms there, and polling
    /// `wait(…, Some(Duration::ZERO), FirstCompleted)` 200,000 times made
    /// 1.4 million `sched_yield` calls.
    ///
    /// Under loom and shuttle the deadline is not looked at: the models have
    /// no clock, and reading the real one would make a run depend on time.
    #[inline]
    pub(crate) fn spin_before(&mut self, deadline: Option<Instant>) -> bool {
        #[cfg(not(any(verisync_loom, verisync_shuttle)))]
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return false;
        }
        #[cfg(any(verisync_loom, verisync_shuttle))]
        let _ = deadline;
        self.spin()
    }

    /// Spins (or yields) once; `false` when the caller should park instead.
    #[inline]
    pub(crate) fn spin(&mut self) -> bool {
        #[cfg(not(any(verisync_loom, verisync_shuttle)))]
        {
            if self.counter >= 10 {
                return false;
            }
            self.counter += 1;
            if self.counter <= 3 {
                for _ in 0..(1u32 << self.counter) {
                    core::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
            true
        }
        #[cfg(any(verisync_loom, verisync_shuttle))]
        {
            if self.counter >= 1 {
                return false;
            }
            self.counter += 1;
            true
        }
    }
}

/// Waiting for another thread to finish a step it has already begun (a
/// ring slot it claimed but has not yet published): spin, then yield.
///
/// Production: `crossbeam_utils::Backoff`. Under loom and shuttle every wait
/// is the model's `yield_now`, which is exactly right here: the other thread
/// must run for this one to make progress, and the model schedules it
/// (shuttle's PCT scheduler also lowers the yielder's priority, so a
/// spinning thread cannot starve the one it waits for).
pub(crate) struct Backoff {
    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    inner: crossbeam_utils::Backoff,
}

impl Backoff {
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(any(verisync_loom, verisync_shuttle)))]
            inner: crossbeam_utils::Backoff::new(),
        }
    }

    /// A lost race (a CAS failed): retry almost at once.
    #[inline]
    pub(crate) fn spin(&self) {
        #[cfg(not(any(verisync_loom, verisync_shuttle)))]
        self.inner.spin();
        #[cfg(verisync_loom)]
        loom::thread::yield_now();
        #[cfg(verisync_shuttle)]
        shuttle::thread::yield_now();
    }

    /// Another thread is mid-step: give it time, yielding if it takes long.
    #[inline]
    pub(crate) fn snooze(&self) {
        #[cfg(not(any(verisync_loom, verisync_shuttle)))]
        self.inner.snooze();
        #[cfg(verisync_loom)]
        loom::thread::yield_now();
        #[cfg(verisync_shuttle)]
        shuttle::thread::yield_now();
    }
}

/// How many spin-loop hints [`after_a_lost_race`] waits: about 400 ns on
/// the project's AMD EPYC machine (25 ns a hint), 50–600 ns elsewhere.
#[cfg(not(any(verisync_loom, verisync_shuttle)))]
const LOST_RACE_PAUSES: u32 = 16;

/// After losing a compare-exchange race on a word that another core is
/// changing right now: step back a moment before looking again, so that
/// the other core finishes a run of operations with the word's cache line
/// in its own cache, instead of both cores taking the line in turn at
/// every operation (measured on the contended semaphore: 16–24 ns per
/// acquire+release without, 7–10 ns with). Under loom and shuttle nothing:
/// the models explore the retry itself.
#[inline]
pub(crate) fn after_a_lost_race() {
    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    for _ in 0..LOST_RACE_PAUSES {
        core::hint::spin_loop();
    }
}

/// How many times [`yield_while`] yields at most: about 30–70 µs on the
/// project's machine when the yielding thread has its CPU to itself.
#[cfg(not(any(verisync_loom, verisync_shuttle)))]
const YIELDS_WHILE_BUSY: u32 = 64;

/// Yields the CPU while `busy()` holds, at most a bounded number of times
/// (so a caller must not rely on `busy()` being false afterwards). Between
/// two looks the caller touches no shared memory, so the threads it waits
/// for run with the cache lines they write in their own caches; and a
/// thread that shares the caller's CPU gets it. Under loom and shuttle
/// nothing: the models explore the caller's retry itself, and a model's
/// yield would hide the races (module docs).
#[inline]
pub(crate) fn yield_while(mut busy: impl FnMut() -> bool) {
    #[cfg(not(any(verisync_loom, verisync_shuttle)))]
    for _ in 0..YIELDS_WHILE_BUSY {
        if !busy() {
            return;
        }
        std::thread::yield_now();
    }
    #[cfg(any(verisync_loom, verisync_shuttle))]
    let _ = &mut busy;
}
