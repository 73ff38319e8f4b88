//! Snapshots in the Db: where states start at open, automatic snapshots (every N
//! events and at close), whole-Db bundles (one consistent cut), compaction, and
//! time travel. Snapshot bytes live in the store (files, a table, ..).
//!
//! Invariants:
//! - A state starts from an explicit bundle entry, else the newest snapshot
//!   that decodes and whose last record is the one the log holds at its position
//!   ([`RecordIdentity::check`]), else `Default` at position 0. A snapshot of a
//!   log that lost its tail (and maybe refilled it) is never used.
//! - A snapshot is encoded under the state's read lock, where the value, its
//!   applied position and the identity of its last record agree, straight into the
//!   one buffer that is written (see `codec::encode`); the lock is released before
//!   the write, which happens only once the store has made that position durable
//!   (`sync` first), so a snapshot never covers events a crash could lose. Encoding
//!   and decoding run on the blocking pool, never on an async worker.
//! - A panic while *decoding* a snapshot (the state's `Deserialize` on bytes that
//!   pass the checksum: crafted, or of another definition) rejects that snapshot
//!   like any other that does not decode, with the panic's message as the reason,
//!   and the state starts from an older one or replays: stored bytes never decide
//!   whether `open` panics. A panic while *encoding* is the caller's (it is
//!   resumed on the calling task), as it would be on that thread.
//! - `compact` drops only stored events below every state's newest snapshot;
//!   the store keeps what aggregates replay.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::Seq;
use crate::db::builder::DbBuilder;
use crate::db::db::{Db, StartContext};
use crate::db::error::{DbError, FoldCause};
use crate::db::handle::{Handle, NO_HOLD, StateCell, StateSlot};
use crate::db::open_report::{RejectedSnapshot, SnapshotUse};
use crate::snapshot::{Bundle, IdentityMismatch, RecordIdentity, SnapshotError, codec};
use crate::state::{Meta, State};
use crate::store::EventStore;

/// How the builder configured snapshots.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotSettings {
    every: Option<u64>,
    keep: usize,
    on_close: bool,
    pub(crate) restore: Option<Bundle>,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            every: None,
            keep: 3,
            on_close: true,
            restore: None,
        }
    }
}

/// When to write snapshots, and how many to keep.
#[derive(Debug)]
pub(crate) struct Snapshots {
    every: Option<u64>,
    keep: usize,
    pub(crate) on_close: bool,
}

impl Snapshots {
    pub(crate) fn new(settings: &SnapshotSettings) -> Self {
        Self {
            every: settings.every,
            keep: settings.keep,
            on_close: settings.on_close,
        }
    }

    pub(crate) fn keep(&self) -> usize {
        self.keep
    }
}

impl DbBuilder {
    /// Snapshots each state after every `events` positions it folds (0 turns it
    /// off, the default). Restart then costs the newest snapshot plus the events after it.
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.snapshots.every = (events > 0).then_some(events);
        self
    }

    /// How many snapshots to keep per state (default 3). `0` is read as 1: the
    /// newest snapshot is always kept.
    pub fn keep_snapshots(mut self, count: usize) -> Self {
        self.snapshots.keep = count.max(1);
        self
    }

    /// Whether `close()` snapshots every state (default true).
    pub fn snapshot_on_close(mut self, enabled: bool) -> Self {
        self.snapshots.on_close = enabled;
        self
    }

    /// Starts each state that `bundle` holds (see [`Db::snapshot`]) from its
    /// snapshot there instead of from the stored snapshots. The bundle must come
    /// from this Db's log: a state whose snapshot is beyond the log's end makes
    /// `open` fail; one whose last event is not the log's event at that position,
    /// or a stale entry (another definition of the state), is replayed.
    pub fn restore(mut self, bundle: Bundle) -> Self {
        self.snapshots.restore = Some(bundle);
        self
    }
}

/// Where state `S` starts: its value, the position it reflects, the identity of
/// the record there, and how it was chosen.
pub(crate) struct Start<S> {
    pub(crate) value: S,
    pub(crate) applied: Seq,
    pub(crate) last: Option<RecordIdentity>,
    pub(crate) snapshot: SnapshotUse,
    pub(crate) rejected: Vec<RejectedSnapshot>,
}

