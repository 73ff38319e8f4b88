use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
#[event(name = "  ")]
enum Tick {
    Add(u64),
}

fn main() {}
