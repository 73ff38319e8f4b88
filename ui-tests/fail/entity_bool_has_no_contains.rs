use foldkit::prelude::*;

// Only the methods a field's type can use are generated: a `bool` has no `contains`.
#[derive(Entity)]
struct Task {
    #[entity(id)]
    id: u64,
    done: bool,
}

fn main() {
    let _ = Task::filter().where_done_contains(true);
}
