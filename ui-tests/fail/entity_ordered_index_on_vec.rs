use foldkit::prelude::*;

#[derive(Entity)]
struct Quote {
    #[entity(id)]
    id: u64,
    #[entity(index(ordered))]
    tags: Vec<String>,
}

fn main() {}
