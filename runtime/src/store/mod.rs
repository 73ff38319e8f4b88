//! The store seam: the one way the runtime reaches stored events.
//!
//! A Db has one ordered log. Where that log lives is an [`EventStore`]: the
//! embedded file store ([`FileStore`], a directory, the default of
//! `Db::builder(dir)`) or any other implementation plugged in with
//! `Db::builder_with(store)` (e.g. `foldkit-postgres`).
//!
//! What every store promises (the generic suite in [`contract`] states it as
//! tests, and every store runs it):
//!
//! - **One global order.** Every appended event gets a position ([`Seq`]), strictly
//!   increasing in append (commit) order, never reused. Dense (1, 2, 3, ..) in the
//!   file store; monotonic with possible gaps in others.
//! - **Atomic batches.** [`EventStore::append`] writes all events of a batch or
//!   none, at consecutive positions of the order (no other event in between).
//! - **Optimistic concurrency.** A batch for a stream may carry an
//!   [`ExpectedVersion`]; a miss writes nothing and is [`StoreError::Conflict`].
//!   A stream's version is its number of events; the first event has version 1.
//! - **Idempotent appends.** A batch with an idempotency key that was already
//!   appended appends nothing and returns the first append's result.
//! - **Gap-free reads.** [`EventStore::read`] and [`StoreTail`] return every
//!   committed event exactly once, in position order: a reader never skips an
//!   event that commits later with a lower position.
//! - **Durability.** An acknowledged append survives what the store's policy
//!   promises; [`EventStore::sync`] and [`EventStore::close`] make everything
//!   acknowledged durable.
//! - **Snapshots and checkpoints** are kept by the store too, so a new instance
//!   of a service starts from the newest snapshot and resumes its subscriptions.

pub mod contract;
mod error;
pub mod file;
mod record;

use std::ops::RangeInclusive;

use futures::future::BoxFuture;

pub use error::StoreError;
pub use file::{ChainReport, FileStore, FileStoreOptions};
pub use record::{
    AppendBatch, Appended, EventContext, NewEvent, RecordedEvent, StreamExpectation, StreamRef,
};

use crate::Seq;
pub use crate::db::ExpectedVersion;

/// Writes one snapshot's bytes into the sink it is given and returns the position the
/// snapshot is at (see [`EventStore::write_snapshot_streamed`]).
pub type SnapshotSource = Box<dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<Seq> + Send>;