impl<S: State> Start<S> {
    /// The state `value` of a snapshot whose last record is `identity`; `how` names
    /// the kind of snapshot, given its position.
    fn from_snapshot(
        value: S,
        identity: Option<RecordIdentity>,
        how: fn(Seq) -> SnapshotUse,
        rejected: Vec<RejectedSnapshot>,
    ) -> Self {
        let applied = identity.map_or(0, |i| i.seq);
        Start {
            value,
            applied,
            last: identity,
            snapshot: how(applied),
            rejected,
        }
    }

    fn replay(rejected: Vec<RejectedSnapshot>) -> Self {
        Start {
            value: S::default(),
            applied: 0,
            last: None,
            snapshot: SnapshotUse::Replay,
            rejected,
        }
    }
}

pub(crate) async fn initial_state<S: State>(context: &StartContext) -> Result<Start<S>, DbError> {
    let store = context.store.as_ref();
    let last = context.last;
    let mut rejected = Vec::new();
    if let Some(blob) = context.restore.as_ref().and_then(|b| b.get(S::NAME)) {
        let decoded = decode_off_worker::<S>(blob.to_vec()).await?;
        let refuse = |seq, reason: String| RejectedSnapshot {
            seq,
            from_bundle: true,
            reason,
        };
        match decoded {
            Ok((_, Some(identity))) if identity.seq > last => {
                return Err(DbError::RestoreBeyondLog {
                    state: S::NAME,
                    seq: identity.seq,
                    last,
                });
            }
            Ok((value, identity)) => match check(store, identity).await {
                Ok(()) => {
                    return Ok(Start::from_snapshot(
                        value,
                        identity,
                        SnapshotUse::Restored,
                        rejected,
                    ));
                }
                Err(mismatch) => {
                    let why = crate::chain::Chain(&mismatch).to_string();
                    tracing::warn!(
                        state = S::NAME,
                        why,
                        "foldkit: the bundle's snapshot is not of this log; replaying"
                    );
                    rejected.push(refuse(identity.map_or(0, |i| i.seq), why));
                    return Ok(Start::replay(rejected));
                }
            },
            Err(why) => {
                tracing::warn!(
                    state = S::NAME,
                    why,
                    "foldkit: the bundle's snapshot is unusable; replaying"
                );
                rejected.push(refuse(0, why));
                return Ok(Start::replay(rejected));
            }
        }
    }
    // The newest snapshot, if it was read and decoded while the log opened (see
    // `prefetch`): judged as `newest_matching` judges each one; when refused, the
    // older ones are read through the store.
    let mut at_most = last;
    if let Some((position, decoded)) = super::prefetch::take::<S>(context).await
        && position <= last
    {
        match judge(store, position, decoded).await {
            Ok((value, identity)) => {
                return Ok(Start::from_snapshot(
                    value,
                    identity,
                    SnapshotUse::Used,
                    rejected,
                ));
            }
            Err(why) => {
                refused::<S>(position, &why);
                rejected.push(RejectedSnapshot {
                    seq: position,
                    from_bundle: false,
                    reason: why,
                });
                match position.checked_sub(1) {
                    Some(older) => at_most = older,
                    None => return Ok(Start::replay(rejected)),
                }
            }
        }
    }
    let (found, skipped) = newest_matching::<S>(store, at_most).await?;
    rejected.extend(skipped.into_iter().map(|(seq, reason)| RejectedSnapshot {
        seq,
        from_bundle: false,
        reason,
    }));
    Ok(match found {
        Some((value, identity)) => {
            Start::from_snapshot(value, identity, SnapshotUse::Used, rejected)
        }
        None => Start::replay(rejected),
    })
}

/// Whether the log holds the record `identity` names (`None`: covers nothing).
async fn check(
    store: &dyn EventStore,
    identity: Option<RecordIdentity>,
) -> Result<(), IdentityMismatch> {
    match identity {
        Some(identity) => identity.check(store).await,
        None => Ok(()),
    }
}

