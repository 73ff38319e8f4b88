//! How big the derives' expansions are: the pretty-printed lines `#[derive(Entity)]` emits
//! for a 30-field entity of mixed field types, per field. Issue 20's target is at most 40
//! lines per field.
//!
//! `cargo test -p foldkit-macros --lib expansion_size -- --nocapture` prints the figures.

use quote::quote;

/// Lines of the pretty-printed expansion of `input`.
fn expanded_lines(input: proc_macro2::TokenStream) -> usize {
    let input: syn::DeriveInput = syn::parse2(input).expect("a struct");
    let output = crate::entity::derive(&input);
    let file: syn::File = syn::parse2(output).expect("the expansion parses as items");
    prettyplease::unparse(&file).lines().count()
}

/// A 30-field entity: 10 integers, 5 strings, 5 bools, 5 options, 3 vectors, 2 enums of
/// the user's; three fields indexed.
fn thirty_fields() -> proc_macro2::TokenStream {
    quote! {
        pub struct Wide {
            #[entity(id)] id: u64,
            a1: u32, a2: u64, a3: i64, a4: i32, a5: u16, a6: u8, a7: usize, a8: i16,
            #[entity(index)] a9: u64,
            s1: String, s2: String, s3: String, s4: String,
            #[entity(index)] s5: String,
            b1: bool, b2: bool, b3: bool, b4: bool, b5: bool,
            o1: Option<String>, o2: Option<u64>, o3: Option<u32>, o4: Option<String>, o5: Option<i64>,
            v1: Vec<String>, v2: Vec<u64>,
            #[entity(index)] v3: Vec<String>,
            e1: Status, e2: Kind,
        }
    }
}

#[test]
fn each_field_adds_at_most_forty_lines() {
    let one = expanded_lines(quote! { pub struct One { #[entity(id)] id: u64 } });
    let thirty = expanded_lines(thirty_fields());
    let per_field = thirty as f64 / 30.0;
    let marginal = (thirty - one) as f64 / 29.0;
    println!(
        "expansion: 1 field {one} lines, 30 fields {thirty} lines: {per_field:.1} lines per field ({marginal:.1} per added field)"
    );
    assert!(marginal <= 40.0, "{marginal:.1} lines per added field");
}

#[test]
#[ignore]
fn print_expansion() {
    let input: syn::DeriveInput = syn::parse2(thirty_fields()).unwrap();
    let file: syn::File = syn::parse2(crate::entity::derive(&input)).unwrap();
    println!("{}", prettyplease::unparse(&file));
}
