//! Parsing of `#[entity(..)]` attributes: on fields (`id`, `index`, `index(ordered)`) and
//! on the struct (`query = Name`).

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, Error, Ident};

use crate::attr::Errors;

/// Which index an `#[entity(index ..)]` field asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IndexAttr {
    /// `#[entity(index)]`: a hash index.
    Hash,
    /// `#[entity(index(ordered))]`: an ordered (B-tree) index.
    Ordered,
}

/// What one field's `#[entity(..)]` attributes ask for.
#[derive(Default)]
pub struct FieldAttrs {
    /// `#[entity(id)]`, with the span of the `id` token.
    pub id: Option<Span>,
    /// `#[entity(index)]` or `#[entity(index(ordered))]`, with the span of `index`.
    pub index: Option<(IndexAttr, Span)>,
}

/// What the struct's `#[entity(..)]` attributes ask for.
#[derive(Default)]
pub struct ContainerAttrs {
    /// `#[entity(query = Name)]`: the name of the generated query type.
    pub query: Option<Ident>,
}

const FIELD_KEYS: &str =
    "expected `#[entity(id)]`, `#[entity(index)]` or `#[entity(index(ordered))]`";

/// Reads the `#[entity(..)]` attributes of one field; every unknown or repeated word is an
/// error spanned at that word, pushed to `errors`.
pub fn field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("entity")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            if meta.path.is_ident("id") {
                if out.id.replace(span).is_some() {
                    return Err(Error::new(span, "`id` is given twice: remove one"));
                }
                Ok(())
            } else if meta.path.is_ident("index") {
                let mut kind = IndexAttr::Hash;
                if meta.input.peek(syn::token::Paren) {
                    meta.parse_nested_meta(|inner| {
                        if inner.path.is_ident("ordered") {
                            kind = IndexAttr::Ordered;
                            Ok(())
                        } else {
                            Err(inner.error(
                                "unknown index kind: expected `#[entity(index)]` (hash) or `#[entity(index(ordered))]`",
                            ))
                        }
                    })?;
                }
                if out.index.replace((kind, span)).is_some() {
                    return Err(Error::new(span, "`index` is given twice: remove one"));
                }
                Ok(())
            } else if meta.path.is_ident("query") {
                Err(meta.error(
                    "`query = ..` names the generated query type: put `#[entity(query = Name)]` on the struct, not on a field",
                ))
            } else {
                let word = meta
                    .path
                    .get_ident()
                    .map_or_else(|| "this".to_owned(), |ident| format!("`{ident}`"));
                Err(meta.error(format!("unknown entity attribute {word}: {FIELD_KEYS}")))
            }
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    out
}

/// Reads the struct's `#[entity(..)]` attributes.
pub fn container_attrs(attrs: &[Attribute], errors: &mut Errors) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("entity")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("query") {
                let ident: Ident = meta.value()?.parse().map_err(|e| {
                    Error::new(
                        e.span(),
                        "expected the query type's name, e.g. `#[entity(query = OrderFilter)]`",
                    )
                })?;
                crate::attr::set_once(&mut out.query, &meta, ident)
            } else if meta.path.is_ident("id") || meta.path.is_ident("index") {
                Err(meta.error(
                    "`#[entity(id)]` and `#[entity(index)]` go on fields, not on the struct",
                ))
            } else {
                Err(crate::attr::unknown_key(&meta, "entity", "`query`"))
            }
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    out
}
