//! [`watchdog`]: a background thread that runs [`detect`](super::detect)
//! every period and reports each deadlock once.
//!
//! # Which deadlocks are the same
//!
//! A deadlock's identity is its cycle: its threads, the lock each waits
//! for, and which of the thread's waits it is (its `episode`, see
//! `registry::Blocked`), never the instant a wait started. A thread that
//! gives up a timed wait and waits for the same lock again, without
//! having got it in between, keeps its episode: a deadlock whose threads
//! retry timed waits in a loop is the same deadlock, however long a
//! thread takes between two retries (a loaded machine may keep it off the
//! processor for many periods, and a scan may find it between retries).
//! A deadlock ends when one of its threads gets the lock it waited for
//! (by that wait or any later acquisition), releases a lock, waits for
//! anything else, or ends; if the same threads then deadlock on the same
//! locks again, some episode is new: a new deadlock, reported again, even
//! if no scan saw the gap. So threads that back off (give up, release
//! what they hold, take it again and retry) form a new deadlock each time
//! they meet again, and each is reported; threads that retry while
//! holding their locks stay in one. (Two threads that both give up and
//! wait for the same locks again, with nothing taken or released in
//! between, are still the same deadlock.)
//!
//! The watchdog remembers the identities it reported until a scan does not
//! find them and sees that they ended (`registry::unanswered_waits`), so
//! its memory stays bounded by the deadlocks of live threads.
//!
//! Periods: shorter than [`MIN_PERIOD`] (zero included) is taken as
//! [`MIN_PERIOD`], so the thread never spins; a period too long for an
//! `Instant` to hold (`Duration::MAX`) means "never scan". The thread
//! sleeps at most [`LONGEST_SLEEP`] at a time, so no timeout is ever too
//! long for the platform.
//!
//! Stopping: the handle's `Drop` sets `stopped` under its mutex and
//! notifies, then joins the thread, so the handler is never called after
//! the drop returns. These are `std` locks: the watchdog's own locks are
//! not tracked.
//!
//! Not modelled under loom: the watchdog is a real thread, outside any
//! model execution (the loom suite calls `detect` from modelled threads).

use std::collections::HashSet;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::api::detect_with_episodes;
use super::registry::{self, lock};
use super::report::{Deadlock, LockId, ThreadId};

/// The shortest period between two scans; a shorter one (zero included)
/// is taken as this.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// The longest single sleep of the watchdog thread (it sleeps again until
/// the period is over).
const LONGEST_SLEEP: Duration = Duration::from_secs(3600);

/// Stops the [`watchdog`] thread when dropped (waiting for a handler call
/// in progress to return).
///
/// ```
/// use std::time::Duration;
/// let handle = verisync::deadlock::watchdog(Duration::from_millis(10), |_| {});
/// drop(handle); // the watchdog thread has ended
/// ```
#[must_use = "the watchdog stops as soon as its handle is dropped"]
pub struct WatchdogHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the handle and the watchdog thread share.
struct Shared {
    /// Set by the handle's `Drop`: the thread ends.
    stopped: Mutex<bool>,
    /// Notified when `stopped` is set.
    wakeup: Condvar,
    /// How many scans the thread made (for the tests).
    #[cfg(test)]
    scans: AtomicU64,
    /// How many times the thread started to sleep (for the tests).
    #[cfg(test)]
    sleeps: AtomicU64,
}

/// Starts a thread (named `verisync-deadlock-watchdog`) that calls
/// [`detect`](super::detect) every `period` and `handler` with the deadlocks
/// it had not reported yet — each deadlock once, not again every period.
/// It stops when the returned handle is dropped. A panic in `handler` ends
/// the watchdog (the handle can still be dropped).
///
/// A deadlock is identified by its cycle (its threads and the locks they
/// wait for), so threads that retry timed waits in a loop, holding their
/// locks, are reported once; the same threads deadlocking on the same
/// locks are reported again only if the deadlock ended in between (one of
/// its threads got the lock it waited for, released a lock, or waited for
/// anything else). A `period` shorter than 1 ms (`Duration::ZERO`
/// included) is taken as 1 ms, so the watchdog never spins; a period too
/// long to add to an `Instant` (`Duration::MAX`) means it never scans.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
///
/// let reports = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&reports);
/// let watchdog = verisync::deadlock::watchdog(Duration::from_millis(10), move |deadlocks| {
///     for deadlock in deadlocks {
///         eprintln!("{deadlock}");
///     }
///     counter.fetch_add(deadlocks.len(), Ordering::Relaxed);
/// });
/// std::thread::sleep(Duration::from_millis(30));
/// drop(watchdog);
/// assert_eq!(reports.load(Ordering::Relaxed), 0); // no deadlock here
/// ```
pub fn watchdog<F>(period: Duration, handler: F) -> WatchdogHandle
where
    F: FnMut(&[Deadlock]) + Send + 'static,
{
    let shared = Arc::new(Shared {
        stopped: Mutex::new(false),
        wakeup: Condvar::new(),
        #[cfg(test)]
        scans: AtomicU64::new(0),
        #[cfg(test)]
        sleeps: AtomicU64::new(0),
    });
    let thread = thread::Builder::new()
        .name("verisync-deadlock-watchdog".into())
        .spawn({
            let shared = Arc::clone(&shared);
            move || run(period.max(MIN_PERIOD), handler, &shared)
        })
        .expect("verisync: could not start the deadlock watchdog thread");
    WatchdogHandle {
        shared,
        thread: Some(thread),
    }
}

