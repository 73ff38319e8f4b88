//! The per-field `where_*` / `order_by_*` methods: one line each, calling
//! `::foldkit::__private::Clauses` with the field's marker type, which implements
//! `FieldOf<Entity, FieldType>` (the field's descriptor).
//!
//! Which methods a field gets depends on its [`Kind`]: an integer gets equality, ranges and
//! ordering; a `bool` only equality; an `Option` equality and `is_some`/`is_none`; a
//! collection `contains`. Where the macro knows the type has the capability (an integer is
//! ordered) the method has no bound; otherwise the method carries the capability bound,
//! which names the query's source `__S` so it is checked (and its message shown) where the
//! method is called.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;

use super::kind::{Kind, is_string};
use super::model::{FieldDef, IndexKind};

/// Names shared by every field's methods.
pub struct Ctx<'a> {
    /// The entity type with its generic arguments.
    pub entity: &'a TokenStream,
    /// The markers module.
    pub markers: &'a syn::Ident,
}

/// The field's descriptor: its marker type implements `FieldOf<Entity, Type>`, whose `GET`
/// const reads the field (a constant at every use, so clause loops call it directly).
pub fn descriptor_impl(
    cx: &Ctx,
    field: &FieldDef,
    impl_params: &TokenStream,
    where_clause: Option<&syn::WhereClause>,
) -> TokenStream {
    let (entity, markers, f, ty) = (cx.entity, cx.markers, field.ident, field.ty);
    quote! {
        #[automatically_derived]
        impl<#impl_params> ::foldkit::__private::FieldOf<#entity, #ty> for #markers::#f #where_clause {
            const GET: fn(&#entity) -> &#ty = |r| &r.#f;
        }
    }
}

