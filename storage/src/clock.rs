//! The clock records are stamped with.
//!
//! A record's timestamp is wall-clock milliseconds since the UNIX epoch, read
//! from a *coarse* clock: on Linux `CLOCK_REALTIME_COARSE`, which the vDSO
//! serves from the last kernel tick without reading the hardware counter (a few
//! ns instead of ~25, a measurable share of a small append), at the resolution
//! of the tick (1-4 ms depending on the kernel's `HZ`). Elsewhere it is
//! `SystemTime::now()`. (rustix is built with its libc backend: its own
//! vDSO lookup crashes under valgrind, rustix issue #1559, and callgrind is how
//! this path is profiled.) The log never hands out a timestamp lower than one it
//! handed out before (see `State::timestamp`), so timestamps follow seq order
//! even when the wall clock steps back.

/// Milliseconds since the UNIX epoch, from the coarse clock (0 before the epoch).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
pub(crate) fn now_ms() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let millis = u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000_000;
    secs.saturating_mul(1000).saturating_add(millis)
}

/// Milliseconds since the UNIX epoch (0 before the epoch).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_coarse_clock_agrees_with_the_system_clock() {
        let precise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let coarse = super::now_ms();
        assert!(coarse.abs_diff(precise) < 1000, "{coarse} vs {precise}");
    }
}
