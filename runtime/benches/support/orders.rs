//! The orders domain of the restart bench and the `rss_probe` example (issue #18):
//! order `i` placed (customer `i % 100_000`, hash-indexed; `placed_at = T0 + i`,
//! ordered index), then 3 in 4 of them confirmed, 1.75 events per row. Included with
//! `#[path]`; not every includer uses every item.
#![allow(dead_code)]

use std::path::Path;

use foldkit::prelude::*;

pub const T0: u64 = 1_700_000_000_000;
pub const CUSTOMERS: u64 = 100_000;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Placed,
    Confirmed,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Order {
    #[entity(id)]
    pub order_id: u64,
    #[entity(index)]
    pub customer: String,
    pub status: Status,
    pub total_cents: u64,
    #[entity(index(ordered))]
    pub placed_at: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
pub enum Shop {
    Placed {
        order_id: u64,
        customer: String,
        total_cents: u64,
        placed_at: u64,
    },
    Confirmed {
        order_id: u64,
    },
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Shop)]
pub struct Orders {
    pub orders: Table<Order>,
}

impl Apply<Shop> for Orders {
    fn apply(&mut self, event: Shop, _: &Meta) -> Result<(), FoldError> {
        match event {
            Shop::Placed {
                order_id,
                customer,
                total_cents,
                placed_at,
            } => {
                self.orders.insert(Order {
                    order_id,
                    customer,
                    status: Status::Placed,
                    total_cents,
                    placed_at,
                });
            }
            Shop::Confirmed { order_id } => {
                self.orders
                    .update(&order_id, |o| o.status = Status::Confirmed);
            }
        }
        Ok(())
    }
}

pub fn placed(i: u64) -> Shop {
    Shop::Placed {
        order_id: i,
        customer: format!("customer-{}", i % CUSTOMERS),
        total_cents: (i * 7919) % 50_000,
        placed_at: T0 + i,
    }
}

/// The events of `rows` orders: every `Placed`, then `Confirmed` for 3 in 4.
pub fn events(rows: u64) -> impl Iterator<Item = Shop> {
    (0..rows).map(placed).chain(
        (0..rows)
            .filter(|i| i % 4 != 3)
            .map(|order_id| Shop::Confirmed { order_id }),
    )
}

pub async fn open(dir: &Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .segment_size(64 << 20)
        .state::<Orders>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open")
}
