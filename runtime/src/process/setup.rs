//! Registering process managers: what each declares, the builder lines, the
//! checks made at open, and the Db's record of what runs.

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::error::ProcessError;
use super::reaction::Reaction;
use super::runner::{self, Failure, ManagerSlot};
use super::{ProcessManager, Reacts};
use crate::aggregate::{Aggregate, AggregateError};
use crate::db::{Db, DbBuilder, DbError, ExecuteError};
use crate::event::{CodecError, Event};
use crate::state::{EventType, Meta};
use crate::store::{EventContext, RecordedEvent};

/// Decodes one record, folds it and returns the reactions.
pub(crate) type Handler<P> = fn(
    &mut <P as ProcessManager>::State,
    &RecordedEvent,
    &Meta,
) -> Result<Vec<Reaction>, CodecError>;

/// Runs one command reaction: (db, instance id, encoded command, context, key).
pub(crate) type Dispatch =
    fn(Db, String, Vec<u8>, EventContext, String) -> BoxFuture<'static, Result<(), Failure>>;

/// An event type a process manager reacts to.
pub(crate) struct Input<P: ProcessManager> {
    pub(crate) event: EventType,
    pub(crate) handle: Handler<P>,
}

/// An aggregate a process manager commands.
pub(crate) struct Target {
    pub(crate) aggregate: &'static str,
    pub(crate) rust_name: &'static str,
    pub(crate) dispatch: Dispatch,
}

/// What a process manager declares in [`ProcessManager::declare`].
pub struct Declare<P: ProcessManager> {
    pub(crate) inputs: Vec<Input<P>>,
    pub(crate) targets: Vec<Target>,
    pub(crate) appends: Vec<EventType>,
    _manager: PhantomData<fn() -> P>,
}

impl<P: ProcessManager> Declare<P> {
    pub(crate) fn of() -> Self {
        let mut declared = Declare {
            inputs: Vec::new(),
            targets: Vec::new(),
            appends: Vec::new(),
            _manager: PhantomData,
        };
        P::declare(&mut declared);
        declared
    }

    /// Reacts to events of type `E` (registered with the Db by the manager).
    pub fn on<E: Event>(&mut self) -> &mut Self
    where
        P: Reacts<E>,
    {
        if !self.inputs.iter().any(|i| i.event.name() == E::NAME) {
            self.inputs.push(Input {
                event: EventType::of::<E>(),
                handle: handle::<P, E>,
            });
        }
        self
    }

    /// Sends commands to aggregate `A`, which must be registered on the
    /// builder (`.aggregate::<A>()`): open fails naming it otherwise.
    pub fn commands<A: Aggregate>(&mut self) -> &mut Self
    where
        A::Command: DeserializeOwned + Send,
        A::Event: Sync,
    {
        if !self.targets.iter().any(|t| t.aggregate == A::NAME) {
            self.targets.push(Target {
                aggregate: A::NAME,
                rust_name: std::any::type_name::<A>(),
                dispatch: dispatch::<A>,
            });
        }
        self
    }

    /// Appends events of type `E` (registered with the Db by the manager).
    pub fn appends<E: Event>(&mut self) -> &mut Self {
        self.appends.push(EventType::of::<E>());
        self
    }

    pub(crate) fn input(&self, name: &str) -> Option<&Input<P>> {
        self.inputs.iter().find(|i| i.event.name() == name)
    }

    pub(crate) fn target(&self, aggregate: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.aggregate == aggregate)
    }
}

fn handle<P: Reacts<E>, E: Event>(
    state: &mut P::State,
    record: &RecordedEvent,
    meta: &Meta,
) -> Result<Vec<Reaction>, CodecError> {
    let event = E::decode(record.schema_version, &record.payload)?;
    P::apply(state, &event, meta);
    Ok(P::react(state, &event, meta))
}

fn dispatch<A: Aggregate>(
    db: Db,
    id: String,
    command: Vec<u8>,
    context: EventContext,
    key: String,
) -> BoxFuture<'static, Result<(), Failure>>
where
    A::Command: DeserializeOwned + Send,
    A::Event: Sync,
{
    Box::pin(async move {
        let command: A::Command = postcard::from_bytes(&command).map_err(|e| {
            Failure::permanent(format!(
                "the command for {}/{id} does not decode: {e}",
                A::NAME
            ))
        })?;
        match db
            .aggregate::<A>()
            .execute_keyed(&id, command, context, key)
            .await
        {
            Ok(_) => Ok(()),
            Err(ExecuteError::Rejected(rejection)) => Err(Failure::retry(format!(
                "{}/{id} rejected the command: {}",
                A::NAME,
                crate::chain::Chain(rejection.as_error())
            ))),
            Err(ExecuteError::Db(error)) => Err(Failure::from_db(&error)),
        }
    })
}

