//! Process-shared primitives: [`Lock`], [`Semaphore`], [`Event`],
//! [`Condition`], [`Barrier`], [`Value`], [`Array`] and [`JoinableQueue`].
//!
//! # Implementation details
//!
//! - **Where objects live** (`arena.rs`): one block of shared memory per
//!   process tree (a sealed `memfd`), created by the first object and
//!   inherited by every process that `process::spawn` or a `ProcessPool`
//!   starts afterwards, which attaches it in `process::init()`. An object
//!   is a 64-byte-aligned piece of it; a handle (what `Lock` and `Value`
//!   serialize to) is `(arena id, offset, kind, tag)`, checked when it is
//!   opened. Objects are never freed.
//! - **Who holds a lock** (`table.rs`): each process claims a slot in the
//!   arena's process table (pid and start time, against pid reuse); a lock
//!   word names its holder by slot and generation. A holder is alive while
//!   its slot is still its own and `/proc/<pid>/stat` shows the same
//!   process, not a zombie (a process whose main thread called
//!   `pthread_exit` shows as one: judged dead). A thread that exits holding
//!   a lock (a forgotten guard) leaves it held while its process lives.
//! - **The lock** (`raw/process_lock.rs`, state table there): a 32-bit word
//!   (holder, `WAITERS`, `OWNER_DIED`) and the futex seam (`sys::futex`:
//!   shared `futex(2)` in production, a loom model with a "process died"
//!   step under `--cfg verisync_loom`). A waiter checks the holder's
//!   liveness before each sleep and sleeps at most 10 ms at a time, so a
//!   holder that died is noticed within about that; the waiter that takes
//!   the lock from it is told ([`OwnerDied`]). The mark stays on the lock
//!   until a locker acknowledges it with [`OwnerDied::into_guard`] (like
//!   `pthread_mutex_consistent`, folded into taking the guard).
//! - **The semaphore** (`raw/process_semaphore.rs`, layout in
//!   `semaphore.rs`): counts (total, available) and one holding per
//!   process-table slot (who, how many permits), updated together under a
//!   robust state lock (the lock above, `StateLock`); a holder's death
//!   mid-update is repaired from the total and the holdings, and a dead
//!   holder's permits are reclaimed by waiters (who look before each sleep,
//!   so within about 10 ms) and by `available_permits`. Waiters sleep on a
//!   futex sequence word; every release wakes them all.
//! - **State-lock machines** (`raw/process_state.rs`): the semaphore and
//!   the barrier keep their state under the robust lock as a *state lock*,
//!   sleep on one futex sequence word (bumped under the lock by every
//!   change, waking every sleeper after the unlock), and keep one record
//!   per process-table slot naming its process, which is how a dead
//!   process's share is found.
//! - **The barrier** (`raw/process_barrier.rs`, layout in `barrier.rs`):
//!   the thread `Barrier`'s phases (filling, draining, resetting, broken),
//!   count and trip counter under the state lock, and per process how many
//!   of its threads are inside `wait`. A waiter looks at those records
//!   before each sleep and every `HOLDER_POLL` while asleep: a process that
//!   died inside `wait` breaks the barrier (while filling) or just leaves
//!   (a tripped round's party), so nobody waits for the dead. A party that
//!   dies before it arrives cannot be seen (only timed waits end then).
//! - **The condition** (`raw/process_condition.rs`, layout in
//!   `condition.rs`): per process-table slot, how many of its threads wait
//!   and how many notifications it was handed, under the state lock; per
//!   process, in its own memory, which of its threads wait, oldest first
//!   (so its own records are restored from trusted memory whenever one of
//!   its threads looks). A waiter registers while it holds the user's
//!   `Lock`, then releases it: no lost wake-up. `notify` reaps dead
//!   processes' records first and hands notifications round robin to the
//!   live ones; a process that dies holding notifications has them passed
//!   to live waiters (found before each sleep and every `HOLDER_POLL`).
//!   Taking the user's lock back can find its holder died: the wait
//!   returns [`OwnerDied`] carrying the caller's guard.
//! - **The event** (`raw/process_event.rs`): one futex word, a set flag
//!   and a generation (so a set then clear still reports `true` to its
//!   waiters); no owner, so nothing to recover.
//! - **The joinable queue** (`raw/process_queue.rs`, layout in
//!   `queue.rs`): a ring of bytes in the queue's object holding records
//!   (length, postcard bytes), its counts (head, used, items, unfinished,
//!   lost, shut) and one holding of taken tasks per process-table slot,
//!   all changed under a robust state lock and committed through a redo
//!   journal, so a process killed at any instruction leaves either the old
//!   state or (redone by the next locker) the new one. A put copies its
//!   record past the committed ones and only then commits: a producer
//!   killed before that delivers nothing. A consumer that dies holding
//!   tasks makes them *lost* (found by waiters, as dead holders' permits
//!   are), and `join` reports them instead of waiting for ever. Items are
//!   encoded before the lock is taken and decoded after it is released, so
//!   no user code runs under it. A record (at most the byte capacity) is
//!   decoded trusting its lengths as serde does: garbage can make a get
//!   preallocate about 1 MiB per collection being decoded (serde's
//!   cautious size hint), and a garbage length of a sequence of elements
//!   that take no bytes (`Vec<()>`) makes the decode loop that many times,
//!   unbounded by any timeout (documented on `JoinableQueue`; a counting
//!   deserializer would bound it at a cost on every decode). Three futex words (getters, putters,
//!   joiners) with the semaphore's sequence-and-sleepers scheme.
//! - **Values and arrays** (`pod.rs`): `len` plain-old-data elements after
//!   the object's lock word; the length and element size come from the
//!   handle (checked against the header and the arena's bounds) and live
//!   in this process's memory from then on.
//! - **Shared memory is untrusted**: every number read from it is checked
//!   before use (the allocation pointer, an object's header, a lock word's
//!   holder); a garbage lock word counts as a dead holder's (the next locker
//!   recovers it and is told), and so does one naming the locking process
//!   itself (its threads exclude each other in its own memory first, so
//!   none of them holds the word). A process that writes *another* live
//!   process's identity into a free lock word makes it look held by that
//!   process: a timed lock then times out; nothing reads out of bounds.
//!   The barrier and the condition take their *state* lock without a
//!   deadline in every call, timed waits included (a timed caller that gave
//!   up on it could not deregister: `raw/process_barrier.rs`), so a live
//!   process's identity written into a state lock's word holds their
//!   callers, past any deadline, until that process next calls the object
//!   (its own identity there is recovered as garbage) or exits.
//! - **What keeps this process sound lives in its own memory**
//!   (`known.rs`): the objects it created or opened, which never overlap
//!   (a scribbled allocation pointer or a handle forged into a value's
//!   payload is refused), and one in-process lock per object, taken before
//!   the shared word (`robust.rs`), so no shared byte can give two threads
//!   of this process a guard at once.
//! - **What no lock can stop**: another *process* writing the bytes a guard
//!   here derefs to, ignoring the lock (a buggy or hostile process of the
//!   tree, or one that zeroed the lock word and took the lock too). To the
//!   letter of Rust's rules that is a data race on the guard's `T`, as it
//!   is for any memory shared with another process that ignores the
//!   protocol; it is why `Value` and `Array` take only `Pod` types:
//!   whatever bytes land there are a valid `T`, so the damage is a wrong
//!   value, never an invalid one. Only processes of one tree, running the
//!   program's own code, share the memory.
//! - Limits: processes forked without `exec` share their parent's identity
//!   (start them with `process::spawn` or a pool); 1024 processes at once
//!   per tree; 64 MiB of objects per tree (a sparse memfd: untouched pages
//!   cost nothing; a queue's ring is most of its object). A dead holder
//!   whose pid is reused by a process started in the same clock tick
//!   (10 ms) as the holder looks alive until that process exits: a timed
//!   lock (acquire, wait) times out, a blocking one waits for that
//!   process's exit. The kernel's pid cycle makes that impossible in
//!   practice unless something picks pids (`ns_last_pid`, `clone3`'s
//!   `set_tid`: CRIU-style tools with `CAP_SYS_ADMIN`); `table.rs` says
//!   more.

