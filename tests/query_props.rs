//! Property: any table built by random inserts/updates/removes, queried with any chain of
//! clauses, orderings, offset and limit, gives the same rows in the same order as a naive
//! filter + stable sort over a `Vec` — through `query()`, a detached filter, and `count`.

use foldkit::prelude::*;
use proptest::prelude::*;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    #[entity(id)]
    id: u16,
    #[entity(index)]
    group: u8,
    #[entity(index)]
    tags: Vec<u8>,
    score: i16,
    name: String,
    note: Option<u8>,
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Row),
    Update(u16, u8, i16, Vec<u8>),
    Remove(u16),
}

#[derive(Clone, Debug)]
enum Clause {
    Group(u8),
    GroupIn(Vec<u8>),
    GroupNe(u8),
    Tag(u8),
    ScoreGt(i16),
    ScoreLte(i16),
    ScoreBetween(i16, i16),
    NameContains(String),
    NoteSome(bool),
    Custom(i16),
}

#[derive(Clone, Copy, Debug)]
enum Key {
    Group,
    Score,
    Name,
    Note,
}

fn row() -> impl Strategy<Value = Row> {
    (
        0u16..40,
        0u8..5,
        prop::collection::vec(0u8..6, 0..3),
        -50i16..50,
        "[ab]{0,3}",
        prop::option::of(0u8..3),
    )
        .prop_map(|(id, group, tags, score, name, note)| Row {
            id,
            group,
            tags,
            score,
            name,
            note,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => row().prop_map(Op::Insert),
        2 => (0u16..40, 0u8..5, -50i16..50, prop::collection::vec(0u8..6, 0..3))
            .prop_map(|(id, g, s, t)| Op::Update(id, g, s, t)),
        1 => (0u16..40).prop_map(Op::Remove),
    ]
}

fn clause() -> impl Strategy<Value = Clause> {
    prop_oneof![
        (0u8..6).prop_map(Clause::Group),
        prop::collection::vec(0u8..6, 0..4).prop_map(Clause::GroupIn),
        (0u8..6).prop_map(Clause::GroupNe),
        (0u8..7).prop_map(Clause::Tag),
        (-60i16..60).prop_map(Clause::ScoreGt),
        (-60i16..60).prop_map(Clause::ScoreLte),
        (-60i16..60, -60i16..60).prop_map(|(a, b)| Clause::ScoreBetween(a, b)),
        "[ab]{0,2}".prop_map(Clause::NameContains),
        any::<bool>().prop_map(Clause::NoteSome),
        (-60i16..60).prop_map(Clause::Custom),
    ]
}

fn key() -> impl Strategy<Value = (Key, bool)> {
    (
        prop_oneof![
            Just(Key::Group),
            Just(Key::Score),
            Just(Key::Name),
            Just(Key::Note)
        ],
        any::<bool>(),
    )
}

fn holds(clause: &Clause, r: &Row) -> bool {
    match clause {
        Clause::Group(g) => r.group == *g,
        Clause::GroupIn(gs) => gs.contains(&r.group),
        Clause::GroupNe(g) => r.group != *g,
        Clause::Tag(t) => r.tags.contains(t),
        Clause::ScoreGt(s) => r.score > *s,
        Clause::ScoreLte(s) => r.score <= *s,
        Clause::ScoreBetween(a, b) => *a <= r.score && r.score <= *b,
        Clause::NameContains(n) => r.name.contains(n.as_str()),
        Clause::NoteSome(some) => r.note.is_some() == *some,
        Clause::Custom(s) => r.score % 3 == s % 3,
    }
}

fn add(q: RowQuery, clause: &Clause) -> RowQuery {
    match clause.clone() {
        Clause::Group(g) => q.where_group(g),
        Clause::GroupIn(gs) => q.where_group_in(gs),
        Clause::GroupNe(g) => q.where_group_ne(g),
        Clause::Tag(t) => q.where_tags_contains(t),
        Clause::ScoreGt(s) => q.where_score_gt(s),
        Clause::ScoreLte(s) => q.where_score_lte(s),
        Clause::ScoreBetween(a, b) => q.where_score_between(a, b),
        Clause::NameContains(n) => q.where_name_contains(n),
        Clause::NoteSome(true) => q.where_note_is_some(),
        Clause::NoteSome(false) => q.where_note_is_none(),
        Clause::Custom(s) => q.filter(move |r| r.score % 3 == s % 3),
    }
}

fn compare(a: &Row, b: &Row, keys: &[(Key, bool)]) -> std::cmp::Ordering {
    for (key, desc) in keys {
        let o = match key {
            Key::Group => a.group.cmp(&b.group),
            Key::Score => a.score.cmp(&b.score),
            Key::Name => a.name.cmp(&b.name),
            Key::Note => a.note.cmp(&b.note),
        };
        let o = if *desc { o.reverse() } else { o };
        if o.is_ne() {
            return o;
        }
    }
    a.id.cmp(&b.id)
}

fn apply(table: &mut Table<Row>, naive: &mut Vec<Row>, op: Op) {
    match op {
        Op::Insert(r) => {
            naive.retain(|x| x.id != r.id);
            naive.push(r.clone());
            table.insert(r);
        }
        Op::Update(id, g, s, t) => {
            let change = |r: &mut Row| {
                r.group = g;
                r.score = s;
                r.tags = t.clone();
            };
            naive.iter_mut().filter(|r| r.id == id).for_each(change);
            table.update(&id, change);
        }
        Op::Remove(id) => {
            naive.retain(|x| x.id != id);
            table.remove(&id);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn queries_match_naive_filter_and_sort(
        ops in prop::collection::vec(op(), 0..60),
        clauses in prop::collection::vec(clause(), 0..4),
        keys in prop::collection::vec(key(), 0..3),
        offset in prop::option::of(0usize..10),
        limit in prop::option::of(0usize..10),
    ) {
        let mut table = Table::<Row>::default();
        let mut naive = Vec::new();
        for op in ops {
            apply(&mut table, &mut naive, op);
        }
        let mut expected: Vec<Row> = naive.iter().filter(|r| clauses.iter().all(|c| holds(c, r))).cloned().collect();
        expected.sort_by(|a, b| compare(a, b, &keys));
        let expected: Vec<Row> = expected
            .into_iter()
            .skip(offset.unwrap_or(0))
            .take(limit.unwrap_or(usize::MAX))
            .collect();

        let mut filter = Row::filter();
        for c in &clauses {
            filter = add(filter, c);
        }
        for (key, desc) in &keys {
            let dir = if *desc { Desc } else { Asc };
            filter = match key {
                Key::Group => filter.order_by_group(dir),
                Key::Score => filter.order_by_score(dir),
                Key::Name => filter.order_by_name(dir),
                Key::Note => filter.order_by_note(dir),
            };
        }
        if let Some(n) = offset { filter = filter.offset(n); }
        if let Some(n) = limit { filter = filter.limit(n); }

        prop_assert_eq!(&table.find_many(&filter), &expected);
        prop_assert_eq!(table.count_where(&filter), expected.len());
        prop_assert_eq!(table.exists_where(&filter), !expected.is_empty());
        let ids: Vec<u16> = expected.iter().map(|r| r.id).collect();
        let (_, core) = filter.clone().into_parts();
        prop_assert_eq!(Table::query(&table).offset(0).limit(usize::MAX).ids().len(), table.len());
        prop_assert_eq!(RowQuery::from_parts(&table, core.clone()).ids(), ids);
        prop_assert_eq!(RowQuery::from_parts(&table, core.clone()).first(), expected.first().cloned());
        for r in &naive {
            prop_assert_eq!(core.matches(r), clauses.iter().all(|c| holds(c, r)));
        }
        // Snapshots rebuild the same indexes.
        let bytes = postcard::to_stdvec(&table).expect("encode");
        let back: Table<Row> = postcard::from_bytes(&bytes).expect("decode");
        prop_assert_eq!(back.find_many(&filter), expected);
    }
}
