//! Derive macros for foldkit. Use them through the `foldkit` crate, which re-exports them.
//!
//! Each derive is parse → validate → expand: attribute parsing and validation
//! report every problem as a spanned `syn::Error`, and the expansion is thin glue
//! over generic code in `foldkit` (`::foldkit::__private`).
//!
//! ```
//! use foldkit::prelude::*;
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! #[event(name = "Counter", version = 1)]
//! enum CounterV1 { Added(u32) }
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "Counter", version = 2, previous = CounterV1)]
//! enum Counter { Added { by: u64 } }
//!
//! impl From<CounterV1> for Counter {
//!     fn from(CounterV1::Added(by): CounterV1) -> Self { Counter::Added { by: by.into() } }
//! }
//!
//! // A payload written by the old schema is upcast when read.
//! let old = CounterV1::Added(3).encode().unwrap();
//! assert_eq!(Counter::decode(1, &old).unwrap(), Counter::Added { by: 3 });
//! ```

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod attr;
mod entity;
mod event;
mod state;

#[cfg(test)]
mod expansion_size;

#[doc = include_str!("../doc/event.md")]
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::derive(&input).into()
}

#[doc = include_str!("../doc/entity.md")]
#[proc_macro_derive(Entity, attributes(entity))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    entity::derive(&input).into()
}

#[doc = include_str!("../doc/state.md")]
#[proc_macro_derive(State, attributes(state))]
pub fn derive_state(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    state::derive(&input).into()
}
