//! Process-shared primitives across real processes: `process::Lock` and
//! `process::Value` (Linux).
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{wait_for, with_watchdog, PATIENCE};
use verisync::process::{self, Lock, SharedError, TryLockError, Value};

/// How long a locker may take to notice that the holder died (production
/// polls every 10 ms; generous for a loaded machine).
const NOTICE_DEATH: Duration = Duration::from_secs(5);

const INCREMENTS: u64 = 2_000;

fn increment_locked(hits: Value<u64>) -> u64 {
    for _ in 0..INCREMENTS {
        let mut guard = hits.lock().expect("nobody dies in this test");
        *guard += 1;
    }
    INCREMENTS
}

fn increment_with_fetch_add(hits: Value<u64>) -> u64 {
    for _ in 0..INCREMENTS {
        hits.fetch_add(1);
    }
    INCREMENTS
}

fn increment_unlocked(hits: Value<u64>) -> u64 {
    for _ in 0..INCREMENTS {
        let seen = hits.load();
        hits.store(seen + 1);
    }
    INCREMENTS
}

fn run_in_processes(task: fn(Value<u64>) -> u64, hits: &Value<u64>, processes: usize) {
    let children: Vec<_> = (0..processes)
        .map(|_| process::spawn(task, hits.clone()).unwrap())
        .collect();
    for child in children {
        assert_eq!(child.join(), Ok(INCREMENTS));
    }
}

#[test]
fn increments_under_the_lock_from_several_processes_are_exact() {
    with_watchdog(PATIENCE * 3, || {
        let hits = Value::new(0u64).unwrap();
        run_in_processes(increment_locked, &hits, 4);
        assert_eq!(hits.load(), 4 * INCREMENTS);

        let added = Value::new(0u64).unwrap();
        run_in_processes(increment_with_fetch_add, &added, 4);
        assert_eq!(added.load(), 4 * INCREMENTS);

        // Without holding the lock across the read-modify-write, updates
        // may be lost (the lesson); never more than were made.
        let racy = Value::new(0u64).unwrap();
        run_in_processes(increment_unlocked, &racy, 4);
        let counted = racy.load();
        assert!((1..=4 * INCREMENTS).contains(&counted), "{counted}");
    });
}

#[test]
fn a_pool_worker_shares_the_value_too() {
    with_watchdog(PATIENCE * 3, || {
        let hits = Value::new(0u64).unwrap();
        let pool = verisync::ProcessPool::new(2).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| pool.submit(increment_locked, hits.clone()))
            .collect();
        for handle in handles {
            assert_eq!(handle.join(), Ok(INCREMENTS));
        }
        assert_eq!(hits.load(), 4 * INCREMENTS);
    });
}

/// Takes the lock, says so, and holds it until killed.
fn hold_until_killed((lock, holding): (Lock, Value<u32>)) {
    let _guard = lock.lock().unwrap_or_else(|died| died.into_guard());
    holding.store(1);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Starts a child that holds `lock`, waits until it does, and kills it.
fn kill_a_holder_of(lock: &Lock) {
    let holding = Value::new(0u32).unwrap();
    let holder = process::spawn(hold_until_killed, (lock.clone(), holding.clone())).unwrap();
    wait_for("the child to hold the lock", || holding.load() == 1);
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    // SIGKILL: no unwinding, no guard dropped. Not joined yet: the child
    // may still be a zombie when the next locker looks.
    holder.kill();
    std::mem::forget(holder);
}

#[test]
fn a_killed_holder_is_reported_to_the_next_locker_who_repairs_and_continues() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        kill_a_holder_of(&lock);
        let started = Instant::now();
        let owner_died = match lock.lock_timeout(NOTICE_DEATH) {
            Err(TryLockError::OwnerDied(owner_died)) => owner_died,
            Ok(_) => panic!("the next locker was not told the holder died"),
            Err(TryLockError::WouldBlock) => {
                panic!("the dead holder's lock was not recovered within {NOTICE_DEATH:?}")
            }
        };
        assert!(started.elapsed() < NOTICE_DEATH);
        // Repaired: acknowledged, so the lock is consistent again.
        drop(owner_died.into_guard());
        assert!(lock.lock().is_ok(), "the death is reported once");
        assert!(lock.try_lock().is_ok());
    });
}

