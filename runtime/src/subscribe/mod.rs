//! Subscriptions: the Db's one log as a `Stream`, from a stored checkpoint on.
//!
//! `db.subscribe("mailer").events::<OrderEvent>().start().await?` reads the
//! subscription's checkpoint from the store, then yields every matching event
//! after it — the stored ones first, then live ones — through the store's tail.
//! The consumer acknowledges positions ([`Subscription::ack`]); the store keeps
//! the last one durably, so a restart resumes after it.
//!
//! **Delivery is at-least-once**: events after the last ack are delivered again
//! after a crash or restart. `meta.seq` (the position in the log) is unique and
//! increasing: it is what a consumer deduplicates on (e.g. store the last
//! position handled with the side effect, and skip anything at or below it).
//!
//! **Bounded**: nothing reads ahead. The tail is pulled when the consumer polls,
//! one batch at a time ([`SubscriptionBuilder::batch_size`], default 1024), so
//! a slow consumer holds at most one batch and slows only itself.
//!
//! One consumer per name: a second `start` of a running name in the same Db
//! is refused ([`SubscribeError::AlreadyActive`]); two processes sharing a
//! store must not run the same name (their acks would interleave).
//!
//! [`Db::events`] is the unnamed form: a catch-up + live stream from a
//! position, with no checkpoint.
//!
//! # Cancel safety
//!
//! The streams are cancel-safe: the read in flight lives in the stream, not in
//! the future of `next()`, so dropping `next()` (in a `select!`) loses nothing
//! (the store tail's `next_batch` is cancel-safe, and the stream keeps its future).

mod error;
mod pull;

use std::collections::HashSet;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

pub use error::SubscribeError;
pub(crate) use pull::Pull;

use crate::Seq;
use crate::db::Db;
use crate::event::Event;
use crate::state::Meta;
use crate::store::{EventStore, RecordedEvent};

/// Default number of records fetched from the store at a time.
const DEFAULT_BATCH: usize = 1024;

/// Filtered-out records scanned in one poll before yielding to the executor.
const SCAN_BUDGET: usize = 4096;

/// Decodes `record` as `E` if it is of type `E` (its stable name); `Ok(None)` otherwise.
pub fn decode<E: Event>(record: &RecordedEvent) -> Result<Option<E>, crate::CodecError> {
    if &*record.name != E::NAME {
        return Ok(None);
    }
    E::decode(record.schema_version, &record.payload).map(Some)
}

mod sealed {
    pub trait Sealed {}
}

/// Which events a subscription yields, and as what (a type state of
/// [`SubscriptionBuilder`]): [`AllEvents`] and [`Several`] yield raw
/// [`RecordedEvent`]s, [`Only<E>`] yields decoded `E`s.
pub trait Selection: sealed::Sealed + Send + 'static {
    /// What the stream yields (with the event's [`Meta`]).
    type Item: Send;
    /// The selection once one more event type is added.
    type And<F: Event>: Selection;
    /// Turns a matching record into an item.
    #[doc(hidden)]
    fn item(record: RecordedEvent) -> Result<Self::Item, SubscribeError>;
}

/// Every event type (no type filter): yields `(RecordedEvent, Meta)`.
#[derive(Debug)]
pub struct AllEvents;

/// One event type: yields `(E, Meta)`, decoded and upcast.
#[derive(Debug)]
pub struct Only<E>(PhantomData<fn() -> E>);

/// Several event types: yields `(RecordedEvent, Meta)`; decode with [`decode`].
#[derive(Debug)]
pub struct Several;

impl sealed::Sealed for AllEvents {}
impl<E> sealed::Sealed for Only<E> {}
impl sealed::Sealed for Several {}

impl Selection for AllEvents {
    type Item = (RecordedEvent, Meta);
    type And<F: Event> = Only<F>;
    fn item(record: RecordedEvent) -> Result<Self::Item, SubscribeError> {
        let meta = Meta::of(&record);
        Ok((record, meta))
    }
}

