//! The process-shared arena's layout (`src/process_shared/arena.rs`), for
//! the tests that scribble over it as a buggy or hostile process could,
//! and `run_isolated` for the tests that need an arena of their own.

use std::sync::atomic::{AtomicU32, AtomicU64};

use super::{with_watchdog, PATIENCE};
use verisync::process::{self, Lock};

pub const ARENA_LEN: usize = 64 << 20;
pub const ALLOCATION_POINTER_AT: usize = 24;
pub const TABLE_START: usize = 64;
pub const SLOTS: usize = 1024;
/// Where an object's lock word sits in it.
pub const WORD_AT: usize = 16;

/// An object's offset in the arena (a field of its serialized handle).
pub fn offset_of<T: serde::Serialize>(object: &T) -> usize {
    serde_json::to_value(object).unwrap()["offset"]
        .as_u64()
        .unwrap() as usize
}

/// The arena's base in this process, found through a lock in it.
pub fn arena_base(lock: &Lock) -> *mut u8 {
    let words = std::ptr::from_ref(process::__lock_words(lock)).cast::<u8>();
    // SAFETY (test): the lock object is `offset` bytes into the mapping.
    unsafe { words.sub(offset_of(lock)).cast_mut() }
}

pub fn u32_at(base: *mut u8, at: usize) -> &'static AtomicU32 {
    assert!(at + 4 <= ARENA_LEN && at.is_multiple_of(4));
    // SAFETY (test): inside the mapping (which lives as long as the
    // process), aligned; atomics are valid for any bytes.
    unsafe { &*base.add(at).cast::<AtomicU32>() }
}

pub fn u64_at(base: *mut u8, at: usize) -> &'static AtomicU64 {
    assert!(at + 8 <= ARENA_LEN && at.is_multiple_of(8));
    // SAFETY (test): as `u32_at`.
    unsafe { &*base.add(at).cast::<AtomicU64>() }
}

/// Runs the ignored test `name` in a fresh process of this test binary:
/// a process tree (and arena) of its own, for tests that damage the arena
/// or, on a regression, abort. Fails with its output unless it passed.
pub fn run_isolated(name: &str) {
    let name = name.to_string();
    let (passed, output) = with_watchdog(PATIENCE * 3, move || {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                &name,
                "--nocapture",
                "--test-threads=1",
            ])
            .env_remove("VERISYNC_ARENA")
            .output()
            .unwrap();
        let text = format!(
            "{:?}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success() && text.contains("1 passed"), text)
    });
    assert!(passed, "the isolated test failed:\n{output}");
}

/// This process's holder identity (`src/process_shared/table.rs`: slot
/// generation << 12 | slot index + 1), read from the process table, for
/// tests that write it where a scribbling process could.
pub fn my_identity(base: *mut u8) -> u32 {
    let pid = u64::from(std::process::id());
    (0..SLOTS)
        .find_map(|index| {
            let owner =
                u64_at(base, TABLE_START + index * 16).load(std::sync::atomic::Ordering::SeqCst);
            (owner != 0 && owner & 0xFFFF_FFFF == pid)
                .then(|| (((owner >> 32) as u32 & 0xFFFF) << 12) | (index as u32 + 1))
        })
        .expect("this process has a slot in the process table")
}

/// What a scribbling child writes: `value` at `at` in the arena.
fn write_word((lock, at, value): (Lock, usize, u32)) {
    u32_at(arena_base(&lock), at).store(value, std::sync::atomic::Ordering::SeqCst);
}

/// Has a child write `value` at `at` in the arena (as a buggy or hostile
/// process of the tree could), and waits until it did.
pub fn scribble_in_child(at: usize, value: u32) {
    let child = process::spawn(write_word, (Lock::new().unwrap(), at, value)).unwrap();
    assert_eq!(child.join(), Ok(()));
}