/// The methods of one field.
pub fn methods(cx: &Ctx, field: &FieldDef) -> TokenStream {
    let base = field.ident.unraw().to_string();
    let ty = field.ty;
    let m = {
        let (markers, f) = (cx.markers, field.ident);
        quote!(#markers::#f)
    };
    let entity = cx.entity;
    let fk = quote!(::foldkit::__private);
    let bound = |cap: &str| {
        let cap = format_ident!("{}", cap);
        quote!(where #ty: #fk::#cap<#entity, #m, __S>)
    };
    let name = |suffix: &str| format_ident!("where_{}{}", base, suffix);
    let doc = |what: &str| format!("Rows whose `{base}` {what}.");
    // The argument type: `&str` converts for `String` fields; other fields take their own
    // type, so an integer literal infers to it.
    let value = match field.kind {
        Kind::String => quote!(impl #fk::IntoValue<String>),
        _ => quote!(#ty),
    };
    let kind = &field.kind;
    let mut out = TokenStream::new();

    // Equality.
    // A field with an ordered index: its slot, and the `OrderedKey` bound its indexed
    // methods carry unless the kind is known to be `Ord + Hash`.
    let ordered = match &field.index {
        Some((IndexKind::Ordered, slot)) => Some(*slot),
        _ => None,
    };
    let known = kind.hashable() || matches!(kind, Kind::Option { known: true });
    let ordered_bound = if known {
        TokenStream::new()
    } else {
        bound("OrderedKey")
    };
    let eq_bound = match (&field.index, kind) {
        (Some((IndexKind::Ordered, _)), _) => ordered_bound.clone(),
        (Some((IndexKind::One, _)), _) if !known => bound("IndexKey"),
        (_, Kind::Option { known: false } | Kind::Other) => bound("EqField"),
        _ => TokenStream::new(),
    };
    let (w, ne, any) = (name(""), name("_ne"), name("_in"));
    let (d_eq, d_ne, d_in) = (
        doc("equals `value`"),
        doc("differs from `value`"),
        doc("equals one of `values`"),
    );
    let ne_bound = match kind {
        Kind::Option { known: false } | Kind::Other => bound("EqField"),
        _ => TokenStream::new(),
    };
    if !matches!(kind, Kind::Collection { .. }) {
        let (eq_call, in_call) = match &field.index {
            Some((IndexKind::Ordered, slot)) => (
                quote!(#fk::Clauses::eq_ordered(self, #m, #slot, value)),
                quote!(#fk::Clauses::any_of_ordered(self, #m, #slot, values)),
            ),
            Some((IndexKind::One, slot)) => (
                quote!(#fk::Clauses::eq_indexed(self, #m, #slot, value)),
                quote!(#fk::Clauses::any_of_indexed(self, #m, #slot, values)),
            ),
            _ => (
                quote!(#fk::Clauses::eq(self, #m, value)),
                quote!(#fk::Clauses::any_of(self, #m, values)),
            ),
        };
        out.extend(quote! {
            #[doc = #d_eq]
            pub fn #w(self, value: #value) -> Self #eq_bound { #eq_call }
            #[doc = #d_ne]
            pub fn #ne(self, value: #value) -> Self #ne_bound {
                #fk::Clauses::ne(self, #m, value)
            }
        });
        if !matches!(kind, Kind::Bool) {
            let values = match kind {
                Kind::String => quote!(impl ::core::iter::IntoIterator<Item = #value>),
                _ => quote!(impl #fk::Values<#value>),
            };
            out.extend(quote! {
                #[doc = #d_in]
                pub fn #any(self, values: #values) -> Self
                #eq_bound { #in_call }
            });
        }
    }

    // Ranges.
    if matches!(
        kind,
        Kind::Integer | Kind::Float | Kind::String | Kind::Other
    ) {
        let ord = match (ordered, kind) {
            (Some(_), _) => ordered_bound.clone(),
            (None, Kind::Other) => bound("OrdField"),
            _ => TokenStream::new(),
        };
        // On a field with an ordered index, the clause goes through the index.
        let (suffix_of, slot) = match ordered {
            Some(slot) => ("_ordered", quote!(#slot,)),
            None => ("", TokenStream::new()),
        };
        for (suffix, call, what) in [
            ("_gt", "gt", "is greater than `value`"),
            ("_gte", "gte", "is at least `value`"),
            ("_lt", "lt", "is less than `value`"),
            ("_lte", "lte", "is at most `value`"),
        ] {
            let (method, d) = (name(suffix), doc(what));
            let call = format_ident!("{}{}", call, suffix_of);
            out.extend(quote! {
                #[doc = #d]
                pub fn #method(self, value: #value) -> Self #ord {
                    #fk::Clauses::#call(self, #m, #slot value)
                }
            });
        }
        let (between, d) = (name("_between"), doc("lies in `low..=high`"));
        let call = format_ident!("between{}", suffix_of);
        out.extend(quote! {
            #[doc = #d]
            pub fn #between(self, low: #value, high: #value) -> Self #ord {
                #fk::Clauses::#call(self, #m, #slot low, high)
            }
        });
    }

    // Search.
    let contains = name("_contains");
    match kind {
        Kind::String => {
            let d = doc("contains the substring `needle`");
            out.extend(quote! {
                #[doc = #d]
                pub fn #contains(self, needle: #value) -> Self {
                    #fk::Clauses::contains(self, #m, needle)
                }
            });
        }
        Kind::Collection { element, .. } => {
            let d = doc("contains the element `needle`");
            let needle = if is_string(element) {
                quote!(impl #fk::IntoValue<String>)
            } else {
                quote!(#element)
            };
            let element_kind = Kind::of(element, &syn::Generics::default());
            let call = match &field.index {
                Some((IndexKind::Each(_), slot)) => {
                    let b = if element_kind.hashable() {
                        TokenStream::new()
                    } else {
                        quote!(where #element: #fk::IndexKey<#entity, #m, __S>)
                    };
                    quote!(#b { #fk::Clauses::contains_indexed(self, #m, #slot, needle) })
                }
                _ => {
                    let b = if element_kind.hashable() {
                        TokenStream::new()
                    } else {
                        bound("ContainsField")
                    };
                    quote!(#b { #fk::Clauses::contains(self, #m, needle) })
                }
            };
            out.extend(quote! {
                #[doc = #d]
                pub fn #contains(self, needle: #needle) -> Self #call
            });
        }
        _ => {}
    }

    // Option tests.
    if let Kind::Option { known } = kind {
        let opt = if *known {
            TokenStream::new()
        } else {
            bound("OptionField")
        };
        let (is_some, is_none) = (name("_is_some"), name("_is_none"));
        let (d_some, d_none) = (doc("is `Some`"), doc("is `None`"));
        out.extend(quote! {
            #[doc = #d_some]
            pub fn #is_some(self) -> Self #opt { #fk::Clauses::some(self, #m, true) }
            #[doc = #d_none]
            pub fn #is_none(self) -> Self #opt { #fk::Clauses::some(self, #m, false) }
        });
    }

    // Ordering.
    if !matches!(kind, Kind::Bool | Kind::Collection { .. }) {
        let sort = match (ordered, kind) {
            (Some(_), _) => ordered_bound.clone(),
            (None, Kind::Integer | Kind::String | Kind::Option { known: true }) => {
                TokenStream::new()
            }
            _ => bound("SortField"),
        };
        let order_by = format_ident!("order_by_{}", base);
        let d = format!("Orders by `{base}` (after earlier orderings; ties by ascending id).");
        let call = match ordered {
            Some(slot) => quote!(#fk::Clauses::order_by_ordered(self, #m, #slot, direction)),
            None => quote!(#fk::Clauses::order_by(self, #m, direction)),
        };
        out.extend(quote! {
            #[doc = #d]
            pub fn #order_by(self, direction: ::foldkit::Direction) -> Self #sort { #call }
        });
    }
    out
}
