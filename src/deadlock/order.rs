//! The lock-order graph: an edge A → B for every pair "B taken while A was
//! held" seen so far, and the violations found in it.
//!
//! # Algorithm
//!
//! A thread checks each pair (held lock, lock being taken) against its own
//! seen-pairs cache first (`registry.rs`); only a pair it has not seen
//! before comes here. A pair already in the graph costs one lookup. A new
//! edge A → B closes a cycle iff B already reaches A; that search (a
//! breadth-first walk remembering each node's parent edge) runs once per
//! new edge, never per acquisition. The cycle's edges, each with the
//! acquisition chain that first made it, are the violation's steps.
//!
//! A dropped lock's node and edges are removed (its id is never reused).
//!
//! # The list of violations
//!
//! A violation is kept once per inversion in the *code*: its [`Sites`] (for
//! each step, each lock's name and creation site and the line that took
//! it, the cycle turned to start at its smallest step) are remembered, and a
//! violation with the same sites is not kept again. So locks made per
//! request and taken in the wrong order on every request make one entry,
//! not one per request; without it they filled the list, capped at
//! [`VIOLATIONS_LIMIT`], and an inversion elsewhere found later was never
//! reported. The acquisition closing each cycle still sees its violation
//! (the panic switch panics every time: the edge of an acquisition it
//! refuses is not entered, so the same inversion, by any thread, closes
//! the cycle again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::Location;
use std::sync::{LazyLock, Mutex};

use super::registry::{self, lock};
use super::report::{HeldLock, LockId, LockOrderStep, LockOrderViolation};

/// At most this many violations are kept (the first ones found, each with
/// other [`Sites`]).
const VIOLATIONS_LIMIT: usize = 1024;

/// A lock of a step as the code names it: its name, where it was created,
/// and the line that took it.
type LockSite = (
    Option<&'static str>,
    &'static Location<'static>,
    &'static Location<'static>,
);

/// What makes two violations the same inversion in the code: each step's
/// (first, then) [`LockSite`]s, the cycle turned to start at its smallest
/// step (a cycle closed from another of its steps is the same one).
type Sites = Vec<(LockSite, LockSite)>;

/// The graph and the violations found so far.
static ORDER: LazyLock<Mutex<OrderGraph>> = LazyLock::new(|| Mutex::new(OrderGraph::default()));

#[derive(Default)]
struct OrderGraph {
    /// `after[a][b]`: b was taken while a was held, first by this step.
    after: HashMap<LockId, HashMap<LockId, LockOrderStep>>,
    /// `before[b]`: every a with an edge a → b (to remove b's edges).
    before: HashMap<LockId, HashSet<LockId>>,
    violations: Vec<LockOrderViolation>,
    /// The sites of every violation in `violations`.
    kept: HashSet<Sites>,
}

/// Enters the edge `step.first` → `step.then`; if it is new and closes a
/// cycle, records and returns the violation, and enters the edge only if
/// `enter_closing` (the panic switch refuses the acquisition instead: an
/// edge entered would make the next such acquisition look old and pass).
pub(crate) fn add_edge(step: &LockOrderStep, enter_closing: bool) -> Option<LockOrderViolation> {
    let from = step.first.lock.id;
    let to = step.then.lock.id;
    let mut graph = lock(&ORDER);
    if graph
        .after
        .get(&from)
        .is_some_and(|next| next.contains_key(&to))
    {
        return None;
    }
    let violation = graph.path(to, from).map(|mut steps| {
        steps.push(step.clone());
        LockOrderViolation { steps }
    });
    if violation.is_none() || enter_closing {
        graph
            .after
            .entry(from)
            .or_default()
            .insert(to, step.clone());
        graph.before.entry(to).or_default().insert(from);
    }
    let violation = violation?;
    if graph.violations.len() < VIOLATIONS_LIMIT && graph.kept.insert(sites(&violation)) {
        graph.violations.push(violation.clone());
    }
    Some(violation)
}

/// The violation's [`Sites`].
fn sites(violation: &LockOrderViolation) -> Sites {
    let site = |held: &HeldLock| (held.lock.name, held.lock.created_at, held.taken_at);
    let mut sites: Sites = violation
        .steps
        .iter()
        .map(|step| (site(&step.first), site(&step.then)))
        .collect();
    if let Some(smallest) = (0..sites.len()).min_by_key(|&index| sites[index]) {
        sites.rotate_left(smallest);
    }
    sites
}

