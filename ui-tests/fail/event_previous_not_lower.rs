use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
#[event(name = "OrderEvent", version = 3)]
enum OrderEventV3 {
    Placed { order_id: u64 },
}

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, previous = OrderEventV3)]
enum OrderEvent {
    Placed { order_id: u64 },
}

impl From<OrderEventV3> for OrderEvent {
    fn from(old: OrderEventV3) -> Self {
        match old {
            OrderEventV3::Placed { order_id } => OrderEvent::Placed { order_id },
        }
    }
}

fn main() {}
