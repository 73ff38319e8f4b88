//! The orders example (being built).
fn main() {}
