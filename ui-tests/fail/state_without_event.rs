use foldkit::prelude::*;

#[derive(State, Default, Serialize, Deserialize)]
struct Totals {
    count: u64,
}

fn main() {}
