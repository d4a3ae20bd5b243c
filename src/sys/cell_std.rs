//! Production `UnsafeCell`: `core::cell::UnsafeCell` plus the access objects
//! that loom tracks in the model build (here plain raw pointers).

/// `core::cell::UnsafeCell` with the loom-style access API.
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    #[inline]
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    #[inline]
    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

impl<T: ?Sized> UnsafeCell<T> {
    /// Runs `f` with a pointer for reading.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a pointer for writing.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }

    /// Starts an exclusive access that lasts as long as the returned object.
    #[inline]
    pub(crate) fn access_mut(&self) -> MutAccess<T> {
        MutAccess(self.0.get())
    }

    /// Starts a shared access that lasts as long as the returned object.
    #[inline]
    pub(crate) fn access_shared(&self) -> SharedAccess<T> {
        SharedAccess(self.0.get())
    }

    /// Exclusive access through `&mut self` (no other access can exist).
    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}

/// An exclusive access to a cell's value (a raw pointer in production).
pub(crate) struct MutAccess<T: ?Sized>(*mut T);

impl<T: ?Sized> MutAccess<T> {
    /// The value's address.
    #[inline]
    pub(crate) fn pointer(&self) -> *mut T {
        self.0
    }

    /// Ends the access for a while (a condition wait releases the lock).
    #[inline]
    pub(crate) fn suspend(&mut self) {}

    /// Starts the access again after [`suspend`](Self::suspend).
    #[inline]
    pub(crate) fn resume(&mut self, _cell: &UnsafeCell<T>) {}
}

/// A shared access to a cell's value (a raw pointer in production).
pub(crate) struct SharedAccess<T: ?Sized>(*const T);

impl<T: ?Sized> SharedAccess<T> {
    /// The value's address.
    #[inline]
    pub(crate) fn pointer(&self) -> *const T {
        self.0
    }

    /// Ends the access for a while (a condition wait releases the lock).
    #[inline]
    pub(crate) fn suspend(&mut self) {}

    /// Starts the access again after [`suspend`](Self::suspend).
    #[inline]
    pub(crate) fn resume(&mut self, _cell: &UnsafeCell<T>) {}
}
