//! The shop of the `orders` example: order events, the read model (`OrderBook`,
//! indexed by customer, status and tag) and the order aggregate (`Lifecycle`), which
//! refuses what makes no sense (shipping a cancelled order).

use foldkit::prelude::*;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
/// One line of an order.
pub struct LineItem {
    /// What.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The price of one, in cents.
    pub unit_cents: u64,
}

/// Everything that can happen to an order.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "ShopOrderEvent", version = 1)]
pub enum OrderEvent {
    /// A customer placed the order.
    Placed {
        /// The order.
        order_id: u64,
        /// Who placed it.
        customer: String,
        /// What is in it.
        items: Vec<LineItem>,
        /// The sum of its lines, in cents.
        total_cents: u64,
    },
    /// The shop accepted it.
    Confirmed {
        /// The order.
        order_id: u64,
    },
    /// It left the warehouse.
    Shipped {
        /// The order.
        order_id: u64,
        /// Who carries it.
        carrier: String,
        /// The carrier's tracking number.
        tracking: String,
    },
    /// The customer has it.
    Delivered {
        /// The order.
        order_id: u64,
    },
    /// It will not be shipped.
    Cancelled {
        /// The order.
        order_id: u64,
        /// Why.
        reason: String,
    },
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
/// Where an order is in its lifecycle.
pub enum OrderStatus {
    /// Placed, not confirmed yet.
    Placed,
    /// Confirmed, not shipped yet.
    Confirmed,
    /// On its way.
    Shipped,
    /// Done.
    Delivered,
    /// Will not ship.
    Cancelled,
}

/// One row of the read model.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Order {
    /// The order id.
    #[entity(id)]
    pub order_id: u64,
    /// Who placed it.
    #[entity(index)]
    pub customer: String,
    /// Where it is.
    #[entity(index)]
    pub status: OrderStatus,
    /// Its total, in cents.
    pub total_cents: u64,
    /// When it was placed (the log's clock).
    pub placed_at: u64,
    /// `multi-item`, the carrier, ...
    #[entity(index)]
    pub tags: Vec<String>,
}

/// The read model: every order, indexed by customer, status and tag.
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = OrderEvent)]
pub struct OrderBook {
    /// Every order.
    pub orders: Table<Order>,
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
            OrderEvent::Confirmed { order_id } => (order_id, OrderStatus::Confirmed, None),
            OrderEvent::Shipped {
                order_id, carrier, ..
            } => (order_id, OrderStatus::Shipped, Some(carrier)),
            OrderEvent::Delivered { order_id } => (order_id, OrderStatus::Delivered, None),
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

/// The write side of one order: it knows its status and refuses what makes no sense.
#[derive(Default, Clone, Debug)]
pub struct Lifecycle {
    /// `None` until placed.
    pub status: Option<OrderStatus>,
}

/// What the shop asks of an order.
#[derive(Debug)]
pub enum OrderCommand {
    /// Place it.
    Place {
        /// The order.
        order_id: u64,
        /// Who places it.
        customer: String,
        /// What is in it (at least one line).
        items: Vec<LineItem>,
    },
    /// Confirm a placed order.
    Confirm(u64),
    /// Ship a confirmed order.
    Ship {
        /// The order.
        order_id: u64,
        /// Who carries it.
        carrier: String,
        /// The tracking number.
        tracking: String,
    },
    /// Mark a shipped order delivered.
    Deliver(u64),
    /// Cancel an order not shipped yet.
    Cancel {
        /// The order.
        order_id: u64,
        /// Why.
        reason: String,
    },
}

/// Why an order refused a command (nothing is written then).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    /// `Place` on an order that exists.
    #[error("the order was placed already")]
    AlreadyPlaced,
    /// Anything but `Place` on an order that does not exist.
    #[error("the order does not exist")]
    NotPlaced,
    /// `Place` with no lines.
    #[error("an order without items cannot be placed")]
    NoItems,
    /// A step the order's status does not allow.
    #[error("cannot {action} an order that is {status:?}")]
    WrongStatus {
        /// What was asked.
        action: &'static str,
        /// Where the order is.
        status: OrderStatus,
    },
}

impl Aggregate for Lifecycle {
    const NAME: &'static str = "order";
    type Event = OrderEvent;
    type Command = OrderCommand;
    type Error = Refused;

