//! Reactions: what a process manager asks for, as plain (serializable) data.
//!
//! A reaction is stored as bytes (the command or event encoded with postcard)
//! so a parked one survives a restart in the manager's snapshot and can be
//! retried later; the code that runs it is looked up by aggregate name among
//! the aggregates the manager declared.

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::event::Event;

/// A command for an aggregate instance, or an event to append: what
/// [`Reacts::react`](super::Reacts::react) returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub(crate) kind: Kind,
    pub(crate) correlation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// `Aggregates::<A>::execute(id, command)`.
    Command {
        aggregate: String,
        id: String,
        command: Vec<u8>,
    },
    /// `db.append` (or `append_to`, with a stream).
    Append {
        stream: Option<String>,
        name: String,
        version: u32,
        payload: Vec<u8>,
    },
    /// A reaction that could not be encoded: fails when dispatched (and is parked).
    Invalid { what: String, reason: String },
}

impl Reaction {
    /// Runs `command` against the instance `id` of aggregate `A` (declared with
    /// `d.commands::<A>()`). The command is encoded (postcard) so that a parked
    /// reaction can be retried after a restart.
    pub fn command<A: Aggregate>(id: impl std::fmt::Display, command: &A::Command) -> Self
    where
        A::Command: Serialize,
    {
        let id = id.to_string();
        let kind = match postcard::to_allocvec(command) {
            Ok(command) => Kind::Command {
                aggregate: A::NAME.to_owned(),
                id,
                command,
            },
            Err(e) => Kind::Invalid {
                what: format!("command for `{}/{id}`", A::NAME),
                reason: e.to_string(),
            },
        };
        Reaction {
            kind,
            correlation_id: None,
        }
    }

    /// Appends `event` (to no stream; its type declared with `d.appends::<E>()`).
    pub fn append<E: Event>(event: &E) -> Self {
        Self::append_event(None, event)
    }

    /// Appends `event` to the stream `stream` (at any version).
    pub fn append_to<E: Event>(stream: impl Into<String>, event: &E) -> Self {
        Self::append_event(Some(stream.into()), event)
    }

    fn append_event<E: Event>(stream: Option<String>, event: &E) -> Self {
        let kind = match event.encode() {
            Ok(payload) => Kind::Append {
                stream,
                name: E::NAME.to_owned(),
                version: E::VERSION,
                payload,
            },
            Err(e) => Kind::Invalid {
                what: format!("event `{}`", E::NAME),
                reason: crate::chain::Chain(&e).to_string(),
            },
        };
        Reaction {
            kind,
            correlation_id: None,
        }
    }

    /// The same reaction under the correlation id `id` (instead of the causing
    /// event's).
    pub fn correlated(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The correlation id set with [`correlated`](Self::correlated), if any.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The instance id and command, if this is a command for aggregate `A`.
    pub fn as_command<A: Aggregate>(&self) -> Option<(&str, A::Command)>
    where
        A::Command: serde::de::DeserializeOwned,
    {
        match &self.kind {
            Kind::Command {
                aggregate,
                id,
                command,
            } if aggregate == A::NAME => {
                postcard::from_bytes(command).ok().map(|c| (id.as_str(), c))
            }
            _ => None,
        }
    }

    /// The event and its stream, if this appends an event of type `E`.
    pub fn as_event<E: Event>(&self) -> Option<(Option<&str>, E)> {
        match &self.kind {
            Kind::Append {
                stream,
                name,
                version,
                payload,
            } if name == E::NAME => E::decode(*version, payload)
                .ok()
                .map(|e| (stream.as_deref(), e)),
            _ => None,
        }
    }

    /// What the reaction targets, for logs and dead letters: `"command
    /// inventory/sku-1"`, `"append order-mail"`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Command { aggregate, id, .. } => format!("command {aggregate}/{id}"),
            Kind::Append {
                stream: Some(stream),
                name,
                ..
            } => format!("append `{name}` to {stream}"),
            Kind::Append { name, .. } => format!("append `{name}`"),
            Kind::Invalid { what, .. } => format!("invalid {what}"),
        }
    }
}
