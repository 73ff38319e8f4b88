use foldkit::prelude::*;

#[derive(Serialize, Deserialize)]
enum OldTick {
    Add(u32),
}

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, previous = OldTick)]
enum Tick {
    Add(u64),
}

impl From<OldTick> for Tick {
    fn from(OldTick::Add(n): OldTick) -> Self {
        Tick::Add(n.into())
    }
}

fn main() {}