/// Decodes a snapshot of `S` on the blocking pool, or says why it is unusable
/// (its error and causes, or the message of a panic in `S`'s `Deserialize`:
/// see the module's invariants). Fails only if the runtime is shutting down.
async fn decode_off_worker<S: State>(bytes: Vec<u8>) -> Result<Decoded<S>, DbError> {
    // `decode_catching` catches the decode's panics: the task fails only when the
    // runtime shuts down.
    tokio::task::spawn_blocking(move || decode_catching::<S>(&bytes))
        .await
        .map_err(|_| DbError::Closed)
}

/// A snapshot of `S` decoded, or why it is unusable.
pub(super) type Decoded<S> = Result<(S, Option<RecordIdentity>), String>;

/// [`codec::decode`] with a panic in `S`'s `Deserialize` caught and told as the
/// reason (see the module's invariants). Blocking.
pub(super) fn decode_catching<S: State>(bytes: &[u8]) -> Decoded<S> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| codec::decode::<S>(bytes))) {
        Ok(decoded) => decoded.map_err(|error| crate::chain::Chain(&error).to_string()),
        Err(panic) => Err(panicked::<S>(panic)),
    }
}

/// Why a snapshot whose decoding panicked with `panic` is unusable.
fn panicked<S: State>(panic: Box<dyn std::any::Any + Send>) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    format!(
        "decoding it panicked (in the `Deserialize` of `{}`): {message}",
        S::NAME
    )
}

/// The snapshot of `S` stored at `position`, `decoded`, if it may start the state:
/// its header names that position and the log holds its last record there; else why
/// not.
pub(super) async fn judge<S: State>(
    store: &dyn EventStore,
    position: Seq,
    decoded: Decoded<S>,
) -> Result<(S, Option<RecordIdentity>), String> {
    match decoded {
        Ok((state, identity)) if identity.map_or(0, |i| i.seq) == position => {
            match check(store, identity).await {
                Ok(()) => Ok((state, identity)),
                Err(mismatch) => Err(crate::chain::Chain(&mismatch).to_string()),
            }
        }
        Ok(_) => Err("the snapshot's header and its stored position disagree".to_owned()),
        Err(why) => Err(why),
    }
}

/// Reports the stored snapshot of `S` at `position` as unusable (`why`).
pub(super) fn refused<S: State>(position: Seq, why: &str) {
    tracing::warn!(
        state = S::NAME,
        position,
        why,
        "foldkit: skipping an unusable snapshot; trying an older one or a replay"
    );
    crate::observability::snapshot_rejected(S::NAME);
}

/// The newest stored snapshot of `S` at or before `at_most` that decodes and
/// matches the log, and the ones refused on the way (position, why).
async fn newest_matching<S: State>(
    store: &dyn EventStore,
    at_most: Seq,
) -> Result<(Option<(S, Option<RecordIdentity>)>, Vec<(Seq, String)>), DbError> {
    let mut skipped = Vec::new();
    let positions = match store.list_snapshots(S::NAME).await {
        Ok(positions) => positions,
        Err(error) => {
            tracing::warn!(state = S::NAME, error = %crate::chain::Chain(&error), "foldkit: cannot list snapshots; replaying");
            return Ok((None, vec![(0, crate::chain::Chain(&error).to_string())]));
        }
    };
    for position in positions.into_iter().filter(|&p| p <= at_most) {
        let bytes = match store.read_snapshot(S::NAME, position).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(error) => {
                skipped.push((position, crate::chain::Chain(&error).to_string()));
                continue;
            }
        };
        match judge(store, position, decode_off_worker::<S>(bytes).await?).await {
            Ok(found) => return Ok((Some(found), skipped)),
            Err(why) => {
                refused::<S>(position, &why);
                skipped.push((position, why));
            }
        }
    }
    Ok((None, skipped))
}

/// The state's value and applied position, encoded under its read lock.
pub(crate) fn encode<S: State>(
    cell: &StateCell<S>,
) -> Result<(Vec<u8>, Option<Seq>), SnapshotError> {
    let state = cell.value.read();
    let last = identified(cell)?;
    Ok((codec::encode(&*state, last)?, last.map(|l| l.seq)))
}

