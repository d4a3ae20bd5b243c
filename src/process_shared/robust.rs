//! A robust lock word inside an arena object: the raw state machine
//! (`raw/process_lock.rs`) bound to this process's identity and process
//! table, behind an in-process lock that no shared byte can open.
//!
//! # Two locks, in this order
//!
//! 1. The object's [`InProcessLock`] (in this process's own memory, one per
//!    object, from `known.rs`): excludes the threads of this process from
//!    each other, and catches a thread that locks what it already holds.
//! 2. The shared word: excludes the processes from each other, robust to a
//!    holder's death.
//!
//! A guard holds both; releasing frees the word, then the in-process lock.
//! So whoever takes the word holds the in-process lock: no thread of this
//! process holds the word then, and a word naming this process is garbage
//! (another process wrote it), recovered as a dead holder's
//! (`raw/process_lock.rs`), never waited on.
//! The word alone cannot keep this process's threads apart: it names the
//! holding *process*, and another process can write anything into it (zero
//! it under a holder here, say), while a guard hands out `&mut T`. The
//! in-process lock can: so at most one thread here has a guard at a time,
//! whatever the shared memory says. (What another *process* does to the
//! guarded bytes is beyond any lock: see the module docs of
//! `process_shared`.) Timeouts cover both steps: `Try` tries each once,
//! and a deadline bounds the wait for both together.
//!
//! # The uncontended path
//!
//! Inline, and four atomic read-modify-writes in all: a compare-exchange
//! taking each lock (in-process, then the word) and one freeing each (the
//! word, then in-process), with the word's address and this process's
//! identity kept in the handle. Anything else (a lock held, sleepers to
//! wake, a death to report or keep) leaves it for the `#[cold]` paths.
//! (`tests/process_lock_cost.rs` counts and times it against the thread
//! `Mutex`.)
//!
//! # Relocking
//!
//! The in-process lock records its holder's thread (`sys::thread::current_id`,
//! unique for the process's life, and readable at any time, even while the
//! thread's thread-locals are being destroyed), so a thread that locks an
//! object it holds panics instead of waiting forever. `holder` is `Relaxed`:
//! a thread only ever compares it with its own id, and always sees its own
//! latest store (as in `raw/reentrant.rs`).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use super::arena::{Arena, Object};
use crate::raw::mutex::RawMutex;
pub(crate) use crate::raw::process_lock::Wait;
use crate::raw::process_lock::{Acquired, Holders, RawProcessLock, StateLock};
use crate::sys::thread;

/// Where the lock word sits in its object (right after the object header).
pub(crate) const WORD_AT: usize = 16;

impl Holders for Arena {
    fn is_alive(&self, holder: u32) -> bool {
        Arena::is_alive(self, holder)
    }
}

/// Excludes the threads of this process from one object (see the module
/// docs); kept in `known.rs`, one per object.
pub(crate) struct InProcessLock {
    mutex: RawMutex,
    /// The holding thread's id, 0 when free; written only by the holder.
    holder: AtomicUsize,
}

impl InProcessLock {
    pub(crate) const fn new() -> Self {
        Self {
            mutex: RawMutex::new(),
            holder: AtomicUsize::new(0),
        }
    }

    /// Frees it.
    ///
    /// # Safety
    ///
    /// The calling thread holds it.
    #[inline]
    unsafe fn release(&self) {
        self.holder.store(0, Relaxed);
        // SAFETY: the caller holds it.
        unsafe { self.mutex.unlock() };
    }
}

/// The in-process lock, held; released on drop unless `keep`t (so that a
/// panic between the two steps of `acquire` cannot leave it held).
struct InProcessHold<'a> {
    lock: &'a InProcessLock,
}

impl InProcessHold<'_> {
    /// Keeps the lock held (a guard now owns it; `release` frees it).
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for InProcessHold<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: constructed only by `acquire` right after it took `mutex`.
        unsafe { self.lock.release() };
    }
}

/// The robust lock of one object, with what its uncontended path needs
/// resolved once, when the handle is made: the word's address and this
/// process's identity (both fixed for the life of the process).
#[derive(Clone, Copy)]
pub(crate) struct RobustLock {
    object: Object,
    /// The object's lock word (`object.word(WORD_AT)`).
    word: &'static AtomicU32,
    /// This process's holder identity (`object.arena().me()`).
    me: u32,
}

