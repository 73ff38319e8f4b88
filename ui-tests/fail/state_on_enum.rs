use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
enum Tick {
    Add(u64),
}

#[derive(State)]
#[state(event = Tick)]
enum Totals {
    Empty,
}

fn main() {}
