//! The record envelope of the file store: how one event is laid out in a log
//! record's payload (format 2, one log for every event type).
//!
//! Storage stores opaque bytes; the file store wraps each encoded event in a
//! header that says what it is, so the fold can skip records of other types from
//! the header alone, without decoding their body:
//!
//! ```text
//! offset  size  field
//! 0       1     format      0x02: this layout; any other value is rejected
//! 1       1     flags       bit 0 stream, bit 1 context, bit 2 idempotency key,
//!                           bit 3 chain hash; bits 4..=7 reserved (0)
//! 2       4     version     the event's schema version, u32 little-endian
//! 6       1     name_len    n, 1..=255
//! 7       n     name        the event type's stable name, UTF-8
//! [stream]      2 + m + 8   id length m (u16 LE, >= 1), id (UTF-8), stream version (u64 LE, >= 1)
//! [context]     4 + k       length k (u32 LE), postcard-encoded `EventContext`
//! [key]         2 + j + 4   length j (u16 LE, >= 1), the batch's idempotency key (UTF-8),
//!                           the batch's number of events (u32 LE, >= 1)
//! [hash]        32          BLAKE3 chain hash (see `chain`)
//! ..            ..          body: the event, postcard-encoded with `version`'s schema
//! ```
//!
//! Every length is checked against the bytes there are before it is used, so a
//! damaged payload is a typed [`EnvelopeError`], never a panic or an allocation
//! sized from disk. The idempotency key is written on the first event of a batch.

/// The format byte of the layout described in the module docs.
pub(crate) const FORMAT: u8 = 0x02;
/// The format byte of the previous layout (one log per event type).
pub(crate) const FORMAT_V1: u8 = 0x01;
const FLAG_STREAM: u8 = 1 << 0;
const FLAG_CONTEXT: u8 = 1 << 1;
const FLAG_KEY: u8 = 1 << 2;
const FLAG_HASH: u8 = 1 << 3;
const KNOWN_FLAGS: u8 = FLAG_STREAM | FLAG_CONTEXT | FLAG_KEY | FLAG_HASH;
/// The length of a chain hash.
pub const HASH_LEN: usize = 32;

/// A decoded envelope, borrowing from the record payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope<'a> {
    /// The schema version the body was written with.
    pub version: u32,
    /// The event type's stable name.
    pub name: &'a str,
    /// The stream id and the event's version in it, if appended to a stream.
    pub stream: Option<(&'a str, u64)>,
    /// The postcard-encoded context of the batch, if any.
    pub context: Option<&'a [u8]>,
    /// The batch's idempotency key and number of events (on its first event), if any.
    pub idempotency_key: Option<(&'a str, u32)>,
    /// The chain hash, if the Db keeps a hash chain.
    pub hash: Option<&'a [u8; HASH_LEN]>,
    /// Where the hash starts in the payload (when there is one).
    pub hash_offset: usize,
    /// The postcard-encoded event.
    pub body: &'a [u8],
}

/// A malformed envelope: the record is not an event this runtime can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The payload is shorter than its header says.
    #[error("envelope truncated: {len} bytes, the header needs {needed}")]
    Truncated {
        /// The payload length.
        len: usize,
        /// The length the header requires.
        needed: usize,
    },
    /// The record was written by the previous layout (one log per event type).
    #[error(
        "record written by the previous foldkit layout (envelope format 1); this build reads format {FORMAT}"
    )]
    PreviousFormat,
    /// The format byte is not one this runtime knows.
    #[error("unknown envelope format byte {0:#04x} (this build reads {FORMAT:#04x})")]
    UnknownFormat(u8),
    /// Reserved flag bits are set.
    #[error("unknown envelope flags {0:#010b}")]
    UnknownFlags(u8),
    /// A name, stream id or key is empty, too long, or not UTF-8.
    #[error("invalid {field} in envelope: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A cursor over the payload that checks every length before it is used.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], EnvelopeError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(EnvelopeError::Truncated {
                len: self.bytes.len(),
                needed: self.at.saturating_add(len),
            })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn text(&mut self, len: usize, field: &'static str) -> Result<&'a str, EnvelopeError> {
        if len == 0 {
            return Err(EnvelopeError::Invalid {
                field,
                reason: "empty",
            });
        }
        std::str::from_utf8(self.take(len)?).map_err(|_| EnvelopeError::Invalid {
            field,
            reason: "not UTF-8",
        })
    }
}

