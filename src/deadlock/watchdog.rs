//! [`watchdog`]: a background thread that runs [`detect`](super::detect)
//! every period and reports each deadlock once.
//!
//! A deadlock is "the same" from one round to the next if the same threads
//! wait for the same locks since the same instants; the watchdog remembers
//! the deadlocks of the last round only, so its memory stays bounded and a
//! deadlock that ends and happens again (new waits) is reported again.
//!
//! Stopping: the handle's `Drop` sets `stop` under `wakeup`'s mutex and
//! notifies, then joins the thread, so the handler is never called after
//! the drop returns. These are `std` locks: the watchdog's own locks are
//! not tracked.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use super::api::detect;
use super::registry::lock;
use super::report::{Deadlock, LockId};

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
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a thread (named `verisync-deadlock-watchdog`) that calls
/// [`detect`](super::detect) every `period` and `handler` with the deadlocks
/// it had not reported yet — each deadlock once, not again every period.
/// It stops when the returned handle is dropped. A panic in `handler` ends
/// the watchdog (the handle can still be dropped).
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
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let thread = thread::Builder::new()
        .name("verisync-deadlock-watchdog".into())
        .spawn({
            let stop = Arc::clone(&stop);
            move || run(period, handler, &stop)
        })
        .expect("verisync: could not start the deadlock watchdog thread");
    WatchdogHandle {
        stop,
        thread: Some(thread),
    }
}

/// What makes two rounds' deadlocks the same one.
type Identity = Vec<(ThreadId, LockId, Instant)>;

fn identity(deadlock: &Deadlock) -> Identity {
    deadlock
        .threads
        .iter()
        .map(|member| (member.thread.id, member.waits_for.id, member.since))
        .collect()
}

fn run(period: Duration, mut handler: impl FnMut(&[Deadlock]), stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wakeup) = stop;
    let mut reported: HashSet<Identity> = HashSet::new();
    loop {
        {
            let deadline = Instant::now() + period;
            let mut stopped = lock(stopped);
            while !*stopped {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                stopped = wakeup
                    .wait_timeout(stopped, left)
                    .unwrap_or_else(|poison| poison.into_inner())
                    .0;
            }
            if *stopped {
                return;
            }
        }
        let found = detect();
        let identities: Vec<Identity> = found.iter().map(identity).collect();
        let new: Vec<Deadlock> = found
            .into_iter()
            .zip(&identities)
            .filter(|(_, id)| !reported.contains(*id))
            .map(|(deadlock, _)| deadlock)
            .collect();
        reported = identities.into_iter().collect();
        if !new.is_empty() {
            handler(&new);
        }
    }
}

impl Drop for WatchdogHandle {
    fn drop(&mut self) {
        let (stopped, wakeup) = &*self.stop;
        *lock(stopped) = true;
        wakeup.notify_all();
        if let Some(thread) = self.thread.take() {
            // The handler itself may drop the handle: never join oneself.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
