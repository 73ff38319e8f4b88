#![deny(warnings)]
//! An entity declared inside a function, used through the prelude only.

fn main() {
    use foldkit::prelude::*;

    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct Order {
        #[entity(id)]
        order_id: u64,
        #[entity(index)]
        customer: String,
        #[entity(index)]
        tags: Vec<String>,
        total_cents: u64,
        note: Option<String>,
    }

    let mut orders = Table::<Order>::default();
    orders.insert(Order { order_id: 1, customer: "ada".into(), tags: vec!["gift".into()], total_cents: 5, note: None });
    let found: Vec<Order> = orders
        .query()
        .where_customer("ada")
        .where_tags_contains("gift")
        .where_total_cents_lte(10u64)
        .where_note_is_none()
        .order_by_total_cents(Desc)
        .limit(5)
        .collect();
    assert_eq!(found.len(), 1);
}
