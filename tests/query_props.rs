//! Property: any table built by random inserts/updates/removes, queried with any chain of
//! clauses, orderings, offset and limit, gives the same rows in the same order as a naive
//! filter + stable sort over a `Vec` — through `query()`, a detached filter, `count`, and
//! every access path the planner can take (forced one by one: scan, index, ordered walk).
//!
//! Two entities hold the same rows: `Row` with hash indexes only, and `Ranked` with
//! ordered indexes on most fields, so every range and ordering runs both by scan and
//! through an ordered index. After every table is built, its internal invariants (slots,
//! id order, index buckets re-pointed by swap-removes) are checked.

use foldkit::__private::{Force, check_table};
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
    #[entity(index)]
    name: String,
    note: Option<u8>,
}

/// The same fields as `Row`, with ordered indexes.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Ranked {
    #[entity(id)]
    id: u16,
    #[entity(index(ordered))]
    group: u8,
    #[entity(index)]
    tags: Vec<u8>,
    #[entity(index(ordered))]
    score: i16,
    #[entity(index(ordered))]
    name: String,
    #[entity(index(ordered))]
    note: Option<u8>,
}

impl From<&Row> for Ranked {
    fn from(r: &Row) -> Self {
        Ranked {
            id: r.id,
            group: r.group,
            tags: r.tags.clone(),
            score: r.score,
            name: r.name.clone(),
            note: r.note,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Row),
    Update(u16, u8, i16, Vec<u8>),
    /// Changes the row's id (the row moves, evicting any row at the new id).
    Rekey(u16, u16),
    Remove(u16),
}

#[derive(Clone, Debug)]
enum Clause {
    Group(u8),
    GroupIn(Vec<u8>),
    GroupNe(u8),
    GroupGt(u8),
    Tag(u8),
    Score(i16),
    ScoreGt(i16),
    ScoreGte(i16),
    ScoreLt(i16),
    ScoreLte(i16),
    ScoreBetween(i16, i16),
    /// `where_name(&str)`: a borrowed key.
    Name(String),
    /// `where_name(String)`: an owned key.
    NameOwned(String),
    NameBetween(String, String),
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

/// One query shape: clauses, orderings (key, descending), offset, limit.
#[derive(Clone, Debug)]
struct Shape {
    clauses: Vec<Clause>,
    keys: Vec<(Key, bool)>,
    offset: Option<usize>,
    limit: Option<usize>,
}

fn row(ids: u16) -> impl Strategy<Value = Row> {
    (
        0..ids,
        0u8..5,
        prop::collection::vec(0u8..6, 0..3),
        -50i16..50,
        name(),
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

/// A name: mostly short, sometimes long (37 to 40 bytes).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![6 => "[ab]{0,3}", 1 => "a{37,40}"]
}

fn op(ids: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => row(ids).prop_map(Op::Insert),
        4 => (0..ids, 0u8..5, -50i16..50, prop::collection::vec(0u8..6, 0..3))
            .prop_map(|(id, g, s, t)| Op::Update(id, g, s, t)),
        1 => (0..ids, 0..ids).prop_map(|(from, to)| Op::Rekey(from, to)),
        2 => (0..ids).prop_map(Op::Remove),
    ]
}

fn clause() -> impl Strategy<Value = Clause> {
    prop_oneof![
        (0u8..6).prop_map(Clause::Group),
        prop::collection::vec(0u8..6, 0..4).prop_map(Clause::GroupIn),
        (0u8..6).prop_map(Clause::GroupNe),
        (0u8..6).prop_map(Clause::GroupGt),
        (0u8..7).prop_map(Clause::Tag),
        (-60i16..60).prop_map(Clause::Score),
        (-60i16..60).prop_map(Clause::ScoreGt),
        (-60i16..60).prop_map(Clause::ScoreGte),
        (-60i16..60).prop_map(Clause::ScoreLt),
        (-60i16..60).prop_map(Clause::ScoreLte),
        (-60i16..60, -60i16..60).prop_map(|(a, b)| Clause::ScoreBetween(a, b)),
        name().prop_map(Clause::Name),
        name().prop_map(Clause::NameOwned),
        ("[ab]{0,2}", "[ab]{0,3}").prop_map(|(a, b)| Clause::NameBetween(a, b)),
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

fn shape(max_limit: usize) -> impl Strategy<Value = Shape> {
    (
        prop::collection::vec(clause(), 0..4),
        prop::collection::vec(key(), 0..3),
        prop::option::of(0usize..10),
        prop::option::of(0usize..max_limit),
    )
        .prop_map(|(clauses, keys, offset, limit)| Shape {
            clauses,
            keys,
            offset,
            limit,
        })
}

fn holds(clause: &Clause, r: &Row) -> bool {
    match clause {
        Clause::Group(g) => r.group == *g,
        Clause::GroupIn(gs) => gs.contains(&r.group),
        Clause::GroupNe(g) => r.group != *g,
        Clause::GroupGt(g) => r.group > *g,
        Clause::Tag(t) => r.tags.contains(t),
        Clause::Score(s) => r.score == *s,
        Clause::ScoreGt(s) => r.score > *s,
        Clause::ScoreGte(s) => r.score >= *s,
        Clause::ScoreLt(s) => r.score < *s,
        Clause::ScoreLte(s) => r.score <= *s,
        Clause::ScoreBetween(a, b) => *a <= r.score && r.score <= *b,
        Clause::Name(n) | Clause::NameOwned(n) => r.name == *n,
        Clause::NameBetween(a, b) => a.as_str() <= r.name.as_str() && r.name <= *b,
        Clause::NameContains(n) => r.name.contains(n.as_str()),
        Clause::NoteSome(some) => r.note.is_some() == *some,
        Clause::Custom(s) => r.score % 3 == s % 3,
    }
}

/// Builds the filter of `shape` for an entity type (`Row` or `Ranked`): the generated
/// methods have the same names on both.
macro_rules! filter_of {
    ($entity:ident, $shape:expr) => {{
        let shape: &Shape = $shape;
        let mut q = $entity::filter();
        for clause in shape.clauses.clone() {
            q = match clause {
                Clause::Group(g) => q.where_group(g),
                Clause::GroupIn(gs) => q.where_group_in(gs),
                Clause::GroupNe(g) => q.where_group_ne(g),
                Clause::GroupGt(g) => q.where_group_gt(g),
                Clause::Tag(t) => q.where_tags_contains(t),
                Clause::Score(s) => q.where_score(s),
                Clause::ScoreGt(s) => q.where_score_gt(s),
                Clause::ScoreGte(s) => q.where_score_gte(s),
                Clause::ScoreLt(s) => q.where_score_lt(s),
                Clause::ScoreLte(s) => q.where_score_lte(s),
                Clause::ScoreBetween(a, b) => q.where_score_between(a, b),
                Clause::Name(n) => q.where_name(n.as_str()),
                Clause::NameOwned(n) => q.where_name(n),
                Clause::NameBetween(a, b) => q.where_name_between(a, b),
                Clause::NameContains(n) => q.where_name_contains(n),
                Clause::NoteSome(true) => q.where_note_is_some(),
                Clause::NoteSome(false) => q.where_note_is_none(),
                Clause::Custom(s) => q.filter(move |r| r.score % 3 == s % 3),
            };
        }
        for (key, desc) in &shape.keys {
            let dir = if *desc { Desc } else { Asc };
            q = match key {
                Key::Group => q.order_by_group(dir),
                Key::Score => q.order_by_score(dir),
                Key::Name => q.order_by_name(dir),
                Key::Note => q.order_by_note(dir),
            };
        }
        if let Some(n) = shape.offset {
            q = q.offset(n);
        }
        if let Some(n) = shape.limit {
            q = q.limit(n);
        }
        q
    }};
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

/// Both tables and the naive `Vec`, kept in step.
struct Tables {
    rows: Table<Row>,
    ranked: Table<Ranked>,
    naive: Vec<Row>,
}

impl Tables {
    fn new() -> Self {
        Tables {
            rows: Table::default(),
            ranked: Table::default(),
            naive: Vec::new(),
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Insert(r) => {
                self.naive.retain(|x| x.id != r.id);
                self.naive.push(r.clone());
                self.ranked.insert(Ranked::from(&r));
                self.rows.insert(r);
            }
            Op::Update(id, g, s, t) => {
                let t2 = t.clone();
                self.naive.iter_mut().filter(|r| r.id == id).for_each(|r| {
                    r.group = g;
                    r.score = s;
                    r.tags = t.clone();
                });
                self.rows.update(&id, |r| {
                    r.group = g;
                    r.score = s;
                    r.tags = t2.clone();
                });
                self.ranked.update(&id, |r| {
                    r.group = g;
                    r.score = s;
                    r.tags = t2;
                });
            }
            Op::Rekey(from, to) => {
                if self.naive.iter().any(|r| r.id == from) && from != to {
                    self.naive.retain(|x| x.id != to);
                    self.naive
                        .iter_mut()
                        .filter(|r| r.id == from)
                        .for_each(|r| r.id = to);
                }
                self.rows.update(&from, |r| r.id = to);
                self.ranked.update(&from, |r| r.id = to);
            }
            Op::Remove(id) => {
                self.naive.retain(|x| x.id != id);
                self.rows.remove(&id);
                self.ranked.remove(&id);
            }
        }
    }

    fn check(&self, shape: &Shape) -> Result<(), TestCaseError> {
        check_table(&self.rows).map_err(TestCaseError::fail)?;
        check_table(&self.ranked).map_err(TestCaseError::fail)?;
        prop_assert_eq!(self.rows.len(), self.naive.len());

        let mut expected: Vec<Row> = self
            .naive
            .iter()
            .filter(|r| shape.clauses.iter().all(|c| holds(c, r)))
            .cloned()
            .collect();
        expected.sort_by(|a, b| compare(a, b, &shape.keys));
        let expected: Vec<Row> = expected
            .into_iter()
            .skip(shape.offset.unwrap_or(0))
            .take(shape.limit.unwrap_or(usize::MAX))
            .collect();
        let ids: Vec<u16> = expected.iter().map(|r| r.id).collect();

        let filter = filter_of!(Row, shape);
        prop_assert_eq!(&self.rows.find_many(&filter), &expected);
        prop_assert_eq!(self.rows.count_where(&filter), expected.len());
        prop_assert_eq!(self.rows.exists_where(&filter), !expected.is_empty());
        let (_, core) = filter.clone().into_parts();
        prop_assert_eq!(
            RowQuery::from_parts(&self.rows, core.clone()).ids(),
            ids.clone()
        );
        prop_assert_eq!(
            RowQuery::from_parts(&self.rows, core.clone()).first(),
            expected.first().cloned()
        );
        for r in &self.naive {
            prop_assert_eq!(core.matches(r), shape.clauses.iter().all(|c| holds(c, r)));
        }

        let ranked = filter_of!(Ranked, shape);
        let (_, ranked_core) = ranked.clone().into_parts();
        for force in [
            None,
            Some(Force::Scan),
            Some(Force::Index),
            Some(Force::Walk),
        ] {
            let (core, ranked_core) = match force {
                None => (core.clone(), ranked_core.clone()),
                Some(f) => (core.clone().force(f), ranked_core.clone().force(f)),
            };
            let path = format!("{force:?}, plan {:?}", ranked_core.explain(&self.ranked));
            prop_assert_eq!(
                RowQuery::from_parts(&self.rows, core.clone()).ids(),
                ids.clone(),
                "Row, {}",
                path
            );
            prop_assert_eq!(core.count(&self.rows), ids.len(), "Row count, {}", path);
            let got: Vec<u16> = RankedQuery::from_parts(&self.ranked, ranked_core.clone())
                .rows()
                .iter()
                .map(|r| r.id)
                .collect();
            prop_assert_eq!(&got, &ids, "Ranked, {}", path);
            prop_assert_eq!(
                ranked_core.count(&self.ranked),
                ids.len(),
                "Ranked count, {}",
                path
            );
            prop_assert_eq!(
                ranked_core.first(&self.ranked).map(|r| r.id),
                ids.first().copied(),
                "Ranked first, {}",
                path
            );
        }

        // Snapshots rebuild the same indexes.
        let bytes = postcard::to_stdvec(&self.rows).expect("encode");
        let back: Table<Row> = postcard::from_bytes(&bytes).expect("decode");
        check_table(&back).map_err(TestCaseError::fail)?;
        prop_assert_eq!(back.find_many(&filter), expected);
        let bytes = postcard::to_stdvec(&self.ranked).expect("encode");
        let back: Table<Ranked> = postcard::from_bytes(&bytes).expect("decode");
        check_table(&back).map_err(TestCaseError::fail)?;
        let got: Vec<u16> = back.find_many(&ranked).iter().map(|r| r.id).collect();
        prop_assert_eq!(got, ids);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Small tables, any op sequence (ids collide, rows move, evict and swap-remove).
    #[test]
    fn queries_match_naive_filter_and_sort(
        ops in prop::collection::vec(op(40), 0..80),
        shape in shape(10),
    ) {
        let mut tables = Tables::new();
        for op in ops {
            tables.apply(op);
        }
        tables.check(&shape)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Larger tables (hundreds of rows, many ties), so top-k selections compact, walks
    /// meet their budgets, buckets change shape and the planner samples.
    #[test]
    fn large_tables_match_naive_filter_and_sort(
        rows in prop::collection::vec(row(2000), 300..1200),
        ops in prop::collection::vec(op(2000), 0..200),
        shapes in prop::collection::vec(shape(300), 1..6),
    ) {
        let mut tables = Tables::new();
        for row in rows {
            tables.apply(Op::Insert(row));
        }
        for op in ops {
            tables.apply(op);
        }
        for shape in &shapes {
            tables.check(shape)?;
        }
    }
}
