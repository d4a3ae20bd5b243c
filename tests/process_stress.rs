//! Multi-process stress with random kills (Linux): six child processes
//! repeatedly take a `process::Semaphore(2)` permit and, holding it, a
//! `process::Lock` to increment a `process::Value`; the parent SIGKILLs
//! children at random moments (some chosen mid-increment) and starts
//! replacements. At the end:
//!
//! - the counter equals the increments the children recorded as done (a
//!   child killed mid-increment is rolled back by the next locker, who is
//!   told through `OwnerDied` and finds the dead holder's journal entry);
//! - every semaphore permit is back (the dead holders' included);
//! - no more than 2 live children were ever inside the semaphore at once.
//!
//! **The increment** (under the lock): write a journal entry (slot, old
//! counter, old count done), then the counter, then the slot's count done,
//! then clear the journal. A holder killed anywhere in between leaves
//! either no entry (nothing changed yet, or all of it) or an entry to roll
//! back from.
//!
//! **The concurrency check**: one `Value<[u32; 3]>` holds who is inside
//! (a bit per seat), who the parent is about to kill (a bit per seat, set
//! *before* the SIGKILL) and the most seen inside at once. An entrant sets
//! its bit and counts the bits of seats not marked doomed, in one locked
//! step: every seat counted is alive (only the parent kills, and it marks
//! first), so the count is exact for the live ones; a dead holder's stale
//! bit is excluded, and cleared by the parent once it has reaped it.
//!
//! Sized to run in well under 30 s in release; the seed is printed, and
//! `VERISYNC_STRESS_SEED` replays one.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::hint::spin_loop;
use std::time::{Duration, Instant};

use common::{with_watchdog, PATIENCE};
use serde::{Deserialize, Serialize};
use verisync::process::{self, Array, Event, Lock, Semaphore, Value};
use verisync::TaskError;

/// Children alive at once, one per seat.
const SEATS: usize = 6;
/// Permits of the semaphore: at most this many inside at once.
const PERMITS: usize = 2;
/// Children killed (and replaced) over the run.
const KILLS: usize = if cfg!(debug_assertions) { 12 } else { 150 };
/// Every `TARGETED`th kill waits until a child holds the lock mid-increment.
const TARGETED: usize = 3;
/// Increments per permit held.
const INCREMENTS_PER_ENTRY: u32 = 3;
/// The longest random pause between two kills, in microseconds.
const MAX_PAUSE_MICROS: u64 = 40_000;
/// A child's slot in `done` (one per child ever started).
const SLOTS: usize = SEATS + KILLS;

/// `seats` words: who is inside, who is doomed, the most inside at once.
const INSIDE: usize = 0;
const DOOMED: usize = 1;
const PEAK: usize = 2;

/// `journal` words: the slot mid-increment plus one (0: none), the old
/// counter, the slot's old count done.
const JOURNAL_SLOT: usize = 0;
const JOURNAL_COUNTER: usize = 1;
const JOURNAL_DONE: usize = 2;

/// Everything the children share (handles into the tree's shared memory).
#[derive(Clone, Serialize, Deserialize)]
struct Shared {
    permits: Semaphore,
    lock: Lock,
    counter: Value<u64>,
    /// Increments each child (by slot) has completed.
    done: Array<u64>,
    journal: Array<u64>,
    seats: Value<[u32; 3]>,
    /// Holders that found the lock's owner dead: (told, rolled back).
    recoveries: Array<u64>,
    stop: Event,
}

/// A tiny xorshift generator (no dependency; the seed is printed).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Holding the lock after its owner died: rolls back the dead holder's
/// increment if it left one half done. Returns whether it did.
fn roll_back(shared: &Shared) -> bool {
    let entry = shared.journal.load(JOURNAL_SLOT);
    if entry == 0 {
        return false;
    }
    let slot = usize::try_from(entry - 1).expect("a slot");
    assert!(slot < SLOTS, "a journal entry names slot {slot}");
    shared.counter.store(shared.journal.load(JOURNAL_COUNTER));
    shared.done.store(slot, shared.journal.load(JOURNAL_DONE));
    shared.journal.store(JOURNAL_SLOT, 0);
    true
}

