//! What a state does when an event cannot be folded.

/// What a state does when an event cannot be decoded or applied.
///
/// A storage error while reading the log always stops the state, whatever the
/// policy: the bytes on disk are wrong, and skipping them would hide that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoldErrorPolicy {
    /// The state stops advancing at the failed event; `wait_for_seq` for that
    /// event or a later one returns the error. The default: a state never
    /// silently diverges from its log.
    #[default]
    Stop,
    /// The event is skipped, counted (`Handle::skipped_events`) and logged with
    /// `tracing::warn!`; the state goes on with the next event.
    LogAndContinue,
}