impl<E: Event> Selection for Only<E> {
    type Item = (E, Meta);
    type And<F: Event> = Several;
    fn item(record: RecordedEvent) -> Result<Self::Item, SubscribeError> {
        let event = E::decode(record.schema_version, &record.payload).map_err(|source| {
            SubscribeError::Decode {
                position: record.position,
                source,
            }
        })?;
        Ok((event, Meta::of(&record)))
    }
}

impl Selection for Several {
    type Item = (RecordedEvent, Meta);
    type And<F: Event> = Several;
    fn item(record: RecordedEvent) -> Result<Self::Item, SubscribeError> {
        AllEvents::item(record)
    }
}

/// Which records pass: event type names (empty: all) and a stream prefix.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    names: Vec<&'static str>,
    prefix: Option<String>,
}

impl Filter {
    pub(crate) fn matches(&self, record: &RecordedEvent) -> bool {
        if !self.names.is_empty() && !self.names.iter().any(|n| **n == *record.name) {
            return false;
        }
        match &self.prefix {
            None => true,
            Some(prefix) => record
                .stream
                .as_ref()
                .is_some_and(|s| s.id.starts_with(prefix.as_str())),
        }
    }
}

/// Configures a named subscription; made by [`Db::subscribe`].
#[must_use = "a subscription does nothing until `.start().await`"]
pub struct SubscriptionBuilder<S: Selection = AllEvents> {
    db: Db,
    name: String,
    filter: Filter,
    /// The first unregistered event type named in a filter.
    unknown: Option<crate::DbError>,
    batch: usize,
    _selection: PhantomData<fn() -> S>,
}

impl<S: Selection> SubscriptionBuilder<S> {
    /// Only events of type `E` (may be given several times: any of them). With
    /// one type the stream yields `(E, Meta)`; with several, `(RecordedEvent, Meta)`.
    /// `E` must be registered with the Db, or `start` fails naming it.
    pub fn events<E: Event>(mut self) -> SubscriptionBuilder<S::And<E>> {
        if self.unknown.is_none()
            && let Err(error) = self.db.inner.registry.get::<E>()
        {
            self.unknown = Some(error);
        }
        self.filter.names.push(E::NAME);
        SubscriptionBuilder {
            db: self.db,
            name: self.name,
            filter: self.filter,
            unknown: self.unknown,
            batch: self.batch,
            _selection: PhantomData,
        }
    }

    /// Only events of streams whose id starts with `prefix` (e.g. `"order/"`);
    /// events appended to no stream never match.
    pub fn stream_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.filter.prefix = Some(prefix.into());
        self
    }

    /// How many records to fetch from the store at a time (default 1024; the
    /// most a slow consumer keeps buffered).
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch = records.max(1);
        self
    }

    /// Reads the checkpoint and starts the stream after it (from the first
    /// event if the subscription never acknowledged anything).
    ///
    /// # Errors
    ///
    /// [`SubscribeError::InvalidName`] when the store cannot keep a checkpoint
    /// under this name, [`SubscribeError::UnknownEvent`] for a filter on an
    /// unregistered type, [`SubscribeError::AlreadyActive`] when a subscription of
    /// this name is running in this Db, [`SubscribeError::Store`] when the
    /// checkpoint cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads the checkpoint; dropped, it leaves nothing
    /// behind (the name is free again).
    pub async fn start(self) -> Result<Subscription<S>, SubscribeError> {
        check_name(&self.name)?;
        if let Some(crate::DbError::UnknownEvent {
            event, rust_type, ..
        }) = self.unknown
        {
            return Err(SubscribeError::UnknownEvent { event, rust_type });
        }
        let active = Active::claim(&self.db, &self.name)?;
        let store = Arc::clone(self.db.store());
        let checkpoint = store
            .read_checkpoint(&self.name)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::InvalidName { reason, .. } => {
                    SubscribeError::InvalidName {
                        name: self.name.clone(),
                        reason,
                    }
                }
                other => SubscribeError::Store {
                    name: self.name.clone(),
                    source: other,
                },
            })?;
        let from = checkpoint.map_or(1, |c| c + 1);
        crate::observability::subscription_lag(&self.name, &*store, from - 1, checkpoint);
        Ok(Subscription {
            pull: Pull::new(store.tail(from), self.batch),
            filter: self.filter,
            store,
            acked: checkpoint,
            lag_recorded_at: from - 1,
            scanned: from - 1,
            _active: active,
            name: self.name,
            _selection: PhantomData,
        })
    }
}

