//! What ties a snapshot to the log it was folded from: the identity of the
//! last record it covers.
//!
//! A snapshot says "the state after seq N". That is only true of the log that
//! had *that* record at seq N: after a lost unsynced tail, seq N may be missing,
//! or hold a record appended later. So a snapshot carries the seq, timestamp and
//! CRC32C of the payload of its last record, and before a snapshot is used the
//! record now at that seq is read and compared ([`RecordIdentity::check`]). A
//! mismatch means the snapshot belongs to a log that no longer exists: it is
//! ignored and the state replays (or starts from an older snapshot that matches).

use foldkit_storage::{Log, Record, StorageError};

use crate::Seq;

/// The identity of one log record: its seq, timestamp and payload checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordIdentity {
    /// The record's seq (at least 1).
    pub seq: Seq,
    /// The record's timestamp (ms since the UNIX epoch, as the log stored it).
    pub timestamp: u64,
    /// CRC32C of the record's payload.
    pub payload_crc: u32,
}

impl RecordIdentity {
    /// The identity of `record`.
    pub fn of(record: &Record) -> Self {
        Self {
            seq: record.seq,
            timestamp: record.timestamp,
            payload_crc: crc32c::crc32c(&record.payload),
        }
    }

    /// Whether `log` holds this very record, read from the log (this may read
    /// a segment file: call it off the async workers).
    pub fn check(&self, log: &Log) -> Result<(), IdentityMismatch> {
        let record = match log.read(self.seq) {
            Ok(record) => record,
            Err(StorageError::NotFound { last, .. }) => {
                return Err(IdentityMismatch::Missing {
                    seq: self.seq,
                    last,
                });
            }
            Err(error) => return Err(IdentityMismatch::Unreadable(error)),
        };
        let found = Self::of(&record);
        if found == *self {
            Ok(())
        } else {
            Err(IdentityMismatch::Different {
                expected: *self,
                found,
            })
        }
    }
}

/// Why a snapshot does not belong to the log it would resume.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityMismatch {
    /// The log has no record at the snapshot's seq (its tail was lost or cut).
    #[error("the log has no record at seq {seq} (it ends at {last:?})")]
    Missing {
        /// The snapshot's last seq.
        seq: Seq,
        /// The log's last seq.
        last: Option<Seq>,
    },
    /// The log holds another record at the snapshot's seq.
    #[error(
        "the log's record at seq {} is another one (timestamp {} and payload CRC {:#010x}, the snapshot covers timestamp {} and CRC {:#010x})",
        found.seq, found.timestamp, found.payload_crc, expected.timestamp, expected.payload_crc
    )]
    Different {
        /// What the snapshot recorded.
        expected: RecordIdentity,
        /// What the log holds.
        found: RecordIdentity,
    },
    /// The record could not be read.
    #[error("the record at the snapshot's seq cannot be read")]
    Unreadable(#[source] StorageError),
    /// The snapshot covers events but names no last record.
    #[error("the snapshot names no last record")]
    Unidentified,
}
