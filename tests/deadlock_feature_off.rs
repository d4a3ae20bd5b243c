//! With the `deadlock-detection` feature off (the default), the diagnostics
//! cost nothing: the locks carry no extra field. The expected sizes are
//! those of the locks before the feature existed.
#![cfg(not(feature = "deadlock-detection"))]

use std::mem::size_of;

use verisync::{Condition, Mutex, ReentrantLock};

/// `Mutex<()>`: a one-byte state word and an optional `&'static str` name.
#[test]
fn mutex_has_no_tracking_field() {
    assert_eq!(
        size_of::<Mutex<()>>(),
        size_of::<(u8, Option<&'static str>)>()
    );
    assert_eq!(
        size_of::<Mutex<u64>>(),
        size_of::<(u8, Option<&'static str>, u64)>()
    );
}

/// `ReentrantLock<()>`: the raw mutex, the owner's id, the depth and the name.
#[test]
fn reentrant_lock_has_no_tracking_field() {
    assert_eq!(
        size_of::<ReentrantLock<()>>(),
        size_of::<(u8, usize, usize, Option<&'static str>)>()
    );
}

/// `Condition`: one word (the address of its waiters' lock).
#[test]
fn condition_has_no_tracking_field() {
    assert_eq!(size_of::<Condition>(), size_of::<usize>());
}
