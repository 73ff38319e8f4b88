//! Work that must finish even if the caller's future is dropped.
//!
//! Some steps are not safe to stop half-way: a stream append whose records may
//! already be in the log must also update the stream index, and a shutdown that
//! has refused appends must go on to sync, stop the folds and release the
//! directory. [`finish_detached`] runs such a step to completion whatever the
//! caller does: it polls it once in place (the common case finishes there, at no
//! cost), and only if it is still pending moves it into a task of its own, whose
//! result the caller awaits. Dropping the caller then drops only the wait.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

/// Runs `work` to completion even if the returned future is dropped, and yields
/// its output. Must be called within a tokio runtime.
///
/// # Panics
///
/// Resumes the panic of `work` if it panicked in its task.
pub(crate) async fn finish_detached<F>(work: F) -> Result<F::Output, Detached>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut work = Box::pin(work);
    // One poll in place: under `FsyncPolicy::Never` an append is done here.
    if let Poll::Ready(output) = futures::poll!(&mut work) {
        return Ok(output);
    }
    let task = tokio::spawn(work);
    match pin!(task).await {
        Ok(output) => Ok(output),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(Detached),
    }
}

/// The task running detached work was cancelled: the runtime is shutting down.
#[derive(Debug)]
pub(crate) struct Detached;
