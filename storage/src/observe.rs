//! What the log tells an operator: `tracing` events and `metrics` (the facade
//! only: the application installs an exporter, or nothing is recorded).
//!
//! Levels keep `info` quiet in steady state: an open is `info` (once), a cut
//! torn tail or a slow fsync `warn`, a poisoned log `error`; nothing is logged
//! per append. The metric names are listed in the foldkit crate's docs
//! (`foldkit::observability`).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::StorageError;
use crate::recovery::RecoveryReport;

/// An fsync slower than this is logged at `warn`.
pub const SLOW_FSYNC: Duration = Duration::from_millis(200);

/// Records handed to the OS by one write of the log's buffer.
pub(crate) fn flushed(records: u64, bytes: usize) {
    metrics::counter!("foldkit_log_records_written_total").increment(records);
    metrics::counter!("foldkit_log_bytes_written_total").increment(bytes as u64);
}

/// One fsync, begun at `began`.
pub(crate) fn fsynced(path: &Path, began: Instant) {
    let elapsed = began.elapsed();
    metrics::histogram!("foldkit_fsync_seconds").record(elapsed.as_secs_f64());
    if elapsed >= SLOW_FSYNC {
        tracing::warn!(
            segment = %path.display(),
            elapsed_ms = elapsed.as_millis() as u64,
            threshold_ms = SLOW_FSYNC.as_millis() as u64,
            "foldkit-storage: slow fsync"
        );
    }
}

/// The log refuses writes from now on.
pub(crate) fn poisoned(error: &StorageError) {
    metrics::counter!("foldkit_log_poisoned_total").increment(1);
    tracing::error!(
        error = %crate::observe::Chain(error),
        "foldkit-storage: the log is poisoned: every append fails until it is reopened"
    );
}

/// The log was opened: what recovery found, and how long it took.
pub(crate) fn opened(dir: &Path, report: &RecoveryReport, began: Instant) {
    let elapsed_ms = began.elapsed().as_millis() as u64;
    if report.repaired() {
        tracing::warn!(
            dir = %dir.display(),
            records = report.records,
            segments = report.segments,
            truncated_bytes = report.truncated_bytes,
            truncated_records = report.truncated_records,
            truncated_segment = ?report.truncated_segment,
            removed_segments = report.removed_segments,
            elapsed_ms,
            "foldkit-storage: recovered the log: cut a torn tail"
        );
    } else {
        tracing::debug!(
            dir = %dir.display(),
            records = report.records,
            segments = report.segments,
            elapsed_ms,
            "foldkit-storage: log opened"
        );
    }
}

/// An error and its sources on one line.
pub(crate) struct Chain<'a>(pub(crate) &'a dyn std::error::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
