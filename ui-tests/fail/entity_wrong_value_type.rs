use foldkit::prelude::*;

#[derive(Entity)]
struct Item {
    #[entity(id)]
    id: u64,
    qty: u32,
}

fn main() {
    let _ = Item::filter().where_qty_gt("five");
}
