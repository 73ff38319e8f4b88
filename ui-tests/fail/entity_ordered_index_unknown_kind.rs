use foldkit::prelude::*;

#[derive(Entity)]
struct Quote {
    #[entity(id)]
    id: u64,
    #[entity(index(sorted))]
    at: u64,
}

fn main() {}
