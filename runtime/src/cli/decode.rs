//! The event types a user's binary registers: payloads shown as JSON.

use std::collections::BTreeMap;

use crate::Event;

type DecodeFn = fn(u32, &[u8]) -> Result<serde_json::Value, String>;

fn decode_as<E: Event>(version: u32, body: &[u8]) -> Result<serde_json::Value, String> {
    let event = E::decode(version, body).map_err(|e| e.to_string())?;
    serde_json::to_value(&event).map_err(|e| e.to_string())
}

/// Decoders by event type name.
#[derive(Default, Clone)]
pub(crate) struct Decoders(BTreeMap<&'static str, DecodeFn>);

impl Decoders {
    pub(crate) fn register<E: Event>(&mut self) {
        self.0.insert(E::NAME, decode_as::<E>);
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }

    /// The event as JSON, `None` when its type is not registered.
    pub(crate) fn decode(
        &self,
        name: &str,
        version: u32,
        body: &[u8],
    ) -> Option<Result<serde_json::Value, String>> {
        self.0.get(name).map(|decode| decode(version, body))
    }
}
