use foldkit::prelude::*;

#[derive(Entity)]
#[entity(query = "OrderFilter")]
struct Order {
    #[entity(id)]
    id: u64,
}

fn main() {}
