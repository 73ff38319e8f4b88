use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
#[event(version = "2")]
enum OrderEvent {
    Placed { order_id: u64 },
}

fn main() {}
