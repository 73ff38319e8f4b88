//! Test helpers: given/when/then for aggregates ([`AggregateTest`], no Db, log
//! or runtime), and writing events of an older schema version into a Db
//! directory ([`write_legacy`], [`write_legacy_to`]) to test an upcast.
//!
//! ## Aggregates: given, when, then
//!
//! ```
//! use foldkit::prelude::*;
//! use foldkit::testing::AggregateTest;
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! enum DoorEvent { Opened, Closed }
//!
//! #[derive(Default, Clone)]
//! struct Door { open: bool }
//!
//! #[derive(Debug, PartialEq, thiserror::Error)]
//! enum DoorError {
//!     #[error("the door is open already")]
//!     AlreadyOpen,
//! }
//!
//! impl Aggregate for Door {
//!     const NAME: &'static str = "door";
//!     type Event = DoorEvent;
//!     type Command = ();
//!     type Error = DoorError;
//!     fn handle(&self, _: ()) -> Result<Vec<DoorEvent>, DoorError> {
//!         if self.open { Err(DoorError::AlreadyOpen) } else { Ok(vec![DoorEvent::Opened]) }
//!     }
//!     fn apply(&mut self, event: &DoorEvent) { self.open = matches!(event, DoorEvent::Opened) }
//! }
//!
//! AggregateTest::<Door>::given([]).when(()).then_expect_events([DoorEvent::Opened]);
//! AggregateTest::<Door>::given([DoorEvent::Opened]).when(()).then_expect_error(DoorError::AlreadyOpen);
//! ```

use std::fmt::{Debug, Write as _};
use std::path::Path;

use crate::Seq;
use crate::aggregate::Aggregate;
use crate::db::{Db, DbError, ExpectedVersion};
use crate::event::Event;

/// Writes `events` of an older schema version `E` (e.g. `OrderEventV1`) into the
/// Db directory `dir`, as an older release of the program would have, and returns
/// their seqs. Open the Db under test on `dir` afterwards: its states read them
/// upcast through the `From` chain of the current version.
///
/// A Db registers only the newest version of an event (one Rust type per stable
/// name), so this opens a separate Db on `dir` registering only `E`, appends, and
/// closes it. `dir` must not be open by another Db then ([`DbError::AlreadyOpen`]).
///
/// ```
/// use foldkit::prelude::*;
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// #[event(name = "Item", version = 1)]
/// enum ItemV1 { Added { sku: String } }
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// #[event(name = "Item", version = 2, previous = ItemV1)]
/// enum Item { Added { sku: String, qty: u32 } }
///
/// impl From<ItemV1> for Item {
///     fn from(ItemV1::Added { sku }: ItemV1) -> Self {
///         Item::Added { sku, qty: 1 } // version 1 had no quantity: one each
///     }
/// }
///
/// #[derive(State, Default, Serialize, Deserialize)]
/// #[state(event = Item)]
/// struct Stock { units: u32 }
///
/// impl Apply<Item> for Stock {
///     fn apply(&mut self, Item::Added { qty, .. }: Item, _: &Meta) -> Result<(), FoldError> {
///         self.units += qty;
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let old = [ItemV1::Added { sku: "bolt".into() }, ItemV1::Added { sku: "nut".into() }];
/// let seqs = foldkit::testing::write_legacy(dir.path(), old).await?;
///
/// let db = Db::builder(dir.path()).state::<Stock>().open().await?;
/// db.append(Item::Added { sku: "gear".into(), qty: 5 }).await?; // the current version
/// let stock = db.state::<Stock>();
/// stock.wait_for_seq(seqs[1] + 1).await?;
/// assert_eq!(stock.read().units, 1 + 1 + 5); // the old events, upcast
/// # db.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Cancel safety
/// Not cancel-safe: dropped before it returns, the events may be written or not
/// (one atomic batch), and the directory is released when the runtime drops the
/// Db's tasks.
pub async fn write_legacy<E: Event>(
    dir: impl AsRef<Path>,
    events: impl IntoIterator<Item = E>,
) -> Result<Vec<Seq>, DbError> {
    write(dir.as_ref(), None, events.into_iter().collect()).await
}

