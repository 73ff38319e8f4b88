//! Telling other instances about appends: at most one notifying commit per
//! [`notify_interval`](crate::PgStoreBuilder::notify_interval), carried by an
//! append itself when it can be.
//!
//! An append whose turn it is carries its notification *inside its own
//! transaction* (`pg_notify` in the same statement): no second transaction,
//! no second round trip, and listeners are told at its commit. PostgreSQL
//! serializes notifying commits on one cluster-wide lock held through the
//! commit's WAL flush, so notifying from every append (or every group) would
//! serialize the flushes that group commit overlaps: hence the [`Gate`], which
//! lets one notifying transaction of this store run at a time and, once
//! appends committed while one was in flight (a busy writer), starts the next
//! no sooner than one interval after the last.
//!
//! Appends that committed without a notification are *owed* one: the
//! announcer task sends a separate `pg_notify` (committed asynchronously: a
//! notification needs no durability) as soon as the gate opens, unless a
//! notifying transaction that started after they committed has covered them
//! meanwhile. So every append is announced at most about one interval after
//! its commit, and a lone append (request/response) is announced at its
//! commit.

use std::sync::{Arc, Weak};
use std::time::Duration;

use foldkit::store::StoreError;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::schema::CHANNEL;
use crate::store::Inner;

/// Who may send a notification now, and what is owed. See the module docs.
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<State>,
    /// Wakes the announcer: something is owed, or the gate was released.
    wake: Notify,
    interval: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// A notifying transaction of this store is in flight.
    in_flight: bool,
    /// When the last one started.
    last_start: Option<Instant>,
    /// Appends committed without a notification while the last one was in
    /// flight: a busy writer, so the next one waits out the interval.
    busy: bool,
    /// Appends committed without a notification (a running count).
    owed: u64,
    /// The `owed` count that delivered notifications cover.
    covered: u64,
}

/// The right to send one notification; released when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    /// The `owed` count when it was taken: every append counted committed
    /// before this notification's transaction started.
    covers: u64,
    sent: bool,
}

impl Ticket {
    /// The notification was committed: what was owed when it started is covered.
    pub(crate) fn sent(mut self) {
        self.sent = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock();
        state.in_flight = false;
        state.busy = state.owed > self.covers;
        if self.sent {
            state.covered = state.covered.max(self.covers);
        }
        let owed = state.owed > state.covered;
        drop(state);
        if owed {
            self.gate.wake.notify_one();
        }
    }
}

impl Gate {
    pub(crate) fn new(interval: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            interval,
        })
    }

    /// A ticket if no notification of this store is in flight and either the
    /// writer is not busy (a lone append is never delayed) or the last one
    /// started at least an interval ago.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Ticket> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let due = !state.busy
            || state
                .last_start
                .is_none_or(|last| now.duration_since(last) >= self.interval);
        if state.in_flight || !due {
            return None;
        }
        state.in_flight = true;
        state.last_start = Some(now);
        Some(Ticket {
            gate: self.clone(),
            covers: state.owed,
            sent: false,
        })
    }

    /// An append committed without a notification: the announcer owes one.
    pub(crate) fn owe(&self) {
        self.state.lock().owed += 1;
        self.wake.notify_one();
    }

    /// The announcer's next step: a ticket when something is owed and the
    /// gate is open; otherwise how long to wait (`None`: until woken).
    fn next(self: &Arc<Self>) -> Result<Ticket, Option<Instant>> {
        let now = Instant::now();
        {
            let state = self.state.lock();
            if state.owed <= state.covered || state.in_flight {
                return Err(None);
            }
            if let Some(last) = state.last_start
                && state.busy
                && now.duration_since(last) < self.interval
            {
                return Err(Some(last + self.interval));
            }
        }
        self.try_take().ok_or(None)
    }
}

/// The announcer: sends what the [`Gate`] says is owed, until the store is gone.
pub(crate) async fn announce(store: Weak<Inner>, gate: Arc<Gate>) {
    loop {
        let ticket = match gate.next() {
            Ok(ticket) => ticket,
            Err(None) => {
                // Wait without keeping the store alive.
                gate.wake.notified().await;
                continue;
            }
            Err(Some(until)) => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    () = gate.wake.notified() => {}
                }
                continue;
            }
        };
        let Some(inner) = store.upgrade() else { return };
        let position = inner.signal.borrow().max_committed;
        match send(&inner, position).await {
            Ok(()) => ticket.sent(),
            Err(e) => {
                // Other instances fall back to polling; the next append tries again.
                tracing::debug!(server = %inner.describe, error = %e, "foldkit-postgres: NOTIFY failed");
                drop(ticket);
            }
        }
    }
}

async fn send(inner: &Inner, position: foldkit::Seq) -> Result<(), StoreError> {
    let client = inner.client().await.map_err(|f| f.error)?;
    let statement = client
        .prepare_cached(NOTIFY_SQL)
        .await
        .map_err(|e| StoreError::backend("notify other instances", e))?;
    client
        .execute(&statement, &[&CHANNEL, &position.to_string()])
        .await
        .map_err(|e| StoreError::backend("notify other instances", e))?;
    Ok(())
}

/// One statement, one round trip: the notification, committed asynchronously
/// (`set_config(.., true)` holds for this statement's transaction only).
const NOTIFY_SQL: &str = "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_notifying_transaction_at_a_time_and_one_per_interval() {
        let gate = Gate::new(Duration::from_millis(10));
        let first = gate.try_take().expect("the first append carries one");
        assert!(gate.try_take().is_none(), "one in flight at a time");
        first.sent();
        let lone = gate.try_take().expect("a lone writer is never delayed");
        gate.owe(); // an append committed while it was in flight: busy
        lone.sent();
        assert!(
            gate.try_take().is_none(),
            "busy: not again within the interval"
        );
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(gate.try_take().is_some(), "again after the interval");
    }

    #[tokio::test(start_paused = true)]
    async fn the_announcer_sends_what_no_notification_covered() {
        let gate = Gate::new(Duration::from_millis(10));
        assert!(matches!(gate.next(), Err(None)), "nothing owed");
        let carrier = gate.try_take().expect("ticket");
        gate.owe(); // committed while the carrier is in flight: not covered
        assert!(matches!(gate.next(), Err(None)), "wait for the carrier");
        carrier.sent();
        let until = Instant::now() + Duration::from_millis(10);
        assert!(
            matches!(gate.next(), Err(Some(t)) if t == until),
            "owed, after the interval"
        );
        tokio::time::advance(Duration::from_millis(10)).await;
        let trailing = gate.next().expect("the trailing notification");
        trailing.sent();
        assert!(matches!(gate.next(), Err(None)), "all covered");

        gate.owe(); // committed before the next carrier started: covered by it
        tokio::time::advance(Duration::from_millis(10)).await;
        gate.try_take().expect("ticket").sent();
        assert!(matches!(gate.next(), Err(None)), "covered by the carrier");

        gate.owe();
        tokio::time::advance(Duration::from_millis(10)).await;
        drop(gate.try_take().expect("ticket")); // the carrier failed
        assert!(gate.next().is_ok(), "still owed after a failed carrier");
    }
}
