//! `deadlock::lock_order_violations`: locks taken in orders that can
//! deadlock are reported the first time, with both acquisition chains and
//! their sites, even though these runs never deadlock (one thread at a
//! time). A proptest checks the detector against a plain graph model.
#![cfg(feature = "deadlock-detection")]

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use verisync::deadlock::{self, LockOrderViolation};
use verisync::{Mutex, MutexGuard, ReentrantLock};

#[test]
fn an_inverted_pair_is_reported_once_with_both_chains_and_sites() {
    common::with_watchdog(common::PATIENCE, || {
        let a = Mutex::with_name("pair-A", ());
        let b = Mutex::with_name("pair-B", ());
        let (a_first, a_then, b_then);
        {
            a_first = line!() + 1;
            let _a = a.lock();
            a_then = line!() + 1;
            let _b = b.lock();
        }
        assert!(named_violations("pair-").is_empty(), "one order is fine");
        let inverted = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _b = b.lock();
                    let line = line!() + 1;
                    let _a = a.lock();
                    line
                })
                .join()
                .unwrap()
        });
        b_then = inverted;
        // Again, on this thread and another: no new report.
        for _ in 0..3 {
            let _b = b.lock();
            let _a = a.lock();
        }
        let found = named_violations("pair-");
        assert_eq!(found.len(), 1, "{found:?}");
        let violation = &found[0];
        assert_eq!(violation.steps.len(), 2);
        let (first, closing) = (&violation.steps[0], &violation.steps[1]);
        assert_eq!(first.first.lock.name, Some("pair-A"));
        assert_eq!(first.then.lock.name, Some("pair-B"));
        assert_eq!(first.then.taken_at.line(), a_then);
        assert_eq!(closing.first.lock.name, Some("pair-B"));
        assert_eq!(closing.then.lock.name, Some("pair-A"));
        assert_eq!(closing.then.taken_at.line(), b_then);
        assert_eq!(closing.then.taken_at.file(), file!());
        let text = violation.to_string();
        assert!(
            text.contains(&format!("took pair-A (at {}:{a_first})", file!())),
            "{text}"
        );
        assert!(
            text.contains(&format!("and then pair-A (at {}:{b_then})", file!())),
            "{text}"
        );
    });
}

#[test]
fn a_reentrant_relock_is_not_an_edge() {
    let r = ReentrantLock::with_name("re-R", ());
    let m = Mutex::with_name("re-M", ());
    {
        let _r = r.lock();
        let _m = m.lock(); // re-R → re-M
        let _again = r.lock(); // owned already: cannot block, no re-M → re-R
    }
    assert!(
        named_violations("re-").is_empty(),
        "{:?}",
        named_violations("re-")
    );
}

#[test]
fn try_lock_cannot_block_so_it_adds_no_edge() {
    let a = Mutex::with_name("try-A", ());
    let b = Mutex::with_name("try-B", ());
    {
        let _a = a.lock();
        let _b = b.try_lock().unwrap();
    }
    {
        let _b = b.lock();
        let _a = a.lock();
    }
    assert!(named_violations("try-").is_empty());
}

fn named_violations(prefix: &str) -> Vec<LockOrderViolation> {
    deadlock::lock_order_violations()
        .into_iter()
        .filter(|violation| {
            violation.steps.iter().all(|step| {
                step.first
                    .lock
                    .name
                    .is_some_and(|name| name.starts_with(prefix))
                    && step
                        .then
                        .lock
                        .name
                        .is_some_and(|name| name.starts_with(prefix))
            })
        })
        .collect()
}

/// The plain model: the order graph, edges added in program order.
#[derive(Default)]
struct Model {
    edges: HashSet<(usize, usize)>,
    /// The edge that closed each cycle, in order.
    closing: Vec<(usize, usize)>,
}

