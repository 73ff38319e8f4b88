//! The record envelope: how an event is laid out in a log record's payload.
//!
//! Storage stores opaque bytes; the runtime wraps each encoded event in a small
//! header so a record says which schema version wrote it (for upcasting) and,
//! optionally, which stream (aggregate instance) it belongs to:
//!
//! ```text
//! offset  size  field
//! 0       1     format     0x01: this layout; any other value is rejected
//! 1       1     flags      bit 0: a stream id follows; bits 1..=7 reserved (0)
//! 2       4     version    the event's schema version, u32 little-endian
//! [6      2     id_len     stream id length n, u16 little-endian, 1..=65535]
//! [8      n     stream_id  UTF-8]
//! ..      ..    body       the event, postcard-encoded with `version`'s schema
//! ```
//!
//! The format byte and the reserved flag bits leave room to evolve the header
//! without guessing: a reader meeting an unknown format or flag fails with a
//! typed error instead of misreading the body.

use crate::event::Event;

/// The format byte of the layout described in the module docs.
const FORMAT_V1: u8 = 0x01;
const FLAG_STREAM_ID: u8 = 0b0000_0001;
const FIXED_LEN: usize = 6;

/// A decoded envelope, borrowing from the record payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope<'a> {
    /// The schema version the body was written with.
    pub version: u32,
    /// The stream the event belongs to, if it was appended to one.
    pub stream_id: Option<&'a str>,
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
    /// The format byte is not one this runtime knows.
    #[error("unknown envelope format byte {0:#04x} (this build reads {FORMAT_V1:#04x})")]
    UnknownFormat(u8),
    /// Reserved flag bits are set.
    #[error("unknown envelope flags {0:#010b}")]
    UnknownFlags(u8),
    /// The stream id flag is set with a zero-length id.
    #[error("empty stream id")]
    EmptyStreamId,
    /// The stream id is not UTF-8.
    #[error("stream id is not UTF-8")]
    StreamIdNotUtf8,
    /// A stream id longer than the layout can hold.
    #[error("stream id is {0} bytes long, the limit is {max}", max = u16::MAX)]
    StreamIdTooLong(usize),
}

impl<'a> Envelope<'a> {
    /// Parses a record payload.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let truncated = |needed| EnvelopeError::Truncated {
            len: bytes.len(),
            needed,
        };
        let Some((&[format, flags, v0, v1, v2, v3], rest)) = bytes.split_first_chunk::<FIXED_LEN>()
        else {
            return Err(truncated(FIXED_LEN));
        };
        if format != FORMAT_V1 {
            return Err(EnvelopeError::UnknownFormat(format));
        }
        if flags & !FLAG_STREAM_ID != 0 {
            return Err(EnvelopeError::UnknownFlags(flags));
        }
        let version = u32::from_le_bytes([v0, v1, v2, v3]);
        if flags & FLAG_STREAM_ID == 0 {
            return Ok(Envelope {
                version,
                stream_id: None,
                body: rest,
            });
        }
        let (&len, rest) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| truncated(FIXED_LEN + 2))?;
        let len = usize::from(u16::from_le_bytes(len));
        if len == 0 {
            return Err(EnvelopeError::EmptyStreamId);
        }
        if rest.len() < len {
            return Err(truncated(FIXED_LEN + 2 + len));
        }
        let (id, body) = rest.split_at(len);
        let id = std::str::from_utf8(id).map_err(|_| EnvelopeError::StreamIdNotUtf8)?;
        Ok(Envelope {
            version,
            stream_id: Some(id),
            body,
        })
    }

    /// Writes the header for a body of schema `version`, then nothing else: the
    /// caller appends the body.
    pub fn write_header(
        buf: &mut Vec<u8>,
        version: u32,
        stream_id: Option<&str>,
    ) -> Result<(), EnvelopeError> {
        match stream_id {
            None => {
                buf.extend_from_slice(&[FORMAT_V1, 0]);
                buf.extend_from_slice(&version.to_le_bytes());
            }
            Some("") => return Err(EnvelopeError::EmptyStreamId),
            Some(id) => {
                let len = u16::try_from(id.len())
                    .map_err(|_| EnvelopeError::StreamIdTooLong(id.len()))?;
                buf.extend_from_slice(&[FORMAT_V1, FLAG_STREAM_ID]);
                buf.extend_from_slice(&version.to_le_bytes());
                buf.extend_from_slice(&len.to_le_bytes());
                buf.extend_from_slice(id.as_bytes());
            }
        }
        Ok(())
    }
}

/// Encodes `event` in an envelope, ready to append.
pub(crate) fn encode_event<E: Event>(
    event: &E,
    stream_id: Option<&str>,
) -> Result<Vec<u8>, crate::db::DbError> {
    let mut buf = Vec::with_capacity(64);
    Envelope::write_header(&mut buf, E::VERSION, stream_id).map_err(|source| {
        crate::db::DbError::Envelope {
            event: E::NAME,
            source,
        }
    })?;
    event.encode_into(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(version: u32, stream_id: Option<&str>, body: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        Envelope::write_header(&mut buf, version, stream_id).expect("valid header");
        buf.extend_from_slice(body);
        buf
    }

    #[test]
    fn round_trips_with_and_without_stream_id() {
        for stream_id in [None, Some("order-7"), Some("ü")] {
            let bytes = encoded(3, stream_id, b"body");
            let env = Envelope::decode(&bytes).expect("decodes");
            assert_eq!(
                env,
                Envelope {
                    version: 3,
                    stream_id,
                    body: b"body"
                }
            );
        }
    }

    #[test]
    fn layout_matches_the_documentation() {
        assert_eq!(encoded(2, None, &[9]), [1, 0, 2, 0, 0, 0, 9]);
        assert_eq!(
            encoded(1, Some("ab"), &[]),
            [1, 1, 1, 0, 0, 0, 2, 0, b'a', b'b']
        );
    }

    #[test]
    fn every_truncation_of_a_header_is_an_error() {
        let bytes = encoded(1, Some("stream"), &[]);
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    Envelope::decode(&bytes[..len]),
                    Err(EnvelopeError::Truncated { .. })
                ),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn rejects_unknown_format_flags_and_bad_ids() {
        assert_eq!(
            Envelope::decode(&[2, 0, 1, 0, 0, 0]),
            Err(EnvelopeError::UnknownFormat(2))
        );
        assert_eq!(
            Envelope::decode(&[1, 0b10, 1, 0, 0, 0]),
            Err(EnvelopeError::UnknownFlags(0b10))
        );
        assert_eq!(
            Envelope::decode(&[1, 1, 1, 0, 0, 0, 0, 0]),
            Err(EnvelopeError::EmptyStreamId)
        );
        assert_eq!(
            Envelope::decode(&[1, 1, 1, 0, 0, 0, 1, 0, 0xff]),
            Err(EnvelopeError::StreamIdNotUtf8)
        );
        let long = "x".repeat(usize::from(u16::MAX) + 1);
        assert_eq!(
            Envelope::write_header(&mut Vec::new(), 1, Some(&long)),
            Err(EnvelopeError::StreamIdTooLong(long.len()))
        );
        assert_eq!(
            Envelope::write_header(&mut Vec::new(), 1, Some("")),
            Err(EnvelopeError::EmptyStreamId)
        );
    }
}
