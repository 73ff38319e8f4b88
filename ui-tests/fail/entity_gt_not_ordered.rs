use foldkit::prelude::*;

#[derive(Clone, Debug, PartialEq)]
struct Blob(Vec<u8>);

#[derive(Entity)]
struct Item {
    #[entity(id)]
    id: u64,
    blob: Blob,
}

fn main() {
    let items = Table::<Item>::default();
    let _ = items.query().where_blob_gt(Blob(vec![1])).count();
}
