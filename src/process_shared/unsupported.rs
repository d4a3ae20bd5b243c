//! The process-shared types where they are not supported (off Linux, and
//! under the shuttle model, which has no futex seam): every constructor
//! and every handle opening returns [`SharedError::Unsupported`], so no
//! value of these types ever exists.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{open_failed, AcknowledgeOwnerDeath, OwnerDied, SharedError, TryLockError};

/// Nothing to attach on this platform.
#[cfg(unix)]
pub(crate) fn attach_inherited() {}

/// Nothing to pass down on this platform.
#[cfg(unix)]
pub(crate) fn pass_to_child(_command: &mut std::process::Command) {}

/// A process-shared lock (unsupported on this platform: [`Lock::new`]
/// returns [`SharedError::Unsupported`]).
///
/// ```
/// verisync::process::init();
/// let _maybe = verisync::process::Lock::new();
/// ```
#[derive(Clone, Debug)]
pub struct Lock {
    never: Infallible,
}

impl Lock {
    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    ///
    /// ```
    /// let _maybe = verisync::process::Lock::new();
    /// ```
    pub fn new() -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// Never called: no `Lock` exists on this platform.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn lock(&self) -> Result<LockGuard<'_>, OwnerDied<LockGuard<'_>>> {
        match self.never {}
    }

    /// Never called: no `Lock` exists on this platform.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn try_lock(&self) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        match self.never {}
    }

    /// Never called: no `Lock` exists on this platform.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn lock_timeout(
        &self,
        _timeout: Duration,
    ) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        match self.never {}
    }
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        match self.never {}
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        Err(open_failed(SharedError::Unsupported))
    }
}

/// A [`Lock`]'s guard (never exists on this platform).
#[derive(Debug)]
pub struct LockGuard<'a> {
    never: Infallible,
    _lock: PhantomData<&'a Lock>,
}

impl AcknowledgeOwnerDeath for LockGuard<'_> {
    fn acknowledge_owner_death(&mut self) {
        match self.never {}
    }
}

/// A process-shared value (unsupported on this platform:
/// [`Value::new`] returns [`SharedError::Unsupported`]).
///
/// ```
/// let _maybe = verisync::process::Value::new(0u64);
/// ```
#[derive(Debug)]
pub struct Value<T: Pod> {
    never: Infallible,
    _value: PhantomData<fn() -> T>,
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        match self.never {}
    }
}

impl<T: Pod> Value<T> {
    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn new(_value: T) -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, OwnerDied<ValueGuard<'_, T>>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn lock_timeout(
        &self,
        _timeout: Duration,
    ) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        match self.never {}
    }

    /// Never called.
    pub fn load(&self) -> T {
        match self.never {}
    }

    /// Never called.
    pub fn store(&self, _value: T) {
        match self.never {}
    }
}

impl<T: ValueInteger> Value<T> {
    /// Never called.
    pub fn fetch_add(&self, _delta: T) -> T {
        match self.never {}
    }
}

impl<T: Pod> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        match self.never {}
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        Err(open_failed(SharedError::Unsupported))
    }
}

/// A [`Value`]'s guard (never exists on this platform).
#[derive(Debug)]
pub struct ValueGuard<'a, T: Pod> {
    never: Infallible,
    _value: PhantomData<&'a Value<T>>,
}

impl<T: Pod> std::ops::Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self.never {}
    }
}

impl<T: Pod> std::ops::DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match self.never {}
    }
}

impl<T: Pod> AcknowledgeOwnerDeath for ValueGuard<'_, T> {
    fn acknowledge_owner_death(&mut self) {
        match self.never {}
    }
}

/// The integer types `Value::fetch_add` works on.
pub trait ValueInteger: Pod {}

macro_rules! value_integer {
    ($($integer:ty),*) => {$( impl ValueInteger for $integer {} )*};
}

value_integer!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

/// A process-shared counting semaphore (unsupported on this platform:
/// [`Semaphore::new`] returns [`SharedError::Unsupported`]).
///
/// ```
/// let _maybe = verisync::process::Semaphore::new(2);
/// ```
#[derive(Clone, Debug)]
pub struct Semaphore {
    never: Infallible,
}

