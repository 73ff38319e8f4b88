//! Snapshots: a state's value at a seq, so a restart costs "snapshot + events after
//! it" instead of the whole history.
//!
//! [`codec`] frames one state's value with its identity (name, version, definition
//! fingerprint) and a checksum; [`store`] keeps snapshot files on disk atomically.
//! A snapshot that is foreign, stale, truncated or corrupt is never used: the
//! runtime falls back to an older one or to a full replay.

pub mod bundle;
pub mod codec;
pub mod identity;
pub mod store;

pub use bundle::Bundle;
pub use codec::{SnapshotError, SnapshotHeader};
pub use identity::{IdentityMismatch, RecordIdentity};
pub use store::{SnapshotIoError, SnapshotStore};

#[cfg(test)]
mod tests;
