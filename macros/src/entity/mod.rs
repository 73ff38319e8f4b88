//! `#[derive(Entity)]`: parse → validate → expand.
//!
//! [`attr`] reads `#[entity(..)]` attributes, [`kind`] tells what a field's type can do,
//! [`generics`] splits the struct's generics,
//! [`model`] checks the struct and builds the [`model::EntityDef`] the expansion works
//! from, [`expand`] and [`methods`] emit the `Entity` impl, the field markers and the thin
//! query type, and [`fallback`] stands in when the input is not a struct at all. A mistake
//! is reported once: the errors come with a full (or stub) expansion, so uses of the type
//! add no errors of their own.

mod attr;
mod expand;
mod fallback;
mod generics;
mod kind;
mod methods;
mod model;

use proc_macro2::TokenStream;
use syn::DeriveInput;

/// Expands the derive, or the spanned errors that explain what to fix.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match model::EntityDef::from_input(input) {
        Ok(def) => expand::expand(&def),
        Err(model::Invalid {
            error,
            recovered: Some(def),
        }) => {
            let mut out = error.to_compile_error();
            out.extend(expand::expand(&def));
            out
        }
        Err(model::Invalid {
            error,
            recovered: None,
        }) => fallback::expand(input, error),
    }
}
