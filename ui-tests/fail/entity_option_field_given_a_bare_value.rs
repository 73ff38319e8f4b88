use foldkit::prelude::*;

#[derive(Entity)]
struct Item {
    #[entity(id)]
    id: u64,
    supplier: Option<u64>,
}

fn main() {
    // An `Option` field is compared with an `Option`: `where_supplier(Some(7))`.
    let _ = Item::filter().where_supplier(7);
}
