//! The story of a shop's orders, told in the terminal: orders are placed,
//! confirmed, shipped, delivered and cancelled through an aggregate that refuses
//! what makes no sense (shipping a cancelled order); a watch on the open orders
//! reacts to every change; queries answer from indexes; then the Db is closed and
//! reopened from its directory, and the same state comes back.
//!
//! `cargo run --release --example orders [DATA_DIR]` (default `./orders-data`).
//! Run it again: it resumes from the directory and continues with new orders.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use foldkit::prelude::*;
use foldkit_examples::orders::{Lifecycle, Order, OrderBook, OrderCommand, OrderStatus, item};
use futures::StreamExt;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// `#1, #4` for a list of order ids.
fn list(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    let ids: Vec<String> = ids.iter().map(|id| format!("#{id}")).collect();
    ids.join(", ")
}

async fn open(dir: &Path) -> Result<Db, foldkit::DbError> {
    Db::builder(dir)
        .fsync(FsyncPolicy::EveryN(100))
        .state::<OrderBook>()
        .aggregate::<Lifecycle>()
        .open()
        .await
}

/// Waits until the read model has folded everything the log holds.
async fn caught_up(db: &Db, book: &Handle<OrderBook>) -> Result<(), foldkit::DbError> {
    match db.last_seq().await? {
        Some(seq) => book.wait_for_seq(seq).await,
        None => Ok(()),
    }
}

/// The open orders (placed or confirmed), as the watch emits them.
type Watch = std::pin::Pin<Box<dyn futures::Stream<Item = Vec<Order>> + Send>>;

