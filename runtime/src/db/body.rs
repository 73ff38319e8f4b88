//! The per-thread buffer the events of one append are encoded into.
//!
//! `Db::append` and `Db::append_batch` encode the events, put them in the log
//! and fold them without an `.await` in between, so the encoded bodies only
//! have to live for that synchronous stretch: one buffer per thread, reused,
//! replaces an allocation (and its growth) per event. Bodies that must outlive
//! it (the log is rolling its segment and the append has to wait) are copied
//! out.

use std::cell::RefCell;

/// Capacity above which a buffer is freed after use, so one large batch does
/// not stay allocated on the thread.
const KEEP_BYTES: usize = 64 * 1024;

/// The encoded bodies of one batch, back to back.
#[derive(Debug, Default)]
pub(crate) struct Bodies {
    /// Every body, in order, back to back.
    pub(crate) bytes: Vec<u8>,
    /// Where each body ends in `bytes` (so body `i` is `ends[i - 1]..ends[i]`).
    pub(crate) ends: Vec<usize>,
    /// The body being encoded.
    one: Vec<u8>,
}

impl Bodies {
    /// Encodes `event` as the next body. Through a buffer of its own, so an
    /// `encode_into` that does more than append to the buffer it is given
    /// cannot touch the bodies before it.
    pub(crate) fn push<E: crate::Event>(&mut self, event: &E) -> Result<(), crate::CodecError> {
        self.one.clear();
        event.encode_into(&mut self.one)?;
        self.bytes.extend_from_slice(&self.one);
        self.ends.push(self.bytes.len());
        Ok(())
    }
}

thread_local! {
    static BODIES: RefCell<Bodies> = RefCell::new(Bodies::default());
}

/// Runs `f` with this thread's buffer, empty. Re-entrant: a nested call (or a
/// call while the thread is being torn down) gets a fresh buffer instead.
pub(crate) fn with_bodies<R>(f: impl FnOnce(&mut Bodies) -> R) -> R {
    let mut f = Some(f);
    let shared = BODIES.try_with(|cell| {
        let mut bodies = cell.try_borrow_mut().ok()?;
        bodies.bytes.clear();
        bodies.ends.clear();
        let f = f.take()?;
        let out = f(&mut bodies);
        if bodies.bytes.capacity() > KEEP_BYTES {
            bodies.bytes = Vec::new();
        }
        if bodies.ends.capacity() > KEEP_BYTES / 8 {
            bodies.ends = Vec::new();
        }
        if bodies.one.capacity() > KEEP_BYTES {
            bodies.one = Vec::new();
        }
        Some(out)
    });
    match (shared, f) {
        (Ok(Some(out)), _) => out,
        (_, Some(f)) => f(&mut Bodies::default()),
        (_, None) => unreachable!("`f` is taken only when it runs, and then returns"),
    }
}

#[cfg(test)]
mod tests {
    use super::{KEEP_BYTES, with_bodies};

    #[test]
    fn the_buffer_is_empty_on_entry_and_a_nested_call_gets_its_own() {
        with_bodies(|outer| {
            outer.bytes.extend_from_slice(b"outer");
            outer.ends.push(5);
            with_bodies(|inner| {
                assert!(inner.bytes.is_empty() && inner.ends.is_empty());
                inner.bytes.extend_from_slice(b"inner");
            });
            assert_eq!(outer.bytes, b"outer");
            assert_eq!(outer.ends, [5]);
        });
        with_bodies(|again| {
            assert!(
                again.bytes.is_empty() && again.ends.is_empty(),
                "cleared on entry"
            )
        });
    }

    #[test]
    fn a_large_buffer_is_not_kept() {
        with_bodies(|b| b.bytes.resize(KEEP_BYTES + 1, 0));
        with_bodies(|b| assert!(b.bytes.capacity() <= KEEP_BYTES));
    }
}
