//! Fulfilment: orders, inventory, and the process manager between them.
//!
//! An order is placed (`Order`, stream `fulfil-order/<id>`); the `Fulfilment`
//! process manager asks the stock of its sku (`Inventory`, stream
//! `stock/<sku>`) to reserve the quantity; the stock answers with an event —
//! `Reserved` or `Refused` — never an error, so the workflow learns the outcome
//! from the log; the manager then confirms or cancels the order.
//!
//! Neither aggregate is idempotent on purpose: a second `Reserve` for one order
//! reserves again, a second `Confirm` or `Cancel` is refused. That every order
//! ends decided exactly once and the stock adds up is the runtime's doing (see
//! the crash test in `examples/tests/fulfilment_crash.rs`).

use std::collections::BTreeMap;

use foldkit::Reaction;
use foldkit::prelude::*;
use foldkit::process::{Declare, ProcessManager, Reacts};

/// What happens to an order.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "FulfilOrderEvent", version = 1)]
pub enum OrderEvent {
    /// A customer placed it.
    Placed {
        /// The order.
        order: u64,
        /// What it is for.
        sku: String,
        /// How many.
        quantity: u32,
    },
    /// The stock was reserved: it will ship.
    Confirmed {
        /// The order.
        order: u64,
    },
    /// The stock was short: it will not.
    Cancelled {
        /// The order.
        order: u64,
        /// Why.
        reason: String,
    },
}

/// What is asked of an order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum OrderCommand {
    /// Place it.
    Place {
        /// What it is for.
        sku: String,
        /// How many.
        quantity: u32,
    },
    /// Confirm it.
    Confirm,
    /// Cancel it.
    Cancel {
        /// Why.
        reason: String,
    },
}

/// Why an order refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    /// `Place` on an order that exists.
    #[error("order {0} exists already")]
    Exists(u64),
    /// `Confirm` or `Cancel` on an order that was not placed.
    #[error("order {0} was not placed")]
    NotPlaced(u64),
    /// `Confirm` or `Cancel` on an order already decided.
    #[error("order {0} is decided already")]
    Decided(u64),
}

/// Where an order is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Not placed.
    #[default]
    None,
    /// Placed, waiting for the stock.
    Placed,
    /// Confirmed.
    Confirmed,
    /// Cancelled.
    Cancelled,
}

/// The order aggregate (its id is the order number).
#[derive(Default, Clone, Debug)]
pub struct Order {
    id: u64,
    /// Where it is.
    pub status: Status,
}

impl Aggregate for Order {
    const NAME: &'static str = "fulfil-order";
    type Event = OrderEvent;
    type Command = (u64, OrderCommand);
    type Error = OrderError;

    fn handle(&self, (order, command): (u64, OrderCommand)) -> Result<Vec<OrderEvent>, OrderError> {
        match (command, self.status) {
            (OrderCommand::Place { sku, quantity }, Status::None) => Ok(vec![OrderEvent::Placed {
                order,
                sku,
                quantity,
            }]),
            (OrderCommand::Place { .. }, _) => Err(OrderError::Exists(order)),
            (_, Status::None) => Err(OrderError::NotPlaced(order)),
            (OrderCommand::Confirm, Status::Placed) => Ok(vec![OrderEvent::Confirmed { order }]),
            (OrderCommand::Cancel { reason }, Status::Placed) => {
                Ok(vec![OrderEvent::Cancelled { order, reason }])
            }
            (_, Status::Confirmed | Status::Cancelled) => Err(OrderError::Decided(self.id)),
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed { order, .. } => {
                self.id = *order;
                self.status = Status::Placed;
            }
            OrderEvent::Confirmed { .. } => self.status = Status::Confirmed,
            OrderEvent::Cancelled { .. } => self.status = Status::Cancelled,
        }
    }
}

/// What happens to the stock of one sku.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "FulfilStockEvent", version = 1)]
pub enum StockEvent {
    /// Units arrived.
    Restocked {
        /// How many.
        quantity: u32,
    },
    /// Units were set aside for an order.
    Reserved {
        /// The order.
        order: u64,
        /// How many.
        quantity: u32,
    },
    /// An order asked for more than was left.
    Refused {
        /// The order.
        order: u64,
        /// How many it asked for.
        quantity: u32,
        /// How many were left.
        available: u32,
    },
}

