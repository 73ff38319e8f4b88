use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize)]
enum OrderEvent {
    Placed(u64),
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(events(OrderEvent, OrderEvent))]
struct Dashboard {
    orders: u64,
}

impl Apply<OrderEvent> for Dashboard {
    fn apply(&mut self, _: OrderEvent, _: &Meta) -> Result<(), FoldError> {
        Ok(())
    }
}

fn main() {}
