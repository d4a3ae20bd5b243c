//! The arena: one block of shared memory per process tree, where every
//! process-shared object lives, and the handles that name objects in it.
//!
//! # Layout
//!
//! ```text
//!  0        header: magic, arena id, length, next free offset   (64 bytes)
//!  64       process table: SLOTS × 16 bytes                     (table.rs)
//!  OBJECTS  objects, each 64-byte aligned, bump-allocated, never freed:
//!             object header: kind, tag, size, element           (16 bytes)
//!             the object's state (a lock word at +16, a value at +64, ...)
//! ```
//!
//! Every field in it is read and written through atomics (a value's payload
//! only under its lock), and every number read from it is checked before
//! use: the bump pointer before allocating (and the new object must not
//! overlap one this process uses: `known.rs`), an object's header before a
//! handle opens it. A process that scribbles over the arena can break the
//! objects' *meaning* (a lock word, a value), never make another process
//! touch memory outside the arena or allocate without bound.
//!
//! # A handle
//!
//! `(arena id, offset, kind, tag, recorded)`: the arena id (random per
//! arena) rejects another tree's handles; the offset must be 64-byte
//! aligned, inside the object area, with the object's whole extent inside
//! the arena; the kind and the tag (random per object, written in its
//! header) must match, and so must `recorded` (the type's parameters: a
//! value's size, an array's length, a semaphore's bound, which the opener
//! first checks against its type and the arena's bounds); the header's
//! element type identity (a `Value`'s or an `Array`'s `T`: `pod.rs`) must
//! be the opener's, so a handle opens only as its own element type; and
//! the extent
//! must be exactly an object this process already uses or overlap none of
//! them (`known.rs`: a header can be forged inside a value's payload). A
//! handle that fails any check is `SharedError::InvalidHandle`. The checks
//! run when a handle is opened (deserialized); after that the object's
//! memory is in bounds for good (the arena is never unmapped or resized),
//! so its use needs no check.
//!
//! # Sharing it with children
//!
//! The parent creates the arena lazily, with its first object: a `memfd`
//! (anonymous shared memory; nothing in `/dev/shm` to leak if the tree is
//! killed), sized once and sealed against shrinking and growing (a child
//! that shrank it would make every other process's access a `SIGBUS`),
//! mapped shared. Its descriptor is close-on-exec; a child that the pool or
//! `process::spawn` starts gets it inherited (cleared close-on-exec in the
//! child just before `exec`) and finds it named in `VERISYNC_ARENA`
//! (`fd:length:id`), which `process::init()` reads, checks (the length, the
//! seals, the magic and the id) and removes. Children of children inherit
//! it in turn, so the whole tree shares one arena. Other programs the
//! process starts do not inherit it.
//!
//! A worker started *before* the arena existed has none: opening a handle
//! there fails with a message saying to create shared objects before
//! starting the pool. A process outside the tree, or one whose `main` did
//! not call `process::init()`, has none either: every handle fails to open.

use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{mmap, MapFlags, ProtFlags};
use serde::{Deserialize, Serialize};

use super::error::SharedError;
use super::known;
use super::robust::InProcessLock;
use super::table::{self, Slot, SLOTS};

/// The arena's size: the bound on a process tree's shared objects (a
/// queue's ring is most of its object). The memfd is sparse: pages are
/// only backed once touched, so the unused part costs nothing.
pub(crate) const ARENA_LEN: usize = 64 << 20;
/// "VSARENA1".
const MAGIC: u64 = u64::from_le_bytes(*b"VSARENA1");
/// Objects are aligned to (and their state laid out in) 64-byte lines.
pub(crate) const LINE: usize = 64;
const TABLE_START: usize = LINE;
const OBJECTS_START: usize = TABLE_START + SLOTS * std::mem::size_of::<Slot>();
/// The environment variable naming the inherited arena.
const ARENA_VARIABLE: &str = "VERISYNC_ARENA";

