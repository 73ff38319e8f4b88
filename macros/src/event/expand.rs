//! Code generation for `#[derive(Event)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Fields;
use syn::spanned::Spanned;

use super::model::EventDef;

pub fn expand(def: &EventDef<'_>) -> TokenStream {
    let ident = &def.input.ident;
    let (impl_generics, ty_generics, where_clause) = def.input.generics.split_for_impl();
    let where_clause = if def.input.generics.params.is_empty() {
        match &def.previous {
            // `for<'__fk>` keeps `previous: Event` from being checked at the definition:
            // the chain check reports it, once.
            Some(previous) => {
                let existing = where_clause.map(|w| {
                    let predicates = w.predicates.iter();
                    quote!(#(#predicates,)*)
                });
                quote!(where #existing for<'__fk> #previous: ::foldkit::Event,)
            }
            None => quote!(#where_clause),
        }
    } else {
        // A generic event's impl holds only when it has what `Event` needs.
        let existing = where_clause.map(|w| {
            let predicates = w.predicates.iter();
            quote!(#(#predicates,)*)
        });
        quote! {
            where
                #existing
                Self: ::foldkit::serde::Serialize
                    + ::foldkit::serde::de::DeserializeOwned
                    + ::core::marker::Send
                    + 'static,
        }
    };
    let (name, version) = (&def.name, def.version);
    let arms = def.variants.iter().map(|v| {
        let variant = &v.ident;
        let text = variant.to_string();
        let pattern = match &v.fields {
            Fields::Named(_) => quote!(Self::#variant { .. }),
            Fields::Unnamed(_) => quote!(Self::#variant(..)),
            Fields::Unit => quote!(Self::#variant),
        };
        quote!(#pattern => #text,)
    });
    let decode = match &def.previous {
        None => quote!(::foldkit::__private::decode_oldest::<Self>(version, bytes)),
        // Spanned at the `previous` path, so a missing `From` impl points there.
        Some(previous) => quote_spanned! {previous.span()=>
            ::foldkit::__private::decode_with_previous::<Self, #previous>(version, bytes)
        },
    };
    // The chain check needs concrete types: generic events skip it.
    let chain_check = match &def.previous {
        Some(previous) if def.input.generics.params.is_empty() => quote_spanned! {previous.span()=>
            const _: () = ::foldkit::__private::check_previous::<#previous>(#version, #name);
        },
        _ => TokenStream::new(),
    };
    let variant_name = if def.variants.is_empty() {
        quote!(match *self {})
    } else {
        quote! {
            #[allow(unreachable_patterns)]
            match self {
                #(#arms)*
            }
        }
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics ::foldkit::Event for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;

            fn variant_name(&self) -> &'static str {
                #variant_name
            }

            fn decode(
                version: u32,
                bytes: &[u8],
            ) -> ::core::result::Result<Self, ::foldkit::CodecError> {
                #decode
            }
        }

        #chain_check
    }
}
