//! The task board: a little memory shared by the parent and one worker
//! process, where the two agree — without a message round trip — on which
//! of the tasks sent ahead starts and which is cancelled, and where the
//! worker shows which task it is running and since when.
//!
//! # Protocol
//!
//! The parent creates the board (POSIX shared memory, `shm_open`), maps it,
//! and sends its name as the first frame on the worker's task pipe; the
//! worker maps it and removes the name. Every task sent has a cell,
//! `id % CELLS` (task ids count up per worker, and fewer than `CELLS` tasks
//! are ever unanswered, so a cell is reused only after its last task was
//! answered):
//!
//! ```text
//!   cell:  SENT ──worker starts it──▶ STARTED
//!            └───parent cancels it──▶ CANCELLED   (the worker answers `Skipped`)
//! ```
//!
//! One compare-exchange decides, so a task either runs or is cancelled,
//! never both, and `cancel` answers at once.
//!
//! `running` holds `id + 1` of the task the worker runs (0: none), and
//! `started` when it started, in nanoseconds of `CLOCK_MONOTONIC` (one
//! clock for every process of the machine). The worker stores `started`,
//! then `running`; when the task returns it swaps `running` from `id + 1`
//! to 0. The parent's watcher, to time the task out, swaps `running` from
//! `id + 1` to `KILLED` before it kills the worker. Exactly one of the two
//! swaps succeeds: a task that finished in time is never killed for its
//! timeout (the worker may already be writing the answer), and a worker
//! that loses the race exits without answering, so the task killed is the
//! task reported `TimedOut`. The clock counts only the task's own run in
//! the worker: not the time its answer spends in the pipe, nor the time
//! the parent spends elsewhere before it reads that answer.
//!
//! # Memory ordering
//!
//! Every access is `SeqCst`: the two processes see one order of the
//! board's few operations (both sides run on the same machine, where
//! atomics on shared memory behave as within one process). These are a
//! few operations per task, next to a pipe write and read.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use rustix::fs::Mode;
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use rustix::shm;

/// Cells on a board; more than the tasks a worker may have unanswered.
pub(crate) const CELLS: usize = 128;

/// Sent to the worker, not started yet: either side may claim it.
const SENT: u8 = 0;
/// The worker started it.
const STARTED: u8 = 1;
/// The parent cancelled it: the worker skips it.
const CANCELLED: u8 = 2;

/// `running` while the parent kills the worker for a timeout.
const KILLED: u64 = u64::MAX;

/// The shared memory's layout.
#[repr(C)]
struct Page {
    /// `id + 1` of the task running (0: none; `KILLED`: timed out).
    running: AtomicU64,
    /// When the running task started (`CLOCK_MONOTONIC`, ns).
    started: AtomicU64,
    cells: [AtomicU8; CELLS],
}

/// One worker's board, mapped in this process.
pub(crate) struct Board {
    page: NonNull<Page>,
    /// The shared memory's name; the parent removes it when done (in case
    /// the worker never did).
    name: Option<String>,
}

// SAFETY: the page is only accessed through atomics, and the mapping lives
// until the `Board` is dropped.
unsafe impl Send for Board {}
// SAFETY: as above.
unsafe impl Sync for Board {}

impl Board {
    /// Creates a board (parent side); its [`name`](Self::name) goes to the worker.
    pub(crate) fn create() -> io::Result<Self> {
        use std::sync::atomic::AtomicU32;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Short: some systems allow 31 bytes.
        let name = format!(
            "/vs{:x}-{:x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let fd = shm::open(
            name.as_str(),
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )?;
        let mapped = rustix::fs::ftruncate(&fd, std::mem::size_of::<Page>() as u64)
            .and_then(|()| Self::map(&fd));
        match mapped {
            Ok(page) => Ok(Self {
                page,
                name: Some(name),
            }),
            Err(error) => {
                let _ = shm::unlink(name.as_str());
                Err(error.into())
            }
        }
    }

    /// Maps the board `name` (worker side) and removes the name.
    pub(crate) fn open(name: &str) -> io::Result<Self> {
        let fd = shm::open(name, shm::OFlags::RDWR, Mode::empty())?;
        let _ = shm::unlink(name);
        Ok(Self {
            page: Self::map(&fd)?,
            name: None,
        })
    }

    fn map(fd: &rustix::fd::OwnedFd) -> rustix::io::Result<NonNull<Page>> {
        // SAFETY: a fresh mapping (null hint) of the shared memory, which
        // is at least a `Page` long; nothing else in this process refers to
        // it. Zero bytes are a valid `Page` (all atomics).
        let address = unsafe {
            mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Page>(),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        Ok(NonNull::new(address.cast::<Page>()).expect("mmap never returns null on success"))
    }

    /// The name to send to the worker.
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    fn page(&self) -> &Page {
        // SAFETY: mapped for as long as `self` lives; only atomics inside.
        unsafe { self.page.as_ref() }
    }

    fn cell(&self, id: u64) -> &AtomicU8 {
        &self.page().cells[(id % CELLS as u64) as usize]
    }

    /// Parent: task `id` is about to be sent.
    pub(crate) fn sent(&self, id: u64) {
        self.cell(id).store(SENT, Ordering::SeqCst);
    }

    /// Parent: cancels task `id` unless the worker started it.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        self.cell(id)
            .compare_exchange(SENT, CANCELLED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Parent: whether the worker started task `id`.
    pub(crate) fn is_started(&self, id: u64) -> bool {
        self.cell(id).load(Ordering::SeqCst) == STARTED
    }

    /// Parent: the task running now and when it started (ns).
    pub(crate) fn running(&self) -> Option<(u64, u64)> {
        let page = self.page();
        loop {
            let running = page.running.load(Ordering::SeqCst);
            if running == 0 || running == KILLED {
                return None;
            }
            let started = page.started.load(Ordering::SeqCst);
            // Re-read: the worker may have moved on to another task between.
            if page.running.load(Ordering::SeqCst) == running {
                return Some((running - 1, started));
            }
        }
    }

    /// Parent: claims the right to kill the worker for task `id`'s
    /// timeout; `false` if the task has returned meanwhile.
    pub(crate) fn stop_for_timeout(&self, id: u64) -> bool {
        self.page()
            .running
            .compare_exchange(id + 1, KILLED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Worker: starts task `id`; `false` if the parent cancelled it.
    pub(crate) fn start(&self, id: u64) -> bool {
        if self
            .cell(id)
            .compare_exchange(SENT, STARTED, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        let page = self.page();
        page.started.store(monotonic_nanos(), Ordering::SeqCst);
        page.running.store(id + 1, Ordering::SeqCst);
        true
    }

    /// Worker: task `id` returned; `false` if the parent is killing this
    /// worker for the task's timeout (then it must not answer).
    pub(crate) fn finish(&self, id: u64) -> bool {
        self.page()
            .running
            .compare_exchange(id + 1, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let _ = shm::unlink(name.as_str());
        }
        // SAFETY: mapped in `map` with this length; no reference into the
        // page outlives `self`.
        let _ = unsafe { munmap(self.page.as_ptr().cast(), std::mem::size_of::<Page>()) };
    }
}

/// Now, in nanoseconds of `CLOCK_MONOTONIC` (the same clock in every
/// process of the machine).
pub(crate) fn monotonic_nanos() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}