/// What makes two scans' deadlocks the same one: each thread of the cycle
/// with the lock it waits for and the episode of that wait, sorted by lock
/// (each waits for a different lock: the one the next thread holds).
type Identity = Vec<(ThreadId, LockId, u64)>;

fn identity(deadlock: &Deadlock, episodes: &[u64]) -> Identity {
    let mut identity: Identity = deadlock
        .threads
        .iter()
        .zip(episodes)
        .map(|(member, &episode)| (member.thread.id, member.waits_for.id, episode))
        .collect();
    identity.sort_unstable_by_key(|&(_, lock, _)| lock);
    identity
}

fn run(period: Duration, mut handler: impl FnMut(&[Deadlock]), shared: &Shared) {
    // Each cycle reported and not known to have ended.
    let mut reported: HashSet<Identity> = HashSet::new();
    while !shared.sleep(period) {
        #[cfg(test)]
        shared.scans.fetch_add(1, Ordering::Relaxed);
        let mut present = Vec::new();
        let mut new = Vec::new();
        for (deadlock, episodes) in detect_with_episodes() {
            let identity = identity(&deadlock, &episodes);
            if reported.insert(identity.clone()) {
                new.push(deadlock);
            }
            present.push(identity);
        }
        if reported.len() > present.len() {
            forget_ended(&mut reported, &present);
        }
        if !new.is_empty() {
            handler(&new);
        }
    }
}

/// Forgets the reported cycles absent from this scan (`present`) that
/// ended: one of their threads is gone, got its lock, or has waited for
/// something else since (see the module's documentation).
#[cold]
fn forget_ended(reported: &mut HashSet<Identity>, present: &[Identity]) {
    let waits = registry::unanswered_waits();
    reported.retain(|identity| {
        present.contains(identity)
            || identity
                .iter()
                .all(|&(thread, lock, episode)| waits.get(&thread) == Some(&(lock, episode)))
    });
}

impl Shared {
    /// Sleeps for `period` or until stopped; whether it was stopped.
    fn sleep(&self, period: Duration) -> bool {
        let started = Instant::now();
        let mut stopped = lock(&self.stopped);
        loop {
            if *stopped {
                return true;
            }
            let left = period.saturating_sub(started.elapsed());
            if left.is_zero() {
                return false;
            }
            #[cfg(test)]
            self.sleeps.fetch_add(1, Ordering::Relaxed);
            stopped = self
                .wakeup
                .wait_timeout(stopped, left.min(LONGEST_SLEEP))
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
impl WatchdogHandle {
    /// How many scans the watchdog made so far.
    fn scans(&self) -> u64 {
        self.shared.scans.load(Ordering::Relaxed)
    }

    /// How many times the watchdog started to sleep so far.
    fn sleeps(&self) -> u64 {
        self.shared.sleeps.load(Ordering::Relaxed)
    }

    /// Whether the watchdog thread is still running.
    fn is_running(&self) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }
}

impl Drop for WatchdogHandle {
    fn drop(&mut self) {
        *lock(&self.shared.stopped) = true;
        self.shared.wakeup.notify_all();
        if let Some(thread) = self.thread.take() {
            // The handler itself may drop the handle: never join oneself.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::watchdog;

    /// `Duration::MAX` (and any period past the end of time) is "never
    /// scan": the watchdog neither panics nor scans, and stops at once
    /// when its handle is dropped.
    #[test]
    fn a_period_past_the_end_of_time_never_scans() {
        for period in [Duration::MAX, Duration::from_secs(u64::MAX / 4)] {
            let handle = watchdog(period, |_| {});
            let started = Instant::now();
            while handle.sleeps() == 0 && handle.is_running() {
                assert!(started.elapsed() < Duration::from_secs(10), "never slept");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(20));
            assert!(handle.is_running(), "the watchdog thread ended (panicked?)");
            assert_eq!(handle.sleeps(), 1, "it slept once and goes on sleeping");
            assert_eq!(handle.scans(), 0);
            let dropped = Instant::now();
            drop(handle);
            assert!(dropped.elapsed() < Duration::from_secs(5));
        }
    }

    /// A zero period is taken as the shortest period, 1 ms: the watchdog
    /// does not spin a core scanning without pause.
    #[test]
    fn a_zero_period_does_not_spin() {
        const WINDOW: Duration = Duration::from_millis(200);
        let handle = watchdog(Duration::ZERO, |_| {});
        let started = Instant::now();
        let before = handle.scans();
        std::thread::sleep(WINDOW);
        let (scans, elapsed) = (handle.scans() - before, started.elapsed());
        assert!(handle.is_running());
        drop(handle);
        // One scan per millisecond at most (and the first may come at once).
        let most = elapsed.as_millis() as u64 + 1;
        assert!(scans <= most, "{scans} scans in {elapsed:?}");
    }
}
