//! The file store's in-memory index: streams, idempotency keys, the chain head.
//!
//! Invariants (kept by [`Index::record`], the only mutator besides loading):
//! - `streams[id]` holds the positions of the stream's events in version order:
//!   the event at version v is at `streams[id][v - 1]`.
//! - `keys[key]` is the result of the batch that first carried `key`.
//! - `covered` is the last position folded into the index; `covered_identity`
//!   identifies the record there, so a persisted index is used only with the
//!   log it was built from (a lost tail refilled with other records is caught).
//!
//! The index is persisted to `streams.idx` at close and with each snapshot, and
//! at open only the log's tail after `covered` is scanned (headers only).
//!
//! File layout (little-endian): `FKIX`, format u32 (1), covered u64, identity
//! u64, chain flag u8 + head [32], stream count u64, per stream: id len u16, id,
//! count u64, positions u64 × count; key count u64, per key: len u16, key,
//! first u64, last u64, stream version u64; then a CRC32C of everything before.
//! Every count is checked against the bytes left before anything is allocated.

use std::collections::HashMap;
use std::sync::Arc;

use crate::Seq;
use crate::store::Appended;

const MAGIC: &[u8; 4] = b"FKIX";
const FORMAT: u32 = 1;

/// Streams, idempotency keys and chain head of one file store.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) streams: HashMap<Arc<str>, Vec<Seq>>,
    pub(crate) keys: HashMap<Box<str>, Appended>,
    pub(crate) covered: Seq,
    pub(crate) covered_identity: u64,
    /// The hash of the last chained record, once the chain has started.
    pub(crate) head: Option<[u8; 32]>,
}

/// What identifies one record: its timestamp and the CRC32C of its payload.
pub(crate) fn identity(timestamp: u64, payload: &[u8]) -> u64 {
    (u64::from(crc32c::crc32c(payload)) << 32) ^ timestamp
}

