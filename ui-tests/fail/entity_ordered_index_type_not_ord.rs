use foldkit::prelude::*;

/// Hashable, but with no order.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Region(u32);

#[derive(Entity)]
struct Depot {
    #[entity(id)]
    id: u64,
    #[entity(index(ordered))]
    region: Region,
}

fn main() {
    let depots = Table::<Depot>::new();
    // Reported at the field, and at a call that needs the order (not inside the derive).
    let _ = depots.query().where_region(Region(1)).count();
}