/// The state's value, encoded under its read lock and streamed to `out` in bounded
/// chunks (see [`codec::encode_to`]); returns the applied position it reflects and the
/// bytes written. The lock
/// is held while the bytes are handed to `out` (for a file: copied to the page cache),
/// and released before anything makes them durable.
pub(crate) fn encode_to<S: State>(
    cell: &StateCell<S>,
    out: &mut dyn std::io::Write,
) -> Result<(Option<Seq>, u64), codec::EncodeToError> {
    let state = cell.value.read();
    let last = identified(cell)?;
    let bytes = codec::encode_to(&*state, last, out)?;
    Ok((last.map(|l| l.seq), bytes))
}

/// The identity of the last record `cell` folded (under its read lock): `Unidentified`
/// when a fold panicked and it is not known.
fn identified<S: State>(cell: &StateCell<S>) -> Result<Option<RecordIdentity>, SnapshotError> {
    let last = cell
        .last
        .lock()
        .as_ref()
        .map(crate::snapshot::LastRecord::identity);
    let applied = cell.applied.load(Ordering::Acquire);
    if applied > 0 && last.is_none_or(|l| l.seq != applied) {
        return Err(SnapshotError::Unidentified {
            state: S::NAME,
            seq: applied,
        });
    }
    Ok(last)
}

/// Encodes `state` on the blocking pool (it walks every row: no work for an async worker),
/// under the state's read lock for the encode only; the lock is released before the blob
/// is written. If the caller is dropped meanwhile, the encode finishes and its blob is
/// dropped: nothing is written.
async fn encode_off_worker(state: &Arc<dyn StateSlot>) -> Result<(Vec<u8>, Option<Seq>), DbError> {
    let state = Arc::clone(state);
    match tokio::task::spawn_blocking(move || state.encode_snapshot()).await {
        Ok(encoded) => encoded.map_err(DbError::Snapshot),
        // A panic in the state's `Serialize` is the caller's, as it was on this thread.
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(DbError::Closed), // the runtime is shutting down
    }
}

/// Encodes `state` now and stores it, streamed: the store runs the encode off the async
/// workers and hands it its sink (a file store: the snapshot's temporary file), so no
/// blob of the whole snapshot is ever held; it makes the position durable in the log
/// before the snapshot is committed (see [`EventStore::write_snapshot_streamed`]).
pub(crate) async fn write_now(state: &Arc<dyn StateSlot>) -> Result<(), DbError> {
    let store = state.store().ok_or(DbError::Closed)?;
    if state.applied_seq() == 0 {
        return Ok(()); // nothing folded: no empty snapshot
    }
    let name = state.name();
    let failure: Arc<parking_lot::Mutex<Option<EncodeFailure>>> = Arc::default();
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let source = {
        let (state, failure) = (Arc::clone(state), Arc::clone(&failure));
        let written_bytes = Arc::clone(&bytes);
        Box::new(move |out: &mut dyn std::io::Write| {
            let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                state.encode_snapshot_to(out)
            }));
            let why = match encoded {
                Ok(Ok((seq, bytes))) => {
                    written_bytes.store(bytes, Ordering::Relaxed);
                    return Ok(seq.unwrap_or(0));
                }
                Ok(Err(codec::EncodeToError::Io(error))) => return Err(error),
                Ok(Err(codec::EncodeToError::Snapshot(error))) => EncodeFailure::Snapshot(error),
                Err(panic) => EncodeFailure::Panic(panic),
            };
            *failure.lock() = Some(why);
            Err(std::io::Error::other("the snapshot could not be encoded"))
        })
    };
    let write = crate::observability::snapshot_write(name, 0);
    let written = store.write_snapshot_streamed(name, source).await;
    match (written, failure.lock().take()) {
        // A panic in the state's `Serialize` is the caller's, as it was on this thread.
        (_, Some(EncodeFailure::Panic(panic))) => std::panic::resume_unwind(panic),
        (_, Some(EncodeFailure::Snapshot(error))) => return Err(DbError::Snapshot(error)),
        (Err(error), None) => return Err(error.into()),
        (Ok(seq), None) => write
            .sized(bytes.load(Ordering::Relaxed))
            .done((seq > 0).then_some(seq)),
    }
    for old in store
        .list_snapshots(name)
        .await?
        .into_iter()
        .skip(state.keep_snapshots())
    {
        store.remove_snapshot(name, old).await?;
    }
    Ok(())
}

