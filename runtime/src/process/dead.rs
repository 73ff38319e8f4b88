//! Dead letters: reactions that kept failing, parked for a person to decide.
//!
//! A dead letter is kept in its manager's snapshot, written right after it is
//! parked, so it is durable and consistent with the checkpoint that moved past
//! its event (a crash before that write redelivers the event, and the reaction
//! is tried and parked again). Why not events in the log: the list would then
//! be a fold over the whole log at every open, and the log would carry
//! operational noise forever; the snapshot holds exactly what is pending.

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::error::ProcessError;
use super::reaction::Reaction;
use super::runner::Request;
use crate::Seq;
use crate::db::Db;

/// Names one parked reaction: the manager, the causing event's position, and
/// the reaction's index among that event's reactions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeadLetterId {
    /// The manager's name.
    pub process_manager: String,
    /// The position of the event that caused the reaction.
    pub causation: Seq,
    /// The reaction's index in what `react` returned for that event.
    pub index: u32,
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}#{}",
            self.process_manager, self.causation, self.index
        )
    }
}

/// A reaction that failed every try, parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Which reaction.
    pub id: DeadLetterId,
    /// The reaction itself (decode it with [`Reaction::as_command`] or [`Reaction::as_event`]).
    pub reaction: Reaction,
    /// The correlation id it carries.
    pub correlation_id: String,
    /// The last error.
    pub error: String,
    /// How many times it was tried.
    pub attempts: u32,
    /// When it was parked: milliseconds since the UNIX epoch.
    pub parked_at: u64,
}

/// The dead letters of every process manager of a Db: [`Db::dead_letters`].
#[derive(Debug, Clone)]
pub struct DeadLetters {
    db: Db,
}

impl Db {
    /// The parked reactions of this Db's process managers: list, retry, discard.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters { db: self.clone() }
    }
}

impl DeadLetters {
    /// Every parked reaction, by manager then causing position.
    pub fn list(&self) -> Vec<DeadLetter> {
        let mut all: Vec<DeadLetter> = (self.db.inner.extensions.managers())
            .iter()
            .flat_map(|m| m.dead_letters())
            .collect();
        all.sort_by(|a, b| {
            (&a.id.process_manager, a.id.causation, a.id.index).cmp(&(
                &b.id.process_manager,
                b.id.causation,
                b.id.index,
            ))
        });
        all
    }

    /// Tries the reaction once more (first looking in the log whether it took
    /// effect after all). On success it is removed; on failure it stays parked
    /// with the new error, returned as [`ProcessError::RetryFailed`].
    ///
    /// # Cancel safety
    ///
    /// The request is handed to the manager's task at the first poll: dropping
    /// the future after that does not stop the retry, only the wait for its result.
    pub async fn retry(&self, id: &DeadLetterId) -> Result<(), ProcessError> {
        self.ask(id, Request::Retry).await
    }

    /// Drops the reaction for good (durably: the manager writes a checkpoint).
    ///
    /// # Cancel safety
    ///
    /// As [`retry`](Self::retry).
    pub async fn discard(&self, id: &DeadLetterId) -> Result<(), ProcessError> {
        self.ask(id, Request::Discard).await
    }

    async fn ask(
        &self,
        id: &DeadLetterId,
        request: impl FnOnce(DeadLetterId, oneshot::Sender<Result<(), ProcessError>>) -> Request,
    ) -> Result<(), ProcessError> {
        let manager = (self.db.inner.extensions.managers())
            .iter()
            .find(|m| m.name() == id.process_manager)
            .ok_or_else(|| ProcessError::UnknownDeadLetter { id: id.to_string() })?;
        let (reply, answer) = oneshot::channel();
        manager.request(request(id.clone(), reply))?;
        answer.await.map_err(|_| ProcessError::Closed)?
    }
}
