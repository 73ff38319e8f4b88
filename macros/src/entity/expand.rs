//! Code generation: the `Entity` impl, one marker type per field, and the query type whose
//! per-field methods ([`super::methods`]) are one-line calls into `::foldkit::__private`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use super::methods::{self, Ctx};
use super::model::{EntityDef, FieldDef, IndexKind};

/// The generics of an entity, split the ways the expansion needs them.
struct Split {
    /// `T, const N: usize,` without bounds, for the query type's alias (trailing comma).
    alias_params: TokenStream,
    /// `<T: Bound, const N: usize,>` without defaults, for impls (trailing comma).
    impl_params: TokenStream,
    /// `T, N,` (trailing comma).
    args: TokenStream,
    /// The struct's where-predicates (trailing comma).
    predicates: TokenStream,
}

fn split(generics: &syn::Generics) -> Split {
    let args = generics.params.iter().map(|param| match param {
        syn::GenericParam::Type(ty) => ty.ident.to_token_stream_ref(),
        syn::GenericParam::Lifetime(lt) => {
            let lifetime = &lt.lifetime;
            quote!(#lifetime)
        }
        syn::GenericParam::Const(c) => c.ident.to_token_stream_ref(),
    });
    let impl_params = generics.params.iter().map(|param| match param {
        syn::GenericParam::Type(ty) => {
            let mut ty = ty.clone();
            ty.eq_token = None;
            ty.default = None;
            quote!(#ty)
        }
        syn::GenericParam::Const(c) => {
            let mut c = c.clone();
            c.eq_token = None;
            c.default = None;
            quote!(#c)
        }
        other => quote!(#other),
    });
    let predicates = generics.where_clause.as_ref().map(|w| {
        let predicates = w.predicates.iter();
        quote!(#(#predicates,)*)
    });
    let alias_params = generics.params.iter().map(|param| match param {
        syn::GenericParam::Type(ty) => {
            let (ident, default) = (&ty.ident, ty.default.as_ref());
            match default {
                Some(default) => quote!(#ident = #default),
                None => quote!(#ident),
            }
        }
        syn::GenericParam::Lifetime(lt) => {
            let lifetime = &lt.lifetime;
            quote!(#lifetime)
        }
        syn::GenericParam::Const(c) => {
            let (ident, ty) = (&c.ident, &c.ty);
            quote!(const #ident: #ty)
        }
    });
    Split {
        alias_params: quote!(#(#alias_params,)*),
        impl_params: quote!(#(#impl_params,)*),
        args: quote!(#(#args,)*),
        predicates: quote!(#predicates),
    }
}

trait IdentTokens {
    fn to_token_stream_ref(&self) -> TokenStream;
}

impl IdentTokens for syn::Ident {
    fn to_token_stream_ref(&self) -> TokenStream {
        quote!(#self)
    }
}

/// The name of the hidden module of field markers.
pub fn markers_ident(ident: &syn::Ident) -> syn::Ident {
    format_ident!("__fk_{}", ident.unraw())
}

/// The whole expansion. `def.id` is `None` only for a model recovered from an error, whose
/// expansion stands beside that error: it uses `()` as the id so nothing else fails.
pub fn expand(def: &EntityDef) -> TokenStream {
    let ident = def.ident;
    let vis = def.vis;
    let name = ident.to_string();
    let markers = markers_ident(ident);
    let query = &def.query;
    let Split {
        alias_params,
        impl_params,
        args,
        predicates,
    } = split(def.generics);
    let where_c = &def.generics.where_clause;
    let entity = quote!(#ident<#args>);
    // `for<'__fk>` keeps the bound from being checked as a trivial bound at the
    // definition: an id type that is not an `EntityId` is reported once, by the assertion.
    let is_entity = quote!(for<'__fk> #entity: ::foldkit::Entity);

    let (id_type, id_body, id_check) = match def.id.map(|at| &def.fields[at]) {
        Some(field) => {
            let (f, ty) = (field.ident, field.ty);
            let check = if def.generics.params.is_empty() {
                quote_spanned! {ty.span()=>
                    const _: () = ::foldkit::__private::assert_entity_id::<#ty>();
                }
            } else {
                TokenStream::new()
            };
            (quote!(#ty), quote!(&self.#f), check)
        }
        None => (quote!(()), quote!(&()), TokenStream::new()),
    };
    let id_bound = quote!(for<'__fk> #id_type: ::foldkit::EntityId);
    let indexes = def
        .fields
        .iter()
        .filter_map(|field| index_ctor(field, &entity, &markers));
    let marker_types = def.fields.iter().map(|field| {
        let f = field.ident;
        quote!(pub struct #f;)
    });
    let cx = Ctx {
        entity: &entity,
        markers: &markers,
    };
    let descriptors = def
        .fields
        .iter()
        .map(|field| methods::descriptor_impl(&cx, field, &impl_params, where_c.as_ref()));
    let field_methods = def.fields.iter().map(|field| methods::methods(&cx, field));
    let query_doc = format!(
        "Typed query over `{name}` rows (generated by `#[derive(Entity)]`), generic over its source: a table (`Table::query`), a reusable filter (`{name}::filter()`), or a watch (`Handle::watch`).\n\nChain `where_*` clauses (they AND together), `order_by_*`, `offset`, `limit`; run it with the `Fetch` terminals (`collect`, `count`, ...), or pass a filter to `Table::find_many`."
    );
    let filter_doc =
        format!("A reusable filter over `{name}` rows: `Clone + Send + Sync + 'static`.");
    let query_name = query.to_string();
    let query_mod = format_ident!("__fk_{}", query);
    let query_mod_doc = format!(
        "Generated by `#[derive(Entity)]` for `{name}`: the struct behind the alias [`{query_name}`](super::{query_name}), where its methods are documented."
    );

    // The query type lives in the markers module, generic over the entity, behind an alias
    // named `{Name}Query`: every impl names it by the module path, so if the alias's name
    // is taken the one error is the name clash, not a cascade through the impls.
    let qt = quote!(#query_mod::#query<#entity, __S>);
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types, non_snake_case, dead_code)]
        #vis mod #markers {
            #(#marker_types)*
        }

        #[doc = #query_mod_doc]
        #[allow(non_snake_case)]
        #vis mod #query_mod {
            #[doc = #query_doc]
            #[must_use = "a query does nothing until a terminal (`collect`, `count`, ..) runs it"]
            pub struct #query<__E, __S> {
                pub(super) source: __S,
                pub(super) core: ::foldkit::QueryCore<__E>,
            }
        }

        #[doc = #query_doc]
        #vis type #query<#alias_params __S = ::foldkit::Detached> = #qt;

        #[automatically_derived]
        impl<#impl_params> ::foldkit::Entity for #entity
        where #predicates Self: 'static, #id_bound
        {
            type Id = #id_type;
            type Query<__S> = #qt;
            const NAME: &'static str = #name;
            #[inline]
            fn id(&self) -> &Self::Id {
                #id_body
            }
            fn indexes() -> ::foldkit::__private::Vec<
                ::foldkit::__private::Box<dyn ::foldkit::__private::AnyIndex<Self>>,
            > {
                ::foldkit::__private::Vec::from([#(#indexes),*])
            }
        }

        #id_check

        #(#descriptors)*

        #[automatically_derived]
        impl<#impl_params __S> ::foldkit::QueryBuilder for #qt
        where #predicates #is_entity
        {
            type Entity = #entity;
            type Source = __S;
            #[inline]
            fn from_parts(source: __S, core: ::foldkit::QueryCore<#entity>) -> Self {
                Self { source, core }
            }
            #[inline]
            fn into_parts(self) -> (__S, ::foldkit::QueryCore<#entity>) {
                (self.source, self.core)
            }
            #[inline]
            fn core(&self) -> &::foldkit::QueryCore<#entity> {
                &self.core
            }
        }

        #[automatically_derived]
        impl<#impl_params __S: ::core::clone::Clone> ::core::clone::Clone for #qt
        #where_c
        {
            fn clone(&self) -> Self {
                let source = ::core::clone::Clone::clone(&self.source);
                Self { source, core: ::core::clone::Clone::clone(&self.core) }
            }
        }

        #[automatically_derived]
        impl<#impl_params __S> ::core::fmt::Debug for #qt #where_c {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#query_name).field("core", &self.core).finish_non_exhaustive()
            }
        }

        #[automatically_derived]
        #[allow(dead_code)]
        impl<#impl_params> #entity where #predicates #is_entity {
            #[doc = #filter_doc]
            #vis fn filter() -> #query_mod::#query<#entity, ::foldkit::Detached> {
                #query_mod::#query { source: ::foldkit::Detached, core: ::foldkit::QueryCore::new() }
            }
        }

        #[automatically_derived]
        #[allow(dead_code)]
        impl<#impl_params __S> #qt where #predicates #is_entity {
            /// Keeps rows for which `keep` returns true.
            pub fn filter<__F>(self, keep: __F) -> Self
            where __F: ::core::ops::Fn(&#entity) -> bool + ::core::marker::Send + ::core::marker::Sync + 'static {
                Self { source: self.source, core: self.core.filter(keep) }
            }
            /// Keeps at most `n` results.
            pub fn limit(self, n: usize) -> Self {
                Self { source: self.source, core: self.core.limit(n) }
            }
            /// Skips the first `n` results.
            pub fn offset(self, n: usize) -> Self {
                Self { source: self.source, core: self.core.offset(n) }
            }
            /// The plan built so far, detached from the source.
            pub fn into_core(self) -> ::foldkit::QueryCore<#entity> {
                self.core
            }
            /// The same clauses as a reusable filter.
            pub fn detach(self) -> #query_mod::#query<#entity, ::foldkit::Detached> {
                #query_mod::#query { source: ::foldkit::Detached, core: self.core }
            }
            #(#field_methods)*
        }
    }
}

/// The index constructor for an `#[entity(index)]` field, spanned at the field's type so a
/// key type that cannot be indexed is reported there.
fn index_ctor(field: &FieldDef, entity: &TokenStream, markers: &syn::Ident) -> Option<TokenStream> {
    let (kind, _) = field.index.as_ref()?;
    let f = field.ident;
    let name = f.unraw().to_string();
    let ty = field.ty;
    let fk = quote!(::foldkit::__private);
    Some(match kind {
        IndexKind::One => quote_spanned! {ty.span()=>
            #fk::index_one::<#entity, #markers::#f, #ty>(#name, |row| &row.#f)
        },
        IndexKind::Ordered => quote_spanned! {ty.span()=>
            #fk::index_ordered::<#entity, #markers::#f, #ty>(#name, |row| &row.#f)
        },
        IndexKind::Each(element) => quote_spanned! {ty.span()=>
            #fk::index_each::<#entity, #markers::#f, #element>(#name, |row| row.#f.as_slice())
        },
    })
}
