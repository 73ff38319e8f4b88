//! Queries at scale (issue #18): ordered indexes, top-k, lean rows — each beside its
//! baseline in the same run.
//!
//! `cargo bench -p foldkit --bench query_scale -- --warm-up-time 1 --measurement-time 3`
//!
//! Data: 1M orders (10K for `find_many_10k`), inserted in id order as a fold does. Order
//! `i` has customer `i % 100_000` (10 orders each), status `i % 4` (`i % 3` at 10K),
//! `placed_at = T0 + i` (monotone, as timestamps from a log are) and no tags.
//!
//! Groups (foldkit against the baseline named second):
//! - `range_desc_limit10_1m`: `placed_at` in the middle half, `order_by_placed_at(Desc)`,
//!   `limit(10)`, rows cloned out. foldkit with `#[entity(index(ordered))]` on
//!   `placed_at` against SQLite (in memory, an index on `placed_at`, a prepared cached
//!   statement, rows read into structs) and against a hand-written top-10 loop over a
//!   `Vec`; foldkit without the index against the same loop. `_shuffled`: the same with
//!   `placed_at` a permutation of the ids (rows no longer arrive in time order).
//! - `get_by_id_1m`: `Table::get` against `HashMap::get` (std's hasher), 1024 random ids
//!   per iteration, reading a field; `_cloned` clones the row.
//! - `eq_10_rows_1m`: `where_customer(c)` (10 rows) against a hand-written
//!   `HashMap<String, Vec<usize>>` index, the customer changing every query; borrowed
//!   results (`rows()`, `Vec<&Order>`) and cloned ones (`collect()`); and, to split the
//!   gap, the cost of building (and dropping) the one-clause plan alone, and of the owned
//!   key the clause holds (`&str` to `String`); `eq_int_10_rows_1m`: the same on an
//!   integer key (`where_customer_id(u64)`, a `HashMap<u64, Vec<usize>>` beside it),
//!   and the same clause forced to scan the 1M rows beside a hand-written filter loop
//!   (`_scan`: the clause's row loop, which an inline integer lookup must keep tight).
//! - `indexed_vs_scan_1m` and `find_many_10k`: the same query on a table with the index
//!   and on one without (a scan), so no indexed query is slower than its scan; at 10K
//!   also on the indexed table with the planner forced to scan (identical rows).
//! - `results_10k`: the two ways to hand out results without deep copies — borrowing
//!   (`rows()`, `for_each`) against rows stored as `Arc<Order>` (a hand-written
//!   `Vec<Arc<Order>>` whose matches are `Arc::clone`d), beside the deep copy (`collect`);
//!   and `arc_scan_1m`: what `Arc` storage costs every scan (a pointer per row).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use foldkit::__private::Force;
use foldkit::prelude::*;

const T0: u64 = 1_700_000_000;
const MILLION: u64 = 1_000_000;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Status {
    Placed,
    Confirmed,
    Shipped,
    Delivered,
}

const STATUSES: [Status; 4] = [
    Status::Placed,
    Status::Confirmed,
    Status::Shipped,
    Status::Delivered,
];

/// Orders with indexes: hash on `customer` and `status`, ordered on `placed_at`.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    #[entity(id)]
    order_id: u64,
    #[entity(index)]
    customer: String,
    #[entity(index)]
    status: Status,
    total_cents: u64,
    #[entity(index(ordered))]
    placed_at: u64,
    tags: Vec<String>,
}

/// The same rows without any index: every query scans.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Plain {
    #[entity(id)]
    order_id: u64,
    customer: String,
    status: Status,
    total_cents: u64,
    placed_at: u64,
    tags: Vec<String>,
}

impl From<&Order> for Plain {
    fn from(o: &Order) -> Self {
        Plain {
            order_id: o.order_id,
            customer: o.customer.clone(),
            status: o.status,
            total_cents: o.total_cents,
            placed_at: o.placed_at,
            tags: o.tags.clone(),
        }
    }
}

