//! Stand-ins for platforms without process support (anything but Unix):
//! every way to start a process returns `TaskError::Spawn` saying so, and
//! `init()` does nothing. No pool or process value can ever exist, so their
//! methods are never reached.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::process::ExitStatus;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::pool::task::{TaskError, TaskHandle};

fn unsupported() -> TaskError {
    TaskError::Spawn(
        "verisync's process pools and process::spawn need a Unix system (they re-execute \
         the program and talk to it over pipes, with signals); this platform is not supported"
            .into(),
    )
}

/// Does nothing on this platform (there are no worker processes).
pub fn init() {}

/// Always fails here: see [`ProcessPool`].
pub fn spawn<F, A, R>(_function: F, _argument: A) -> Result<Process<R>, TaskError>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    Err(unsupported())
}

/// A process pool; on this platform it cannot be built.
pub struct ProcessPool {
    never: Infallible,
}

/// Configures a [`ProcessPool`]; `build` fails on this platform.
pub struct ProcessPoolBuilder {
    _private: (),
}

/// Results of [`ProcessPool::map`].
pub struct ProcessMap<'a, F, I, R> {
    never: Infallible,
    _borrow: PhantomData<(&'a (), F, I, fn() -> R)>,
}

/// Results of [`ProcessPool::map_unordered`].
pub struct ProcessMapUnordered<'a, F, I, R> {
    never: Infallible,
    _borrow: PhantomData<(&'a (), F, I, fn() -> R)>,
}

/// A child process; on this platform none can be started.
pub struct Process<R> {
    never: Infallible,
    _result: PhantomData<fn() -> R>,
}

impl ProcessPoolBuilder {
    /// See the Unix documentation.
    pub fn workers(self, _workers: usize) -> Self {
        self
    }

    /// See the Unix documentation.
    pub fn max_tasks_per_worker(self, _tasks: u64) -> Self {
        self
    }

    /// See the Unix documentation.
    pub fn task_timeout(self, _timeout: Duration) -> Self {
        self
    }

    /// See the Unix documentation.
    pub fn initializer(self, _initializer: fn()) -> Self {
        self
    }

    /// Fails: process pools need Unix.
    pub fn build(self) -> Result<ProcessPool, TaskError> {
        Err(unsupported())
    }
}

impl ProcessPool {
    /// Fails: process pools need Unix.
    pub fn new(_workers: usize) -> Result<Self, TaskError> {
        Err(unsupported())
    }

    /// A builder whose `build` fails on this platform.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder { _private: () }
    }

    /// Unreachable: no pool exists on this platform.
    pub fn submit<F, A, R>(&self, _function: F, _argument: A) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        match self.never {}
    }

    /// Unreachable: no pool exists on this platform.
    pub fn map<F, I, R>(&self, _function: F, _inputs: I) -> ProcessMap<'_, F, I::IntoIter, R>
    where
        F: Fn(I::Item) -> R + Copy + Send + 'static,
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        match self.never {}
    }

    /// Unreachable: no pool exists on this platform.
    pub fn map_with_chunksize<F, I, R>(
        &self,
        _function: F,
        _inputs: I,
        _chunksize: usize,
    ) -> ProcessMap<'_, F, I::IntoIter, R>
    where
        F: Fn(I::Item) -> R + Copy + Send + 'static,
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        match self.never {}
    }

    /// Unreachable: no pool exists on this platform.
    pub fn map_unordered<F, I, R>(
        &self,
        _function: F,
        _inputs: I,
    ) -> ProcessMapUnordered<'_, F, I::IntoIter, R>
    where
        F: Fn(I::Item) -> R + Copy + Send + 'static,
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        match self.never {}
    }

    /// Unreachable: no pool exists on this platform.
    pub fn workers(&self) -> usize {
        match self.never {}
    }

    /// Unreachable: no pool exists on this platform.
    pub fn worker_pids(&self) -> Vec<u32> {
        match self.never {}
    }

    /// Unreachable: no pool exists on this platform.
    pub fn shutdown(&self) {
        match self.never {}
    }

    /// Unreachable: no pool exists on this platform.
    pub fn terminate(&self) {
        match self.never {}
    }
}

impl<F, I, R> Iterator for ProcessMap<'_, F, I, R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.never {}
    }
}

impl<F, I, R> Iterator for ProcessMapUnordered<'_, F, I, R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.never {}
    }
}

impl<R> Process<R> {
    /// Unreachable: no process exists on this platform.
    pub fn pid(&self) -> u32 {
        match self.never {}
    }

    /// Unreachable: no process exists on this platform.
    pub fn is_alive(&self) -> bool {
        match self.never {}
    }

    /// Unreachable: no process exists on this platform.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        match self.never {}
    }

    /// Unreachable: no process exists on this platform.
    pub fn terminate(&self) {
        match self.never {}
    }

    /// Unreachable: no process exists on this platform.
    pub fn kill(&self) {
        match self.never {}
    }

    /// Unreachable: no process exists on this platform.
    pub fn join(self) -> Result<R, TaskError> {
        match self.never {}
    }
}