impl<'a> Envelope<'a> {
    /// Parses a record payload.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader { bytes, at: 0 };
        let [format, flags] = r.array::<2>()?;
        match format {
            FORMAT => {}
            FORMAT_V1 => return Err(EnvelopeError::PreviousFormat),
            other => return Err(EnvelopeError::UnknownFormat(other)),
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(EnvelopeError::UnknownFlags(flags));
        }
        let version = u32::from_le_bytes(r.array::<4>()?);
        let [name_len] = r.array::<1>()?;
        let name = r.text(usize::from(name_len), "event name")?;
        let stream = if flags & FLAG_STREAM != 0 {
            let len = usize::from(u16::from_le_bytes(r.array::<2>()?));
            let id = r.text(len, "stream id")?;
            let version = u64::from_le_bytes(r.array::<8>()?);
            if version == 0 {
                return Err(EnvelopeError::Invalid {
                    field: "stream version",
                    reason: "0 (the first event of a stream is version 1)",
                });
            }
            Some((id, version))
        } else {
            None
        };
        let context = if flags & FLAG_CONTEXT != 0 {
            let len = u32::from_le_bytes(r.array::<4>()?);
            Some(r.take(usize::try_from(len).unwrap_or(usize::MAX))?)
        } else {
            None
        };
        let idempotency_key = if flags & FLAG_KEY != 0 {
            let len = usize::from(u16::from_le_bytes(r.array::<2>()?));
            let key = r.text(len, "idempotency key")?;
            let count = u32::from_le_bytes(r.array::<4>()?);
            if count == 0 {
                return Err(EnvelopeError::Invalid {
                    field: "batch length",
                    reason: "0",
                });
            }
            Some((key, count))
        } else {
            None
        };
        let hash_offset = r.at;
        let hash = if flags & FLAG_HASH != 0 {
            let bytes = r.take(HASH_LEN)?;
            Some(
                <&[u8; HASH_LEN]>::try_from(bytes).map_err(|_| EnvelopeError::Truncated {
                    len: bytes.len(),
                    needed: HASH_LEN,
                })?,
            )
        } else {
            None
        };
        Ok(Envelope {
            version,
            name,
            stream,
            context,
            idempotency_key,
            hash,
            hash_offset,
            body: &bytes[r.at..],
        })
    }

    /// The event type's name and schema version only: the fast path of a fold
    /// that skips other types.
    pub fn peek_name(bytes: &'a [u8]) -> Option<&'a str> {
        let (&[FORMAT, _, _, _, _, _, len], rest) = bytes.split_first_chunk::<7>()? else {
            return None;
        };
        std::str::from_utf8(rest.get(..usize::from(len))?).ok()
    }
}

