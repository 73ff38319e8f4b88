//! A counting global allocator, shared by the heap measurements (the `restart` bench,
//! the `table_memory` and `stream_index_memory` tests): [`live`] is the bytes requested
//! and not yet freed. Included with `#[path]`; installing it is the including crate's
//! whole global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Forwards to `System`, counting live bytes.
pub struct Counting;

/// The live bytes.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether the allocator counts (see [`stop_counting`]).
static COUNTING: AtomicBool = AtomicBool::new(true);

/// Stops counting for the rest of the process, so that timings in it do not include
/// the counter: every thread's allocations bump one shared atomic, which made a 1M-row
/// restart (two decode threads allocating strings) 1.5–2x slower. [`live`] is
/// meaningless after.
#[allow(dead_code)] // not every includer times anything
pub fn stop_counting() {
    COUNTING.store(false, Ordering::SeqCst);
}

/// Adds `up` and subtracts `down` from the live bytes, while counting.
#[inline]
fn count(up: usize, down: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(up, Ordering::Relaxed);
        LIVE.fetch_sub(down, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to `System` unchanged; only counts sizes on the side.
// (A global allocator cannot be written without `unsafe`.)
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size, layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
/// The allocator of the including crate.
static ALLOC: Counting = Counting;

/// The bytes allocated and not freed now (sizes as requested).
pub fn live() -> usize {
    LIVE.load(Ordering::SeqCst)
}
