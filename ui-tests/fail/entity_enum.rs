use foldkit::prelude::*;

#[derive(Entity)]
enum Order {
    Open { id: u64 },
}

fn main() {}
