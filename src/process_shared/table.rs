//! The process table: who is who in the arena, and whether they are alive.
//!
//! Every process that uses the arena claims a slot when it creates or
//! attaches it. A lock word names its holder by the slot, so a waiter can
//! ask "is the holder alive?":
//!
//! ```text
//!  holder identity (28 bits):  generation (16 bits) << 12 | slot index + 1 (12 bits)
//!  slot.owner (64 bits):       generation (32 bits) << 32 | pid (32 bits)
//!  slot.start_time (64 bits):  generation (16 bits) << 48 | start time (48 bits)
//! ```
//!
//! The start time is the process's (`/proc/<pid>/stat` field 22, clock
//! ticks since boot: 48 bits last millions of years), tagged with the
//! generation of the claim that wrote it.
//!
//! A holder is alive when its slot still carries its generation (the slot
//! was not reclaimed since), and the slot's pid names a running process
//! (not a zombie: a killed child stays one until its parent reaps it) that
//! started at the recorded start time (not another process that reused the
//! pid). The state in `/proc/<pid>/stat` is the main thread's: a process
//! whose main thread called `pthread_exit` shows as a zombie while its
//! other threads run, and is judged dead (documented on `Lock`). Waiters
//! ask every `HOLDER_POLL` (10 ms) while they wait (`sys/futex_linux.rs`). Anything else — an index out of range, a stale generation, pid 0
//! — is "not alive": a garbage word is recovered, never waited on.
//!
//! # Claiming a slot
//!
//! First a slot never used (`owner == 0`), else one whose process is dead.
//! A claim is one CAS of `owner` to `(generation + 1) << 32 | pid`: the
//! claimer's pid goes in with the claim, so a slot is never without a pid
//! that says whether its claimer lives. Then the claimer stores its start
//! time, tagged with the new generation (`Release`). Until that store, the
//! tag is the previous claim's: the claim is *in progress*, and the pid
//! alone decides whether the slot's process is alive (a pid reused since
//! looks alive; only the start time could tell, and it is not there yet).
//! So a process killed between the two steps leaves a slot that is
//! reclaimed once its pid is gone, like any dead process's. A slot whose
//! `owner` is non-zero with pid 0 was never written by a claim (garbage,
//! or an older build's half-done claim): it is dead and reclaimable.
//!
//! Slots are only reclaimed from dead processes, so a live holder's
//! identity is never reused. A dead one's is, after 65 536 reclaims of the
//! same slot (the generation's 16 bits in a lock word, the most that fit
//! beside the slot index, `OWNER_DIED` and `WAITERS`): a lock word still
//! naming a holder that died that many reclaims ago would name the slot's
//! current process, and look held by it (waiters wait, timed ones time
//! out) until that process exits, when it is recovered as a dead holder's
//! as usual. Never a wrong answer for a live holder, and never memory
//! unsafety; it takes 65 536 processes passing through one slot while the
//! lock stays untouched.
//!
//! # Limit: a pid reused within the same clock tick
//!
//! The start time counts clock ticks (`USER_HZ`: 10 ms), so pid + start
//! time tells a dead holder from a new process with its pid only if the
//! two did not start in the same tick. A dead holder (of a lock, permits,
//! a place in a barrier) whose pid goes to a process started within the
//! tick the holder started in looks alive for as long as that process
//! runs: a timed lock or acquire times out, a blocking one waits until
//! that process exits (then the holder is recovered as dead, as usual),
//! and its slot is not reclaimed meanwhile. Never a wrong answer for a
//! live holder. The kernel hands out pids in a cycle through `pid_max`
//! (32 768 at least, usually 4 194 304), so this takes the holder to start,
//! take the lock, die and be reaped, and its pid to come round again, all
//! within 10 ms: in practice only when something chooses pids — writing
//! `/proc/sys/kernel/ns_last_pid` or `clone3`'s `set_tid` (CRIU-style
//! tools; `CAP_SYS_ADMIN` or `CAP_CHECKPOINT_RESTORE` in the pid
//! namespace). Telling the two apart regardless would take a liveness
//! token the kernel drops with the process (an open-file-description lock
//! per slot on the arena's memfd, say), not something `/proc` shows.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::raw::process_lock::slot_index;

/// Slots in the table: processes that may use the arena at once.
pub(crate) const SLOTS: usize = 1024;

/// One process's slot.
#[repr(C)]
pub(crate) struct Slot {
    /// `generation << 32 | pid`; 0: never used.
    owner: AtomicU64,
    /// `generation << 48 | start time` (clock ticks since boot), against
    /// pid reuse; a generation other than `owner`'s: the claim is in progress.
    start_time: AtomicU64,
}

