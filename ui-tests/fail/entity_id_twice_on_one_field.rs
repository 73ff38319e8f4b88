use foldkit::prelude::*;

#[derive(Entity)]
struct Quote {
    #[entity(id)]
    #[entity(id)]
    id: u64,
}

fn main() {}
