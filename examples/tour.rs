//! The README's tour, whole: every code block in the README's "Tour" section is cut
//! from this file (a test in `tests/readme.rs` checks that each one still is), so the
//! tour always compiles.
//!
//! `cargo run --example tour`

use foldkit::prelude::*;
use futures::StreamExt;

// tour: events
/// Everything that can happen to an order. Version 2: stored version-1 events are
/// upcast with `From<OrderEventV1>` when read (see "Schema evolution").
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(version = 2, previous = OrderEventV1)]
enum OrderEvent {
    Placed {
        id: u64,
        customer: String,
        total_cents: u64,
    },
    Shipped {
        id: u64,
    },
    Cancelled {
        id: u64,
        reason: String,
    },
}
// end

// tour: entity
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Status {
    Open,
    Shipped,
    Cancelled,
}

/// One row of the read model: typed queries and hash indexes come from the derive.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    #[entity(id)]
    id: u64,
    #[entity(index)]
    customer: String,
    #[entity(index)]
    status: Status,
    total_cents: u64,
}
// end

// tour: state
/// The read model the runtime folds the log into (and snapshots).
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = OrderEvent)]
struct Shop {
    orders: Table<Order>,
}

impl Apply<OrderEvent> for Shop {
    // Pure: the same events always give the same state.
    fn apply(&mut self, event: OrderEvent, _meta: &Meta) -> Result<(), FoldError> {
        match event {
            OrderEvent::Placed {
                id,
                customer,
                total_cents,
            } => {
                let status = Status::Open;
                self.orders.insert(Order {
                    id,
                    customer,
                    status,
                    total_cents,
                });
            }
            OrderEvent::Shipped { id } => {
                self.orders.update(&id, |o| o.status = Status::Shipped);
            }
            OrderEvent::Cancelled { id, .. } => {
                self.orders.update(&id, |o| o.status = Status::Cancelled);
            }
        }
        Ok(())
    }
}
// end

// tour: aggregate
/// The write side of one order: commands are checked against its own events.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Lifecycle {
    placed: bool,
    shipped: bool,
}

#[derive(Debug)]
enum Command {
    Place {
        id: u64,
        customer: String,
        total_cents: u64,
    },
    Ship {
        id: u64,
    },
}

#[derive(Debug, PartialEq, thiserror::Error)]
enum Refused {
    #[error("the order does not exist")]
    Unknown,
    #[error("the order was shipped already")]
    AlreadyShipped,
}

impl Aggregate for Lifecycle {
    const NAME: &'static str = "order";
    type Event = OrderEvent;
    type Command = Command;
    type Error = Refused;

    fn handle(&self, command: Command) -> Result<Vec<OrderEvent>, Refused> {
        match command {
            Command::Place {
                id,
                customer,
                total_cents,
            } => Ok(vec![OrderEvent::Placed {
                id,
                customer,
                total_cents,
            }]),
            Command::Ship { .. } if !self.placed => Err(Refused::Unknown),
            Command::Ship { .. } if self.shipped => Err(Refused::AlreadyShipped),
            Command::Ship { id } => Ok(vec![OrderEvent::Shipped { id }]),
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed { .. } => self.placed = true,
            OrderEvent::Shipped { .. } => self.shipped = true,
            OrderEvent::Cancelled { .. } => {}
        }
    }
}
// end

// tour: schema evolution
/// Version 1, as an older release wrote it. It stays in the code base unchanged.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "OrderEvent", version = 1)]
enum OrderEventV1 {
    Placed {
        id: u64,
        customer: String,
        total_cents: u64,
    },
    Shipped {
        id: u64,
    },
}

/// How a version-1 event reads as a version-2 one (checked at compile time).
impl From<OrderEventV1> for OrderEvent {
    fn from(old: OrderEventV1) -> Self {
        match old {
            OrderEventV1::Placed {
                id,
                customer,
                total_cents,
            } => OrderEvent::Placed {
                id,
                customer,
                total_cents,
            },
            OrderEventV1::Shipped { id } => OrderEvent::Shipped { id },
        }
    }
}
// end

