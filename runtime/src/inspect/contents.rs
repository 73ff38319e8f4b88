//! What a stored snapshot holds, read without the service's types: a state's
//! header, or a process manager's dead letters.

use crate::process::DeadLetter;
use crate::process::persist::{self, PersistError, SNAPSHOT_PREFIX};
use crate::snapshot::SnapshotHeader;
use crate::snapshot::codec;

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
    /// A process manager's snapshot in the layout of earlier builds (format
    /// 1): the service restores it, but its dead letters follow a state only
    /// the service's types decode, so a tool cannot show them. The manager's
    /// next checkpoint rewrites it.
    LegacyProcessManager,
}

impl SnapshotContents {
    /// The dead letters, when this is a readable process manager snapshot.
    pub fn dead_letters(&self) -> Option<&[DeadLetter]> {
        match self {
            SnapshotContents::ProcessManager { dead_letters, .. } => Some(dead_letters),
            _ => None,
        }
    }
}

/// The process manager a snapshot name belongs to (`process-manager.<NAME>`).
pub fn process_manager_of(snapshot_name: &str) -> Option<&str> {
    snapshot_name.strip_prefix(SNAPSHOT_PREFIX)
}

/// Reads what the snapshot `name` holds (`bytes`), or says why it is unusable.
pub fn examine(name: &str, bytes: &[u8]) -> Result<SnapshotContents, String> {
    // A state's snapshot says so itself (its magic), whatever its name.
    let is_state = bytes.starts_with(codec::MAGIC);
    let Some(manager) = process_manager_of(name).filter(|_| !is_state) else {
        return codec::read_header(bytes)
            .map(|(header, _)| SnapshotContents::State(header))
            .map_err(|e| e.to_string());
    };
    match persist::parts(bytes) {
        Ok(parts) if parts.name != manager => Err(format!(
            "snapshot of process manager `{}` stored under the name of `{manager}`",
            parts.name
        )),
        Ok(parts) => Ok(SnapshotContents::ProcessManager {
            name: parts.name,
            dead_letters: parts.dead,
            state_bytes: parts.state.len(),
        }),
        Err(PersistError::Legacy) => Ok(SnapshotContents::LegacyProcessManager),
        Err(e) => Err(e.to_string()),
    }
}
