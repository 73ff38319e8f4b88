//! Parsing of `#[entity(..)]` attributes on fields.

use syn::spanned::Spanned;
use syn::{Attribute, Error, Result};

/// What one field's `#[entity(..)]` attributes ask for.
#[derive(Default)]
pub struct FieldAttrs {
    /// `#[entity(id)]`, with the span of the `id` token.
    pub id: Option<proc_macro2::Span>,
    /// `#[entity(index)]`, with the span of the `index` token.
    pub index: Option<proc_macro2::Span>,
}

/// Reads the `#[entity(..)]` attributes of one field; every unknown or repeated word is an
/// error spanned at that word.
pub fn field_attrs(attrs: &[Attribute]) -> Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    let mut errors: Option<Error> = None;
    let mut push = |error: Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("entity")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            let slot = if meta.path.is_ident("id") {
                &mut out.id
            } else if meta.path.is_ident("index") {
                &mut out.index
            } else {
                let word = meta.path.get_ident().map_or_else(|| "this".to_owned(), |ident| format!("`{ident}`"));
                return Err(meta.error(format!(
                    "unknown entity attribute {word}: expected `#[entity(id)]` or `#[entity(index)]`"
                )));
            };
            if slot.is_some() {
                return Err(Error::new(span, "this entity attribute is repeated: remove one"));
            }
            *slot = Some(span);
            Ok(())
        });
        if let Err(error) = parsed {
            push(error);
        }
    }
    match errors {
        Some(error) => Err(error),
        None => Ok(out),
    }
}