/// Every violation found so far, oldest first (none when asked from inside
/// the diagnostics' own work, e.g. by an allocator they called: this thread
/// may hold the graph's lock).
pub(crate) fn violations() -> Vec<LockOrderViolation> {
    registry::as_tracker(|| lock(&ORDER).violations.clone()).unwrap_or_default()
}

/// Removes a dropped lock's node and edges.
pub(crate) fn forget_lock(id: LockId) {
    let mut graph = lock(&ORDER);
    if let Some(next) = graph.after.remove(&id) {
        for to in next.keys() {
            if let Some(from) = graph.before.get_mut(to) {
                from.remove(&id);
            }
        }
    }
    if let Some(previous) = graph.before.remove(&id) {
        for from in previous {
            if let Some(next) = graph.after.get_mut(&from) {
                next.remove(&id);
            }
        }
    }
}

impl OrderGraph {
    /// The edges of a shortest path `start` →* `goal`, if there is one.
    fn path(&self, start: LockId, goal: LockId) -> Option<Vec<LockOrderStep>> {
        let mut parent: HashMap<LockId, LockId> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut visited = HashSet::from([start]);
        while let Some(node) = queue.pop_front() {
            if node == goal {
                let mut steps = Vec::new();
                let mut at = goal;
                while at != start {
                    let from = parent[&at];
                    steps.push(self.after[&from][&at].clone());
                    at = from;
                }
                steps.reverse();
                return Some(steps);
            }
            for &next in self.after.get(&node).into_iter().flat_map(HashMap::keys) {
                if visited.insert(next) {
                    parent.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{lock, ORDER};
    use crate::deadlock::LockId;
    use crate::Mutex;

    /// The id of the lock named `name` in the graph, if it has a node.
    fn id_of(name: &str) -> Option<LockId> {
        let graph = lock(&ORDER);
        graph
            .after
            .values()
            .flat_map(|next| next.values())
            .find_map(|step| {
                [&step.first, &step.then]
                    .into_iter()
                    .find(|held| held.lock.name == Some(name))
                    .map(|held| held.lock.id)
            })
    }

    /// Whether any node or edge of the graph names `id`.
    fn mentioned(id: LockId) -> bool {
        let graph = lock(&ORDER);
        graph.after.contains_key(&id)
            || graph.before.contains_key(&id)
            || graph.after.values().any(|next| next.contains_key(&id))
            || graph.before.values().any(|previous| previous.contains(&id))
    }

    /// A lock dropped while its guard is leaked (so this thread still
    /// lists it as held) does not come back into the graph when the thread
    /// takes a new pair afterwards.
    #[test]
    fn a_leaked_and_dropped_lock_does_not_come_back() {
        let leaked = Box::new(Mutex::with_name("order-leaked", ()));
        let partner = Mutex::with_name("order-leaked-partner", ());
        let later = Mutex::with_name("order-leaked-later", ());
        drop((leaked.lock(), partner.lock()));
        let id = id_of("order-leaked").expect("the lock is in the graph");
        std::mem::forget(leaked.lock());
        drop(leaked);
        assert!(!mentioned(id));
        drop(later.lock()); // a new pair (the dropped lock, later) if listed
        assert!(!mentioned(id), "the dropped lock came back into the graph");
    }

    /// A lock dropped after entering the graph (as the first and as the
    /// second lock of a pair) leaves no node and no edge behind.
    #[test]
    fn a_dropped_lock_leaves_no_node_or_edge() {
        let before = Mutex::with_name("order-before", ());
        let dropped = Mutex::with_name("order-dropped", ());
        let after = Mutex::with_name("order-after", ());
        {
            let _before = before.lock();
            let _dropped = dropped.lock();
            let _after = after.lock();
        }
        let id = id_of("order-dropped").expect("the lock is in the graph");
        assert!(mentioned(id));
        drop(dropped);
        assert!(!mentioned(id), "no node or edge names the dropped lock");
        // The other locks' own edge stays.
        let (before, after) = (
            id_of("order-before").unwrap(),
            id_of("order-after").unwrap(),
        );
        assert!(lock(&ORDER).after[&before].contains_key(&after));
    }
}
