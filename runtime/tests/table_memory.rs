//! Heap per row of a table restored from a snapshot (issue #18): a counting global
//! allocator measures the live bytes a decoded orders state holds, over its rows.
//!
//! Orders: a `u64` id, a hash-indexed customer (10 orders each), an ordered `placed_at`
//! (unique), a status and a total; `size_of::<Order>()` is 56 bytes and the customer
//! string 14 more, so the rest (the id → slot table, both indexes, slack) is what this
//! guards. Inserting row by row left 184 B per row (a `BTreeMap` id → slot, half-full
//! B-tree nodes, grown buckets, vector slack); the bulk load left ~126 B with 24-byte
//! buckets, and leaves 119 B with 16-byte ones (the ordered index stores one per row).
//! The test prints each structure's share (`-- --nocapture`).

use foldkit::__private::check_table;
use foldkit::prelude::*;
use foldkit::snapshot::codec;

#[path = "../benches/support/counting_alloc.rs"]
mod counting_alloc;

#[path = "../benches/support/orders.rs"]
mod orders;
use orders::{Order, Status};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Placed {
    Order(u64),
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Placed)]
struct Orders {
    orders: Table<Order>,
}

impl Apply<Placed> for Orders {
    fn apply(&mut self, _: Placed, _: &Meta) -> Result<(), FoldError> {
        Ok(())
    }
}

/// One shape of the orders row, declaring some of the indexes (for the breakdown).
macro_rules! order_shape {
    ($name:ident $(, $customer:meta)? $(; $placed:meta)?) => {
        #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
        struct $name {
            #[entity(id)]
            order_id: u64,
            $(#[$customer])?
            customer: String,
            status: Status,
            total_cents: u64,
            $(#[$placed])?
            placed_at: u64,
        }

        impl $name {
            /// Row `i` of the test table.
            fn row(i: u64) -> Self {
                let Order { order_id, customer, status, total_cents, placed_at } = order(i);
                Self { order_id, customer, status, total_cents, placed_at }
            }
        }
    };
}
order_shape!(Plain);
order_shape!(HashOnly, entity(index));
order_shape!(OrderedOnly; entity(index(ordered)));

const ROWS: u64 = 250_000;

fn status(i: u64) -> Status {
    if i % 4 == 3 {
        Status::Placed
    } else {
        Status::Confirmed
    }
}

fn customer(i: u64) -> String {
    format!("customer-{:05}", i % (ROWS / 10))
}

/// Row `i`: 10 orders per customer, `placed_at` unique.
fn order(i: u64) -> Order {
    Order {
        order_id: i,
        customer: customer(i),
        status: status(i),
        total_cents: (i * 7919) % 50_000,
        placed_at: 1_700_000_000_000 + i,
    }
}

/// Live bytes per row of a `Table<E>` decoded from the rows `make` builds.
fn restored_bytes_per_row<E>(make: impl Fn(u64) -> E) -> f64
where
    E: Entity + Serialize + for<'de> Deserialize<'de> + Send + Sync,
{
    let mut table = Table::<E>::new();
    for i in 0..ROWS {
        table.insert(make(i));
    }
    let blob = postcard::to_allocvec(&table).expect("encode");
    drop(table);
    let before = counting_alloc::live();
    let restored: Table<E> = postcard::from_bytes(&blob).expect("decode");
    let bytes = counting_alloc::live() - before;
    assert_eq!(restored.len(), ROWS as usize);
    bytes as f64 / ROWS as f64
}

/// The one test of this binary (the allocator counts every thread's bytes).
#[test]
fn a_restored_orders_table_holds_at_most_120_bytes_per_row() {
    // Where the bytes go: each index's share is the difference its declaration makes.
    let plain = restored_bytes_per_row(Plain::row);
    let hash = restored_bytes_per_row(HashOnly::row);
    let ordered = restored_bytes_per_row(OrderedOnly::row);
    let row = std::mem::size_of::<Order>() as f64;
    println!(
        "per row: row {row:.1} B, customer string + id -> slot {:.1} B, hash index {:.1} B, \
         ordered index {:.1} B",
        plain - row,
        hash - plain,
        ordered - plain
    );

    let mut state = Orders::default();
    for i in 0..ROWS {
        state.orders.insert(order(i));
    }
    let blob = codec::encode(&state, None).expect("encode");
    drop(state);
    let before = counting_alloc::live();
    let (restored, _) = codec::decode::<Orders>(&blob).expect("decode");
    let per_row = (counting_alloc::live() - before) as f64 / ROWS as f64;
    println!("per row, both indexes: {per_row:.1} B");
    check_table(&restored.orders).expect("a consistent table");
    assert_eq!(restored.orders.len(), ROWS as usize);
    assert_eq!(
        restored
            .orders
            .query()
            .where_customer("customer-00007")
            .ids(),
        (0..10).map(|k| 7 + k * (ROWS / 10)).collect::<Vec<_>>()
    );
    assert!(
        per_row <= 120.0,
        "a restored table holds {per_row:.1} B per row (56 B of row, 14 B of customer)"
    );
}