/// [`write_legacy`] into one stream, as an aggregate's events: the stream of the
/// instance `id` of aggregate `A` is `Aggregates::<A>::stream_id(id)`
/// (`"<A::NAME>/<id>"`). The events are appended after the stream's existing ones.
///
/// # Cancel safety
/// As [`write_legacy`].
pub async fn write_legacy_to<E: Event>(
    dir: impl AsRef<Path>,
    stream_id: &str,
    events: impl IntoIterator<Item = E>,
) -> Result<Vec<Seq>, DbError> {
    write(dir.as_ref(), Some(stream_id), events.into_iter().collect()).await
}

async fn write<E: Event>(
    dir: &Path,
    stream_id: Option<&str>,
    events: Vec<E>,
) -> Result<Vec<Seq>, DbError> {
    let db = Db::builder(dir).event::<E>().open().await?;
    let written = match (stream_id, events.is_empty()) {
        (_, true) => Ok(Vec::new()),
        (None, false) => db.append_batch(events).await.map(Iterator::collect),
        (Some(stream), false) => db
            .append_to(stream, ExpectedVersion::Any, events)
            .await
            .map(|appended| appended.seqs.collect()),
    };
    let closed = db.close().await;
    let seqs = written?;
    closed?;
    Ok(seqs)
}

/// A given/when/then scenario for one aggregate instance.
#[must_use = "a scenario does nothing until `.when(command)` and a `then_*` check"]
pub struct AggregateTest<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> AggregateTest<A> {
    /// Starts from the state that `history` (applied in order) builds.
    pub fn given(history: impl IntoIterator<Item = A::Event>) -> Self {
        let mut state = A::default();
        for event in history {
            state.apply(&event);
        }
        Self { state }
    }

    /// Handles `command` against the given state.
    pub fn when(self, command: A::Command) -> AggregateOutcome<A> {
        let result = self.state.handle(command);
        AggregateOutcome {
            state: self.state,
            result,
        }
    }
}

/// What a command produced in an [`AggregateTest`]; check it with a `then_*` method.
#[must_use = "check the outcome with a `then_*` method"]
pub struct AggregateOutcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> AggregateOutcome<A> {
    /// The raw result of `handle`.
    pub fn result(&self) -> &Result<Vec<A::Event>, A::Error> {
        &self.result
    }

    /// Asserts the command produced exactly `expected`, in order, and returns the
    /// state with them applied.
    ///
    /// # Panics
    /// With an event-by-event diff when the events differ or the command was rejected.
    #[track_caller]
    pub fn then_expect_events(self, expected: impl IntoIterator<Item = A::Event>) -> A
    where
        A::Event: PartialEq + Debug,
        A::Error: Debug,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let actual = match self.result {
            Ok(events) => events,
            Err(error) => panic!(
                "aggregate `{}`: expected {} event(s), but the command was rejected: {error:?}",
                A::NAME,
                expected.len()
            ),
        };
        if actual != expected {
            panic!("{}", events_diff::<A>(&expected, &actual));
        }
        let mut state = self.state;
        for event in &actual {
            state.apply(event);
        }
        state
    }

    /// Asserts the command was rejected with `expected`.
    ///
    /// # Panics
    /// When the command succeeded, or failed with another error.
    #[track_caller]
    pub fn then_expect_error(self, expected: A::Error)
    where
        A::Event: Debug,
        A::Error: PartialEq + Debug,
    {
        match self.result {
            Err(actual) if actual == expected => {}
            Err(actual) => panic!(
                "aggregate `{}`: the command was rejected with another error\n  expected: {expected:?}\n  actual:   {actual:?}",
                A::NAME
            ),
            Ok(events) => panic!(
                "aggregate `{}`: expected the error {expected:?}, but the command produced {events:?}",
                A::NAME
            ),
        }
    }

    /// Asserts the command was rejected with an error for which `check` holds.
    ///
    /// # Panics
    /// When the command succeeded, or `check` returned false.
    #[track_caller]
    pub fn then_expect_error_matching(self, check: impl FnOnce(&A::Error) -> bool)
    where
        A::Event: Debug,
        A::Error: Debug,
    {
        match self.result {
            Err(actual) if check(&actual) => {}
            Err(actual) => panic!(
                "aggregate `{}`: the error did not match: {actual:?}",
                A::NAME
            ),
            Ok(events) => panic!(
                "aggregate `{}`: expected an error, but the command produced {events:?}",
                A::NAME
            ),
        }
    }
}

