//! The persisted form of a process manager: its dead letters and state, one
//! snapshot whose store position is the checkpoint.
//!
//! Layout (format 3; integers little-endian):
//!
//! ```text
//! magic      8  b"FOLDPMGR"
//! format     1  FORMAT (3; format 2 stored a table in the state as one sequence of
//!                rows, read as such)
//! name_len   2  then `name_len` bytes: ProcessManager::NAME (UTF-8)
//! dead_len   8  then `dead_len` bytes: the dead letters (postcard `Vec<DeadLetter>`)
//! state_len  8  then `state_len` bytes: the state (postcard `P::State`)
//! crc        4  CRC32C of every byte before it
//! ```
//!
//! Why this order and framing: the dead letters are the runtime's own type
//! and come first, each part with its length, so a tool that knows none of the
//! service's types (the `foldkit` command line tool) reads them, and skips the
//! state; the CRC makes a damaged snapshot an error, never a wrong state.
//!
//! Format 1 (the bare postcard of `(1, state, dead letters)`, with no checksum
//! and no name) was only ever written by unreleased development builds; it is
//! not read: such bytes are malformed like any others without the magic, so a
//! damaged or foreign blob never loads as a wrong state.
//!
//! Invariant: nothing read here sizes an allocation or indexes a slice before
//! it was checked against the bytes that remain (and the CRC checked first).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dead::DeadLetter;
use crate::table::serde_impl::reading_rows_layout;

/// The store name of a manager's snapshots is this followed by its `NAME`.
pub(crate) const SNAPSHOT_PREFIX: &str = "process-manager.";

const MAGIC: &[u8; 8] = b"FOLDPMGR";
/// The format this build writes (and the only one it reads).
pub(crate) const FORMAT: u8 = 3;
/// The format before tables were stored in chunks, still read.
const FORMAT_ROWS: u8 = 2;

/// Why a process manager snapshot cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// Not a process manager snapshot, or cut short.
    #[error("not a process manager snapshot: {0}")]
    Malformed(&'static str),
    /// The checksum does not match: the bytes were altered.
    #[error(
        "process manager snapshot checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the snapshot is corrupt"
    )]
    Checksum {
        /// The CRC stored.
        stored: u32,
        /// The CRC of the bytes read.
        computed: u32,
    },
    /// A format this build does not read.
    #[error(
        "process manager snapshot format {0}; this build reads formats {FORMAT_ROWS} and {FORMAT}"
    )]
    Format(u8),
    /// The snapshot of another manager.
    #[error("snapshot of process manager `{found}` cannot restore `{expected}`")]
    Foreign {
        /// The manager being restored.
        expected: String,
        /// The manager it was written by.
        found: String,
    },
    /// A part does not encode (a state serde cannot write, a name too long).
    #[error("the {part} of the process manager snapshot does not encode: {reason}")]
    Encode {
        /// "name", "dead letters" or "state".
        part: &'static str,
        /// Why.
        reason: String,
    },
    /// A part does not decode.
    #[error("the {part} of the process manager snapshot does not decode: {reason}")]
    Decode {
        /// "dead letters" or "state".
        part: &'static str,
        /// What postcard reported.
        reason: String,
    },
}

/// A snapshot read without the manager's state type.
#[derive(Debug, Clone)]
pub(crate) struct Parts<'a> {
    /// The snapshot's format: [`FORMAT`] or the older `FORMAT_ROWS`.
    pub(crate) format: u8,
    pub(crate) name: String,
    pub(crate) dead: Vec<DeadLetter>,
    pub(crate) state: &'a [u8],
}

