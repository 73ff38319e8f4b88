use foldkit::prelude::*;

#[derive(Entity)]
struct Item {
    #[entity(id)]
    id: u64,
    price: f64,
}

fn main() {
    let items = Table::<Item>::default();
    let _ = items.query().order_by_price(Desc).count();
}
