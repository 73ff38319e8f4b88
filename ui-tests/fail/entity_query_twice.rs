use foldkit::prelude::*;

#[derive(Entity)]
#[entity(query = OrderFilter, query = OrderSearch)]
struct Order {
    #[entity(id)]
    id: u64,
}

fn main() {}
