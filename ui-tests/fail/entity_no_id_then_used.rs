use foldkit::prelude::*;

// The derive fails (no id), but the type stays usable: only the missing id is reported.
#[derive(Entity, Clone)]
struct Bad {
    name: String,
    qty: u32,
}

fn main() {
    let mut table = Table::<Bad>::new();
    table.insert(Bad { name: "bolt".into(), qty: 3 });
    let _ = table.query().where_name("bolt").where_qty_gt(1).count();
}