/// What is asked of the stock of one sku.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum StockCommand {
    /// Add units.
    Restock(u32),
    /// Set units aside for an order, or say why not (an event either way).
    Reserve {
        /// The order.
        order: u64,
        /// How many.
        quantity: u32,
    },
}

/// The stock never refuses a command: a shortage is a `Refused` event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("never")]
pub enum StockError {}

/// The stock of one sku (its id is the sku).
#[derive(Default, Clone, Debug)]
pub struct Inventory {
    /// Units not reserved.
    pub available: u32,
    /// Units reserved.
    pub reserved: u32,
}

impl Aggregate for Inventory {
    const NAME: &'static str = "stock";
    type Event = StockEvent;
    type Command = StockCommand;
    type Error = StockError;

    fn handle(&self, command: StockCommand) -> Result<Vec<StockEvent>, StockError> {
        Ok(vec![match command {
            StockCommand::Restock(quantity) => StockEvent::Restocked { quantity },
            StockCommand::Reserve { order, quantity } if quantity <= self.available => {
                StockEvent::Reserved { order, quantity }
            }
            StockCommand::Reserve { order, quantity } => StockEvent::Refused {
                order,
                quantity,
                available: self.available,
            },
        }])
    }

    fn apply(&mut self, event: &StockEvent) {
        match event {
            StockEvent::Restocked { quantity } => self.available += quantity,
            StockEvent::Reserved { quantity, .. } => {
                self.available -= quantity;
                self.reserved += quantity;
            }
            StockEvent::Refused { .. } => {}
        }
    }
}

/// The workflow: reserve on `Placed`, then confirm on `Reserved` or cancel on `Refused`.
pub struct Fulfilment;

/// What the workflow remembers: the orders waiting for their stock.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
pub struct Waiting {
    /// Order → sku, while the stock has not answered.
    pub orders: BTreeMap<u64, String>,
}

impl ProcessManager for Fulfilment {
    const NAME: &'static str = "fulfilment";
    type State = Waiting;

    fn declare(d: &mut Declare<Self>) {
        d.on::<OrderEvent>()
            .on::<StockEvent>()
            .commands::<Inventory>()
            .commands::<Order>();
    }
}

impl Reacts<OrderEvent> for Fulfilment {
    fn apply(waiting: &mut Waiting, event: &OrderEvent, _: &Meta) {
        if let OrderEvent::Placed { order, sku, .. } = event {
            waiting.orders.insert(*order, sku.clone());
        }
    }

    fn react(_: &Waiting, event: &OrderEvent, _: &Meta) -> Vec<Reaction> {
        match event {
            OrderEvent::Placed {
                order,
                sku,
                quantity,
            } => vec![Reaction::command::<Inventory>(
                sku,
                &StockCommand::Reserve {
                    order: *order,
                    quantity: *quantity,
                },
            )],
            OrderEvent::Confirmed { .. } | OrderEvent::Cancelled { .. } => Vec::new(),
        }
    }
}

impl Reacts<StockEvent> for Fulfilment {
    fn apply(waiting: &mut Waiting, event: &StockEvent, _: &Meta) {
        if let StockEvent::Reserved { order, .. } | StockEvent::Refused { order, .. } = event {
            waiting.orders.remove(order);
        }
    }

    fn react(_: &Waiting, event: &StockEvent, _: &Meta) -> Vec<Reaction> {
        match event {
            StockEvent::Reserved { order, .. } => {
                vec![Reaction::command::<Order>(
                    order,
                    &(*order, OrderCommand::Confirm),
                )]
            }
            StockEvent::Refused {
                order,
                quantity,
                available,
            } => vec![Reaction::command::<Order>(
                order,
                &(
                    *order,
                    OrderCommand::Cancel {
                        reason: format!("asked {quantity}, {available} left"),
                    },
                ),
            )],
            StockEvent::Restocked { .. } => Vec::new(),
        }
    }
}

