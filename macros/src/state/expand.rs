//! Code generation for `#[derive(State)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::fingerprint::fingerprint;
use super::model::StateDef;

pub fn expand(def: &StateDef<'_>) -> TokenStream {
    let ident = &def.input.ident;
    let events = &def.events;
    let (name, version, fingerprint) = (&def.name, def.version, fingerprint(def));
    let (impl_generics, ty_generics, _) = def.input.generics.split_for_impl();
    let where_clause = bounded_where_clause(def);
    // Each field must be serializable for snapshots: checked per field, so the
    // error points at the field. Generic fields are checked by the impl's bounds.
    //
    // A field that is not serializable still gets serde's own errors next to
    // this one (4 today, see ui-tests/fail/state_field_not_serializable): they
    // come from the code `#[derive(Serialize, Deserialize)]` emits, which this
    // derive can neither see nor change, and rustc type-checks it whatever
    // other errors there are. rustc merges only identical diagnostics (same
    // message, span and notes), and serde's differ from each other (one per
    // serializer call: `serialize_field`, `next_element`, `next_value`, ..), so
    // no span or message given here can fold them into one. Dropping this
    // check would leave serde's errors alone, without the fix; getting to one
    // error would take this derive writing the serde impls itself.
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
    // One arm per event type, spanned at the type, so a missing `Apply<E>` is
    // reported at `E` in the attribute.
    let arms = events.iter().map(|event| {
        quote_spanned! {event.span()=>
            if let ::core::option::Option::Some(event) =
                ::foldkit::__private::decode_if::<#event>(recorded)?
            {
                <Self as ::foldkit::Apply<#event>>::apply(self, event, meta)
                    .map_err(::foldkit::__private::FoldCause::Apply)?;
                return ::core::result::Result::Ok(true);
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #impl_generics ::foldkit::State for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const FINGERPRINT: u64 = #fingerprint;
            const EVENTS: &'static [::foldkit::__private::EventType] =
                &[#(::foldkit::__private::EventType::of::<#events>()),*];

            fn apply_recorded(
                &mut self,
                recorded: &::foldkit::__private::RecordedEvent,
                meta: &::foldkit::Meta,
            ) -> ::core::result::Result<bool, ::foldkit::__private::FoldCause> {
                #(#arms)*
                ::core::result::Result::Ok(false)
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
    let events = &def.events;
    quote! {
        where
            #existing
            Self: ::core::default::Default
                + ::foldkit::serde::Serialize
                + ::foldkit::serde::de::DeserializeOwned
                + ::core::marker::Send
                + ::core::marker::Sync
                + 'static
                #(+ ::foldkit::Apply<#events>)*,
    }
}
