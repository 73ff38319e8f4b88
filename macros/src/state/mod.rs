//! `#[derive(State)]`: parse → validate → expand.
//!
//! [`model`] reads `#[state(..)]` and checks the struct; [`fingerprint`] hashes
//! its definition; [`expand`] emits the `foldkit::State` impl (the fold forwards
//! to the user's `Apply<E>`; snapshots are generic runtime code keyed by the
//! version and fingerprint emitted here) and a per-field serializability check.

mod expand;
mod fingerprint;
mod model;

use proc_macro2::TokenStream;
use syn::DeriveInput;

/// Expands the derive, or the spanned errors that explain what to fix.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match model::StateDef::from_input(input) {
        Ok(def) => expand::expand(&def),
        Err(error) => error.to_compile_error(),
    }
}