impl Semaphore {
    /// The most permits a process-shared semaphore has in all.
    pub const MAX_PERMITS: usize = (1 << 31) - 1;

    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn new(_permits: usize) -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn bounded(_permits: usize) -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// Never called.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        match self.never {}
    }

    /// Never called.
    pub fn acquire_many(&self, _count: usize) -> SemaphorePermit<'_> {
        match self.never {}
    }

    /// Never called.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        match self.never {}
    }

    /// Never called.
    pub fn try_acquire_many(&self, _count: usize) -> Option<SemaphorePermit<'_>> {
        match self.never {}
    }

    /// Never called.
    pub fn try_acquire_for(&self, _timeout: Duration) -> Option<SemaphorePermit<'_>> {
        match self.never {}
    }

    /// Never called.
    pub fn try_acquire_many_for(
        &self,
        _count: usize,
        _timeout: Duration,
    ) -> Option<SemaphorePermit<'_>> {
        match self.never {}
    }

    /// Never called.
    pub fn try_acquire_until(&self, _deadline: Instant) -> Option<SemaphorePermit<'_>> {
        match self.never {}
    }

    /// Never called.
    pub fn try_acquire_many_until(
        &self,
        _count: usize,
        _deadline: Instant,
    ) -> Option<SemaphorePermit<'_>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn release(&self, _count: usize) -> Result<(), crate::TooManyReleases> {
        match self.never {}
    }

    /// Never called.
    pub fn available_permits(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn bound(&self) -> Option<usize> {
        match self.never {}
    }
}

impl Serialize for Semaphore {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        match self.never {}
    }
}

impl<'de> Deserialize<'de> for Semaphore {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        Err(open_failed(SharedError::Unsupported))
    }
}

/// A [`Semaphore`]'s permits (never exist on this platform).
#[derive(Debug)]
pub struct SemaphorePermit<'a> {
    never: Infallible,
    _semaphore: PhantomData<&'a Semaphore>,
}

impl SemaphorePermit<'_> {
    /// Never called.
    pub fn count(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn forget(self) {
        match self.never {}
    }
}

/// A process-shared event (unsupported on this platform: [`Event::new`]
/// returns [`SharedError::Unsupported`]).
///
/// ```
/// let _maybe = verisync::process::Event::new();
/// ```
#[derive(Clone, Debug)]
pub struct Event {
    never: Infallible,
}

impl Event {
    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn new() -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// Never called.
    pub fn set(&self) {
        match self.never {}
    }

    /// Never called.
    pub fn clear(&self) {
        match self.never {}
    }

    /// Never called.
    pub fn is_set(&self) -> bool {
        match self.never {}
    }

    /// Never called.
    pub fn wait(&self) {
        match self.never {}
    }

    /// Never called.
    pub fn wait_timeout(&self, _timeout: Duration) -> bool {
        match self.never {}
    }

    /// Never called.
    pub fn wait_until(&self, _deadline: Instant) -> bool {
        match self.never {}
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        match self.never {}
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        Err(open_failed(SharedError::Unsupported))
    }
}

/// A process-shared barrier (unsupported on this platform:
/// [`Barrier::new`] returns [`SharedError::Unsupported`]).
///
/// ```
/// let _maybe = verisync::process::Barrier::new(2);
/// ```
#[derive(Clone, Debug)]
pub struct Barrier {
    never: Infallible,
}

impl Barrier {
    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn new(_parties: usize) -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn wait(&self) -> Result<crate::BarrierWaitResult, crate::BrokenBarrier> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn wait_timeout(
        &self,
        _timeout: Duration,
    ) -> Result<crate::BarrierWaitResult, crate::BrokenBarrier> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn wait_until(
        &self,
        _deadline: Instant,
    ) -> Result<crate::BarrierWaitResult, crate::BrokenBarrier> {
        match self.never {}
    }

    /// Never called.
    pub fn abort(&self) {
        match self.never {}
    }

    /// Never called.
    pub fn reset(&self) {
        match self.never {}
    }

