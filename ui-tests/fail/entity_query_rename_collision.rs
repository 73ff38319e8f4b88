use foldkit::prelude::*;

struct Orders;

// The rename picks a name that is taken too.
#[derive(Entity)]
#[entity(query = Orders)]
struct Order {
    #[entity(id)]
    id: u64,
}

fn main() {}
