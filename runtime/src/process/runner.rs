//! The task that runs one process manager: restore, scan, tail, react, checkpoint.
//!
//! Invariants:
//! - the snapshot at position `c` holds the state with every event `<= c`
//!   applied and every reaction of those events done or parked (it is only
//!   written between events);
//! - a reaction is dispatched only if the log after its causing event holds no
//!   event carrying its marker (`done`, filled by the scan at start; a rescan
//!   before every retry);
//! - a task stopped in the middle of an event (close, a dropped Db) writes no
//!   checkpoint: its state has the event applied but not all its reactions done.

use std::any::Any;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Instant;

use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::ProcessManager;
use super::dead::{DeadLetter, DeadLetterId};
use super::error::ProcessError;
use super::persist;
use super::reaction::{Kind, Reaction};
use super::setup::{Declare, ProcessOptions};
use crate::Seq;
use crate::db::{Db, DbError, DbInner};
use crate::state::Meta;
use crate::store::{AppendBatch, EventContext, EventStore, NewEvent, RecordedEvent, StoreError};

/// Records read from the store at a time.
const BATCH: usize = 256;
/// Reactions dispatched between two yields to the executor.
const YIELD_EVERY: usize = 16;
/// Snapshots kept per manager.
const KEEP: usize = 2;
/// The metadata key that marks a reaction's events.
pub(crate) const MARKER: &str = "foldkit.reaction";

/// Why one try of a reaction failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// Worth trying again (a conflict, a rejection, an I/O error); `false`:
    /// never works (an undeclared aggregate, undecodable bytes).
    pub(crate) retry: bool,
    /// The Db is closing: stop, this is no failure of the reaction.
    pub(crate) closed: bool,
}

impl Failure {
    pub(crate) fn retry(message: String) -> Self {
        Failure {
            message,
            retry: true,
            closed: false,
        }
    }

    pub(crate) fn permanent(message: String) -> Self {
        Failure {
            message,
            retry: false,
            closed: false,
        }
    }

    pub(crate) fn from_db(error: &DbError) -> Self {
        Failure {
            message: crate::chain::Chain(error).to_string(),
            retry: true,
            closed: error.is_closed(),
        }
    }
}

/// What the API asks a manager's task.
pub(crate) enum Request {
    Retry(DeadLetterId, oneshot::Sender<Result<(), ProcessError>>),
    Discard(DeadLetterId, oneshot::Sender<Result<(), ProcessError>>),
}

/// Where a manager is.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub(crate) processed: Seq,
    pub(crate) stopped: Option<Arc<str>>,
}

/// What the task and the handles share.
pub(crate) struct Shared<P: ProcessManager> {
    pub(crate) state: RwLock<P::State>,
    pub(crate) progress: watch::Sender<Progress>,
    dead: Mutex<Vec<DeadLetter>>,
    requests: mpsc::Sender<Request>,
}

/// What the Db holds of a running manager. The task holds only `shared` and
/// the receiving end of `stop`: when the Db is dropped without `close`, the
/// slot goes, `stop` is dropped, and the task ends (releasing the store).
pub(crate) struct Slot<P: ProcessManager> {
    pub(crate) shared: Arc<Shared<P>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The type-erased face of a running manager, held by the Db.
pub(crate) trait ManagerSlot: Any + Send + Sync {
    fn name(&self) -> &'static str;
    fn dead_letters(&self) -> Vec<DeadLetter>;
    fn request(&self, request: Request) -> Result<(), ProcessError>;
    fn stop(&self);
    fn take_task(&self) -> Option<JoinHandle<()>>;
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<P: ProcessManager> ManagerSlot for Slot<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead.lock().clone()
    }

    fn request(&self, request: Request) -> Result<(), ProcessError> {
        self.shared.requests.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ProcessError::Stopped {
                name: P::NAME,
                position: self.shared.progress.borrow().processed,
                reason: "too many dead-letter requests waiting".into(),
            },
            mpsc::error::TrySendError::Closed(_) => ProcessError::Closed,
        })
    }

    fn stop(&self) {
        self.stop.send_replace(true);
    }

    fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task.lock().take()
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// The store name of `P`'s snapshots.
fn snapshot_name<P: ProcessManager>() -> String {
    format!("{}{}", persist::SNAPSHOT_PREFIX, P::NAME)
}