    fn handle(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, Refused> {
        use OrderStatus::*;
        let require = |action, allowed: &[OrderStatus]| match self.status {
            None => Err(Refused::NotPlaced),
            Some(status) if allowed.contains(&status) => Ok(()),
            Some(status) => Err(Refused::WrongStatus { action, status }),
        };
        Ok(vec![match command {
            OrderCommand::Place { .. } if self.status.is_some() => {
                return Err(Refused::AlreadyPlaced);
            }
            OrderCommand::Place { items, .. } if items.is_empty() => {
                return Err(Refused::NoItems);
            }
            OrderCommand::Place {
                order_id,
                customer,
                items,
            } => {
                let total_cents = items
                    .iter()
                    .map(|i| u64::from(i.quantity) * i.unit_cents)
                    .sum();
                OrderEvent::Placed {
                    order_id,
                    customer,
                    items,
                    total_cents,
                }
            }
            OrderCommand::Confirm(order_id) => {
                require("confirm", &[Placed])?;
                OrderEvent::Confirmed { order_id }
            }
            OrderCommand::Ship {
                order_id,
                carrier,
                tracking,
            } => {
                require("ship", &[Confirmed])?;
                OrderEvent::Shipped {
                    order_id,
                    carrier,
                    tracking,
                }
            }
            OrderCommand::Deliver(order_id) => {
                require("deliver", &[Shipped])?;
                OrderEvent::Delivered { order_id }
            }
            OrderCommand::Cancel { order_id, reason } => {
                require("cancel", &[Placed, Confirmed])?;
                OrderEvent::Cancelled { order_id, reason }
            }
        }])
    }

    fn apply(&mut self, event: &OrderEvent) {
        self.status = Some(match event {
            OrderEvent::Placed { .. } => OrderStatus::Placed,
            OrderEvent::Confirmed { .. } => OrderStatus::Confirmed,
            OrderEvent::Shipped { .. } => OrderStatus::Shipped,
            OrderEvent::Delivered { .. } => OrderStatus::Delivered,
            OrderEvent::Cancelled { .. } => OrderStatus::Cancelled,
        });
    }
}

/// A line of `quantity` x `sku` at `unit_cents` each.
pub fn item(sku: &str, quantity: u32, unit_cents: u64) -> LineItem {
    LineItem {
        sku: sku.to_owned(),
        quantity,
        unit_cents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foldkit::testing::AggregateTest;

    fn placed() -> OrderEvent {
        OrderEvent::Placed {
            order_id: 1,
            customer: "ada".into(),
            items: vec![item("mug", 2, 150)],
            total_cents: 300,
        }
    }

    #[test]
    fn placing_sums_the_lines() {
        AggregateTest::<Lifecycle>::given([])
            .when(OrderCommand::Place {
                order_id: 1,
                customer: "ada".into(),
                items: vec![item("mug", 2, 150)],
            })
            .then_expect_events([placed()]);
        AggregateTest::<Lifecycle>::given([])
            .when(OrderCommand::Place {
                order_id: 1,
                customer: "ada".into(),
                items: vec![],
            })
            .then_expect_error(Refused::NoItems);
    }

    #[test]
    fn steps_out_of_order_are_refused() {
        let cancelled = OrderEvent::Cancelled {
            order_id: 1,
            reason: "no".into(),
        };
        AggregateTest::<Lifecycle>::given([placed(), cancelled])
            .when(OrderCommand::Ship {
                order_id: 1,
                carrier: "ups".into(),
                tracking: "1Z".into(),
            })
            .then_expect_error(Refused::WrongStatus {
                action: "ship",
                status: OrderStatus::Cancelled,
            });
        AggregateTest::<Lifecycle>::given([])
            .when(OrderCommand::Confirm(1))
            .then_expect_error(Refused::NotPlaced);
        AggregateTest::<Lifecycle>::given([placed()])
            .when(OrderCommand::Deliver(1))
            .then_expect_error(Refused::WrongStatus {
                action: "deliver",
                status: OrderStatus::Placed,
            });
        AggregateTest::<Lifecycle>::given([placed(), OrderEvent::Confirmed { order_id: 1 }])
            .when(OrderCommand::Cancel {
                order_id: 1,
                reason: "changed mind".into(),
            })
            .then_expect_events([OrderEvent::Cancelled {
                order_id: 1,
                reason: "changed mind".into(),
            }]);
    }
}
