//! Validation: the struct's shape and attributes, turned into what the expansion needs.

use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Error, Fields, GenericArgument, Generics, Ident, PathArguments, Result,
    Type, Visibility,
};

use super::attr;

/// How an `#[entity(index)]` field is indexed.
pub enum IndexKind<'a> {
    /// The field's value is the key.
    One,
    /// The field is a `Vec`; each element (of this type) is a key.
    Each(&'a Type),
}

/// One named field.
pub struct FieldDef<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    /// `Some` for an `#[entity(index)]` field: its kind and its slot among the indexes.
    pub index: Option<(IndexKind<'a>, usize)>,
}

/// A validated entity struct.
pub struct EntityDef<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub generics: &'a Generics,
    pub fields: Vec<FieldDef<'a>>,
    /// Position of the `#[entity(id)]` field in `fields`.
    pub id: usize,
}

impl<'a> EntityDef<'a> {
    /// Checks the input and collects every problem into one error.
    pub fn from_input(input: &'a DeriveInput) -> Result<Self> {
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(fields) => {
                    return Err(Error::new(
                        fields.span(),
                        "`#[derive(Entity)]` needs named fields: write `struct Name { #[entity(id)] id: u64, .. }`",
                    ));
                }
                Fields::Unit => {
                    return Err(Error::new(
                        input.ident.span(),
                        "`#[derive(Entity)]` needs named fields, one of them `#[entity(id)]`",
                    ));
                }
            },
            Data::Enum(data) => {
                return Err(Error::new(
                    data.enum_token.span,
                    "`#[derive(Entity)]` works on structs with named fields, not enums: make the row a struct (an enum can be one of its fields)",
                ));
            }
            Data::Union(data) => {
                return Err(Error::new(
                    data.union_token.span,
                    "`#[derive(Entity)]` works on structs with named fields, not unions",
                ));
            }
        };
        let mut errors: Option<Error> = None;
        let mut push = |error: Error| match &mut errors {
            Some(all) => all.combine(error),
            None => errors = Some(error),
        };
        for attr in input
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("entity"))
        {
            push(Error::new(
                attr.span(),
                "`#[entity(..)]` goes on fields (`#[entity(id)]`, `#[entity(index)]`), not on the struct",
            ));
        }
        let mut fields = Vec::new();
        let mut id: Option<(usize, &Ident)> = None;
        let mut slots = 0;
        for field in &named.named {
            let Some(ident) = field.ident.as_ref() else {
                continue;
            };
            let attrs = match attr::field_attrs(&field.attrs) {
                Ok(attrs) => attrs,
                Err(error) => {
                    push(error);
                    attr::FieldAttrs::default()
                }
            };
            if let Some(span) = attrs.id {
                match id {
                    Some((_, first)) => push(Error::new(
                        span,
                        format!(
                            "only one field can be `#[entity(id)]`, and `{first}` already is: remove this one"
                        ),
                    )),
                    None => id = Some((fields.len(), ident)),
                }
                if let Some(index) = attrs.index {
                    push(Error::new(
                        index,
                        "the `#[entity(id)]` field is already unique and looked up directly: remove `index`",
                    ));
                }
            }
            let index = match (attrs.index, attrs.id) {
                (Some(_), None) => {
                    let kind = vec_element(&field.ty).map_or(IndexKind::One, IndexKind::Each);
                    slots += 1;
                    Some((kind, slots - 1))
                }
                _ => None,
            };
            fields.push(FieldDef {
                ident,
                ty: &field.ty,
                index,
            });
        }
        if id.is_none() {
            push(Error::new(
                input.ident.span(),
                format!(
                    "`{}` has no `#[entity(id)]` field: mark the field that identifies a row with `#[entity(id)]`",
                    input.ident
                ),
            ));
        }
        match (errors, id) {
            (Some(error), _) => Err(error),
            (None, Some((id, _))) => Ok(Self {
                ident: &input.ident,
                vis: &input.vis,
                generics: &input.generics,
                fields,
                id,
            }),
            (None, None) => Err(Error::new(input.ident.span(), "missing `#[entity(id)]`")),
        }
    }
}

/// `T` when `ty` is written `Vec<T>` (or a path ending in `Vec<T>`).
fn vec_element(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(element) if args.args.len() == 1 => Some(element),
        _ => None,
    }
}
