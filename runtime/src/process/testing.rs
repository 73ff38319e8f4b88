//! Given/when/then for process managers, without a Db: `given` folds events
//! into the manager's state, `when` folds one more and returns what it reacts.

use std::fmt::{Debug, Display};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{ProcessManager, Reaction, Reacts};
use crate::Seq;
use crate::aggregate::Aggregate;
use crate::event::Event;
use crate::state::Meta;

/// A given/when/then scenario for process manager `P` (re-exported as
/// `foldkit::testing::ProcessTest`).
///
/// Events get positions 1, 2, .. in the order given; `given_in`/`when_in` put
/// them in a stream (as `execute` would, e.g. `"order/7"`).
#[must_use = "a scenario does nothing until `.when(event)` and a `then_*` check"]
pub struct ProcessTest<P: ProcessManager> {
    state: P::State,
    next: Seq,
}

impl<P: ProcessManager> Default for ProcessTest<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: ProcessManager> ProcessTest<P> {
    /// Starts from the default state.
    pub fn new() -> Self {
        Self {
            state: P::State::default(),
            next: 1,
        }
    }

    fn meta<E: Event>(&mut self, stream: Option<&str>) -> Meta {
        let mut meta = Meta::new(self.next, 0, E::VERSION);
        meta.event_name = Arc::from(E::NAME);
        if let Some(stream) = stream {
            meta = meta.with_stream_id(stream);
            meta.stream_version = Some(1);
        }
        self.next += 1;
        meta
    }

    /// Folds `event` into the state (its reactions are not looked at).
    pub fn given<E: Event>(self, event: E) -> Self
    where
        P: Reacts<E>,
    {
        self.given_at(None, event)
    }

    /// [`given`](Self::given), for an event of the stream `stream`.
    pub fn given_in<E: Event>(self, stream: &str, event: E) -> Self
    where
        P: Reacts<E>,
    {
        self.given_at(Some(stream), event)
    }

    fn given_at<E: Event>(mut self, stream: Option<&str>, event: E) -> Self
    where
        P: Reacts<E>,
    {
        let meta = self.meta::<E>(stream);
        P::apply(&mut self.state, &event, &meta);
        self
    }

    /// Folds `event` and returns what the manager reacts to it.
    pub fn when<E: Event>(self, event: E) -> ProcessOutcome<P>
    where
        P: Reacts<E>,
    {
        self.when_at(None, event)
    }

    /// [`when`](Self::when), for an event of the stream `stream`.
    pub fn when_in<E: Event>(self, stream: &str, event: E) -> ProcessOutcome<P>
    where
        P: Reacts<E>,
    {
        self.when_at(Some(stream), event)
    }

    fn when_at<E: Event>(mut self, stream: Option<&str>, event: E) -> ProcessOutcome<P>
    where
        P: Reacts<E>,
    {
        let meta = self.meta::<E>(stream);
        P::apply(&mut self.state, &event, &meta);
        let reactions = P::react(&self.state, &event, &meta);
        ProcessOutcome {
            state: self.state,
            reactions,
        }
    }
}

/// What the manager reacted in a [`ProcessTest`]; check it with a `then_*` method.
#[must_use = "check the outcome with a `then_*` method"]
pub struct ProcessOutcome<P: ProcessManager> {
    state: P::State,
    reactions: Vec<Reaction>,
}

impl<P: ProcessManager> ProcessOutcome<P> {
    /// The reactions, in order.
    pub fn reactions(&self) -> &[Reaction] {
        &self.reactions
    }

    /// The state after the event.
    pub fn state(&self) -> &P::State {
        &self.state
    }

    /// Asserts the manager reacted with exactly these commands for aggregate
    /// `A` (instance id, command), in order, and nothing else; returns the state.
    ///
    /// # Panics
    /// Listing every reaction when they differ.
    #[track_caller]
    pub fn then_expect_commands<A: Aggregate>(
        self,
        expected: impl IntoIterator<Item = (impl Display, A::Command)>,
    ) -> P::State
    where
        A::Command: DeserializeOwned + PartialEq + Debug,
    {
        let expected: Vec<(String, A::Command)> = expected
            .into_iter()
            .map(|(id, c)| (id.to_string(), c))
            .collect();
        let actual: Vec<Option<(String, A::Command)>> = (self.reactions.iter())
            .map(|r| r.as_command::<A>().map(|(id, c)| (id.to_owned(), c)))
            .collect();
        if !all_equal(&actual, &expected) {
            panic!(
                "process manager `{}`: expected the commands {expected:?} for `{}`, got the reactions {}",
                P::NAME,
                A::NAME,
                self.listing()
            );
        }
        self.state
    }

    /// Asserts the manager reacted by appending exactly these events, in
    /// order, and nothing else; returns the state.
    ///
    /// # Panics
    /// Listing every reaction when they differ.
    #[track_caller]
    pub fn then_expect_events<E: Event + PartialEq + Debug>(
        self,
        expected: impl IntoIterator<Item = E>,
    ) -> P::State {
        let expected: Vec<E> = expected.into_iter().collect();
        let actual: Vec<Option<E>> = (self.reactions.iter())
            .map(|r| r.as_event::<E>().map(|(_, e)| e))
            .collect();
        if !all_equal(&actual, &expected) {
            panic!(
                "process manager `{}`: expected the events {expected:?}, got the reactions {}",
                P::NAME,
                self.listing()
            );
        }
        self.state
    }

    /// Asserts the manager did not react; returns the state.
    ///
    /// # Panics
    /// Listing the reactions when there are some.
    #[track_caller]
    pub fn then_expect_nothing(self) -> P::State {
        if !self.reactions.is_empty() {
            panic!(
                "process manager `{}`: expected no reaction, got {}",
                P::NAME,
                self.listing()
            );
        }
        self.state
    }

    fn listing(&self) -> String {
        let all: Vec<String> = self.reactions.iter().map(Reaction::describe).collect();
        format!("[{}]", all.join(", "))
    }
}

/// Whether every reaction is one of the expected kind and equals the expected
/// one at its place (and there are as many of each).
fn all_equal<T: PartialEq>(actual: &[Option<T>], expected: &[T]) -> bool {
    actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| a.as_ref() == Some(e))
}
