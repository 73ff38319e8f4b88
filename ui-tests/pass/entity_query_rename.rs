//! `#[entity(query = ..)]` renames the generated query type when `{Name}Query` is taken.
use foldkit::prelude::*;

/// Taken by the user.
#[allow(dead_code)]
struct OrderQuery;

#[derive(Entity, Clone, Debug)]
#[entity(query = OrderFilter)]
struct Order {
    #[entity(id)]
    id: u64,
    qty: u32,
    #[entity(index(ordered))]
    placed_at: u64,
    name: String,
}

fn main() {
    let mut orders = Table::<Order>::new();
    orders.insert(Order { id: 1, qty: 7, placed_at: 10, name: "bolt".into() });
    let filter: OrderFilter = Order::filter().where_qty_gt(5).where_placed_at(10);
    assert_eq!(orders.count_where(&filter), 1);
    assert_eq!(orders.query().where_name("bolt").where_qty_between(1, 9).count(), 1);
    println!("{filter:?}");
}
