//! foldkit: derive-driven, embedded event sourcing.

pub use foldkit_storage as storage;
pub use foldkit_storage::Seq;

pub mod entity;
pub mod query;
pub mod table;

pub use entity::{Entity, EntityId};
/// Derives [`Entity`] for a struct with named fields: see the [`entity`] module.
pub use foldkit_macros::Entity;
pub use query::{Asc, Desc, Detached, Direction, Fetch, QueryBuilder, QueryCore};
pub use serde;
pub use table::Table;

/// `use foldkit::prelude::*;` brings in the derives, the core types and serde's traits.
pub mod prelude {
    pub use crate::entity::Entity;
    pub use crate::query::{Asc, Desc, Fetch, QueryBuilder};
    pub use crate::table::Table;
    pub use foldkit_macros::Entity;
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private {
    //! Items the derives expand to. Not public API: no stability promise.
    pub use crate::query::fields::{
        ContainsField, EqField, IndexKey, OptionField, OrdField, SortField,
    };
    pub use crate::table::{AnyIndex, HashIndex, Keys, index_each, index_one};
    pub use std::boxed::Box;
    pub use std::ops::Bound;
    pub use std::vec::Vec;
}
