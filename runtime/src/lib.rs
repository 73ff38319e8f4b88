//! foldkit: derive-driven, embedded event sourcing.

mod aggregate;
mod db;
pub mod entity;
mod event;
pub mod query;
pub mod snapshot;
mod state;
pub mod table;
pub mod testing;
pub mod watch;

/// Derives [`Entity`] for a struct with named fields: see the [`entity`] module.
pub use foldkit_macros::Entity;
pub use foldkit_macros::{Event, State};
pub use foldkit_storage as storage;
pub use foldkit_storage::{FsyncPolicy, Seq};

pub use aggregate::Aggregate;
pub use db::{
    Aggregates, Db, DbBuilder, DbError, Envelope, EnvelopeError, ExecuteError, Executed,
    ExpectedVersion, FoldCause, FoldErrorPolicy, FoldFailure, Handle, Loaded, ReadGuard,
    StoredEvent, StreamAppend,
};
pub use entity::{Entity, EntityId};
pub use event::{CodecError, Event};
pub use query::{Asc, Desc, Detached, Direction, Fetch, QueryBuilder, QueryCore};
pub use state::{Apply, FoldError, Meta, State};
pub use table::Table;

/// serde, re-exported so derived code and users need no direct dependency.
pub use serde;

/// Everything a user needs to model a domain: `use foldkit::prelude::*;`.
pub mod prelude {
    pub use crate::query::{Asc, Desc, Fetch, QueryBuilder};
    pub use crate::watch::WatchQuery;
    pub use crate::{Aggregate, Apply, Entity, Event, FoldError, Meta, State, Table};
    pub use crate::{Db, ExpectedVersion, FoldErrorPolicy, FsyncPolicy, Handle};
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private {
    //! Items the derives expand to. Not public API: no stability promise.
    pub use crate::event::{UpcastFrom, check_previous, decode_oldest, decode_with_previous};
    pub use crate::query::fields::{
        ContainsField, EqField, IndexKey, OptionField, OrdField, SortField,
    };
    pub use crate::state::{SnapshotField, assert_snapshot_field};
    pub use crate::table::{AnyIndex, HashIndex, Keys, index_each, index_one};
    pub use std::boxed::Box;
    pub use std::ops::Bound;
    pub use std::vec::Vec;
}
