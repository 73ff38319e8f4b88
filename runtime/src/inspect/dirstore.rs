//! [`DirectoryStore`]: a file-store directory as a read-only [`EventStore`],
//! so the inspector reads a directory through the same seam as any store.
//!
//! Unlike [`FileStore`](crate::FileStore) it takes no lock and repairs
//! nothing: reads go through [`foldkit_storage::inspect::scan`], which sees a
//! consistent prefix of a log that a running writer appends to, and reports
//! (never cuts) a torn tail. A read stops before damage; the read that starts
//! at the damage is [`StoreError::Corrupt`] naming the segment and offset.
//!
//! A scan reads whole segment files, so a read keeps what it decoded (up to
//! the end of the segment it started in, at most [`WINDOW_BYTES`] of payloads)
//! and the next read from there is served from memory: listing a log of `n`
//! segments reads each about once.

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use foldkit_storage::inspect::{self, ScanOptions};
use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::{Directory, InspectError};
use crate::Seq;
use crate::store::file::chain::Walk;
use crate::store::file::files as store_files;
use crate::store::file::{ChainReport, DecodeCache, Envelope, decode_record};
use crate::store::{AppendBatch, Appended, EventStore, RecordedEvent, StoreError, StoreTail};

/// At most this many payload bytes are kept from one scan (beyond `max`).
pub const WINDOW_BYTES: usize = 32 << 20;

/// How often a tail of a [`DirectoryStore`] looks for new records.
const POLL: Duration = Duration::from_millis(200);

/// A directory opened read-only as an [`EventStore`]. Made by
/// [`Directory::store`]; cheap to clone.
///
/// It takes no lock and writes nothing: reads scan the segment files as they
/// are (a consistent prefix beside a running writer, a torn tail reported by
/// the scan, never cut). A read stops before damage; the read that starts at
/// the damage is [`StoreError::Corrupt`] naming the segment and the offset.
/// The writing methods return [`StoreError::ReadOnly`]. A tail polls for new
/// records. Stream reads scan the whole log (no index is trusted).
///
/// A scan reads whole segment files, so a read keeps what it decoded (to the
/// end of the segment it started in, at most [`WINDOW_BYTES`] of payloads
/// beyond what was asked) and the next read from there is served from memory.
#[derive(Clone)]
pub struct DirectoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: Directory,
    /// The events of the last scan, in position order.
    window: Mutex<Vec<RecordedEvent>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for DirectoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryStore")
            .field("dir", &self.inner.dir.path())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// This directory as a read-only [`EventStore`] (no lock, nothing written).
    pub fn store(&self) -> DirectoryStore {
        DirectoryStore {
            inner: Arc::new(Inner {
                dir: self.clone(),
                window: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
            }),
        }
    }
}

fn inspect_error(action: &str, error: InspectError) -> StoreError {
    StoreError::backend(action.to_owned(), error)
}

fn corrupt_at(segment: &Path, offset: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: format!("segment `{}` at byte offset {offset}", segment.display()),
        reason: reason.into(),
    }
}

/// Runs blocking file work off the async worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::backend("run file I/O on the blocking pool", e))?
}