/// Object kinds (in an object's header and its handle).
pub(crate) const KIND_LOCK: u32 = 1;
/// A `Value<T>`.
pub(crate) const KIND_VALUE: u32 = 2;
/// A `Semaphore`.
pub(crate) const KIND_SEMAPHORE: u32 = 3;
/// An `Event`.
pub(crate) const KIND_EVENT: u32 = 4;
/// An `Array<T>` (with `size_of::<T>() << 8`: `array.rs`).
pub(crate) const KIND_ARRAY: u32 = 5;
/// A `JoinableQueue<T>`.
pub(crate) const KIND_QUEUE: u32 = 6;
/// A `Barrier`.
pub(crate) const KIND_BARRIER: u32 = 7;
/// A `Condition`.
pub(crate) const KIND_CONDITION: u32 = 8;

#[repr(C)]
struct Header {
    magic: AtomicU64,
    id: AtomicU64,
    len: AtomicU64,
    /// The next free offset (bump allocation).
    next: AtomicU64,
}

#[repr(C)]
struct ObjectHeader {
    kind: AtomicU32,
    tag: AtomicU32,
    size: AtomicU32,
    /// The element type's identity (`Value<T>`, `Array<T>`: `pod.rs`), or
    /// [`NO_ELEMENT`].
    element: AtomicU32,
}

/// The element identity of an object that has no element type.
pub(crate) const NO_ELEMENT: u32 = 0;

/// The arena as mapped in this process.
pub(crate) struct Arena {
    base: NonNull<u8>,
    id: u64,
    /// This process's holder identity in the process table.
    me: u32,
    /// Keeps the memory alive and is what children inherit.
    fd: OwnedFd,
}

// SAFETY: the mapping lives as long as the process (never unmapped), and
// everything in it is accessed through atomics, or (a value's payload)
// under its lock.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

/// What a handle carries across processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Handle {
    arena: u64,
    offset: u32,
    kind: u32,
    tag: u32,
    /// What the object's header records (a value's size, a semaphore's
    /// bound): the type's parameters, which an opener needs before it can
    /// check the object (untrusted until `Object::open` agrees).
    recorded: u32,
}

impl Handle {
    /// The object's offset in the arena (unique in the tree, non-zero).
    pub(crate) fn offset(&self) -> u32 {
        self.offset
    }

    /// What it says the object's header records (untrusted).
    pub(crate) fn recorded(&self) -> u32 {
        self.recorded
    }
}

/// An opened object: its place in this process's arena, and its
/// in-process lock (`known.rs`).
#[derive(Clone, Copy)]
pub(crate) struct Object {
    arena: &'static Arena,
    offset: usize,
    kind: u32,
    tag: u32,
    recorded: u32,
    in_process_lock: &'static InProcessLock,
}

static ARENA: OnceLock<Result<Arena, SharedError>> = OnceLock::new();

/// The arena, created if this process has none yet (a new object).
pub(crate) fn for_new_object() -> Result<&'static Arena, SharedError> {
    ARENA.get_or_init(create).as_ref().map_err(Clone::clone)
}

/// The arena, if this process has one (opening a handle).
fn for_opening() -> Result<&'static Arena, SharedError> {
    match ARENA.get() {
        Some(arena) => arena.as_ref().map_err(Clone::clone),
        None => Err(SharedError::Unavailable(
            "this process neither created process-shared objects nor inherited them: handles \
             open only in the process that created the object and in processes it (or they) \
             started afterwards with `process::spawn` or a `ProcessPool`, whose main calls \
             `verisync::process::init()` first (in tests: `verisync::process_test_support!();`)"
                .into(),
        )),
    }
}

/// In a worker process (from `process::init()`): attaches the arena the
/// parent passed down, and removes the variable. Runs before the program
/// starts threads (see `worker::take_settings` on removing variables).
pub(crate) fn attach_inherited() {
    let inherited = std::env::var(ARENA_VARIABLE).ok();
    std::env::remove_var(ARENA_VARIABLE);
    let arena = match inherited {
        Some(description) => attach(&description).map_err(|why| {
            SharedError::Unavailable(format!(
                "the arena inherited from the parent process is unusable: {why}"
            ))
        }),
        None => Err(SharedError::Unavailable(
            "this worker process was started before its parent created its first \
             process-shared object, so it has no shared memory; create process-shared objects \
             before starting the `ProcessPool` or `process::spawn` that uses them"
                .into(),
        )),
    };
    let _ = ARENA.set(arena);
}

