//! `#[derive(Entity)]` + `Table<T>`: indexes, updates, queries, serde round trips.

use foldkit::prelude::*;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Status {
    Placed,
    Shipped,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    #[entity(id)]
    order_id: u64,
    #[entity(index)]
    customer: String,
    #[entity(index)]
    status: Status,
    total_cents: u64,
    placed_at: u64,
    #[entity(index)]
    tags: Vec<String>,
    note: Option<String>,
}

fn order(id: u64, customer: &str, status: Status, total: u64, tags: &[&str]) -> Order {
    Order {
        order_id: id,
        customer: customer.into(),
        status,
        total_cents: total,
        placed_at: 1000 - id,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        note: id.is_multiple_of(2).then(|| format!("note {id}")),
    }
}

fn sample() -> Table<Order> {
    let mut t = Table::default();
    t.insert(order(1, "ada", Status::Placed, 500, &["gift"]));
    t.insert(order(2, "bob", Status::Shipped, 15_000, &["rush", "gift"]));
    t.insert(order(3, "ada", Status::Shipped, 25_000, &[]));
    t.insert(order(4, "cy", Status::Placed, 12_000, &["rush"]));
    t
}

#[test]
fn indexed_and_unindexed_clauses_and_together() {
    let t = sample();
    let ids = t
        .query()
        .where_status(Status::Placed)
        .where_total_cents_gt(10_000u64)
        .ids();
    assert_eq!(ids, vec![4]);
    assert_eq!(t.query().where_customer("ada").ids(), vec![1, 3]);
    assert_eq!(t.query().where_tags_contains("gift").ids(), vec![1, 2]);
    assert_eq!(
        t.query().where_customer_in(["bob", "cy", "bob"]).ids(),
        vec![2, 4]
    );
    assert_eq!(t.query().where_note_is_some().ids(), vec![2, 4]);
    assert_eq!(t.query().where_note_is_none().ids(), vec![1, 3]);
    assert_eq!(t.query().where_customer_contains("d").ids(), vec![1, 3]);
    assert_eq!(
        t.query().where_total_cents_between(500u64, 12_000u64).ids(),
        vec![1, 4]
    );
    assert_eq!(t.query().where_status_ne(Status::Placed).count(), 2);
    assert!(!t.query().where_customer("nobody").exists());
}

#[test]
fn order_limit_offset_and_ties_by_id() {
    let t = sample();
    let by_total: Vec<u64> = t.query().order_by_total_cents(Desc).ids();
    assert_eq!(by_total, vec![3, 2, 4, 1]);
    let ties = t.query().order_by_customer(Asc).ids();
    assert_eq!(ties, vec![1, 3, 2, 4]);
    let page = t
        .query()
        .order_by_status(Asc)
        .order_by_total_cents(Desc)
        .offset(1)
        .limit(2)
        .ids();
    assert_eq!(page, vec![1, 3]);
    assert_eq!(t.query().offset(3).limit(5).count(), 1);
    assert_eq!(t.query().where_status(Status::Shipped).limit(1).count(), 1);
    assert_eq!(
        t.query()
            .order_by_placed_at(Asc)
            .first()
            .map(|o| o.order_id),
        Some(4)
    );
}

#[test]
fn update_reindexes_changed_fields_and_moves_ids() {
    let mut t = sample();
    assert!(t.update(&1, |o| {
        o.status = Status::Shipped;
        o.tags.push("rush".into());
    }));
    assert_eq!(t.query().where_status(Status::Placed).ids(), vec![4]);
    assert_eq!(t.query().where_tags_contains("rush").ids(), vec![1, 2, 4]);
    assert!(!t.update(&99, |o| o.total_cents = 0));
    // Changing the id moves the row and evicts the row that held the new id.
    assert!(t.update(&4, |o| o.order_id = 2));
    assert_eq!(t.len(), 3);
    assert_eq!(t.query().where_customer("bob").count(), 0);
    assert_eq!(t.query().where_customer("cy").ids(), vec![2]);
    assert_eq!(t.remove(&2).map(|o| o.customer), Some("cy".to_string()));
    assert_eq!(t.query().where_tags_contains("rush").ids(), vec![1]);
    assert_eq!(
        t.insert(order(1, "zed", Status::Placed, 1, &[]))
            .map(|o| o.customer),
        Some("ada".into())
    );
    assert_eq!(t.query().where_customer("ada").ids(), vec![3]);
}

