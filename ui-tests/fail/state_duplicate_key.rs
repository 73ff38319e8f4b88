use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
enum Tick {
    Add(u64),
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Tick, version = 2, version = 3)]
struct Totals {
    count: u64,
}

impl Apply<Tick> for Totals {
    fn apply(&mut self, Tick::Add(n): Tick, _: &Meta) -> Result<(), FoldError> {
        self.count += n;
        Ok(())
    }
}

fn main() {}
