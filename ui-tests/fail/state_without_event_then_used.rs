use foldkit::prelude::*;

// The derive fails (no event type), but the state stays usable: one error.
#[derive(State, Default, Serialize, Deserialize)]
struct Totals {
    count: u64,
}

fn main() {
    let _ = Db::builder("/tmp/never-opened").state::<Totals>();
}
