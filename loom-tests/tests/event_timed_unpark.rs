//! Review 17: the parking seam's loom model (`src/sys/park_loom.rs`) had
//! the futex model's timed-wait flaw: a timed parker that an unpark
//! dequeued while it waited for the model's table lock (another thread
//! holding it) got the `Thread::unpark` while loom counted it blocked on
//! that lock, which loom turns into "runnable" without keeping a token; it
//! then parked for ever (a false deadlock). Fixed in the model: the timed
//! parker takes its hand-off at once when it finds itself dequeued. Two
//! waiters on an `Event`, one timed, and a `set`.

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
