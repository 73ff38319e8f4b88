use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, version = 3)]
enum OrderEvent {
    Placed { order_id: u64 },
}

fn main() {}