#[tokio::main]
async fn main() -> std::process::ExitCode {
    foldkit_examples::report(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    // tour: open
    let db = Db::builder(dir)
        .state::<Shop>()
        .aggregate::<Lifecycle>()
        .snapshot_every(10_000) // and one on close: restart reads only the tail
        .open()
        .await?;
    // end

    // tour: queries
    let placed = |id, customer: &str, total_cents| OrderEvent::Placed {
        id,
        customer: customer.to_owned(),
        total_cents,
    };
    db.append(placed(1, "ada", 1_200)).await?;
    db.append(placed(2, "ada", 300)).await?;
    let seq = db.append(placed(3, "grace", 5_000)).await?;

    let shop = db.state::<Shop>();
    shop.wait_for_seq(seq).await?; // read your own writes
    let big: Vec<Order> = shop
        .read()
        .orders
        .query()
        .where_status(Status::Open) // indexed: no scan
        .where_total_cents_gte(1_000u64)
        .order_by_total_cents(Desc)
        .limit(10)
        .collect();
    assert_eq!(big.iter().map(|o| o.id).collect::<Vec<_>>(), [3, 1]);
    assert_eq!(shop.read().orders.query().where_customer("ada").count(), 2);
    // end

    // tour: watch
    let mut open = shop
        .watch(|s| &s.orders)
        .where_status(Status::Open)
        .order_by_total_cents(Desc)
        .stream();
    assert_eq!(open.next().await.map(|rows| rows.len()), Some(3)); // at once

    db.append(OrderEvent::Shipped { id: 3 }).await?;
    let rows = open.next().await.unwrap_or_default(); // only when the result changes
    assert_eq!(rows.iter().map(|o| o.id).collect::<Vec<_>>(), [1, 2]);
    // end

    // tour: snapshots
    let cancelled = db
        .append(OrderEvent::Cancelled {
            id: 2,
            reason: "late".into(),
        })
        .await?;
    shop.wait_for_seq(cancelled).await?;
    db.snapshot_to_disk().await?; // also taken every 10,000 events and on close
    let before = shop.state_at(seq).await?; // time travel: the state after `seq`
    assert_eq!(before.orders.query().where_status(Status::Open).count(), 3);
    // end

    // tour: aggregates
    let orders = db.aggregate::<Lifecycle>();
    let placed = orders
        .execute(
            7,
            Command::Place {
                id: 7,
                customer: "alan".into(),
                total_cents: 90,
            },
        )
        .await?;
    assert_eq!(placed.version, 1);
    let shipped = orders.execute(7, Command::Ship { id: 7 }).await?;
    let again = orders.execute(7, Command::Ship { id: 7 }).await;
    assert_eq!(
        again.unwrap_err().rejected(),
        Some(&Refused::AlreadyShipped)
    );
    assert_eq!(orders.load(7).await?.version, 2);
    // A client that decided on version 1 is too late: a conflict, nothing written.
    let stale = orders
        .execute_expecting(7, ExpectedVersion::Exact(1), Command::Ship { id: 7 })
        .await;
    assert!(stale.is_err_and(|e| e.is_conflict()));
    // The read model folds the aggregate's events like any other: wait for them.
    shop.wait_for(&shipped).await?; // read your writes after a command
    assert_eq!(
        shop.read().orders.get(&7).map(|o| o.status),
        Some(Status::Shipped)
    );
    // end

    db.close().await?;

    // tour: testing an upcast
    // Write version-1 events as an older release did; the Db reads them upcast.
    let old = tempfile::tempdir()?;
    let v1 = OrderEventV1::Placed {
        id: 1,
        customer: "ada".into(),
        total_cents: 10,
    };
    let seqs = foldkit::testing::write_legacy(old.path(), [v1]).await?;
    let db = Db::builder(old.path()).state::<Shop>().open().await?;
    let shop = db.state::<Shop>();
    shop.wait_for_seq(seqs[0]).await?;
    let status = shop.read().orders.get(&1).map(|o| o.status);
    assert_eq!(status, Some(Status::Open));
    db.close().await?;
    // end
    println!("tour done: every step checked");
    Ok(())
}
