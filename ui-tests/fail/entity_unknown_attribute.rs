use foldkit::prelude::*;

#[derive(Entity)]
struct Order {
    #[entity(id)]
    order_id: u64,
    #[entity(unique)]
    email: String,
}

fn main() {}
