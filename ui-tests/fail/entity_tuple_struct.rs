use foldkit::prelude::*;

#[derive(Entity)]
struct Order(#[entity(id)] u64, String);

fn main() {}
