//! [`Barrier`]: Python's `threading.Barrier`, built on this crate's
//! [`Mutex`] and [`Condition`].
//!
//! # State machine
//!
//! One [`Mutex`] guards `{ phase, count, trips }`; one [`Condition`] wakes
//! waiters.
//!
//! | phase       | meaning                                      | next                       |
//! |-------------|----------------------------------------------|----------------------------|
//! | `Filling`   | `count` threads are waiting for the others   | `Draining` when `count == parties`; `Broken` on timeout or `abort`; `Resetting` on `reset` |
//! | `Draining`  | the barrier tripped; waiters are leaving     | `Filling` when the last has left; `Broken` on `abort`; unchanged by `reset` |
//! | `Resetting` | `reset` with waiters present; they leave with `BrokenBarrier` | `Filling` when the last has left; `Broken` on `abort` |
//! | `Broken`    | every `wait` fails at once                   | `Resetting`/`Filling` on `reset` |
//!
//! `trips` counts the rounds that have tripped (wrapping). A waiter notes it
//! when it arrives, and returns `Ok` exactly when it has moved on by the time
//! the waiter wakes: a round that tripped is complete, whatever `reset` or
//! `abort` did between the trip and its parties leaving `wait` (SPEC.md).
//! Those calls act on later waits only: `abort` leaves the barrier broken
//! behind the leaving parties, and `reset` of a draining barrier has nothing
//! to do, since the drain already reopens it.
//!
//! A thread arriving while the barrier drains or resets waits for that to
//! finish, so a fast thread can never slip into the previous generation and
//! reuse is safe (this follows CPython's `threading.Barrier`).

use std::fmt;
use std::time::{Duration, Instant};

use crate::condition::Condition;
use crate::deadlock::hooks::BlockedIn;
use crate::mutex::{Mutex, MutexGuard};
use crate::sys::time::deadline_after;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Filling,
    Draining,
    Resetting,
    Broken,
}

struct State {
    phase: Phase,
    /// Threads inside `wait` (filling or leaving).
    count: usize,
    /// How many rounds have tripped (wrapping): a waiter whose round
    /// tripped sees it change.
    trips: usize,
}

/// A rendezvous for a fixed number of threads — Python's `threading.Barrier`.
///
/// Each [`wait`](Self::wait) blocks until `parties` threads are waiting,
/// then all are released together and the barrier is ready for the next
/// round. Exactly one thread of each round gets
/// [`is_leader`](BarrierWaitResult::is_leader). A timeout or
/// [`abort`](Self::abort) *breaks* the barrier: every current and later
/// `wait` fails at once with [`BrokenBarrier`] until [`reset`](Self::reset).
///
/// ```
/// use std::sync::Arc;
/// use verisync::Barrier;
///
/// let start = Arc::new(Barrier::new(3));
/// let runners: Vec<_> = (0..3)
///     .map(|_| {
///         let start = Arc::clone(&start);
///         std::thread::spawn(move || start.wait().unwrap().is_leader())
///     })
///     .collect();
/// let leaders = runners
///     .into_iter()
///     .map(|runner| runner.join().unwrap())
///     .filter(|&leader| leader)
///     .count();
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    parties: usize,
    state: Mutex<State>,
    changed: Condition,
}

/// What [`Barrier::wait`] returns to each released thread.
///
/// ```
/// let barrier = verisync::Barrier::new(1);
/// let result: verisync::BarrierWaitResult = barrier.wait().unwrap();
/// assert!(result.is_leader());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// The result for a leader or not (for `process::Barrier`).
    #[cfg_attr(
        not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))),
        allow(dead_code)
    )]
    pub(crate) fn new(leader: bool) -> Self {
        Self { leader }
    }

    /// `true` for exactly one thread of each round (the last to arrive).
    ///
    /// ```
    /// let b = verisync::Barrier::new(1);
    /// assert!(b.wait().unwrap().is_leader());
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

/// The barrier is broken (by a timeout, [`Barrier::abort`] or a
/// [`Barrier::reset`] while threads waited) — Python's `BrokenBarrierError`.
///
/// ```
/// use verisync::{Barrier, BrokenBarrier};
/// let barrier = Barrier::new(2);
/// barrier.abort();
/// assert_eq!(barrier.wait(), Err(BrokenBarrier));
/// println!("{}", BrokenBarrier); // says what happened and what to do
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokenBarrier;

impl fmt::Display for BrokenBarrier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(
            "the barrier is broken (a wait timed out, or it was aborted or reset while threads \
             waited); call reset() before using it again",
        )
    }
}

impl std::error::Error for BrokenBarrier {}

impl Barrier {
    /// A barrier for `parties` threads.
    ///
    /// # Panics
    ///
    /// If `parties` is 0: no round could ever complete.
    ///
    /// ```
    /// let b = verisync::Barrier::new(2);
    /// assert_eq!(b.parties(), 2);
    /// ```
    pub fn new(parties: usize) -> Self {
        assert!(
            parties > 0,
            "verisync: Barrier::new(0) makes a barrier no group of threads can pass; \
             give the number of threads that will wait (at least 1)"
        );
        Self {
            parties,
            state: Mutex::new_untracked(State {
                phase: Phase::Filling,
                count: 0,
                trips: 0,
            }),
            changed: Condition::new(),
        }
    }