/// Locks the counter's lock; repairs after a dead holder.
fn lock_counter(shared: &Shared) -> verisync::process::LockGuard<'_> {
    match shared.lock.lock() {
        Ok(guard) => guard,
        Err(owner_died) => {
            let rolled_back = roll_back(shared);
            let mut recoveries = shared
                .recoveries
                .lock()
                .unwrap_or_else(|died| died.into_guard());
            recoveries[0] += 1;
            recoveries[1] += u64::from(rolled_back);
            drop(recoveries);
            owner_died.into_guard()
        }
    }
}

/// A short busy stretch inside the critical section: long enough that a
/// kill lands there often, short enough for thousands of increments.
fn work() {
    let until = Instant::now() + Duration::from_micros(5);
    while Instant::now() < until {
        spin_loop();
    }
}

fn increment(shared: &Shared, slot: usize) {
    let _guard = lock_counter(shared);
    let old = shared.counter.load();
    let done = shared.done.load(slot);
    shared.journal.store(JOURNAL_COUNTER, old);
    shared.journal.store(JOURNAL_DONE, done);
    shared.journal.store(JOURNAL_SLOT, slot as u64 + 1);
    shared.counter.store(old + 1);
    work();
    shared.done.store(slot, done + 1);
    shared.journal.store(JOURNAL_SLOT, 0);
}

/// Updates the seats in one locked step.
fn with_seats<R>(shared: &Shared, update: impl FnOnce(&mut [u32; 3]) -> R) -> R {
    let mut seats = shared.seats.lock().unwrap_or_else(|died| died.into_guard());
    update(&mut seats)
}

/// One child: until told to stop, take a permit, sit down, increment a few
/// times under the lock, stand up, give the permit back. Returns the
/// increments it completed.
fn child((shared, slot, seat): (Shared, usize, u32)) -> u64 {
    let bit = 1u32 << seat;
    while !shared.stop.is_set() {
        let permit = shared.permits.acquire();
        with_seats(&shared, |seats| {
            seats[INSIDE] |= bit;
            let live_inside = (seats[INSIDE] & !seats[DOOMED]).count_ones();
            seats[PEAK] = seats[PEAK].max(live_inside);
        });
        for _ in 0..INCREMENTS_PER_ENTRY {
            increment(&shared, slot);
        }
        with_seats(&shared, |seats| seats[INSIDE] &= !bit);
        drop(permit);
    }
    shared.done.load(slot)
}

/// A child in a seat, and its slot.
struct Seated {
    child: process::Process<u64>,
    slot: usize,
}

fn start(shared: &Shared, slot: usize, seat: usize) -> Seated {
    let seat_bit = u32::try_from(seat).unwrap();
    let child = process::spawn(child, (shared.clone(), slot, seat_bit)).unwrap();
    Seated { child, slot }
}

/// The seat whose child is mid-increment now (holding the lock, journal
/// written), if one is within a second.
fn seat_mid_increment(seated: &[Option<Seated>], shared: &Shared) -> Option<usize> {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let entry = shared.journal.load(JOURNAL_SLOT);
        if let Some(seat) = seated
            .iter()
            .position(|seated| seated.as_ref().is_some_and(|s| entry == s.slot as u64 + 1))
        {
            return Some(seat);
        }
        spin_loop();
    }
    None
}