/// How often a failed reaction is tried before it is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// The pause before the second try; doubled each time after.
    pub first_backoff: Duration,
    /// The longest pause.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// `attempts` tries, pausing `first_backoff` (doubling, at most `max_backoff`) between them.
    pub fn new(attempts: u32, first_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            first_backoff,
            max_backoff,
        }
    }

    /// The pause before try `attempt` (2, 3, ..).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(20);
        self.first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// How a process manager is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessOptions {
    /// Retries of a failed reaction before it is parked.
    pub retry: RetryPolicy,
    /// A checkpoint (snapshot) at least every this many events processed
    /// (default 100 000).
    ///
    /// Checkpoints bound the work of a restart (the events after the last one
    /// are scanned and folded again; their reactions are not dispatched again),
    /// not correctness. Each costs a store sync and a snapshot write (a few
    /// fsyncs in the file store: tens of milliseconds on a busy disk).
    pub checkpoint_every: u64,
    /// A checkpoint at most this long after progress, busy or idle (default 1 s).
    pub checkpoint_interval: Duration,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            checkpoint_every: 100_000,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

impl ProcessOptions {
    /// The same options with `retry`.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same options, checkpointing every `events` events (at least 1) or
    /// `interval` after progress.
    pub fn checkpoints(mut self, events: u64, interval: Duration) -> Self {
        self.checkpoint_every = events.max(1);
        self.checkpoint_interval = interval;
        self
    }
}

/// Starts one registered manager: monomorphized per manager.
type Starter = fn(Db, ProcessOptions) -> BoxFuture<'static, Result<Arc<dyn ManagerSlot>, DbError>>;

struct Registration {
    id: TypeId,
    name: &'static str,
    targets: Vec<(&'static str, &'static str)>,
    options: ProcessOptions,
    start: Starter,
}

/// What the builder collected: registered aggregates and process managers.
#[derive(Default)]
pub(crate) struct Setup {
    aggregates: Vec<&'static str>,
    managers: Vec<Registration>,
}

impl Setup {
    /// Notes that aggregate `name` is registered.
    pub(crate) fn aggregate(&mut self, name: &'static str) {
        if !self.aggregates.contains(&name) {
            self.aggregates.push(name);
        }
    }

    /// Checks the registrations and starts every manager (called by `Db::open`).
    pub(crate) async fn start(self, db: &Db) -> Result<(), DbError> {
        for (i, manager) in self.managers.iter().enumerate() {
            if self.managers[..i].iter().any(|m| m.name == manager.name) {
                return Err(DbError::Process(ProcessError::DuplicateName {
                    name: manager.name,
                }));
            }
            for (aggregate, rust_name) in &manager.targets {
                if !self.aggregates.contains(aggregate) {
                    return Err(DbError::Process(ProcessError::UnregisteredAggregate {
                        process_manager: manager.name,
                        aggregate,
                        rust_type: rust_name,
                    }));
                }
            }
        }
        let mut running = Vec::with_capacity(self.managers.len());
        for manager in self.managers {
            running.push((manager.start)(db.clone(), manager.options).await?);
        }
        // Set once, right after the Db is made: nothing else sets it.
        let _ = db.inner.extensions.managers.set(running);
        Ok(())
    }
}

/// The Db's record of what runs besides the folds.
#[derive(Default)]
pub(crate) struct Extensions {
    pub(crate) subscriptions: crate::subscribe::ActiveNames,
    pub(crate) managers: OnceLock<Vec<Arc<dyn ManagerSlot>>>,
}

impl Extensions {
    /// The running managers.
    pub(crate) fn managers(&self) -> &[Arc<dyn ManagerSlot>] {
        self.managers.get().map_or(&[], Vec::as_slice)
    }

    /// Stops every manager and waits for its task (it writes a last checkpoint).
    pub(crate) async fn stop(&self) {
        for manager in self.managers() {
            manager.stop();
        }
        for manager in self.managers() {
            if let Some(task) = manager.take_task()
                && let Err(error) = task.await
            {
                tracing::error!(process_manager = manager.name(), %error, "foldkit: a process manager task ended abnormally");
            }
        }
    }
}

impl DbBuilder {
    /// Runs the process manager `P` (see [`crate::process`]) with default
    /// [`ProcessOptions`]. Registers the events it reacts to and appends; the
    /// aggregates it commands must be registered with `.aggregate::<A>()`.
    pub fn process_manager<P: ProcessManager>(self) -> Self {
        self.process_manager_with::<P>(ProcessOptions::default())
    }

    /// [`process_manager`](Self::process_manager) with `options`.
    pub fn process_manager_with<P: ProcessManager>(mut self, options: ProcessOptions) -> Self {
        let declared = Declare::<P>::of();
        for input in &declared.inputs {
            self.push_event(input.event);
        }
        for event in &declared.appends {
            self.push_event(*event);
        }
        let registration = Registration {
            id: TypeId::of::<P>(),
            name: P::NAME,
            targets: (declared.targets.iter())
                .map(|t| (t.aggregate, t.rust_name))
                .collect(),
            options,
            start: runner::start::<P>,
        };
        let managers = &mut self.processes.managers;
        match managers.iter_mut().find(|m| m.id == registration.id) {
            Some(existing) => *existing = registration,
            None => managers.push(registration),
        }
        self
    }
}