/// Why a streamed encode gave no snapshot (its sink only sees an `io::Error`).
enum EncodeFailure {
    Snapshot(SnapshotError),
    Panic(Box<dyn std::any::Any + Send>),
}

/// Whether `snapshot_every` asks for a snapshot of `cell` now.
pub(crate) fn due<S: State>(cell: &StateCell<S>) -> bool {
    let Some(every) = cell.folder.snapshots.every else {
        return false;
    };
    let applied = cell.applied.load(Ordering::Acquire);
    applied
        >= cell
            .folder
            .last_snapshot
            .load(Ordering::Acquire)
            .saturating_add(every)
}

/// After a batch: snapshot if `every` positions were folded since the last one.
///
/// The snapshot is written by a task of its own, streamed as [`write_now`] does (the
/// encode runs on the blocking pool, not in the fold), at the position folded when the
/// encode takes the read lock. A panic in the state's `Serialize` ends that task, which
/// `close` reports; the fold goes on.
pub(crate) fn after_batch<S: State>(cell: &Arc<StateCell<S>>) {
    if !due(cell) {
        return;
    }
    let applied = cell.applied.load(Ordering::Acquire);
    let mut pending = cell.folder.pending_write.lock();
    if pending.as_ref().is_some_and(|write| !write.is_finished()) {
        tracing::debug!(
            state = S::NAME,
            applied,
            "foldkit: snapshot not started: the previous one is still being written"
        );
        return; // one write at a time; a later batch tries again
    }
    if cell.folder.store().is_none() {
        return;
    }
    cell.folder.last_snapshot.store(applied, Ordering::Release);
    let slot: Arc<dyn StateSlot> = cell.clone();
    *pending = Some(tokio::spawn(async move {
        if let Err(error) = write_now(&slot).await {
            tracing::warn!(state = S::NAME, error = %crate::chain::Chain(&error), "foldkit: cannot write a snapshot");
        }
    }));
}

impl<S: State> Handle<S> {
    /// The state as a snapshot blob (identity header, checksum, postcard body)
    /// and the position of the last event it reflects. Restoring it (a bundle
    /// with [`DbBuilder::restore`]) resumes the fold at position + 1.
    pub fn snapshot(&self) -> Result<(Vec<u8>, Option<Seq>), DbError> {
        encode(&self.cell).map_err(DbError::Snapshot)
    }

    /// The state as it was after the event at position `seq` (time travel): a
    /// fresh state folded from the newest matching snapshot at or before `seq`
    /// (or from the start). Fails if the log no longer holds the events needed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads; dropping it stops the replay.
    pub async fn state_at(&self, seq: Seq) -> Result<S, DbError> {
        let store = self.cell.folder.store().ok_or(DbError::Closed)?;
        let (found, _) = newest_matching::<S>(store.as_ref(), seq).await?;
        let (mut state, mut from) = match found {
            Some((state, identity)) => (state, identity.map_or(0, |i| i.seq)),
            None => (S::default(), 0),
        };
        while from < seq {
            let want = usize::try_from(seq - from).unwrap_or(usize::MAX).min(4096);
            let events = store
                .read(from + 1, want)
                .await
                .map_err(|e| DbError::Read {
                    seq: from + 1,
                    cause: FoldCause::Store(e),
                })?;
            let Some(last) = events.last().map(|e| e.position) else {
                break; // the log ends before `seq`
            };
            for event in events.iter().filter(|e| e.position <= seq) {
                state
                    .apply_recorded(event, &Meta::of(event))
                    .map_err(|cause| DbError::Read {
                        seq: event.position,
                        cause,
                    })?;
            }
            from = last;
        }
        Ok(state)
    }

