use foldkit::prelude::*;

#[derive(Clone, Debug, PartialEq)]
struct Key(f64);

#[derive(Entity)]
struct Order {
    #[entity(id)]
    key: Key,
}

fn main() {}
