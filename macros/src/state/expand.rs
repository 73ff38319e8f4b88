//! Code generation for `#[derive(State)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::fingerprint::fingerprint;
use super::model::StateDef;

pub fn expand(def: &StateDef<'_>) -> TokenStream {
    let ident = &def.input.ident;
    let event = &def.event;
    let (name, version, fingerprint) = (&def.name, def.version, fingerprint(def));
    let (impl_generics, ty_generics, _) = def.input.generics.split_for_impl();
    let where_clause = bounded_where_clause(def);
    // Each field must be serializable for snapshots: checked per field, so the
    // error points at the field. Generic fields are checked by the impl's bounds.
    let field_checks = if def.input.generics.params.is_empty() {
        let checks = def.fields.iter().map(|field| {
            let ty = &field.ty;
            quote_spanned!(ty.span()=> ::foldkit::__private::assert_snapshot_field::<#ty>();)
        });
        let ident = &def.input.ident;
        let state = quote_spanned!(ident.span()=> ::foldkit::__private::assert_state::<#ident>(););
        quote!(const _: () = { #state #(#checks)* };)
    } else {
        TokenStream::new()
    };
    let apply = quote_spanned! {event.span()=>
        <Self as ::foldkit::Apply<#event>>::apply(self, event, meta)
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics ::foldkit::State for #ident #ty_generics #where_clause {
            type Event = #event;
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const FINGERPRINT: u64 = #fingerprint;

            fn apply_event(
                &mut self,
                event: #event,
                meta: &::foldkit::Meta,
            ) -> ::core::result::Result<(), ::foldkit::FoldError> {
                #apply
            }
        }

        #field_checks
    }
}

/// A generic state's impl holds only when the state has what `State` needs; a
/// non-generic one keeps its where clause, so a missing bound is reported there.
fn bounded_where_clause(def: &StateDef<'_>) -> TokenStream {
    let generics = &def.input.generics;
    let existing = generics.where_clause.as_ref().map(|w| {
        let predicates = w.predicates.iter();
        quote!(#(#predicates,)*)
    });
    if generics.params.is_empty() {
        // `for<'__fk>` keeps the bound from being checked at the definition: a missing
        // derive is reported once, by the `assert_state` check.
        let ident = &def.input.ident;
        return quote! {
            where #existing for<'__fk> #ident: ::foldkit::__private::StateBounds,
        };
    }
    let event = &def.event;
    quote! {
        where
            #existing
            Self: ::core::default::Default
                + ::foldkit::serde::Serialize
                + ::foldkit::serde::de::DeserializeOwned
                + ::core::marker::Send
                + ::core::marker::Sync
                + 'static
                + ::foldkit::Apply<#event>,
    }
}
