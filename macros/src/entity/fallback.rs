//! The expansion that stands beside the errors of an input that is not a struct with named
//! fields (as thiserror-impl's `fallback.rs` does): the `Entity` impl, an empty query type
//! and `filter()`, with bodies that never run (the crate does not compile), so a use of the
//! type adds no error of its own.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::DeriveInput;
use syn::ext::IdentExt;

/// The error, and stubs that keep the type usable as an entity.
pub fn expand(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let ident = &input.ident;
    let vis = &input.vis;
    let query = format_ident!("{}Query", ident.unraw());
    let error = error.to_compile_error();
    // Generic inputs get the error only: stubs would need every bound the user meant.
    if !input.generics.params.is_empty() {
        return error;
    }
    quote! {
        #error

        #[doc(hidden)]
        #vis struct #query<__S = ::foldkit::Detached> {
            source: __S,
            core: ::foldkit::QueryCore<#ident>,
        }

        #[automatically_derived]
        impl<__S> ::foldkit::QueryBuilder for #query<__S> {
            type Entity = #ident;
            type Source = __S;
            fn from_parts(source: __S, core: ::foldkit::QueryCore<#ident>) -> Self {
                Self { source, core }
            }
            fn into_parts(self) -> (__S, ::foldkit::QueryCore<#ident>) {
                (self.source, self.core)
            }
            fn core(&self) -> &::foldkit::QueryCore<#ident> {
                &self.core
            }
        }

        #[automatically_derived]
        impl ::foldkit::Entity for #ident {
            type Id = ();
            type Query<__S> = #query<__S>;
            const NAME: &'static str = "";
            fn id(&self) -> &() {
                &()
            }
            fn indexes() -> ::foldkit::__private::Vec<
                ::foldkit::__private::Box<dyn ::foldkit::__private::AnyIndex<Self>>,
            > {
                ::foldkit::__private::Vec::new()
            }
        }

        #[automatically_derived]
        #[allow(dead_code)]
        impl #ident {
            #vis fn filter() -> #query {
                #query { source: ::foldkit::Detached, core: ::foldkit::QueryCore::new() }
            }
        }
    }
}
