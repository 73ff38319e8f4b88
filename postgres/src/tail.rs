//! Live tails: LISTEN/NOTIFY wake-ups, a polling fallback, and reconnects.
//!
//! A tail never trusts a notification for *what* to read: it only wakes up and
//! runs the same gap-free read as [`EventStore::read`](foldkit::store::EventStore::read)
//! from its own position. So a lost notification (listener reconnecting, a
//! NOTIFY that failed) costs at most one poll interval, never an event, and a
//! tail whose reads fail (the server went away) retries from the same position.
//!
//! Wake-ups come from a [`watch`] channel in the store: bumped by this
//! instance's appends, by notifications from other instances (the payload is
//! the highest position the notifier appended), and by each (re)connect of the
//! listener. When the tail knows that positions at or above its own were
//! committed but the gap-free read returns nothing yet (an older transaction
//! is still open), it polls with a short backoff until they become readable.

use std::sync::{Arc, Weak};
use std::time::Duration;

use foldkit::Seq;
use foldkit::store::{RecordedEvent, StoreError, StoreTail};
use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::read;
use crate::schema::CHANNEL;
use crate::store::Inner;

/// What the store's watch channel carries.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Signal {
    /// Bumped on every event worth a re-read.
    pub(crate) generation: u64,
    /// The highest position known to be committed (by any instance).
    pub(crate) max_committed: Seq,
    /// The store was closed.
    pub(crate) closed: bool,
}

/// A tail over a [`PgStore`](crate::PgStore). See the module docs.
pub struct PgTail {
    inner: Arc<Inner>,
    position: Seq,
    signal: watch::Receiver<Signal>,
}

impl PgTail {
    pub(crate) fn new(inner: Arc<Inner>, from: Seq) -> Self {
        let signal = inner.signal.subscribe();
        inner.ensure_listener();
        PgTail {
            inner,
            position: from.max(1),
            signal,
        }
    }
}

const SHORT_POLL_START: Duration = Duration::from_millis(1);
const SHORT_POLL_MAX: Duration = Duration::from_millis(50);

impl StoreTail for PgTail {
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(async move {
            let max = max.max(1);
            self.inner.ensure_listener();
            let mut short = SHORT_POLL_START;
            let mut retry = Duration::from_millis(10);
            loop {
                // Mark the current signal seen before reading, so that anything
                // after the read wakes the wait below.
                let seen = *self.signal.borrow_and_update();
                let closed =
                    seen.closed || self.inner.closed.load(std::sync::atomic::Ordering::Acquire);
                match read::events(&self.inner, self.position, max).await {
                    Ok(events) if !events.is_empty() => {
                        if let Some(last) = events.last() {
                            self.position = last.position + 1;
                        }
                        return Ok(events);
                    }
                    Ok(_) if closed => return Err(StoreError::Closed),
                    Ok(_) => {}
                    Err(f) if f.transient => {
                        if closed {
                            return Err(StoreError::Closed);
                        }
                        tracing::warn!(
                            server = %self.inner.describe,
                            position = self.position,
                            error = %f.error,
                            "foldkit-postgres: tail read failed; retrying from the same position"
                        );
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(Duration::from_millis(500));
                        continue;
                    }
                    Err(f) => return Err(f.error),
                }
                retry = Duration::from_millis(10);
                let wait = if seen.max_committed >= self.position {
                    let w = short;
                    short = (short * 2).min(SHORT_POLL_MAX);
                    w
                } else {
                    short = SHORT_POLL_START;
                    self.inner.poll_interval
                };
                tokio::select! {
                    changed = self.signal.changed() => {
                        if changed.is_err() {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    () = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    fn position(&self) -> Seq {
        self.position
    }
}

/// The listener: one connection that LISTENs on the channel, reconnecting
/// (with backoff) whenever it is lost, until the store is dropped or closed.
pub(crate) async fn listen(store: Weak<Inner>) {
    let mut delay = Duration::from_millis(50);
    loop {
        let Some(inner) = store.upgrade() else { return };
        let config = inner.pg_config.clone();
        let describe = inner.describe.clone();
        drop(inner);
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
                let sql = format!("LISTEN {CHANNEL}");
                let ok = {
                    let listening = client.batch_execute(&sql);
                    let mut listening = std::pin::pin!(listening);
                    // Drive the connection while LISTEN runs.
                    loop {
                        tokio::select! {
                            result = &mut listening => break result.is_ok(),
                            message = messages.next() => {
                                if !forward(&store, message) { break false; }
                            }
                        }
                    }
                };
                if ok {
                    delay = Duration::from_millis(50);
                    // Anything may have been appended while we were not listening.
                    if !bump(&store, None) {
                        return;
                    }
                    while let Some(message) = messages.next().await {
                        if !forward(&store, Some(message)) {
                            break;
                        }
                    }
                }
                drop(client);
                if store.upgrade().is_none() {
                    return;
                }
                tracing::warn!(server = %describe, "foldkit-postgres: listener connection lost; reconnecting");
            }
            Err(e) => {
                tracing::warn!(server = %describe, error = %e, "foldkit-postgres: listener cannot connect; retrying");
            }
        }
        // Wake tails so that they poll while we are away.
        if !bump(&store, None) {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Handles one message of the listener's connection; `false` to stop.
fn forward(
    store: &Weak<Inner>,
    message: Option<Result<AsyncMessage, tokio_postgres::Error>>,
) -> bool {
    match message {
        Some(Ok(AsyncMessage::Notification(n))) => {
            let position = n.payload().parse::<Seq>().ok();
            bump(store, position)
        }
        Some(Ok(_)) => true,
        Some(Err(_)) | None => false,
    }
}

/// Bumps the store's signal; `false` once the store is gone.
fn bump(store: &Weak<Inner>, position: Option<Seq>) -> bool {
    let Some(inner) = store.upgrade() else {
        return false;
    };
    inner.signal.send_modify(|s| {
        s.generation += 1;
        if let Some(p) = position {
            s.max_committed = s.max_committed.max(p);
        }
    });
    true
}
