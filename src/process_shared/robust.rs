//! A robust lock word inside an arena object: the raw state machine
//! (`raw/process_lock.rs`) bound to this process's identity and process
//! table, plus the one check the raw machine cannot make: a thread that
//! locks what it already holds.

use std::cell::RefCell;
use std::time::Instant;

use super::arena::{Arena, Object};
use crate::raw::process_lock::{Acquired, Holders, RawProcessLock};

/// Where the lock word sits in its object (right after the object header).
pub(crate) const WORD_AT: usize = 16;

impl Holders for Arena {
    fn is_alive(&self, holder: u32) -> bool {
        Arena::is_alive(self, holder)
    }
}

std::thread_local! {
    /// The addresses of the lock words this thread holds.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// The robust lock of one object.
#[derive(Clone, Copy)]
pub(crate) struct RobustLock {
    object: Object,
}

/// How long to wait.
pub(crate) enum Wait {
    /// Not at all.
    Try,
    /// Until the deadline (`None`: forever).
    Until(Option<Instant>),
}

impl RobustLock {
    pub(crate) fn new(object: Object) -> Self {
        Self { object }
    }

    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    fn raw(&self) -> RawProcessLock<'static> {
        RawProcessLock::new(self.object.word(WORD_AT))
    }

    fn address(&self) -> usize {
        std::ptr::from_ref(self.object.word(WORD_AT)) as usize
    }

    /// A freshly allocated object: the word starts free.
    pub(crate) fn reset(&self) {
        self.object
            .word(WORD_AT)
            .store(0, std::sync::atomic::Ordering::Release);
    }

    /// Takes the lock; `None` if it did not (`Try`, or the deadline passed).
    ///
    /// # Panics
    ///
    /// If this thread holds it already (the lock is not reentrant; waiting
    /// would hang forever).
    pub(crate) fn acquire(&self, wait: Wait) -> Option<Acquired> {
        let arena = self.object.arena();
        let me = arena.me();
        let raw = self.raw();
        if raw.is_held_by(me) {
            self.refuse_relock();
        }
        let acquired = match wait {
            Wait::Try => raw.try_lock(me, arena),
            Wait::Until(deadline) => raw.lock(me, arena, deadline),
        }?;
        HELD.with_borrow_mut(|held| held.push(self.address()));
        Some(acquired)
    }

    #[cold]
    fn refuse_relock(&self) {
        let address = self.address();
        if HELD.with_borrow(|held| held.contains(&address)) {
            panic!(
                "verisync: this thread already holds this process::Lock (it is not reentrant); \
                 locking it again would wait forever"
            );
        }
    }

    /// Releases the lock; `keep_owner_died`: the death was not acknowledged.
    pub(crate) fn release(&self, keep_owner_died: bool) {
        let address = self.address();
        HELD.with_borrow_mut(|held| {
            if let Some(position) = held.iter().rposition(|&other| other == address) {
                held.swap_remove(position);
            }
        });
        self.raw().unlock(self.object.arena().me(), keep_owner_died);
    }
}
