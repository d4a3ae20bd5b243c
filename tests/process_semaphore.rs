//! `process::Semaphore` across real processes (Linux): exclusion, timeouts,
//! a killed holder's permits coming back, and garbage in its shared state.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::arena::{arena_base, my_identity, offset_of, scribble_in_child, u32_at, WORD_AT};
use common::{wait_for, with_watchdog, PATIENCE};
use verisync::process::{self, Lock, Semaphore, Value};

/// How long a waiter may take to take back a dead holder's permits
/// (production looks every 10 ms; generous for a loaded machine).
const NOTICE_DEATH: Duration = Duration::from_secs(5);

/// The semaphore object's layout (`src/process_shared/semaphore.rs`).
const AVAILABLE_AT: usize = 28;
const TOTAL_AT: usize = 24;
const HOLDINGS_AT: usize = 64;
const SLOTS: usize = 1024;

const ROUNDS: u32 = 300;

/// `[holders now, most holders seen]`, updated under the value's lock.
type Occupancy = Value<[u32; 2]>;

fn use_the_semaphore((semaphore, occupancy): (Semaphore, Occupancy)) -> u32 {
    for round in 0..ROUNDS {
        let permit = if round % 2 == 0 {
            semaphore.acquire()
        } else {
            semaphore
                .try_acquire_for(PATIENCE)
                .expect("a permit within the patience")
        };
        {
            let mut seen = occupancy.lock().expect("nobody dies here");
            seen[0] += 1;
            seen[1] = seen[1].max(seen[0]);
        }
        std::thread::yield_now();
        occupancy.lock().expect("nobody dies here")[0] -= 1;
        drop(permit);
    }
    ROUNDS
}

#[test]
fn several_processes_never_hold_more_permits_than_exist() {
    with_watchdog(PATIENCE * 3, || {
        let semaphore = Semaphore::new(2).unwrap();
        let occupancy = Value::new([0u32; 2]).unwrap();
        let children: Vec<_> = (0..4)
            .map(|_| {
                process::spawn(use_the_semaphore, (semaphore.clone(), occupancy.clone())).unwrap()
            })
            .collect();
        for child in children {
            assert_eq!(child.join(), Ok(ROUNDS));
        }
        let [now, most] = occupancy.load();
        assert_eq!(now, 0);
        assert!((1..=2).contains(&most), "{most} holders at once");
        assert_eq!(semaphore.available_permits(), 2, "permits conserved");
    });
}

/// Takes `count` permits, says so, and holds them until killed.
fn hold_until_killed((semaphore, count, holding): (Semaphore, usize, Value<u32>)) {
    let _permits = semaphore.acquire_many(count);
    holding.store(1);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Starts a child holding `count` of `semaphore`'s permits; returns it
/// once it holds them.
fn a_holder_of(semaphore: &Semaphore, count: usize) -> process::Process<()> {
    let holding = Value::new(0u32).unwrap();
    let holder = process::spawn(
        hold_until_killed,
        (semaphore.clone(), count, holding.clone()),
    )
    .unwrap();
    wait_for("the child to hold its permits", || holding.load() == 1);
    holder
}

#[test]
fn a_killed_holders_permits_come_back_to_the_next_acquirer() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::new(2).unwrap();
        let holder = a_holder_of(&semaphore, 2);
        assert!(semaphore.try_acquire().is_none());
        // SIGKILL: no unwinding, no permit dropped. Not joined: the child
        // may still be a zombie when the acquirer looks.
        holder.kill();
        let started = Instant::now();
        let permits = semaphore
            .try_acquire_many_for(2, NOTICE_DEATH)
            .expect("the dead holder's permits came back");
        assert!(started.elapsed() < NOTICE_DEATH);
        assert_eq!(permits.count(), 2);
        drop(permits);
        assert_eq!(semaphore.available_permits(), 2);
        assert!(holder.join().is_err());
    });
}

#[test]
fn a_waiter_asleep_when_the_holder_dies_gets_its_permits() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::new(2).unwrap();
        let holder = a_holder_of(&semaphore, 2);
        let waiter = {
            let semaphore = semaphore.clone();
            std::thread::spawn(move || semaphore.acquire_many(2).count())
        };
        std::thread::sleep(Duration::from_millis(50));
        holder.kill();
        assert_eq!(common::join(waiter), 2);
        assert!(holder.join().is_err());
        assert_eq!(semaphore.available_permits(), 2);
    });
}

