//! The report types of the diagnostics and their plain-sentence `Display`.

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

// A thread's id: std's (loom's under `--cfg verisync_loom`, where the
// modelled threads all run on one OS thread).
pub(crate) use crate::sys::thread::ThreadId;

/// The stable identity of a tracked lock: a number from a global counter,
/// given the first time the lock is used, never reused (so a lock created
/// where a dropped one lived is never confused with it).
///
/// ```
/// use verisync::deadlock::blocked_threads;
/// // Ids appear in reports, e.g. `LockInfo::id`; they print as `#n`.
/// assert!(blocked_threads().iter().all(|t| t.lock.as_ref().map_or(true, |l| l.id.to_string().starts_with('#'))));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockId(pub(crate) u64);

impl fmt::Display for LockId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "#{}", self.0)
    }
}

/// Which kind of lock a report is about.
///
/// ```
/// use verisync::deadlock::LockKind;
/// assert_eq!(LockKind::Mutex.to_string(), "Mutex");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockKind {
    /// A [`Mutex`](crate::Mutex).
    Mutex,
    /// A [`ReentrantLock`](crate::ReentrantLock).
    ReentrantLock,
}

impl fmt::Display for LockKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            LockKind::Mutex => "Mutex",
            LockKind::ReentrantLock => "ReentrantLock",
        })
    }
}

/// A lock as the reports name it: its name from `with_name`, or else the
/// place where it was created.
///
/// `Display` gives the name, or "the Mutex created at src/main.rs:3".
///
/// ```
/// use verisync::deadlock::lock_order_violations;
/// for violation in lock_order_violations() {
///     for step in &violation.steps {
///         println!("{} (created at {})", step.first.lock, step.first.lock.created_at);
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LockInfo {
    /// The lock's stable id.
    pub id: LockId,
    /// The name given by `with_name`, if any.
    pub name: Option<&'static str>,
    /// Where the lock was created (`Mutex::new` or `with_name` call).
    pub created_at: &'static Location<'static>,
    /// Mutex or ReentrantLock.
    pub kind: LockKind,
}

impl fmt::Display for LockInfo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => formatter.write_str(name),
            None => write!(
                formatter,
                "the {} created at {}",
                self.kind,
                Site(self.created_at)
            ),
        }
    }
}

/// A thread as the reports name it: its name (see
/// [`std::thread::Builder::name`]) and its id.
///
/// `Display` gives the name, or "the unnamed thread ThreadId(7)".
///
/// ```
/// use verisync::deadlock::detect;
/// for deadlock in detect() {
///     for member in &deadlock.threads {
///         println!("{} ({:?})", member.thread, member.thread.id);
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ThreadInfo {
    /// The thread's name, if it has one.
    pub name: Option<String>,
    /// The thread's id.
    pub id: ThreadId,
}

impl fmt::Display for ThreadInfo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => formatter.write_str(name),
            None => write!(formatter, "the unnamed thread {:?}", self.id),
        }
    }
}

/// A lock a thread holds, with the place where it took it.
///
/// `Display`: "A (taken at src/bank.rs:12)".
///
/// ```
/// use verisync::deadlock::blocked_threads;
/// for blocked in blocked_threads() {
///     for held in &blocked.holds {
///         println!("{} holds {held}", blocked.thread);
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HeldLock {
    /// The lock.
    pub lock: LockInfo,
    /// The `lock()` (or `try_lock`, …) call that took it.
    pub taken_at: &'static Location<'static>,
}

impl fmt::Display for HeldLock {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} (taken at {})",
            self.lock,
            Site(self.taken_at)
        )
    }
}

/// One thread of a [`Deadlock`]: what it waits for, since when, and what
/// it holds.
///
/// ```
/// use verisync::deadlock::detect;
/// for deadlock in detect() {
///     for member in &deadlock.threads {
///         println!("{member}");
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeadlockedThread {
    /// The thread.
    pub thread: ThreadInfo,
    /// The lock it is blocked on.
    pub waits_for: LockInfo,
    /// The `lock()` call (or condition wait re-taking its lock) it is blocked in.
    pub waiting_at: &'static Location<'static>,
    /// When it started to wait.
    pub since: Instant,
    /// How long it has been blocked, when the report was made.
    pub waited: Duration,
    /// Every lock it holds, in the order it took them.
    pub holds: Vec<HeldLock>,
}

impl fmt::Display for DeadlockedThread {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} holds ", self.thread)?;
        write_list(formatter, &self.holds)?;
        write!(
            formatter,
            " and waits for {} (at {})",
            self.waits_for,
            Site(self.waiting_at)
        )
    }
}