/// An event-by-event comparison, marking each position that differs.
fn events_diff<A: Aggregate>(expected: &[A::Event], actual: &[A::Event]) -> String
where
    A::Event: PartialEq + Debug,
{
    let mut out = format!(
        "aggregate `{}`: the command produced other events than expected ({} expected, {} actual)\n",
        A::NAME,
        expected.len(),
        actual.len()
    );
    for i in 0..expected.len().max(actual.len()) {
        let (e, a) = (expected.get(i), actual.get(i));
        let mark = if e == a { ' ' } else { '!' };
        let show =
            |x: Option<&A::Event>| x.map_or_else(|| "(none)".to_owned(), |x| format!("{x:?}"));
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{mark} [{i}] expected: {}", show(e));
        let _ = writeln!(out, "{mark} [{i}] actual:   {}", show(a));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::CodecError;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    enum Ev {
        Added(u32),
    }

    impl crate::Event for Ev {
        const NAME: &'static str = "ev";
        const VERSION: u32 = 1;
        fn variant_name(&self) -> &'static str {
            "Added"
        }
        fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
            crate::event::decode_oldest(version, bytes)
        }
    }

    #[derive(Default, Clone)]
    struct Sum(u32);

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("zero")]
    struct Zero;

    impl Aggregate for Sum {
        const NAME: &'static str = "sum";
        type Event = Ev;
        type Command = u32;
        type Error = Zero;
        fn handle(&self, n: u32) -> Result<Vec<Ev>, Zero> {
            if n == 0 {
                Err(Zero)
            } else {
                Ok(vec![Ev::Added(n); 2])
            }
        }
        fn apply(&mut self, Ev::Added(n): &Ev) {
            self.0 += n;
        }
    }

    #[test]
    fn then_expect_events_returns_the_evolved_state() {
        let state = AggregateTest::<Sum>::given([Ev::Added(1)])
            .when(3)
            .then_expect_events([Ev::Added(3), Ev::Added(3)]);
        assert_eq!(state.0, 7);
    }

    #[test]
    fn a_mismatch_panics_with_an_event_by_event_diff() {
        let outcome = std::panic::catch_unwind(|| {
            AggregateTest::<Sum>::given([])
                .when(3)
                .then_expect_events([Ev::Added(3)]);
        });
        let message = *outcome
            .expect_err("must panic")
            .downcast::<String>()
            .expect("a String message");
        assert!(message.contains("1 expected, 2 actual"), "{message}");
        assert!(message.contains("  [0] expected: Added(3)"), "{message}");
        assert!(message.contains("! [1] expected: (none)"), "{message}");
    }

    #[test]
    fn then_expect_error_checks_the_rejection() {
        AggregateTest::<Sum>::given([])
            .when(0)
            .then_expect_error(Zero);
        AggregateTest::<Sum>::given([])
            .when(0)
            .then_expect_error_matching(|e| e.to_string() == "zero");
        let outcome = std::panic::catch_unwind(|| {
            AggregateTest::<Sum>::given([])
                .when(1)
                .then_expect_error(Zero)
        });
        assert!(
            outcome.is_err(),
            "a command that succeeded must fail then_expect_error"
        );
    }
}
