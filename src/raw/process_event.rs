//! The process-shared event: one futex word in shared memory, no owner.
//!
//! # The word
//!
//! ```text
//!  bits 31 ............ 2   1          0
//!       generation          SLEEPERS   SET
//! ```
//!
//! | state | meaning |
//! |-------|---------|
//! | `g << 2` | clear; the event has been set `g` times (wrapping) |
//! | `g << 2 \| SLEEPERS` | clear, and waiters may sleep on the futex |
//! | `g << 2 \| SET` | set (`g` counts this set too) |
//!
//! - **set**: CAS a clear word to `(g + 1) << 2 | SET` (clearing
//!   `SLEEPERS`); if `SLEEPERS` was there, wake every sleeper. Setting a
//!   set event changes nothing.
//! - **clear**: clear `SET`, keeping the generation and `SLEEPERS`.
//! - **wait**: note the generation; while the word is clear *and* its
//!   generation is the noted one, set `SLEEPERS` (CAS) and sleep on the
//!   word with the value that CAS wrote. A `set` changes the word (the
//!   futex sees it and does not sleep, or wakes the sleeper), so no wake-up
//!   is lost. A waiter returns `true` if the event is set or its generation
//!   moved: a `set` happened while it waited, even if a `clear` followed
//!   before it looked (Python's semantics: woken by `set`, it reports
//!   `true`).
//! - **timeout**: the last look decides (set, or the generation moved).
//!
//! Every value of the word is a state: garbage written into it (by a buggy
//! process) is some generation, set or clear, and at worst wakes waiters
//! early (they report `true`) or leaves them waiting for the next `set`, as
//! a clear event would; a timed wait still ends at its deadline. The
//! generation wraps after 2³⁰ sets: a waiter asleep through exactly a
//! multiple of 2³⁰ sets and a final clear would miss them (not in practice).
//!
//! A setter killed between its CAS and its wake wakes nobody: sleepers'
//! waits end within `HOLDER_POLL` (production) or at the model's death step
//! (loom), and they see the new generation.
//!
//! # Memory ordering
//!
//! `set` is `Release` and every load a waiter decides on is `Acquire`, so
//! what the setter wrote before `set` is visible to a waiter that returns
//! `true` (a `clear` after the `set` is a read-modify-write, so a waiter
//! that sees only the moved generation still reads from the `set`'s release
//! sequence). `clear` and setting `SLEEPERS` publish nothing: `Relaxed`.

use std::time::Instant;

use crate::sys::atomic::Ordering::{Acquire, Relaxed, Release};
use crate::sys::futex::{self, Wake, Word};

/// The event is set.
const SET: u32 = 1;
/// Waiters may sleep on the futex: `set` wakes them.
const SLEEPERS: u32 = 2;
/// One step of the generation (bits 2..=31).
const GENERATION_ONE: u32 = 4;
/// "Every waiter" for `futex::wake` (the kernel takes an `int`).
const EVERY_WAITER: u32 = i32::MAX as u32;

fn generation(state: u32) -> u32 {
    state & !(SET | SLEEPERS)
}

/// The state machine over one event's word (0: clear, never set).
pub struct RawProcessEvent<'word> {
    word: &'word Word,
}

impl<'word> RawProcessEvent<'word> {
    /// The event whose state is `word`.
    #[inline]
    pub fn new(word: &'word Word) -> Self {
        Self { word }
    }

    /// Sets it and wakes every waiter.
    pub fn set(&self) {
        if self.set_without_waking() {
            self.wake_all();
        }
    }

    /// The first half of [`set`](Self::set): sets the word; `true` if
    /// sleepers must be woken. (Split so the loom suite can let the setter
    /// die between the two halves.)
    pub fn set_without_waking(&self) -> bool {
        let mut state = self.word.load(Relaxed);
        loop {
            if state & SET != 0 {
                return false;
            }
            let next = generation(state).wrapping_add(GENERATION_ONE) | SET;
            match self
                .word
                .compare_exchange_weak(state, next, Release, Relaxed)
            {
                Ok(_) => return state & SLEEPERS != 0,
                Err(actual) => state = actual,
            }
        }
    }

    /// The second half of [`set`](Self::set).
    #[cold]
    pub fn wake_all(&self) {
        futex::wake(self.word, EVERY_WAITER);
    }

    /// Clears it.
    pub fn clear(&self) {
        self.word.fetch_and(!SET, Relaxed);
    }

    /// Whether it is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.word.load(Acquire) & SET != 0
    }

    /// Waits until it is set or `deadline` passes (`None`: forever); `true`
    /// if it was set when called or was set during the wait.
    pub fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let state = self.word.load(Acquire);
        if state & SET != 0 {
            return true;
        }
        self.wait_contended(state, deadline)
    }

    #[cold]
    fn wait_contended(&self, mut state: u32, deadline: Option<Instant>) -> bool {
        let noted = generation(state);
        let happened = |state: u32| state & SET != 0 || generation(state) != noted;
        loop {
            if happened(state) {
                return true;
            }
            let waiting = state | SLEEPERS;
            if state != waiting {
                if let Err(actual) = self.word.compare_exchange(state, waiting, Relaxed, Acquire) {
                    state = actual;
                    continue;
                }
            }
            match futex::wait(self.word, waiting, deadline, || true) {
                Wake::TimedOut => return happened(self.word.load(Acquire)),
                Wake::Woken | Wake::Recheck | Wake::Invalid => state = self.word.load(Acquire),
            }
        }
    }
}
