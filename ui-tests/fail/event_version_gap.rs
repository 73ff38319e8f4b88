use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
#[event(name = "Order", version = 1)]
enum OrderV1 {
    Placed { id: u64 },
}

// Version 2 is missing: a payload stored as version 2 could not be read.
#[derive(Event, Serialize, Deserialize)]
#[event(name = "Order", version = 3, previous = OrderV1)]
enum Order {
    Placed { id: u64 },
}

impl From<OrderV1> for Order {
    fn from(OrderV1::Placed { id }: OrderV1) -> Self {
        Order::Placed { id }
    }
}

fn main() {}
