//! A shop on one log: customers and orders are two event types, and one read
//! model (`Dashboard`) folds both, in log order. A second read model folds only
//! orders and skips the customers' events from their headers.
//!
//! `cargo run --release --example shop [DATA_DIR]` (default: a temporary directory)

use std::process::ExitCode;

use foldkit::prelude::*;

/// What happens to customers.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum CustomerEvent {
    Joined { id: u64, name: String },
    Moved { id: u64, city: String },
}

/// What happens to orders.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum ShopEvent {
    Ordered {
        order: u64,
        customer: u64,
        cents: u64,
    },
    Refunded {
        order: u64,
    },
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Customer {
    #[entity(id)]
    id: u64,
    name: String,
    #[entity(index)]
    city: String,
    spent_cents: u64,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    #[entity(id)]
    order: u64,
    #[entity(index)]
    customer: u64,
    cents: u64,
    refunded: bool,
}

/// Customers with what they spent: needs both event types.
#[derive(State, Default, Serialize, Deserialize)]
#[state(events(CustomerEvent, ShopEvent))]
struct Dashboard {
    customers: Table<Customer>,
    orders: Table<Order>,
}

impl Apply<CustomerEvent> for Dashboard {
    fn apply(&mut self, event: CustomerEvent, _: &Meta) -> Result<(), FoldError> {
        match event {
            CustomerEvent::Joined { id, name } => {
                self.customers.insert(Customer {
                    id,
                    name,
                    city: String::new(),
                    spent_cents: 0,
                });
            }
            CustomerEvent::Moved { id, city } => {
                self.customers.update(&id, |c| c.city = city);
            }
        }
        Ok(())
    }
}

impl Apply<ShopEvent> for Dashboard {
    fn apply(&mut self, event: ShopEvent, _: &Meta) -> Result<(), FoldError> {
        match event {
            ShopEvent::Ordered {
                order,
                customer,
                cents,
            } => {
                self.orders.insert(Order {
                    order,
                    customer,
                    cents,
                    refunded: false,
                });
                self.customers.update(&customer, |c| c.spent_cents += cents);
            }
            ShopEvent::Refunded { order } => {
                let Some(paid) = self.orders.get(&order).filter(|o| !o.refunded).cloned() else {
                    return Err(FoldError::new(format!("order {order} cannot be refunded")));
                };
                self.orders.update(&order, |o| o.refunded = true);
                self.customers
                    .update(&paid.customer, |c| c.spent_cents -= paid.cents);
            }
        }
        Ok(())
    }
}

/// Revenue only: folds `ShopEvent`, skips `CustomerEvent`.
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = ShopEvent)]
struct Revenue {
    cents: u64,
}

impl Apply<ShopEvent> for Revenue {
    fn apply(&mut self, event: ShopEvent, _: &Meta) -> Result<(), FoldError> {
        if let ShopEvent::Ordered { cents, .. } = event {
            self.cents += cents;
        }
        Ok(())
    }
}

async fn open(dir: &std::path::Path) -> Result<Db, foldkit::DbError> {
    Db::builder(dir)
        .fsync(FsyncPolicy::EveryN(100))
        .state::<Dashboard>()
        .state::<Revenue>()
        .open()
        .await
}

fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
    let db = open(&dir).await?;
    println!("1. Two event types, one log: every event gets the Db's next position");
    let seqs = [
        db.append(CustomerEvent::Joined {
            id: 1,
            name: "Ann".into(),
        })
        .await?,
        db.append(CustomerEvent::Moved {
            id: 1,
            city: "Lyon".into(),
        })
        .await?,
        db.append(ShopEvent::Ordered {
            order: 100,
            customer: 1,
            cents: 4_500,
        })
        .await?,
        db.append(CustomerEvent::Joined {
            id: 2,
            name: "Bo".into(),
        })
        .await?,
        db.append(CustomerEvent::Moved {
            id: 2,
            city: "Lyon".into(),
        })
        .await?,
        db.append(ShopEvent::Ordered {
            order: 101,
            customer: 2,
            cents: 1_250,
        })
        .await?,
        db.append(ShopEvent::Ordered {
            order: 102,
            customer: 1,
            cents: 990,
        })
        .await?,
        db.append(ShopEvent::Refunded { order: 100 }).await?,
    ];
    println!("   positions {seqs:?}");
    let last = *seqs.last().expect("appended");

    println!("\n2. One read model over both types (wait for any position)");
    let dashboard = db.state::<Dashboard>();
    dashboard.wait_for_seq(last).await?;
    {
        let d = dashboard.read();
        for c in d.customers.query().where_city("Lyon".to_string()).collect() {
            println!(
                "   {} in {} has spent {}",
                c.name,
                c.city,
                dollars(c.spent_cents)
            );
        }
        let open = d.orders.query().where_refunded(false).count();
        println!("   {open} orders not refunded");
    }

    println!("\n3. A read model of orders only skips the customers' events");
    let revenue = db.state::<Revenue>();
    revenue.wait_for_seq(seqs[4]).await?; // a customer event: still a position it passes
    revenue.wait_for_seq(last).await?;
    println!("   gross revenue {}", dollars(revenue.read().cents));

    println!("\n4. One consistent cut of both read models");
    let bundle = db.snapshot().await?;
    for header in bundle.headers() {
        println!("   {} at position {:?}", header.name, header.seq);
    }
    db.close().await?;

    println!("\n5. Restart: each state starts from its snapshot");
    let db = open(&dir).await?;
    for state in &db.open_report().states {
        println!(
            "   {}: {:?}, {} positions to replay",
            state.state,
            state.snapshot,
            state.to_replay()
        );
    }
    db.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    foldkit_examples::report(run().await)
}
