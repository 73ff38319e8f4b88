//! Indexed equality returning 10 rows of 1M (issue #18), against a hand-written
//! `HashMap<String, Vec<usize>>` index, one query shape per process so that an
//! instruction counter can tell them apart.
//!
//! `cargo run --release -p foldkit --example eq_probe -- MODE [QUERIES]`
//!
//! MODE is `setup` (build the table and the hand-written index, query nothing), `query`
//! (`table.query().where_customer(k).rows()`), `plan` (build that query, do not run it)
//! or `hand` (the hand-written lookup); QUERIES defaults to 100,000, over 1,024 keys.
//! Wall time on a shared VM cannot resolve a 10% change in a 200 ns query, so count
//! instructions instead, which repeat exactly from run to run:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.setup target/release/examples/eq_probe setup
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.query target/release/examples/eq_probe query
//! ```
//!
//! and divide the difference of the two "Collected" totals by QUERIES. The probe also
//! prints its own wall time per query.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use foldkit::prelude::*;

#[derive(Entity, Serialize, Deserialize, Clone, Debug)]
struct Order {
    #[entity(id)]
    order_id: u64,
    #[entity(index)]
    customer: String,
    total_cents: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "query".to_owned());
    let queries: usize = match args.next() {
        Some(n) => n.parse().expect("QUERIES is a number"),
        None => 100_000,
    };
    let rows: Vec<Order> = (0..1_000_000u64)
        .map(|i| Order {
            order_id: i,
            customer: format!("customer-{}", i % 100_000),
            total_cents: (i * 7_919) % 50_000,
        })
        .collect();
    let mut table = Table::default();
    for row in &rows {
        table.insert(row.clone());
    }
    let mut by_customer: HashMap<String, Vec<usize>> = HashMap::new();
    for (at, row) in rows.iter().enumerate() {
        by_customer
            .entry(row.customer.clone())
            .or_default()
            .push(at);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let keys: Vec<String> = (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("customer-{}", x % 100_000)
        })
        .collect();
    let key = |i: usize| black_box(keys[i % keys.len()].as_str());

    let start = Instant::now();
    let found: usize = match mode.as_str() {
        "setup" => 0,
        "query" => (0..queries)
            .map(|i| table.query().where_customer(key(i)).rows().len())
            .sum(),
        "plan" => (0..queries)
            .map(|i| {
                black_box(table.query().where_customer(key(i)))
                    .into_parts()
                    .1
                    .clause_count()
            })
            .sum(),
        "hand" => (0..queries)
            .map(|i| {
                by_customer.get(key(i)).map_or(0, |slots| {
                    slots
                        .iter()
                        .map(|&at| &rows[at])
                        .collect::<Vec<&Order>>()
                        .len()
                })
            })
            .sum(),
        other => panic!("unknown mode `{other}`: setup, query, plan or hand"),
    };
    let per_query = start.elapsed().as_nanos() as f64 / queries.max(1) as f64;
    println!("mode={mode} queries={queries} found={found} ns_per_query={per_query:.0}");
    // The table's teardown is not what is measured.
    std::process::exit(0);
}
