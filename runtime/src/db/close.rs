//! Closing a Db so that a dropped `close()` never leaves it half-closed.
//!
//! The shutdown (refuse appends, sync, stop the folds, write the close
//! snapshots, close the logs, release the directory) runs in a task of its own,
//! started by the first `close()`. Every `close()` awaits that one task: a
//! caller dropped half-way drops only its wait, the shutdown goes on, and the
//! next `close()` waits for the same shutdown and returns its result. Once a
//! caller has seen the result, later closes are no-ops (`Ok`).

use std::future::Future;

use tokio::task::JoinHandle;

use crate::db::error::DbError;

/// Where the shutdown of a Db is.
#[derive(Default)]
pub(crate) struct Closing(tokio::sync::Mutex<Stage>);

#[derive(Default)]
enum Stage {
    #[default]
    Open,
    /// Started; nobody has seen its result yet.
    Running(JoinHandle<Result<(), DbError>>),
    /// A caller returned the shutdown's result.
    Done,
}

impl Closing {
    /// Starts the shutdown with `start` (first call only) and waits for it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future drops only the wait; the shutdown goes
    /// on in its task, and a later call waits for it and returns its result.
    pub(crate) async fn run<F>(&self, start: impl FnOnce() -> F) -> Result<(), DbError>
    where
        F: Future<Output = Result<(), DbError>> + Send + 'static,
    {
        let mut stage = self.0.lock().await;
        if matches!(*stage, Stage::Open) {
            *stage = Stage::Running(tokio::spawn(start()));
        }
        let Stage::Running(task) = &mut *stage else {
            return Ok(());
        };
        let joined = task.await;
        *stage = Stage::Done;
        match joined {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down: the shutdown task was cancelled.
            Err(_) => Err(DbError::Closed),
        }
    }
}
