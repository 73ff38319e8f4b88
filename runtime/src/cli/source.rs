//! What a read-only command looks at, and the runtime its store calls run on.
//!
//! The commands are plain blocking code that writes to the terminal; the
//! stores are async. [`Rt`] owns a small tokio runtime and runs each store
//! call there, waiting for it on the calling thread. Owning it (rather than
//! `block_on` on the caller's) keeps the tool usable from inside another
//! runtime (a user's `#[tokio::main]`, a `#[tokio::test]`).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use super::CliError;
use crate::inspect::Directory;
use crate::store::EventStore;

/// The tool's own runtime: one worker, tokio's blocking pool for file I/O.
pub(crate) struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    pub(crate) fn new() -> Result<Rt, CliError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("foldkit-cli")
            .enable_all()
            .build()
            .map_err(CliError::Runtime)?;
        Ok(Rt(Some(runtime)))
    }

    /// Runs `work` on the runtime and waits for its result.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, CliError> {
        let runtime = self
            .0
            .as_ref()
            .ok_or_else(|| CliError::Internal("the runtime is gone".into()))?;
        let task = runtime.spawn(work);
        futures::executor::block_on(task).map_err(|e| CliError::Internal(e.to_string()))
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's context panics; this does not.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A store opened read-only, with the directory it is, if it is one.
pub(crate) enum Source {
    /// A file-store directory: its files, and a [`DirectoryStore`](crate::inspect::DirectoryStore).
    Dir {
        directory: Directory,
        store: Arc<dyn EventStore>,
    },
    /// Any other store (`--postgres`).
    Store { store: Arc<dyn EventStore> },
}

impl Source {
    /// The directory `dir`, checked to be a foldkit directory of this format.
    pub(crate) fn directory(dir: &Path) -> Result<Source, CliError> {
        let directory = Directory::open(dir)?;
        let store = Arc::new(directory.store());
        Ok(Source::Dir { directory, store })
    }

    /// The store, to read through the seam.
    pub(crate) fn store(&self) -> Arc<dyn EventStore> {
        match self {
            Source::Dir { store, .. } | Source::Store { store } => Arc::clone(store),
        }
    }

    /// The directory, when it is one.
    pub(crate) fn dir(&self) -> Option<&Directory> {
        match self {
            Source::Dir { directory, .. } => Some(directory),
            Source::Store { .. } => None,
        }
    }

    /// What to call it in messages: the directory, or the store's description.
    pub(crate) fn label(&self) -> String {
        match self {
            Source::Dir { directory, .. } => format!("`{}`", directory.path().display()),
            Source::Store { store } => store.describe(),
        }
    }

    /// The argument that names it again (`DIR`, or `--postgres URL`), for hints.
    pub(crate) fn argument(&self) -> String {
        match self {
            Source::Dir { directory, .. } => directory.path().display().to_string(),
            Source::Store { .. } => "--postgres URL".to_owned(),
        }
    }
}