#[test]
fn available_permits_counts_a_dead_holders_permits_back() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::bounded(3).unwrap();
        let holder = a_holder_of(&semaphore, 2);
        assert_eq!(semaphore.available_permits(), 1);
        holder.kill();
        assert!(holder.join().is_err());
        assert_eq!(semaphore.available_permits(), 3);
        // The bound still holds.
        assert!(semaphore.release(1).is_err());
    });
}

fn forget_a_permit(semaphore: Semaphore) {
    semaphore.acquire().forget();
    // A permit leaked with `mem::forget` instead stays the process's, and
    // comes back when it exits.
    std::mem::forget(semaphore.acquire());
}

#[test]
fn forgotten_permits_stay_consumed_and_leaked_ones_return_at_exit() {
    with_watchdog(PATIENCE, || {
        let semaphore = Semaphore::new(3).unwrap();
        let child = process::spawn(forget_a_permit, semaphore.clone()).unwrap();
        assert_eq!(child.join(), Ok(()));
        assert_eq!(semaphore.available_permits(), 2);
        // Python's pattern: acquired in one process, released by another.
        semaphore.release(1).unwrap();
        assert_eq!(semaphore.available_permits(), 3);
    });
}

fn release_in_child((semaphore, count): (Semaphore, usize)) -> Result<(), String> {
    semaphore.release(count).map_err(|error| error.to_string())
}

#[test]
fn releases_and_bounds_across_processes() {
    with_watchdog(PATIENCE, || {
        let unbounded = Semaphore::new(0).unwrap();
        assert_eq!(unbounded.bound(), None);
        let child = process::spawn(release_in_child, (unbounded.clone(), 2)).unwrap();
        assert_eq!(child.join(), Ok(Ok(())));
        assert_eq!(unbounded.available_permits(), 2);

        let bounded = Semaphore::bounded(2).unwrap();
        assert_eq!(bounded.bound(), Some(2));
        let permit = bounded.acquire();
        let child = process::spawn(release_in_child, (bounded.clone(), 2)).unwrap();
        let refused = child.join().unwrap().unwrap_err();
        assert!(refused.contains("at most 2"), "{refused}");
        // Refused changed nothing; the guard gives back its permit.
        drop(permit);
        assert_eq!(bounded.available_permits(), 2);
    });
}

fn try_for_in_child((semaphore, millis): (Semaphore, u64)) -> (bool, u128) {
    let started = Instant::now();
    let got = semaphore
        .try_acquire_for(Duration::from_millis(millis))
        .is_some();
    (got, started.elapsed().as_millis())
}

#[test]
fn a_timed_acquire_times_out_while_a_live_process_holds_the_permits() {
    with_watchdog(PATIENCE, || {
        let semaphore = Semaphore::new(1).unwrap();
        let permit = semaphore.acquire();
        let child = process::spawn(try_for_in_child, (semaphore.clone(), 50)).unwrap();
        let (got, waited) = child.join().unwrap();
        assert!(!got);
        assert!(waited >= 50, "gave up after {waited} ms");
        assert!(semaphore.try_acquire().is_none());
        assert!(semaphore.try_acquire_many_for(1, Duration::ZERO).is_none());
        drop(permit);
        let child = process::spawn(try_for_in_child, (semaphore.clone(), 5_000)).unwrap();
        assert!(child.join().unwrap().0);
    });
}

#[test]
fn a_release_in_another_process_wakes_a_waiter() {
    with_watchdog(PATIENCE, || {
        let semaphore = Semaphore::new(0).unwrap();
        let waiter = {
            let semaphore = semaphore.clone();
            std::thread::spawn(move || semaphore.acquire_many(2).count())
        };
        std::thread::sleep(Duration::from_millis(20));
        let child = process::spawn(release_in_child, (semaphore.clone(), 2)).unwrap();
        assert_eq!(child.join(), Ok(Ok(())));
        assert_eq!(common::join(waiter), 2);
    });
}

