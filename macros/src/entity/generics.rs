//! The entity's generics, split into the forms the expansion needs: impl parameters,
//! arguments, alias parameters (no bounds: an alias does not enforce them) and predicates.

use proc_macro2::TokenStream;
use quote::quote;

/// The generics of an entity, split the ways the expansion needs them.
pub struct Split {
    /// `T, const N: usize,` without bounds, for the query type's alias (trailing comma).
    pub alias_params: TokenStream,
    /// `<T: Bound, const N: usize,>` without defaults, for impls (trailing comma).
    pub impl_params: TokenStream,
    /// `T, N,` (trailing comma).
    pub args: TokenStream,
    /// The struct's where-predicates (trailing comma).
    pub predicates: TokenStream,
}

pub fn split(generics: &syn::Generics) -> Split {
    let args = generics.params.iter().map(|param| match param {
        syn::GenericParam::Type(ty) => {
            let ident = &ty.ident;
            quote!(#ident)
        }
        syn::GenericParam::Lifetime(lt) => {
            let lifetime = &lt.lifetime;
            quote!(#lifetime)
        }
        syn::GenericParam::Const(c) => {
            let ident = &c.ident;
            quote!(#ident)
        }
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