impl Model {
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = HashSet::from([from]);
        let mut stack = vec![from];
        while let Some(node) = stack.pop() {
            if node == to {
                return true;
            }
            for &(a, b) in &self.edges {
                if a == node && seen.insert(b) {
                    stack.push(b);
                }
            }
        }
        false
    }

    fn add(&mut self, from: usize, to: usize) {
        if self.edges.contains(&(from, to)) {
            return;
        }
        if self.reaches(to, from) {
            self.closing.push((from, to));
        }
        self.edges.insert((from, to));
    }

    fn has_cycle(&self) -> bool {
        self.edges.iter().any(|&(a, b)| self.reaches(b, a))
    }
}

/// Runs one thread's program: each step toggles lock `index` (takes it if
/// not held, else releases it); at the end everything is released.
fn run_program(locks: &[Mutex<()>], program: &[usize], model: &mut Model) {
    let mut guards: Vec<Option<MutexGuard<'_, ()>>> = locks.iter().map(|_| None).collect();
    let mut held_order: Vec<usize> = Vec::new();
    for &index in program {
        if guards[index].is_some() {
            guards[index] = None;
            held_order.retain(|&held| held != index);
        } else {
            for &held in &held_order {
                model.add(held, index);
            }
            guards[index] = Some(locks[index].lock());
            held_order.push(index);
        }
    }
}

proptest! {
    #![proptest_config(common::concurrent_config())]

    /// Random acquisition programs over up to 6 locks on 2–4 threads, run
    /// one thread at a time (so they never deadlock): a violation is
    /// reported iff the model's order graph has a cycle, and each names
    /// the edge that closed it and a real cycle of the model's edges.
    #[test]
    fn violations_match_the_graph_model(
        lock_count in 2usize..=6,
        programs in proptest::collection::vec(
            proptest::collection::vec(0usize..6, 0..12), 2..=4),
    ) {
        // Unique names per case (leaked: a few bytes per case), so this
        // case's reports can be told from the others' in the shared list.
        static CASE: AtomicUsize = AtomicUsize::new(0);
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("prop{case}-");
        let names: Vec<&'static str> = (0..lock_count)
            .map(|index| &*Box::leak(format!("{prefix}{index}").into_boxed_str()))
            .collect();
        let locks: Vec<Mutex<()>> = names.iter().map(|name| Mutex::with_name(name, ())).collect();
        let programs: Vec<Vec<usize>> = programs
            .into_iter()
            .map(|program| program.into_iter().map(|index| index % lock_count).collect())
            .collect();
        let mut model = Model::default();
        for program in &programs {
            // One thread at a time: each program runs on a thread of its own.
            std::thread::scope(|scope| {
                scope.spawn(|| run_program(&locks, program, &mut model)).join().unwrap();
            });
        }
        let index_of: HashMap<&str, usize> =
            names.iter().enumerate().map(|(index, name)| (*name, index)).collect();
        let index = |lock: &deadlock::LockInfo| index_of[lock.name.unwrap()];
        let found = named_violations(&prefix);
        prop_assert_eq!(!found.is_empty(), model.has_cycle());
        let closing: Vec<(usize, usize)> = found
            .iter()
            .map(|violation| {
                let last = violation.steps.last().unwrap();
                (index(&last.first.lock), index(&last.then.lock))
            })
            .collect();
        prop_assert_eq!(&closing, &model.closing);
        for violation in &found {
            let steps: Vec<(usize, usize)> = violation
                .steps
                .iter()
                .map(|step| (index(&step.first.lock), index(&step.then.lock)))
                .collect();
            let locks_in_cycle: BTreeSet<usize> = steps.iter().map(|step| step.0).collect();
            prop_assert_eq!(locks_in_cycle.len(), steps.len(), "a simple cycle");
            for (position, step) in steps.iter().enumerate() {
                prop_assert!(model.edges.contains(step));
                prop_assert_eq!(step.1, steps[(position + 1) % steps.len()].0);
            }
        }
    }
}
