//! Derive macros for foldkit. Use them through the `foldkit` crate, which re-exports them.

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod attr;
mod entity;
mod event;
mod state;

/// Derives `foldkit::Event` for an event enum: stable name, version, postcard codec, upcasting.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::derive(&input).into()
}

/// Derives `foldkit::Entity` for a row struct: typed query builder, filter, and indexes.
#[proc_macro_derive(Entity, attributes(entity))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    entity::derive(&input).into()
}

/// Derives `foldkit::State` for a state struct: the fold and the snapshot codec.
#[proc_macro_derive(State, attributes(state))]
pub fn derive_state(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    state::derive(&input).into()
}
