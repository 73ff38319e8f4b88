//! The event types and aggregate commands a user's binary registers: shown
//! as JSON instead of hex.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Aggregate, Event};

type DecodeFn = fn(u32, &[u8]) -> Result<serde_json::Value, String>;
type CommandFn = fn(&[u8]) -> Result<serde_json::Value, String>;

fn decode_as<E: Event>(version: u32, body: &[u8]) -> Result<serde_json::Value, String> {
    let event = E::decode(version, body).map_err(|e| e.to_string())?;
    serde_json::to_value(&event).map_err(|e| e.to_string())
}

fn command_as<A: Aggregate>(bytes: &[u8]) -> Result<serde_json::Value, String>
where
    A::Command: Serialize + DeserializeOwned,
{
    let command: A::Command = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
    serde_json::to_value(&command).map_err(|e| e.to_string())
}

/// Decoders by event type name, and command decoders by aggregate name.
#[derive(Default, Clone)]
pub(crate) struct Decoders {
    events: BTreeMap<&'static str, DecodeFn>,
    commands: BTreeMap<&'static str, CommandFn>,
}

impl Decoders {
    pub(crate) fn register<E: Event>(&mut self) {
        self.events.insert(E::NAME, decode_as::<E>);
    }

    pub(crate) fn register_command<A: Aggregate>(&mut self)
    where
        A::Command: Serialize + DeserializeOwned,
    {
        self.commands.insert(A::NAME, command_as::<A>);
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.events.contains_key(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.events.keys().copied()
    }

    pub(crate) fn command_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.commands.keys().copied()
    }

    /// The event as JSON, `None` when its type is not registered.
    pub(crate) fn decode(
        &self,
        name: &str,
        version: u32,
        body: &[u8],
    ) -> Option<Result<serde_json::Value, String>> {
        self.events.get(name).map(|decode| decode(version, body))
    }

    /// The command for `aggregate` as JSON, `None` when it is not registered.
    pub(crate) fn decode_command(
        &self,
        aggregate: &str,
        bytes: &[u8],
    ) -> Option<Result<serde_json::Value, String>> {
        self.commands.get(aggregate).map(|decode| decode(bytes))
    }
}
