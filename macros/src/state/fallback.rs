//! The expansion that stands beside the errors of a state that failed to derive (as
//! thiserror-impl's `fallback.rs` does): a `State` impl whose fold never runs (the crate
//! does not compile), so `Db::builder(..).state::<S>()` and handles of the state add no
//! errors of their own. The event type is the one named, or `NoEvent` when none was.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Path};

pub fn expand(input: &DeriveInput, event: Option<&Path>, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    if !input.generics.params.is_empty() {
        return error;
    }
    let ident = &input.ident;
    let event = event.map_or_else(|| quote!(::foldkit::__private::NoEvent), |e| quote!(#e));
    quote! {
        #error

        #[automatically_derived]
        impl ::foldkit::State for #ident
        where
            // `for<'__fk>` keeps the bounds from being checked at the definition: a missing
            // one is reported where the state is used, if at all.
            for<'__fk> #ident: ::core::default::Default
                + ::foldkit::serde::Serialize
                + ::foldkit::serde::de::DeserializeOwned
                + ::core::marker::Send
                + ::core::marker::Sync,
        {
            type Event = #event;
            const NAME: &'static str = "";
            const VERSION: u32 = 1;
            const FINGERPRINT: u64 = 0;
            fn apply_event(
                &mut self,
                _: #event,
                _: &::foldkit::Meta,
            ) -> ::core::result::Result<(), ::foldkit::FoldError> {
                ::core::unreachable!("foldkit: `#[derive(State)]` failed; this is never compiled into a program")
            }
        }
    }
}