impl RobustLock {
    pub(crate) fn new(object: Object) -> Self {
        Self {
            object,
            word: object.word(WORD_AT),
            me: object.arena().me(),
        }
    }

    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    #[inline]
    fn raw(&self) -> RawProcessLock<'static> {
        RawProcessLock::new(self.word)
    }

    /// A freshly allocated object's word: it starts free.
    pub(crate) fn reset(object: &Object) {
        object
            .word(WORD_AT)
            .store(0, std::sync::atomic::Ordering::Release);
    }

    /// Takes the lock; `None` if it did not (`Try`, or the deadline passed).
    /// The uncontended path (both locks free) is inline: one compare-exchange
    /// on each lock; anything else goes to [`acquire_slow`](Self::acquire_slow).
    ///
    /// # Panics
    ///
    /// If this thread holds it already (the lock is not reentrant; waiting
    /// would hang forever).
    #[inline]
    pub(crate) fn acquire(&self, wait: Wait) -> Option<Acquired> {
        let thread = thread::current_id();
        let in_process = self.object.in_process_lock();
        if in_process.holder.load(Relaxed) == thread {
            refuse_relock();
        }
        if !in_process.mutex.try_lock_uncontended() {
            return self.acquire_slow(thread, wait);
        }
        in_process.holder.store(thread, Relaxed);
        if self.raw().try_lock_uncontended(self.me) {
            return Some(Acquired::Clean);
        }
        self.acquire_word_slow(wait)
    }

    /// [`acquire`](Self::acquire) when another thread of this process holds
    /// the in-process lock: waits for it, then for the word.
    #[cold]
    fn acquire_slow(&self, thread: usize, wait: Wait) -> Option<Acquired> {
        let in_process = self.object.in_process_lock();
        let taken = match wait {
            Wait::Try => in_process.mutex.try_lock(),
            Wait::Until(deadline) => in_process.mutex.try_lock_until(deadline),
        };
        if !taken {
            return None;
        }
        in_process.holder.store(thread, Relaxed);
        self.acquire_word_slow(wait)
    }

    /// [`acquire`](Self::acquire) holding the in-process lock, once the
    /// word was not free: takes it (waiting as `wait` says), or releases
    /// the in-process lock and returns `None`.
    #[cold]
    fn acquire_word_slow(&self, wait: Wait) -> Option<Acquired> {
        let hold = InProcessHold {
            lock: self.object.in_process_lock(),
        };
        let arena = self.object.arena();
        let acquired = match wait {
            Wait::Try => self.raw().try_lock(self.me, arena),
            Wait::Until(deadline) => self.raw().lock(self.me, arena, deadline),
        }?;
        hold.keep();
        Some(acquired)
    }

    /// Releases the lock; `keep_owner_died`: the death was not acknowledged.
    #[inline]
    pub(crate) fn release(&self, keep_owner_died: bool) {
        self.raw().unlock(self.me, keep_owner_died);
        // SAFETY: only a guard calls this, on the thread that acquired it
        // (guards are not `Send`), and the guard holds the in-process lock.
        unsafe { self.object.in_process_lock().release() };
    }
}

/// How long [`Wait::Try`] waits for the lock over a primitive's *state*
/// (a semaphore's counts, say: `StateLock` below): that lock is held for a
/// few instructions by whoever updates the state, so "try" means "do not
/// wait for permits", not "fail if another process is mid-update". Only a
/// holder stopped mid-update (descheduled, or a process that wrote another
/// live process's identity into the word) makes a try wait this long.
const STATE_LOCK_PATIENCE: Duration = Duration::from_millis(100);

/// The robust lock as the lock over a primitive's state (the state machine
/// in `raw/` repairs the state when told a holder died, so `unlock`
/// acknowledges the death).
impl StateLock for RobustLock {
    fn me(&self) -> u32 {
        self.me
    }

    fn lock(&self, wait: Wait) -> Option<Acquired> {
        let wait = match wait {
            Wait::Try => Wait::Until(crate::sys::time::deadline_after(STATE_LOCK_PATIENCE)),
            wait @ Wait::Until(_) => wait,
        };
        self.acquire(wait)
    }

    fn unlock(&self) {
        self.release(false);
    }

    fn held_by_the_dead(&self) -> bool {
        // The arena says this process is alive: a word naming it is not
        // taken for a dead holder's here (another thread may hold it).
        self.raw().held_by_the_dead(self.object.arena())
    }
}

impl Holders for RobustLock {
    fn is_alive(&self, holder: u32) -> bool {
        self.object.arena().is_alive(holder)
    }
}

#[cold]
fn refuse_relock() -> ! {
    panic!(
        "verisync: this thread already holds this process-shared lock (it is not reentrant); \
         locking it again would wait forever"
    );
}
