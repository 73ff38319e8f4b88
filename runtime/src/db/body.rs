//! The per-thread buffer a single appended event is encoded into.
//!
//! `Db::append` encodes the event, puts it in the log and folds it without an
//! `.await` in between, so the encoded body only has to live for that
//! synchronous stretch: one buffer per thread, reused, replaces an allocation
//! (and its growth) per append. A body that must outlive it (the log is
//! rolling its segment and the append has to wait) is copied out.

use std::cell::RefCell;

/// Capacity above which the buffer is freed after use, so one large event
/// does not stay allocated on the thread.
const KEEP_BYTES: usize = 64 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer, empty. Re-entrant: a nested call (or a
/// call while the thread is being torn down) gets a fresh buffer instead.
pub(crate) fn with_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut f = Some(f);
    let shared = BUFFER.try_with(|cell| {
        let mut buf = cell.try_borrow_mut().ok()?;
        buf.clear();
        let out = (f.take().expect("called once"))(&mut buf);
        if buf.capacity() > KEEP_BYTES {
            *buf = Vec::new();
        }
        Some(out)
    });
    match (shared, f) {
        (Ok(Some(out)), _) => out,
        (_, Some(f)) => f(&mut Vec::new()),
        (_, None) => unreachable!("`f` ran but returned nothing"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_buffer;

    #[test]
    fn the_buffer_is_empty_on_entry_and_a_nested_call_gets_its_own() {
        with_buffer(|outer| {
            outer.extend_from_slice(b"outer");
            with_buffer(|inner| {
                assert!(inner.is_empty());
                inner.extend_from_slice(b"inner");
            });
            assert_eq!(outer, b"outer");
        });
        with_buffer(|again| assert!(again.is_empty(), "cleared on entry"));
    }

    #[test]
    fn a_large_buffer_is_not_kept() {
        with_buffer(|buf| buf.resize(super::KEEP_BYTES + 1, 0));
        with_buffer(|buf| assert!(buf.capacity() <= super::KEEP_BYTES));
    }
}
