use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
enum Tick {
    Add(u64),
}

#[derive(Default)]
struct Cache {
    hits: u64,
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Tick)]
struct Totals {
    count: u64,
    cache: Cache,
}

impl Apply<Tick> for Totals {
    fn apply(&mut self, Tick::Add(n): Tick, _: &Meta) -> Result<(), FoldError> {
        self.count += n;
        Ok(())
    }
}

fn main() {}