    /// The state as it was at wall-clock time `ms` (milliseconds since the UNIX
    /// epoch): after the last event appended at or before `ms`. Timestamps are
    /// monotonic along the log, so this is a binary search for the position.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn state_at_time(&self, ms: u64) -> Result<S, DbError> {
        let store = self.cell.folder.store().ok_or(DbError::Closed)?;
        let Some(mut hi) = store.last_position().await? else {
            return Ok(S::default());
        };
        let mut lo = 0; // invariant: the event at `lo` (if any) is at or before `ms`
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let found = store.read(mid, 1).await?;
            match found.first() {
                Some(event) if event.timestamp <= ms => lo = event.position.max(mid),
                Some(_) | None => hi = mid - 1,
            }
        }
        if lo == 0 {
            return Ok(S::default());
        }
        self.state_at(lo).await
    }
}

impl Db {
    /// Snapshots every registered state into one [`Bundle`] (see
    /// [`DbBuilder::restore`]), all at one position: a consistent cut.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped call lifts the holds it placed on the folds.
    pub async fn snapshot(&self) -> Result<Bundle, DbError> {
        let slots = self.slots();
        let release = Release(&slots);
        let first = self.last_seq().await?.unwrap_or(0);
        for slot in &slots {
            slot.hold_at(first);
        }
        for slot in &slots {
            slot.barrier(); // no batch folded under the old limit is in flight
        }
        let cut = slots.iter().map(|s| s.applied_seq()).fold(first, Seq::max);
        for slot in &slots {
            slot.hold_at(cut);
        }
        for slot in &slots {
            slot.wait_for(cut).await?;
        }
        let mut bundle = Bundle::new();
        for slot in &slots {
            let (blob, _) = encode_off_worker(slot).await?;
            bundle.push(blob).map_err(DbError::Snapshot)?;
        }
        drop(release);
        Ok(bundle)
    }

    /// Stores a snapshot of every state now.
    ///
    /// # Cancel safety
    ///
    /// Each snapshot is stored whole or not at all; a dropped call may have
    /// stored some of them.
    pub async fn snapshot_to_disk(&self) -> Result<(), DbError> {
        for slot in self.slots() {
            write_now(slot).await?;
        }
        Ok(())
    }

    /// Drops the stored events that no reader needs any more: those wholly before
    /// the newest snapshot of every state and of every process manager, and
    /// before every stored subscription checkpoint. A Db with a state or process
    /// manager that has no snapshot, or a subscription running without a stored
    /// checkpoint, keeps everything; the store keeps the events aggregates
    /// replay. An unnamed [`Db::events`] stream reading what is removed meanwhile
    /// gets a `NotFound` error. Returns how many storage units (file store:
    /// segments) were removed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it may leave some units removed; nothing needed is ever removed.
    pub async fn compact(&self) -> Result<usize, DbError> {
        let store = Arc::clone(&self.inner.store);
        let mut covered: Option<Seq> = None;
        let mut cap = |position: Seq| covered = Some(covered.map_or(position, |c| c.min(position)));
        for slot in self.slots() {
            let newest = store
                .list_snapshots(slot.name())
                .await?
                .into_iter()
                .find(|&p| p <= slot.applied_seq());
            let Some(newest) = newest else {
                return Ok(0);
            };
            cap(newest);
        }
        // A process manager resumes after its newest snapshot.
        for manager in self.inner.extensions.managers() {
            match store.list_snapshots(manager.name()).await?.first() {
                Some(&newest) => cap(newest),
                None => return Ok(0),
            }
        }
        // A subscription resumes after its checkpoint; one that runs without
        // a stored checkpoint yet starts wherever it was told to.
        let active = self.inner.extensions.subscriptions.names();
        let stored = match store.checkpoint_names().await {
            Ok(names) => names,
            Err(crate::store::StoreError::Unsupported { .. }) if active.is_empty() => Vec::new(),
            Err(crate::store::StoreError::Unsupported { .. }) => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        if active.iter().any(|name| !stored.contains(name)) {
            return Ok(0);
        }
        for name in &stored {
            if let Some(position) = store.read_checkpoint(name).await? {
                cap(position);
            }
        }
        match covered.filter(|&c| c > 0) {
            Some(seq) => Ok(store.compact_before(seq + 1).await?),
            None => Ok(0),
        }
    }
}

/// Lifts the holds of a bundle in progress, however it ends.
struct Release<'a>(&'a [&'a Arc<dyn StateSlot>]);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        for slot in self.0 {
            slot.hold_at(NO_HOLD);
        }
    }
}
