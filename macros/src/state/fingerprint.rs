//! The fingerprint of a state's definition: a stable 64-bit FNV-1a hash of a canonical
//! walk of the definition.
//!
//! The walk covers the state's stable name, its `version`, its generics, its container
//! `#[serde(..)]` attributes, and for each field in order its name, its type and its
//! `#[serde(..)]` attributes — everything that changes the snapshot's bytes. So renaming,
//! reordering, retyping, adding or removing a field, or changing a `#[serde(..)]` on the
//! struct or a field changes it; comments, doc comments and formatting do not.
//!
//! Tokens are written by the walk itself (an identifier's name, a punctuation character
//! and whether it joins the next, a literal's source text, a group's delimiters), never
//! through `Display` of a token stream, whose spacing is an implementation detail that a
//! toolchain upgrade may change (which would mark every snapshot stale).
//!
//! A type alias or a change inside a field's own type is not seen: bump
//! `#[state(version = N)]` for those.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Attribute;

use super::model::StateDef;

pub fn fingerprint(def: &StateDef<'_>) -> u64 {
    let mut walk = Walk::default();
    walk.text(&def.name);
    walk.text(&format!("v{}", def.version));
    walk.section("generics");
    walk.tokens(def.input.generics.to_token_stream());
    walk.section("serde");
    walk.serde_attrs(&def.input.attrs);
    for field in &def.fields {
        walk.section("field");
        let name = field
            .ident
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        walk.text(&name);
        walk.tokens(field.ty.to_token_stream());
        walk.serde_attrs(&field.attrs);
    }
    fnv1a(walk.0.as_bytes())
}

/// The canonical text being built.
#[derive(Default)]
struct Walk(String);

impl Walk {
    fn text(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\u{1f}');
    }

    fn section(&mut self, name: &str) {
        self.0.push('\u{1e}');
        self.text(name);
    }

    fn serde_attrs(&mut self, attrs: &[Attribute]) {
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            self.text("#serde");
            self.tokens(attr.meta.to_token_stream());
        }
    }

    fn tokens(&mut self, tokens: TokenStream) {
        for tree in tokens {
            match tree {
                TokenTree::Ident(ident) => self.text(&ident.to_string()),
                TokenTree::Punct(punct) => {
                    let joint = if punct.spacing() == Spacing::Joint {
                        "j"
                    } else {
                        ""
                    };
                    self.text(&format!("{}{joint}", punct.as_char()));
                }
                TokenTree::Literal(literal) => self.text(&literal.to_string()),
                TokenTree::Group(group) => {
                    let (open, close) = match group.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::None => ("\u{2}", "\u{3}"),
                    };
                    self.text(open);
                    self.tokens(group.stream());
                    self.text(close);
                }
            }
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::StateDef;

    fn print(source: &str) -> u64 {
        let input: syn::DeriveInput = syn::parse_str(source).expect("a struct");
        let def = StateDef::from_input(&input).unwrap_or_else(|_| panic!("a valid state"));
        super::fingerprint(&def)
    }

    const BASE: &str = "#[state(event = Ev)] struct S { orders: Table<Order>, count: u64 }";

    #[test]
    fn formatting_comments_and_docs_keep_the_fingerprint() {
        let reformatted = "
            /// The state.
            #[state(event = Ev)]
            struct S {
                // rows
                orders : Table < Order >,
                /// how many
                count:u64,
            }";
        assert_eq!(print(BASE), print(reformatted));
        // Non-serde attributes do not change the snapshot either.
        let derived =
            "#[derive(Default)] #[state(event = Ev)] struct S { orders: Table<Order>, count: u64 }";
        assert_eq!(print(BASE), print(derived));
    }

    #[test]
    fn serde_renames_change_the_fingerprint() {
        let container = "#[serde(rename_all = \"camelCase\")] #[state(event = Ev)] struct S { orders: Table<Order>, count: u64 }";
        let field = "#[state(event = Ev)] struct S { orders: Table<Order>, #[serde(rename = \"n\")] count: u64 }";
        let (base, container, field) = (print(BASE), print(container), print(field));
        assert_ne!(base, container);
        assert_ne!(base, field);
        assert_ne!(container, field);
    }

    #[test]
    fn the_definition_changes_the_fingerprint() {
        let renamed = "#[state(event = Ev)] struct S { orders: Table<Order>, total: u64 }";
        let retyped = "#[state(event = Ev)] struct S { orders: Table<Order>, count: u32 }";
        let versioned =
            "#[state(event = Ev, version = 2)] struct S { orders: Table<Order>, count: u64 }";
        let reordered = "#[state(event = Ev)] struct S { count: u64, orders: Table<Order> }";
        for other in [renamed, retyped, versioned, reordered] {
            assert_ne!(print(BASE), print(other), "{other}");
        }
    }
}
