//! The record frame: how one record is laid out in a segment.
//!
//! ```text
//! offset size field
//! 0      4    len        payload length, u32 LE, >= 1
//! 4      4    crc        CRC32C of bytes 8..32+len, seeded with `len`
//! 8      8    seq        u64 LE
//! 16     8    timestamp  ms since the UNIX epoch, u64 LE
//! 24     4    flags      bit 0: BATCH_CONTINUES (another record of the same batch follows)
//! 28     4    reserved   0
//! 32     len  payload
//! ```
//!
//! Invariant: a frame is valid only if its length is within bounds, its reserved
//! bits are zero and its CRC matches. Zero-filled bytes never validate (length 0
//! is invalid), and the reader also requires `seq` to be the expected next one, so
//! stale bytes of an older record never parse as a newer one.

/// The size of a frame header.
pub(crate) const HEADER_LEN: usize = 32;
/// The largest payload a frame may carry, whatever the log's configured
/// `max_record_size`: that limit is checked on append only. A record already
/// stored passed it when it was written (and carries its checksum), so reads and
/// recovery accept any length up to this cap: reopening a log with a lower limit
/// must neither fail nor cut acknowledged records as a torn tail.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;
/// Set on every record of a batch but the last.
pub(crate) const BATCH_CONTINUES: u32 = 1;
const KNOWN_FLAGS: u32 = BATCH_CONTINUES;

/// A frame's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: u32,
    pub(crate) seq: u64,
    pub(crate) timestamp: u64,
    pub(crate) flags: u32,
}

/// Appends the frame of one record to `out`, then its CRC, computed from the
/// field values and the caller's payload rather than read back from the bytes
/// just written: reading those back waited on the stores still in flight
/// (measured ~5 ns more per 64-byte append). Computing the CRC before the copy
/// measured slower too: the copy then waits on the CRC.
#[inline]
pub(crate) fn encode(out: &mut Vec<u8>, seq: u64, timestamp: u64, flags: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut head = [0u8; HEADER_LEN];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[8..16].copy_from_slice(&seq.to_le_bytes());
    head[16..24].copy_from_slice(&timestamp.to_le_bytes());
    head[24..28].copy_from_slice(&flags.to_le_bytes());
    let start = out.len();
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let crc = fields_crc(len, seq, timestamp, flags, payload);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The CRC of the frame with these header fields (the reserved word is zero)
/// and payload: the same as [`frame_crc`] of the encoded frame.
#[inline]
fn fields_crc(len: u32, seq: u64, timestamp: u64, flags: u32, payload: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `sse_fields_crc` needs SSE 4.2 and nothing else; the CPU was
        // just checked to have it (the check is a cached load after the first call).
        #[allow(unsafe_code)]
        return unsafe { sse_fields_crc(len, seq, timestamp, flags, payload) };
    }
    portable_fields_crc(len, seq, timestamp, flags, payload)
}

/// [`fields_crc`] with the `crc32c` crate only.
fn portable_fields_crc(len: u32, seq: u64, timestamp: u64, flags: u32, payload: &[u8]) -> u32 {
    let mut fields = [0u8; HEADER_LEN - 8];
    fields[..8].copy_from_slice(&seq.to_le_bytes());
    fields[8..16].copy_from_slice(&timestamp.to_le_bytes());
    fields[16..20].copy_from_slice(&flags.to_le_bytes());
    crc32c::crc32c_append(checksum(len, &fields), payload)
}

/// [`fields_crc`] with the SSE 4.2 instruction: the length and the header
/// fields go in from registers, one step each (`flags` widened to 64 bits is
/// bytes 24..32: flags, then the zero reserved word); then the payload, word
/// by word when short, else through the `crc32c` crate.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn sse_fields_crc(len: u32, seq: u64, timestamp: u64, flags: u32, payload: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64};
    let mut state = u64::from(_mm_crc32_u32(!0, len));
    state = _mm_crc32_u64(state, seq);
    state = _mm_crc32_u64(state, timestamp);
    state = _mm_crc32_u64(state, u64::from(flags));
    if payload.len() < SHORT_CRC {
        !short_raw(state as u32, payload)
    } else {
        crc32c::crc32c_append(!(state as u32), payload)
    }
}