fn orders(n: u64, statuses: u64, shuffled: bool) -> Vec<Order> {
    (0..n)
        .map(|i| Order {
            order_id: i,
            customer: format!("customer-{}", i % 100_000),
            status: STATUSES[(i % statuses) as usize],
            total_cents: (i * 7919) % 50_000,
            // A permutation of 0..n when shuffled (n is a power of ten, 7_919 is prime).
            placed_at: T0 + if shuffled { (i * 7_919) % n } else { i },
            tags: Vec::new(),
        })
        .collect()
}

/// The rows in a table with indexes and in one without. Each is built in one go, as the
/// baselines' maps and vectors are, so no side's rows and strings lie interleaved in the
/// heap with another's (that alone moves the cloning benches by 2x).
fn tables(rows: &[Order]) -> (Table<Order>, Table<Plain>) {
    let mut indexed = Table::default();
    indexed.reserve(rows.len());
    for row in rows {
        indexed.insert(row.clone());
    }
    let mut plain = Table::default();
    plain.reserve(rows.len());
    for row in rows {
        plain.insert(Plain::from(row));
    }
    (indexed, plain)
}

/// The result order of the range queries: latest first, ties by ascending id.
fn better(a: &Order, b: &Order) -> bool {
    (a.placed_at, std::cmp::Reverse(a.order_id)) > (b.placed_at, std::cmp::Reverse(b.order_id))
}

/// The hand-written top-10: one pass, a sorted array of the best 10 so far.
fn top10(rows: &[Order], low: u64, high: u64) -> Vec<&Order> {
    let mut top: Vec<&Order> = Vec::with_capacity(11);
    for o in rows {
        if o.placed_at < low || o.placed_at > high {
            continue;
        }
        if top.len() == 10 && !better(o, top[9]) {
            continue;
        }
        let at = top.iter().position(|t| better(o, t)).unwrap_or(top.len());
        top.insert(at, o);
        top.truncate(10);
    }
    top
}