#[test]
fn reusable_filters_are_send_sync_static_and_detachable() {
    fn assert_send_sync_static<F: Clone + Send + Sync + 'static>(_: &F) {}
    let t = sample();
    let rush = Order::filter()
        .where_tags_contains("rush")
        .order_by_total_cents(Desc);
    assert_send_sync_static(&rush);
    assert_eq!(
        t.find_many(&rush)
            .iter()
            .map(|o| o.order_id)
            .collect::<Vec<_>>(),
        vec![2, 4]
    );
    assert_eq!(t.count_where(&rush), 2);
    assert!(t.exists_where(&rush.clone().where_customer("cy")));
    let core = t
        .query()
        .where_customer("ada")
        .filter(|o| o.total_cents > 1000)
        .into_core();
    assert!(core.matches(&order(9, "ada", Status::Placed, 2000, &[])));
    assert!(!core.matches(&order(9, "ada", Status::Placed, 20, &[])));
    assert_eq!(t.find_many(&core).len(), 1);
}

#[test]
fn serde_round_trip_rebuilds_indexes_and_rejects_duplicate_ids() {
    let t = sample();
    let bytes = postcard::to_stdvec(&t).expect("encode");
    let back: Table<Order> = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(back, t);
    assert_eq!(postcard::to_stdvec(&back).expect("encode"), bytes);
    assert_eq!(back.query().where_customer("ada").ids(), vec![1, 3]);
    assert_eq!(back.query().where_tags_contains("rush").ids(), vec![2, 4]);

    let dup = vec![
        order(1, "a", Status::Placed, 1, &[]),
        order(1, "b", Status::Placed, 2, &[]),
    ];
    let bytes = chunked(&dup, dup.len());
    let err = postcard::from_bytes::<Table<Order>>(&bytes).expect_err("duplicate id");
    assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    // The same two rows in two chunks: still one table, so still a duplicate.
    let bytes = chunked(&dup, 1);
    let err = postcard::from_bytes::<Table<Order>>(&bytes).expect_err("duplicate id");
    assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
}

/// A byte string, as a table's binary layout holds each chunk.
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// `rows` in a table's binary layout: chunks of `per` rows, each a byte string holding
/// the postcard encoding of its rows.
fn chunked(rows: &[Order], per: usize) -> Vec<u8> {
    let chunks: Vec<Bytes> = rows
        .chunks(per)
        .map(|chunk| Bytes(postcard::to_stdvec(chunk).expect("encode")))
        .collect();
    postcard::to_stdvec(&chunks).expect("encode")
}

