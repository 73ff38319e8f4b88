//! The snapshot blob: one state's value, framed so that a foreign, stale, truncated
//! or corrupt snapshot is always detected before a byte of it is trusted.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic        8  b"FOLDSNAP"
//! format       1  FORMAT (3; format 2 stored tables as one sequence of rows, read as
//!                  such; format 1 had no record identity and is refused)
//! name_len     2  then `name_len` bytes: State::NAME (UTF-8)
//! version      4  State::VERSION
//! fingerprint  8  State::FINGERPRINT
//! seq          8  last folded seq; 0 = nothing folded yet
//! timestamp    8  the timestamp of the record at `seq` (0 when seq is 0)
//! payload_crc  4  CRC32C of that record's payload (0 when seq is 0)
//! body_len     8  then `body_len` bytes: the state, postcard (a table in chunks of
//!                  rows, see `table::serde_impl`)
//! crc          4  CRC32C of every byte before it
//! ```
//!
//! Invariant: `decode` checks the length and the CRC first, then the identity
//! (name, version, fingerprint), and only then decodes the body. Whether the
//! snapshot belongs to *this* log (its last record, see [`super::identity`]) is
//! checked by the runtime against the log before the snapshot is used.

use super::identity::RecordIdentity;
use crate::table::serde_impl::{reading_rows_layout, sizing};
use crate::{Seq, State};

pub(crate) const MAGIC: &[u8; 8] = b"FOLDSNAP";
const FORMAT: u8 = 3;
/// The format before tables were stored in chunks: still read (bundles are backups).
const FORMAT_ROWS: u8 = 2;
/// The header's bytes besides the name: magic, format, name_len, version, fingerprint,
/// seq, timestamp, payload_crc, body_len.
const HEADER_FIXED: usize = 8 + 1 + 2 + 4 + 8 + 8 + 8 + 4 + 8;

/// Why a snapshot could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes are not a foldkit snapshot, or are cut short.
    #[error("not a foldkit snapshot: {0}")]
    Malformed(&'static str),
    /// The checksum does not match: the bytes were altered.
    #[error(
        "snapshot checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the snapshot is corrupt"
    )]
    Checksum {
        /// The CRC stored in the snapshot.
        stored: u32,
        /// The CRC of the bytes read.
        computed: u32,
    },
    /// The snapshot belongs to another state.
    #[error("snapshot of state `{found}` cannot restore state `{expected}`")]
    Foreign {
        /// The state being restored.
        expected: &'static str,
        /// The state the snapshot was taken of.
        found: String,
    },
    /// The snapshot was written by another definition of the state: replay instead.
    #[error(
        "snapshot of `{state}` is stale: written by version {found_version} (fingerprint {found_fingerprint:#018x}), \
         this build has version {version} (fingerprint {fingerprint:#018x})"
    )]
    Stale {
        /// The state's name.
        state: &'static str,
        /// The version in the snapshot.
        found_version: u32,
        /// The fingerprint in the snapshot.
        found_fingerprint: u64,
        /// This build's version.
        version: u32,
        /// This build's fingerprint.
        fingerprint: u64,
    },
    /// The body does not decode as the state.
    #[error("cannot decode the snapshot body of `{state}`")]
    Decode {
        /// The state's name.
        state: &'static str,
        /// What postcard reported.
        source: postcard::Error,
    },
    /// The state's last folded record is not known (its fold panicked): a
    /// snapshot of it could not be checked against the log, so none is made.
    #[error("cannot snapshot `{state}` at seq {seq}: the record it ends at is unknown")]
    Unidentified {
        /// The state's name.
        state: &'static str,
        /// The state's applied seq.
        seq: Seq,
    },
    /// The state could not be serialized.
    #[error("cannot encode a snapshot of `{state}`")]
    Encode {
        /// The state's name.
        state: &'static str,
        /// What postcard reported.
        source: postcard::Error,
    },
    /// An entry of a [`Bundle`](super::Bundle) is unusable (cut short, or a
    /// blob that fails its checks): `source` says why.
    #[error(
        "bundle entry {index}{} is unusable",
        name.as_ref().map(|n| format!(" (state `{n}`, as its header says)")).unwrap_or_default()
    )]
    BundleEntry {
        /// Its place in the bundle, from 0.
        index: usize,
        /// The state name its header declares, if that much of it is readable.
        name: Option<String>,
        /// What is wrong with it.
        #[source]
        source: Box<SnapshotError>,
    },
}

/// The identity and position a snapshot blob declares, read without decoding its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// `State::NAME` of the state it holds.
    pub name: String,
    /// `State::VERSION` it was written by.
    pub version: u32,
    /// `State::FINGERPRINT` it was written by.
    pub fingerprint: u64,
    /// The last seq folded into it (`None`: nothing was folded).
    pub seq: Option<Seq>,
    /// The identity of the record at `seq` (`None` when nothing was folded).
    pub last: Option<RecordIdentity>,
}

