//! Domains shared by the runnable foldkit examples (see the `[[example]]` targets):
//! a bank (accounts as aggregates, with a read model) and counters (many instances,
//! one read model). Their given/when/then tests use `foldkit::testing`.

pub mod bank;
pub mod counter;
