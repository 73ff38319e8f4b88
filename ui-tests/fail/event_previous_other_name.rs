use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
#[event(version = 1)]
enum OrderEventV1 {
    Placed { order_id: u64 },
}

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, previous = OrderEventV1)]
enum OrderEvent {
    Placed { order_id: u64 },
}

impl From<OrderEventV1> for OrderEvent {
    fn from(old: OrderEventV1) -> Self {
        match old {
            OrderEventV1::Placed { order_id } => OrderEvent::Placed { order_id },
        }
    }
}

fn main() {}