/// Encodes `state`, which has folded every record up to `last` (`None`: none).
///
/// The body is serialized straight into the blob that is returned (and written), sized
/// exactly beforehand by a counting pass: so a snapshot costs one blob of memory beside
/// the state, never a body plus its copy, nor a grown vector's spare half. [`encode_to`]
/// streams it instead, holding no blob at all.
pub fn encode<S: State>(state: &S, last: Option<RecordIdentity>) -> Result<Vec<u8>, SnapshotError> {
    let body_len = body_len(state)?;
    let mut out = header::<S>(last, body_len)?;
    let framed = out.len() + body_len;
    out.reserve_exact(body_len + 4);
    let mut out = postcard::to_extend(state, out).map_err(encode_failed::<S>)?;
    if out.len() != framed {
        // A `Serialize` impl that writes differently on a second pass (not a pure one).
        return Err(encode_failed::<S>(postcard::Error::SerializeBufferFull));
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// How many bytes [`encode_to`] hands `out` at a time (its only buffer).
pub const STREAM_CHUNK: usize = 1 << 20;

/// Why [`encode_to`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeToError {
    /// The state could not be encoded.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The sink refused bytes.
    #[error("cannot write the snapshot")]
    Io(#[from] std::io::Error),
}

/// Encodes `state` as [`encode`] does (the same bytes), writing them to `out` in chunks of
/// at most [`STREAM_CHUNK`] bytes as they are produced: the snapshot's memory is one chunk,
/// whatever the state's size. The checksum is computed over the chunks on the way.
/// Returns the number of bytes written.
pub fn encode_to<S: State>(
    state: &S,
    last: Option<RecordIdentity>,
    out: &mut dyn std::io::Write,
) -> Result<u64, EncodeToError> {
    let body_len = body_len(state)?;
    let head = header::<S>(last, body_len)?;
    let framed = (head.len() + body_len) as u64;
    let mut buf = Vec::with_capacity(STREAM_CHUNK.min(head.len() + body_len));
    buf.extend_from_slice(&head);
    let mut error = None;
    let flavor = Chunked {
        buf,
        out,
        crc: 0,
        written: 0,
        error: &mut error,
    };
    let mut sink = match postcard::serialize_with_flavor(state, flavor) {
        Ok(sink) => sink,
        Err(failed) => {
            return Err(match error {
                Some(io) => EncodeToError::Io(io),
                None => encode_failed::<S>(failed).into(),
            });
        }
    };
    sink.flush()?;
    if sink.written != framed {
        // A `Serialize` impl that writes differently on a second pass (not a pure one).
        return Err(encode_failed::<S>(postcard::Error::SerializeBufferFull).into());
    }
    sink.out.write_all(&sink.crc.to_le_bytes())?;
    Ok(framed + 4)
}

/// The body's exact encoded length (a counting pass: tables count their chunks without
/// encoding them, see `table::serde_impl::sizing`).
fn body_len<S: State>(state: &S) -> Result<usize, SnapshotError> {
    sizing(|| postcard::experimental::serialized_size(state)).map_err(encode_failed::<S>)
}

fn encode_failed<S: State>(source: postcard::Error) -> SnapshotError {
    SnapshotError::Encode {
        state: S::NAME,
        source,
    }
}

/// The bytes before the body: magic through `body_len`.
fn header<S: State>(
    last: Option<RecordIdentity>,
    body_len: usize,
) -> Result<Vec<u8>, SnapshotError> {
    let name = S::NAME.as_bytes();
    let name_len = u16::try_from(name.len())
        .map_err(|_| SnapshotError::Malformed("state name longer than 65535 bytes"))?;
    let mut out = Vec::with_capacity(HEADER_FIXED + name.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&S::VERSION.to_le_bytes());
    out.extend_from_slice(&S::FINGERPRINT.to_le_bytes());
    let (seq, timestamp, crc) = last.map_or((0, 0, 0), |l| (l.seq, l.timestamp, l.payload_crc));
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&(body_len as u64).to_le_bytes());
    Ok(out)
}

/// The postcard flavor of [`encode_to`]: a bounded buffer whose full chunks go to `out`,
/// through the checksum.
struct Chunked<'w, 'e> {
    buf: Vec<u8>,
    out: &'w mut dyn std::io::Write,
    crc: u32,
    written: u64,
    /// The sink's error, kept here: postcard's errors cannot carry it.
    error: &'e mut Option<std::io::Error>,
}

impl Chunked<'_, '_> {
    fn flush(&mut self) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    #[inline]
    fn room(&mut self) -> postcard::Result<()> {
        if self.buf.len() < STREAM_CHUNK {
            return Ok(());
        }
        self.flush().map_err(|error| {
            *self.error = Some(error);
            postcard::Error::SerializeBufferFull
        })
    }
}

impl<'w, 'e> postcard::ser_flavors::Flavor for Chunked<'w, 'e> {
    type Output = Self;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.buf.push(byte);
        self.room()
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        for part in data.chunks(STREAM_CHUNK) {
            self.buf.extend_from_slice(part);
            self.room()?;
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Self> {
        Ok(self)
    }
}

/// Checks a blob's framing and checksum and returns its header and body.
pub fn read_header(bytes: &[u8]) -> Result<(SnapshotHeader, &[u8]), SnapshotError> {
    read_framed(bytes).map(|(_, header, body)| (header, body))
}

/// [`read_header`], and the blob's format.
fn read_framed(bytes: &[u8]) -> Result<(u8, SnapshotHeader, &[u8]), SnapshotError> {
    let (framed, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or(SnapshotError::Malformed("shorter than a snapshot header"))?;
    let mut r = Reader(framed);
    if r.take(8)? != MAGIC {
        return Err(SnapshotError::Malformed("bad magic"));
    }
    let format = r.take(1)?[0];
    match format {
        FORMAT | FORMAT_ROWS => {}
        1 => {
            return Err(SnapshotError::Malformed(
                "format 1 (an older foldkit) does not identify its last record",
            ));
        }
        _ => return Err(SnapshotError::Malformed("unknown snapshot format")),
    }
    let stored = u32::from_le_bytes(*crc);
    let computed = crc32c::crc32c(framed);
    if stored != computed {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    let name_len = u16::from_le_bytes(r.array()?) as usize;
    let name = std::str::from_utf8(r.take(name_len)?)
        .map_err(|_| SnapshotError::Malformed("state name is not UTF-8"))?
        .to_owned();
    let version = u32::from_le_bytes(r.array()?);
    let fingerprint = u64::from_le_bytes(r.array()?);
    let seq = u64::from_le_bytes(r.array()?);
    let timestamp = u64::from_le_bytes(r.array()?);
    let payload_crc = u32::from_le_bytes(r.array()?);
    let body_len = u64::from_le_bytes(r.array()?);
    let body = r.0;
    if body.len() as u64 != body_len {
        return Err(SnapshotError::Malformed(
            "body length does not match the header",
        ));
    }
    let header = SnapshotHeader {
        name,
        version,
        fingerprint,
        seq: (seq != 0).then_some(seq),
        last: (seq != 0).then_some(RecordIdentity {
            seq,
            timestamp,
            payload_crc,
        }),
    };
    Ok((format, header, body))
}

/// The state name a blob's header declares, read without checking anything
/// else: for messages about a blob that fails its checks.
pub(crate) fn declared_name(bytes: &[u8]) -> Option<String> {
    let mut r = Reader(bytes);
    if r.take(8).ok()? != MAGIC {
        return None;
    }
    r.take(1).ok()?;
    let name_len = usize::from(u16::from_le_bytes(r.array().ok()?));
    let name = std::str::from_utf8(r.take(name_len).ok()?).ok()?;
    Some(name.to_owned())
}

/// Decodes a blob written by [`encode`] for the same definition of `S`.
/// Returns the state and the identity of the last record it covers.
pub fn decode<S: State>(bytes: &[u8]) -> Result<(S, Option<RecordIdentity>), SnapshotError> {
    let (format, header, body) = read_framed(bytes)?;
    if header.name != S::NAME {
        return Err(SnapshotError::Foreign {
            expected: S::NAME,
            found: header.name,
        });
    }
    if header.version != S::VERSION || header.fingerprint != S::FINGERPRINT {
        return Err(SnapshotError::Stale {
            state: S::NAME,
            found_version: header.version,
            found_fingerprint: header.fingerprint,
            version: S::VERSION,
            fingerprint: S::FINGERPRINT,
        });
    }
    let decode = || postcard::take_from_bytes::<S>(body);
    let decoded = if format == FORMAT_ROWS {
        reading_rows_layout(decode)
    } else {
        decode()
    };
    match decoded {
        Ok((state, [])) => Ok((state, header.last)),
        Ok(_) => Err(SnapshotError::Decode {
            state: S::NAME,
            source: postcard::Error::DeserializeBadEncoding,
        }),
        Err(source) => Err(SnapshotError::Decode {
            state: S::NAME,
            source,
        }),
    }
}

/// A cursor over a byte slice that fails with `Malformed` instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.0.len() < n {
            return Err(SnapshotError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}