    /// Never called.
    pub fn is_broken(&self) -> bool {
        match self.never {}
    }

    /// Never called.
    pub fn n_waiting(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn parties(&self) -> usize {
        match self.never {}
    }
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        match self.never {}
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        Err(open_failed(SharedError::Unsupported))
    }
}

/// What a [`Condition`]'s wait hands back when the lock's holder died
/// (never, on this platform).
pub type OwnerDiedWhileWaiting<'g, 'l> = OwnerDied<&'g mut LockGuard<'l>>;

impl AcknowledgeOwnerDeath for &mut LockGuard<'_> {
    fn acknowledge_owner_death(&mut self) {
        match self.never {}
    }
}

/// A process-shared condition variable (unsupported on this platform:
/// [`Condition::new`] returns [`SharedError::Unsupported`]).
///
/// ```
/// let _maybe = verisync::process::Condition::new();
/// ```
#[derive(Clone, Debug)]
pub struct Condition {
    never: Infallible,
}

impl Condition {
    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn new() -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn wait<'g, 'l>(
        &self,
        _guard: &'g mut LockGuard<'l>,
    ) -> Result<(), OwnerDiedWhileWaiting<'g, 'l>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn wait_timeout<'g, 'l>(
        &self,
        _guard: &'g mut LockGuard<'l>,
        _timeout: Duration,
    ) -> Result<crate::WaitTimeoutResult, OwnerDiedWhileWaiting<'g, 'l>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn wait_until<'g, 'l>(
        &self,
        _guard: &'g mut LockGuard<'l>,
        _deadline: Instant,
    ) -> Result<crate::WaitTimeoutResult, OwnerDiedWhileWaiting<'g, 'l>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn wait_while<'g, 'l>(
        &self,
        _guard: &'g mut LockGuard<'l>,
        _condition: impl FnMut() -> bool,
    ) -> Result<(), OwnerDiedWhileWaiting<'g, 'l>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn wait_timeout_while<'g, 'l>(
        &self,
        _guard: &'g mut LockGuard<'l>,
        _timeout: Duration,
        _condition: impl FnMut() -> bool,
    ) -> Result<crate::WaitTimeoutResult, OwnerDiedWhileWaiting<'g, 'l>> {
        match self.never {}
    }

    /// Never called.
    pub fn notify_one(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn notify(&self, _count: usize) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn notify_all(&self) -> usize {
        match self.never {}
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        match self.never {}
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        Err(open_failed(SharedError::Unsupported))
    }
}

/// A process-shared array (unsupported on this platform: [`Array::new`]
/// returns [`SharedError::Unsupported`]).
///
/// ```
/// let _maybe = verisync::process::Array::new(3, 0u64);
/// ```
#[derive(Debug)]
pub struct Array<T: Pod> {
    never: Infallible,
    _elements: PhantomData<fn() -> T>,
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        match self.never {}
    }
}

impl<T: Pod> Array<T> {
    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn new(_len: usize, _value: T) -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn from_slice(_values: &[T]) -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// Never called.
    pub fn len(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn is_empty(&self) -> bool {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, OwnerDied<ArrayGuard<'_, T>>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn lock_timeout(
        &self,
        _timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        match self.never {}
    }

    /// Never called.
    pub fn load(&self, _index: usize) -> T {
        match self.never {}
    }

    /// Never called.
    pub fn store(&self, _index: usize, _value: T) {
        match self.never {}
    }

    /// Never called.
    pub fn to_vec(&self) -> Vec<T> {
        match self.never {}
    }
}

impl<T: Pod> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        match self.never {}
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        Err(open_failed(SharedError::Unsupported))
    }
}

/// An [`Array`]'s guard (never exists on this platform).
#[derive(Debug)]
pub struct ArrayGuard<'a, T: Pod> {
    never: Infallible,
    _array: PhantomData<&'a Array<T>>,
}

impl<T: Pod> std::ops::Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self.never {}
    }
}

impl<T: Pod> std::ops::DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self.never {}
    }
}

