//! `process::Array` across real processes (Linux): sums under its lock are
//! exact, a holder that dies mid-update is reported, and handles with a
//! wrong length are refused.
#![cfg(target_os = "linux")]

verisync::process_test_support!();

mod common;

use std::time::Duration;

use common::{with_watchdog, PATIENCE};
use verisync::process::{self, Array, TryLockError, Value};

const ROUNDS: u64 = 1_000;

/// Adds to every element under the lock, and counts its rounds in its own.
fn add_to_every_element((totals, worker): (Array<u64>, usize)) -> u64 {
    for _ in 0..ROUNDS {
        let mut totals = totals.lock().expect("nobody dies here");
        for element in totals.iter_mut() {
            *element += 1;
        }
        totals[worker] += 1;
    }
    ROUNDS
}

#[test]
fn an_array_summed_by_several_processes_under_its_lock_is_exact() {
    with_watchdog(PATIENCE * 3, || {
        let totals = Array::new(8, 0u64).unwrap();
        let children: Vec<_> = (0..4)
            .map(|worker| process::spawn(add_to_every_element, (totals.clone(), worker)).unwrap())
            .collect();
        for child in children {
            assert_eq!(child.join(), Ok(ROUNDS));
        }
        let every = 4 * ROUNDS;
        let expected: Vec<u64> = (0..8)
            .map(|index| every + if index < 4 { ROUNDS } else { 0 })
            .collect();
        assert_eq!(totals.to_vec(), expected);
    });
}

fn half_update_then_die(numbers: Array<u32>) {
    let mut numbers = numbers.lock().unwrap_or_else(|died| died.into_guard());
    numbers[0] = 100;
    std::process::abort(); // before numbers[1]
}

#[test]
fn a_holder_that_dies_mid_update_is_reported_with_the_half_update() {
    with_watchdog(PATIENCE * 2, || {
        let numbers = Array::from_slice(&[1u32, 1]).unwrap();
        let child = process::spawn(half_update_then_die, numbers.clone()).unwrap();
        assert!(child.join().is_err());
        match numbers.lock_timeout(Duration::from_secs(5)) {
            Err(TryLockError::OwnerDied(mut died)) => {
                assert_eq!(**died.get_ref(), [100, 1]);
                died.get_mut()[0] = 1; // repaired
                drop(died.into_guard());
            }
            Ok(_) => panic!("the next locker was not told"),
            Err(TryLockError::WouldBlock) => panic!("not recovered within the bound"),
        }
        assert_eq!(*numbers.lock().unwrap(), [1, 1]);
    });
}

fn load_and_store_in_child(numbers: Array<i16>) -> i16 {
    numbers.store(2, numbers.load(0) + numbers.load(1));
    numbers.len() as i16
}

#[test]
fn load_store_and_empty_arrays() {
    with_watchdog(PATIENCE, || {
        let numbers = Array::from_slice(&[3i16, 4, 0]).unwrap();
        let child = process::spawn(load_and_store_in_child, numbers.clone()).unwrap();
        assert_eq!(child.join(), Ok(3));
        assert_eq!(numbers.to_vec(), [3, 4, 7]);
        let empty = Array::<u64>::from_slice(&[]).unwrap();
        assert!(empty.is_empty());
        assert!(empty.lock().unwrap().is_empty());
        let reopened: Array<u64> =
            serde_json::from_value(serde_json::to_value(&empty).unwrap()).unwrap();
        assert_eq!(reopened.to_vec(), Vec::<u64>::new());
    });
}

#[test]
#[should_panic(expected = "index out of bounds")]
fn an_index_past_the_end_panics() {
    Array::new(2, 0u8).unwrap().load(2);
}

#[test]
fn handles_with_a_wrong_length_or_type_are_errors() {
    let numbers = Array::new(3, 0u64).unwrap();
    let json = serde_json::to_value(&numbers).unwrap();
    assert_eq!(json["recorded"], 3);
    assert!(serde_json::from_value::<Array<u64>>(json.clone()).is_ok());
    for length in [0u64, 2, 4, 1 << 20, u64::from(u32::MAX)] {
        let mut garbage = json.clone();
        garbage["recorded"] = length.into();
        let error = serde_json::from_value::<Array<u64>>(garbage).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not a valid process-shared handle"),
            "{length}: {error}"
        );
    }
    // Another element type, or a value of the same bytes: refused.
    assert!(serde_json::from_value::<Array<u32>>(json.clone()).is_err());
    assert!(serde_json::from_value::<Array<[u64; 3]>>(json.clone()).is_err());
    assert!(serde_json::from_value::<Value<[u64; 3]>>(json).is_err());
    let value = Value::new([0u64; 3]).unwrap();
    assert!(serde_json::from_value::<Array<u64>>(serde_json::to_value(&value).unwrap()).is_err());
    // Too large to create: an error, not an allocation.
    assert!(matches!(
        Array::new(usize::MAX / 2, 0u64),
        Err(process::SharedError::ArenaFull { .. })
    ));
}

/// Opens `json` afresh in a child, as `Array<u32>` and as `Array<f32>`:
/// whether each opened.
fn open_as_u32_and_as_f32(json: String) -> (bool, bool) {
    (
        serde_json::from_str::<Array<u32>>(&json).is_ok(),
        serde_json::from_str::<Array<f32>>(&json).is_ok(),
    )
}

/// The elements, printed.
fn debug<T: std::fmt::Debug>(elements: Vec<T>) -> Vec<String> {
    elements
        .iter()
        .map(|element| format!("{element:?}"))
        .collect()
}

/// A handle opens only as its own element type, not as another of the
/// same size (it used to: only the size was checked, so an `Array<u32>`
/// opened as an `Array<f32>`, and a `Value<u32>` as a `Value<f32>`).
#[test]
fn a_handle_opens_only_as_its_own_element_type_not_another_of_its_size() {
    with_watchdog(PATIENCE, || {
        let numbers = Array::from_slice(&[1u32, 2, 3]).unwrap();
        let json = serde_json::to_value(&numbers).unwrap();
        assert!(serde_json::from_value::<Array<u32>>(json.clone()).is_ok());
        let refused = |opened: Result<Vec<String>, serde_json::Error>, as_type: &str| match opened {
            Ok(elements) => panic!("an Array<u32> opened as {as_type}: {elements:?}"),
            Err(error) => assert!(
                error.to_string().contains("another element type"),
                "{as_type}: {error}"
            ),
        };
        refused(
            serde_json::from_value::<Array<f32>>(json.clone()).map(|a| debug(a.to_vec())),
            "Array<f32>",
        );
        refused(
            serde_json::from_value::<Array<i32>>(json.clone()).map(|a| debug(a.to_vec())),
            "Array<i32>",
        );
        refused(
            serde_json::from_value::<Array<[u8; 4]>>(json.clone()).map(|a| debug(a.to_vec())),
            "Array<[u8; 4]>",
        );
        // In a process that has not opened it yet, too.
        let child = process::spawn(open_as_u32_and_as_f32, json.to_string()).unwrap();
        assert_eq!(child.join(), Ok((true, false)));
        // Values likewise.
        let value = Value::new(7u32).unwrap();
        let json = serde_json::to_value(&value).unwrap();
        assert!(serde_json::from_value::<Value<u32>>(json.clone()).is_ok());
        let as_float = serde_json::from_value::<Value<f32>>(json.clone()).map(|v| v.load());
        assert!(
            as_float.is_err(),
            "a Value<u32> opened as Value<f32>: {as_float:?}"
        );
        assert!(serde_json::from_value::<Value<i32>>(json).is_err());
    });
}
