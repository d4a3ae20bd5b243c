//! [`Event`]: Python's `threading.Event`. The state machine is in
//! `raw/event.rs`.

use std::fmt;
use std::time::{Duration, Instant};

use crate::deadlock::hooks::BlockedIn;
use crate::raw::event::RawEvent;
use crate::sys::time::deadline_after;

/// A flag that threads can wait for — Python's `threading.Event`.
///
/// It starts clear. [`set`](Self::set) wakes every thread waiting at that
/// moment; such a waiter reports `true` even if [`clear`](Self::clear)
/// follows at once (Python's semantics). Waiting never polls: a waiter
/// sleeps until a `set` wakes it or its timeout passes.
///
/// ```
/// use std::sync::Arc;
/// use verisync::Event;
///
/// let green = Arc::new(Event::new());
/// let car = {
///     let green = Arc::clone(&green);
///     std::thread::spawn(move || {
///         green.wait();
///         "crossed"
///     })
/// };
/// green.set();
/// assert_eq!(car.join().unwrap(), "crossed");
/// ```
pub struct Event {
    raw: RawEvent,
}

impl Event {
    /// A new, clear event.
    ///
    /// ```
    /// assert!(!verisync::Event::new().is_set());
    /// ```
    #[cfg(not(verisync_loom))]
    pub const fn new() -> Self {
        Self {
            raw: RawEvent::new(),
        }
    }

    /// A new, clear event.
    #[cfg(verisync_loom)]
    pub fn new() -> Self {
        Self {
            raw: RawEvent::new(),
        }
    }

    /// Sets the flag and wakes every thread waiting now. Setting a set event
    /// does nothing.
    ///
    /// ```
    /// let e = verisync::Event::new();
    /// e.set();
    /// assert!(e.is_set());
    /// ```
    pub fn set(&self) {
        self.raw.set();
    }

    /// Clears the flag; later waits block until the next [`set`](Self::set).
    ///
    /// ```
    /// let e = verisync::Event::new();
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// ```
    pub fn clear(&self) {
        self.raw.clear();
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// assert!(!verisync::Event::new().is_set());
    /// ```
    #[inline]
    pub fn is_set(&self) -> bool {
        self.raw.is_set()
    }

    /// Blocks until the flag is set; returns at once if it already is.
    ///
    /// ```
    /// let e = verisync::Event::new();
    /// e.set();
    /// e.wait(); // returns at once
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    #[inline]
    pub fn wait(&self) {
        let _waiting = BlockedIn::unless("Event::wait", None, || self.is_set());
        self.raw.wait_until(None);
    }

    /// Waits at most `timeout`; `true` if the flag was set when called or was
    /// set during the wait (even if cleared again since), `false` on
    /// timeout. A zero timeout just reads the flag; `Duration::MAX` waits
    /// forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let e = verisync::Event::new();
    /// assert!(!e.wait_timeout(Duration::from_millis(5)));
    /// e.set();
    /// assert!(e.wait_timeout(Duration::from_millis(5)));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    #[inline]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return self.is_set();
        }
        let _waiting = BlockedIn::unless("Event::wait_timeout", None, || self.is_set());
        self.raw.wait_until(deadline_after(timeout))
    }

    /// Waits until `deadline`; the result is as for [`wait_timeout`](Self::wait_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let e = verisync::Event::new();
    /// assert!(!e.wait_until(Instant::now() + Duration::from_millis(2)));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    #[inline]
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let _waiting = BlockedIn::unless("Event::wait_until", None, || self.is_set());
        self.raw.wait_until(Some(deadline))
    }
}

#[cfg(verisync_loom)]
impl Event {
    pub(crate) fn has_parked_waiters(&self) -> bool {
        self.raw.has_parked_waiters()
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}
