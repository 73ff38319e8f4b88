//! `verify`: the checks of [`Directory::verify`](crate::inspect::Directory::verify)
//! (of [`verify_store`] for a store that is not a directory), a progress bar,
//! text or JSON.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::source::{Rt, Source};
use super::{CliError, Io, Outcome, out};
use crate::inspect::{Problem, Severity, VerifyReport, hex, verify_store};

/// Logs smaller than this verify without a progress bar (it would only flash).
const PROGRESS_FROM_BYTES: u64 = 64 << 20;

pub(crate) fn run(
    source: &Source,
    json: bool,
    quiet: bool,
    io: &mut Io<'_>,
    rt: &Rt,
) -> Result<Outcome, CliError> {
    let Some(directory) = source.dir() else {
        let store = source.store();
        let report = rt.run(async move { verify_store(&*store).await })??;
        print(&report, json, false, io)?;
        return Ok(if report.ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        });
    };
    let show_bar = io.tty && !quiet && !json;
    let mut bar: Option<ProgressBar> = None;
    let report = directory.verify(|done, total| {
        if !show_bar || total < PROGRESS_FROM_BYTES {
            return;
        }
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "verifying {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        });
        bar.set_position(done);
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print(&report, json, true, io)?;
    Ok(if report.ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// Prints a report as `verify` does (also after `repair`); `files`: of a
/// directory (segments, bytes, the stream index file), else of another store.
pub(crate) fn print(
    report: &VerifyReport,
    json: bool,
    files: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    if json {
        let value = json!({
            "ok": report.ok(),
            "events": report.records,
            "segments": report.segments,
            "bytes": report.bytes,
            "first_position": report.first_position,
            "last_position": report.last_position,
            "snapshots": report.snapshots,
            "index_checked": report.index_checked,
            "checkpoints": report.checkpoints,
            "chain": report.chain.map(|(checked, head)| json!({"records": checked, "head": hex(&head)})),
            "problems": report.problems.iter().map(|p| json!({
                "severity": match p.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "file": p.file.display().to_string(),
                "offset": p.offset,
                "reason": p.reason,
            })).collect::<Vec<_>>(),
        });
        return out!(io, "{value}");
    }
    if files {
        out!(
            io,
            "checked {} events in {} segment(s) ({} bytes), {} snapshot(s), {}, {} checkpoint(s)",
            report.records,
            report.segments,
            report.bytes,
            report.snapshots,
            if report.index_checked {
                "the stream index"
            } else {
                "no stream index"
            },
            report.checkpoints
        )?;
    } else {
        out!(
            io,
            "checked {} events, {} stream(s), {} snapshot(s), {} checkpoint(s)",
            report.records,
            report.streams,
            report.snapshots,
            report.checkpoints
        )?;
    }
    if let Some((checked, head)) = report.chain {
        out!(io, "hash chain: {checked} records, head {}", hex(&head))?;
    }
    for problem in &report.problems {
        out!(io, "{}", problem_line(problem))?;
    }
    let errors = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    if errors == 0 {
        out!(io, "OK")
    } else {
        out!(io, "FAILED: {errors} error(s)")
    }
}

fn problem_line(problem: &Problem) -> String {
    let label = match problem.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    match problem.offset {
        Some(offset) => format!(
            "{label}: `{}` at byte offset {offset}: {}",
            problem.file.display(),
            problem.reason
        ),
        None => format!("{label}: `{}`: {}", problem.file.display(), problem.reason),
    }
}
