//! Reading and decoding each state's newest snapshot while the log recovers.
//!
//! Why: opening the file store recovers its log (the active segment is read and every
//! record checked: tens of milliseconds for a large segment) before the store can be
//! asked for a snapshot, and decoding a large snapshot (rows, the id map, every index)
//! takes longer still; one after the other, a restart waits for the sum. The snapshot
//! files need only the directory's lock, so `Db::open` takes the lock first
//! ([`LockedDir`](crate::store::file::LockedDir)), starts one blocking task per state
//! that reads the state's newest snapshot file and decodes it ([`start`]), and recovers
//! the log meanwhile.
//!
//! Nothing is decided before the log is open: `initial_state` judges a prefetched
//! snapshot exactly as one it reads through the store (its position at most the log's
//! last, its last record the one the log holds there: `snapshots::judge`), and when it
//! is refused goes on with the older ones through the store. A snapshot that could not
//! be read is not reported here: the store reads it again and reports that. Only the
//! file store prefetches, and not for a state that a restore bundle starts; a store
//! given to `Db::builder_with` is read through the seam once it is open, as before.
//!
//! Cancel safety: a prefetch runs on the blocking pool. When `open` fails, or is
//! dropped, before a state took its prefetch, the task still finishes, and its value
//! is dropped there.

use std::any::{Any, TypeId};

use tokio::task::JoinHandle;

use crate::Seq;
use crate::db::db::StartContext;
use crate::db::snapshots::{Decoded, decode_catching};
use crate::state::State;
use crate::store::StoreError;

/// Reads a state's newest snapshot file: its position and bytes (blocking).
pub(crate) type SnapshotRead =
    Box<dyn FnOnce() -> Result<Option<(Seq, Vec<u8>)>, StoreError> + Send>;

/// Starts the prefetch of one state type: monomorphized per state by the builder.
pub(crate) type Prefetcher = fn(SnapshotRead) -> Prefetch;

/// A state's prefetch under way: it gives the newest snapshot's position and its
/// decode (a boxed [`Decoded`] of the state), or nothing when there is none or it could
/// not be read.
pub(crate) struct Prefetch(JoinHandle<Option<(Seq, Box<dyn Any + Send>)>>);

/// Reads (with `read`) and decodes the newest snapshot of `S` on the blocking pool.
pub(crate) fn start<S: State>(read: SnapshotRead) -> Prefetch {
    Prefetch(tokio::task::spawn_blocking(move || {
        let (position, bytes) = read().ok()??;
        let decoded: Box<dyn Any + Send> = Box::new(decode_catching::<S>(&bytes));
        Some((position, decoded))
    }))
}

/// The prefetch of `S` that `context` holds, once finished: the snapshot's position
/// and its decode. `None` when none was started or it found nothing.
pub(crate) async fn take<S: State>(context: &StartContext) -> Option<(Seq, Decoded<S>)> {
    let task = context.prefetched.lock().remove(&TypeId::of::<S>())?;
    let (position, decoded) = task.0.await.ok()??;
    let decoded = decoded.downcast::<Decoded<S>>().ok()?;
    Some((position, *decoded))
}