impl DirectoryStore {
    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.inner.dir
    }

    fn read_only(&self, operation: &'static str) -> StoreError {
        StoreError::ReadOnly {
            what: self.describe(),
            operation,
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Up to `max` events from `from` (blocking).
    fn read_blocking(&self, from: Seq, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = from.max(1);
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut window = self.inner.window.lock();
        let at = window.partition_point(|e| e.position < from);
        if window.get(at).is_some_and(|e| e.position == from) {
            let end = at.saturating_add(max).min(window.len());
            return Ok(window[at..end].to_vec());
        }
        let (events, error) = self.scan(from, max)?;
        if events.is_empty()
            && let Some(error) = error
        {
            return Err(error);
        }
        let shown = events.iter().take(max).cloned().collect();
        *window = events;
        Ok(shown)
    }

    /// Scans from `from`: at least `max` events if there are, then on to the
    /// end of the segment (or [`WINDOW_BYTES`]); and the damage it stopped at.
    fn scan(
        &self,
        from: Seq,
        max: usize,
    ) -> Result<(Vec<RecordedEvent>, Option<StoreError>), StoreError> {
        let dir = &self.inner.dir;
        if !dir.log_dir().is_dir() {
            return Ok((Vec::new(), None));
        }
        // Payloads are copied into one buffer (one allocation per scan, not
        // per event), then decoded as slices of it.
        let mut arena = Vec::new();
        // (seq, timestamp, payload in the arena, segment index, frame offset)
        let mut found: Vec<(Seq, u64, std::ops::Range<usize>, usize, u64)> = Vec::new();
        let mut segments: Vec<std::path::PathBuf> = Vec::new();
        let report = inspect::scan(
            dir.log_dir(),
            &ScanOptions::default().from(from),
            |record| {
                if segments
                    .last()
                    .is_none_or(|s| s.as_path() != record.segment)
                {
                    if found.len() >= max && !segments.is_empty() {
                        return false; // the next segment: enough was read
                    }
                    segments.push(record.segment.to_path_buf());
                }
                if found.len() >= max && arena.len() >= WINDOW_BYTES {
                    return false;
                }
                let start = arena.len();
                arena.extend_from_slice(record.payload);
                let segment = segments.len() - 1;
                found.push((
                    record.seq,
                    record.timestamp,
                    start..arena.len(),
                    segment,
                    record.offset,
                ));
                true
            },
        )
        .map_err(|e| inspect_error("read the log", InspectError::Storage(e)))?;
        let arena = Bytes::from(arena);
        let mut events = Vec::with_capacity(found.len());
        let mut bad = None;
        let mut names = DecodeCache::default();
        for (seq, timestamp, range, segment, offset) in found {
            match decode_record(seq, timestamp, arena.slice(range), &mut names) {
                Ok(event) => events.push(event),
                Err(error) => {
                    bad = Some(match (error, segments.get(segment)) {
                        (StoreError::Corrupt { what, reason }, Some(segment)) => {
                            corrupt_at(segment, offset, format!("{what}: {reason}"))
                        }
                        (other, _) => other,
                    });
                    break;
                }
            }
        }
        let damage = report
            .corruption
            .map(|d| corrupt_at(&d.segment, d.offset, d.reason));
        Ok((events, bad.or(damage)))
    }

    /// Every event, in order, passed to `visit` (blocking; for whole-log questions).
    fn each_blocking(&self, mut visit: impl FnMut(&RecordedEvent)) -> Result<(), StoreError> {
        let mut from = 1;
        loop {
            let events = self.read_blocking(from, 4096)?;
            let Some(last) = events.last() else {
                return Ok(());
            };
            from = last.position + 1;
            events.iter().for_each(&mut visit);
        }
    }

    fn last_blocking(&self) -> Result<Option<Seq>, StoreError> {
        let dir = &self.inner.dir;
        if !dir.log_dir().is_dir() {
            return Ok(None);
        }
        // From the end: only the last segment is read.
        let report = inspect::scan(
            dir.log_dir(),
            &ScanOptions::default().from(Seq::MAX),
            |_| true,
        )
        .map_err(|e| inspect_error("read the log", InspectError::Storage(e)))?;
        if let Some(damage) = report.corruption {
            return Err(corrupt_at(&damage.segment, damage.offset, damage.reason));
        }
        Ok(report.last_seq)
    }

    fn chain_blocking(&self) -> Result<ChainReport, StoreError> {
        let mut walk = Walk::default();
        let mut broken = None;
        let dir = &self.inner.dir;
        let report = dir
            .scan_all(1, |event| {
                if broken.is_some() {
                    return;
                }
                let Ok(envelope) = &event.envelope else {
                    return;
                };
                let Envelope {
                    hash_offset, hash, ..
                } = envelope;
                if let Err(reason) = walk.step(
                    event.position,
                    event.timestamp,
                    event.payload,
                    *hash_offset,
                    *hash,
                ) {
                    broken = Some(StoreError::Corrupt {
                        what: format!("the hash chain at position {}", event.position),
                        reason: reason.to_owned(),
                    });
                }
            })
            .map_err(|e| inspect_error("read the log", e))?;
        if let Some(error) = broken {
            return Err(error);
        }
        if let Some(damage) = report.corruption {
            return Err(corrupt_at(&damage.segment, damage.offset, damage.reason));
        }
        Ok(ChainReport {
            checked: walk.checked,
            head: walk.head,
        })
    }

    fn snapshots_dir(&self) -> std::path::PathBuf {
        self.inner.dir.path().join("snapshots")
    }

    fn checkpoints_dir(&self) -> std::path::PathBuf {
        self.inner.dir.path().join("checkpoints")
    }

    fn state_dir(&self, state: &str) -> Result<std::path::PathBuf, StoreError> {
        Ok(self
            .snapshots_dir()
            .join(crate::store::file::escape_name("state name", state)?))
    }
}

impl EventStore for DirectoryStore {
    fn append(&self, _batch: AppendBatch) -> BoxFuture<'_, Result<Appended, StoreError>> {
        let error = self.read_only("append");
        Box::pin(async move { Err(error) })
    }

    fn read(&self, from: Seq, max: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let store = self.clone();
        Box::pin(async move {
            store.check_open()?;
            blocking(move || store.read_blocking(from, max)).await
        })
    }

    fn tail(&self, from: Seq) -> Box<dyn StoreTail> {
        Box::new(PollTail {
            store: self.clone(),
            next: from.max(1),
        })
    }

    fn read_stream(
        &self,
        stream: &str,
        versions: RangeInclusive<u64>,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let store = self.clone();
        let stream = stream.to_owned();
        Box::pin(async move {
            store.check_open()?;
            blocking(move || {
                let mut found = Vec::new();
                store.each_blocking(|event| {
                    if let Some(s) = &event.stream
                        && *s.id == *stream
                        && versions.contains(&s.version)
                    {
                        found.push(event.clone());
                    }
                })?;
                Ok(found)
            })
            .await
        })
    }

    fn stream_version(&self, stream: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let store = self.clone();
        let stream = stream.to_owned();
        Box::pin(async move {
            store.check_open()?;
            blocking(move || {
                let mut version = 0;
                store.each_blocking(|event| {
                    if let Some(s) = &event.stream
                        && *s.id == *stream
                    {
                        version = version.max(s.version);
                    }
                })?;
                Ok(version)
            })
            .await
        })
    }

    fn last_position(&self) -> BoxFuture<'_, Result<Option<Seq>, StoreError>> {
        let store = self.clone();
        Box::pin(async move {
            store.check_open()?;
            blocking(move || store.last_blocking()).await
        })
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        // Nothing was written.
        Box::pin(async move { self.check_open() })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.closed.store(true, Ordering::Release);
        Box::pin(async { Ok(()) })
    }

    fn write_snapshot(
        &self,
        _state: &str,
        _position: Seq,
        _bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let error = self.read_only("write a snapshot");
        Box::pin(async move { Err(error) })
    }

    fn list_snapshots(&self, state: &str) -> BoxFuture<'_, Result<Vec<Seq>, StoreError>> {
        let dir = self.state_dir(state);
        Box::pin(async move {
            let dir = dir?;
            blocking(move || store_files::list_snapshots(&dir)).await
        })
    }

    fn read_snapshot(
        &self,
        state: &str,
        position: Seq,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, StoreError>> {
        let dir = self.state_dir(state);
        Box::pin(async move {
            let dir = dir?;
            blocking(move || {
                store_files::read_optional(&store_files::snapshot_path(&dir, position))
            })
            .await
        })
    }

    fn remove_snapshot(
        &self,
        _state: &str,
        _position: Seq,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let error = self.read_only("remove a snapshot");
        Box::pin(async move { Err(error) })
    }

    fn snapshot_names(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let dir = self.snapshots_dir();
        Box::pin(blocking(move || store_files::snapshot_names(&dir)))
    }

    fn checkpoint_names(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let dir = self.checkpoints_dir();
        Box::pin(blocking(move || store_files::checkpoint_names(&dir)))
    }

    fn write_checkpoint(
        &self,
        _name: &str,
        _position: Seq,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let error = self.read_only("write a checkpoint");
        Box::pin(async move { Err(error) })
    }

    fn read_checkpoint(&self, name: &str) -> BoxFuture<'_, Result<Option<Seq>, StoreError>> {
        let path = store_files::checkpoint_path(&self.checkpoints_dir(), name);
        Box::pin(async move {
            let path = path?;
            blocking(move || match store_files::read_optional(&path)? {
                Some(bytes) => store_files::decode_checkpoint(&path, &bytes).map(Some),
                None => Ok(None),
            })
            .await
        })
    }

    fn verify_chain(&self) -> BoxFuture<'_, Result<ChainReport, StoreError>> {
        let store = self.clone();
        Box::pin(async move { blocking(move || store.chain_blocking()).await })
    }

    fn describe(&self) -> String {
        format!("directory {} (read-only)", self.inner.dir.path().display())
    }
}

