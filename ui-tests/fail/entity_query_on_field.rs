use foldkit::prelude::*;

#[derive(Entity)]
struct Order {
    #[entity(id, query = OrderFilter)]
    id: u64,
}

fn main() {}