#[test]
fn a_waiter_asleep_when_the_holder_dies_wakes_with_owner_died() {
    with_watchdog(PATIENCE * 2, || {
        let lock = Lock::new().unwrap();
        let holding = Value::new(0u32).unwrap();
        let holder = process::spawn(hold_until_killed, (lock.clone(), holding.clone())).unwrap();
        wait_for("the child to hold the lock", || holding.load() == 1);
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || match lock.lock() {
                Err(owner_died) => {
                    drop(owner_died.into_guard());
                    true
                }
                Ok(_) => false,
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        holder.kill();
        assert!(
            common::join(waiter),
            "the waiter was not told the holder died"
        );
        assert!(holder.join().is_err());
        assert!(lock.lock().is_ok());
    });
}

#[test]
fn an_unacknowledged_death_is_reported_to_every_locker_until_acknowledged() {
    with_watchdog(PATIENCE * 2, || {
        let hits = Value::new(0u32).unwrap();
        let lock = Lock::new().unwrap();
        kill_a_holder_of(&lock);
        let first = lock.lock().expect_err("told first");
        drop(first); // not acknowledged
        let second = lock.lock().expect_err("still told");
        drop(second.into_guard());
        assert!(lock.lock().is_ok());
        // One-step value operations carry on without acknowledging.
        hits.store(3);
        assert_eq!(hits.fetch_add(1), 3);
    });
}

fn increment_value_then_die((hits, die_after): (Value<u64>, u64)) {
    let mut guard = hits.lock().unwrap_or_else(|died| died.into_guard());
    *guard += die_after;
    // Half-way through an update: the holder dies holding the lock.
    std::process::abort();
}

#[test]
fn a_value_whose_holder_died_mid_update_is_reported_and_repairable() {
    with_watchdog(PATIENCE * 2, || {
        let hits = Value::new(10u64).unwrap();
        let child = process::spawn(increment_value_then_die, (hits.clone(), 5)).unwrap();
        assert!(child.join().is_err());
        // The dead holder's half-update is visible, and reported.
        let mut owner_died = hits
            .lock_timeout(NOTICE_DEATH)
            .map(|_| ())
            .expect_err("the next locker is told");
        let TryLockError::OwnerDied(ref mut died) = owner_died else {
            panic!("recovered within the bound")
        };
        assert_eq!(**died.get_ref(), 15);
        **died.get_mut() = 10; // repair
        let TryLockError::OwnerDied(died) = owner_died else {
            unreachable!()
        };
        drop(died.into_guard());
        assert_eq!(*hits.lock().unwrap(), 10);
    });
}

#[test]
fn timeouts_and_try_lock_when_another_thread_holds_it() {
    with_watchdog(PATIENCE, || {
        let lock = Lock::new().unwrap();
        let guard = lock.lock().unwrap();
        std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
                let started = Instant::now();
                assert!(matches!(
                    lock.lock_timeout(Duration::from_millis(50)),
                    Err(TryLockError::WouldBlock)
                ));
                assert!(started.elapsed() >= Duration::from_millis(50));
            });
            common::join_scoped(other);
        });
        drop(guard);
        assert!(lock.lock_timeout(Duration::from_millis(50)).is_ok());
    });
}

#[test]
fn a_thread_that_relocks_panics_instead_of_hanging() {
    with_watchdog(PATIENCE, || {
        let lock = Lock::new().unwrap();
        let guard = lock.lock().unwrap();
        let relock = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _again = lock.lock();
        }));
        let message = *relock
            .expect_err("relocking panics")
            .downcast::<&str>()
            .unwrap();
        assert!(message.contains("not reentrant"), "{message}");
        drop(guard);
        assert!(lock.try_lock().is_ok());
    });
}

