//! Orderings: a sort key per `order_by_*` call, and the top-k selection that answers
//! `order_by_f(..).limit(k)` without sorting every match.
//!
//! Results are ordered by the keys in call order, then by ascending id, so the order is
//! total and a selection is deterministic. A [`SortKey`] compares by its own field; the
//! keys after it and the id are passed in as `rest`, a comparison only consulted on a tie.
//!
//! [`TopK`] keeps the best `k` rows seen so far in a buffer of up to `cap` rows and
//! remembers the worst row it keeps (once it has kept `k`): a new row that is not better
//! than that is dropped after one comparison, inlined into the loop of the first key's
//! [`SortKey::offer`]. When the buffer fills, `select_nth_unstable` keeps the best `k`
//! (amortized `O(1)` per offered row), so the selection costs `O(m)` for `m` matches,
//! never `O(m log m)`.

use std::cmp::Ordering;
use std::sync::Arc;

use super::probe::IndexProbe;
use crate::entity::Entity;

/// A comparison of rows on the keys after the first, then on the id.
pub(super) type Rest<'a, T> = &'a dyn Fn(&T, &T) -> Ordering;

/// One `order_by_*`: compares rows by one field in one direction.
pub(crate) trait SortKey<T>: Send + Sync {
    /// The order of `a` and `b` by this key alone.
    fn cmp(&self, a: &T, b: &T) -> Ordering;
    /// Offers each row of `run` to `top` (see the module docs); returns how many it kept
    /// for now.
    fn offer<'t>(&self, run: &[&'t T], top: &mut TopK<'t, T>, rest: Rest<'_, T>) -> usize;
    /// Appends to `out` the rows of `rows` that come before `worst` (so could enter a
    /// selection whose worst kept row is `worst`).
    fn select_before<'t>(&self, rows: &'t [T], worst: &T, rest: Rest<'_, T>, out: &mut Vec<&'t T>);
    /// Keeps the best `top.k` rows of `top`'s buffer.
    fn compact(&self, top: &mut TopK<'_, T>, rest: Rest<'_, T>);
    /// Sorts `rows` by this key, then `rest`.
    fn sort(&self, rows: &mut [&T], rest: Rest<'_, T>);
}

/// An `order_by_*` key: a comparison of two rows by one field, in its direction (a
/// closure, so the loops of [`SortKey`] inline it).
pub(super) struct ByKey<C>(pub(super) C);

/// The default order, and the last tie-breaker: ascending id.
pub(super) struct ById;

/// How a key type compares two rows; the one generic part of the [`SortKey`] loops.
trait Compare<T>: Send + Sync {
    fn compare(&self, a: &T, b: &T) -> Ordering;
}

impl<T, C: Fn(&T, &T) -> Ordering + Send + Sync> Compare<T> for ByKey<C> {
    #[inline(always)]
    fn compare(&self, a: &T, b: &T) -> Ordering {
        (self.0)(a, b)
    }
}

impl<T: Entity> Compare<T> for ById {
    #[inline(always)]
    fn compare(&self, a: &T, b: &T) -> Ordering {
        a.id().cmp(b.id())
    }
}

impl<T, C: Compare<T>> SortKey<T> for C {
    #[inline]
    fn cmp(&self, a: &T, b: &T) -> Ordering {
        self.compare(a, b)
    }

    fn offer<'t>(&self, run: &[&'t T], top: &mut TopK<'t, T>, rest: Rest<'_, T>) -> usize {
        let mut kept = 0;
        for &row in run {
            if let Some(worst) = top.worst {
                match self.compare(row, worst) {
                    Ordering::Less => {}
                    Ordering::Greater => continue,
                    Ordering::Equal => {
                        if rest(row, worst) != Ordering::Less {
                            continue;
                        }
                    }
                }
            }
            top.buf.push(row);
            kept += 1;
            if top.buf.len() >= top.cap {
                self.compact(top, rest);
            }
        }
        kept
    }

    fn select_before<'t>(&self, rows: &'t [T], worst: &T, rest: Rest<'_, T>, out: &mut Vec<&'t T>) {
        for row in rows {
            let before = match self.compare(row, worst) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => rest(row, worst) == Ordering::Less,
            };
            if before {
                out.push(row);
            }
        }
    }

    fn compact(&self, top: &mut TopK<'_, T>, rest: Rest<'_, T>) {
        let k = top.k;
        if top.buf.len() <= k {
            return;
        }
        top.buf
            .select_nth_unstable_by(k - 1, |a, b| self.compare(a, b).then_with(|| rest(a, b)));
        top.buf.truncate(k);
        top.worst = Some(top.buf[k - 1]);
    }

    fn sort(&self, rows: &mut [&T], rest: Rest<'_, T>) {
        rows.sort_unstable_by(|a, b| self.compare(a, b).then_with(|| rest(a, b)));
    }
}

/// One `order_by_*` of a plan: its key and, for a field with an ordered index, the walk
/// over that index in key order (an unbounded range probe).
pub(super) struct OrderKey<T> {
    pub(super) key: Arc<dyn SortKey<T>>,
    pub(super) walk: Option<(IndexProbe<T>, super::Direction)>,
}

impl<T> Clone for OrderKey<T> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            walk: self.walk.clone(),
        }
    }
}

/// The best `k` rows offered so far (see the module docs).
pub(crate) struct TopK<'t, T> {
    k: usize,
    cap: usize,
    buf: Vec<&'t T>,
    /// The worst kept row, once `k` are kept.
    worst: Option<&'t T>,
}

impl<'t, T> TopK<'t, T> {
    /// An empty selection of the best `k >= 1` rows.
    pub(super) fn new(k: usize) -> Self {
        debug_assert!(k >= 1);
        let cap = k.saturating_mul(2).max(256);
        Self {
            k,
            cap,
            buf: Vec::new(),
            worst: None,
        }
    }

    /// The worst row kept, once `k` are kept: a row that does not come before it cannot
    /// enter.
    pub(super) fn worst(&self) -> Option<&'t T> {
        self.worst
    }

    /// The best `k` rows in order: by `first`, then `rest`.
    pub(super) fn finish(mut self, first: &dyn SortKey<T>, rest: Rest<'_, T>) -> Vec<&'t T> {
        first.compact(&mut self, rest);
        first.sort(&mut self.buf, rest);
        self.buf
    }
}