impl Index {
    /// The version of `stream` (its number of events).
    pub(crate) fn version(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |s| s.len() as u64)
    }

    /// Folds one record's header into the index.
    pub(crate) fn record(
        &mut self,
        position: Seq,
        identity: u64,
        stream: Option<(&str, u64)>,
        key: Option<(&str, Appended)>,
    ) {
        if let Some((id, _)) = stream {
            match self.streams.get_mut(id) {
                Some(positions) => positions.push(position),
                None => {
                    self.streams.insert(Arc::from(id), vec![position]);
                }
            }
        }
        if let Some((key, appended)) = key {
            self.keys.entry(Box::from(key)).or_insert(appended);
        }
        self.covered = position;
        self.covered_identity = identity;
    }

    /// The index as the bytes of `streams.idx`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.streams.len() * 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&self.covered.to_le_bytes());
        out.extend_from_slice(&self.covered_identity.to_le_bytes());
        out.push(u8::from(self.head.is_some()));
        out.extend_from_slice(&self.head.unwrap_or([0; 32]));
        out.extend_from_slice(&(self.streams.len() as u64).to_le_bytes());
        for (id, positions) in &self.streams {
            out.extend_from_slice(&(id.len() as u16).to_le_bytes());
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&(positions.len() as u64).to_le_bytes());
            for p in positions {
                out.extend_from_slice(&p.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        for (key, appended) in &self.keys {
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&appended.positions.start().to_le_bytes());
            out.extend_from_slice(&appended.positions.end().to_le_bytes());
            out.extend_from_slice(&appended.stream_version.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses `streams.idx`; `Err` says why the file is unusable (the caller
    /// then rebuilds the index from the log).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Index, &'static str> {
        let (body, crc) = bytes
            .split_last_chunk::<4>()
            .ok_or("shorter than its checksum")?;
        if crc32c::crc32c(body).to_le_bytes() != *crc {
            return Err("checksum mismatch");
        }
        let mut r = Reader(body);
        if r.take(4)? != MAGIC {
            return Err("not a foldkit index file");
        }
        if r.u32()? != FORMAT {
            return Err("unknown index format");
        }
        let mut index = Index {
            covered: r.u64()?,
            covered_identity: r.u64()?,
            ..Index::default()
        };
        let chained = r.take(1)?[0] == 1;
        let head: [u8; 32] = r.take(32)?.try_into().map_err(|_| "short head")?;
        index.head = chained.then_some(head);
        let streams = r.count(2 + 8)?;
        index.streams.reserve(streams);
        for _ in 0..streams {
            let len = usize::from(r.u16()?);
            let id = std::str::from_utf8(r.take(len)?).map_err(|_| "stream id not UTF-8")?;
            let count = r.count(8)?;
            let mut positions = Vec::with_capacity(count);
            for _ in 0..count {
                let position = r.u64()?;
                // A stream's positions ascend, within what the index covers: reads
                // compute spans from them.
                if position == 0 || position > index.covered {
                    return Err("a stream position beyond what the index covers");
                }
                if positions.last().is_some_and(|&last| last >= position) {
                    return Err("a stream's positions out of order");
                }
                positions.push(position);
            }
            index.streams.insert(Arc::from(id), positions);
        }
        let keys = r.count(2 + 24)?;
        index.keys.reserve(keys);
        for _ in 0..keys {
            let len = usize::from(r.u16()?);
            let key = std::str::from_utf8(r.take(len)?).map_err(|_| "key not UTF-8")?;
            let (first, last, stream_version) = (r.u64()?, r.u64()?, r.u64()?);
            if first == 0 || first > last {
                return Err("an idempotency key's positions out of order");
            }
            index.keys.insert(
                Box::from(key),
                Appended {
                    positions: first..=last,
                    stream_version,
                    deduplicated: true,
                },
            );
        }
        if !r.0.is_empty() {
            return Err("trailing bytes");
        }
        Ok(index)
    }
}

/// A cursor that refuses to read past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        if len > self.0.len() {
            return Err("truncated");
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| "truncated")?,
        ))
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "truncated")?,
        ))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "truncated")?,
        ))
    }

    /// A count of items of at least `min_size` bytes each: never more than the
    /// bytes left could hold, so it can size an allocation.
    fn count(&mut self, min_size: usize) -> Result<usize, &'static str> {
        let count = usize::try_from(self.u64()?).map_err(|_| "count too large")?;
        if count > self.0.len() / min_size.max(1) {
            return Err("count larger than the file");
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        let mut index = Index::default();
        index.record(1, 11, Some(("a/1", 1)), None);
        index.record(2, 12, None, None);
        let appended = Appended {
            positions: 3..=4,
            stream_version: 2,
            deduplicated: false,
        };
        index.record(3, 13, Some(("a/1", 2)), Some(("key", appended)));
        index.head = Some([7; 32]);
        index
    }

    #[test]
    fn round_trips() {
        let index = sample();
        let back = Index::decode(&index.encode()).unwrap();
        assert_eq!(back.streams, index.streams);
        assert_eq!(back.covered, 3);
        assert_eq!(back.covered_identity, 13);
        assert_eq!(back.head, Some([7; 32]));
        assert_eq!(back.keys["key"].positions, 3..=4);
        assert!(back.keys["key"].deduplicated);
    }

    /// An index whose checksum matches but whose positions cannot be (written by a
    /// bug, or crafted) is refused, so reads never compute a span from them.
    #[test]
    fn positions_out_of_order_or_beyond_the_covered_record_are_refused() {
        let mut backwards = sample();
        backwards.streams.insert(Arc::from("b"), vec![3, 2]);
        let mut repeated = sample();
        repeated.streams.insert(Arc::from("b"), vec![2, 2]);
        let mut beyond = sample();
        beyond.streams.insert(Arc::from("b"), vec![1, 4]);
        let mut zero = sample();
        zero.streams.insert(Arc::from("b"), vec![0]);
        for (case, index) in [
            ("backwards", backwards),
            ("repeated", repeated),
            ("beyond", beyond),
            ("zero", zero),
        ] {
            assert!(Index::decode(&index.encode()).is_err(), "{case}");
        }
        let mut key = sample();
        #[allow(clippy::reversed_empty_ranges)] // the point: a range no append writes
        let backwards = 4..=3;
        key.keys.get_mut("key").expect("key").positions = backwards;
        assert!(Index::decode(&key.encode()).is_err(), "key range");
    }

    #[test]
    fn every_truncation_and_flip_is_refused() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(Index::decode(&bytes[..len]).is_err(), "prefix of {len}");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(Index::decode(&flipped).is_err(), "flip at {at}");
        }
    }
}