#[test]
#[should_panic(expected = "can never hold more than 2")]
fn asking_a_bounded_semaphore_for_more_than_its_bound_panics() {
    let semaphore = Semaphore::bounded(2).unwrap();
    let _never = semaphore.acquire_many(3);
}

#[test]
fn garbage_semaphore_handles_are_errors() {
    let semaphore = Semaphore::bounded(3).unwrap();
    let json = serde_json::to_value(&semaphore).unwrap();
    assert!(serde_json::from_value::<Semaphore>(json.clone()).is_ok());
    let with = |field: &str, value: u64| {
        let mut handle = json.clone();
        handle[field] = value.into();
        handle
    };
    let recorded = json["recorded"].as_u64().unwrap();
    for garbage in [
        with("recorded", recorded + 1),
        with("recorded", 3),
        with("recorded", u64::from(u32::MAX)),
        with("offset", json["offset"].as_u64().unwrap() + 64),
        with("kind", 1),
        with("tag", 0),
    ] {
        let error = serde_json::from_value::<Semaphore>(garbage.clone()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not a valid process-shared handle"),
            "{garbage}: {error}"
        );
    }
    assert!(serde_json::from_value::<Lock>(json).is_err());
}

/// The arena base and the semaphore's offset in it.
fn semaphore_memory(semaphore: &Semaphore) -> (*mut u8, usize) {
    let lock = Lock::new().unwrap();
    (arena_base(&lock), offset_of(semaphore))
}

#[test]
fn garbage_counts_are_repaired_and_never_exceed_the_bound() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::bounded(2).unwrap();
        let (base, at) = semaphore_memory(&semaphore);
        // Out of bounds: repaired from the total and the holdings.
        u32_at(base, at + AVAILABLE_AT).store(u32::MAX, Ordering::SeqCst);
        assert_eq!(semaphore.try_acquire_many(2).map(|p| p.count()), Some(2));
        assert_eq!(semaphore.available_permits(), 2);
        // Garbage everywhere: every call ends within its bound, and never
        // more than the bound is available.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let word = (seed % 8) as usize;
            let place = match word {
                0..=3 => at + WORD_AT + word * 4,
                _ => at + HOLDINGS_AT + (((seed >> 8) as usize) % (SLOTS * 2)) * 4,
            };
            u32_at(base, place).store((seed >> 32) as u32, Ordering::SeqCst);
            let started = Instant::now();
            let permit = semaphore.try_acquire_for(Duration::from_millis(20));
            assert!(semaphore.available_permits() <= 2, "round {round}");
            drop(permit);
            assert!(
                started.elapsed() < NOTICE_DEATH,
                "round {round}: a timed acquire overran"
            );
        }
    });
}

/// Takes one permit and leaks it: its process exits holding it.
fn leak_a_permit(semaphore: Semaphore) {
    std::mem::forget(semaphore.acquire());
}

#[test]
fn a_process_that_died_mid_update_holding_the_state_lock_is_repaired() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::new(3).unwrap();
        let (base, at) = semaphore_memory(&semaphore);
        let child = process::spawn(leak_a_permit, semaphore.clone()).unwrap();
        assert_eq!(child.join(), Ok(()));
        // The dead child's holding: one permit.
        let holding = (0..SLOTS)
            .map(|slot| at + HOLDINGS_AT + slot * 8)
            .find(|&holding| u32_at(base, holding + 4).load(Ordering::SeqCst) != 0)
            .expect("the child's holding");
        let child_identity = u32_at(base, holding).load(Ordering::SeqCst);
        assert_eq!(u32_at(base, at + AVAILABLE_AT).load(Ordering::SeqCst), 2);
        // As if it died in a second acquire, between its two writes: its
        // holding says 2, the available count still 2, and it holds the
        // state lock.
        u32_at(base, holding + 4).store(2, Ordering::SeqCst);
        u32_at(base, at + WORD_AT).store(child_identity, Ordering::SeqCst);
        assert_eq!(u32_at(base, at + TOTAL_AT).load(Ordering::SeqCst), 3);
        // Repaired (available = total - held = 1), then the dead child's 2
        // come back: 3, not 4.
        assert_eq!(semaphore.available_permits(), 3);
        assert_eq!(semaphore.try_acquire_many(3).map(|p| p.count()), Some(3));
        assert!(semaphore.release(Semaphore::MAX_PERMITS - 2).is_err());
    });
}