    /// Waits until `parties` threads are waiting, then returns in all of them.
    ///
    /// ```
    /// let b = verisync::Barrier::new(1);
    /// assert!(b.wait().is_ok());
    /// b.abort();
    /// assert!(b.wait().is_err());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait(&self) -> Result<BarrierWaitResult, BrokenBarrier> {
        let _waiting = BlockedIn::new("Barrier::wait", None);
        self.wait_until_internal(None)
    }

    /// As [`wait`](Self::wait), but if the round has not completed within
    /// `timeout` the barrier breaks for everyone and this call fails.
    /// `Duration::MAX` waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = verisync::Barrier::new(2);
    /// assert!(b.wait_timeout(Duration::from_millis(5)).is_err());
    /// assert!(b.is_broken());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, BrokenBarrier> {
        let _waiting = BlockedIn::new("Barrier::wait_timeout", None);
        self.wait_until_internal(deadline_after(timeout))
    }

    /// As [`wait_timeout`](Self::wait_timeout) with a deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let b = verisync::Barrier::new(2);
    /// assert!(b.wait_until(Instant::now() + Duration::from_millis(2)).is_err());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_until(&self, deadline: Instant) -> Result<BarrierWaitResult, BrokenBarrier> {
        let _waiting = BlockedIn::new("Barrier::wait_until", None);
        self.wait_until_internal(Some(deadline))
    }

    /// Waits for the round until `deadline` (`None`: forever).
    fn wait_until_internal(
        &self,
        deadline: Option<Instant>,
    ) -> Result<BarrierWaitResult, BrokenBarrier> {
        let mut state = self.state.lock();
        // Let the previous round finish leaving.
        self.changed.wait_while(&mut state, |state| {
            matches!(state.phase, Phase::Draining | Phase::Resetting)
        });
        if state.phase == Phase::Broken {
            return Err(BrokenBarrier);
        }

        state.count += 1;
        let my_round = state.trips;
        let result = if state.count == self.parties {
            state.phase = Phase::Draining;
            state.trips = state.trips.wrapping_add(1);
            self.changed.notify_all();
            Ok(BarrierWaitResult { leader: true })
        } else {
            let mut timed_out = false;
            while state.phase == Phase::Filling {
                match deadline {
                    None => self.changed.wait(&mut state),
                    Some(deadline) => {
                        if self.changed.wait_until(&mut state, deadline).timed_out() {
                            timed_out = true;
                            break;
                        }
                    }
                }
            }
            // Still filling means our round has not tripped: we are counted
            // in it, so it cannot have drained and reopened without us.
            if timed_out && state.phase == Phase::Filling {
                state.phase = Phase::Broken;
                self.changed.notify_all();
            }
            // Our round tripped (even if `reset` or `abort` came after the
            // trip, before we got the lock back): we pass.
            if state.trips != my_round {
                Ok(BarrierWaitResult { leader: false })
            } else {
                Err(BrokenBarrier)
            }
        };
        self.leave(&mut state);
        result
    }

    /// A thread leaves `wait`; the last one out of a drain or reset
    /// reopens the barrier.
    fn leave(&self, state: &mut MutexGuard<'_, State>) {
        state.count -= 1;
        if state.count == 0 && matches!(state.phase, Phase::Draining | Phase::Resetting) {
            state.phase = Phase::Filling;
            self.changed.notify_all();
        }
    }

    /// Breaks the barrier: every waiting and later `wait` fails with
    /// [`BrokenBarrier`] until [`reset`](Self::reset). The parties of a
    /// round that has already tripped still pass, even if they have not
    /// left `wait` yet.
    ///
    /// ```
    /// let b = verisync::Barrier::new(3);
    /// b.abort();
    /// assert!(b.is_broken());
    /// ```
    pub fn abort(&self) {
        let mut state = self.state.lock();
        state.phase = Phase::Broken;
        self.changed.notify_all();
    }

    /// Returns the barrier to its empty, unbroken state. Threads waiting now
    /// fail with [`BrokenBarrier`]; threads arriving meanwhile wait until
    /// they have left. The parties of a round that has already tripped
    /// still pass.
    ///
    /// ```
    /// let b = verisync::Barrier::new(2);
    /// b.abort();
    /// b.reset();
    /// assert!(!b.is_broken());
    /// ```
    pub fn reset(&self) {
        let mut state = self.state.lock();
        state.phase = match state.phase {
            // The round tripped and its parties are leaving with `Ok`; the
            // last of them reopens the barrier, which is all a reset does.
            Phase::Draining => Phase::Draining,
            _ if state.count > 0 => Phase::Resetting,
            _ => Phase::Filling,
        };
        self.changed.notify_all();
    }

    /// Whether the barrier is broken.
    ///
    /// ```
    /// assert!(!verisync::Barrier::new(2).is_broken());
    /// ```
    pub fn is_broken(&self) -> bool {
        self.state.lock().phase == Phase::Broken
    }

    /// How many threads are waiting for the current round (0 while the
    /// barrier drains, resets or is broken).
    ///
    /// ```
    /// assert_eq!(verisync::Barrier::new(2).n_waiting(), 0);
    /// ```
    pub fn n_waiting(&self) -> usize {
        let state = self.state.lock();
        if state.phase == Phase::Filling {
            state.count
        } else {
            0
        }
    }

    /// The number of threads each round needs.
    ///
    /// ```
    /// assert_eq!(verisync::Barrier::new(4).parties(), 4);
    /// ```
    pub fn parties(&self) -> usize {
        self.parties
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        formatter
            .debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("phase", &state.phase)
            .field("count", &state.count)
            .finish()
    }
}
