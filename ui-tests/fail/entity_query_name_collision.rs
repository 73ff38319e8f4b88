use foldkit::prelude::*;

// `#[derive(Entity)]` on `Order` generates `OrderQuery`, which this type already is:
// rename the generated one with `#[entity(query = OrderFilter)]`.
struct OrderQuery;

#[derive(Entity)]
struct Order {
    #[entity(id)]
    id: u64,
}

fn main() {}
