//! The rows of one index key: a set of slots (positions in the table's row vector).
//!
//! An index maps a key to a [`Bucket`] of the slots of the rows holding it, so a lookup
//! reads the rows directly instead of looking every id up again. A bucket is shaped by its
//! size: one or two slots inline (one is the usual case for an ordered index over nearly
//! unique keys such as timestamps), a sorted [`ThinVec`] for a few, and for many a sorted
//! list of sorted chunks ([`Chunks`]): reading it is as fast as reading an array (a bucket holding a
//! third of the table must read faster than a scan of the table), and adding or removing
//! one slot moves at most one chunk's worth of slots, so it stays cheap for the bucket of
//! a low-cardinality key.
//!
//! A bucket is 16 bytes (an ordered index's B-tree stores it inline beside each key, so
//! every byte of it counts once per row there): the heap shapes are thin pointers. `Few`
//! is a `ThinVec`, whose length and capacity sit in its one allocation before the slots, so
//! reading a few slots follows one pointer (a boxed boxed slice, its earlier shape, cost
//! a lookup one more dependent cache miss and a bucket two allocations); inline `Two`
//! spares small buckets even that.
//!
//! Invariants (kept by the methods below):
//! - a bucket is never empty (the index drops the key instead; see [`Bucket::remove`]);
//! - slots iterate in ascending order, each once: [`Bucket::insert`] of a slot already
//!   there changes nothing, so a row whose `Vec` field holds one key twice is filed once;
//! - `Two` holds 2 slots, ascending; `Few` holds 3..=[`FEW_MAX`] slots;
//! - a `Many`'s chunks are non-empty, each sorted, each holding at most [`CHUNK_MAX`]
//!   slots, all of one chunk below all of the next; `len` is their total.

use thin_vec::ThinVec;

/// A row's position in the table's row vector. A table holds at most `u32::MAX` rows.
pub(crate) type Slot = u32;

/// The most slots a `Few` bucket holds; one more makes it a `Many`.
const FEW_MAX: usize = 48;
/// A `Many` bucket shrinking to this size becomes a `Few` again (hysteresis, so a bucket
/// at the threshold does not flip on every insert and remove).
const FEW_AGAIN: usize = 16;
/// The most slots in one chunk of a `Many`; a fuller chunk splits in two.
const CHUNK_MAX: usize = 1024;

/// The slots of the rows holding one key, ascending.
#[derive(Clone, Debug)]
pub enum Bucket {
    /// Exactly one slot.
    One(Slot),
    /// Two slots, ascending.
    Two([Slot; 2]),
    /// 3..=`FEW_MAX` slots, sorted, allocated to fit. A thin vector, so that the bucket
    /// holds a thin pointer (a boxed slice is 16 bytes: a bucket holding one would be 24).
    Few(ThinVec<Slot>),
    /// More slots (boxed for the same reason).
    Many(Box<Chunks>),
}

/// Many slots, in sorted chunks (see the module docs).
#[derive(Clone, Debug)]
pub struct Chunks {
    chunks: Vec<Vec<Slot>>,
    len: usize,
}

impl Chunks {
    /// One chunk of `slots` (sorted, distinct, at most `CHUNK_MAX`).
    fn of(slots: Vec<Slot>) -> Self {
        let len = slots.len();
        Self {
            chunks: vec![slots],
            len,
        }
    }

    /// The chunk that holds `slot` if any does: the first whose last slot is not below it
    /// (`chunks.len()` when `slot` is above them all).
    fn chunk_of(&self, slot: Slot) -> usize {
        self.chunks
            .partition_point(|chunk| chunk.last().is_some_and(|&last| last < slot))
    }

    fn contains(&self, slot: Slot) -> bool {
        self.chunks
            .get(self.chunk_of(slot))
            .is_some_and(|chunk| chunk.binary_search(&slot).is_ok())
    }

    fn insert(&mut self, slot: Slot) {
        let at = self.chunk_of(slot).min(self.chunks.len() - 1);
        let chunk = &mut self.chunks[at];
        let Err(pos) = chunk.binary_search(&slot) else {
            return;
        };
        chunk.insert(pos, slot);
        self.len += 1;
        if chunk.len() > CHUNK_MAX {
            let upper = chunk.split_off(chunk.len() / 2);
            self.chunks.insert(at + 1, upper);
        }
    }

