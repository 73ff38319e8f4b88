//! Reading one stream's events: the positions come from the stream index, the
//! records from the log.
//!
//! Why a module of its own: the first command on an aggregate after a restart
//! replays the instance's whole stream from the log, so this is the read that
//! decides how long that command takes.
//!
//! - Positions close together are read as one range ([`GAP`]): the events of
//!   one command are consecutive, and a range of a few dozen records costs
//!   one read of the segment file, where reading them one at a time costs one
//!   read (and one walk from the index entry before it) each.
//! - Every record read is checked to be the stream's event at the version the
//!   index gives it: an index that does not match the log is an error naming
//!   the position, never another stream's event passed off as this one's.

use foldkit_storage::{Log, Record, StorageError};

use super::{DecodeCache, decode, storage};
use crate::Seq;
use crate::store::{RecordedEvent, StoreError};

/// Wanted positions less than this far apart are read as one range (the
/// records in between are read and dropped): the log's sparse index has an
/// entry every 32 records, so one record costs a read of up to 32 anyway.
const GAP: u64 = 32;

/// The longest range one run reads, in records (bounds what a run holds).
const MAX_SPAN: u64 = 4096;

/// One range to read: the positions `wanted` (ascending), all within
/// `wanted[0]..wanted[0] + span`.
struct Run<'a> {
    wanted: &'a [Seq],
    span: u64,
}

/// The next run of `positions`: the longest prefix whose neighbours are less
/// than [`GAP`] apart, within [`MAX_SPAN`] records.
fn next_run(positions: &[Seq]) -> Run<'_> {
    let mut end = 1;
    while end < positions.len()
        && positions[end].saturating_sub(positions[end - 1]) < GAP
        && positions[end].saturating_sub(positions[0]) < MAX_SPAN
    {
        end += 1;
    }
    let wanted = &positions[..end];
    // Positions ascend (the index refuses others at load), so this never saturates.
    let span = wanted[end - 1].saturating_sub(wanted[0]) + 1;
    Run { wanted, span }
}

/// What the events of `stream` at `positions` (the versions `first_version`,
/// `first_version + 1`, ..) decode into, checked.
struct Collect<'a> {
    stream: &'a str,
    first_version: u64,
    positions: &'a [Seq],
    out: Vec<RecordedEvent>,
    cache: DecodeCache,
}

impl<'a> Collect<'a> {
    fn new(stream: &'a str, first_version: u64, positions: &'a [Seq]) -> Self {
        Self {
            stream,
            first_version,
            positions,
            out: Vec::with_capacity(positions.len()),
            cache: DecodeCache::default(),
        }
    }

    /// The positions not read yet.
    fn rest(&self) -> &'a [Seq] {
        &self.positions[self.out.len()..]
    }

    /// Takes the wanted records out of `records` (consecutive seqs); returns
    /// how many it took (0: the first wanted one is not there).
    fn take(&mut self, records: Vec<Record>) -> Result<usize, StoreError> {
        let Some(first) = records.first().map(|r| r.seq) else {
            return Ok(0);
        };
        let before = self.out.len();
        let mut records = records.into_iter();
        let mut at = first;
        for &position in self.rest() {
            let Some(skip) = position.checked_sub(at) else {
                break;
            };
            let Some(record) = records.nth(usize::try_from(skip).unwrap_or(usize::MAX)) else {
                break;
            };
            at = position + 1;
            if record.seq != position {
                return Err(StoreError::Corrupt {
                    what: format!("the read of position {position}"),
                    reason: format!("the log returned the record at position {}", record.seq),
                });
            }
            let version = self.first_version + self.out.len() as u64;
            let event = decode(record, &mut self.cache)?;
            check(self.stream, version, &event)?;
            self.out.push(event);
        }
        Ok(self.out.len() - before)
    }
}

/// The event at `position` must be `stream`'s at `version`.
fn check(stream: &str, version: u64, event: &RecordedEvent) -> Result<(), StoreError> {
    match &event.stream {
        Some(found) if &*found.id == stream && found.version == version => Ok(()),
        found => Err(StoreError::Corrupt {
            what: format!(
                "the stream index entry of `{stream}` version {version} (position {})",
                event.position
            ),
            reason: match found {
                Some(found) => format!(
                    "the record there is `{}` version {}",
                    found.id, found.version
                ),
                None => "the record there is in no stream".to_owned(),
            },
        }),
    }
}

/// The events of `stream` at `positions` (its versions `first_version`, ..),
/// if all can be read without waiting on a disk (the log's memory, or the page
/// cache: `Log::read_nowait`); `None` when one cannot (then read them with
/// [`blocking`], on the blocking pool). Never blocks: for async callers.
pub(super) fn without_waiting(
    log: &Log,
    stream: &str,
    first_version: u64,
    positions: &[Seq],
) -> Option<Result<Vec<RecordedEvent>, StoreError>> {
    let mut collect = Collect::new(stream, first_version, positions);
    while !collect.rest().is_empty() {
        let run = next_run(collect.rest());
        let max = usize::try_from(run.span).unwrap_or(usize::MAX);
        let records = match log.read_nowait(run.wanted[0], max)? {
            Ok(records) => records,
            Err(error) => return Some(Err(storage("read the log", error))),
        };
        match collect.take(records) {
            // A read may stop short (a segment's end, a bounded read): the
            // next turn reads on from the first position not taken.
            Ok(0) => return None,
            Ok(_) => {}
            Err(error) => return Some(Err(error)),
        }
    }
    Some(Ok(collect.out))
}

