use foldkit::prelude::*;

#[derive(Entity)]
struct Marker;

fn main() {}
