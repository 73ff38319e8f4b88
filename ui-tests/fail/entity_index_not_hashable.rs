use foldkit::prelude::*;

#[derive(Entity)]
struct Order {
    #[entity(id)]
    order_id: u64,
    #[entity(index)]
    price: f64,
}

fn main() {}
