//! Review 17: two loom models of the process queue that failed (loom:
//! "deadlock") before their fixes; a failure aborts the binary, so they
//! live apart from `process_queue.rs` (run one by name:
//! `LOOM_MAX_PREEMPTIONS=2 cargo test --release --test process_queue_unwoken -- NAME`).
//!
//! - `a_producer_that_dies_after_its_commit_...`: a locker that took the
//!   state lock from a dead holder woke nobody unless the journal was
//!   pending, so a sleeper owed a wake-up by the dead holder waited for
//!   production's `HOLDER_POLL`. Fixed in `raw/process_queue.rs`: a
//!   locker told the holder died bumps every futex word and wakes every
//!   sleeper.
//! - `two_getters_on_one_word_...`: a defect of the futex *model*
//!   (`src/sys/futex_loom.rs`): a timed waiter that a `wake` dequeued while
//!   it waited for the model's table lock lost the `unpark` (loom keeps no
//!   unpark that reaches a thread blocked on a loom `Mutex`: it only makes
//!   it runnable), then parked for ever: a false deadlock. Fixed in the
//!   model: the timed waiter takes its outcome at once when it finds
//!   itself dequeued.

use loom::sync::atomic::{AtomicU8, Ordering};
use loom::sync::Arc;
use loom::thread;
use verisync::__loom::process_lock::{Wait, Word};
use verisync::__loom::process_queue::{GetRefused, Holding, QueueState, RawQueue, RingBytes};
use verisync_loom_tests::processes::{Processes, StateLockOf};

/// As in `process_queue.rs`.
const CAPACITY: u32 = 16;
const PUT_COMMIT_STORES: usize = 17;

struct Bytes([AtomicU8; CAPACITY as usize]);

impl RingBytes for Bytes {
    fn write(&self, at: usize, data: &[u8]) {
        for (offset, &byte) in data.iter().enumerate() {
            self.0[at + offset].store(byte, Ordering::Relaxed);
        }
    }

    fn read(&self, at: usize, out: &mut [u8]) {
        for (offset, byte) in out.iter_mut().enumerate() {
            *byte = self.0[at + offset].load(Ordering::Relaxed);
        }
    }
}

struct World {
    lock: Word,
    state: QueueState,
    holdings: [Holding; 3],
    bytes: Bytes,
    processes: Processes,
}

impl World {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            lock: Word::new(0),
            state: QueueState::new(u32::MAX),
            holdings: std::array::from_fn(|_| Holding::new()),
            bytes: Bytes(std::array::from_fn(|_| AtomicU8::new(0))),
            processes: Processes::new(),
        })
    }

    fn queue(&self) -> RawQueue<'_, Bytes> {
        RawQueue::new(&self.state, &self.holdings, &self.bytes, CAPACITY, u32::MAX)
    }

    fn process(&self, me: u32) -> StateLockOf<'_> {
        StateLockOf {
            me,
            word: &self.lock,
            processes: &self.processes,
        }
    }

    fn put(&self, me: u32, item: u8) {
        self.queue()
            .put(&[item], Wait::Until(None), &self.process(me))
            .expect("the queue is open");
    }

    fn get(&self, me: u32) -> Result<Vec<u8>, GetRefused> {
        self.queue().get(Wait::Until(None), &self.process(me))
    }
}

fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(test);
}

/// A producer dies after its whole commit (the journal cleared), before
/// its unlock and wake-up, and nobody polls; process 3 then takes the
/// state lock from the dead holder (a `join` that does not wait). The item
/// is there, and the getter asleep since before the put could take it,
/// but nothing wakes it: it sleeps until production's `HOLDER_POLL`.
/// (Passes, and `process_queue.rs` stays green, when `RawQueue::lock`, told
/// `Acquired::OwnerDied`, bumps every word with `SLEEPERS` set — a getter
/// between its unlock and its futex wait must see the word change — and
/// wakes all three words whatever `SLEEPERS` says: the dead holder may have
/// bumped, clearing it, without waking.)
#[test]
fn a_producer_that_dies_after_its_commit_leaves_no_getter_asleep_once_its_lock_is_recovered() {
    model(|| {
        let world = World::new();
        let getter = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.get(2))
        };
        let producer = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world
                    .queue()
                    .put_and_die(&[7], &world.process(1), PUT_COMMIT_STORES);
                world.processes.die_unnoticed(1);
            })
        };
        producer.join().unwrap();
        let _ = world.queue().join(Wait::Try, &world.process(3));
        assert_eq!(getter.join().unwrap(), Ok(vec![7]));
    });
}

/// Getter 2 waits for ever, getter 3 with a deadline (timing out at any
/// point); one item is put, then one more once getter 3 is done: getter 2
/// always gets one, and none is got twice or lost.
#[test]
fn two_getters_on_one_word_one_times_out_and_the_other_is_still_woken() {
    model(|| {
        let world = World::new();
        let patient = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.get(2))
        };
        let hasty = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world.queue().get(
                    Wait::Until(Some(std::time::Instant::now())),
                    &world.process(3),
                )
            })
        };
        world.put(1, 1);
        let hasty = hasty.join().unwrap();
        world.put(1, 2);
        let patient = patient.join().unwrap().expect("the patient getter gets");
        let mut got = vec![patient];
        got.extend(hasty.ok());
        while let Ok(item) = world.queue().get(Wait::Try, &world.process(1)) {
            got.push(item);
        }
        got.sort();
        assert_eq!(got, [vec![1], vec![2]]);
    });
}