#[test]
fn random_kills_lose_no_increment_no_permit_and_never_let_three_in() {
    with_watchdog(PATIENCE * 3, || {
        let seed = std::env::var("VERISYNC_STRESS_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("VERISYNC_STRESS_SEED={seed}");
        let mut random = Random(seed);
        let started = Instant::now();
        let shared = Shared {
            permits: Semaphore::new(PERMITS).unwrap(),
            lock: Lock::new().unwrap(),
            counter: Value::new(0).unwrap(),
            done: Array::new(SLOTS, 0).unwrap(),
            journal: Array::new(3, 0).unwrap(),
            seats: Value::new([0; 3]).unwrap(),
            recoveries: Array::new(2, 0).unwrap(),
            stop: Event::new().unwrap(),
        };
        let mut next_slot = 0;
        let mut seated: Vec<Option<Seated>> = (0..SEATS)
            .map(|seat| {
                next_slot += 1;
                Some(start(&shared, next_slot - 1, seat))
            })
            .collect();

        let (mut targeted_hits, mut killed_slots) = (0, Vec::new());
        for kill in 0..KILLS {
            if kill % 25 == 0 {
                // Progress, for a run that hits the watchdog on a starved machine.
                eprintln!(
                    "kill {kill} of {KILLS} at {:.1} s, counter {}",
                    started.elapsed().as_secs_f64(),
                    shared.counter.load()
                );
            }
            std::thread::sleep(Duration::from_micros(random.below(MAX_PAUSE_MICROS)));
            let targeted = kill % TARGETED == 0;
            let seat = match targeted.then(|| seat_mid_increment(&seated, &shared)) {
                Some(Some(seat)) => {
                    targeted_hits += 1;
                    seat
                }
                _ => random.below(SEATS as u64) as usize,
            };
            let bit = 1u32 << seat;
            with_seats(&shared, |seats| seats[DOOMED] |= bit);
            let victim = seated[seat].take().expect("every seat is taken");
            victim.child.kill();
            killed_slots.push(victim.slot);
            match victim.child.join() {
                Err(TaskError::WorkerDied { .. }) => {}
                other => panic!("a killed child joined with {other:?}"),
            }
            // Reaped: dead for sure. Its seat's bits go, then a
            // replacement takes the seat.
            with_seats(&shared, |seats| {
                seats[INSIDE] &= !bit;
                seats[DOOMED] &= !bit;
            });
            seated[seat] = Some(start(&shared, next_slot, seat));
            next_slot += 1;
        }

        shared.stop.set();
        let mut survivors_done = 0;
        for seated in seated.into_iter().flatten() {
            let done = seated.child.join().expect("a survivor finishes");
            assert_eq!(done, shared.done.load(seated.slot), "slot {}", seated.slot);
            survivors_done += done;
        }
        // The last holder may have died with nobody locking since.
        drop(lock_counter(&shared));

        let done: u64 = shared.done.to_vec().iter().sum();
        let counter = shared.counter.load();
        let [told, rolled_back] = <[u64; 2]>::try_from(shared.recoveries.to_vec()).unwrap();
        let peak = shared.seats.load()[PEAK];
        let available = shared.permits.available_permits();
        println!(
            "{KILLS} kills ({targeted_hits} aimed mid-increment) in {:.1} s: counter {counter}, \
             increments done {done} ({survivors_done} by the {SEATS} survivors); owner died \
             told {told} time(s), {rolled_back} half-done increment(s) rolled back; most \
             inside at once {peak}; permits available {available}",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(
            shared.journal.load(JOURNAL_SLOT),
            0,
            "a journal entry is left"
        );
        assert_eq!(
            counter, done,
            "the counter and the increments done disagree"
        );
        assert_eq!(available, PERMITS, "permits were lost or made");
        // Never more than the permits; and as many, at times (the check
        // saw real overlap).
        assert_eq!(peak, PERMITS as u32, "{peak} were inside at once at most");
        assert!(done > 0);
        assert!(
            told >= 1,
            "no kill landed while a child held the lock: the recovery went untested"
        );
        assert!(
            killed_slots.iter().any(|&slot| shared.done.load(slot) > 0),
            "no child was killed after doing any work"
        );
    });
}