/// In the parent, as it starts a child: passes the arena down (if there is
/// one), so the child can attach it in `process::init()`.
pub(crate) fn pass_to_child(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let Some(Ok(arena)) = ARENA.get() else {
        command.env_remove(ARENA_VARIABLE);
        return;
    };
    let fd = arena.fd.as_raw_fd();
    command.env(ARENA_VARIABLE, format!("{fd}:{ARENA_LEN}:{:x}", arena.id));
    // SAFETY: the closure runs in the forked child before `exec`, where
    // only async-signal-safe calls are allowed: it makes one `fcntl`
    // system call (rustix calls the kernel directly: no allocation, no
    // lock) on a descriptor number that stays open in this process for its
    // whole life (the arena is never dropped), so it is open in the child.
    unsafe {
        command.pre_exec(move || {
            let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
}

fn create() -> Result<Arena, SharedError> {
    let failed = |what: &str, error: rustix::io::Errno| {
        SharedError::Unavailable(format!("cannot create the shared memory ({what}: {error})"))
    };
    let fd = rustix::fs::memfd_create(
        "verisync-arena",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|error| failed("memfd_create", error))?;
    rustix::fs::ftruncate(&fd, ARENA_LEN as u64).map_err(|error| failed("ftruncate", error))?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .map_err(|error| failed("seal", error))?;
    let base = map(&fd).map_err(|error| failed("mmap", error))?;
    let id = random_u64() | 1;
    // SAFETY: a fresh mapping of ARENA_LEN zeroed bytes; the header is at
    // its (page-aligned) start and only accessed through atomics.
    let header = unsafe { base.cast::<Header>().as_ref() };
    header.magic.store(MAGIC, Ordering::Relaxed);
    header.id.store(id, Ordering::Relaxed);
    header.len.store(ARENA_LEN as u64, Ordering::Relaxed);
    header.next.store(OBJECTS_START as u64, Ordering::Relaxed);
    finish(base, id, fd).map_err(SharedError::Unavailable)
}

/// Attaches the arena described by `fd:len:id`.
fn attach(description: &str) -> Result<Arena, String> {
    let mut parts = description.split(':');
    let (Some(fd), Some(len), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed description {description:?}"));
    };
    let fd: i32 = fd.parse().map_err(|_| format!("bad descriptor {fd:?}"))?;
    let id = u64::from_str_radix(id, 16).map_err(|_| format!("bad id {id:?}"))?;
    if len != ARENA_LEN.to_string() {
        return Err(format!("length {len} is not {ARENA_LEN}"));
    }
    if fd < 0 {
        return Err(format!("bad descriptor {fd}"));
    }
    // Check the descriptor before taking ownership of it: it must be open.
    // SAFETY: only borrowed for this one `fcntl`, which fails harmlessly
    // (EBADF) if nothing is open under that number.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let seals = rustix::fs::fcntl_get_seals(borrowed)
        .map_err(|error| format!("descriptor {fd} is not sealed shared memory ({error})"))?;
    if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
        return Err(format!("descriptor {fd} can change size"));
    }
    // SAFETY: the parent passed this descriptor to this process alone, and
    // nothing else in it knows the number (init() runs first).
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let size = rustix::fs::fstat(&fd)
        .map_err(|error| format!("fstat: {error}"))?
        .st_size;
    if size != ARENA_LEN as i64 {
        return Err(format!("it is {size} bytes, not {ARENA_LEN}"));
    }
    // Children this process starts get it again through `pass_to_child`.
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
        .map_err(|error| format!("fcntl: {error}"))?;
    let base = map(&fd).map_err(|error| format!("mmap: {error}"))?;
    // SAFETY: mapped, ARENA_LEN bytes, page-aligned; atomics only.
    let header = unsafe { base.cast::<Header>().as_ref() };
    if header.magic.load(Ordering::Relaxed) != MAGIC || header.id.load(Ordering::Relaxed) != id {
        return Err("its header is not the arena's".into());
    }
    finish(base, id, fd)
}

fn finish(base: NonNull<u8>, id: u64, fd: OwnedFd) -> Result<Arena, String> {
    let mut arena = Arena {
        base,
        id,
        me: 0,
        fd,
    };
    arena.me = table::claim(arena.slots(), std::process::id(), table::own_start_time())
        .ok_or_else(|| {
            format!("all {SLOTS} places in its process table are taken by live processes")
        })?;
    Ok(arena)
}

fn map(fd: &OwnedFd) -> rustix::io::Result<NonNull<u8>> {
    // SAFETY: a fresh mapping (null hint) of the memfd, which is exactly
    // ARENA_LEN bytes and sealed against shrinking, so every byte of the
    // mapping stays backed. Nothing in this process refers to it yet.
    let address = unsafe {
        mmap(
            std::ptr::null_mut(),
            ARENA_LEN,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd.as_fd(),
            0,
        )?
    };
    Ok(NonNull::new(address.cast::<u8>()).expect("mmap never returns null on success"))
}

/// A random number (std's per-process random hash keys, mixed with the
/// time and pid): arena ids and object tags need to be unguessable by
/// accident, not by an adversary.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.finish()
}

impl Arena {
    fn header(&self) -> &Header {
        // SAFETY: the header is at the mapping's page-aligned start, which
        // lives for the process's life; atomics only.
        unsafe { self.base.cast::<Header>().as_ref() }
    }

    fn slots(&self) -> &[Slot] {
        // SAFETY: the table lies within the mapping, 64-byte aligned, and
        // holds only atomics (for which zero bytes are valid).
        unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(TABLE_START).cast::<Slot>(), SLOTS)
        }
    }

    /// This process's holder identity.
    pub(crate) fn me(&self) -> u32 {
        self.me
    }

    /// Whether holder identity `holder` (any value) is a live process.
    pub(crate) fn is_alive(&self, holder: u32) -> bool {
        table::is_alive(self.slots(), holder, self.me)
    }

    /// Allocates an object of `kind` whose state is `size` bytes from the
    /// object's start (header included), 64-byte aligned; `recorded` goes
    /// into the header's size field and `element` (its element type's
    /// identity, or [`NO_ELEMENT`]) into its element field, for `open` to
    /// check. `init` writes the
    /// object's initial state (see `known::create`: it runs only once the
    /// object is known not to overlap any object this process uses, and
    /// before any other thread here can open it).
    pub(crate) fn allocate(
        &'static self,
        kind: u32,
        element: u32,
        size: usize,
        recorded: u32,
        init: impl FnOnce(&Object),
    ) -> Result<Object, SharedError> {
        let full = || SharedError::ArenaFull {
            requested: size,
            capacity: ARENA_LEN,
        };
        let extent = size.checked_next_multiple_of(LINE).ok_or_else(full)?;
        let next = &self.header().next;
        let mut start = next.load(Ordering::Relaxed);
        let offset = loop {
            // Untrusted: anyone may have written it.
            let Some(offset) = usize::try_from(start)
                .ok()
                .filter(|&offset| offset >= OBJECTS_START && offset.is_multiple_of(LINE))
            else {
                return Err(SharedError::Unavailable(format!(
                    "the arena's allocation pointer was overwritten with garbage ({start})"
                )));
            };
            let end = offset.checked_add(extent).filter(|&end| end <= ARENA_LEN);
            let Some(end) = end else {
                return Err(full());
            };
            match next.compare_exchange_weak(
                start,
                end as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break offset,
                Err(actual) => start = actual,
            }
        };
        let tag = (random_u64() as u32) | 1;
        let mut object = None;
        known::create(offset, offset + extent, kind, |in_process_lock| {
            let placed = Object {
                arena: self,
                offset,
                kind,
                tag,
                recorded,
                in_process_lock,
            };
            let header = self.object_header(offset);
            // The memory is zero (fresh), unless a scribbler wrote there:
            // the object's state is reset by `init` anyway.
            header.size.store(recorded, Ordering::Relaxed);
            header.element.store(element, Ordering::Relaxed);
            header.tag.store(tag, Ordering::Relaxed);
            init(&placed);
            // Release: a process that opens the handle and sees the kind
            // sees the rest of the header and the initial state (the handle
            // itself crosses through a pipe, which orders everything anyway).
            header.kind.store(kind, Ordering::Release);
            object = Some(placed);
        })
        .map_err(SharedError::Unavailable)?;
        Ok(object.expect("`known::create` ran `init`, as it succeeded"))
    }

    /// The header of the object at `offset`.
    fn object_header(&self, offset: usize) -> &ObjectHeader {
        debug_assert!(offset.is_multiple_of(LINE) && offset + LINE <= ARENA_LEN);
        // SAFETY: `offset` is 64-byte aligned and its object's extent lies
        // in the mapping (checked by `allocate`/`open` before the call),
        // which lives for the process's life; atomics only.
        unsafe { &*self.base.as_ptr().add(offset).cast::<ObjectHeader>() }
    }
}

