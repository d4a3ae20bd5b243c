verisync::process_test_support!();

use verisync::{ProcessPool, TaskError};

fn square(x: u64) -> u64 {
    x * x
}

fn boom(_: ()) -> u8 {
    panic!("kaboom")
}

fn die(code: i32) -> u8 {
    std::process::exit(code)
}

#[test]
fn smoke() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.submit(square, 7).join(), Ok(49));
    let results: Vec<u64> = pool.map(square, 1..=100u64).map(Result::unwrap).collect();
    assert_eq!(results.len(), 100);
    assert_eq!(results[99], 10000);
    assert_eq!(
        pool.submit(boom, ()).join(),
        Err(TaskError::Panicked("kaboom".into()))
    );
    let dead = pool.submit(die, 7);
    let after: Vec<_> = (0..10u64).map(|x| pool.submit(square, x)).collect();
    assert!(
        matches!(
            dead.join(),
            Err(TaskError::WorkerDied {
                exit_code: Some(7),
                signal: None,
                ..
            })
        ),
        "a task that exits its worker fails alone, with the exit code"
    );
    for (x, h) in after.into_iter().enumerate() {
        assert_eq!(h.join(), Ok((x * x) as u64));
    }
    let child = verisync::process::spawn(square, 12).unwrap();
    assert_eq!(child.join(), Ok(144));
}
