//! A table serializes as the sequence of its rows in id order; indexes are not stored and
//! are rebuilt on load, in bulk (see `load`). Two rows with one id in the input are an error, never a silent drop.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Table;
use super::load::LoadError;
use crate::entity::Entity;

impl<T: Entity + Serialize> Serialize for Table<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de, T: Entity + Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(RowsVisitor(PhantomData))
    }
}

struct RowsVisitor<T>(PhantomData<T>);

impl<'de, T: Entity + Deserialize<'de>> Visitor<'de> for RowsVisitor<T> {
    type Value = Table<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of `{}` rows", T::NAME)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Table<T>, A::Error> {
        // The length comes from the input: trust it only up to what it costs to be wrong
        // (1 MiB of rows); past that the vector grows as rows actually arrive.
        let cautious = (1 << 20) / std::mem::size_of::<T>().max(1);
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(cautious));
        while let Some(row) = seq.next_element::<T>()? {
            rows.push(row);
        }
        Table::from_rows(rows).map_err(|error| match error {
            LoadError::Duplicate(id) => {
                A::Error::custom(format_args!("table of `{}` holds id {id:?} twice", T::NAME))
            }
            LoadError::TooMany(rows) => A::Error::custom(format_args!(
                "table of `{}` has {rows} rows, more than a table holds",
                T::NAME
            )),
        })
    }
}
