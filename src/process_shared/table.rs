//! The process table: who is who in the arena, and whether they are alive.
//!
//! Every process that uses the arena claims a slot when it creates or
//! attaches it. A lock word names its holder by the slot, so a waiter can
//! ask "is the holder alive?":
//!
//! ```text
//!  holder identity (28 bits):  generation (16 bits) << 12 | slot index + 1 (12 bits)
//!  slot.owner (64 bits):       generation (32 bits) << 32 | pid (32 bits)
//!  slot.start_time:            the process's start time (/proc/<pid>/stat field 22)
//! ```
//!
//! A holder is alive when its slot still carries its generation (the slot
//! was not reclaimed since), and the slot's pid names a running process
//! (not a zombie: a killed child stays one until its parent reaps it) that
//! started at the recorded start time (not another process that reused the
//! pid). Anything else — an index out of range, a stale generation, a slot
//! still being claimed — is "not alive": a garbage word is recovered, never
//! waited on.
//!
//! # Claiming a slot
//!
//! First a slot never used (`owner == 0`), else one whose process is dead.
//! A claim CASes `owner` to `(generation + 1) << 32 | 0` — pid 0 means
//! "being claimed", which other claimers skip and liveness calls dead —
//! then stores the start time, then `owner` with the pid (`Release`; the
//! liveness check loads `owner` with `Acquire` and then the start time). A
//! process that dies between the two steps leaves its slot "being claimed"
//! for good: one slot lost, never a wrong answer.
//!
//! Slots are only reclaimed from dead processes, so a live holder's
//! identity is never reused; a dead one's is, after 65 536 reclaims of the
//! same slot (the generation's 16 bits in a lock word), which would make a
//! dead holder of that long ago look alive again. Not a concern in practice.

use std::sync::atomic::{AtomicU64, Ordering};

/// Slots in the table: processes that may use the arena at once.
pub(crate) const SLOTS: usize = 1024;

/// One process's slot.
#[repr(C)]
pub(crate) struct Slot {
    /// `generation << 32 | pid`; 0: never used; pid 0: being claimed.
    owner: AtomicU64,
    /// The process's start time (clock ticks since boot), against pid reuse.
    start_time: AtomicU64,
}

/// The holder identity of slot `index` at `generation`.
fn identity(index: usize, generation: u32) -> u32 {
    ((generation & 0xFFFF) << 12) | (index as u32 + 1)
}

/// Claims a slot for process `pid` started at `start_time`; its identity.
pub(crate) fn claim(slots: &[Slot], pid: u32, start_time: u64) -> Option<u32> {
    for reclaim in [false, true] {
        for (index, slot) in slots.iter().enumerate() {
            let owner = slot.owner.load(Ordering::Acquire);
            if reclaim {
                let claimed_pid = owner as u32;
                if owner == 0
                    || claimed_pid == 0
                    || process_is_alive(claimed_pid, slot.start_time.load(Ordering::Relaxed))
                {
                    continue;
                }
            } else if owner != 0 {
                continue;
            }
            let generation = match ((owner >> 32) as u32).wrapping_add(1) {
                0 => 1,
                generation => generation,
            };
            if slot
                .owner
                .compare_exchange(
                    owner,
                    u64::from(generation) << 32,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            slot.start_time.store(start_time, Ordering::Relaxed);
            slot.owner.store(
                u64::from(generation) << 32 | u64::from(pid),
                Ordering::Release,
            );
            return Some(identity(index, generation));
        }
    }
    None
}

/// Whether `holder` (any 28-bit value) names a live process. `own` is the
/// caller's identity: its own process is alive without asking the kernel.
pub(crate) fn is_alive(slots: &[Slot], holder: u32, own: u32) -> bool {
    if holder == own {
        return true;
    }
    let index = (holder & 0xFFF) as usize;
    let Some(slot) = index.checked_sub(1).and_then(|index| slots.get(index)) else {
        return false;
    };
    let owner = slot.owner.load(Ordering::Acquire);
    let (generation, pid) = ((owner >> 32) as u32, owner as u32);
    if generation & 0xFFFF != holder >> 12 || pid == 0 {
        return false;
    }
    process_is_alive(pid, slot.start_time.load(Ordering::Relaxed))
}

/// Whether process `pid`, started at `start_time`, is running (not a
/// zombie, not a newer process with a reused pid).
pub(crate) fn process_is_alive(pid: u32, start_time: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match parse_stat(&stat) {
            Some((state, started)) => {
                !matches!(state, 'Z' | 'X' | 'x') && (start_time == 0 || started == start_time)
            }
            None => true,
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        // /proc unreadable (hidepid, not mounted): ask the kernel whether
        // the pid exists at all; a zombie then counts as alive until reaped.
        Err(_) => {
            let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
                return false;
            };
            rustix::process::test_kill_process(pid) != Err(rustix::io::Errno::SRCH)
        }
    }
}

/// This process's start time (0 if /proc cannot say).
pub(crate) fn own_start_time() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .map_or(0, |(_, started)| started)
}

/// The state letter (field 3) and start time (field 22) of a
/// `/proc/<pid>/stat` line. The command name (field 2) is in parentheses
/// and may contain anything, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let started = own_start_time();
        assert!(started != 0);
        assert!(process_is_alive(pid, started));
        assert!(!process_is_alive(pid, started + 1));
    }

    #[test]
    fn garbage_identities_are_not_alive() {
        let slots: Vec<Slot> = (0..4)
            .map(|_| Slot {
                owner: AtomicU64::new(0),
                start_time: AtomicU64::new(0),
            })
            .collect();
        let me = claim(&slots, std::process::id(), own_start_time()).unwrap();
        // Asked as another process would (`own` matches no identity), so
        // the answer comes from the table and /proc.
        let other = u32::MAX;
        assert!(is_alive(&slots, me, other));
        for garbage in [0, 0xFFF, 5, me ^ (1 << 12), (me & 0xFFF) | (0xFFFF << 12)] {
            assert!(!is_alive(&slots, garbage, other), "{garbage:#x}");
        }
    }
}
