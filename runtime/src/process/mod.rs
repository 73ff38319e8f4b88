//! Process managers: workflows across aggregates, driven by the log.
//!
//! A [`ProcessManager`] folds the events it lists into its own state
//! ([`Reacts::apply`]) and answers each with [`Reaction`]s ([`Reacts::react`]):
//! commands for aggregates, or events to append. Register it with
//! `Db::builder(..).process_manager::<P>()`; the runtime runs it in a task of
//! its own, in log order, and:
//!
//! - **persists** its state, its dead letters and its checkpoint as one
//!   snapshot in the store (`process-manager.<NAME>`), written atomically every
//!   [`ProcessOptions::checkpoint_every`] events or
//!   [`ProcessOptions::checkpoint_interval`], when a reaction is parked, and at
//!   close. The snapshot's position *is* the checkpoint: state and position can
//!   never disagree. The snapshot is framed and checksummed, with the dead
//!   letters ahead of the state, so tools that know none of the service's types
//!   (`foldkit dead-letters`, [`crate::inspect::dead_letters`]) read them; bytes
//!   that fail the framing or the checksum are refused, never read as a state.
//! - **makes each reaction take effect once.** The reaction `i` of the event at
//!   position `p` is appended with the context `causation: p`, the workflow's
//!   correlation id, actor `process-manager:<NAME>`, and the metadata
//!   `foldkit.reaction = "<NAME>#<i>"`, under the idempotency key
//!   `foldkit.pm/<NAME>/<p>/<i>`. After a restart from checkpoint `c`, the
//!   runtime first scans the log after `c` for events carrying that metadata:
//!   every reaction done before the crash is there (a reaction of the event at
//!   `p > c` is appended after `p`), and is not dispatched again. Deduplication
//!   is by causation in the log, before the command's `handle` runs again (a
//!   re-run `handle` could decide differently on the changed state); the
//!   idempotency key makes the store refuse a duplicate too.
//! - **retries** a failed reaction with exponential backoff
//!   ([`ProcessOptions::retry`]), looking in the log before each retry for the
//!   reaction (an append that reported an error may have landed), then **parks**
//!   it as a [`DeadLetter`], kept in the snapshot, listed and retried or
//!   discarded through [`Db::dead_letters`](crate::Db::dead_letters). Meanwhile
//!   the manager goes on with the next events (a parked reaction does not block
//!   the workflow of other instances).
//!
//! One process manager of a name runs per store: two processes running the same
//! manager over one shared store would both react.
//!
//! The correlation id of a reaction: the one it sets
//! ([`Reaction::correlated`]), else the causing event's, else the causing
//! event's stream id, else `"seq-<p>"`: a workflow started by an order's event
//! carries the order's stream id through every step.

mod dead;
mod error;
mod handle;
pub(crate) mod persist;
pub(crate) mod reaction;
mod runner;
mod setup;
pub(crate) mod testing;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use dead::{DeadLetter, DeadLetterId, DeadLetters};
pub use error::ProcessError;
pub use handle::ProcessHandle;
pub use persist::PersistError;
pub use reaction::Reaction;
pub use setup::{Declare, ProcessOptions, RetryPolicy};
pub(crate) use setup::{Extensions, Setup};

use crate::event::Event;
use crate::state::Meta;

/// A workflow: folds the events it lists into `State`, and reacts to them.
///
/// ```
/// use foldkit::prelude::*;
/// use foldkit::process::{Declare, ProcessManager, Reaction, Reacts};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// enum Signup { Registered { user: String } }
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// enum Mail { Welcome { user: String } }
///
/// struct Welcome;
///
/// impl ProcessManager for Welcome {
///     const NAME: &'static str = "welcome";
///     type State = u64; // users welcomed
///     fn declare(d: &mut Declare<Self>) {
///         d.on::<Signup>().appends::<Mail>();
///     }
/// }
///
/// impl Reacts<Signup> for Welcome {
///     fn apply(welcomed: &mut u64, _: &Signup, _: &Meta) { *welcomed += 1 }
///     fn react(_: &u64, Signup::Registered { user }: &Signup, _: &Meta) -> Vec<Reaction> {
///         vec![Reaction::append(&Mail::Welcome { user: user.clone() })]
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let dir = tempfile::tempdir()?;
/// let db = Db::builder(dir.path()).process_manager::<Welcome>().open().await?;
/// let seq = db.append(Signup::Registered { user: "ada".into() }).await?;
/// let welcome = db.process_manager::<Welcome>()?;
/// welcome.wait_for_seq(seq).await?;
/// assert_eq!(welcome.read(|welcomed| *welcomed), 1);
/// # db.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub trait ProcessManager: Send + Sync + Sized + 'static {
    /// Stable name: names its snapshots, its reactions' metadata and keys.
    const NAME: &'static str;
    /// What it remembers across events (persisted in its snapshots).
    type State: Default + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Lists the events it reacts to (`d.on::<E>()`, each with a
    /// [`Reacts<E>`] impl), the aggregates it commands (`d.commands::<A>()`) and
    /// the events it appends (`d.appends::<E>()`).
    fn declare(d: &mut Declare<Self>);
}

/// How a process manager handles events of type `E`.
pub trait Reacts<E: Event>: ProcessManager {
    /// Folds the event into the state (before `react` sees it). Must be pure.
    fn apply(state: &mut Self::State, event: &E, meta: &Meta) {
        let _ = (state, event, meta);
    }

    /// What to do about the event, given the state with it applied. Must be
    /// pure: a redelivered event must produce the same reactions.
    fn react(state: &Self::State, event: &E, meta: &Meta) -> Vec<Reaction>;
}
