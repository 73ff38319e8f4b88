//! What the macro can tell about a field's type from how it is written, to emit only the
//! methods that type can use.
//!
//! Only std types named by their usual path are recognised (`u32`, `String`,
//! `Option<T>`, `Vec<T>`, ...); anything else — a type of the user's, a type parameter,
//! an alias — is [`Kind::Other`], which gets the comparison and ordering methods with
//! bounds checked where a method is called.

use syn::{GenericArgument, Generics, PathArguments, Type};

/// The shape of a field's type.
pub enum Kind<'a> {
    /// An integer or `char`: equality, ranges, ordering; all known to hold.
    Integer,
    /// `f32`/`f64`: equality and ranges; `order_by` is emitted with its bound (which
    /// fails, explaining why).
    Float,
    /// `bool`: equality only.
    Bool,
    /// `String`: equality, ranges, substring search, ordering; values may be `&str`.
    String,
    /// `Option<T>`: equality, `is_some`/`is_none`, ordering; bounded unless `T` is an
    /// integer, `String` or `bool` (then, if `ord`, ordered too).
    Option { known: bool },
    /// `Vec<T>`, `BTreeSet<T>`, `HashSet<T>`: element search; the element type, and
    /// whether the element is a `String` (so `&str` needles work).
    Collection { vec: bool, element: &'a Type },
    /// Anything else: equality, ranges and ordering, each bounded at the call.
    Other,
}

impl<'a> Kind<'a> {
    /// Classifies `ty`; a type parameter of `generics` is always [`Kind::Other`].
    pub fn of(ty: &'a Type, generics: &Generics) -> Self {
        let Some((ident, args)) = last_segment(ty) else {
            return Kind::Other;
        };
        if generics.type_params().any(|param| param.ident == *ident) {
            return Kind::Other;
        }
        let name = ident.to_string();
        match (name.as_str(), args) {
            (
                "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64"
                | "i128" | "isize" | "char",
                None,
            ) => Kind::Integer,
            ("f32" | "f64", None) => Kind::Float,
            ("bool", None) => Kind::Bool,
            ("String", None) => Kind::String,
            ("Option", Some(inner)) => Kind::Option {
                known: Kind::of(inner, generics).hashable(),
            },
            ("Vec", Some(element)) => Kind::Collection { vec: true, element },
            ("BTreeSet" | "HashSet", Some(element)) => Kind::Collection {
                vec: false,
                element,
            },
            _ => Kind::Other,
        }
    }

    /// Whether values of this kind are certainly `Hash + Eq` (no bound needed on an
    /// indexed equality).
    pub fn hashable(&self) -> bool {
        matches!(self, Kind::Integer | Kind::Bool | Kind::String)
    }
}

/// Whether `ty` is written `String`.
pub fn is_string(ty: &Type) -> bool {
    matches!(last_segment(ty), Some((ident, None)) if ident == "String")
}

/// The last path segment of `ty` and its single type argument, if it has exactly one.
/// `None` for a non-path type; `Some((ident, None))` for a segment without arguments.
/// A segment with arguments other than one type yields a name no kind matches.
fn last_segment(ty: &Type) -> Option<(&syn::Ident, Option<&Type>)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    match &last.arguments {
        PathArguments::None => Some((&last.ident, None)),
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            GenericArgument::Type(arg) => Some((&last.ident, Some(arg))),
            _ => None,
        },
        _ => None,
    }
}