impl Object {
    /// Opens `handle` as an object of `kind` (with element type `element`)
    /// whose state is `size` bytes with `recorded` in its header: every
    /// check in the module docs.
    pub(crate) fn open(
        handle: Handle,
        kind: u32,
        element: u32,
        size: usize,
        recorded: u32,
    ) -> Result<Object, SharedError> {
        let invalid = |why: String| SharedError::InvalidHandle(why);
        let arena = for_opening()?;
        if handle.arena != arena.id {
            return Err(invalid(
                "it belongs to another process tree's shared memory (or this process did not \
                 inherit its parent's: was it started by `process::spawn` or a `ProcessPool` \
                 after the object was created?)"
                    .into(),
            ));
        }
        let offset = handle.offset as usize;
        let in_bounds = offset >= OBJECTS_START
            && offset.is_multiple_of(LINE)
            && offset.checked_add(size).is_some_and(|end| end <= ARENA_LEN);
        if !in_bounds {
            return Err(invalid(format!("offset {offset} is outside the objects")));
        }
        let header = arena.object_header(offset);
        if handle.kind != kind || header.kind.load(Ordering::Acquire) != kind {
            return Err(invalid("it names an object of another type".into()));
        }
        if header.element.load(Ordering::Relaxed) != element {
            return Err(invalid(
                "it names an object of another element type (a `Value`'s or an `Array`'s `T`)"
                    .into(),
            ));
        }
        if handle.tag == 0
            || header.tag.load(Ordering::Relaxed) != handle.tag
            || handle.recorded != recorded
            || header.size.load(Ordering::Relaxed) != recorded
        {
            return Err(invalid(
                "no such object (its tag or size does not match)".into(),
            ));
        }
        // The header can be forged (say, inside a value's payload): what
        // decides is whether the extent is one this process uses already.
        let end = offset + size.next_multiple_of(LINE);
        let in_process_lock = known::open(offset, end, kind).map_err(invalid)?;
        Ok(Object {
            arena,
            offset,
            kind,
            tag: handle.tag,
            recorded,
            in_process_lock,
        })
    }

