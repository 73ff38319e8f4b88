use foldkit::prelude::*;

#[derive(Entity)]
struct Quote {
    #[entity(id)]
    id: u64,
    #[entity(index, index)]
    venue: String,
}

fn main() {}
