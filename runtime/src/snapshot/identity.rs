//! What ties a snapshot to the log it was folded from: the identity of the
//! last record it covers.
//!
//! A snapshot says "the state after position N". That is only true of the log
//! that had *that* record at N: after a lost unsynced tail, N may be missing, or
//! hold a record appended later. So a snapshot carries the position, timestamp
//! and CRC32C of the payload of its last record, and before a snapshot is used
//! the record now at that position is read from the store and compared
//! ([`RecordIdentity::check`]). A mismatch means the snapshot belongs to a log
//! that no longer exists: it is ignored (and reported) and the state replays, or
//! starts from an older snapshot that matches.

use crate::Seq;
use crate::store::{EventStore, RecordedEvent, StoreError};

/// The identity of one stored event: its position, timestamp and payload checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordIdentity {
    /// The event's position (at least 1).
    pub seq: Seq,
    /// The event's timestamp (ms since the UNIX epoch, as stored).
    pub timestamp: u64,
    /// CRC32C of the event's payload and type name.
    pub payload_crc: u32,
}

/// The last record a state folded, as kept by the fold: the identity of a
/// short record is computed at once (a few instructions), a long one's only
/// when a snapshot needs it (its CRC per fold batch showed in the cost of
/// every single append); holding its payload keeps the buffer it was read
/// into alive until the next batch.
#[derive(Debug, Clone)]
pub(crate) enum LastRecord {
    /// Known already (a short record, or restored from a snapshot).
    Known(RecordIdentity),
    /// The record itself.
    Record {
        seq: Seq,
        timestamp: u64,
        name: std::sync::Arc<str>,
        payload: bytes::Bytes,
    },
}

impl LastRecord {
    /// Payloads up to this long get their identity at once: cheaper than
    /// sharing the payload's buffer (a reference count, often an allocation).
    const EAGER_UP_TO: usize = 512;

    /// The last record of a fold batch.
    pub(crate) fn of(event: &RecordedEvent) -> Self {
        if event.payload.len() <= Self::EAGER_UP_TO {
            return LastRecord::Known(RecordIdentity::of(event));
        }
        LastRecord::Record {
            seq: event.position,
            timestamp: event.timestamp,
            name: std::sync::Arc::clone(&event.name),
            payload: event.payload.clone(),
        }
    }

    /// Its identity.
    pub(crate) fn identity(&self) -> RecordIdentity {
        match self {
            LastRecord::Known(identity) => *identity,
            LastRecord::Record {
                seq,
                timestamp,
                name,
                payload,
            } => RecordIdentity::from_parts(*seq, *timestamp, name, payload),
        }
    }
}

impl RecordIdentity {
    fn from_parts(seq: Seq, timestamp: u64, name: &str, payload: &[u8]) -> Self {
        let crc = foldkit_storage::crc32c_append(
            foldkit_storage::crc32c_append(0, name.as_bytes()),
            payload,
        );
        Self {
            seq,
            timestamp,
            payload_crc: crc,
        }
    }

    /// The identity of `event`.
    pub fn of(event: &RecordedEvent) -> Self {
        Self::from_parts(event.position, event.timestamp, &event.name, &event.payload)
    }

    /// Whether `store` holds this very event.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn check(&self, store: &dyn EventStore) -> Result<(), IdentityMismatch> {
        let found = match store.read(self.seq, 1).await {
            Ok(events) => events.into_iter().next(),
            Err(StoreError::NotFound { .. }) => None,
            Err(source) => {
                return Err(IdentityMismatch::Unreadable {
                    seq: self.seq,
                    source,
                });
            }
        };
        match found {
            Some(event) if event.position == self.seq => {
                let found = Self::of(&event);
                if found == *self {
                    Ok(())
                } else {
                    Err(IdentityMismatch::Different {
                        expected: *self,
                        found,
                    })
                }
            }
            _ => Err(IdentityMismatch::Missing { seq: self.seq }),
        }
    }
}

/// Why a snapshot does not belong to the log it would resume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityMismatch {
    /// The log has no event at the snapshot's position (its tail was lost or cut).
    #[error("the log has no event at position {seq}")]
    Missing {
        /// The snapshot's last position.
        seq: Seq,
    },
    /// The log holds another event at the snapshot's position.
    #[error(
        "the log's event at position {} is another one (timestamp {}, CRC {:#010x}; the snapshot covers timestamp {}, CRC {:#010x})",
        found.seq, found.timestamp, found.payload_crc, expected.timestamp, expected.payload_crc
    )]
    Different {
        /// What the snapshot recorded.
        expected: RecordIdentity,
        /// What the log holds.
        found: RecordIdentity,
    },
    /// The event could not be read: the store's error is the
    /// [`source`](std::error::Error::source).
    #[error("the log's event at position {seq}, the snapshot's last, cannot be read")]
    Unreadable {
        /// The snapshot's last position.
        seq: Seq,
        /// Why the store could not read it.
        #[source]
        source: StoreError,
    },
}
