//! [`ClauseList`]: a query's clauses, with the first one held inline.
//!
//! Most queries have one clause (`table.query().where_customer(c).rows()`), and building a
//! query is on the path of every lookup: a `Vec` would cost that query a heap allocation
//! of its own beside the clause's, one of the four a one-clause indexed query made where
//! a hand-written index lookup makes one (issue #18). Holding the first clause inline
//! keeps the one-clause plan free of it; a second clause moves both to a `Vec`.

use std::ops::Deref;

use super::predicate::Clause;

/// The clauses of a plan, in cost order (see `QueryCore::push`), as a slice.
pub(super) enum ClauseList<T> {
    /// No clause.
    Empty,
    /// One clause, inline.
    One(Clause<T>),
    /// Two or more.
    Many(Vec<Clause<T>>),
}

impl<T> ClauseList<T> {
    /// The clauses, in order.
    #[inline]
    pub(super) fn as_slice(&self) -> &[Clause<T>] {
        match self {
            ClauseList::Empty => &[],
            ClauseList::One(clause) => std::slice::from_ref(clause),
            ClauseList::Many(clauses) => clauses,
        }
    }

    /// Inserts `clause` at position `at` (at most the length), shifting the later ones.
    pub(super) fn insert(&mut self, at: usize, clause: Clause<T>) {
        match std::mem::replace(self, ClauseList::Empty) {
            ClauseList::Empty => *self = ClauseList::One(clause),
            ClauseList::One(first) => {
                let mut both = Vec::with_capacity(4);
                both.push(first);
                both.insert(at.min(1), clause);
                *self = ClauseList::Many(both);
            }
            ClauseList::Many(mut clauses) => {
                clauses.insert(at, clause);
                *self = ClauseList::Many(clauses);
            }
        }
    }
}

impl<T> Deref for ClauseList<T> {
    type Target = [Clause<T>];
    #[inline]
    fn deref(&self) -> &[Clause<T>] {
        self.as_slice()
    }
}

impl<T> Clone for ClauseList<T> {
    fn clone(&self) -> Self {
        match self {
            ClauseList::Empty => ClauseList::Empty,
            ClauseList::One(clause) => ClauseList::One(clause.clone()),
            ClauseList::Many(clauses) => ClauseList::Many(clauses.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::query::predicate::{Cost, Test};

    fn clause(cost: Cost, pass: u32) -> Clause<u32> {
        Clause::test_only(Arc::new(Test(move |row: &u32| *row == pass)), cost)
    }

    /// Which row (0..10) each clause passes, in list order.
    fn passes(list: &ClauseList<u32>) -> Vec<u32> {
        list.iter()
            .map(|c| {
                (0..10)
                    .find(|row| c.test().test(row))
                    .expect("one row passes")
            })
            .collect()
    }

    #[test]
    fn inserts_at_every_position_through_each_shape() {
        let mut list = ClauseList::Empty;
        assert!(list.is_empty());
        list.insert(0, clause(Cost::Inline, 5));
        assert!(matches!(list, ClauseList::One(_)));
        assert_eq!(passes(&list), [5]);
        list.insert(0, clause(Cost::Inline, 1));
        assert!(matches!(list, ClauseList::Many(_)));
        assert_eq!(passes(&list), [1, 5]);
        list.insert(2, clause(Cost::Opaque, 9));
        list.insert(1, clause(Cost::Search, 3));
        assert_eq!(passes(&list), [1, 3, 5, 9]);
        let copy = list.clone();
        assert_eq!(passes(&copy), [1, 3, 5, 9]);
    }

    #[test]
    fn a_second_clause_goes_after_the_first_when_asked() {
        let mut list = ClauseList::Empty;
        list.insert(0, clause(Cost::Inline, 2));
        list.insert(1, clause(Cost::Inline, 7));
        assert_eq!(passes(&list), [2, 7]);
        assert_eq!(passes(&list.clone()), [2, 7]);
    }
}
