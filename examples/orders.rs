//! The order lifecycle end to end: place, confirm, ship, deliver, cancel; read
//! your own writes; query the folded state; close, reopen, and find the same state.
//!
//! `cargo run --release --example orders`

use foldkit::prelude::*;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct LineItem {
    sku: String,
    quantity: u32,
    unit_cents: u64,
}

/// Everything that can happen to an order.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(version = 1)]
enum OrderEvent {
    Placed {
        order_id: u64,
        customer: String,
        items: Vec<LineItem>,
        total_cents: u64,
    },
    Confirmed {
        order_id: u64,
        confirmed_at: u64,
    },
    Shipped {
        order_id: u64,
        carrier: String,
        tracking: String,
        shipped_at: u64,
    },
    Delivered {
        order_id: u64,
        delivered_at: u64,
    },
    Cancelled {
        order_id: u64,
        reason: String,
        cancelled_at: u64,
    },
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum OrderStatus {
    Placed,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    #[entity(id)]
    order_id: u64,
    #[entity(index)]
    customer: String,
    #[entity(index)]
    status: OrderStatus,
    total_cents: u64,
    placed_at: u64,
    #[entity(index)]
    tags: Vec<String>,
}

/// The read model: every order, indexed by customer, status and tag.
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = OrderEvent)]
struct OrderBook {
    orders: Table<Order>,
}

impl Apply<OrderEvent> for OrderBook {
    // Pure: same events in, same state out. No clock, no randomness, no I/O.
    fn apply(&mut self, event: OrderEvent, meta: &Meta) -> Result<(), FoldError> {
        let (order_id, status, tag) = match event {
            OrderEvent::Placed {
                order_id,
                customer,
                items,
                total_cents,
            } => {
                let tags = if items.len() > 1 {
                    vec!["multi-item".to_owned()]
                } else {
                    vec![]
                };
                self.orders.insert(Order {
                    order_id,
                    customer,
                    status: OrderStatus::Placed,
                    total_cents,
                    placed_at: meta.timestamp,
                    tags,
                });
                return Ok(());
            }
            OrderEvent::Confirmed { order_id, .. } => (order_id, OrderStatus::Confirmed, None),
            OrderEvent::Shipped {
                order_id, carrier, ..
            } => (order_id, OrderStatus::Shipped, Some(carrier)),
            OrderEvent::Delivered { order_id, .. } => (order_id, OrderStatus::Delivered, None),
            OrderEvent::Cancelled { order_id, .. } => (order_id, OrderStatus::Cancelled, None),
        };
        let found = self.orders.update(&order_id, |order| {
            order.status = status;
            order.tags.extend(tag);
        });
        if found {
            Ok(())
        } else {
            Err(FoldError::new(format!("order {order_id} was never placed")))
        }
    }
}

fn item(sku: &str, quantity: u32, unit_cents: u64) -> LineItem {
    LineItem {
        sku: sku.to_owned(),
        quantity,
        unit_cents,
    }
}

fn placed(order_id: u64, customer: &str, items: Vec<LineItem>) -> OrderEvent {
    let total_cents = items
        .iter()
        .map(|i| u64::from(i.quantity) * i.unit_cents)
        .sum();
    OrderEvent::Placed {
        order_id,
        customer: customer.to_owned(),
        items,
        total_cents,
    }
}