/// A Db with the fulfilment workflow.
pub fn builder(dir: &std::path::Path) -> foldkit::DbBuilder {
    Db::builder(dir)
        .aggregate::<Order>()
        .aggregate::<Inventory>()
        .process_manager::<Fulfilment>()
}

#[cfg(test)]
mod tests {
    use foldkit::testing::ProcessTest;

    use super::*;

    fn placed(order: u64, quantity: u32) -> OrderEvent {
        OrderEvent::Placed {
            order,
            sku: "bolt".into(),
            quantity,
        }
    }

    #[test]
    fn a_placed_order_reserves_its_stock() {
        let waiting = ProcessTest::<Fulfilment>::new()
            .when_in("fulfil-order/1", placed(1, 3))
            .then_expect_commands::<Inventory>([(
                "bolt",
                StockCommand::Reserve {
                    order: 1,
                    quantity: 3,
                },
            )]);
        assert_eq!(waiting.orders.get(&1).map(String::as_str), Some("bolt"));
    }

    #[test]
    fn a_reservation_confirms_and_a_refusal_cancels() {
        let waiting = ProcessTest::<Fulfilment>::new()
            .given(placed(1, 3))
            .given(placed(2, 9))
            .when(StockEvent::Reserved {
                order: 1,
                quantity: 3,
            })
            .then_expect_commands::<Order>([(1, (1, OrderCommand::Confirm))]);
        assert_eq!(waiting.orders.len(), 1);
        ProcessTest::<Fulfilment>::new()
            .given(placed(2, 9))
            .when(StockEvent::Refused {
                order: 2,
                quantity: 9,
                available: 4,
            })
            .then_expect_commands::<Order>([(
                2,
                (
                    2,
                    OrderCommand::Cancel {
                        reason: "asked 9, 4 left".into(),
                    },
                ),
            )]);
    }

    #[test]
    fn restocking_and_decisions_need_no_reaction() {
        ProcessTest::<Fulfilment>::new()
            .when(StockEvent::Restocked { quantity: 5 })
            .then_expect_nothing();
        ProcessTest::<Fulfilment>::new()
            .given(placed(1, 1))
            .when(OrderEvent::Confirmed { order: 1 })
            .then_expect_nothing();
    }

    #[test]
    #[should_panic(expected = "expected the commands")]
    fn a_wrong_expectation_lists_what_the_manager_did() {
        let _ = ProcessTest::<Fulfilment>::new()
            .when(placed(1, 3))
            .then_expect_commands::<Order>([(1, (1, OrderCommand::Confirm))]);
    }

    #[tokio::test]
    async fn the_workflow_runs_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let db = builder(dir.path())
            .fsync(FsyncPolicy::Never)
            .open()
            .await
            .unwrap();
        let stock = db.aggregate::<Inventory>();
        stock
            .execute("bolt", StockCommand::Restock(5))
            .await
            .unwrap();
        let orders = db.aggregate::<Order>();
        for (order, quantity) in [(1, 3), (2, 3), (3, 2)] {
            let place = OrderCommand::Place {
                sku: "bolt".into(),
                quantity,
            };
            orders.execute(order, (order, place)).await.unwrap();
        }
        db.process_manager::<Fulfilment>()
            .unwrap()
            .settle()
            .await
            .unwrap();
        let status = |order| {
            let orders = orders.clone();
            async move { orders.load(order).await.unwrap().state.status }
        };
        assert_eq!(status(1).await, Status::Confirmed);
        assert_eq!(status(2).await, Status::Cancelled);
        assert_eq!(status(3).await, Status::Confirmed);
        let bolts = stock.load("bolt").await.unwrap().state;
        assert_eq!((bolts.available, bolts.reserved), (0, 5));
        // The confirmation carries the workflow: caused by the reservation,
        // correlated with the order's stream.
        let history = orders.events(1).await.unwrap();
        assert_eq!(history[1].meta.correlation_id(), Some("fulfil-order/1"));
        assert!(history[1].meta.causation().is_some());
        assert!(db.dead_letters().list().is_empty());
        db.close().await.unwrap();
    }
}
