//! Segmented, crash-safe, append-only log: the bytes every foldkit event lives in.
//!
//! This crate knows nothing of events: it stores opaque payloads under
//! increasing sequence numbers.

/// A record's sequence number: assigned by the log, starting at 1, strictly increasing.
pub type Seq = u64;