fn sqlite(rows: &[Order]) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().expect("sqlite");
    db.execute_batch(
        "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer TEXT NOT NULL, \
         status INTEGER NOT NULL, total_cents INTEGER NOT NULL, placed_at INTEGER NOT NULL);",
    )
    .expect("schema");
    let tx = db.unchecked_transaction().expect("tx");
    {
        let mut insert = tx
            .prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5)")
            .expect("prepare");
        for o in rows {
            insert
                .execute(rusqlite::params![
                    o.order_id as i64,
                    o.customer,
                    o.status as i64,
                    o.total_cents as i64,
                    o.placed_at as i64
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    db.execute_batch("CREATE INDEX orders_placed_at ON orders (placed_at);")
        .expect("index");
    db
}

const SQL_RANGE: &str = "SELECT order_id, customer, status, total_cents, placed_at FROM orders \
     WHERE placed_at BETWEEN ?1 AND ?2 ORDER BY placed_at DESC, order_id ASC LIMIT 10";

fn sqlite_range(db: &rusqlite::Connection, low: u64, high: u64) -> Vec<Order> {
    let mut query = db.prepare_cached(SQL_RANGE).expect("prepare");
    query
        .query_map([low as i64, high as i64], |r| {
            Ok(Order {
                order_id: r.get::<_, i64>(0)? as u64,
                customer: r.get(1)?,
                status: STATUSES[r.get::<_, i64>(2)? as usize],
                total_cents: r.get::<_, i64>(3)? as u64,
                placed_at: r.get::<_, i64>(4)? as u64,
                tags: Vec::new(),
            })
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn range_groups(c: &mut Criterion) {
    for shuffled in [false, true] {
        let rows = orders(MILLION, 4, shuffled);
        let (indexed, plain) = tables(&rows);
        let db = sqlite(&rows);
        let (low, high) = (T0 + MILLION / 4, T0 + 3 * MILLION / 4);
        let expected: Vec<u64> = top10(&rows, low, high).iter().map(|o| o.order_id).collect();
        let ids = |v: &[Order]| v.iter().map(|o| o.order_id).collect::<Vec<_>>();
        assert_eq!(ids(&sqlite_range(&db, low, high)), expected);
        let ordered = || {
            indexed
                .query()
                .where_placed_at_between(black_box(low), black_box(high))
                .order_by_placed_at(Desc)
                .limit(10)
        };
        assert_eq!(ids(&ordered().collect()), expected);
        assert!(matches!(
            ordered().explain(),
            foldkit::query::Plan::Walk { .. }
        ));
        let unindexed = || {
            plain
                .query()
                .where_placed_at_between(black_box(low), black_box(high))
                .order_by_placed_at(Desc)
                .limit(10)
        };
        let unindexed_ids: Vec<u64> = unindexed().collect().iter().map(|o| o.order_id).collect();
        assert_eq!(unindexed_ids, expected);

        let name = if shuffled {
            "range_desc_limit10_1m_shuffled"
        } else {
            "range_desc_limit10_1m"
        };
        let mut g = c.benchmark_group(name);
        g.bench_function("foldkit_ordered_index", |b| b.iter(|| ordered().collect()));
        g.bench_function("sqlite_indexed", |b| {
            b.iter(|| sqlite_range(&db, black_box(low), black_box(high)))
        });
        g.bench_function("foldkit_unindexed", |b| b.iter(|| unindexed().collect()));
        g.bench_function("hand_written_top10", |b| {
            b.iter(|| {
                top10(&rows, black_box(low), black_box(high))
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>()
            })
        });
        g.finish();
    }
}

/// 1024 pseudo-random values below `n`.
fn spread(n: u64) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        })
        .collect()
}

/// Benches one query with the index and by scan, after checking they agree.
fn pair(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    indexed: &dyn Fn() -> usize,
    scan: &dyn Fn() -> usize,
) {
    assert_eq!(indexed(), scan(), "{name}: same result");
    g.bench_function(BenchmarkId::new(name, "indexed"), |b| b.iter(indexed));
    g.bench_function(BenchmarkId::new(name, "scan"), |b| b.iter(scan));
}

fn million_groups(c: &mut Criterion) {
    let rows = orders(MILLION, 4, false);
    let (indexed, plain) = tables(&rows);

    // Get by id.
    let map: HashMap<u64, Order> = rows.iter().map(|o| (o.order_id, o.clone())).collect();
    let ids = spread(MILLION);
    let mut g = c.benchmark_group("get_by_id_1m");
    g.bench_function("foldkit", |b| {
        b.iter(|| {
            ids.iter()
                .map(|id| indexed.get(black_box(id)).map_or(0, |o| o.total_cents))
                .sum::<u64>()
        })
    });
    g.bench_function("hashmap_get", |b| {
        b.iter(|| {
            ids.iter()
                .map(|id| map.get(black_box(id)).map_or(0, |o| o.total_cents))
                .sum::<u64>()
        })
    });
    g.bench_function("foldkit_cloned", |b| {
        b.iter(|| {
            ids.iter()
                .filter_map(|id| indexed.get(black_box(id)).cloned())
                .count()
        })
    });
    g.bench_function("hashmap_get_cloned", |b| {
        b.iter(|| {
            ids.iter()
                .filter_map(|id| map.get(black_box(id)).cloned())
                .count()
        })
    });
    g.finish();
    drop(map);

    // Indexed equality returning 10 rows, the key changing every query.
    let mut by_customer: HashMap<String, Vec<usize>> = HashMap::new();
    for (at, o) in rows.iter().enumerate() {
        by_customer.entry(o.customer.clone()).or_default().push(at);
    }
    let keys: Vec<String> = spread(100_000)
        .iter()
        .map(|i| format!("customer-{i}"))
        .collect();
    assert_eq!(indexed.query().where_customer(keys[0].as_str()).count(), 10);
    let mut g = c.benchmark_group("eq_10_rows_1m");
    let mut at = 0;
    let mut next = || {
        at = (at + 1) % keys.len();
        black_box(keys[at].as_str())
    };
    g.bench_function("foldkit_borrowed", |b| {
        b.iter(|| indexed.query().where_customer(next()).rows())
    });
    g.bench_function("foldkit_plan_build_only", |b| {
        b.iter(|| {
            black_box(indexed.query().where_customer(next()))
                .into_parts()
                .1
                .clause_count()
        })
    });
    g.bench_function("key_to_string_only", |b| {
        b.iter(|| black_box(next().to_owned()))
    });
    g.bench_function("hand_written_index_borrowed", |b| {
        b.iter(|| {
            by_customer
                .get(next())
                .map(|slots| slots.iter().map(|&at| &rows[at]).collect::<Vec<&Order>>())
        })
    });
    g.bench_function("foldkit_cloned", |b| {
        b.iter(|| indexed.query().where_customer(next()).collect())
    });
    g.bench_function("hand_written_index_cloned", |b| {
        b.iter(|| {
            by_customer.get(next()).map(|slots| {
                slots
                    .iter()
                    .map(|&at| rows[at].clone())
                    .collect::<Vec<Order>>()
            })
        })
    });
    g.finish();
    drop(by_customer);

    // Indexed against scan, same query, borrowed results.
    let mut g = c.benchmark_group("indexed_vs_scan_1m");
    pair(
        &mut g,
        "customer_eq",
        &|| {
            indexed
                .query()
                .where_customer(black_box("customer-4242"))
                .rows()
                .len()
        },
        &|| {
            plain
                .query()
                .where_customer(black_box("customer-4242"))
                .rows()
                .len()
        },
    );
    pair(
        &mut g,
        "status_eq_limit10",
        &|| {
            indexed
                .query()
                .where_status(black_box(Status::Shipped))
                .limit(10)
                .rows()
                .len()
        },
        &|| {
            plain
                .query()
                .where_status(black_box(Status::Shipped))
                .limit(10)
                .rows()
                .len()
        },
    );
    pair(
        &mut g,
        "status_eq_count",
        &|| {
            indexed
                .query()
                .where_status(black_box(Status::Shipped))
                .count()
        },
        &|| {
            plain
                .query()
                .where_status(black_box(Status::Shipped))
                .count()
        },
    );
    pair(
        &mut g,
        "placed_at_narrow_range",
        &|| {
            let low = black_box(T0 + 500_000);
            indexed
                .query()
                .where_placed_at_between(low, low + 999)
                .rows()
                .len()
        },
        &|| {
            let low = black_box(T0 + 500_000);
            plain
                .query()
                .where_placed_at_between(low, low + 999)
                .rows()
                .len()
        },
    );
    pair(
        &mut g,
        "placed_at_broad_range_count",
        &|| {
            indexed
                .query()
                .where_placed_at_gt(black_box(T0 + 100_000))
                .count()
        },
        &|| {
            plain
                .query()
                .where_placed_at_gt(black_box(T0 + 100_000))
                .count()
        },
    );
    pair(
        &mut g,
        "status_and_range_desc_limit10",
        &|| {
            indexed
                .query()
                .where_status(black_box(Status::Shipped))
                .where_placed_at_lt(black_box(T0 + 900_000))
                .order_by_placed_at(Desc)
                .limit(10)
                .rows()
                .len()
        },
        &|| {
            plain
                .query()
                .where_status(black_box(Status::Shipped))
                .where_placed_at_lt(black_box(T0 + 900_000))
                .order_by_placed_at(Desc)
                .limit(10)
                .rows()
                .len()
        },
    );
    pair(
        &mut g,
        "customer_desc_limit3",
        &|| {
            indexed
                .query()
                .where_customer(black_box("customer-4242"))
                .order_by_placed_at(Desc)
                .limit(3)
                .rows()
                .len()
        },
        &|| {
            plain
                .query()
                .where_customer(black_box("customer-4242"))
                .order_by_placed_at(Desc)
                .limit(3)
                .rows()
                .len()
        },
    );
    g.finish();

    // What `Arc` storage would cost every scan: one pointer chase per row.
    let shared: Vec<Arc<Order>> = rows.iter().cloned().map(Arc::new).collect();
    let mut g = c.benchmark_group("arc_scan_1m");
    g.bench_function("dense_vec", |b| {
        b.iter(|| {
            let min = black_box(25_000u64);
            rows.iter().filter(|o| o.total_cents > min).count()
        })
    });
    g.bench_function("vec_of_arc", |b| {
        b.iter(|| {
            let min = black_box(25_000u64);
            shared.iter().filter(|o| o.total_cents > min).count()
        })
    });
    g.finish();
}

fn ten_thousand_groups(c: &mut Criterion) {
    let rows = orders(10_000, 3, false);
    let (indexed, plain) = tables(&rows);
    let shipped = Order::filter().where_status(Status::Shipped);
    let shipped_plain = Plain::filter().where_status(Status::Shipped);
    assert_eq!(indexed.find_many(&shipped).len(), 3_333);
    assert!(matches!(
        shipped.core().explain(&indexed),
        foldkit::query::Plan::Index { .. }
    ));

    let mut g = c.benchmark_group("find_many_10k");
    g.bench_function("status_third_indexed", |b| {
        b.iter(|| indexed.find_many(black_box(&shipped)))
    });
    g.bench_function("status_third_scan", |b| {
        b.iter(|| plain.find_many(black_box(&shipped_plain)))
    });
    // The same table, the planner forced to scan: the plans compared on identical rows
    // (the unindexed table's strings lie differently in the heap, which alone moves a
    // cloning bench by 10-20%).
    let forced = shipped.clone().into_core().force(Force::Scan);
    assert_eq!(forced.explain(&indexed), foldkit::query::Plan::Scan);
    g.bench_function("status_third_same_table_forced_scan", |b| {
        b.iter(|| indexed.find_many(black_box(&forced)))
    });
    g.bench_function("status_third_same_table_forced_scan_borrowed", |b| {
        b.iter(|| indexed.find_many_ref(black_box(&forced)).len())
    });
    g.bench_function("status_third_indexed_borrowed", |b| {
        b.iter(|| indexed.find_many_ref(black_box(&shipped)).len())
    });
    g.bench_function("status_third_scan_borrowed", |b| {
        b.iter(|| plain.find_many_ref(black_box(&shipped_plain)).len())
    });
    g.finish();

    // An indexed equality that matches most rows, through its index and by scan: DESIGN
    // says an indexed equality does not scan, #18 that no indexed query is slower than
    // its scan. Two thirds of the rows (`_in` over two buckets) and all of them.
    let wide = Order::filter()
        .where_status_in([Status::Shipped, Status::Placed])
        .into_core();
    let all = orders(10_000, 1, false);
    let (all_indexed, _) = tables(&all);
    let every = Order::filter().where_status(Status::Placed).into_core();
    let mut g = c.benchmark_group("find_many_10k_wide_eq");
    for (name, query, table, matching) in [
        ("two_thirds", &wide, &indexed, 6_667),
        ("all", &every, &all_indexed, 10_000),
    ] {
        let by_index = query.clone().force(Force::Index);
        let by_scan = query.clone().force(Force::Scan);
        assert!(matches!(
            by_index.explain(table),
            foldkit::query::Plan::Index { .. }
        ));
        assert_eq!(table.find_many_ref(&by_index).len(), matching);
        assert_eq!(table.find_many_ref(&by_scan).len(), matching);
        g.bench_function(BenchmarkId::new(name, "index_borrowed"), |b| {
            b.iter(|| table.find_many_ref(black_box(&by_index)).len())
        });
        g.bench_function(BenchmarkId::new(name, "scan_borrowed"), |b| {
            b.iter(|| table.find_many_ref(black_box(&by_scan)).len())
        });
        g.bench_function(BenchmarkId::new(name, "index_cloned"), |b| {
            b.iter(|| table.find_many(black_box(&by_index)).len())
        });
        g.bench_function(BenchmarkId::new(name, "scan_cloned"), |b| {
            b.iter(|| table.find_many(black_box(&by_scan)).len())
        });
    }
    g.finish();

    // Results without deep copies: borrowed against shared rows.
    let shared: Vec<Arc<Order>> = rows.iter().cloned().map(Arc::new).collect();
    let mut g = c.benchmark_group("results_10k");
    g.bench_function("collect_cloned", |b| {
        b.iter(|| {
            indexed
                .query()
                .where_status(black_box(Status::Shipped))
                .collect()
        })
    });
    g.bench_function("rows_borrowed", |b| {
        b.iter(|| {
            indexed
                .query()
                .where_status(black_box(Status::Shipped))
                .rows()
        })
    });
    g.bench_function("for_each_borrowed", |b| {
        b.iter(|| {
            let mut total = 0u64;
            indexed
                .query()
                .where_status(black_box(Status::Shipped))
                .for_each(|o| total += o.total_cents);
            total
        })
    });
    g.bench_function("arc_rows_shared", |b| {
        b.iter(|| {
            let status = black_box(Status::Shipped);
            shared
                .iter()
                .filter(|o| o.status == status)
                .cloned()
                .collect::<Vec<Arc<Order>>>()
        })
    });
    g.finish();
}

/// A row keyed by an integer foreign key, for `eq_int_10_rows_1m`.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Line {
    #[entity(id)]
    line_id: u64,
    #[entity(index)]
    customer_id: u64,
    total_cents: u64,
}

/// Indexed equality on an integer key returning 10 rows of 1M, against a hand-written
/// `HashMap<u64, Vec<usize>>` index, the key changing every query.
fn integer_key_groups(c: &mut Criterion) {
    let rows: Vec<Line> = (0..MILLION)
        .map(|i| Line {
            line_id: i,
            customer_id: i % 100_000,
            total_cents: (i * 7_919) % 50_000,
        })
        .collect();
    let mut table = Table::default();
    table.reserve(rows.len());
    for row in &rows {
        table.insert(row.clone());
    }
    let mut by_customer: HashMap<u64, Vec<usize>> = HashMap::new();
    for (at, line) in rows.iter().enumerate() {
        by_customer.entry(line.customer_id).or_default().push(at);
    }
    let keys = spread(100_000);
    assert_eq!(table.query().where_customer_id(keys[0]).count(), 10);
    let mut at = 0;
    let mut next = || {
        at = (at + 1) % keys.len();
        black_box(keys[at])
    };
    let mut g = c.benchmark_group("eq_int_10_rows_1m");
    g.bench_function("foldkit_borrowed", |b| {
        b.iter(|| table.query().where_customer_id(next()).rows())
    });
    g.bench_function("hand_written_index_borrowed", |b| {
        b.iter(|| {
            by_customer
                .get(&next())
                .map(|slots| slots.iter().map(|&at| &rows[at]).collect::<Vec<&Line>>())
        })
    });
    let scan = |key| {
        Line::filter()
            .where_customer_id(key)
            .into_core()
            .force(Force::Scan)
    };
    assert_eq!(table.find_many_ref(&scan(keys[0])).len(), 10);
    g.bench_function("foldkit_forced_scan_borrowed", |b| {
        b.iter(|| table.find_many_ref(&scan(next())))
    });
    g.bench_function("hand_written_scan_borrowed", |b| {
        b.iter(|| {
            let key = next();
            rows.iter()
                .filter(|line| line.customer_id == key)
                .collect::<Vec<&Line>>()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    range_groups,
    million_groups,
    ten_thousand_groups,
    integer_key_groups
);
criterion_main!(benches);