impl<T: Pod> AcknowledgeOwnerDeath for ArrayGuard<'_, T> {
    fn acknowledge_owner_death(&mut self) {
        match self.never {}
    }
}

/// Test support, outside semver (never called here: no `Lock` exists).
#[doc(hidden)]
pub fn __lock_words(lock: &Lock) -> &'static [std::sync::atomic::AtomicU32; 16] {
    match lock.never {}
}

/// A process-shared joinable queue (unsupported on this platform:
/// [`JoinableQueue::new`] returns [`SharedError::Unsupported`]).
///
/// ```
/// let _maybe = verisync::process::JoinableQueue::<u64>::new();
/// ```
#[derive(Debug)]
pub struct JoinableQueue<T> {
    never: Infallible,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        match self.never {}
    }
}

impl<T: Serialize + serde::de::DeserializeOwned + 'static> JoinableQueue<T> {
    /// The byte capacity of [`new`](Self::new) and
    /// [`bounded`](Self::bounded) queues.
    pub const DEFAULT_BYTES: usize = 1 << 20;

    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn new() -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn bounded(_items: usize) -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// [`SharedError::Unsupported`] on this platform.
    ///
    /// # Errors
    ///
    /// Always, here.
    pub fn with_capacity(_items: Option<usize>, _bytes: usize) -> Result<Self, SharedError> {
        Err(SharedError::Unsupported)
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn put(&self, _item: T) -> Result<(), super::PutError<T>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn put_timeout(&self, _item: T, _timeout: Duration) -> Result<(), super::PutError<T>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn try_put(&self, _item: T) -> Result<(), super::PutError<T>> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn get(&self) -> Result<T, super::GetError> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn get_timeout(&self, _timeout: Duration) -> Result<T, super::GetError> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn try_get(&self) -> Result<T, super::GetError> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn get_task(&self) -> Result<QueueTask<'_, T>, super::GetError> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn task_done(&self) -> Result<(), crate::TaskDoneError> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn join(&self) -> Result<(), super::TasksLost> {
        match self.never {}
    }

    /// Never called.
    ///
    /// # Errors
    ///
    /// Never.
    pub fn join_timeout(&self, _timeout: Duration) -> Result<bool, super::TasksLost> {
        match self.never {}
    }

    /// Never called.
    pub fn shutdown(&self) {
        match self.never {}
    }

    /// Never called.
    pub fn shutdown_now(&self) -> Vec<Result<T, super::Undecodable>> {
        match self.never {}
    }

    /// Never called.
    pub fn iter(&self) -> QueueIter<'_, T> {
        match self.never {}
    }

    /// Never called.
    pub fn len(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn is_empty(&self) -> bool {
        match self.never {}
    }

    /// Never called.
    pub fn is_full(&self) -> bool {
        match self.never {}
    }

    /// Never called.
    pub fn capacity(&self) -> Option<usize> {
        match self.never {}
    }

    /// Never called.
    pub fn byte_capacity(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn unfinished_tasks(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn lost_tasks(&self) -> usize {
        match self.never {}
    }

    /// Never called.
    pub fn is_shut_down(&self) -> bool {
        match self.never {}
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        match self.never {}
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        Err(open_failed(SharedError::Unsupported))
    }
}

/// An item taken with [`JoinableQueue::get_task`] (never exists on this
/// platform).
#[derive(Debug)]
pub struct QueueTask<'a, T> {
    never: Infallible,
    _queue: PhantomData<&'a JoinableQueue<T>>,
}

impl<T> QueueTask<'_, T> {
    /// Never called.
    pub fn into_inner(self) -> T {
        match self.never {}
    }
}

impl<T> std::ops::Deref for QueueTask<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self.never {}
    }
}

impl<T> std::ops::DerefMut for QueueTask<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match self.never {}
    }
}

/// The items of a [`JoinableQueue`] (never exists on this platform).
#[derive(Debug)]
pub struct QueueIter<'a, T> {
    never: Infallible,
    _queue: PhantomData<&'a JoinableQueue<T>>,
}

impl<T> Iterator for QueueIter<'_, T> {
    type Item = Result<T, super::Undecodable>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.never {}
    }
}
