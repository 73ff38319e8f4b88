//! Counters: many small aggregate instances, and one read model over all of them.

use foldkit::prelude::*;

/// What happens to a counter.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum CounterEvent {
    /// The counter went up.
    Incremented {
        /// By how much (more than 0).
        by: u64,
    },
    /// The counter went back to zero.
    Reset,
}

/// What a caller may ask of a counter.
#[derive(Clone, Debug, PartialEq)]
pub enum CounterCommand {
    /// Add `by` (more than 0).
    Increment(u64),
    /// Back to zero (refused when already zero).
    Reset,
}

/// Why a counter refused a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CounterError {
    /// Incrementing by zero changes nothing.
    ZeroIncrement,
    /// The value would overflow.
    Overflow,
    /// Resetting a counter at zero changes nothing.
    AlreadyZero,
}

impl std::fmt::Display for CounterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CounterError::ZeroIncrement => "cannot increment by zero",
            CounterError::Overflow => "the counter would overflow",
            CounterError::AlreadyZero => "the counter is already zero",
        })
    }
}

impl std::error::Error for CounterError {}

/// One counter: the write side's state.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Counter {
    /// The current value.
    pub value: u64,
}

impl Aggregate for Counter {
    const NAME: &'static str = "counter";
    type Event = CounterEvent;
    type Command = CounterCommand;
    type Error = CounterError;

    fn handle(&self, command: CounterCommand) -> Result<Vec<CounterEvent>, CounterError> {
        match command {
            CounterCommand::Increment(0) => Err(CounterError::ZeroIncrement),
            CounterCommand::Increment(by) => {
                self.value.checked_add(by).ok_or(CounterError::Overflow)?;
                Ok(vec![CounterEvent::Incremented { by }])
            }
            CounterCommand::Reset if self.value == 0 => Err(CounterError::AlreadyZero),
            CounterCommand::Reset => Ok(vec![CounterEvent::Reset]),
        }
    }

    fn apply(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Incremented { by } => self.value += by,
            CounterEvent::Reset => self.value = 0,
        }
    }
}

/// One counter as the read model sees it.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CounterRow {
    /// The counter's id.
    #[entity(id)]
    pub id: String,
    /// Its value.
    pub value: u64,
    /// How many times it was reset.
    pub resets: u32,
}

/// The read model over every counter.
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = CounterEvent)]
pub struct CounterBoard {
    /// Every counter.
    pub counters: Table<CounterRow>,
    /// The sum of every increment ever made, resets notwithstanding.
    pub total_increments: u64,
}

impl Apply<CounterEvent> for CounterBoard {
    fn apply(&mut self, event: CounterEvent, meta: &Meta) -> Result<(), FoldError> {
        let Some(id) = meta.stream_id().and_then(|s| s.strip_prefix("counter/")) else {
            return Err(FoldError::new(format!(
                "event {} belongs to no counter stream",
                meta.seq
            )));
        };
        let id = id.to_owned();
        if self.counters.get(&id).is_none() {
            self.counters.insert(CounterRow {
                id: id.clone(),
                value: 0,
                resets: 0,
            });
        }
        match event {
            CounterEvent::Incremented { by } => {
                self.total_increments += by;
                self.counters.update(&id, |row| row.value += by);
            }
            CounterEvent::Reset => {
                self.counters.update(&id, |row| {
                    row.value = 0;
                    row.resets += 1;
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foldkit::testing::AggregateTest;

    #[test]
    fn increments_add_up() {
        let state = AggregateTest::<Counter>::given([CounterEvent::Incremented { by: 2 }])
            .when(CounterCommand::Increment(3))
            .then_expect_events([CounterEvent::Incremented { by: 3 }]);
        assert_eq!(state.value, 5);
    }

    #[test]
    fn refusals() {
        AggregateTest::<Counter>::given([])
            .when(CounterCommand::Increment(0))
            .then_expect_error(CounterError::ZeroIncrement);
        AggregateTest::<Counter>::given([])
            .when(CounterCommand::Reset)
            .then_expect_error(CounterError::AlreadyZero);
        AggregateTest::<Counter>::given([CounterEvent::Incremented { by: u64::MAX }])
            .when(CounterCommand::Increment(1))
            .then_expect_error(CounterError::Overflow);
    }

    #[test]
    fn reset_goes_back_to_zero() {
        let state = AggregateTest::<Counter>::given([CounterEvent::Incremented { by: 9 }])
            .when(CounterCommand::Reset)
            .then_expect_events([CounterEvent::Reset]);
        assert_eq!(state.value, 0);
    }
}