#[test]
fn garbage_handles_are_errors() {
    let lock = Lock::new().unwrap();
    let hits = Value::new(0u64).unwrap();
    let json = serde_json::to_value(&lock).unwrap();
    let with = |field: &str, value: u64| {
        let mut handle = json.clone();
        handle[field] = value.into();
        handle
    };
    // A lock opens as itself.
    serde_json::from_value::<Lock>(json.clone()).unwrap();
    let offset = json["offset"].as_u64().unwrap();
    let cases = [
        with("arena", json["arena"].as_u64().unwrap() ^ 1),
        with("offset", offset + 64),
        with("offset", offset + 4),
        with("offset", 0),
        with("offset", u64::from(u32::MAX)),
        with("tag", json["tag"].as_u64().unwrap() ^ 0x100),
        with("tag", 0),
        with("kind", 2),
        with("kind", 77),
    ];
    for garbage in cases {
        let error = serde_json::from_value::<Lock>(garbage.clone()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not a valid process-shared handle"),
            "{garbage}: {error}"
        );
    }
    // The wrong type.
    assert!(serde_json::from_value::<Value<u64>>(json).is_err());
    let value_json = serde_json::to_value(&hits).unwrap();
    assert!(serde_json::from_value::<Lock>(value_json.clone()).is_err());
    assert!(serde_json::from_value::<Value<u32>>(value_json.clone()).is_err());
    assert!(serde_json::from_value::<Value<u64>>(value_json).is_ok());
    // Random handles.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..1000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let random = serde_json::json!({
            "arena": seed, "offset": seed as u32, "kind": (seed >> 32) as u32 % 4, "tag": (seed >> 16) as u32
        });
        assert!(serde_json::from_value::<Lock>(random).is_err());
    }
}

/// What a scribbling child writes over the lock object.
fn scribble((lock, word, value): (Lock, usize, u32)) {
    process::__lock_words(&lock)[word].store(value, Ordering::SeqCst);
}

#[test]
fn a_child_scribbling_over_the_lock_word_never_hangs_the_next_locker() {
    with_watchdog(PATIENCE * 3, || {
        let lock = Lock::new().unwrap();
        // Words 0..4 are the header, word 4 the state word.
        for garbage in [
            0xDEAD_BEEF,
            u32::MAX,
            0x3000_0000,
            0x0FFF_FFFF,
            0x8000_0000,
            0x4000_0000,
            0x0000_0400,
            0x1234_5678,
        ] {
            let child = process::spawn(scribble, (lock.clone(), 4, garbage)).unwrap();
            child.join().unwrap();
            let started = Instant::now();
            match lock.lock_timeout(NOTICE_DEATH) {
                Ok(guard) => drop(guard),
                Err(TryLockError::OwnerDied(died)) => drop(died.into_guard()),
                Err(TryLockError::WouldBlock) => {
                    panic!("a garbage word {garbage:#x} left the lock held")
                }
            }
            assert!(started.elapsed() < NOTICE_DEATH, "{garbage:#x}");
            // Consistent again afterwards.
            assert!(lock.lock().is_ok(), "{garbage:#x}");
        }
        // Garbage over the header: opening the handle anew fails cleanly;
        // the handle already open keeps working.
        let tag_word = 1;
        let child = process::spawn(scribble, (lock.clone(), tag_word, 0xBAD)).unwrap();
        child.join().unwrap();
        let reopened = serde_json::from_value::<Lock>(serde_json::to_value(&lock).unwrap());
        assert!(reopened.is_err());
        assert!(lock.lock().is_ok());
    });
}

fn open_in_child(lock: Lock) -> bool {
    lock.try_lock().is_ok()
}

#[test]
fn a_child_started_after_the_lock_opens_it_and_errors_say_what_happened() {
    with_watchdog(PATIENCE, || {
        let lock = Lock::new().unwrap();
        assert_eq!(
            process::spawn(open_in_child, lock.clone()).unwrap().join(),
            Ok(true)
        );
        let error = SharedError::InvalidHandle("why".into());
        assert_eq!(error.to_string(), "not a valid process-shared handle: why");
    });
}

/// Run only by `a_process_outside_the_tree_cannot_open_a_handle`, in a
/// process of its own (`--ignored`): it was not started by `spawn` or a
/// pool, so it has no arena.
#[test]
#[ignore = "run by a_process_outside_the_tree_cannot_open_a_handle"]
fn outside_the_tree_probe() {
    let handle = std::env::var("VERISYNC_TEST_HANDLE").expect("run by the outer test");
    let error = serde_json::from_str::<Lock>(&handle).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("neither created process-shared objects nor inherited"),
        "{error}"
    );
    println!("probe: refused");
}

#[test]
fn a_process_outside_the_tree_cannot_open_a_handle() {
    with_watchdog(PATIENCE, || {
        let lock = Lock::new().unwrap();
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "outside_the_tree_probe",
                "--nocapture",
            ])
            .env(
                "VERISYNC_TEST_HANDLE",
                serde_json::to_string(&lock).unwrap(),
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(stdout.contains("probe: refused"), "{stdout}");
    });
}