/// Encodes a manager's dead letters and state.
pub(crate) fn encode<S: Serialize>(
    name: &str,
    dead: &[DeadLetter],
    state: &S,
) -> Result<Vec<u8>, PersistError> {
    let encode_error = |part| {
        move |e: postcard::Error| PersistError::Encode {
            part,
            reason: e.to_string(),
        }
    };
    let dead = postcard::to_allocvec(dead).map_err(encode_error("dead letters"))?;
    let state = postcard::to_allocvec(state).map_err(encode_error("state"))?;
    let name = name.as_bytes();
    let name_len = u16::try_from(name.len()).map_err(|_| PersistError::Encode {
        part: "name",
        reason: "longer than 65535 bytes".into(),
    })?;
    let mut out = Vec::with_capacity(31 + name.len() + dead.len() + state.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&(dead.len() as u64).to_le_bytes());
    out.extend_from_slice(&dead);
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(&state);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Reads the framing and the dead letters (not the state) of a snapshot.
pub(crate) fn parts(bytes: &[u8]) -> Result<Parts<'_>, PersistError> {
    if !bytes.starts_with(MAGIC) {
        return Err(PersistError::Malformed("no FOLDPMGR magic"));
    }
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or(PersistError::Malformed("shorter than its checksum"))?;
    let stored = u32::from_le_bytes(*crc);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(PersistError::Checksum { stored, computed });
    }
    let mut rest = body.get(MAGIC.len()..).ok_or(PersistError::Malformed(
        "shorter than its magic and checksum",
    ))?;
    let format = *take(&mut rest, 1)?
        .first()
        .ok_or(PersistError::Malformed("no format byte"))?;
    if format != FORMAT && format != FORMAT_ROWS {
        return Err(PersistError::Format(format));
    }
    let name_len = u16::from_le_bytes(array(take(&mut rest, 2)?)?);
    let name = std::str::from_utf8(take(&mut rest, usize::from(name_len))?)
        .map_err(|_| PersistError::Malformed("the name is not UTF-8"))?
        .to_owned();
    let dead_bytes = sized(&mut rest)?;
    let state = sized(&mut rest)?;
    if !rest.is_empty() {
        return Err(PersistError::Malformed("bytes after the state"));
    }
    let dead = whole(dead_bytes, "dead letters")?;
    Ok(Parts {
        format,
        name,
        dead,
        state,
    })
}

/// Decodes a snapshot of manager `name`.
pub(crate) fn decode<S: DeserializeOwned>(
    name: &str,
    bytes: &[u8],
) -> Result<(S, Vec<DeadLetter>), PersistError> {
    let parts = parts(bytes)?;
    if parts.name != name {
        return Err(PersistError::Foreign {
            expected: name.to_owned(),
            found: parts.name,
        });
    }
    let decode = || whole(parts.state, "state");
    let state = if parts.format == FORMAT_ROWS {
        reading_rows_layout(decode)?
    } else {
        decode()?
    };
    Ok((state, parts.dead))
}

/// Decodes `part` from all of `bytes`: bytes left over mean the part is not
/// what was written (postcard's `from_bytes` would ignore them).
fn whole<T: DeserializeOwned>(bytes: &[u8], part: &'static str) -> Result<T, PersistError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| PersistError::Decode {
        part,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(PersistError::Decode {
            part,
            reason: format!("{} byte(s) left over after it", rest.len()),
        });
    }
    Ok(value)
}

/// Takes `n` bytes off the front of `rest`, or fails if fewer remain.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], PersistError> {
    let (head, tail) = rest
        .split_at_checked(n)
        .ok_or(PersistError::Malformed("cut short"))?;
    *rest = tail;
    Ok(head)
}

/// A part prefixed by its length (u64 LE), checked against what remains.
fn sized<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], PersistError> {
    let len = u64::from_le_bytes(array(take(rest, 8)?)?);
    let len = usize::try_from(len).map_err(|_| PersistError::Malformed("a part too long"))?;
    take(rest, len)
}

fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], PersistError> {
    bytes
        .try_into()
        .map_err(|_| PersistError::Malformed("cut short"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::dead::DeadLetterId;
    use crate::process::reaction::{Kind, Reaction};

    fn letter() -> DeadLetter {
        DeadLetter {
            id: DeadLetterId {
                process_manager: "pm".into(),
                causation: 7,
                index: 1,
            },
            reaction: Reaction {
                kind: Kind::Command {
                    aggregate: "gate".into(),
                    id: "1".into(),
                    command: vec![1, 2],
                },
                correlation_id: None,
            },
            correlation_id: "c".into(),
            error: "the gate is closed".into(),
            attempts: 3,
            parked_at: 1_000,
        }
    }

    #[test]
    fn round_trips_and_reads_the_dead_letters_without_the_state_type() {
        let bytes = encode("pm", &[letter()], &(42u64, "state".to_owned())).unwrap();
        let parts = parts(&bytes).unwrap();
        assert_eq!(parts.name, "pm");
        assert_eq!(parts.dead, [letter()]);
        let (state, dead): ((u64, String), _) = decode("pm", &bytes).unwrap();
        assert_eq!(state, (42, "state".to_owned()));
        assert_eq!(dead, [letter()]);
        assert!(matches!(
            decode::<(u64, String)>("other", &bytes),
            Err(PersistError::Foreign { .. })
        ));
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_an_error() {
        let bytes = encode("pm", &[letter()], &5u32).unwrap();
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x20;
            assert!(parts(&flipped).is_err(), "flip at {i}");
            assert!(parts(&bytes[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn bytes_in_the_unreleased_format_1_are_malformed_never_a_state() {
        #[derive(serde::Serialize)]
        struct Old<'a> {
            format: u32,
            state: &'a u64,
            dead: &'a [DeadLetter],
        }
        let old = postcard::to_allocvec(&Old {
            format: 1,
            state: &9,
            dead: &[letter()],
        })
        .unwrap();
        assert_eq!(
            parts(&old).unwrap_err(),
            PersistError::Malformed("no FOLDPMGR magic")
        );
        assert_eq!(
            decode::<u64>("pm", &old).unwrap_err(),
            PersistError::Malformed("no FOLDPMGR magic")
        );
        // Any blob starting with postcard's `1` (what told format 1 apart).
        assert!(decode::<u8>("pm", &[1, 7, 0]).is_err());
    }

    /// Re-frames `dead` and `state` as they are, with a valid CRC: what a
    /// writer that encoded something else (or a forger) would leave.
    fn framed(name: &str, dead: &[u8], state: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(FORMAT);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(dead.len() as u64).to_le_bytes());
        out.extend_from_slice(dead);
        out.extend_from_slice(&(state.len() as u64).to_le_bytes());
        out.extend_from_slice(state);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// A snapshot of format 2 (before tables were stored in chunks) is still read; its
    /// state is decoded with tables as one sequence of rows.
    #[test]
    fn a_format_2_snapshot_is_still_read() {
        let dead = postcard::to_allocvec(&vec![letter()]).unwrap();
        let state = postcard::to_allocvec(&(7u64, "s".to_owned())).unwrap();
        let mut old = framed("pm", &dead, &state);
        old[MAGIC.len()] = FORMAT_ROWS;
        let body = old.len() - 4;
        let crc = crc32c::crc32c(&old[..body]);
        old[body..].copy_from_slice(&crc.to_le_bytes());
        let (state, dead): ((u64, String), _) = decode("pm", &old).unwrap();
        assert_eq!(state, (7, "s".to_owned()));
        assert_eq!(dead, [letter()]);
        old[MAGIC.len()] = 4;
        let crc = crc32c::crc32c(&old[..body]);
        old[body..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parts(&old).unwrap_err(), PersistError::Format(4));
    }

    #[test]
    fn a_part_with_bytes_left_over_is_an_error_not_a_shorter_value() {
        let dead = postcard::to_allocvec(&vec![letter()]).unwrap();
        // A u64 state followed by a stray byte: postcard alone would read 5.
        let mut state = postcard::to_allocvec(&5u64).unwrap();
        state.push(0x2a);
        let error = decode::<u64>("pm", &framed("pm", &dead, &state)).unwrap_err();
        assert!(
            matches!(&error, PersistError::Decode { part: "state", reason } if reason.contains("left over")),
            "{error:?}"
        );
        let mut long_dead = dead.clone();
        long_dead.push(0);
        let state = postcard::to_allocvec(&5u64).unwrap();
        let error = parts(&framed("pm", &long_dead, &state)).unwrap_err();
        assert!(
            matches!(
                &error,
                PersistError::Decode {
                    part: "dead letters",
                    ..
                }
            ),
            "{error:?}"
        );
        let (value, letters) = decode::<u64>("pm", &framed("pm", &dead, &state)).unwrap();
        assert_eq!((value, letters), (5, vec![letter()]));
    }

    #[test]
    fn a_blob_of_the_magic_alone_or_less_is_malformed() {
        for len in 0..=MAGIC.len() + 4 {
            let bytes = &encode("pm", &[], &0u8).unwrap()[..len];
            assert!(parts(bytes).is_err(), "{len} bytes");
        }
        // The magic and a CRC of it: the body is the magic, nothing after.
        let mut bytes = MAGIC.to_vec();
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(parts(&bytes), Err(PersistError::Malformed(_))));
    }
}