    /// Removes `slot`; returns whether it was there.
    fn remove(&mut self, slot: Slot) -> bool {
        let at = self.chunk_of(slot);
        let Some(chunk) = self.chunks.get_mut(at) else {
            return false;
        };
        let Ok(pos) = chunk.binary_search(&slot) else {
            return false;
        };
        chunk.remove(pos);
        if chunk.is_empty() {
            self.chunks.remove(at);
        }
        self.len -= 1;
        true
    }

    fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, Vec<Slot>>> {
        self.chunks.iter().flatten()
    }
}

/// A `Few` of `slots` (sorted, distinct), allocated to fit.
fn few_of(slots: &[Slot]) -> ThinVec<Slot> {
    let mut few = ThinVec::with_capacity(slots.len());
    few.extend_from_slice(slots);
    few
}

impl Bucket {
    /// The bucket of `slots` (ascending, distinct), shaped by its size in one step (a bulk
    /// load builds each bucket once instead of growing it slot by slot); `None` when
    /// `slots` is empty.
    pub(crate) fn from_sorted(slots: &[Slot]) -> Option<Bucket> {
        debug_assert!(slots.is_sorted_by(|a, b| a < b));
        Some(match *slots {
            [] => return None,
            [one] => Bucket::One(one),
            [first, second] => Bucket::Two([first, second]),
            _ if slots.len() <= FEW_MAX => Bucket::Few(few_of(slots)),
            _ => {
                let chunks = slots.chunks(CHUNK_MAX).map(<[Slot]>::to_vec).collect();
                Bucket::Many(Box::new(Chunks {
                    chunks,
                    len: slots.len(),
                }))
            }
        })
    }

    /// How many slots.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match self {
            Bucket::One(_) => 1,
            Bucket::Two(_) => 2,
            Bucket::Few(slots) => slots.len(),
            Bucket::Many(slots) => slots.len,
        }
    }

    /// The slots, ascending, as one slice; `None` for a `Many` (its slots are in chunks).
    #[inline]
    pub(crate) fn as_slice(&self) -> Option<&[Slot]> {
        match self {
            Bucket::One(slot) => Some(std::slice::from_ref(slot)),
            Bucket::Two(slots) => Some(slots),
            Bucket::Few(slots) => Some(slots),
            Bucket::Many(_) => None,
        }
    }

    /// The slots, ascending.
    #[inline]
    pub(crate) fn iter(&self) -> BucketIter<'_> {
        match self {
            Bucket::One(slot) => BucketIter::One(Some(*slot)),
            Bucket::Two(slots) => BucketIter::Few(slots.iter()),
            Bucket::Few(slots) => BucketIter::Few(slots.iter()),
            Bucket::Many(slots) => BucketIter::Many(slots.iter()),
        }
    }

    /// Whether `slot` is in the bucket.
    pub(crate) fn contains(&self, slot: Slot) -> bool {
        match self {
            Bucket::One(one) => *one == slot,
            Bucket::Two(two) => two.contains(&slot),
            Bucket::Few(slots) => slots.binary_search(&slot).is_ok(),
            Bucket::Many(slots) => slots.contains(slot),
        }
    }

    /// Adds `slot` (nothing changes if it is there already).
    pub(crate) fn insert(&mut self, slot: Slot) {
        match self {
            Bucket::One(one) => {
                if *one != slot {
                    *self = Bucket::Two([slot.min(*one), slot.max(*one)]);
                }
            }
            Bucket::Two(two) => {
                if let Err(at) = two.binary_search(&slot) {
                    let mut three = [slot; 3];
                    three[..at].copy_from_slice(&two[..at]);
                    three[at + 1..].copy_from_slice(&two[at..]);
                    *self = Bucket::Few(few_of(&three));
                }
            }
            Bucket::Few(slots) => {
                let Err(at) = slots.binary_search(&slot) else {
                    return;
                };
                if slots.len() < FEW_MAX {
                    slots.reserve_exact(1);
                    slots.insert(at, slot);
                } else {
                    let mut many = Vec::with_capacity(slots.len() + 1);
                    many.extend_from_slice(&slots[..at]);
                    many.push(slot);
                    many.extend_from_slice(&slots[at..]);
                    *self = Bucket::Many(Box::new(Chunks::of(many)));
                }
            }
            Bucket::Many(slots) => {
                slots.insert(slot);
            }
        }
    }

    /// Removes `slot`; returns whether the bucket is now empty, in which case the caller
    /// must drop it (an empty bucket breaks the invariant).
    pub(crate) fn remove(&mut self, slot: Slot) -> bool {
        match self {
            Bucket::One(one) => *one == slot,
            Bucket::Two(two) => {
                if let Ok(at) = two.binary_search(&slot) {
                    *self = Bucket::One(two[1 - at]);
                }
                false
            }
            Bucket::Few(slots) => {
                let Ok(at) = slots.binary_search(&slot) else {
                    return false;
                };
                if slots.len() == 3 {
                    let mut two = [0; 2];
                    two[..at].copy_from_slice(&slots[..at]);
                    two[at..].copy_from_slice(&slots[at + 1..]);
                    *self = Bucket::Two(two);
                } else {
                    slots.remove(at);
                    slots.shrink_to_fit();
                }
                false
            }
            Bucket::Many(slots) => {
                if slots.remove(slot) && slots.len <= FEW_AGAIN {
                    let mut few = ThinVec::with_capacity(slots.len);
                    few.extend(slots.iter().copied());
                    *self = Bucket::Few(few);
                }
                false
            }
        }
    }

    /// Re-points the row that moved from slot `from` to slot `to` (a swap-remove moves the
    /// last row into the gap), keeping the slots sorted.
    pub(crate) fn repoint(&mut self, from: Slot, to: Slot) {
        if let Bucket::One(one) = self {
            if *one == from {
                *one = to;
            }
            return;
        }
        if !self.remove(from) {
            self.insert(to);
        }
    }
}

