//! Model `UnsafeCell`: loom's, so that two guards giving access at once (a
//! lock that fails to exclude) is a loom failure, not a silent data race.

/// loom's `UnsafeCell` with the production cell's API.
pub(crate) struct UnsafeCell<T: ?Sized>(loom::cell::UnsafeCell<T>);

/// An exclusive access, tracked by loom for as long as it lives.
pub(crate) struct MutAccess<T: ?Sized>(Option<loom::cell::MutPtr<T>>);

/// A shared access, tracked by loom for as long as it lives.
pub(crate) struct SharedAccess<T: ?Sized>(Option<loom::cell::ConstPtr<T>>);

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(loom::cell::UnsafeCell::new(value))
    }

    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

impl<T: ?Sized> UnsafeCell<T> {
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        self.0.with(f)
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }

    pub(crate) fn access_mut(&self) -> MutAccess<T> {
        MutAccess(Some(self.0.get_mut()))
    }

    pub(crate) fn access_shared(&self) -> SharedAccess<T> {
        SharedAccess(Some(self.0.get()))
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` proves no other access exists; the tracked
        // access ends at once, which loom accepts because nothing can race
        // with an exclusive borrow.
        self.0.with_mut(|pointer| unsafe { &mut *pointer })
    }
}

impl<T: ?Sized> MutAccess<T> {
    pub(crate) fn pointer(&self) -> *mut T {
        self.0
            .as_ref()
            .expect("verisync: access used while suspended")
            .with(|pointer| pointer)
    }

    pub(crate) fn suspend(&mut self) {
        self.0 = None;
    }

    pub(crate) fn resume(&mut self, cell: &UnsafeCell<T>) {
        self.0 = Some(cell.0.get_mut());
    }
}

impl<T: ?Sized> SharedAccess<T> {
    pub(crate) fn pointer(&self) -> *const T {
        self.0
            .as_ref()
            .expect("verisync: access used while suspended")
            .with(|pointer| pointer)
    }

    pub(crate) fn suspend(&mut self) {
        self.0 = None;
    }

    pub(crate) fn resume(&mut self, cell: &UnsafeCell<T>) {
        self.0 = Some(cell.0.get());
    }
}