/// The CRC a frame stores: CRC32C of `len` (bytes 0..4), the header fields
/// after the CRC (8..32) and the payload (for checking a frame as read).
#[inline]
fn frame_crc(head: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    #[cfg(target_arch = "x86_64")]
    if payload.len() < SHORT_CRC && std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `short_frame_crc` needs SSE 4.2 and nothing else; the CPU was
        // just checked to have it (the check is a cached load after the first call).
        #[allow(unsafe_code)]
        return unsafe { short_frame_crc(len, &head[8..], payload) };
    }
    crc32c::crc32c_append(checksum(len, &head[8..]), payload)
}

/// The frame checksum: CRC32C of the length (LE) followed by `covered`, with
/// the `crc32c` crate (the slow paths: long payloads, no SSE 4.2).
#[inline]
fn checksum(len: u32, covered: &[u8]) -> u32 {
    crc32c::crc32c_append(len_crc(len), covered)
}

/// Inputs below this go through the SSE 4.2 instruction directly where it is
/// available: the `crc32c` crate processes them one word at a time too (its 3-way parallel
/// loop starts at 768 bytes), but with ~100 instructions of set-up per call,
/// a third of the cost of a 64-byte append.
const SHORT_CRC: usize = 768;

/// [`frame_crc`] with the SSE 4.2 instruction, in one call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn short_frame_crc(len: u32, fields: &[u8], payload: &[u8]) -> u32 {
    let state = short_raw(std::arch::x86_64::_mm_crc32_u32(!0, len), fields);
    !short_raw(state, payload)
}

/// The CRC32C register after `bytes`, one 8-byte word at a time (no final xor).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
fn short_raw(state: u32, bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
    let mut wide = u64::from(state);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        wide = _mm_crc32_u64(wide, u64::from_le_bytes(le));
    }
    let mut crc = wide as u32;
    for &byte in words.remainder() {
        crc = _mm_crc32_u8(crc, byte);
    }
    crc
}

/// CRC32C of `bytes` continuing from `crc`: the same value as
/// `crc32c::crc32c_append(crc, bytes)`, without that crate's per-call set-up for
/// short inputs where the CPU has SSE 4.2. For checksums of short records kept
/// beside the log (the runtime's record identities).
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() < SHORT_CRC && std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `short_crc_append` needs SSE 4.2 and nothing else; the CPU was
        // just checked to have it (the check is a cached load after the first call).
        #[allow(unsafe_code)]
        return unsafe { short_crc_append(crc, bytes) };
    }
    crc32c::crc32c_append(crc, bytes)
}

/// [`crc32c_append`] with the SSE 4.2 instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn short_crc_append(crc: u32, bytes: &[u8]) -> u32 {
    !short_raw(!crc, bytes)
}

/// CRC32C of a little-endian `u32`, the same as `crc32c(&len.to_le_bytes())`.
#[inline]
fn len_crc(len: u32) -> u32 {
    let mut crc = !0u32;
    for byte in len.to_le_bytes() {
        crc = CRC_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The byte-at-a-time CRC32C (Castagnoli, reflected) table.
static CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Fewer bytes than the header or the declared payload need.
    Short,
    /// The bytes are there but do not form a valid frame.
    Bad(&'static str),
}

/// Parses the frame at the start of `bytes`, whose payload may be at most `max_len`.
/// Returns the header and the payload.
pub(crate) fn decode(bytes: &[u8], max_len: usize) -> Result<(Header, &[u8]), Invalid> {
    let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(Invalid::Short);
    };
    let header = parse_header(head, max_len)?;
    let end = HEADER_LEN + header.len as usize;
    let Some(frame) = bytes.get(..end) else {
        return Err(Invalid::Short);
    };
    verify(head, &frame[HEADER_LEN..], header)?;
    Ok((header, &frame[HEADER_LEN..]))
}

/// Checks the header's own fields (not the CRC, which needs the payload).
pub(crate) fn parse_header(head: &[u8; HEADER_LEN], max_len: usize) -> Result<Header, Invalid> {
    let word = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let dword = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap_or([0; 8]));
    let header = Header {
        len: word(0),
        seq: dword(8),
        timestamp: dword(16),
        flags: word(24),
    };
    if header.len == 0 {
        return Err(Invalid::Bad("zero length"));
    }
    if header.len as usize > max_len {
        return Err(Invalid::Bad("length beyond the record size limit"));
    }
    if header.flags & !KNOWN_FLAGS != 0 || word(28) != 0 {
        return Err(Invalid::Bad("unknown flag or reserved bits set"));
    }
    Ok(header)
}

