//! loom (review 16): the LIFO/priority wait protocol with two sleepers on
//! one side, so that two notifies race each other and the condition's
//! "someone waits" word is cleared and set again between them.

use loom::sync::Arc;
use loom::thread;
use verisync::JoinableQueue;

fn bounded_model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(test);
}

/// Two getters sleep (or are about to) on an empty LIFO; two puts, from
/// two threads. Both getters must return with one item each.
#[test]
fn two_puts_wake_two_getters() {
    bounded_model(|| {
        let queue = Arc::new(JoinableQueue::<u32>::lifo());
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.get().unwrap())
            })
            .collect();
        let putter = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.put(1).unwrap())
        };
        queue.put(2).unwrap();
        putter.join().unwrap();
        let mut got: Vec<u32> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

/// Two putters sleep (or are about to) on a full LIFO of capacity 1; two
/// gets, from two threads. Both putters must get their item in.
#[test]
fn two_gets_wake_two_putters() {
    bounded_model(|| {
        let queue = Arc::new(JoinableQueue::<u32>::lifo_bounded(1));
        queue.put(0).unwrap();
        let putters: Vec<_> = (1..=2)
            .map(|item| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.put(item).unwrap())
            })
            .collect();
        let getter = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.get().unwrap())
        };
        let mine = queue.get().unwrap();
        let theirs = getter.join().unwrap();
        for putter in putters {
            putter.join().unwrap();
        }
        let last = queue.try_get().unwrap();
        let mut all = vec![mine, theirs, last];
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2]);
    });
}