fn store_error<P: ProcessManager>(source: StoreError) -> DbError {
    DbError::Process(match source {
        StoreError::InvalidName { reason, .. } => ProcessError::InvalidName {
            name: P::NAME,
            reason,
        },
        source => ProcessError::Store {
            process_manager: P::NAME,
            source,
        },
    })
}

/// Restores `P` from its newest snapshot and spawns its task.
pub(crate) fn start<P: ProcessManager>(
    db: Db,
    options: ProcessOptions,
) -> BoxFuture<'static, Result<Arc<dyn ManagerSlot>, DbError>> {
    Box::pin(async move {
        let store = Arc::clone(db.store());
        let name = snapshot_name::<P>();
        let positions = store
            .list_snapshots(&name)
            .await
            .map_err(store_error::<P>)?;
        let mut restored = None;
        let mut first_failure = None;
        for position in positions {
            let Some(bytes) = store
                .read_snapshot(&name, position)
                .await
                .map_err(store_error::<P>)?
            else {
                continue;
            };
            match persist::decode::<P::State>(P::NAME, &bytes) {
                Ok(found) => {
                    restored = Some((position, found));
                    break;
                }
                Err(e) => {
                    first_failure.get_or_insert((position, e.to_string()));
                }
            }
            tracing::warn!(
                process_manager = P::NAME,
                position,
                "foldkit: a process manager snapshot does not decode; trying an older one"
            );
        }
        let (checkpoint, (state, dead)) = match (restored, first_failure) {
            (Some(found), _) => found,
            (None, Some((position, reason))) => {
                return Err(DbError::Process(ProcessError::Snapshot {
                    process_manager: P::NAME,
                    position,
                    reason,
                }));
            }
            (None, None) => (0, (P::State::default(), Vec::new())),
        };
        let (requests, requests_rx) = mpsc::channel(64);
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared::<P> {
            state: RwLock::new(state),
            progress: watch::Sender::new(Progress {
                processed: checkpoint,
                stopped: None,
            }),
            dead: Mutex::new(dead),
            requests,
        });
        let runner = Runner::<P> {
            shared: Arc::clone(&shared),
            db: Arc::downgrade(&db.inner),
            store,
            declared: Declare::of(),
            options,
            processed: checkpoint,
            saved: checkpoint,
            saved_at: Instant::now(),
            done: HashSet::new(),
            stop: stop_rx,
        };
        let task = tokio::spawn(runner.run(requests_rx));
        let slot = Slot {
            shared,
            stop,
            task: Mutex::new(Some(task)),
        };
        Ok(Arc::new(slot) as Arc<dyn ManagerSlot>)
    })
}

/// How processing stopped early.
enum Halt {
    /// Close, stop request, or the Db dropped: no checkpoint of a half-done event.
    Stopped,
    /// The manager cannot go on (an undecodable event, a store error).
    Failed(String),
}

struct Runner<P: ProcessManager> {
    shared: Arc<Shared<P>>,
    db: Weak<DbInner>,
    store: Arc<dyn EventStore>,
    declared: Declare<P>,
    options: ProcessOptions,
    /// Every event up to here is applied and its reactions done or parked.
    processed: Seq,
    /// The position of the last checkpoint written.
    saved: Seq,
    saved_at: Instant,
    /// Reactions found in the log after the checkpoint: (causation, index).
    done: HashSet<(Seq, u32)>,
    stop: watch::Receiver<bool>,
}

