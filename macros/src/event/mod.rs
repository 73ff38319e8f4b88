//! `#[derive(Event)]`: parse → validate → expand.
//!
//! [`model`] reads `#[event(..)]` and checks the enum; [`expand`] emits the
//! `foldkit::Event` impl, whose codec and upcasting live in generic runtime code
//! (`foldkit::__private::decode_*`), plus a compile-time check of the version chain;
//! [`fallback`] stands beside the errors of an input that failed, so each mistake is
//! reported once.

mod expand;
mod fallback;
mod model;

use proc_macro2::TokenStream;
use syn::DeriveInput;

/// Expands the derive, or the spanned errors that explain what to fix.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match model::EventDef::from_input(input) {
        Ok(def) => expand::expand(&def),
        Err(error) => fallback::expand(input, error),
    }
}
