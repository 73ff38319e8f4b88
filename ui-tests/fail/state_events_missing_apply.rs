use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
enum OrderEvent {
    Placed(u64),
}

#[derive(Event, Serialize, Deserialize)]
enum CustomerEvent {
    Joined(u64),
}

// Folds two types, but says how to apply only one of them.
#[derive(State, Default, Serialize, Deserialize)]
#[state(events(OrderEvent, CustomerEvent))]
struct Dashboard {
    orders: u64,
}

impl Apply<OrderEvent> for Dashboard {
    fn apply(&mut self, _: OrderEvent, _: &Meta) -> Result<(), FoldError> {
        self.orders += 1;
        Ok(())
    }
}

fn main() {}
