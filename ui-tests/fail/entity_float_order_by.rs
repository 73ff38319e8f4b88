use foldkit::prelude::*;

#[derive(Entity)]
struct Quote {
    #[entity(id)]
    id: u64,
    price: f64,
}

fn main() {
    let _ = Quote::filter().order_by_price(Asc);
}