/// A table of several chunks and past the size where a load decodes its chunks and
/// builds its indexes on several threads: it decodes to the same table, whose indexes
/// answer as the rows say; the bytes are the documented layout; a damaged chunk or a
/// duplicate id in another chunk is refused.
#[test]
fn a_large_table_decodes_its_chunks_in_parallel_into_the_same_table() {
    let per = foldkit::__private::TABLE_CHUNK_ROWS;
    let n = 4 * per as u64 + 123;
    let rows: Vec<Order> = (0..n)
        .map(|i| {
            let status = if i % 3 == 0 {
                Status::Shipped
            } else {
                Status::Placed
            };
            Order {
                placed_at: i,
                order_id: i,
                ..order(
                    i % 1000,
                    &format!("c{}", i % 977),
                    status,
                    i * 7 % 5000,
                    &["x"],
                )
            }
        })
        .collect();
    let mut t = Table::default();
    for row in rows.iter().rev() {
        t.insert(row.clone());
    }
    let bytes = postcard::to_stdvec(&t).expect("encode");
    assert_eq!(bytes, chunked(&rows, per), "the binary layout");
    let back: Table<Order> = postcard::from_bytes(&bytes).expect("decode");
    foldkit::__private::check_table(&back).expect("a consistent table");
    assert_eq!(back, t);
    assert_eq!(back.iter().cloned().collect::<Vec<_>>(), rows);
    let of = |c: &str| -> Vec<u64> {
        rows.iter()
            .filter(|o| o.customer == c)
            .map(|o| o.order_id)
            .collect()
    };
    assert_eq!(back.query().where_customer("c5").ids(), of("c5"));
    assert_eq!(
        back.query().where_status(Status::Shipped).count(),
        rows.iter().filter(|o| o.status == Status::Shipped).count()
    );

    let mut dup = rows.clone();
    dup.last_mut().expect("rows").order_id = 7; // in the first chunk too
    let err = postcard::from_bytes::<Table<Order>>(&chunked(&dup, per)).expect_err("dup");
    assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");

    // A chunk whose bytes end inside its last row.
    let mut chunks: Vec<Vec<u8>> = rows
        .chunks(per)
        .map(|c| postcard::to_stdvec(c).expect("encode"))
        .collect();
    chunks[2].pop();
    let cut: Vec<Bytes> = chunks.into_iter().map(Bytes).collect();
    assert!(postcard::from_bytes::<Table<Order>>(&postcard::to_stdvec(&cut).unwrap()).is_err());
}

/// Tables large enough that a scan reads several runs, kept in id order by appends and then
/// put out of order by removals, out-of-order inserts and id changes: every read agrees
/// with a naive filter over the rows sorted by id, and the encoding stays in id order.
#[test]
fn large_tables_read_in_id_order_after_any_mutation() {
    fn check(t: &Table<Order>, naive: &std::collections::BTreeMap<u64, Order>) {
        let rows: Vec<Order> = naive.values().cloned().collect();
        let ids = |keep: &dyn Fn(&Order) -> bool| -> Vec<u64> {
            rows.iter()
                .filter(|o| keep(o))
                .map(|o| o.order_id)
                .collect()
        };
        assert_eq!(t.len(), rows.len());
        assert_eq!(t.iter().cloned().collect::<Vec<_>>(), rows);
        assert_eq!(t.iter().rev().count(), rows.len());
        assert_eq!(
            postcard::to_stdvec(t).expect("encode"),
            chunked(&rows, foldkit::__private::TABLE_CHUNK_ROWS)
        );
        let big = ids(&|o| o.total_cents > 20_000);
        assert_eq!(t.query().where_total_cents_gt(20_000u64).ids(), big);
        for (offset, limit) in [(0, 1), (0, 70), (5, 200), (130, 3), (0, 5000), (4000, 10)] {
            let expected: Vec<u64> = big.iter().copied().skip(offset).take(limit).collect();
            let q = || {
                t.query()
                    .where_total_cents_gt(20_000u64)
                    .offset(offset)
                    .limit(limit)
            };
            assert_eq!(q().ids(), expected, "offset {offset} limit {limit}");
            assert_eq!(q().count(), expected.len());
            assert_eq!(q().exists(), !expected.is_empty());
            assert_eq!(q().first().map(|o| o.order_id), expected.first().copied());
        }
        let both = ids(&|o| o.note.is_some() && o.total_cents <= 9_000 && o.customer != "c3");
        let q = || {
            t.query()
                .where_customer_ne("c3")
                .where_note_is_some()
                .where_total_cents_lte(9_000u64)
        };
        assert_eq!(q().ids(), both);
        assert_eq!(q().count(), both.len());
        assert_eq!(q().limit(100).count(), both.len().min(100));
        assert_eq!(
            q().order_by_total_cents(Desc).first().map(|o| o.order_id),
            rows.iter()
                .filter(|o| both.contains(&o.order_id))
                .max_by_key(|o| (o.total_cents, std::cmp::Reverse(o.order_id)))
                .map(|o| o.order_id)
        );
        assert_eq!(
            t.query().where_customer("c7").ids(),
            ids(&|o| o.customer == "c7")
        );
        assert_eq!(t.query().count(), rows.len());
    }

    let make = |id: u64| {
        let mut o = order(id % 1000, "", Status::Placed, (id * 7919) % 30_000, &[]);
        o.order_id = id;
        o.customer = format!("c{}", id % 10);
        o
    };
    let mut t = Table::default();
    let mut naive = std::collections::BTreeMap::new();
    for id in 0..3000 {
        t.insert(make(id));
        naive.insert(id, make(id));
    }
    check(&t, &naive);

    // Removing the last row keeps the storage in order; any other removal does not.
    for id in [2999, 0, 1500, 17, 2998, 1501] {
        assert_eq!(t.remove(&id), naive.remove(&id));
        check(&t, &naive);
    }
    // Out-of-order inserts, and a replacement.
    for id in [1500, 5000, 3, 4001] {
        t.insert(make(id));
        naive.insert(id, make(id));
    }
    let mut replaced = make(42);
    replaced.total_cents = 29_999;
    t.insert(replaced.clone());
    naive.insert(42, replaced);
    check(&t, &naive);
    // Id changes: to a free id, and onto an existing row (which is evicted).
    for (from, to) in [(10, 7000), (20, 30), (2997, 1)] {
        assert!(t.update(&from, |o| o.order_id = to));
        let mut row = naive.remove(&from).expect("row");
        row.order_id = to;
        naive.insert(to, row);
        check(&t, &naive);
    }
    // Clearing restores an empty, ordered table.
    t.clear();
    naive.clear();
    check(&t, &naive);
    for id in (0..200).rev() {
        t.insert(make(id));
        naive.insert(id, make(id));
    }
    check(&t, &naive);
}

