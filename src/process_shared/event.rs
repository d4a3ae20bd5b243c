//! `process::Event`: a flag processes can wait for. The state machine is
//! in `raw/process_event.rs`: one futex word at +16 of a one-line object.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::arena::{self, Handle, Object, KIND_EVENT, LINE, NO_ELEMENT};
use super::error::{open_failed, SharedError};
use crate::raw::process_event::RawProcessEvent;
use crate::sys::time::deadline_after;

/// Where the event's word sits in its object (after the object header).
const WORD_AT: usize = 16;
/// The object's extent: header, word (one line).
const EVENT_SIZE: usize = LINE;

/// A flag processes can wait for — Python's `multiprocessing.Event`.
///
/// The thread [`Event`](crate::Event)'s methods and semantics: it starts
/// clear; [`set`](Self::set) wakes every waiter, in every process; a
/// waiter woken by a `set` reports `true` even if a
/// [`clear`](Self::clear) follows at once. It has no owner, so a process
/// that dies changes nothing (a setter killed mid-`set` leaves it set; its
/// waiters notice within 10 ms). Create it before starting the processes
/// that use it and pass it to them as a task argument; clones name the
/// same event.
///
/// ```
/// verisync::process::init();
/// use verisync::process::Event;
///
/// fn cross(green: Event) -> bool {
///     green.wait();
///     true // crossed
/// }
///
/// let green = Event::new()?;
/// let car = verisync::process::spawn(cross, green.clone()).unwrap();
/// green.set();
/// assert!(car.join().unwrap());
/// # Ok::<(), verisync::process::SharedError>(())
/// ```
#[derive(Clone)]
pub struct Event {
    object: Object,
}

impl Event {
    /// A new, clear event in the process tree's shared memory.
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](super::Lock::new).
    ///
    /// ```
    /// verisync::process::init();
    /// assert!(!verisync::process::Event::new()?.is_set());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn new() -> Result<Self, SharedError> {
        let object =
            arena::for_new_object()?.allocate(KIND_EVENT, NO_ELEMENT, EVENT_SIZE, 0, |object| {
                object
                    .word(WORD_AT)
                    .store(0, std::sync::atomic::Ordering::Release);
            })?;
        Ok(Self { object })
    }

    fn raw(&self) -> RawProcessEvent<'static> {
        RawProcessEvent::new(self.object.word(WORD_AT))
    }

    /// Sets the flag and wakes every process and thread waiting now.
    /// Setting a set event does nothing.
    ///
    /// ```
    /// verisync::process::init();
    /// let e = verisync::process::Event::new()?;
    /// e.set();
    /// assert!(e.is_set());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn set(&self) {
        self.raw().set();
    }

    /// Clears the flag; later waits block until the next [`set`](Self::set).
    ///
    /// ```
    /// verisync::process::init();
    /// let e = verisync::process::Event::new()?;
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// verisync::process::init();
    /// assert!(!verisync::process::Event::new()?.is_set());
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Blocks until the flag is set; returns at once if it already is.
    ///
    /// ```
    /// verisync::process::init();
    /// let e = verisync::process::Event::new()?;
    /// e.set();
    /// e.wait(); // returns at once
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait(&self) {
        self.raw().wait_until(None);
    }

    /// Waits at most `timeout`; `true` if the flag was set when called or
    /// was set during the wait (even if cleared again since), `false` on
    /// timeout. A zero timeout just reads the flag; `Duration::MAX` waits
    /// forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// verisync::process::init();
    /// let e = verisync::process::Event::new()?;
    /// assert!(!e.wait_timeout(Duration::from_millis(5)));
    /// e.set();
    /// assert!(e.wait_timeout(Duration::from_millis(5)));
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return self.is_set();
        }
        self.raw().wait_until(deadline_after(timeout))
    }

    /// Waits until `deadline`; the result is as for
    /// [`wait_timeout`](Self::wait_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// verisync::process::init();
    /// let e = verisync::process::Event::new()?;
    /// assert!(!e.wait_until(Instant::now() + Duration::from_millis(2)));
    /// # Ok::<(), verisync::process::SharedError>(())
    /// ```
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.raw().wait_until(Some(deadline))
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("handle", &self.object.handle())
            .field("is_set", &self.is_set())
            .finish()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.object.handle().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    /// Opens the handle in this process: an `Err` (never a crash) if it is
    /// not an event of this process tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(deserializer)?;
        let object =
            Object::open(handle, KIND_EVENT, NO_ELEMENT, EVENT_SIZE, 0).map_err(open_failed)?;
        Ok(Self { object })
    }
}
