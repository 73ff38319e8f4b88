use foldkit::prelude::*;

#[derive(Entity)]
#[entity(index)]
struct Order {
    #[entity(id)]
    order_id: u64,
}

fn main() {}
