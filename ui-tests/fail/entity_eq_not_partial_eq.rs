use foldkit::prelude::*;

struct Opaque;

#[derive(Entity)]
struct Item {
    #[entity(id)]
    id: u64,
    inner: Opaque,
}

fn main() {
    let _ = Item::filter().where_inner(Opaque);
}
