//! Review 17: the parking seam's loom model (`src/sys/park_loom.rs`) has
//! the futex model's timed-wait pattern: a timed parker that an unpark
//! dequeues while it waits for the model's table lock (another thread
//! holding it) gets the `Thread::unpark` while loom counts it blocked on
//! that lock, which loom turns into "runnable" without keeping a token; it
//! then parks for ever (a false deadlock). Two waiters on an `Event`, one
//! timed, and a `set`.

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use verisync::Event;

#[test]
fn a_set_wakes_a_timed_and_an_untimed_waiter() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let event = Arc::new(Event::new());
        let untimed = {
            let event = Arc::clone(&event);
            thread::spawn(move || event.wait())
        };
        let timed = {
            let event = Arc::clone(&event);
            thread::spawn(move || event.wait_timeout(Duration::from_secs(1)))
        };
        event.set();
        untimed.join().unwrap();
        let _ = timed.join().unwrap();
    });
}