/// The start time's bits in `Slot::start_time`.
const START_TIME_MASK: u64 = (1 << 48) - 1;

/// The holder identity of slot `index` at `generation`.
fn identity(index: usize, generation: u32) -> u32 {
    ((generation & 0xFFFF) << 12) | (index as u32 + 1)
}

/// Claims a slot for process `pid` started at `start_time`; its identity.
pub(crate) fn claim(slots: &[Slot], pid: u32, start_time: u64) -> Option<u32> {
    debug_assert!(pid != 0);
    for reclaim in [false, true] {
        for (index, slot) in slots.iter().enumerate() {
            let owner = slot.owner.load(Ordering::Acquire);
            if reclaim {
                if owner == 0 || slot_is_alive(slot, owner) {
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
                    u64::from(generation) << 32 | u64::from(pid),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            // Release: whoever sees the tag sees the claim before it.
            slot.start_time.store(
                u64::from(generation & 0xFFFF) << 48 | (start_time & START_TIME_MASK),
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
    let Some(slot) = slot_index(holder).and_then(|index| slots.get(index)) else {
        return false;
    };
    let owner = slot.owner.load(Ordering::Acquire);
    ((owner >> 32) as u32) & 0xFFFF == holder >> 12 && slot_is_alive(slot, owner)
}

/// Whether the process that claimed `slot` (whose `owner` was just read as
/// `owner`, non-zero) is alive: see "Claiming a slot".
fn slot_is_alive(slot: &Slot, owner: u64) -> bool {
    let (generation, pid) = ((owner >> 32) as u32, owner as u32);
    if pid == 0 {
        return false;
    }
    let start = slot.start_time.load(Ordering::Acquire);
    let start_time = if start >> 48 == u64::from(generation & 0xFFFF) {
        start & START_TIME_MASK
    } else {
        0 // in progress: the pid alone decides
    };
    process_is_alive(pid, start_time)
}

/// Whether process `pid`, started at `start_time`, is running (not a
/// zombie, not a newer process with a reused pid; `start_time` 0: any).
pub(crate) fn process_is_alive(pid: u32, start_time: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match parse_stat(&stat) {
            Some((state, started)) => {
                !matches!(state, 'Z' | 'X' | 'x')
                    && (start_time == 0 || started & START_TIME_MASK == start_time)
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

    fn table(slots: usize) -> Vec<Slot> {
        (0..slots)
            .map(|_| Slot {
                owner: AtomicU64::new(0),
                start_time: AtomicU64::new(0),
            })
            .collect()
    }

    /// The pid of a process that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_is_alive(pid, 0));
        pid
    }

    #[test]
    fn a_claim_left_half_done_by_a_dead_process_is_reclaimed() {
        let me = std::process::id();
        // What a claimer killed between its two steps leaves: the claim
        // (generation 7, its pid) without its start time (tagged with an
        // older generation).
        let slots = table(1);
        slots[0]
            .owner
            .store(7 << 32 | u64::from(dead_pid()), Ordering::SeqCst);
        slots[0]
            .start_time
            .store(6 << 48 | 12_345, Ordering::SeqCst);
        assert_eq!(claim(&slots, me, own_start_time()), Some(identity(0, 8)));
        // What an older build's claimer left (pid 0: "being claimed"), or
        // garbage: reclaimed too.
        let slots = table(1);
        slots[0].owner.store(7 << 32, Ordering::SeqCst);
        assert_eq!(claim(&slots, me, own_start_time()), Some(identity(0, 8)));
    }

    #[test]
    fn a_claim_in_progress_by_a_live_process_is_not_taken() {
        let slots = table(1);
        slots[0]
            .owner
            .store(7 << 32 | u64::from(std::process::id()), Ordering::SeqCst);
        slots[0].start_time.store(6 << 48 | 1, Ordering::SeqCst);
        assert_eq!(claim(&slots, std::process::id(), own_start_time()), None);
        // Its identity counts as alive (the pid decides until the start
        // time is stored); once stored with a wrong start time, it does not.
        assert!(is_alive(&slots, identity(0, 7), u32::MAX));
        slots[0].start_time.store(7 << 48 | 1, Ordering::SeqCst);
        assert!(!is_alive(&slots, identity(0, 7), u32::MAX));
        slots[0]
            .start_time
            .store(7 << 48 | own_start_time(), Ordering::SeqCst);
        assert!(is_alive(&slots, identity(0, 7), u32::MAX));
    }

    #[test]
    fn garbage_identities_are_not_alive() {
        let slots = table(4);
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
