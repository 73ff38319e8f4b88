//! The expansion that stands beside the errors of a state that failed to derive (as
//! thiserror-impl's `fallback.rs` does): a `State` impl whose fold never runs (the crate
//! does not compile), so `Db::builder(..).state::<S>()` and handles of the state add no
//! errors of their own. It lists the event types that were named (none when none was).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Path};

pub fn expand(input: &DeriveInput, events: &[Path], error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    if !input.generics.params.is_empty() {
        return error;
    }
    let ident = &input.ident;
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
            const NAME: &'static str = "";
            const VERSION: u32 = 1;
            const FINGERPRINT: u64 = 0;
            const EVENTS: &'static [::foldkit::__private::EventType] =
                &[#(::foldkit::__private::EventType::of::<#events>()),*];
            fn apply_recorded(
                &mut self,
                _: &::foldkit::__private::RecordedEvent,
                _: &::foldkit::Meta,
            ) -> ::core::result::Result<bool, ::foldkit::__private::FoldCause> {
                // Never runs: the derive's error stops the crate from compiling.
                ::core::result::Result::Ok(false)
            }
        }
    }
}