/// Prints the watch's next emission: it comes only when the result changed.
async fn watch_reacts(open_orders: &mut Watch) -> Result<(), Error> {
    let rows = tokio::time::timeout(Duration::from_secs(5), open_orders.next())
        .await
        .map_err(|_| "the watch did not react within 5 s")?
        .ok_or("the watch ended")?;
    let open: Vec<String> = rows
        .iter()
        .map(|o| format!("#{} {:?}", o.order_id, o.status))
        .collect();
    let open = if open.is_empty() {
        "none".to_owned()
    } else {
        open.join(", ")
    };
    println!("     watch: open orders are now {open}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    foldkit_examples::report(run().await)
}

async fn run() -> Result<(), Error> {
    let dir = match std::env::args_os().nth(1) {
        Some(arg) if arg == "-h" || arg == "--help" => {
            println!("usage: orders [DATA_DIR]   (default ./orders-data)");
            return Ok(());
        }
        Some(arg) => PathBuf::from(arg),
        None => PathBuf::from("./orders-data"),
    };
    let db = open(&dir).await?;
    let book = db.state::<OrderBook>();
    caught_up(&db, &book).await?;
    let known = book.read().orders.len();
    let first = book
        .read()
        .orders
        .iter()
        .map(|o| o.order_id)
        .max()
        .unwrap_or(0)
        + 1;
    if known == 0 {
        println!("orders: a new shop in {}", dir.display());
    } else {
        println!(
            "orders: reopened {}: {known} orders from earlier runs are back; new ones start at #{first}",
            dir.display()
        );
    }
    let orders = db.aggregate::<Lifecycle>();
    let ids: Vec<u64> = (first..first + 4).collect();
    let [a, b, c, d] = [ids[0], ids[1], ids[2], ids[3]];

    println!("\n1. A watch on the open orders (placed or confirmed)");
    let mut open_orders: Watch = Box::pin(
        book.watch(|s| &s.orders)
            .where_status_in([OrderStatus::Placed, OrderStatus::Confirmed])
            .order_by_order_id(Asc)
            .stream(),
    );
    watch_reacts(&mut open_orders).await?; // the current result, at once

    println!("\n2. Customers place orders");
    let placements = [
        (a, "ada", vec![item("kettle", 1, 4_500)]),
        (
            b,
            "bob",
            vec![item("desk", 1, 32_000), item("lamp", 2, 3_900)],
        ),
        (c, "ada", vec![item("mug", 4, 1_200)]),
        (
            d,
            "cy",
            vec![item("sofa", 1, 89_900), item("rug", 1, 12_000)],
        ),
    ];
    for (order_id, customer, items) in placements {
        let summary: Vec<String> = items
            .iter()
            .map(|i| format!("{} x {}", i.quantity, i.sku))
            .collect();
        let placed = orders
            .execute(
                order_id,
                OrderCommand::Place {
                    order_id,
                    customer: customer.to_owned(),
                    items,
                },
            )
            .await?;
        book.wait_for(&placed).await?; // read your writes
        let total = book
            .read()
            .orders
            .get(&order_id)
            .map_or(0, |o| o.total_cents);
        println!(
            "   #{order_id} placed by {customer}: {} = {}",
            summary.join(", "),
            dollars(total)
        );
        watch_reacts(&mut open_orders).await?;
    }

    println!("\n3. Orders move on: confirm, ship, deliver, cancel");
    let steps = [
        (a, "confirm", OrderCommand::Confirm(a)),
        (b, "confirm", OrderCommand::Confirm(b)),
        (
            a,
            "ship (ups)",
            OrderCommand::Ship {
                order_id: a,
                carrier: "ups".into(),
                tracking: format!("1Z{a:04}"),
            },
        ),
        (a, "deliver", OrderCommand::Deliver(a)),
        (
            c,
            "cancel (changed mind)",
            OrderCommand::Cancel {
                order_id: c,
                reason: "changed mind".into(),
            },
        ),
    ];
    for (id, what, command) in steps {
        let changes_open_orders = !matches!(command, OrderCommand::Deliver(_));
        let done = orders.execute(id, command).await?;
        book.wait_for(&done).await?;
        println!(
            "   #{id} {what}: done, the order is at version {}",
            done.version
        );
        if changes_open_orders {
            watch_reacts(&mut open_orders).await?;
        }
    }

    println!("\n4. The aggregate refuses what makes no sense (and writes nothing)");
    let refusals = [
        (
            format!("ship cancelled #{c}"),
            c,
            OrderCommand::Ship {
                order_id: c,
                carrier: "dhl".into(),
                tracking: "D1".into(),
            },
        ),
        (
            format!("cancel delivered #{a}"),
            a,
            OrderCommand::Cancel {
                order_id: a,
                reason: "too late".into(),
            },
        ),
        (
            format!("confirm unknown #{}", d + 1),
            d + 1,
            OrderCommand::Confirm(d + 1),
        ),
    ];
    for (what, id, command) in refusals {
        match orders
            .execute(id, command)
            .await
            .map_err(|e| e.into_rejected())
        {
            Err(Ok(refusal)) => println!("   {what}: refused, {refusal}"),
            Err(Err(e)) => return Err(e.into()),
            Ok(done) => {
                return Err(format!("{what} went through (version {})", done.version).into());
            }
        }
    }

    println!("\n5. Queries on the read model (indexed: no scan)");
    let before = {
        let state = book.read();
        let orders = &state.orders;
        for status in [
            OrderStatus::Placed,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
        ] {
            let count = orders.query().where_status(status).count();
            println!("   {status:?}: {count}");
        }
        let big = orders
            .query()
            .where_status_in([OrderStatus::Placed, OrderStatus::Confirmed])
            .where_total_cents_gt(10_000u64)
            .order_by_total_cents(Desc)
            .ids();
        println!("   open orders over $100, largest first: {}", list(&big));
        let ada = orders.query().where_customer("ada").ids();
        println!("   ada's orders: {}", list(&ada));
        let multi = orders.query().where_tags_contains("multi-item").ids();
        println!("   orders with several items: {}", list(&multi));
        let delivered: u64 = orders
            .query()
            .where_status(OrderStatus::Delivered)
            .collect()
            .iter()
            .map(|o| o.total_cents)
            .sum();
        println!("   delivered revenue: {}", dollars(delivered));
        orders.iter().cloned().collect::<Vec<Order>>()
    };

    println!("\n6. Restart: close the Db, reopen {}", dir.display());
    drop(open_orders);
    let events = db.last_seq().await?.unwrap_or(0);
    db.close().await?; // flush, fsync, snapshot
    let db = open(&dir).await?;
    let book = db.state::<OrderBook>();
    caught_up(&db, &book).await?;
    let after: Vec<Order> = book.read().orders.iter().cloned().collect();
    if after != before {
        return Err("the reopened state differs from the state before close".into());
    }
    println!(
        "   {} orders and {events} events are back, the same as before close",
        after.len()
    );
    let history = db.aggregate::<Lifecycle>().events(a).await?;
    let steps: Vec<&str> = history.iter().map(|e| e.event.variant_name()).collect();
    println!("   #{a}'s history: {}", steps.join(" -> "));
    db.close().await?;
    println!(
        "\nRun it again to continue from {}; delete the directory to start over.",
        dir.display()
    );
    Ok(())
}
