use foldkit::prelude::*;

#[derive(Entity)]
struct Item {
    #[entity(id)]
    id: u64,
    name: String,
}

fn main() {
    let _ = Item::filter().where_name(5);
}
