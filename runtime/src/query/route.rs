//! Watch routing: which index keys a query's rows must carry.
//!
//! A watch stream should wake only when a changed row could change its result. For a
//! query with an index-capable clause (an indexed `where_f`, `where_f_in` or
//! `where_f_contains`) every matching row carries one of that clause's keys in the
//! clause's index, so a changed row whose keys hash elsewhere cannot have entered the
//! result. Keys are compared by a fixed 64-bit hash: a collision only costs a spurious
//! wake-up, never a missed one. That is why the hash can be a cheap multiply-and-rotate
//! one ([`KeyHasher`]) rather than SipHash: the fold hashes every changed row's keys
//! while watchers are routed, and a weak hash can only cost wake-ups.

use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use super::QueryCore;
use super::probe::IndexProbe;
use crate::entity::Entity;
use crate::table::Table;

/// The hash routing uses for index keys (unseeded: equal keys hash equal everywhere).
pub(crate) fn key_hash<K: Hash>(key: &K) -> u64 {
    BuildHasherDefault::<KeyHasher>::default().hash_one(key)
}

/// A fast, unseeded hasher (FxHash's multiply-and-rotate step, 8 bytes at a time) for
/// routing keys and for maps keyed by such hashes. Not collision-resistant: use it only
/// where a collision costs time, never correctness.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            self.mix(u64::from_le_bytes(buf));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
}

impl<T> QueryCore<T> {
    /// The first index lookup clause (equality, `_in`, `contains` on an indexed field):
    /// every row this query matches carries one of its keys. Ranges name no finite set of
    /// keys, so they do not route.
    pub(crate) fn route_probe(&self) -> Option<IndexProbe<T>> {
        self.clauses
            .iter()
            .filter_map(|clause| clause.probe())
            .find(|probe| probe.get().route_keys().is_some())
            .cloned()
    }
}

impl<T> IndexProbe<T> {
    /// The index slot, and the hashes of the keys this probe looks up (`None` for a range).
    pub(crate) fn route_keys(&self) -> Option<(usize, Vec<u64>)> {
        Some((self.get().index(), self.get().route_keys()?))
    }

    /// Appends the hashes of `row`'s keys in this probe's index to `out`.
    pub(crate) fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity,
    {
        if let Some(index) = table.indexes().get(self.get().index()) {
            index.key_hashes(row, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_hash;

    #[test]
    fn equal_keys_hash_equal_and_near_keys_apart() {
        assert_eq!(
            key_hash(&"customer-42"),
            key_hash(&String::from("customer-42"))
        );
        let hashes: std::collections::HashSet<u64> = (0..10_000u32)
            .map(|i| key_hash(&format!("customer-{i}")))
            .collect();
        assert_eq!(hashes.len(), 10_000);
        let hashes: std::collections::HashSet<u64> = (0..10_000u64).map(|i| key_hash(&i)).collect();
        assert_eq!(hashes.len(), 10_000);
    }
}
