//! An indexed equality on a `String` field with a borrowed key (`where_f(&str)`), or on an
//! integer field, is answered from the index, hash or ordered (for strings, short and long
//! keys), and a copy of the plan answers the same. The string path holds its key inline in
//! the clause (`query/str_lookup.rs`); if a lookup probed the wrong kind of index the
//! results would still be right (the planner would scan), so these tests pin the plan as
//! well.

use foldkit::prelude::*;
use foldkit::query::Plan;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Customer {
    #[entity(id)]
    id: u32,
    #[entity(index)]
    email: String,
    #[entity(index(ordered))]
    city: String,
    #[entity(index)]
    region: u16,
    #[entity(index(ordered))]
    age: i64,
}

/// 1,000 customers in 10 cities; every seventh email is longer than an inline key.
fn table() -> Table<Customer> {
    let mut table = Table::default();
    for id in 0..1_000u32 {
        table.insert(Customer {
            id,
            email: email(id),
            city: format!("city-{}", id % 10),
            region: (id % 20) as u16,
            age: i64::from(id % 50) - 10,
        });
    }
    table
}

fn email(id: u32) -> String {
    if id.is_multiple_of(7) {
        format!("a-rather-long-address-of-customer-{id}@example.com")
    } else {
        format!("c{id}@example.com")
    }
}

#[test]
fn a_borrowed_key_on_a_hash_index_is_looked_up_short_or_long() {
    let table = table();
    for id in [3u32, 7, 700, 999] {
        let key = email(id);
        let query = || table.query().where_email(key.as_str());
        assert_eq!(
            query().explain(),
            Plan::Index {
                field: "email",
                candidates: 1
            },
            "{key}"
        );
        let ids: Vec<u32> = query().rows().iter().map(|c| c.id).collect();
        assert_eq!(ids, [id], "{key}");
        let plan = query().into_parts().1;
        let copy = plan.clone();
        drop(plan);
        assert_eq!(copy.ids(&table), [id], "{key}");
    }
    let missing = table.query().where_email("nobody@example.com");
    assert_eq!(
        missing.explain(),
        Plan::Index {
            field: "email",
            candidates: 0
        }
    );
    assert!(
        table
            .query()
            .where_email("nobody@example.com")
            .rows()
            .is_empty()
    );
}

#[test]
fn a_borrowed_key_on_an_ordered_index_is_looked_up() {
    let table = table();
    let key = String::from("city-4");
    assert_eq!(
        table.query().where_city(key.as_str()).explain(),
        Plan::Index {
            field: "city",
            candidates: 100
        }
    );
    let ids: Vec<u32> = table.query().where_city(&key).ids();
    let expected: Vec<u32> = (0..1_000).filter(|id| id % 10 == 4).collect();
    assert_eq!(ids, expected);
    assert_eq!(
        table.query().where_city("city-x").explain(),
        Plan::Index {
            field: "city",
            candidates: 0
        }
    );
}

#[test]
fn an_integer_key_on_a_hash_or_ordered_index_is_looked_up() {
    let table = table();
    assert_eq!(
        table.query().where_region(7u16).explain(),
        Plan::Index {
            field: "region",
            candidates: 50
        }
    );
    let expected: Vec<u32> = (0..1_000).filter(|id| id % 20 == 7).collect();
    assert_eq!(table.query().where_region(7u16).ids(), expected);
    assert_eq!(
        table.query().where_age(-3).explain(),
        Plan::Index {
            field: "age",
            candidates: 20
        }
    );
    let expected: Vec<u32> = (0..1_000).filter(|id| id % 50 == 7).collect();
    let plan = table.query().where_age(-3).into_parts().1;
    assert_eq!(plan.clone().ids(&table), expected);
    assert_eq!(plan.ids(&table), expected);
    assert!(table.query().where_region(99u16).rows().is_empty());
    assert_eq!(
        table.query().where_age(1_000).explain(),
        Plan::Index {
            field: "age",
            candidates: 0
        }
    );
}

#[test]
fn an_integer_key_tests_rows_alike_when_scanning_refining_and_matching() {
    use foldkit::__private::Force;
    let table = table();
    let expected: Vec<u32> = (0..1_000).filter(|id| id % 20 == 7).collect();
    // A scan runs the clause's own row loops (select, count) instead of its index.
    let scan = Customer::filter()
        .where_region(7u16)
        .into_core()
        .force(Force::Scan);
    let ids: Vec<u32> = table.find_many_ref(&scan).iter().map(|c| c.id).collect();
    assert_eq!(ids, expected);
    assert_eq!(table.count_where(&scan), expected.len());
    assert!(
        !table.exists_where(
            &Customer::filter()
                .where_region(99u16)
                .into_core()
                .force(Force::Scan)
        )
    );
    // Behind another index's candidates, the integer clause refines them.
    for (id, region, found) in [(7u32, 7u16, true), (8, 7, false), (27, 7, true)] {
        let rows = table
            .query()
            .where_email(email(id).as_str())
            .where_region(region)
            .ids();
        assert_eq!(rows, if found { vec![id] } else { vec![] }, "{id}/{region}");
    }
    // And one row at a time (watch filters, `matches`).
    let plan = table.query().where_age(-3).into_parts().1;
    let matching: Vec<u32> = (0..1_000)
        .filter(|&id| plan.matches(table.get(&id).expect("row")))
        .collect();
    assert_eq!(
        matching,
        (0..1_000).filter(|id| id % 50 == 7).collect::<Vec<_>>()
    );
}
