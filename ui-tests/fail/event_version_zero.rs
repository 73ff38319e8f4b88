use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
#[event(version = 0)]
enum OrderEvent {
    Placed { order_id: u64 },
}

fn main() {}