impl<P: ProcessManager> Runner<P> {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let halt = self.serve(&mut requests).await;
        match halt {
            Halt::Stopped => {}
            Halt::Failed(reason) => {
                tracing::error!(process_manager = P::NAME, position = self.processed + 1, %reason, "foldkit: process manager stopped");
                self.shared
                    .progress
                    .send_modify(|p| p.stopped = Some(Arc::from(reason.as_str())));
            }
        }
        self.shared.progress.send_modify(|p| {
            p.stopped
                .get_or_insert_with(|| Arc::from("the Db was closed"));
        });
        // Refuse requests from now on; answer those waiting.
        requests.close();
        while let Ok(request) = requests.try_recv() {
            let (Request::Retry(_, reply) | Request::Discard(_, reply)) = request;
            let _ = reply.send(Err(ProcessError::Closed));
        }
    }

    /// The main loop; returns why it ended. Writes the last checkpoint when it
    /// ends between events.
    async fn serve(&mut self, requests: &mut mpsc::Receiver<Request>) -> Halt {
        match self.store.last_position().await {
            Ok(Some(last)) if last > self.processed => {
                match self.scan(self.processed + 1, last).await {
                    Ok(done) => self.done = done,
                    Err(e) => return Halt::Failed(crate::chain::Chain(&e).to_string()),
                }
            }
            Ok(_) => {}
            Err(e) => return Halt::Failed(crate::chain::Chain(&e).to_string()),
        }
        let mut tail = self.store.tail(self.processed + 1);
        loop {
            if *self.stop.borrow() {
                if self.processed > self.saved {
                    self.checkpoint().await;
                }
                return Halt::Stopped;
            }
            let unsaved = self.processed > self.saved;
            let pause = (self.options.checkpoint_interval).saturating_sub(self.saved_at.elapsed());
            tokio::select! {
                biased;
                changed = self.stop.changed() => {
                    if changed.is_err() {
                        return Halt::Stopped; // the Db was dropped
                    }
                }
                Some(request) = requests.recv() => self.answer(request).await,
                batch = tail.next_batch(BATCH) => match batch {
                    Ok(records) => {
                        if let Err(halt) = self.process(&records).await {
                            return halt;
                        }
                    }
                    Err(StoreError::Closed) => return Halt::Stopped,
                    Err(e) => return Halt::Failed(crate::chain::Chain(&e).to_string()),
                },
                _ = tokio::time::sleep(pause), if unsaved => self.checkpoint().await,
            }
        }
    }

    /// Folds and reacts to one batch, then checkpoints if it is time.
    async fn process(&mut self, records: &[RecordedEvent]) -> Result<(), Halt> {
        let mut parked = false;
        let mut dispatched = 0usize;
        for record in records {
            if record.position <= self.processed {
                continue;
            }
            if let Some(input) = self.declared.input(&record.name) {
                let meta = Meta::of(record);
                let reactions = {
                    let mut state = self.shared.state.write();
                    (input.handle)(&mut state, record, &meta)
                };
                let reactions = reactions.map_err(|e| {
                    Halt::Failed(format!(
                        "the event at position {} does not decode: {}",
                        record.position,
                        crate::chain::Chain(&e)
                    ))
                })?;
                for (index, reaction) in reactions.into_iter().enumerate() {
                    let index = u32::try_from(index).unwrap_or(u32::MAX);
                    if self.done.remove(&(record.position, index)) {
                        continue; // took effect before a restart
                    }
                    parked |= self.react(&meta, index, reaction).await?;
                    // An append may complete without yielding (in-memory
                    // store, no fsync): do not starve the worker's other tasks.
                    dispatched += 1;
                    if dispatched.is_multiple_of(YIELD_EVERY) {
                        tokio::task::yield_now().await;
                    }
                }
                self.processed = record.position;
            } else {
                self.processed = record.position;
            }
        }
        self.publish();
        self.record_lag();
        let due = self.processed - self.saved >= self.options.checkpoint_every
            || (self.processed > self.saved
                && self.saved_at.elapsed() >= self.options.checkpoint_interval);
        if parked || due {
            self.checkpoint().await;
        }
        tokio::task::yield_now().await;
        Ok(())
    }

    fn record_lag(&self) {
        crate::observability::process_manager_lag(
            P::NAME,
            &*self.store,
            self.processed,
            self.saved,
        );
    }

    fn publish(&self) {
        let processed = self.processed;
        self.shared.progress.send_if_modified(|p| {
            let changed = p.processed != processed;
            p.processed = processed;
            changed
        });
    }

    /// Dispatches one reaction with retries; `Ok(true)` when it was parked.
    async fn react(&mut self, meta: &Meta, index: u32, reaction: Reaction) -> Result<bool, Halt> {
        let causation = meta.seq;
        let correlation = (reaction.correlation_id.clone())
            .or_else(|| meta.correlation_id().map(str::to_owned))
            .or_else(|| meta.stream_id().map(str::to_owned))
            .unwrap_or_else(|| format!("seq-{causation}"));
        let retry = self.options.retry;
        let mut attempts = 0;
        let error = loop {
            attempts += 1;
            let failure = match self
                .dispatch(causation, index, &correlation, &reaction)
                .await
            {
                Ok(()) => return Ok(false),
                Err(failure) if failure.closed => return Err(Halt::Stopped),
                Err(failure) => failure,
            };
            tracing::warn!(process_manager = P::NAME, causation, index, attempt = attempts, reaction = %reaction.describe(), error = %failure.message, "foldkit: a reaction failed");
            if !failure.retry || attempts >= retry.attempts {
                break failure.message;
            }
            let pause = retry.backoff(attempts + 1);
            tokio::select! {
                biased;
                _ = self.stop.changed() => return Err(Halt::Stopped),
                _ = tokio::time::sleep(pause) => {}
            }
            // An append that reported an error may have landed.
            match self.took_effect(causation, index).await {
                Ok(true) => return Ok(false),
                Ok(false) => {}
                Err(e) => return Err(Halt::Failed(crate::chain::Chain(&e).to_string())),
            }
        };
        let id = DeadLetterId {
            process_manager: P::NAME.to_owned(),
            causation,
            index,
        };
        tracing::error!(process_manager = P::NAME, dead_letter = %id, reaction = %reaction.describe(), %error, "foldkit: a reaction is parked as a dead letter");
        let letter = DeadLetter {
            id,
            reaction,
            correlation_id: correlation,
            error,
            attempts,
            parked_at: now_ms(),
        };
        {
            let mut dead = self.shared.dead.lock();
            dead.retain(|d| d.id != letter.id);
            dead.push(letter);
        }
        Ok(true)
    }

    /// One try of a reaction.
    async fn dispatch(
        &self,
        causation: Seq,
        index: u32,
        correlation: &str,
        reaction: &Reaction,
    ) -> Result<(), Failure> {
        let Some(inner) = self.db.upgrade() else {
            return Err(Failure {
                message: "the Db was dropped".into(),
                retry: false,
                closed: true,
            });
        };
        let db = Db { inner };
        let context = EventContext::new()
            .correlation_id(correlation)
            .caused_by(causation)
            .actor(format!("process-manager:{}", P::NAME))
            .with(MARKER, format!("{}#{index}", P::NAME));
        let key = format!("foldkit.pm/{}/{causation}/{index}", P::NAME);
        match &reaction.kind {
            Kind::Command {
                aggregate,
                id,
                command,
            } => {
                let target = self.declared.target(aggregate).ok_or_else(|| {
                    Failure::permanent(format!(
                        "aggregate `{aggregate}` is not declared by process manager `{}`: \
                         add `d.commands::<..>()` to its `declare`",
                        P::NAME
                    ))
                })?;
                (target.dispatch)(db, id.clone(), command.clone(), context, key).await
            }
            Kind::Append {
                stream,
                name,
                version,
                payload,
            } => {
                if !db.inner.registry.knows(name) {
                    return Err(Failure::permanent(format!(
                        "event type `{name}` is not registered: add `d.appends::<..>()` to the \
                         `declare` of process manager `{}`",
                        P::NAME
                    )));
                }
                let event = NewEvent {
                    name: Arc::from(name.as_str()),
                    schema_version: *version,
                    payload: payload.clone(),
                };
                let mut batch = AppendBatch::new(vec![event])
                    .with_context(Arc::new(context))
                    .idempotency_key(key);
                if let Some(stream) = stream {
                    batch = batch.to_stream(stream, crate::ExpectedVersion::Any);
                }
                db.append_raw(batch)
                    .await
                    .map(drop)
                    .map_err(|e| Failure::from_db(&e))
            }
            Kind::Invalid { what, reason } => Err(Failure::permanent(format!(
                "the reaction's {what} could not be encoded: {reason}"
            ))),
        }
    }

    /// The reactions of this manager in the log from `from` to `to`: (causation, index).
    async fn scan(&self, from: Seq, to: Seq) -> Result<HashSet<(Seq, u32)>, StoreError> {
        let mut found = HashSet::new();
        let mut next = from;
        while next <= to {
            let records = self.store.read(next, 1024).await?;
            let Some(last) = records.last() else { break };
            next = last.position + 1;
            for record in records.iter().filter(|r| r.position <= to) {
                if let Some(key) = reaction_of::<P>(record) {
                    found.insert(key);
                }
            }
        }
        Ok(found)
    }

    /// Whether reaction `index` of the event at `causation` is in the log.
    async fn took_effect(&self, causation: Seq, index: u32) -> Result<bool, StoreError> {
        let Some(last) = self.store.last_position().await? else {
            return Ok(false);
        };
        if last <= causation {
            return Ok(false);
        }
        Ok(self
            .scan(causation + 1, last)
            .await?
            .contains(&(causation, index)))
    }

    /// Writes the state, the dead letters and the position as one snapshot.
    /// Syncs the store first: under a lax fsync policy a crash may lose the
    /// last acknowledged appends, and a checkpoint must never claim reactions
    /// (or events) the log lost.
    async fn checkpoint(&mut self) {
        if let Err(error) = self.store.sync().await {
            tracing::warn!(process_manager = P::NAME, error = %crate::chain::Chain(&error), "foldkit: cannot sync before a process manager checkpoint; retried later");
            return;
        }
        let bytes = {
            let state = self.shared.state.read();
            let dead = self.shared.dead.lock();
            persist::encode(P::NAME, &dead, &*state)
        };
        let name = snapshot_name::<P>();
        let written = match bytes {
            Ok(bytes) => {
                self.store
                    .write_snapshot(&name, self.processed, bytes)
                    .await
            }
            Err(e) => {
                tracing::error!(process_manager = P::NAME, error = %e, "foldkit: the process manager state does not encode; no checkpoint");
                return;
            }
        };
        if let Err(error) = written {
            tracing::warn!(process_manager = P::NAME, error = %crate::chain::Chain(&error), "foldkit: a process manager checkpoint failed; retried later");
            return;
        }
        self.saved = self.processed;
        self.record_lag();
        self.saved_at = Instant::now();
        self.done
            .retain(|(causation, _)| *causation > self.processed);
        if let Ok(all) = self.store.list_snapshots(&name).await {
            for old in all.into_iter().skip(KEEP) {
                let _ = self.store.remove_snapshot(&name, old).await;
            }
        }
    }

    /// Serves a dead-letter request (between batches).
    async fn answer(&mut self, request: Request) {
        let (id, reply, retry) = match request {
            Request::Retry(id, reply) => (id, reply, true),
            Request::Discard(id, reply) => (id, reply, false),
        };
        let letter = self.shared.dead.lock().iter().find(|d| d.id == id).cloned();
        let Some(letter) = letter else {
            let _ = reply.send(Err(ProcessError::UnknownDeadLetter { id: id.to_string() }));
            return;
        };
        let outcome = if retry {
            self.retry(&letter).await
        } else {
            Ok(())
        };
        {
            let mut dead = self.shared.dead.lock();
            match &outcome {
                Ok(()) => dead.retain(|d| d.id != id),
                Err(ProcessError::RetryFailed { error, .. }) => {
                    if let Some(d) = dead.iter_mut().find(|d| d.id == id) {
                        d.attempts += 1;
                        d.error.clone_from(error);
                    }
                }
                Err(_) => {}
            }
        }
        self.checkpoint().await;
        let _ = reply.send(outcome);
    }

    async fn retry(&self, letter: &DeadLetter) -> Result<(), ProcessError> {
        let DeadLetterId {
            causation, index, ..
        } = letter.id;
        let store_error = |source| ProcessError::Store {
            process_manager: P::NAME,
            source,
        };
        if self
            .took_effect(causation, index)
            .await
            .map_err(store_error)?
        {
            return Ok(());
        }
        match self
            .dispatch(causation, index, &letter.correlation_id, &letter.reaction)
            .await
        {
            Ok(()) => Ok(()),
            Err(failure) if failure.closed => Err(ProcessError::Closed),
            Err(failure) => Err(ProcessError::RetryFailed {
                id: letter.id.to_string(),
                error: failure.message,
            }),
        }
    }
}

/// The (causation, index) of `record` if it is a reaction of manager `P`.
fn reaction_of<P: ProcessManager>(record: &RecordedEvent) -> Option<(Seq, u32)> {
    let context = record.context.as_deref()?;
    let causation = context.causation?;
    let (name, index) = context.metadata.get(MARKER)?.rsplit_once('#')?;
    (name == P::NAME).then_some(())?;
    Some((causation, index.parse().ok()?))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
