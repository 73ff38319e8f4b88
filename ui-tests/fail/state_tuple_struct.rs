use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
enum Tick {
    Add(u64),
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Tick)]
struct Totals(u64);

fn main() {}
