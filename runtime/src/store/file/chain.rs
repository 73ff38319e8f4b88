//! The hash chain (opt-in): each record's envelope carries
//! `BLAKE3(previous hash ‖ position ‖ timestamp ‖ payload with its hash zeroed)`,
//! the first chained record hashing 32 zero bytes as its previous hash. Any edit,
//! deletion or reordering of a chained record changes every hash after it, so it
//! is detected by re-walking the chain ([`verify`]); the head hash is what an
//! auditor publishes or signs.

use super::envelope::HASH_LEN;
use crate::Seq;

/// The hash of one record, given the previous hash and the payload whose hash
/// field (at `hash_at`) is ignored (hashed as zeros).
pub(crate) fn link(
    previous: &[u8; HASH_LEN],
    position: Seq,
    timestamp: u64,
    payload: &[u8],
    hash_at: usize,
) -> [u8; HASH_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(previous);
    hasher.update(&position.to_le_bytes());
    hasher.update(&timestamp.to_le_bytes());
    let (before, rest) = payload.split_at(hash_at.min(payload.len()));
    hasher.update(before);
    hasher.update(&[0; HASH_LEN]);
    hasher.update(rest.get(HASH_LEN..).unwrap_or_default());
    *hasher.finalize().as_bytes()
}

/// The chain's state while walking it in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Walk {
    /// The last hash checked, once the chain started.
    pub(crate) head: Option<[u8; HASH_LEN]>,
    /// How many chained records were checked.
    pub(crate) checked: u64,
}

impl Walk {
    /// Checks one record: `hash` as stored (`None`: the record has no hash).
    /// Returns why the chain is broken at this record, if it is.
    pub(crate) fn step(
        &mut self,
        position: Seq,
        timestamp: u64,
        payload: &[u8],
        hash_at: usize,
        hash: Option<&[u8; HASH_LEN]>,
    ) -> Result<(), &'static str> {
        match (hash, self.head) {
            (None, None) => Ok(()), // before the chain started
            (None, Some(_)) => Err("a record without a hash after the chain started"),
            (Some(stored), previous) => {
                let expected = link(
                    &previous.unwrap_or([0; HASH_LEN]),
                    position,
                    timestamp,
                    payload,
                    hash_at,
                );
                if &expected != stored {
                    return Err(
                        "hash mismatch: the record or one before it was changed, removed or reordered",
                    );
                }
                self.head = Some(expected);
                self.checked += 1;
                Ok(())
            }
        }
    }
}
