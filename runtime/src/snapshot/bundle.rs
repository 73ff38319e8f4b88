//! A bundle: the snapshots of every state of a Db in one blob (`db.snapshot()`),
//! restored with `Db::builder(dir).restore(bundle)`.
//!
//! Layout (little-endian): magic `b"FOLDBNDL"`, format (1 byte), count (u32), then
//! per state a u64 length and a snapshot blob ([`codec`]), then a
//! CRC32C of everything before it. Each blob also carries its own checks.

use super::codec::{self, SnapshotError, SnapshotHeader};

const MAGIC: &[u8; 8] = b"FOLDBNDL";
const FORMAT: u8 = 1;

/// Snapshot blobs of several states, as one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    blobs: Vec<Vec<u8>>,
}

impl Bundle {
    /// An empty bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one state's snapshot blob (from `handle.snapshot()`), after checking it.
    /// A blob that fails its checks is refused as [`SnapshotError::BundleEntry`]
    /// (naming the place it would have had, and its state if readable).
    pub fn push(&mut self, blob: Vec<u8>) -> Result<(), SnapshotError> {
        if let Err(error) = codec::read_header(&blob) {
            return Err(entry_error(self.blobs.len(), &blob, error));
        }
        self.blobs.push(blob);
        Ok(())
    }

    /// The blob of the state named `name`, if the bundle holds one.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.blobs
            .iter()
            .find(|b| codec::read_header(b).is_ok_and(|(h, _)| h.name == name))
            .map(Vec::as_slice)
    }

    /// The headers of the snapshots in the bundle, in order.
    pub fn headers(&self) -> impl Iterator<Item = SnapshotHeader> + '_ {
        self.blobs
            .iter()
            .filter_map(|b| codec::read_header(b).ok().map(|(h, _)| h))
    }

    /// How many snapshots the bundle holds.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether the bundle holds no snapshot.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// The bundle as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size: usize = self.blobs.iter().map(|b| b.len() + 8).sum();
        let mut out = Vec::with_capacity(size + 17);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&(self.blobs.len() as u32).to_le_bytes());
        for blob in &self.blobs {
            out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
            out.extend_from_slice(blob);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses bytes from [`Bundle::to_bytes`], checking the bundle and every blob in it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let (framed, crc) = bytes
            .split_last_chunk::<4>()
            .ok_or(SnapshotError::Malformed("bundle too short"))?;
        let (head, mut rest) = framed
            .split_at_checked(13)
            .ok_or(SnapshotError::Malformed("bundle too short"))?;
        if &head[..8] != MAGIC || head[8] != FORMAT {
            return Err(SnapshotError::Malformed("not a foldkit bundle"));
        }
        let (stored, computed) = (u32::from_le_bytes(*crc), crc32c::crc32c(framed));
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        let count = u32::from_le_bytes([head[9], head[10], head[11], head[12]]);
        let mut bundle = Bundle::new();
        for index in 0..count as usize {
            let cut =
                |what, partial: &[u8]| entry_error(index, partial, SnapshotError::Malformed(what));
            let (len, after) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| cut("the bundle ends before this entry's length", &[]))?;
            let len = usize::try_from(u64::from_le_bytes(*len))
                .map_err(|_| cut("its length does not fit in memory", after))?;
            let (blob, after) = after
                .split_at_checked(len)
                .ok_or_else(|| cut("the bundle ends inside this entry", after))?;
            bundle.push(blob.to_vec())?;
            rest = after;
        }
        if !rest.is_empty() {
            return Err(SnapshotError::Malformed(
                "trailing bytes after the bundle's entries",
            ));
        }
        Ok(bundle)
    }
}

/// Entry `index` (whose bytes, perhaps cut short, are `blob`) is unusable.
fn entry_error(index: usize, blob: &[u8], source: SnapshotError) -> SnapshotError {
    SnapshotError::BundleEntry {
        index,
        name: codec::declared_name(blob),
        source: Box::new(source),
    }
}
