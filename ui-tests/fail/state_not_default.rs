use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
enum Tick {
    Add(u64),
}

#[derive(State, Serialize, Deserialize)]
#[state(event = Tick)]
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
