//! `#[derive(Entity)]`: parse → validate → expand.
//!
//! [`attr`] reads `#[entity(..)]` attributes, [`model`] checks the struct's shape and builds
//! the [`model::EntityDef`] the expansion works from, and [`expand`] emits the `Entity`
//! impl, the per-field marker types and the thin query builder.

mod attr;
mod expand;
mod model;

use proc_macro2::TokenStream;
use syn::DeriveInput;

/// Expands the derive, or the spanned errors that explain what to fix.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match model::EntityDef::from_input(input) {
        Ok(def) => expand::expand(&def),
        Err(error) => error.to_compile_error(),
    }
}