/// The runtime's own checks, the same for every store: the store may refuse more.
fn check_name(name: &str) -> Result<(), SubscribeError> {
    let invalid = |reason: &str| SubscribeError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    if name.len() > 200 {
        return Err(invalid("it is longer than 200 bytes"));
    }
    Ok(())
}

/// The names of the subscriptions running in one Db.
#[derive(Debug, Default)]
pub(crate) struct ActiveNames(parking_lot::Mutex<HashSet<String>>);

impl ActiveNames {
    /// The names of the subscriptions running now.
    pub(crate) fn names(&self) -> Vec<String> {
        self.0.lock().iter().cloned().collect()
    }
}

/// A claimed subscription name, released on drop.
struct Active {
    db: Db,
    name: String,
}

impl Active {
    fn claim(db: &Db, name: &str) -> Result<Self, SubscribeError> {
        let names = &db.inner.extensions.subscriptions;
        if !names.0.lock().insert(name.to_owned()) {
            return Err(SubscribeError::AlreadyActive {
                name: name.to_owned(),
            });
        }
        Ok(Active {
            db: db.clone(),
            name: name.to_owned(),
        })
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.db
            .inner
            .extensions
            .subscriptions
            .0
            .lock()
            .remove(&self.name);
    }
}

/// A named subscription: a [`Stream`] of the matching events after its
/// checkpoint, stored then live, in log order. Ends when the Db is closed
/// (after every event appended before the close). See the [module docs](self).
pub struct Subscription<S: Selection = AllEvents> {
    pull: Pull,
    filter: Filter,
    store: Arc<dyn EventStore>,
    name: String,
    acked: Option<Seq>,
    /// The pull's fetched position when the lag was last recorded (once per batch).
    lag_recorded_at: Seq,
    /// The last position read from the store (delivered or filtered out).
    scanned: Seq,
    _active: Active,
    _selection: PhantomData<fn() -> S>,
}

impl<S: Selection> std::fmt::Debug for Subscription<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("acked", &self.acked)
            .field("scanned", &self.scanned)
            .finish_non_exhaustive()
    }
}

impl<S: Selection> Subscription<S> {
    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last position acknowledged (stored), if any.
    pub fn acked(&self) -> Option<Seq> {
        self.acked
    }

    /// The last position read from the log, delivered or filtered out (0 before
    /// the first). Acknowledging it skips the filtered-out events after the
    /// last delivered one on restart.
    pub fn scanned(&self) -> Seq {
        self.scanned
    }

    /// Stores `position` as the checkpoint: after a restart the subscription
    /// resumes after it. An ack at or below the current checkpoint is a no-op
    /// (checkpoints only move forward). Each ack syncs the store (so the
    /// checkpoint never points past events a crash could lose) and makes one
    /// durable write (a small file, fsynced, for the file store): ack every few
    /// events rather than every event when that matters.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::AckAhead`] for a position not read yet,
    /// [`SubscribeError::Store`] when the write fails.
    ///
    /// # Cancel safety
    ///
    /// Dropped mid-write, the stored checkpoint is the old or the new one
    /// (written atomically), and [`acked`](Self::acked) still says the old one.
    pub async fn ack(&mut self, position: Seq) -> Result<(), SubscribeError> {
        if position > self.scanned {
            return Err(SubscribeError::AckAhead {
                name: self.name.clone(),
                position,
                scanned: self.scanned,
            });
        }
        if self.acked.is_some_and(|a| a >= position) {
            return Ok(());
        }
        let failed = |source| SubscribeError::Store {
            name: self.name.clone(),
            source,
        };
        // Under a lax fsync policy a crash may lose the last appends: the
        // checkpoint must not point past events the log could lose.
        self.store.sync().await.map_err(failed)?;
        self.store
            .write_checkpoint(&self.name, position)
            .await
            .map_err(failed)?;
        self.acked = Some(position);
        crate::observability::subscription_lag(
            &self.name,
            &*self.store,
            self.pull.fetched(),
            self.acked,
        );
        Ok(())
    }
}