/// The slots of a [`Bucket`], ascending.
pub enum BucketIter<'a> {
    One(Option<Slot>),
    Few(std::slice::Iter<'a, Slot>),
    Many(std::iter::Flatten<std::slice::Iter<'a, Vec<Slot>>>),
}

impl Iterator for BucketIter<'_> {
    type Item = Slot;

    #[inline]
    fn next(&mut self) -> Option<Slot> {
        match self {
            BucketIter::One(slot) => slot.take(),
            BucketIter::Few(slots) => slots.next().copied(),
            BucketIter::Many(slots) => slots.next().copied(),
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            BucketIter::One(slot) => {
                let len = usize::from(slot.is_some());
                (len, Some(len))
            }
            BucketIter::Few(slots) => (slots.len(), Some(slots.len())),
            BucketIter::Many(slots) => slots.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn slots(bucket: &Bucket) -> Vec<Slot> {
        bucket.iter().collect()
    }

    #[test]
    fn a_bucket_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Bucket>(), 16);
    }

    #[test]
    fn three_and_two_slots_take_any_position() {
        for gone in [1, 5, 9] {
            let mut bucket = Bucket::from_sorted(&[1, 5, 9]).expect("non-empty");
            assert!(!bucket.remove(gone));
            let left: Vec<Slot> = [1, 5, 9].into_iter().filter(|&s| s != gone).collect();
            assert!(matches!(bucket, Bucket::Two(_)));
            assert_eq!(slots(&bucket), left);
            bucket.insert(gone);
            assert!(matches!(bucket, Bucket::Few(_)));
            assert_eq!(slots(&bucket), [1, 5, 9]);
        }
    }

    #[test]
    fn grows_through_every_shape_and_back_keeping_slots_sorted() {
        let mut bucket = Bucket::One(500);
        let mut expected = BTreeSet::from([500]);
        // Descending inserts, so each lands in front.
        for slot in (0..200).rev() {
            bucket.insert(slot * 2);
            bucket.insert(slot * 2); // twice: filed once
            expected.insert(slot * 2);
            assert_eq!(slots(&bucket), expected.iter().copied().collect::<Vec<_>>());
            assert_eq!(bucket.len(), expected.len());
        }
        assert!(matches!(bucket, Bucket::Many(_)));
        for slot in (0..200).map(|s| s * 2) {
            assert!(bucket.contains(slot));
            assert!(!bucket.contains(slot + 1));
            assert!(!bucket.remove(slot));
            assert!(!bucket.remove(slot)); // absent: nothing happens
            expected.remove(&slot);
            assert_eq!(slots(&bucket), expected.iter().copied().collect::<Vec<_>>());
        }
        assert!(matches!(bucket, Bucket::One(500)));
        assert!(
            bucket.remove(500),
            "removing the last slot empties the bucket"
        );
    }

    #[test]
    fn many_slots_split_into_chunks_and_stay_sorted() {
        // Pseudo-random order, so inserts land inside chunks, then split them.
        let mut bucket = Bucket::One(0);
        let mut expected = BTreeSet::from([0]);
        for i in 1..10_000u32 {
            let slot = i.wrapping_mul(7919) % 10_007;
            bucket.insert(slot);
            expected.insert(slot);
        }
        let Bucket::Many(chunks) = &bucket else {
            panic!("10K slots are a Many");
        };
        assert!(chunks.chunks.len() > 10);
        assert!(
            chunks
                .chunks
                .iter()
                .all(|c| !c.is_empty() && c.len() <= CHUNK_MAX)
        );
        assert_eq!(slots(&bucket), expected.iter().copied().collect::<Vec<_>>());
        assert_eq!(bucket.len(), expected.len());
        for slot in expected.clone() {
            if slot % 3 != 0 {
                assert!(!bucket.remove(slot));
                expected.remove(&slot);
            }
        }
        assert!(!bucket.contains(1) && bucket.contains(3) && !bucket.contains(10_008));
        assert_eq!(slots(&bucket), expected.iter().copied().collect::<Vec<_>>());
        assert_eq!(bucket.len(), expected.len());
    }

    #[test]
    fn from_sorted_shapes_a_bucket_as_inserts_would() {
        assert!(Bucket::from_sorted(&[]).is_none());
        for len in [1, 2, 3, FEW_MAX, FEW_MAX + 1, CHUNK_MAX, 3 * CHUNK_MAX + 7] {
            let wanted: Vec<Slot> = (0..len as Slot).map(|s| s * 3).collect();
            let bucket = Bucket::from_sorted(&wanted).expect("non-empty");
            let mut grown = Bucket::One(wanted[0]);
            wanted[1..].iter().for_each(|&slot| grown.insert(slot));
            assert_eq!(slots(&bucket), wanted);
            assert_eq!(bucket.len(), len);
            assert_eq!(
                std::mem::discriminant(&bucket),
                std::mem::discriminant(&grown),
                "{len} slots"
            );
            if let Bucket::Many(chunks) = &bucket {
                assert!(
                    chunks
                        .chunks
                        .iter()
                        .all(|c| !c.is_empty() && c.len() <= CHUNK_MAX)
                );
            }
            // Still a working bucket: an insert in the middle and a removal.
            let mut bucket = bucket;
            bucket.insert(1);
            assert!(bucket.contains(1) && bucket.contains(0));
            assert!(!bucket.remove(1) && !bucket.contains(1));
        }
    }

    #[test]
    fn repoint_moves_the_last_slot_into_the_gap() {
        let mut bucket = Bucket::One(9);
        bucket.repoint(9, 3);
        assert_eq!(slots(&bucket), [3]);
        let mut bucket = Bucket::Few(super::few_of(&[1, 4, 9]));
        bucket.repoint(9, 2);
        assert_eq!(slots(&bucket), [1, 2, 4]);
        let mut bucket = Bucket::Two([4, 9]);
        bucket.repoint(9, 2);
        assert_eq!(slots(&bucket), [2, 4]);
        let mut bucket = Bucket::One(0);
        (1..100).for_each(|slot| bucket.insert(slot));
        assert!(matches!(bucket, Bucket::Many(_)));
        bucket.remove(40);
        bucket.repoint(99, 40);
        assert_eq!(slots(&bucket), (0..99).collect::<Vec<_>>());
    }
}
