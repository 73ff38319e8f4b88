//! Fixtures shared by the runtime's integration tests: one event type and a
//! state folding it, for tests about the Db's machinery (open, close,
//! cancellation, snapshots) rather than about a domain.
//!
//! Each test binary compiles this module and uses part of it, hence
//! `allow(dead_code)`. Tests whose types differ on purpose (an entity with
//! the fields an index test needs, a hand-written `State`) keep their own.

#![allow(dead_code)]

use foldkit::prelude::*;

/// The one event: an amount added.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Ev {
    Add(u64),
}

/// Folds `Ev`: the sum and count of the amounts, and an order-sensitive mix
/// that tells "old snapshot + new events" (or a lost event) from a replay.
#[derive(State, Default, Serialize, Deserialize, Debug, PartialEq, Clone)]
#[state(event = Ev)]
pub struct Sum {
    pub total: u64,
    pub count: u64,
    pub mix: u64,
}

impl Apply<Ev> for Sum {
    fn apply(&mut self, Ev::Add(n): Ev, _: &Meta) -> Result<(), FoldError> {
        self.total += n;
        self.count += 1;
        self.mix = self.mix.rotate_left(5) ^ n;
        Ok(())
    }
}
