//! `ProcessHandle<P>`: a view of one running process manager (its progress
//! and state), for tests and operations; the task itself is in `runner`.

use std::sync::Arc;

use super::ProcessManager;
use super::error::ProcessError;
use super::runner::{Shared, Slot};
use crate::Seq;
use crate::db::{Db, DbError};

/// A handle on a running process manager: its progress and state.
pub struct ProcessHandle<P: ProcessManager> {
    shared: Arc<Shared<P>>,
    db: Db,
}

impl<P: ProcessManager> Clone for ProcessHandle<P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            db: self.db.clone(),
        }
    }
}

impl<P: ProcessManager> std::fmt::Debug for ProcessHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("process_manager", &P::NAME)
            .field("processed", &self.processed_seq())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// The handle on process manager `P`, or [`ProcessError::NotRegistered`].
    pub fn process_manager<P: ProcessManager>(&self) -> Result<ProcessHandle<P>, ProcessError> {
        let slot = (self.inner.extensions.managers())
            .iter()
            .find(|m| m.name() == P::NAME)
            .cloned()
            .ok_or(ProcessError::NotRegistered { name: P::NAME })?;
        let shared = slot
            .as_any()
            .downcast::<Slot<P>>()
            .map_err(|_| ProcessError::NotRegistered { name: P::NAME })?
            .shared
            .clone();
        Ok(ProcessHandle {
            shared,
            db: self.clone(),
        })
    }
}

impl<P: ProcessManager> ProcessHandle<P> {
    /// Every event up to this position is processed (applied, reactions done or parked).
    pub fn processed_seq(&self) -> Seq {
        self.shared.progress.borrow().processed
    }

    /// Reads the manager's state.
    pub fn read<R>(&self, read: impl FnOnce(&P::State) -> R) -> R {
        read(&self.shared.state.read())
    }

    /// Why the manager stopped, if it did.
    pub fn stopped(&self) -> Option<Arc<str>> {
        self.shared.progress.borrow().stopped.clone()
    }

    /// Waits until the manager has processed every event up to `seq`
    /// (including dispatching their reactions).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only waits.
    pub async fn wait_for_seq(&self, seq: Seq) -> Result<(), ProcessError> {
        let mut progress = self.shared.progress.subscribe();
        loop {
            {
                let now = progress.borrow_and_update();
                if now.processed >= seq {
                    return Ok(());
                }
                if let Some(reason) = &now.stopped {
                    return Err(ProcessError::Stopped {
                        name: P::NAME,
                        position: now.processed,
                        reason: reason.to_string(),
                    });
                }
            }
            if progress.changed().await.is_err() {
                return Err(ProcessError::Closed);
            }
        }
    }

    /// Waits until the manager has processed the whole log, including the
    /// events its own reactions appended (until the log stops growing under
    /// it). With other writers appending all the time, it may wait long.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only waits.
    pub async fn settle(&self) -> Result<(), ProcessError> {
        loop {
            let last = self.db.last_seq().await.map_err(|e| match e {
                DbError::Closed => ProcessError::Closed,
                DbError::Store(source) => ProcessError::Store {
                    process_manager: P::NAME,
                    source,
                },
                other => ProcessError::Stopped {
                    name: P::NAME,
                    position: self.processed_seq(),
                    reason: other.to_string(),
                },
            })?;
            let Some(last) = last else { return Ok(()) };
            self.wait_for_seq(last).await?;
            if self.db.last_seq().await.ok().flatten() == Some(last) {
                return Ok(());
            }
        }
    }
}
