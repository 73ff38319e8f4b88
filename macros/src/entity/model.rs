//! Validation: the struct's shape and attributes, turned into what the expansion needs.
//!
//! Every problem is collected into one report. When the struct has named fields the model
//! is still built (the problems set aside), so the expansion can emit the full query type
//! next to the errors and a use of it adds no error of its own.

use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Error, Fields, Generics, Ident, Type, Visibility};

use super::attr::{self, IndexAttr};
use super::kind::Kind;
use crate::attr::Errors;

/// How an `#[entity(index)]` field is indexed.
pub enum IndexKind<'a> {
    /// The field's value is the key, in a hash index.
    One,
    /// `#[entity(index(ordered))]`: the field's value is the key, and it must be ordered.
    Ordered,
    /// The field is a `Vec`; each element (of this type) is a key.
    Each(&'a Type),
}

/// One named field.
pub struct FieldDef<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub kind: Kind<'a>,
    /// `Some` for an `#[entity(index)]` field: its kind and its slot among the indexes.
    pub index: Option<(IndexKind<'a>, usize)>,
}

/// A validated entity struct.
pub struct EntityDef<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub generics: &'a Generics,
    /// The generated query type's name (`{Name}Query`, or `#[entity(query = ..)]`).
    pub query: Ident,
    pub fields: Vec<FieldDef<'a>>,
    /// Position of the `#[entity(id)]` field in `fields`; `None` only in a model
    /// recovered from an error.
    pub id: Option<usize>,
}

/// Why a struct cannot be an entity: the report, and the model when one could be built.
pub struct Invalid<'a> {
    pub error: Error,
    pub recovered: Option<EntityDef<'a>>,
}

impl<'a> EntityDef<'a> {
    /// Checks the input and collects every problem into one error.
    pub fn from_input(input: &'a DeriveInput) -> Result<Self, Invalid<'a>> {
        let fail = |span, message: &str| Invalid {
            error: Error::new(span, message),
            recovered: None,
        };
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(fields) => {
                    return Err(fail(
                        fields.span(),
                        "`#[derive(Entity)]` needs named fields: write `struct Name { #[entity(id)] id: u64, .. }`",
                    ));
                }
                Fields::Unit => {
                    return Err(fail(
                        input.ident.span(),
                        "`#[derive(Entity)]` needs named fields, one of them `#[entity(id)]`",
                    ));
                }
            },
            Data::Enum(data) => {
                return Err(fail(
                    data.enum_token.span,
                    "`#[derive(Entity)]` works on structs with named fields, not enums: make the row a struct (an enum can be one of its fields)",
                ));
            }
            Data::Union(data) => {
                return Err(fail(
                    data.union_token.span,
                    "`#[derive(Entity)]` works on structs with named fields, not unions",
                ));
            }
        };
        let mut errors = Errors::default();
        let container = attr::container_attrs(&input.attrs, &mut errors);
        let query = container.query.unwrap_or_else(|| {
            quote::format_ident!("{}Query", syn::ext::IdentExt::unraw(&input.ident))
        });
        let mut fields = Vec::new();
        let mut id: Option<(usize, &Ident)> = None;
        let mut slots = 0;
        for field in &named.named {
            let Some(ident) = field.ident.as_ref() else {
                continue;
            };
            let attrs = attr::field_attrs(&field.attrs, &mut errors);
            if let Some(span) = attrs.id {
                match id {
                    Some((_, first)) => errors.push(Error::new(
                        span,
                        format!(
                            "only one field can be `#[entity(id)]`, and `{first}` already is: remove this one"
                        ),
                    )),
                    None => id = Some((fields.len(), ident)),
                }
                if let Some((_, index)) = attrs.index {
                    errors.push(Error::new(
                        index,
                        "the `#[entity(id)]` field is already unique and looked up directly: remove `index`",
                    ));
                }
            }
            let kind = Kind::of(&field.ty, &input.generics);
            let index = match (attrs.index, attrs.id) {
                (Some((attr, span)), None) => {
                    let index = match (&kind, attr) {
                        (Kind::Collection { vec: true, element }, IndexAttr::Hash) => {
                            IndexKind::Each(element)
                        }
                        (Kind::Collection { .. }, IndexAttr::Ordered) => {
                            errors.push(Error::new(
                                span,
                                "an ordered index keys rows by one value: use `#[entity(index)]` to index each element of a collection",
                            ));
                            IndexKind::One
                        }
                        (_, IndexAttr::Hash) => IndexKind::One,
                        (_, IndexAttr::Ordered) => IndexKind::Ordered,
                    };
                    slots += 1;
                    Some((index, slots - 1))
                }
                _ => None,
            };
            fields.push(FieldDef {
                ident,
                ty: &field.ty,
                kind,
                index,
            });
        }
        if id.is_none() {
            errors.push(Error::new(
                input.ident.span(),
                format!(
                    "`{}` has no `#[entity(id)]` field: mark the field that identifies a row with `#[entity(id)]`",
                    input.ident
                ),
            ));
        }
        let def = EntityDef {
            ident: &input.ident,
            vis: &input.vis,
            generics: &input.generics,
            query,
            fields,
            id: id.map(|(at, _)| at),
        };
        match errors.finish(()) {
            Ok(()) => Ok(def),
            Err(error) => Err(Invalid {
                error,
                recovered: Some(def),
            }),
        }
    }
}
