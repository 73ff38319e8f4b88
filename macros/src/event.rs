//! `#[derive(Event)]`: parse → validate → expand.

use proc_macro2::TokenStream;
use syn::DeriveInput;

/// Expands the derive, or the spanned errors that explain what to fix.
pub fn derive(input: &DeriveInput) -> TokenStream {
    syn::Error::new_spanned(&input.ident, "foldkit: this derive is being built").to_compile_error()
}