async fn open(dir: &std::path::Path) -> Result<Db, foldkit::DbError> {
    Db::builder(dir)
        .fsync(FsyncPolicy::EveryN(100))
        .state::<OrderBook>()
        .open()
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path()).await?;
    let book = db.state::<OrderBook>();

    // Place an order and read it back at once: read-your-writes.
    let seq = db
        .append(placed(1, "ada", vec![item("kettle", 1, 4_500)]))
        .await?;
    book.wait_for_seq(seq).await?;
    assert_eq!(
        book.read().orders.get(&1).map(|o| o.status),
        Some(OrderStatus::Placed)
    );

    // More orders, then their lifecycles. One command's events go in one atomic batch.
    db.append_batch([
        placed(
            2,
            "bob",
            vec![item("desk", 1, 32_000), item("lamp", 2, 3_900)],
        ),
        placed(3, "ada", vec![item("mug", 4, 1_200)]),
        placed(4, "cy", vec![item("chair", 1, 18_500)]),
        placed(5, "bob", vec![item("pen", 10, 250)]),
        placed(
            6,
            "dee",
            vec![item("sofa", 1, 89_900), item("rug", 1, 12_000)],
        ),
    ])
    .await?;
    let lifecycle = [
        OrderEvent::Confirmed {
            order_id: 1,
            confirmed_at: 10,
        },
        OrderEvent::Confirmed {
            order_id: 2,
            confirmed_at: 11,
        },
        OrderEvent::Shipped {
            order_id: 1,
            carrier: "ups".into(),
            tracking: "1Z1".into(),
            shipped_at: 20,
        },
        OrderEvent::Shipped {
            order_id: 2,
            carrier: "dhl".into(),
            tracking: "D22".into(),
            shipped_at: 21,
        },
        OrderEvent::Delivered {
            order_id: 1,
            delivered_at: 30,
        },
        OrderEvent::Delivered {
            order_id: 2,
            delivered_at: 31,
        },
        OrderEvent::Confirmed {
            order_id: 3,
            confirmed_at: 12,
        },
        OrderEvent::Cancelled {
            order_id: 5,
            reason: "changed mind".into(),
            cancelled_at: 40,
        },
    ];
    let mut last = seq;
    for event in lifecycle {
        last = db.append(event).await?;
    }
    book.wait_for_seq(last).await?;

    let (placed_big, delivered_revenue, counts, before) = {
        let state = book.read();
        let orders = &state.orders;
        let placed_big: Vec<u64> = orders
            .query()
            .where_status(OrderStatus::Placed)
            .where_total_cents_gt(10_000u64)
            .order_by_placed_at(Desc)
            .limit(20)
            .ids();
        let delivered_revenue: u64 = orders
            .query()
            .where_status(OrderStatus::Delivered)
            .collect()
            .iter()
            .map(|o| o.total_cents)
            .sum();
        let counts = [
            OrderStatus::Placed,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
        ]
        .map(|status| (status, orders.query().where_status(status).count()));
        let before: Vec<Order> = orders.iter().cloned().collect();
        (placed_big, delivered_revenue, counts, before)
    };
    assert_eq!(
        placed_big.len(),
        2,
        "orders 4 and 6 are placed and over $100"
    );
    assert!(placed_big.contains(&4) && placed_big.contains(&6));
    assert_eq!(delivered_revenue, 4_500 + 32_000 + 2 * 3_900);
    assert_eq!(book.read().orders.query().where_customer("ada").count(), 2);
    assert_eq!(
        book.read()
            .orders
            .query()
            .where_tags_contains("multi-item")
            .ids(),
        vec![2, 6]
    );

    // Close (flush + fsync), reopen the same directory: the log replays to the same state.
    db.close().await?;
    let db = open(dir.path()).await?;
    let book = db.state::<OrderBook>();
    book.wait_for_seq(last).await?;
    let after: Vec<Order> = book.read().orders.iter().cloned().collect();
    assert_eq!(
        after, before,
        "the reopened state equals the state before close"
    );
    db.close().await?;

    println!(
        "{} orders, {} events, state unchanged after reopen",
        after.len(),
        last
    );
    for (status, count) in counts {
        println!("  {status:?}: {count}");
    }
    println!("  placed over $100 (newest first): {placed_big:?}");
    println!(
        "  delivered revenue: ${}.{:02}",
        delivered_revenue / 100,
        delivered_revenue % 100
    );
    Ok(())
}