/// The semaphore's state lock word naming this process (garbage a child
/// wrote: the parent's identity is in the process table) while none of
/// its threads holds it. Every operation takes the in-process lock first,
/// so no thread here holds the word: it is a dead holder's, recovered (and
/// the counts repaired). It used to be waited on: the timed forms timed
/// out with a permit free, and `acquire`, `release` and a permit's drop
/// blocked forever.
#[test]
fn a_state_lock_word_naming_the_caller_is_recovered_not_waited_on() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::new(1).unwrap();
        let (base, at) = semaphore_memory(&semaphore);
        let me = my_identity(base);
        let word = at + WORD_AT;
        let forms: [(&str, &dyn Fn()); 6] = [
            ("try_acquire_for", &|| {
                let permit = semaphore.try_acquire_for(NOTICE_DEATH);
                assert_eq!(permit.map(|p| p.count()), Some(1));
            }),
            ("try_acquire", &|| {
                assert_eq!(semaphore.try_acquire().map(|p| p.count()), Some(1));
            }),
            ("acquire", &|| drop(semaphore.acquire())),
            ("a permit's drop", &|| {
                let permit = semaphore.acquire();
                scribble_in_child(word, me | 1 << 31);
                drop(permit);
            }),
            ("forget", &|| {
                let permit = semaphore.acquire();
                scribble_in_child(word, me);
                permit.forget();
                semaphore.release(1).unwrap();
            }),
            ("release", &|| {
                let permit = semaphore.acquire();
                permit.forget();
                scribble_in_child(word, me);
                semaphore.release(1).unwrap();
            }),
        ];
        for (name, form) in forms {
            scribble_in_child(word, me);
            let started = Instant::now();
            form();
            assert!(
                started.elapsed() < NOTICE_DEATH,
                "{name}: took {:?}",
                started.elapsed()
            );
            assert_eq!(semaphore.available_permits(), 1, "{name}");
            assert_eq!(
                semaphore.try_acquire().map(|p| p.count()),
                Some(1),
                "{name}"
            );
        }
    });
}

/// `(total, available, Σ holdings)` as the shared memory says (only
/// meaningful while nobody updates them).
fn raw_counts(semaphore: &Semaphore) -> (u32, u32, u64) {
    let (base, at) = semaphore_memory(semaphore);
    let word = |offset: usize| u32_at(base, at + offset).load(Ordering::SeqCst);
    let held = (0..SLOTS)
        .map(|slot| u64::from(word(HOLDINGS_AT + slot * 8 + 4)))
        .sum();
    (word(TOTAL_AT), word(AVAILABLE_AT), held)
}

/// Both permits of a two-permit semaphore are back: counted available,
/// taken together, and the raw counts say so (total, available, held).
fn assert_both_permits_back(semaphore: &Semaphore) {
    assert_eq!(
        semaphore.available_permits(),
        2,
        "raw {:?}",
        raw_counts(semaphore)
    );
    let both = semaphore.try_acquire_many_for(2, NOTICE_DEATH);
    assert_eq!(
        both.map(|p| p.count()),
        Some(2),
        "raw {:?}",
        raw_counts(semaphore)
    );
    assert_eq!(raw_counts(semaphore), (2, 2, 0));
}

/// One in-range write of the available count (the bound, while every
/// permit is held) by a process that then exits: once the holders give
/// back, a bounded semaphore has all its permits again. It used to lose
/// one for good: each give-back's surplus past the bound was taken from
/// the shared total, and the repair trusted that total (raw counts ended
/// `(1, 1, 0)`: `acquire_many(2)` never succeeded again).
#[test]
fn an_in_range_write_of_the_available_count_loses_no_bounded_permit_for_good() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::bounded(2).unwrap();
        let (_, at) = semaphore_memory(&semaphore);
        let first = semaphore.acquire();
        let second = semaphore.acquire();
        scribble_in_child(at + AVAILABLE_AT, 2);
        // Too many handed out once, as documented.
        let extra = semaphore.try_acquire_many(2);
        assert_eq!(extra.as_ref().map(|p| p.count()), Some(2));
        drop(extra);
        drop(first);
        drop(second);
        assert_both_permits_back(&semaphore);
    });
}

