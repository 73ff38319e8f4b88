//! What a stored snapshot holds, read without the service's types: a state's
//! header, or a process manager's dead letters.

use std::sync::Arc;

use crate::Seq;
use crate::process::DeadLetter;
use crate::process::persist::{self, PersistError, SNAPSHOT_PREFIX};
use crate::snapshot::codec;
use crate::snapshot::{SnapshotError, SnapshotHeader};
use crate::store::StoreError;

/// The contents of one snapshot, framing and checksum checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SnapshotContents {
    /// A state's snapshot: its header (the body is not decoded).
    State(SnapshotHeader),
    /// A process manager's snapshot: its dead letters (the state is not decoded).
    ProcessManager {
        /// The manager's name, as the snapshot records it.
        name: String,
        /// Its parked reactions.
        dead_letters: Vec<DeadLetter>,
        /// The size of its encoded state.
        state_bytes: usize,
    },
}

impl SnapshotContents {
    /// The dead letters, when this is a readable process manager snapshot.
    pub fn dead_letters(&self) -> Option<&[DeadLetter]> {
        match self {
            SnapshotContents::ProcessManager { dead_letters, .. } => Some(dead_letters),
            SnapshotContents::State(_) => None,
        }
    }
}

/// Why a stored snapshot or checkpoint is unusable: which one, and why (the
/// check that failed is the [`source`](std::error::Error::source)). Where it is
/// stored (a file) is the [`Snapshot`](super::Snapshot)'s or
/// [`Checkpoint`](super::Checkpoint)'s `place()`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ExamineError {
    /// A state's snapshot fails its checks (framing, format, checksum).
    #[error("the snapshot `{name}` at position {position} is not a usable state snapshot")]
    State {
        /// The name it is stored under.
        name: String,
        /// Its position.
        position: Seq,
        /// The check that failed.
        #[source]
        source: SnapshotError,
    },
    /// A process manager's snapshot fails its checks.
    #[error("the snapshot of process manager `{manager}` at position {position} is unusable")]
    ProcessManager {
        /// The manager, by the name the snapshot is stored under.
        manager: String,
        /// Its position.
        position: Seq,
        /// The check that failed.
        #[source]
        source: PersistError,
    },
    /// A process manager's snapshot stored under another manager's name.
    #[error(
        "the snapshot at position {position} stored under the name of process manager `{manager}` is of `{found}`"
    )]
    Misfiled {
        /// The manager it is stored under.
        manager: String,
        /// Its position.
        position: Seq,
        /// The manager it was written by.
        found: String,
    },
    /// A state's snapshot where a process manager's is expected.
    #[error(
        "the snapshot `{name}` at position {position} is a state's snapshot, not a process manager's"
    )]
    NotAManager {
        /// The name it is stored under.
        name: String,
        /// Its position.
        position: Seq,
    },
    /// A subscription checkpoint cannot be read (damaged, or the store failed).
    #[error("the checkpoint of subscription `{name}` cannot be read")]
    Checkpoint {
        /// The subscription's name.
        name: String,
        /// The store's error.
        #[source]
        source: Arc<StoreError>,
    },
}

impl ExamineError {
    /// Why, without which snapshot or checkpoint (for a line that names it
    /// already): the failed check and its causes.
    pub(crate) fn why(&self) -> String {
        match self {
            ExamineError::State { source, .. } => crate::chain::Chain(source).to_string(),
            ExamineError::ProcessManager { source, .. } => crate::chain::Chain(source).to_string(),
            ExamineError::Checkpoint { source, .. } => {
                crate::chain::Chain(source.as_ref()).to_string()
            }
            ExamineError::Misfiled { manager, found, .. } => {
                format!(
                    "snapshot of process manager `{found}` stored under the name of `{manager}`"
                )
            }
            ExamineError::NotAManager { .. } => "a state's snapshot, not a manager's".to_owned(),
        }
    }
}

/// The process manager a snapshot name belongs to (`process-manager.<NAME>`).
pub fn process_manager_of(snapshot_name: &str) -> Option<&str> {
    snapshot_name.strip_prefix(SNAPSHOT_PREFIX)
}

/// Reads what the snapshot `name` at `position` holds (`bytes`), or says why
/// it is unusable.
pub fn examine(name: &str, position: Seq, bytes: &[u8]) -> Result<SnapshotContents, ExamineError> {
    // A state's snapshot says so itself (its magic), whatever its name.
    let is_state = bytes.starts_with(codec::MAGIC);
    let Some(manager) = process_manager_of(name).filter(|_| !is_state) else {
        return codec::read_header(bytes)
            .map(|(header, _)| SnapshotContents::State(header))
            .map_err(|source| ExamineError::State {
                name: name.to_owned(),
                position,
                source,
            });
    };
    match persist::parts(bytes) {
        Ok(parts) if parts.name != manager => Err(ExamineError::Misfiled {
            manager: manager.to_owned(),
            position,
            found: parts.name,
        }),
        Ok(parts) => Ok(SnapshotContents::ProcessManager {
            name: parts.name,
            dead_letters: parts.dead,
            state_bytes: parts.state.len(),
        }),
        Err(source) => Err(ExamineError::ProcessManager {
            manager: manager.to_owned(),
            position,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{ExamineError, SnapshotContents, examine};
    use crate::process::persist::{self, PersistError};
    use crate::snapshot::SnapshotError;

    #[test]
    fn an_unusable_snapshot_is_a_typed_error_naming_it_and_why() {
        let bytes = persist::encode("pm", &[], &7u64).unwrap();
        assert!(matches!(
            examine("process-manager.pm", 9, &bytes),
            Ok(SnapshotContents::ProcessManager { ref name, .. }) if name == "pm"
        ));

        let mut flipped = bytes.clone();
        flipped[12] ^= 0x01;
        let error = examine("process-manager.pm", 9, &flipped).unwrap_err();
        assert!(
            matches!(
                &error,
                ExamineError::ProcessManager { manager, position: 9, source: PersistError::Checksum { .. } }
                    if manager == "pm"
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "the snapshot of process manager `pm` at position 9 is unusable"
        );
        assert!(error.why().contains("checksum mismatch"), "{}", error.why());
        assert!(std::error::Error::source(&error).is_some());

        let error = examine("process-manager.other", 9, &bytes).unwrap_err();
        assert!(
            matches!(&error, ExamineError::Misfiled { manager, found, position: 9 } if manager == "other" && found == "pm"),
            "{error:?}"
        );

        let error = examine("Orders", 4, b"not a snapshot").unwrap_err();
        assert!(
            matches!(&error, ExamineError::State { name, position: 4, source: SnapshotError::Malformed(_) } if name == "Orders"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "the snapshot `Orders` at position 4 is not a usable state snapshot"
        );
    }
}
