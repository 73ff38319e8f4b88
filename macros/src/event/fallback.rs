//! The expansion that stands beside the errors of an event that failed to derive (as
//! thiserror-impl's `fallback.rs` does): an `Event` impl whose codec never runs (the crate
//! does not compile), so states and appends naming the event add no errors of their own.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

pub fn expand(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    if !input.generics.params.is_empty() {
        return error;
    }
    let ident = &input.ident;
    let name = ident.to_string();
    quote! {
        #error

        #[automatically_derived]
        impl ::foldkit::Event for #ident
        where
            // `for<'__fk>` keeps the bounds from being checked at the definition.
            for<'__fk> #ident: ::foldkit::serde::Serialize
                + ::foldkit::serde::de::DeserializeOwned
                + ::core::marker::Send,
        {
            const NAME: &'static str = #name;
            const VERSION: u32 = 1;
            fn variant_name(&self) -> &'static str {
                ::core::unreachable!("foldkit: `#[derive(Event)]` failed; this is never compiled into a program")
            }
            fn decode(
                _: u32,
                _: &[u8],
            ) -> ::core::result::Result<Self, ::foldkit::CodecError> {
                ::core::unreachable!("foldkit: `#[derive(Event)]` failed; this is never compiled into a program")
            }
        }
    }
}