/// Checks the CRC of a header and its payload.
pub(crate) fn verify(
    head: &[u8; HEADER_LEN],
    payload: &[u8],
    header: Header,
) -> Result<(), Invalid> {
    let stored = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    debug_assert_eq!(header.len as usize, payload.len());
    if stored != frame_crc(head, payload) {
        return Err(Invalid::Bad("checksum mismatch"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_crc_table_matches_crc32c() {
        for len in [0u32, 1, 5, 64, 255, 256, 1024, 65_535, 1 << 24, u32::MAX] {
            assert_eq!(len_crc(len), crc32c::crc32c(&len.to_le_bytes()), "{len}");
        }
    }

    #[test]
    fn the_short_crc_append_matches_crc32c() {
        let bytes: Vec<u8> = (0..2000u32).map(|i| (i * 37 % 253) as u8).collect();
        for start in 0..9 {
            for len in (0..100).chain([255, 767, 768, 769, 1500]) {
                let chunk = &bytes[start..start + len];
                for init in [0, 0x1234_5678, u32::MAX] {
                    assert_eq!(
                        crc32c_append(init, chunk),
                        crc32c::crc32c_append(init, chunk),
                        "start {start}, len {len}, init {init:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_frame_crc_matches_crc32c() {
        let bytes: Vec<u8> = (0..2000u32).map(|i| (i * 31 % 251) as u8).collect();
        for start in 0..9 {
            for len in (1..100).chain([255, 256, 767, 768, 769, 1500]) {
                let payload = &bytes[start..start + len];
                let mut head = [0u8; HEADER_LEN];
                head[..4].copy_from_slice(&(len as u32).to_le_bytes());
                head[8..].copy_from_slice(&bytes[100 + start..124 + start]);
                let mut covered = head[8..].to_vec();
                covered.extend_from_slice(payload);
                let expected = crc32c::crc32c_append(crc32c::crc32c(&head[..4]), &covered);
                assert_eq!(
                    frame_crc(&head, payload),
                    expected,
                    "start {start} len {len}"
                );
            }
        }
    }

    #[test]
    fn the_checksum_matches_crc32c() {
        let bytes: Vec<u8> = (0..2000u32).map(|i| (i * 37 % 253) as u8).collect();
        for len in [1u32, 64, 1024, u32::MAX] {
            for covered in [0usize, 1, 7, 24, 88, 767, 768, 1500] {
                let slice = &bytes[3..3 + covered];
                let expected = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), slice);
                assert_eq!(checksum(len, slice), expected, "{len} {covered}");
            }
        }
    }

    #[test]
    fn the_crc_from_fields_matches_the_crc_of_the_frame() {
        let bytes: Vec<u8> = (0..2000u32).map(|i| (i * 29 % 251) as u8).collect();
        for len in (1..100).chain([255, 256, 767, 768, 769, 1500]) {
            for (seq, timestamp, flags) in [(1, 0, 0), (u64::MAX, 1 << 40, BATCH_CONTINUES)] {
                let payload = &bytes[len % 7..len % 7 + len];
                let mut out = Vec::new();
                encode(&mut out, seq, timestamp, flags, payload);
                let head = out.first_chunk::<HEADER_LEN>().expect("header");
                let expected = crc32c::crc32c_append(crc32c::crc32c(&out[..4]), &out[8..]);
                assert_eq!(frame_crc(head, payload), expected, "len {len}");
                for crc in [fields_crc, portable_fields_crc] {
                    assert_eq!(
                        crc(len as u32, seq, timestamp, flags, payload),
                        expected,
                        "len {len}"
                    );
                }
                assert_eq!(&out[4..8], &expected.to_le_bytes(), "len {len}");
            }
        }
    }

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        encode(&mut out, 7, 1234, BATCH_CONTINUES, b"hello");
        let (header, payload) = decode(&out, 1024).expect("valid");
        assert_eq!(
            header,
            Header {
                len: 5,
                seq: 7,
                timestamp: 1234,
                flags: BATCH_CONTINUES
            }
        );
        assert_eq!(payload, b"hello");
    }

    #[test]
    fn zeros_and_flips_and_cuts_never_validate() {
        assert_eq!(decode(&[0; 64], 1024), Err(Invalid::Bad("zero length")));
        let mut out = Vec::new();
        encode(&mut out, 1, 2, 0, b"payload bytes");
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode(&bad, 1024).is_err(),
                    "flip of bit {bit} at {i} validated"
                );
            }
            assert_eq!(
                decode(&out[..i], 1024).err(),
                Some(Invalid::Short),
                "cut at {i}"
            );
        }
    }
}