/// A scribbled total (0, while a permit is held) on a bounded semaphore:
/// the repair counts from the bound this process knows, not the shared
/// total, so no permit is lost once the holder gives back. It used to
/// lose the held one for good (the repair trusted the total: raw counts
/// ended `(1, 1, 0)`).
#[test]
fn a_scribbled_total_loses_no_bounded_permit_for_good() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::bounded(2).unwrap();
        let (_, at) = semaphore_memory(&semaphore);
        let permit = semaphore.acquire();
        scribble_in_child(at + TOTAL_AT, 0);
        drop(permit);
        assert_both_permits_back(&semaphore);
    });
}

/// An available count written low (0, nobody holding) by a process that
/// then exits: in range, so no lock-time check sees it, but a waiter that
/// sleeps a whole poll audits the counts (`A + Σ holdings ≠ total`) and
/// repairs them, bounded or not. It used to wait forever (timed out here).
#[test]
fn an_available_count_written_low_is_found_by_a_waiters_audit() {
    with_watchdog(PATIENCE * 2, || {
        for semaphore in [Semaphore::bounded(2).unwrap(), Semaphore::new(2).unwrap()] {
            let (_, at) = semaphore_memory(&semaphore);
            scribble_in_child(at + AVAILABLE_AT, 0);
            let started = Instant::now();
            let both = semaphore.try_acquire_many_for(2, NOTICE_DEATH);
            assert_eq!(
                both.map(|p| p.count()),
                Some(2),
                "{:?}: no permits after {:?}, raw {:?}",
                semaphore.bound(),
                started.elapsed(),
                raw_counts(&semaphore)
            );
            assert_eq!(raw_counts(&semaphore), (2, 2, 0));
        }
    });
}

/// Writes this process's identity into the state lock word at `at` (as if
/// it took the state lock), and exits: a process that died holding it.
fn dies_holding_the_state_lock((lock, at): (Lock, usize)) {
    let base = arena_base(&lock);
    u32_at(base, at).store(my_identity(base), Ordering::SeqCst);
}

/// A bounded semaphore hands a permit over between processes as Python's
/// does: one process holds the only permit, another `release`s one (the
/// count goes 0 → 1, within the bound). Then a process dies holding the
/// state lock, and the next caller repairs the counts. The released permit
/// must survive the repair. It used to be lost while the holder lived: the
/// repair counted `bound − Σ holdings` = 0 available (raw counts `(2, 1, 1)`
/// before, `(1, 0, 1)` after), so the timed acquire timed out.
#[test]
fn a_permit_released_while_another_process_holds_one_survives_a_repair() {
    with_watchdog(PATIENCE * 2, || {
        let semaphore = Semaphore::bounded(1).unwrap();
        let (_, at) = semaphore_memory(&semaphore);
        let holder = a_holder_of(&semaphore, 1);
        semaphore.release(1).expect("0 + 1 is within the bound");
        let before = raw_counts(&semaphore);
        assert_eq!(before, (2, 1, 1));
        let dying = process::spawn(
            dies_holding_the_state_lock,
            (Lock::new().unwrap(), at + WORD_AT),
        )
        .unwrap();
        assert_eq!(dying.join(), Ok(()));
        // Takes the state lock: recovers it and repairs the counts.
        let permit = semaphore.try_acquire_for(Duration::from_millis(200));
        let repaired = raw_counts(&semaphore);
        // The bound still holds: no second permit while the first is held.
        let second = semaphore.try_acquire();
        holder.kill();
        assert!(holder.join().is_err());
        assert_eq!(
            (permit.as_ref().map(|p| p.count()), second.is_some()),
            (Some(1), false),
            "raw counts before the repair {before:?}, after {repaired:?}"
        );
        assert_eq!(repaired, (2, 0, 2));
        drop(permit);
        // The holder's permit comes back; the bound caps the count.
        assert_eq!(semaphore.available_permits(), 1);
        assert!(semaphore.release(1).is_err());
        assert_eq!(raw_counts(&semaphore), (1, 1, 0));
    });
}