    /// The handle that names this object in any process of the tree.
    pub(crate) fn handle(&self) -> Handle {
        Handle {
            arena: self.arena.id,
            offset: self.offset as u32,
            kind: self.kind,
            tag: self.tag,
            recorded: self.recorded,
        }
    }

    pub(crate) fn arena(&self) -> &'static Arena {
        self.arena
    }

    /// The lock that excludes this process's threads from the object.
    #[inline]
    pub(crate) fn in_process_lock(&self) -> &'static InProcessLock {
        self.in_process_lock
    }

    /// The `u32` word at `at` bytes into the object (4-aligned, inside the
    /// object's checked extent).
    pub(crate) fn word(&self, at: usize) -> &'static AtomicU32 {
        debug_assert!(at.is_multiple_of(4) && at >= std::mem::size_of::<ObjectHeader>());
        // SAFETY: as `header`: inside the checked extent, 4-aligned (the
        // object is 64-aligned and `at` a multiple of 4), atomics only.
        unsafe {
            &*self
                .arena
                .base
                .as_ptr()
                .add(self.offset + at)
                .cast::<AtomicU32>()
        }
    }

    /// A pointer to the bytes at `at` into the object (inside its checked
    /// extent), for a value's payload.
    pub(crate) fn bytes(&self, at: usize) -> *mut u8 {
        // SAFETY: inside the mapping (the checked extent).
        unsafe { self.arena.base.as_ptr().add(self.offset + at) }
    }
}
