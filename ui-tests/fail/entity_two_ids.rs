use foldkit::prelude::*;

#[derive(Entity)]
struct Order {
    #[entity(id)]
    order_id: u64,
    #[entity(id)]
    number: u64,
}

fn main() {}