/// Where a Db's events, snapshots and checkpoints live. See the [module docs](self)
/// for the contract every implementation keeps.
///
/// Methods return boxed futures so that a Db can hold any store as
/// `Arc<dyn EventStore>`. Every future is `Send`.
///
/// # Cancel safety
///
/// Dropping a future returned by a read method leaves nothing behind. Dropping
/// the future of [`append`](EventStore::append) after its first poll may leave
/// the batch appended or not (never half): a caller that needs to know retries
/// with the same idempotency key.
pub trait EventStore: Send + Sync + 'static {
    /// Appends one batch atomically. Checks the stream expectation (if any)
    /// atomically with the write. Returns the positions and stream version.
    fn append(&self, batch: AppendBatch) -> BoxFuture<'_, Result<Appended, StoreError>>;

    /// Up to `max` events with position `>= from`, in order. Empty when there is
    /// none yet. Never returns an event that a later read could precede with a
    /// lower position (gap-free).
    fn read(&self, from: Seq, max: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>>;

    /// A tail from position `from`: the events already stored, then live ones.
    fn tail(&self, from: Seq) -> Box<dyn StoreTail>;

    /// The events of stream `stream` with stream versions in `versions`, in order.
    fn read_stream(
        &self,
        stream: &str,
        versions: RangeInclusive<u64>,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>>;

    /// The version (number of events) of stream `stream`; 0 when it does not exist.
    fn stream_version(&self, stream: &str) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The position of the last event readable now, if any.
    fn last_position(&self) -> BoxFuture<'_, Result<Option<Seq>, StoreError>>;

    /// Makes every acknowledged append durable.
    fn sync(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Refuses further appends, makes everything durable, ends tails once they
    /// have read everything, and releases what the store holds. Closing twice is
    /// a no-op; a close whose future was dropped is finished by the next one.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Stores `bytes` as the snapshot of `state` at `position`, atomically
    /// (complete or absent), replacing one at the same position.
    fn write_snapshot(
        &self,
        state: &str,
        position: Seq,
        bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Stores the snapshot that `source` writes, at the position `source` returns, as
    /// [`write_snapshot`](Self::write_snapshot) does (complete or absent), once that
    /// position is durable in the log ([`sync`](Self::sync) runs after `source` and
    /// before the snapshot is committed). Returns the position.
    ///
    /// `source` is blocking work (it encodes a whole state): the store runs it off the
    /// async workers. The default collects its bytes and calls `write_snapshot`; the
    /// file store streams them into the snapshot's temporary file instead, so a snapshot
    /// is never held in memory whole.
    ///
    /// # Cancel safety
    ///
    /// A dropped call stores nothing or the whole snapshot; `source` may still run to
    /// its end on the blocking pool.
    fn write_snapshot_streamed(
        &self,
        state: &str,
        source: SnapshotSource,
    ) -> BoxFuture<'_, Result<Seq, StoreError>> {
        let state = state.to_owned();
        Box::pin(async move {
            let encoded = tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::new();
                source(&mut bytes).map(|position| (bytes, position))
            })
            .await
            .map_err(|e| StoreError::backend("run a snapshot encode on the blocking pool", e))?;
            let (bytes, position) = encoded
                .map_err(|e| StoreError::backend(format!("encode a snapshot of {state}"), e))?;
            self.sync().await?;
            self.write_snapshot(&state, position, bytes).await?;
            Ok(position)
        })
    }

    /// The positions of the stored snapshots of `state`, newest first.
    fn list_snapshots(&self, state: &str) -> BoxFuture<'_, Result<Vec<Seq>, StoreError>>;

    /// The snapshot of `state` at `position`, if stored.
    fn read_snapshot(
        &self,
        state: &str,
        position: Seq,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, StoreError>>;

    /// Removes the snapshot of `state` at `position` (no error if absent).
    fn remove_snapshot(&self, state: &str, position: Seq) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The names with at least one stored snapshot (states and process
    /// managers), sorted. Lets a tool list what a store holds without knowing
    /// the service's types; a store that cannot list returns
    /// [`StoreError::Unsupported`] (the default).
    fn snapshot_names(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let what = self.describe();
        Box::pin(async move {
            Err(StoreError::Unsupported {
                what,
                operation: "list snapshot names",
            })
        })
    }

    /// The names of the stored subscription checkpoints, sorted. A store that
    /// cannot list returns [`StoreError::Unsupported`] (the default).
    fn checkpoint_names(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let what = self.describe();
        Box::pin(async move {
            Err(StoreError::Unsupported {
                what,
                operation: "list checkpoint names",
            })
        })
    }

    /// Stores the checkpoint of subscription `name`: the last position it acknowledged.
    fn write_checkpoint(&self, name: &str, position: Seq) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The checkpoint of subscription `name`, if one was stored.
    fn read_checkpoint(&self, name: &str) -> BoxFuture<'_, Result<Option<Seq>, StoreError>>;

    /// Drops stored events wholly before `position` where the store can (whole
    /// segments in the file store). Returns how many units were removed; a store
    /// that cannot compact returns 0.
    fn compact_before(&self, position: Seq) -> BoxFuture<'_, Result<usize, StoreError>> {
        let _ = position;
        Box::pin(async { Ok(0) })
    }

    /// Walks the stored events and checks the hash chain (see
    /// `DbBuilder::chain_hashes`). A store that keeps no chain reports nothing checked.
    fn verify_chain(&self) -> BoxFuture<'_, Result<ChainReport, StoreError>> {
        Box::pin(async { Ok(ChainReport::default()) })
    }

    /// The hash of the last chained event, if the store keeps a hash chain.
    fn head_hash(&self) -> Option<[u8; 32]> {
        None
    }

    /// Up to `max` events from `from` if the store has them in memory now, without
    /// blocking or waiting; `None` when it would have to do I/O. The fast path of
    /// read-your-writes: a waiter folds the few events it waits for itself.
    fn read_cached(&self, from: Seq, max: usize) -> Option<Result<Vec<RecordedEvent>, StoreError>> {
        let _ = (from, max);
        None
    }

    /// A short, human-readable description for logs and `Debug` (e.g. the directory).
    fn describe(&self) -> String;
}

/// A live tail over a store: existing events from a position, then new ones.
pub trait StoreTail: Send {
    /// Waits until at least one event is available and returns up to `max` of
    /// them, in order. Ends with [`StoreError::Closed`] once the store is closed
    /// and every event was returned.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped, no event is lost; the next call
    /// returns from the same position.
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>>;

    /// The position of the next event this tail will return (at least).
    fn position(&self) -> Seq;
}
