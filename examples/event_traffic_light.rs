//! # A traffic light: cars wait for an event
//!
//! The lesson: an [`Event`] is a flag that threads can wait for — Python's
//! `threading.Event`. `set` raises the flag and wakes everyone waiting;
//! `clear` lowers it; `wait` returns at once while it is set and blocks
//! while it is clear.
//!
//! ```text
//! cargo run --release --example event_traffic_light
//! ```
//!
//! The event means "the light is green". A light thread switches between
//! red (`clear`) and green (`set`) a few times and ends on green. Cars
//! (threads) arrive one after another: at green they cross straight away;
//! at red they `wait` until the light turns green, and then all the waiting
//! cars cross together.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use verisync::Event;

const CARS: usize = 10;
const CYCLES: usize = 3;
const RED: Duration = Duration::from_millis(250);
const GREEN: Duration = Duration::from_millis(200);
/// Time between two cars arriving.
const ARRIVAL_GAP: Duration = Duration::from_millis(110);

/// Prints a line stamped with the milliseconds since the start.
fn say(start: Instant, message: &str) {
    println!("[{:>4} ms] {message}", start.elapsed().as_millis());
}

/// Cycles red → green `CYCLES` times, then stays green.
fn traffic_light(green: &Event, start: Instant) {
    for cycle in 1..=CYCLES {
        green.clear();
        say(
            start,
            &format!("light turns RED   (cycle {cycle} of {CYCLES})"),
        );
        thread::sleep(RED);
        say(start, "light turns GREEN");
        green.set();
        if cycle < CYCLES {
            thread::sleep(GREEN);
        }
    }
    say(start, "light stays green");
}

/// One car: cross at green, wait at red.
fn car(number: usize, green: &Event, waited_at_red: &AtomicUsize, start: Instant) {
    if green.is_set() {
        say(
            start,
            &format!("car {number:>2} arrives at green and crosses"),
        );
        return;
    }
    say(start, &format!("car {number:>2} arrives at red and waits"));
    let arrived = Instant::now();
    green.wait();
    waited_at_red.fetch_add(1, Ordering::Relaxed);
    say(
        start,
        &format!(
            "car {number:>2} sees green and crosses (waited {} ms)",
            arrived.elapsed().as_millis()
        ),
    );
}

fn main() {
    println!("{CARS} cars, one traffic light; the Event means \"green\".\n");
    let green = Event::new();
    let waited_at_red = AtomicUsize::new(0);
    let start = Instant::now();
    thread::scope(|scope| {
        let green = &green;
        let waited_at_red = &waited_at_red;
        scope.spawn(move || traffic_light(green, start));
        for number in 1..=CARS {
            thread::sleep(ARRIVAL_GAP);
            scope.spawn(move || car(number, green, waited_at_red, start));
        }
    });
    let waited = waited_at_red.load(Ordering::Relaxed);
    println!();
    println!(
        "All {CARS} cars crossed in {} ms: {waited} waited at red, {} found it green.",
        start.elapsed().as_millis(),
        CARS - waited
    );
    println!("Each wait() returned only once set() had turned the light green.");
}
