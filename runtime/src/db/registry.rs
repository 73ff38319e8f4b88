//! The event types a Db knows: what `append` accepts and what names mean.
//!
//! Invariant: one stable name ↔ one Rust type. Every version of an event type
//! shares one name (the old enums declare the same `name`), and the Db registers
//! only the current one; two registered types with one name are refused at open.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::db::error::DbError;
use crate::event::Event;
use crate::state::EventType;

/// One registered event type.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    /// The stable name, shared by every event appended of this type.
    pub(crate) name: Arc<str>,
    /// The Rust type's name.
    pub(crate) rust_name: &'static str,
}

/// The event types of one Db.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Looked up on every append: a fast hasher (`TypeId`s are not user input).
    by_type: HashMap<TypeId, Registered, foldhash::fast::FixedState>,
    names: Vec<Arc<str>>,
    /// Names met in the log that no registered type knows, reported once each.
    reported: Mutex<HashSet<Arc<str>>>,
}

impl Registry {
    /// The registry of `types`, or the first conflict or invalid name.
    pub(crate) fn new(types: &[EventType]) -> Result<Self, DbError> {
        let mut registry = Registry::default();
        let mut by_name: HashMap<&'static str, EventType> = HashMap::new();
        for event in types {
            if registry.by_type.contains_key(&event.type_id()) {
                continue;
            }
            if let Some(first) = by_name.get(event.name) {
                return Err(DbError::EventNameConflict {
                    name: event.name,
                    first: first.rust_name(),
                    second: event.rust_name(),
                });
            }
            check_name(event.name)?;
            by_name.insert(event.name, *event);
            let name: Arc<str> = Arc::from(event.name);
            registry.names.push(Arc::clone(&name));
            let registered = Registered {
                name,
                rust_name: event.rust_name(),
            };
            registry.by_type.insert(event.type_id(), registered);
        }
        Ok(registry)
    }

    /// The registration of `E`, or [`DbError::UnknownEvent`] naming the type used
    /// (and the registered type of the same name, when `E` is an older version of it).
    pub(crate) fn get<E: Event>(&self) -> Result<&Registered, DbError> {
        self.by_type
            .get(&TypeId::of::<E>())
            .ok_or_else(|| DbError::UnknownEvent {
                event: E::NAME,
                rust_type: std::any::type_name::<E>(),
                registered: self
                    .by_type
                    .values()
                    .find(|r| &*r.name == E::NAME)
                    .map(|r| r.rust_name),
            })
    }

    /// Whether some registered type has the stable name `name`.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.names.iter().any(|n| &**n == name)
    }

    /// Reports, once per name, a record no registered type knows (written by a
    /// newer release, or of a type this program no longer registers).
    pub(crate) fn report_unknown(&self, name: &Arc<str>, position: crate::Seq) {
        if self.reported.lock().insert(Arc::clone(name)) {
            tracing::warn!(event = %name, position, "foldkit: skipping events of a type no registered event type knows (reported once per type)");
        }
    }

    /// The names met in the log that no registered type knows.
    pub(crate) fn unknown_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.reported.lock().iter().cloned().collect();
        names.sort();
        names
    }
}

fn check_name(name: &'static str) -> Result<(), DbError> {
    let invalid = |reason| DbError::InvalidEventName { name, reason };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 255 {
        return Err(invalid("it is longer than 255 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(())
}
