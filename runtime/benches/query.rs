//! Typed queries against hand-written loops over a plain `Vec` / `HashMap`, in the same run.
//!
//! `cargo bench -p foldkit --bench query -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use foldkit::prelude::*;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Status {
    Placed,
    Confirmed,
    Shipped,
    Delivered,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    #[entity(id)]
    order_id: u64,
    #[entity(index)]
    customer: String,
    #[entity(index)]
    status: Status,
    /// Same selectivity as `customer` (1 in 100), but not indexed.
    region: u32,
    total_cents: u64,
    placed_at: u64,
    #[entity(index)]
    tags: Vec<String>,
}

fn orders(n: u64) -> Vec<Order> {
    const STATUSES: [Status; 4] = [
        Status::Placed,
        Status::Confirmed,
        Status::Shipped,
        Status::Delivered,
    ];
    (0..n)
        .map(|i| Order {
            order_id: i,
            customer: format!("customer-{}", i % 100),
            status: STATUSES[(i % 4) as usize],
            region: ((i * 7) % 100) as u32,
            total_cents: (i * 7919) % 50_000,
            placed_at: 1_700_000_000 + i,
            tags: if i % 50 == 0 {
                vec!["vip".into(), "gift".into()]
            } else {
                vec!["std".into()]
            },
        })
        .collect()
}

fn table(rows: &[Order]) -> Table<Order> {
    let mut table = Table::default();
    for row in rows {
        table.insert(row.clone());
    }
    table
}

fn bench(c: &mut Criterion) {
    let rows10k = orders(10_000);
    let map: HashMap<u64, Order> = rows10k.iter().map(|o| (o.order_id, o.clone())).collect();
    let t10k = table(&rows10k);

    let mut g = c.benchmark_group("find_unique");
    g.bench_function("foldkit", |b| {
        b.iter(|| t10k.find_unique(black_box(&4_242)).map(|o| o.total_cents))
    });
    g.bench_function("hand_written", |b| {
        b.iter(|| map.get(black_box(&4_242)).map(|o| o.total_cents))
    });
    g.finish();

    for n in [1_000u64, 10_000] {
        let rows = orders(n);
        let t = table(&rows);
        let mut g = c.benchmark_group(format!("find_many_{n}"));
        g.bench_function(BenchmarkId::new("indexed", "foldkit"), |b| {
            b.iter(|| t.query().where_customer(black_box("customer-42")).collect())
        });
        g.bench_function(BenchmarkId::new("unindexed", "foldkit"), |b| {
            b.iter(|| t.query().where_region(black_box(42u32)).collect())
        });
        g.bench_function(BenchmarkId::new("scan", "hand_written"), |b| {
            b.iter(|| {
                let region = black_box(42u32);
                rows.iter()
                    .filter(|o| o.region == region)
                    .cloned()
                    .collect::<Vec<_>>()
            })
        });
        g.finish();
    }

    let mut g = c.benchmark_group("count_where_10000");
    let shipped = Order::filter().where_status(Status::Shipped);
    let big = Order::filter().where_total_cents_gt(25_000u64);
    g.bench_function(BenchmarkId::new("indexed", "foldkit"), |b| {
        b.iter(|| t10k.count_where(black_box(&shipped)))
    });
    g.bench_function(BenchmarkId::new("unindexed", "foldkit"), |b| {
        b.iter(|| t10k.count_where(black_box(&big)))
    });
    g.bench_function(BenchmarkId::new("indexed_field", "hand_written"), |b| {
        b.iter(|| {
            rows10k
                .iter()
                .filter(|o| o.status == black_box(Status::Shipped))
                .count()
        })
    });
    g.bench_function(BenchmarkId::new("unindexed_field", "hand_written"), |b| {
        b.iter(|| {
            rows10k
                .iter()
                .filter(|o| o.total_cents > black_box(25_000))
                .count()
        })
    });
    g.finish();

    let rows1k = orders(1_000);
    let t1k = table(&rows1k);
    let mut g = c.benchmark_group("find_many_1000_tag");
    g.bench_function("foldkit", |b| {
        b.iter(|| t1k.query().where_tags_contains(black_box("vip")).collect())
    });
    g.bench_function("hand_written", |b| {
        b.iter(|| {
            let tag = black_box("vip");
            rows1k
                .iter()
                .filter(|o| o.tags.iter().any(|t| t == tag))
                .cloned()
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
