//! Snapshots: a state's value at a seq, so a restart costs "snapshot + events after
//! it" instead of the whole history.
//!
//! [`codec`] frames one state's value with its identity (name, version, definition
//! fingerprint) and a checksum, and names the last event it covers ([`identity`]);
//! the store keeps the bytes (files in the file store, a table in PostgreSQL).
//! A snapshot that is foreign, stale, truncated or corrupt is never used: the
//! runtime falls back to an older one or to a full replay.

pub mod bundle;
pub mod codec;
pub mod identity;

pub use bundle::Bundle;
pub use codec::{SnapshotError, SnapshotHeader};
pub(crate) use identity::LastRecord;
pub use identity::{IdentityMismatch, RecordIdentity};

#[cfg(test)]
mod tests;