impl<S: Selection> Stream for Subscription<S> {
    type Item = Result<S::Item, SubscribeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let name = &this.name;
        let polled =
            poll_filtered::<S>(&mut this.pull, &this.filter, &mut this.scanned, cx, || {
                name.clone()
            });
        let fetched = this.pull.fetched();
        if fetched != this.lag_recorded_at {
            this.lag_recorded_at = fetched;
            crate::observability::subscription_lag(name, &*this.store, fetched, this.acked);
        }
        polled
    }
}

/// The next record passing `filter`, as an item of `S`; yields to the executor
/// after [`SCAN_BUDGET`] filtered-out records.
fn poll_filtered<S: Selection>(
    pull: &mut Pull,
    filter: &Filter,
    scanned: &mut Seq,
    cx: &mut Context<'_>,
    name: impl Fn() -> String,
) -> Poll<Option<Result<S::Item, SubscribeError>>> {
    for _ in 0..SCAN_BUDGET {
        match pull.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(source))) => {
                return Poll::Ready(Some(Err(SubscribeError::Store {
                    name: name(),
                    source,
                })));
            }
            Poll::Ready(Some(Ok(record))) => {
                *scanned = record.position;
                if filter.matches(&record) {
                    return Poll::Ready(Some(S::item(record)));
                }
            }
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// An unnamed catch-up + live stream of every event from a position, without
/// checkpoint: made by [`Db::events`]. Yields `(RecordedEvent, Meta)`; ends when
/// the Db is closed. Cancel-safe (see the [module docs](self)).
pub struct Events {
    pull: Pull,
    scanned: Seq,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("position", &self.pull.position())
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The position of the next event this stream yields (at least).
    pub fn position(&self) -> Seq {
        self.pull.position()
    }
}

impl Stream for Events {
    type Item = Result<(RecordedEvent, Meta), SubscribeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        poll_filtered::<AllEvents>(
            &mut this.pull,
            &Filter::default(),
            &mut this.scanned,
            cx,
            String::new,
        )
    }
}

impl Db {
    /// Starts configuring the durable subscription `name` (see
    /// [`crate::subscribe`]): filters, then [`SubscriptionBuilder::start`].
    ///
    /// ```
    /// # use foldkit::prelude::*;
    /// # use futures::StreamExt;
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    /// # enum OrderEvent { Placed { id: u64 } }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir()?;
    /// let db = Db::builder(dir.path()).event::<OrderEvent>().open().await?;
    /// db.append(OrderEvent::Placed { id: 1 }).await?;
    /// let mut sub = db.subscribe("mailer").events::<OrderEvent>().start().await?;
    /// let (event, meta) = sub.next().await.expect("one event")?;
    /// assert_eq!(event, OrderEvent::Placed { id: 1 });
    /// sub.ack(meta.seq).await?; // stored: a restart resumes after it
    /// # db.close().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn subscribe(&self, name: impl Into<String>) -> SubscriptionBuilder<AllEvents> {
        SubscriptionBuilder {
            db: self.clone(),
            name: name.into(),
            filter: Filter::default(),
            unknown: None,
            batch: DEFAULT_BATCH,
            _selection: PhantomData,
        }
    }

    /// Every event from position `from` on (`Seq::MIN` or 1: from the start),
    /// stored then live, with no checkpoint (see [`Events`]).
    pub fn events(&self, from: Seq) -> Events {
        Events {
            pull: Pull::new(self.store().tail(from.max(1)), DEFAULT_BATCH),
            scanned: from.saturating_sub(1),
        }
    }
}