/// The header fields of one event to encode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header<'a> {
    pub(crate) version: u32,
    pub(crate) name: &'a str,
    pub(crate) stream: Option<(&'a str, u64)>,
    pub(crate) context: Option<&'a [u8]>,
    pub(crate) idempotency_key: Option<(&'a str, u32)>,
    /// Reserve room for a chain hash (zeroed; filled in under the log's lock).
    pub(crate) hash: bool,
}

impl Header<'_> {
    /// Writes the header then `body` into `buf` (cleared first, its capacity
    /// kept: the writer reuses one buffer per event); returns the offset of the
    /// (zeroed) hash, if any.
    pub(crate) fn encode_into(
        &self,
        body: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<Option<usize>, EnvelopeError> {
        let invalid = |field, reason| EnvelopeError::Invalid { field, reason };
        let name_len = u8::try_from(self.name.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or(invalid("event name", "must be 1 to 255 bytes"))?;
        let mut flags = 0;
        buf.clear();
        buf.reserve(16 + self.name.len() + body.len());
        buf.extend_from_slice(&[FORMAT, 0]);
        buf.extend_from_slice(&self.version.to_le_bytes());
        buf.push(name_len);
        buf.extend_from_slice(self.name.as_bytes());
        if let Some((id, version)) = self.stream {
            let len = u16::try_from(id.len())
                .ok()
                .filter(|&n| n > 0)
                .ok_or(invalid("stream id", "must be 1 to 65535 bytes"))?;
            flags |= FLAG_STREAM;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(id.as_bytes());
            buf.extend_from_slice(&version.to_le_bytes());
        }
        if let Some(context) = self.context {
            let len = u32::try_from(context.len()).map_err(|_| invalid("context", "too long"))?;
            flags |= FLAG_CONTEXT;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(context);
        }
        if let Some((key, count)) = self.idempotency_key {
            let len = u16::try_from(key.len())
                .ok()
                .filter(|&n| n > 0)
                .ok_or(invalid("idempotency key", "must be 1 to 65535 bytes"))?;
            flags |= FLAG_KEY;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(&count.to_le_bytes());
        }
        let hash_at = self.hash.then(|| {
            flags |= FLAG_HASH;
            let at = buf.len();
            buf.extend_from_slice(&[0; HASH_LEN]);
            at
        });
        buf[1] = flags;
        buf.extend_from_slice(body);
        Ok(hash_at)
    }

    /// [`encode_into`](Self::encode_into) a new buffer.
    #[cfg(test)]
    pub(crate) fn encode(&self, body: &[u8]) -> Result<(Vec<u8>, Option<usize>), EnvelopeError> {
        let mut buf = Vec::new();
        let hash_at = self.encode_into(body, &mut buf)?;
        Ok((buf, hash_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(
        stream: Option<(&'a str, u64)>,
        key: Option<(&'a str, u32)>,
        hash: bool,
    ) -> Header<'a> {
        Header {
            version: 3,
            name: "OrderEvent",
            stream,
            context: Some(b"ctx"),
            idempotency_key: key,
            hash,
        }
    }

    #[test]
    fn round_trips_every_optional_field() {
        for stream in [None, Some(("order/7", 2))] {
            for key in [None, Some(("k-1", 2))] {
                for hash in [false, true] {
                    let (bytes, hash_at) = header(stream, key, hash).encode(b"body").unwrap();
                    let env = Envelope::decode(&bytes).unwrap();
                    assert_eq!(env.name, "OrderEvent");
                    assert_eq!(env.version, 3);
                    assert_eq!(env.stream, stream);
                    assert_eq!(env.context, Some(&b"ctx"[..]));
                    assert_eq!(env.idempotency_key, key);
                    assert_eq!(env.hash.is_some(), hash);
                    assert_eq!(hash_at.is_some(), hash);
                    if let Some(at) = hash_at {
                        assert_eq!(at, env.hash_offset);
                    }
                    assert_eq!(env.body, b"body");
                    assert_eq!(Envelope::peek_name(&bytes), Some("OrderEvent"));
                }
            }
        }
    }

    #[test]
    fn layout_matches_the_documentation() {
        let plain = Header {
            version: 2,
            name: "E",
            stream: None,
            context: None,
            idempotency_key: None,
            hash: false,
        };
        assert_eq!(
            plain.encode(&[9]).unwrap().0,
            [2, 0, 2, 0, 0, 0, 1, b'E', 9]
        );
        let streamed = Header {
            stream: Some(("ab", 1)),
            ..plain
        };
        assert_eq!(
            streamed.encode(&[]).unwrap().0,
            [
                2, 1, 2, 0, 0, 0, 1, b'E', 2, 0, b'a', b'b', 1, 0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (bytes, _) = header(Some(("s", 1)), Some(("k", 1)), true)
            .encode(&[])
            .unwrap();
        for len in 0..bytes.len() {
            assert!(
                Envelope::decode(&bytes[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn rejects_old_and_unknown_formats_and_flags() {
        assert_eq!(
            Envelope::decode(&[1, 0, 1, 0, 0, 0]),
            Err(EnvelopeError::PreviousFormat)
        );
        assert_eq!(
            Envelope::decode(&[7, 0, 1, 0, 0, 0, 1, b'E']),
            Err(EnvelopeError::UnknownFormat(7))
        );
        assert_eq!(
            Envelope::decode(&[2, 0b1_0000, 1, 0, 0, 0, 1, b'E']),
            Err(EnvelopeError::UnknownFlags(0b1_0000))
        );
        assert!(matches!(
            Envelope::decode(&[2, 0, 1, 0, 0, 0, 0]),
            Err(EnvelopeError::Invalid { .. })
        ));
        assert!(matches!(
            Envelope::decode(&[2, 0, 1, 0, 0, 0, 1, 0xff]),
            Err(EnvelopeError::Invalid { .. })
        ));
        let huge_context = [2, FLAG_CONTEXT, 1, 0, 0, 0, 1, b'E', 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Envelope::decode(&huge_context),
            Err(EnvelopeError::Truncated { .. })
        ));
    }
}