/// [`without_waiting`], reading segment files as needed: call it from a
/// blocking context.
pub(super) fn blocking(
    log: &Log,
    stream: &str,
    first_version: u64,
    positions: &[Seq],
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut collect = Collect::new(stream, first_version, positions);
    while !collect.rest().is_empty() {
        let run = next_run(collect.rest());
        let from = run.wanted[0];
        let records = log
            .range(from..from.saturating_add(run.span))
            .map_err(|e| storage(&format!("read position {from}"), e))?
            .collect::<Result<Vec<Record>, StorageError>>()
            .map_err(|e| storage(&format!("read position {from}"), e))?;
        if collect.take(records)? == 0 {
            return Err(StoreError::NotFound {
                position: from,
                first: log.first_seq(),
                last: log.last_seq(),
            });
        }
    }
    Ok(collect.out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::file::index::Index;
    use crate::store::file::tests::events;
    use crate::store::{EventStore, FileStore};

    /// Stream `a` in batches of 1 to 3 events, with 0 to 70 events of stream
    /// `b` between them (gaps below, at and above [`GAP`]); then reopened, so
    /// that `a` is read from the segment files.
    async fn store_with_gaps(dir: &std::path::Path) -> (FileStore, u64) {
        let store = FileStore::open_async(dir, Default::default())
            .await
            .expect("open");
        let (mut a, mut b) = (1, 1);
        for round in 0..40u64 {
            let count = 1 + round % 3;
            store.append(events("a", a, count)).await.expect("append a");
            a += count;
            let between = (round * 37) % 71;
            if between > 0 {
                store
                    .append(events("b", b, between))
                    .await
                    .expect("append b");
                b += between;
            }
        }
        store.close().await.expect("close");
        let store = FileStore::open_async(dir, Default::default())
            .await
            .expect("reopen");
        (store, a - 1)
    }

    fn payloads(events: &[RecordedEvent]) -> Vec<(u64, String)> {
        events
            .iter()
            .map(|e| {
                let version = e.stream.as_ref().map_or(0, |s| s.version);
                (version, String::from_utf8_lossy(&e.payload).into_owned())
            })
            .collect()
    }

    #[tokio::test]
    async fn both_paths_read_every_version_asked_for_across_gaps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, versions) = store_with_gaps(dir.path()).await;
        let positions = store.inner.writer.lock().index.streams["a"].clone();
        for from in [1, 2, 17, versions] {
            let want: Vec<(u64, String)> =
                (from..=versions).map(|v| (v, format!("a {v}"))).collect();
            let wanted = &positions[from as usize - 1..];
            let log = store.log();
            let nowait = without_waiting(log, "a", from, wanted)
                .expect("page-cached")
                .expect("read");
            assert_eq!(
                payloads(&nowait),
                want,
                "without waiting, from version {from}"
            );
            let read = blocking(log, "a", from, wanted).expect("read");
            assert_eq!(payloads(&read), want, "blocking, from version {from}");
            let seam = store.read_stream("a", from..=u64::MAX).await.expect("read");
            assert_eq!(
                payloads(&seam),
                want,
                "through the seam, from version {from}"
            );
        }
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn an_index_that_points_at_another_streams_events_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = store_with_gaps(dir.path()).await;
        store.close().await.expect("close");
        // Swap the two streams' positions in a well-formed index file (its
        // checksum and the identity of the record it covers still hold).
        let path = dir.path().join(super::super::INDEX_FILE);
        let mut index = Index::decode(&std::fs::read(&path).expect("read")).expect("decode");
        let a = index.streams.remove("a").expect("a");
        let b = index.streams.remove("b").expect("b");
        index.streams.insert(Arc::from("a"), b);
        index.streams.insert(Arc::from("b"), a);
        std::fs::write(&path, index.encode()).expect("write");

        let store = FileStore::open_async(dir.path(), Default::default())
            .await
            .expect("reopen");
        let error = store
            .read_stream("a", 1..=u64::MAX)
            .await
            .expect_err("another stream's events are never returned as this one's");
        let StoreError::Corrupt { what, reason } = &error else {
            panic!("expected a corrupt-store error, got {error:?}");
        };
        assert!(what.contains("`a` version 1"), "{what}");
        assert!(reason.contains("`b` version 1"), "{reason}");
        let log = store.log().clone();
        let positions = store.inner.writer.lock().index.streams["a"].clone();
        let error = blocking(&log, "a", 1, &positions).expect_err("blocking path too");
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        store.close().await.expect("close");
    }

    #[test]
    fn runs_join_positions_closer_than_the_gap() {
        let positions = [1, 2, 3, 40, 71, 200, 231];
        let first = next_run(&positions);
        assert_eq!((first.wanted, first.span), (&[1, 2, 3][..], 3));
        let second = next_run(&positions[3..]);
        assert_eq!((second.wanted, second.span), (&[40, 71][..], 32));
        let third = next_run(&positions[5..]);
        assert_eq!((third.wanted, third.span), (&[200, 231][..], 32));
        let long: Vec<Seq> = (1..=MAX_SPAN + 10).collect();
        assert_eq!(next_run(&long).span, MAX_SPAN);
    }
}