/// A tail of a [`DirectoryStore`]: reads, and polls while nothing is new.
struct PollTail {
    store: DirectoryStore,
    next: Seq,
}

impl StoreTail for PollTail {
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(async move {
            loop {
                let events = self.store.read(self.next, max.max(1)).await?;
                if let Some(last) = events.last() {
                    self.next = last.position + 1;
                    return Ok(events);
                }
                tokio::time::sleep(POLL).await;
                // Checked after the read: a closed store first returns what it has.
                self.store.check_open()?;
            }
        })
    }

    fn position(&self) -> Seq {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Directory;
    use crate::store::{AppendBatch, EventStore, NewEvent, StoreError};
    use crate::store::{FileStore, FileStoreOptions};

    fn event(n: u8) -> AppendBatch {
        AppendBatch::new(vec![NewEvent {
            name: Arc::from("e"),
            schema_version: 1,
            payload: vec![n; 100],
        }])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_a_directory_its_writer_holds_open_page_by_page_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileStoreOptions {
            segment_size: Some(4096),
            ..FileStoreOptions::default()
        };
        let writer = FileStore::open_async(dir.path(), options).await.unwrap();
        for n in 0..100u8 {
            writer.append(event(n)).await.unwrap();
        }
        writer
            .write_snapshot("S", 50, b"snap".to_vec())
            .await
            .unwrap();
        writer.write_checkpoint("mailer", 40).await.unwrap();
        writer.sync().await.unwrap();

        // The writer holds the lock: a read-only view needs none.
        let store = Directory::open(dir.path()).unwrap().store();
        assert_eq!(store.last_position().await.unwrap(), Some(100));
        let mut seen = Vec::new();
        let mut from = 1;
        loop {
            let page = store.read(from, 7).await.unwrap();
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            assert!(page.len() <= 7);
            seen.extend(page.iter().map(|e| (e.position, e.payload[0])));
        }
        let expected: Vec<(u64, u8)> = (1..=100).map(|p| (p, (p - 1) as u8)).collect();
        assert_eq!(
            seen, expected,
            "every event once, in order, across segments"
        );
        assert_eq!(store.snapshot_names().await.unwrap(), ["S"]);
        assert_eq!(store.list_snapshots("S").await.unwrap(), [50]);
        assert_eq!(store.checkpoint_names().await.unwrap(), ["mailer"]);
        assert_eq!(store.read_checkpoint("mailer").await.unwrap(), Some(40));

        let refused = store.append(event(0)).await.unwrap_err();
        assert!(
            matches!(
                refused,
                StoreError::ReadOnly {
                    operation: "append",
                    ..
                }
            ),
            "{refused}"
        );
        assert!(matches!(
            store.write_checkpoint("mailer", 41).await,
            Err(StoreError::ReadOnly { .. })
        ));
        assert_eq!(store.read_checkpoint("mailer").await.unwrap(), Some(40));

        // A tail returns what is there, then what the writer appends.
        let mut tail = store.tail(99);
        assert_eq!(tail.next_batch(10).await.unwrap().len(), 2);
        writer.append(event(7)).await.unwrap();
        writer.sync().await.unwrap();
        let live = tail.next_batch(10).await.unwrap();
        assert_eq!(live.iter().map(|e| e.position).collect::<Vec<_>>(), [101]);
        writer.close().await.unwrap();
    }

    /// A directory of three events whose second record's payload is damaged.
    async fn damaged_second_record() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let writer = FileStore::open_async(dir.path(), FileStoreOptions::default())
            .await
            .unwrap();
        for n in 0..3u8 {
            writer.append(event(n)).await.unwrap();
        }
        writer.close().await.unwrap();
        let segment = std::fs::read_dir(dir.path().join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        let len = bytes.len();
        bytes[len - 200] ^= 0x01;
        std::fs::write(&segment, &bytes).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_file_store_names_damage_by_segment_and_offset_as_the_inspector_does() {
        let dir = damaged_second_record().await;
        let inspected = match Directory::open(dir.path())
            .unwrap()
            .store()
            .read(2, 10)
            .await
        {
            Err(StoreError::Corrupt { what, .. }) => what,
            other => panic!("expected Corrupt, got {other:?}"),
        };
        match FileStore::open_async(dir.path(), FileStoreOptions::default()).await {
            Err(StoreError::Corrupt { what, reason }) => {
                assert!(
                    what.contains(".seg`") && what.contains("at byte offset"),
                    "the place, not the action: {what}"
                );
                assert_eq!(what, inspected, "one place, whoever reads it");
                assert!(reason.contains("open the log"), "the action: {reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_snapshot_check_that_cannot_read_its_event_keeps_the_store_error() {
        let dir = damaged_second_record().await;
        let store = Directory::open(dir.path()).unwrap().store();
        let identity = crate::snapshot::RecordIdentity {
            seq: 2,
            timestamp: 0,
            payload_crc: 0,
        };
        let mismatch = identity.check(&store).await.unwrap_err();
        match &mismatch {
            crate::snapshot::IdentityMismatch::Unreadable {
                seq: 2,
                source: StoreError::Corrupt { what, .. },
            } => assert!(what.contains("byte offset"), "{what}"),
            other => panic!("expected Unreadable with the store's Corrupt, got {other:?}"),
        }
        let source = std::error::Error::source(&mismatch).expect("the store error is the source");
        assert!(source.to_string().contains("corrupt data at"), "{source}");
    }

    #[tokio::test]
    async fn a_read_from_damage_is_corrupt_naming_segment_and_offset() {
        let dir = damaged_second_record().await;
        let store = Directory::open(dir.path()).unwrap().store();
        let first = store.read(1, 10).await.unwrap();
        assert_eq!(first.len(), 1, "what precedes the damage");
        match store.read(2, 10).await {
            Err(StoreError::Corrupt { what, .. }) => {
                assert!(
                    what.contains(".seg`") && what.contains("byte offset"),
                    "{what}"
                )
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
