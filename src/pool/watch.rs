//! [`HandleWatch`]: the one completion callback that [`wait`](super::wait)
//! hangs on a task's handle, shared by every `wait` call that watches it.
//!
//! # Why one per handle
//!
//! A handle's callbacks cannot be taken back: they sit in the completion
//! cell's lock-free list until the task finishes (see `task.rs`). A `wait`
//! that registered a callback of its own on every call would leave one
//! behind per call (with the queue it feeds) until the task finished, so a
//! loop polling `wait(…, FirstCompleted)` with a short timeout on a
//! long-running task grew by about 2 KB a call.
//!
//! So the first `wait` that watches a handle registers one callback, which
//! notifies this watch; each call **subscribes** to the watch with a
//! `Weak` reference to its own queue and the handle's index in its call.
//! When the call returns, its queue dies and the subscription is dead; dead
//! subscriptions are pruned whenever a new one comes. A handle thus keeps
//! at most one subscription per call still watching it, plus one dead one.
//!
//! # States
//!
//! | `finished` | subscribers          | meaning                                      |
//! |------------|----------------------|----------------------------------------------|
//! | `false`    | live and dead ones   | the task runs or waits; subscribers wait      |
//! | `true`     | none (taken)         | notified; a late subscriber is notified at once |
//!
//! Everything is under the watch's lock: a subscriber either is in the list
//! when the callback takes it, or finds `finished` and notifies itself.

use std::mem;
use std::sync::{Arc, Weak};

use crate::mutex::Mutex;
use crate::queue::JoinableQueue;

/// The queue of one `wait` call: the indexes of its handles as they finish.
pub(crate) type FinishedQueue = JoinableQueue<usize>;

/// What a handle's one `wait` callback notifies; see the module docs.
pub(crate) struct HandleWatch {
    state: Mutex<WatchState>,
}

struct WatchState {
    /// The task finished and the subscribers were notified.
    finished: bool,
    /// Each watching call's queue and the handle's index in that call.
    subscribers: Vec<(Weak<FinishedQueue>, usize)>,
}

impl HandleWatch {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new_untracked(WatchState {
                finished: false,
                subscribers: Vec::new(),
            }),
        }
    }

    /// Puts `index` on `finished` when the task finishes, or now if it has.
    pub(crate) fn subscribe(&self, finished: &Arc<FinishedQueue>, index: usize) {
        let mut state = self.state.lock();
        if state.finished {
            drop(state);
            // The queue is never shut down, so the put cannot be refused.
            let _ = finished.put(index);
            return;
        }
        state
            .subscribers
            .retain(|(queue, _)| queue.strong_count() > 0);
        state.subscribers.push((Arc::downgrade(finished), index));
    }

    /// The handle's callback: the task finished. Notifies every call still
    /// watching (outside the lock: a put may wake a thread).
    pub(crate) fn notify_finished(&self) {
        let subscribers = {
            let mut state = self.state.lock();
            state.finished = true;
            mem::take(&mut state.subscribers)
        };
        for (queue, index) in subscribers {
            if let Some(queue) = queue.upgrade() {
                let _ = queue.put(index);
            }
        }
    }
}