/// A cycle of threads blocked right now, each waiting for a lock the next
/// one holds: none of them can ever go on (unless its wait has a timeout).
///
/// `Display` reads like the lesson: "deadlock: thread-1 holds A (taken at
/// src/bank.rs:12) and waits for B (at src/bank.rs:13); thread-2 holds B
/// (taken at src/bank.rs:20) and waits for A (at src/bank.rs:21)".
///
/// ```
/// for deadlock in verisync::deadlock::detect() {
///     eprintln!("{deadlock}");
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Deadlock {
    /// The threads of the cycle: each waits for a lock the next one holds,
    /// and the last waits for a lock the first holds.
    pub threads: Vec<DeadlockedThread>,
}

impl fmt::Display for Deadlock {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("deadlock: ")?;
        for (index, member) in self.threads.iter().enumerate() {
            if index > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "{member}")?;
        }
        Ok(())
    }
}

/// One acquisition in a lock-order chain: `thread` took `then` while it
/// held `first`.
///
/// `Display`: "thread-1 took A (at src/bank.rs:12) and then B (at
/// src/bank.rs:13)".
///
/// ```
/// for violation in verisync::deadlock::lock_order_violations() {
///     for step in &violation.steps {
///         println!("{step}");
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LockOrderStep {
    /// The thread that took the two locks.
    pub thread: ThreadInfo,
    /// The lock it held, and where it had taken it.
    pub first: HeldLock,
    /// The lock it took next, and where.
    pub then: HeldLock,
}

impl fmt::Display for LockOrderStep {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} took {} (at {}) and then {} (at {})",
            self.thread,
            self.first.lock,
            Site(self.first.taken_at),
            self.then.lock,
            Site(self.then.taken_at)
        )
    }
}

/// Locks taken in orders that can deadlock, even if this run did not: the
/// steps form a cycle (the first step's `first` lock is the last step's
/// `then` lock), so threads running them at the same time can each hold
/// one lock and wait for the next.
///
/// `Display`: "lock order violation: thread-1 took A (at …) and then B (at
/// …); thread-2 took B (at …) and then A (at …)".
///
/// ```
/// for violation in verisync::deadlock::lock_order_violations() {
///     eprintln!("{violation}");
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LockOrderViolation {
    /// The acquisitions that form the cycle, in cycle order; the last one
    /// is the acquisition that closed it.
    pub steps: Vec<LockOrderStep>,
}

impl fmt::Display for LockOrderViolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("lock order violation: ")?;
        for (index, step) in self.steps.iter().enumerate() {
            if index > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "{step}")?;
        }
        formatter.write_str(" — threads doing these at the same time can deadlock")
    }
}

/// A thread blocked right now in a verisync primitive.
///
/// `Display`: "thread-1 has waited 2.1s in Event::wait on ready (at
/// src/main.rs:9), holding A (taken at src/main.rs:7)".
///
/// ```
/// for blocked in verisync::deadlock::blocked_threads() {
///     eprintln!("{blocked}");
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BlockedThread {
    /// The thread.
    pub thread: ThreadInfo,
    /// The operation it is blocked in, e.g. `"Mutex::lock"`, `"Event::wait"`.
    pub operation: &'static str,
    /// The primitive's name, if it has one.
    pub name: Option<&'static str>,
    /// The lock it waits for, when it waits for a `Mutex` or `ReentrantLock`
    /// (also a condition waiter re-taking its lock).
    pub lock: Option<LockInfo>,
    /// The call it is blocked in.
    pub waiting_at: &'static Location<'static>,
    /// When it started to wait.
    pub since: Instant,
    /// How long it has been blocked, when the report was made.
    pub waited: Duration,
    /// Every lock it holds, in the order it took them.
    pub holds: Vec<HeldLock>,
}

impl fmt::Display for BlockedThread {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} has waited {:.1?} in {}",
            self.thread, self.waited, self.operation
        )?;
        if let Some(lock) = &self.lock {
            write!(formatter, " for {lock}")?;
        } else if let Some(name) = self.name {
            write!(formatter, " on {name}")?;
        }
        write!(formatter, " (at {})", Site(self.waiting_at))?;
        if !self.holds.is_empty() {
            formatter.write_str(", holding ")?;
            write_list(formatter, &self.holds)?;
        }
        Ok(())
    }
}

/// "A (taken at x), B (taken at y)", or "nothing".
fn write_list(formatter: &mut fmt::Formatter<'_>, holds: &[HeldLock]) -> fmt::Result {
    if holds.is_empty() {
        return formatter.write_str("no lock");
    }
    for (index, held) in holds.iter().enumerate() {
        if index > 0 {
            formatter.write_str(", ")?;
        }
        write!(formatter, "{held}")?;
    }
    Ok(())
}

/// A source location as the reports print it: `file:line` (no column).
struct Site(&'static Location<'static>);

impl fmt::Display for Site {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.0.file(), self.0.line())
    }
}
