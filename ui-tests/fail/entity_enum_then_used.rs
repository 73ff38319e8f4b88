use foldkit::prelude::*;

// The derive fails (an enum), but uses of the type add no errors of their own.
#[derive(Entity)]
enum Bad {
    One,
}

fn main() {
    let table = Table::<Bad>::new();
    let _ = table.count_where(&Bad::filter());
}
