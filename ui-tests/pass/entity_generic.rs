#![deny(warnings)]
//! A generic entity: bounds are carried through to the generated code.

use foldkit::prelude::*;
use std::fmt::Debug;

/// A row with a generic payload.
#[derive(Entity, Clone, Debug, PartialEq)]
pub struct Row<T: Clone + Debug + 'static> {
    #[entity(id)]
    pub id: u32,
    #[entity(index)]
    pub group: u8,
    pub value: T,
}

mod nested {
    use foldkit::prelude::*;

    /// Declared in a module with `pub(crate)` visibility.
    #[derive(Entity, Clone, Debug)]
    pub(crate) struct Note {
        #[entity(id)]
        pub(crate) r#type: String,
        pub(crate) body: String,
    }
}

fn main() {
    let mut rows = Table::<Row<f64>>::default();
    rows.insert(Row { id: 1, group: 1, value: 0.5 });
    rows.insert(Row { id: 2, group: 1, value: 2.5 });
    rows.insert(Row { id: 3, group: 2, value: 9.0 });
    assert_eq!(rows.query().where_group(1u8).where_value_gt(1.0).ids(), vec![2]);

    let mut notes = Table::<nested::Note>::default();
    notes.insert(nested::Note { r#type: "a".into(), body: "hello".into() });
    assert!(notes.query().where_type("a").where_body_contains("ell").exists());
    tagged();
}

/// A generic entity whose bounds are in a where clause.
#[derive(Entity, Clone, Debug)]
pub struct Tagged<K>
where
    K: Clone + Debug + PartialOrd + Send + Sync + 'static,
{
    #[entity(id)]
    pub id: u64,
    pub key: K,
    pub label: Option<String>,
}

fn tagged() {
    let mut rows = Table::<Tagged<u8>>::new();
    rows.insert(Tagged { id: 1, key: 3, label: None });
    assert_eq!(rows.query().where_key_gt(2).where_label_is_none().count(), 1);
}
