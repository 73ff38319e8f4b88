use foldkit::prelude::*;

#[derive(Entity)]
struct Order {
    #[entity(id, index)]
    order_id: u64,
}

fn main() {}