#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod arena;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod array;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod barrier;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod condition;
mod error;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod event;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod known;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod lock;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod pod;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod queue;
mod queue_error;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod robust;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod semaphore;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod table;
#[cfg(not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))))]
mod unsupported;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
mod value;

#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub(crate) use arena::{attach_inherited, pass_to_child};
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use array::{Array, ArrayGuard};
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use barrier::Barrier;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use condition::{Condition, OwnerDiedWhileWaiting};
#[cfg(unix)]
pub(crate) use error::take_open_failure;
pub use error::{AcknowledgeOwnerDeath, OwnerDied, SharedError, TryLockError};
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use event::Event;
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use lock::{__lock_words, Lock, LockGuard};
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use queue::{JoinableQueue, QueueIter, QueueTask};
pub use queue_error::{GetError, PutError, TasksLost, Undecodable};
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use semaphore::{Semaphore, SemaphorePermit};
#[cfg(not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle)))))]
pub use unsupported::{
    __lock_words, Array, ArrayGuard, Barrier, Condition, Event, JoinableQueue, Lock, LockGuard,
    OwnerDiedWhileWaiting, QueueIter, QueueTask, Semaphore, SemaphorePermit, Value, ValueGuard,
    ValueInteger,
};
#[cfg(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))]
pub use value::{Value, ValueGuard, ValueInteger};

#[cfg(all(
    unix,
    not(all(target_os = "linux", not(any(verisync_loom, verisync_shuttle))))
))]
pub(crate) use unsupported::{attach_inherited, pass_to_child};
