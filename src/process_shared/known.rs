//! The objects this process knows: every object it created or opened, with
//! its extent and its in-process lock, kept in this process's own memory.
//!
//! Shared memory is untrusted, so what keeps this process free of
//! undefined behaviour cannot live there. Two things do, and both are here:
//!
//! - **Extents.** A new object must not overlap any object this process
//!   knows (a scribbled allocation pointer would otherwise make
//!   `Value::new` write over a value a guard here derefs to), and a handle
//!   opens only if it names exactly a known object (same offset, kind and
//!   extent) or overlaps none (a handle forged to point into a value's
//!   payload would otherwise open as a lock whose word is the value's
//!   data). So the objects this process uses never overlap each other.
//! - **In-process locks.** Every known object has one [`InProcessLock`],
//!   shared by every handle to it in this process (clones and handles
//!   opened anew alike). A locker takes it before the shared word (see
//!   `robust.rs`), so two threads of this process never hold one object's
//!   guard at once, whatever another process writes into the word.
//!
//! Entries are never removed (objects are never freed either); each one is
//! a few dozen bytes, and there are at most as many as objects fit in the
//! arena. Objects other processes created and this one never opened are
//! not known here: nothing in this process points into them.

use std::collections::BTreeMap;

use super::robust::InProcessLock;
use crate::mutex::Mutex;

/// One known object.
struct Known {
    /// One past its last byte (its extent, rounded up to whole lines).
    end: usize,
    kind: u32,
    lock: &'static InProcessLock,
}

/// The known objects by offset. Only the registration of an object (and,
/// for a new one, its initialization) runs under this lock.
static KNOWN: Mutex<BTreeMap<usize, Known>> = Mutex::new_untracked(BTreeMap::new());

/// Registers a new object of `kind` over `offset..end`, and runs `init`
/// (which writes its initial state) with its in-process lock; refuses it if
/// it overlaps a known object. `init` runs under the registry's lock, so no
/// other thread of this process can open the object before it is
/// initialized; it must not call back into this module.
pub(crate) fn create(
    offset: usize,
    end: usize,
    kind: u32,
    init: impl FnOnce(&'static InProcessLock),
) -> Result<(), String> {
    let mut known = KNOWN.lock();
    if let Some((other, _)) = overlapping(&known, offset, end) {
        return Err(format!(
            "the arena's allocation pointer was overwritten: it points into an object this \
             process uses (at offset {other})"
        ));
    }
    let lock = leak_lock();
    init(lock);
    known.insert(offset, Known { end, kind, lock });
    Ok(())
}

/// The in-process lock of the object of `kind` over `offset..end`, which a
/// handle names: the known one if this process knows exactly that object;
/// a new one if it overlaps nothing known; refused otherwise.
pub(crate) fn open(offset: usize, end: usize, kind: u32) -> Result<&'static InProcessLock, String> {
    let mut known = KNOWN.lock();
    match overlapping(&known, offset, end) {
        None => {}
        Some((other, object)) if other == offset && object.end == end && object.kind == kind => {
            return Ok(object.lock);
        }
        Some((other, _)) => {
            return Err(format!(
                "it overlaps another object this process uses (at offset {other})"
            ));
        }
    }
    let lock = leak_lock();
    known.insert(offset, Known { end, kind, lock });
    Ok(lock)
}

/// A known object overlapping `offset..end`, if any. Known objects never
/// overlap each other, so it is enough to look at the last one starting
/// before `end`: every earlier one ends before that one starts. If one is
/// exactly `offset..end`, it is the one returned.
fn overlapping(
    known: &BTreeMap<usize, Known>,
    offset: usize,
    end: usize,
) -> Option<(usize, &Known)> {
    known
        .range(..end)
        .next_back()
        .filter(|(_, object)| object.end > offset)
        .map(|(&start, object)| (start, object))
}

/// A new in-process lock, for the life of the process (as the object).
fn leak_lock() -> &'static InProcessLock {
    Box::leak(Box::new(InProcessLock::new()))
}
