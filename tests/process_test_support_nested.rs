//! `process_test_support!()` need not be at the top of the test file: here
//! it sits two modules deep, as it would in `#[cfg(test)] mod tests { … }`.
//! (The crate root: `process_smoke.rs`; a library's unit tests:
//! `src/pool/process/mod.rs`; a doc test: the macro's own documentation.)

mod tests {
    mod deeper {
        verisync::process_test_support!();

        use verisync::ProcessPool;

        fn square(x: u64) -> u64 {
            x * x
        }

        #[test]
        fn a_pool_works_with_the_macro_in_a_nested_module() {
            let pool = ProcessPool::new(2).unwrap();
            let squares: Vec<u64> = pool
                .map(square, 1..=4u64)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(squares, [1, 4, 9, 16]);
            assert_eq!(verisync::process::spawn(square, 5).unwrap().join(), Ok(25));
        }
    }
}
