//! # A parking lot: a semaphore counts the free spaces
//!
//! The lesson: a [`Semaphore`] holds a number of permits; `acquire` takes
//! one, waiting while none is free, and dropping the permit gives it back.
//! Python's `threading.Semaphore(5)` guarding a resource that only five may
//! use at once.
//!
//! ```text
//! cargo run --release --example semaphore_parking
//! ```
//!
//! 25 cars (threads) arrive one after another at a lot with 5 spaces
//! (`Semaphore::new(5)`). A car that finds a space parks at once; the others
//! wait in line — first come, first served — until a car leaves. Each car
//! parks for a while derived from its number (no randomness needed). An
//! atomic counter tracks how many cars are parked, and the program checks at
//! the end that there were never more than 5.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use verisync::Semaphore;

const CARS: usize = 25;
const SPACES: usize = 5;

/// Time between two cars arriving.
const ARRIVAL_GAP: Duration = Duration::from_millis(15);

/// How long a car stays: 100–199 ms, different for neighbouring cars.
fn parking_time(car: usize) -> Duration {
    Duration::from_millis(100 + (car as u64 * 37) % 100)
}

/// Prints a line stamped with the milliseconds since the lot opened.
fn say(opened: Instant, message: &str) {
    println!("[{:>4} ms] {message}", opened.elapsed().as_millis());
}

/// The lot: the semaphore hands out the spaces; the counters only watch.
struct Lot {
    spaces: Semaphore,
    parked: AtomicUsize,
    most_parked: AtomicUsize,
    opened: Instant,
}

impl Lot {
    fn visit(&self, car: usize) {
        let arrived = Instant::now();
        let space = match self.spaces.try_acquire() {
            Some(space) => space,
            None => {
                say(
                    self.opened,
                    &format!("car {car:>2} arrives: lot full, waits in line"),
                );
                self.spaces.acquire()
            }
        };
        // The counters are updated while the permit is held, so `parked`
        // never exceeds the permits handed out.
        let now_parked = self.parked.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_parked.fetch_max(now_parked, Ordering::SeqCst);
        let waited = arrived.elapsed().as_millis();
        let how = if waited < 5 {
            "arrives and parks".to_string()
        } else {
            format!("parks after waiting {waited} ms")
        };
        say(
            self.opened,
            &format!(
                "car {car:>2} {how:<28} free spaces: {}",
                SPACES - now_parked
            ),
        );

        thread::sleep(parking_time(car));

        let now_parked = self.parked.fetch_sub(1, Ordering::SeqCst) - 1;
        say(
            self.opened,
            &format!(
                "car {car:>2} {:<28} free spaces: {}",
                "leaves",
                SPACES - now_parked
            ),
        );
        drop(space); // the space is free again: the next car in line parks
    }
}

fn main() {
    println!("{CARS} cars, {SPACES} parking spaces: Semaphore::new({SPACES}).\n");
    let lot = Lot {
        spaces: Semaphore::new(SPACES),
        parked: AtomicUsize::new(0),
        most_parked: AtomicUsize::new(0),
        opened: Instant::now(),
    };
    thread::scope(|scope| {
        for car in 1..=CARS {
            let lot = &lot;
            scope.spawn(move || lot.visit(car));
            thread::sleep(ARRIVAL_GAP);
        }
    });

    let most = lot.most_parked.load(Ordering::SeqCst);
    println!();
    println!(
        "All {CARS} cars parked and left in {} ms.",
        lot.opened.elapsed().as_millis()
    );
    println!("Most cars parked at once: {most} (spaces: {SPACES}).");
    assert!(
        most <= SPACES,
        "{most} cars were parked at once in {SPACES} spaces"
    );
    assert_eq!(
        lot.spaces.available_permits(),
        SPACES,
        "every space is free again"
    );
    println!("The semaphore never let more than {SPACES} cars in at once, and all spaces are free again.");
}
