//! `#[derive(State)]`: parse → validate → expand.
//!
//! [`model`] reads `#[state(..)]` and checks the struct; [`fingerprint`] hashes
//! its definition; [`expand`] emits the `foldkit::State` impl (the fold forwards
//! to the user's `Apply<E>`; snapshots are generic runtime code keyed by the
//! version and fingerprint emitted here) and a per-field serializability check;
//! [`fallback`] stands beside the errors of an input that failed, so each mistake is
//! reported once.

mod expand;
mod fallback;
mod fingerprint;
mod model;

use proc_macro2::TokenStream;
use syn::DeriveInput;

/// Expands the derive, or the spanned errors that explain what to fix.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match model::StateDef::from_input(input) {
        Ok(def) => expand::expand(&def),
        Err((error, events)) => fallback::expand(input, &events, error),
    }
}
