use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
struct Placed {
    order_id: u64,
}

fn main() {}
