use foldkit::prelude::*;

#[derive(State, Default, Serialize, Deserialize)]
#[state(events())]
struct Dashboard {
    orders: u64,
}

fn main() {}
