//! What a futex wait reports, shared by the production seam and its model.

/// Why [`wait`](super::futex::wait) returned. In every case but
/// `TimedOut` the caller re-reads the word and decides again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken by `wake`, or spuriously, or the word no longer held the
    /// expected value.
    Woken,
    /// `still_valid` said no: the caller did not sleep.
    Invalid,
    /// The caller's deadline passed.
    TimedOut,
    /// Time to check again whether the holder is alive (production: the
    /// poll interval passed; model: a process died).
    Recheck,
}
