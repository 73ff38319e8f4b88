use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
enum Tick {
    Add(u64),
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Tick, kind = Tick)]
struct Totals {
    count: u64,
}

fn main() {}