/// Issue 21: calls compile the way a Rust user writes them.
#[test]
fn literals_infer_to_the_field_type_and_ids_are_looked_up_by_borrow() {
    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct Stock {
        #[entity(id)]
        sku: String,
        qty: u32,
        #[entity(index)]
        bin: u16,
        supplier: Option<u64>,
    }

    let mut stock = Table::<Stock>::new();
    let new = |sku: &str| {
        let sku = sku.to_owned();
        move || Stock {
            sku,
            qty: 0,
            bin: 1,
            supplier: None,
        }
    };
    // Insert or update in one step; `&str` looks up a `String` id.
    assert!(stock.upsert("bolt", new("bolt"), |s| s.qty += 5));
    assert!(!stock.upsert("bolt", new("bolt"), |s| s.qty += 2));
    assert!(stock.upsert("nut", new("nut"), |s| s.supplier = Some(9)));
    assert_eq!(stock.get("bolt").map(|s| s.qty), Some(7));
    assert!(stock.contains("nut"));

    // Untyped integer literals become `u32` / `u16` / `Option<u64>`.
    assert_eq!(stock.query().where_qty_gt(5).ids(), ["bolt"]);
    assert_eq!(stock.query().where_qty_between(0, 6).ids(), ["nut"]);
    assert_eq!(stock.query().where_bin(1).count(), 2);
    assert_eq!(stock.query().where_bin_in([1, 2]).count(), 2);
    assert_eq!(stock.query().where_supplier(Some(9)).ids(), ["nut"]);
    assert_eq!(stock.query().where_supplier(None).ids(), ["bolt"]);

    // Updating through upsert re-indexes once, like `update`.
    stock.upsert("nut", new("nut"), |s| s.bin = 2);
    assert_eq!(stock.query().where_bin(2).ids(), ["nut"]);
    assert_eq!(stock.remove("nut").map(|s| s.bin), Some(2));
    assert_eq!(stock.query().where_bin(2).count(), 0);
}
