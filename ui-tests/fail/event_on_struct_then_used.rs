use foldkit::prelude::*;

// The derive fails (a struct), but a state folding it adds no error of its own.
#[derive(Event, Serialize, Deserialize)]
struct Placed {
    order_id: u64,
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Placed)]
struct Orders {
    count: u64,
}

impl Apply<Placed> for Orders {
    fn apply(&mut self, _: Placed, _: &Meta) -> Result<(), FoldError> {
        self.count += 1;
        Ok(())
    }
}

fn main() {}
