use foldkit::prelude::*;

#[derive(Entity)]
struct Order {
    order_id: u64,
    total: u64,
}

fn main() {}
