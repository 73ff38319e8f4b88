//! [`Iter`]: a table's rows in ascending id order, either straight off the row vector
//! (while it is in id order) or through the table's id-order permutation of the slots.

use std::fmt;
use std::iter::FusedIterator;

use super::Slot;
use crate::entity::Entity;

/// The rows of a [`Table`](super::Table) in ascending id order (from
/// [`Table::iter`](super::Table::iter) or `&table`).
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Iter<'a, T: Entity> {
    inner: Inner<'a, T>,
}

enum Inner<'a, T> {
    /// The row vector is in id order.
    Dense(std::slice::Iter<'a, T>),
    /// The slots in id order, and the rows they point at.
    Ordered {
        order: std::slice::Iter<'a, Slot>,
        rows: &'a [T],
    },
}

impl<'a, T: Entity> Iter<'a, T> {
    /// Over `rows`, which are in id order.
    pub(super) fn dense(rows: &'a [T]) -> Self {
        Self {
            inner: Inner::Dense(rows.iter()),
        }
    }

    /// Over `rows` in the order of `order` (every slot once).
    pub(super) fn ordered(rows: &'a [T], order: &'a [Slot]) -> Self {
        Self {
            inner: Inner::Ordered {
                order: order.iter(),
                rows,
            },
        }
    }
}

impl<T: Entity + fmt::Debug> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl<T: Entity> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        let inner = match &self.inner {
            Inner::Dense(rows) => Inner::Dense(rows.clone()),
            Inner::Ordered { order, rows } => Inner::Ordered {
                order: order.clone(),
                rows,
            },
        };
        Self { inner }
    }
}

impl<'a, T: Entity> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        match &mut self.inner {
            Inner::Dense(rows) => rows.next(),
            Inner::Ordered { order, rows } => order.next().map(|&slot| &rows[slot as usize]),
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = match &self.inner {
            Inner::Dense(rows) => rows.len(),
            Inner::Ordered { order, .. } => order.len(),
        };
        (len, Some(len))
    }
}

impl<T: Entity> DoubleEndedIterator for Iter<'_, T> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Dense(rows) => rows.next_back(),
            Inner::Ordered { order, rows } => order.next_back().map(|&slot| &rows[slot as usize]),
        }
    }
}

impl<T: Entity> ExactSizeIterator for Iter<'_, T> {}

impl<T: Entity> FusedIterator for Iter<'_, T> {}
