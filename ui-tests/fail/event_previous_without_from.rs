use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
#[event(name = "OrderEvent", version = 1)]
enum OrderEventV1 {
    Placed { order_id: u64 },
}

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, previous = OrderEventV1)]
enum OrderEvent {
    Placed { order_id: u64, customer: String },
}

fn main() {}
