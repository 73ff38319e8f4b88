//! Unit tests of the snapshot codec and bundles, with hand-written State impls.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::{self, SnapshotError};
use super::identity::RecordIdentity;
use crate::db::FoldCause;
use crate::event::{CodecError, decode_oldest};
use crate::state::EventType;
use crate::store::RecordedEvent;
use crate::{Event, Meta, State};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Bump(u32);

impl Event for Bump {
    const NAME: &'static str = "bump";
    const VERSION: u32 = 1;
    fn variant_name(&self) -> &'static str {
        "Bump"
    }
    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        decode_oldest(version, bytes)
    }
}

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Tally {
    counts: BTreeMap<u32, u64>,
    label: String,
}

impl State for Tally {
    const NAME: &'static str = "tally";
    const VERSION: u32 = 1;
    const FINGERPRINT: u64 = 0x1234;
    const EVENTS: &'static [EventType] = &[EventType::of::<Bump>()];
    fn apply_recorded(&mut self, event: &RecordedEvent, _: &Meta) -> Result<bool, FoldCause> {
        match crate::state::decode_if::<Bump>(event)? {
            Some(Bump(n)) => {
                *self.counts.entry(n).or_default() += 1;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// The same name with another definition: what an upgraded binary sees.
#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct TallyV2 {
    counts: BTreeMap<u32, u64>,
}

impl State for TallyV2 {
    const NAME: &'static str = "tally";
    const VERSION: u32 = 2;
    const FINGERPRINT: u64 = 0x5678;
    const EVENTS: &'static [EventType] = &[EventType::of::<Bump>()];
    fn apply_recorded(&mut self, event: &RecordedEvent, _: &Meta) -> Result<bool, FoldCause> {
        let _ = event;
        Ok(true)
    }
}

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Other;

impl State for Other {
    const NAME: &'static str = "other";
    const VERSION: u32 = 1;
    const FINGERPRINT: u64 = 0x1234;
    const EVENTS: &'static [EventType] = &[EventType::of::<Bump>()];
    fn apply_recorded(&mut self, event: &RecordedEvent, _: &Meta) -> Result<bool, FoldCause> {
        let _ = event;
        Ok(true)
    }
}

/// A made-up identity for the record at `seq`.
fn id(seq: u64) -> RecordIdentity {
    RecordIdentity {
        seq,
        timestamp: 1_700_000_000_000 + seq,
        payload_crc: seq as u32 ^ 0xdead_beef,
    }
}

fn tally(n: u32) -> Tally {
    let mut t = Tally {
        label: "t".into(),
        ..Tally::default()
    };
    for i in 0..n {
        *t.counts.entry(i % 7).or_default() += 1;
    }
    t
}

#[test]
fn round_trip_is_identical_and_keeps_the_seq() {
    let state = tally(100);
    let blob = codec::encode(&state, Some(id(100))).expect("encode");
    let (back, seq) = codec::decode::<Tally>(&blob).expect("decode");
    assert_eq!(back, state);
    assert_eq!(seq, Some(id(100)));
    assert_eq!(
        codec::encode(&back, seq).expect("encode"),
        blob,
        "re-encoding gives the same bytes"
    );
    let (_, none) =
        codec::decode::<Tally>(&codec::encode(&Tally::default(), None).expect("encode"))
            .expect("decode");
    assert_eq!(none, None);
}

#[test]
fn every_flipped_byte_and_every_truncation_is_rejected() {
    let blob = codec::encode(&tally(20), Some(id(20))).expect("encode");
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x40;
        assert!(
            codec::decode::<Tally>(&bad).is_err(),
            "flip at byte {i} was not detected"
        );
        assert!(
            codec::decode::<Tally>(&blob[..i]).is_err(),
            "truncation to {i} bytes was not detected"
        );
    }
}

#[test]
fn foreign_and_stale_snapshots_are_named_as_such() {
    let blob = codec::encode(&tally(3), Some(id(3))).expect("encode");
    assert!(
        matches!(codec::decode::<Other>(&blob), Err(SnapshotError::Foreign { found, .. }) if found == "tally")
    );
    assert!(matches!(
        codec::decode::<TallyV2>(&blob),
        Err(SnapshotError::Stale {
            found_version: 1,
            version: 2,
            ..
        })
    ));
    assert!(matches!(
        codec::decode::<Tally>(b"not a snapshot at all"),
        Err(SnapshotError::Malformed(_))
    ));
}

#[test]
fn bundle_round_trips_and_rejects_damage() {
    use super::bundle::Bundle;
    let mut bundle = Bundle::new();
    bundle
        .push(codec::encode(&tally(5), Some(id(5))).expect("encode"))
        .expect("push");
    bundle
        .push(codec::encode(&Other, None).expect("encode"))
        .expect("push");
    assert!(
        bundle.push(b"junk".to_vec()).is_err(),
        "a bundle only takes valid blobs"
    );
    let bytes = bundle.to_bytes();
    let back = Bundle::from_bytes(&bytes).expect("parse");
    assert_eq!(back, bundle);
    let (state, seq) = codec::decode::<Tally>(back.get("tally").expect("tally")).expect("decode");
    assert_eq!((state, seq), (tally(5), Some(id(5))));
    assert!(back.get("missing").is_none());
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(
            Bundle::from_bytes(&bad).is_err(),
            "flip at byte {i} was not detected"
        );
        assert!(
            Bundle::from_bytes(&bytes[..i]).is_err(),
            "truncation to {i} bytes was not detected"
        );
    }
}

/// Frames `entries` as a bundle declaring `count` entries, with a valid CRC:
/// what a buggy writer (or a forger) could leave.
fn framed_bundle(count: u32, entries: &[&[u8]]) -> Vec<u8> {
    let mut out = b"FOLDBNDL".to_vec();
    out.push(1);
    out.extend_from_slice(&count.to_le_bytes());
    for entry in entries {
        out.extend_from_slice(entry);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn a_bad_bundle_entry_is_named_by_its_place_and_state() {
    use super::bundle::Bundle;
    let good = codec::encode(&tally(5), Some(id(5))).expect("encode");
    let mut bundle = Bundle::new();
    bundle.push(good.clone()).expect("push");

    // A blob whose checksum fails: refused as entry 1, of state `tally`.
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    match bundle.push(flipped).unwrap_err() {
        SnapshotError::BundleEntry {
            index: 1,
            name: Some(name),
            source,
        } => {
            assert_eq!(name, "tally");
            assert!(
                matches!(*source, SnapshotError::Checksum { .. }),
                "{source:?}"
            );
        }
        other => panic!("expected BundleEntry, got {other:?}"),
    }
    match bundle.push(b"junk".to_vec()).unwrap_err() {
        SnapshotError::BundleEntry {
            index: 1,
            name: None,
            ..
        } => {}
        other => panic!("expected BundleEntry, got {other:?}"),
    }

    // A bundle that declares more entries than it holds.
    let len = (good.len() as u64).to_le_bytes();
    let error = Bundle::from_bytes(&framed_bundle(2, &[&len, &good])).unwrap_err();
    assert!(
        matches!(
            &error,
            SnapshotError::BundleEntry {
                index: 1,
                name: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "bundle entry 1 is unusable");
    // An entry cut short: named by the state its header declares.
    let long = (good.len() as u64 + 10).to_le_bytes();
    let error = Bundle::from_bytes(&framed_bundle(1, &[&long, &good])).unwrap_err();
    match &error {
        SnapshotError::BundleEntry {
            index: 0,
            name: Some(name),
            source,
        } => {
            assert_eq!(name, "tally");
            assert!(
                source.to_string().contains("ends inside this entry"),
                "{source}"
            );
        }
        other => panic!("expected BundleEntry, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "bundle entry 0 (state `tally`, as its header says) is unusable"
    );
    // The well-formed one parses.
    let parsed = Bundle::from_bytes(&framed_bundle(1, &[&len, &good])).expect("parse");
    assert_eq!(parsed, bundle);
}

/// A sink that records the size of every write, failing once `fail_after` bytes are in.
struct Recording {
    bytes: Vec<u8>,
    writes: Vec<usize>,
    fail_after: usize,
}

impl std::io::Write for Recording {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.fail_after {
            return Err(std::io::Error::other("disk full"));
        }
        self.bytes.extend_from_slice(buf);
        self.writes.push(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_streamed_encode_writes_the_same_bytes_in_bounded_chunks() {
    let mut state = tally(1000);
    state.label = "x".repeat(3 * codec::STREAM_CHUNK + 17); // one long string: > 3 chunks
    let blob = codec::encode(&state, Some(id(9))).expect("encode");
    let mut sink = Recording {
        bytes: Vec::new(),
        writes: Vec::new(),
        fail_after: usize::MAX,
    };
    let written = codec::encode_to(&state, Some(id(9)), &mut sink).expect("encode");
    assert_eq!(written, blob.len() as u64);
    assert!(sink.bytes == blob, "the streamed bytes are the blob's");
    assert!(sink.writes.len() > 3, "{:?}", sink.writes);
    assert!(
        sink.writes.iter().all(|&n| n <= 2 * codec::STREAM_CHUNK),
        "{:?}",
        sink.writes
    );
    let (back, last) = codec::decode::<Tally>(&sink.bytes).expect("decode");
    assert_eq!((back, last), (state, Some(id(9))));
}

#[test]
fn a_streamed_encode_reports_a_failing_sink() {
    let mut state = tally(10);
    state.label = "x".repeat(2 * codec::STREAM_CHUNK);
    let mut sink = Recording {
        bytes: Vec::new(),
        writes: Vec::new(),
        fail_after: codec::STREAM_CHUNK + 10,
    };
    let error = codec::encode_to(&state, None, &mut sink).expect_err("the sink fails");
    assert!(
        matches!(&error, codec::EncodeToError::Io(e) if e.to_string() == "disk full"),
        "{error:?}"
    );
}
