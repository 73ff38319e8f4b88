//! The read-only overviews: `info` and `snapshots`, through the store seam
//! (plus, for a directory, what only its files say).

use serde_json::json;

use super::source::{Rt, Source};
use super::{CliError, Io, Outcome, out};
use crate::inspect::{
    Checkpoint, ExamineError, ManagerDeadLetters, Severity, Snapshot, SnapshotContents,
    VerifyReport, checkpoints, dead_letters_in, hex, snapshots as list_snapshots, verify_store,
};
use crate::store::EventStore;

/// Snapshots, checkpoints and dead letters, read through the seam.
pub(crate) struct Listing {
    pub(crate) snapshots: Vec<Snapshot>,
    pub(crate) checkpoints: Vec<Checkpoint>,
    pub(crate) dead_letters: Vec<ManagerDeadLetters>,
}

/// Lists what `source` stores besides events (with the files, for a directory).
pub(crate) fn listing(source: &Source, rt: &Rt) -> Result<Listing, CliError> {
    let store = source.store();
    let (snapshots, checkpoints) = rt.run(async move {
        let store: &dyn EventStore = &*store;
        (list_snapshots(store).await, checkpoints(store).await)
    })?;
    let snapshots = snapshots?;
    let mut listing = Listing {
        dead_letters: dead_letters_in(&snapshots),
        snapshots,
        checkpoints: checkpoints?,
    };
    if let Some(dir) = source.dir() {
        for snapshot in &mut listing.snapshots {
            snapshot.path = dir.snapshot_file(&snapshot.state, snapshot.position);
        }
        for checkpoint in &mut listing.checkpoints {
            checkpoint.path = dir.checkpoint_file(&checkpoint.name);
        }
    }
    Ok(listing)
}

/// The checks `info` summarizes: the files' for a directory, else the seam's.
fn report(source: &Source, rt: &Rt) -> Result<VerifyReport, CliError> {
    match source.dir() {
        Some(dir) => Ok(dir.verify(|_, _| {})?),
        None => {
            let store = source.store();
            Ok(rt.run(async move { verify_store(&*store).await })??)
        }
    }
}

pub(crate) fn info(
    source: &Source,
    json: bool,
    io: &mut Io<'_>,
    rt: &Rt,
) -> Result<Outcome, CliError> {
    let report = report(source, rt)?;
    let listing = listing(source, rt)?;
    let last = report.last_position.unwrap_or(0);
    let errors = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let dead_count: usize = (listing.dead_letters.iter())
        .filter_map(|m| m.letters.as_ref().ok())
        .map(Vec::len)
        .sum();
    if json {
        let mut value = json!({
            "store": source.store().describe(),
            "first_position": report.first_position,
            "last_position": report.last_position,
            "events": report.records,
            "event_types": report.event_types,
            "streams": report.streams,
            "chain_head": report.chain.map(|(_, head)| hex(&head)),
            "snapshots": listing.snapshots.iter().map(snapshot_json).collect::<Vec<_>>(),
            "subscriptions": listing.checkpoints.iter().map(|c| json!({
                "name": c.name,
                "position": c.position.as_ref().ok(),
                "lag": c.position.as_ref().ok().map(|p| last.saturating_sub(*p)),
                "error": c.position.as_ref().err().map(ExamineError::why),
            })).collect::<Vec<_>>(),
            "process_managers": listing.dead_letters.iter().map(|m| json!({
                "name": m.process_manager,
                "checkpoint": m.checkpoint,
                "lag": last.saturating_sub(m.checkpoint),
                "dead_letters": m.letters.as_ref().ok().map(Vec::len),
                "error": m.letters.as_ref().err().map(ExamineError::why),
            })).collect::<Vec<_>>(),
            "dead_letters": dead_count,
            "errors": errors,
        });
        if let Some(dir) = source.dir() {
            value["directory"] = dir.path().display().to_string().into();
            value["format"] = dir.format().into();
            value["segments"] = report.segments.into();
            value["bytes"] = report.bytes.into();
            value["torn_tail"] = json!(report.torn_tail.as_ref().map(|t| json!({
                "segment": t.segment.display().to_string(), "offset": t.offset, "bytes": t.bytes,
            })));
        }
        out!(io, "{value}")?;
        return Ok(Outcome::Ok);
    }
    match source.dir() {
        Some(dir) => {
            out!(io, "directory      {}", dir.path().display())?;
            out!(io, "format         {}", dir.format())?;
        }
        None => out!(io, "store          {}", source.store().describe())?,
    }
    match (report.first_position, report.last_position) {
        (Some(first), Some(last)) => out!(
            io,
            "positions      {first} ..= {last} ({} events)",
            report.records
        )?,
        _ => out!(io, "positions      none (no events)")?,
    }
    if source.dir().is_some() {
        out!(
            io,
            "segments       {} ({} bytes)",
            report.segments,
            report.bytes
        )?;
    }
    if let Some(torn) = &report.torn_tail {
        out!(
            io,
            "torn tail      {} bytes at {} offset {} (an append in progress, or cut at the next open)",
            torn.bytes,
            torn.segment.display(),
            torn.offset
        )?;
    }
    match report.chain {
        Some((checked, head)) => out!(io, "hash chain     {checked} records, head {}", hex(&head))?,
        None => out!(io, "hash chain     none")?,
    }
    out!(io, "streams        {}", report.streams)?;
    out!(io, "event types    {}", report.event_types.len())?;
    for (name, count) in &report.event_types {
        out!(io, "  {name:<30} {count}")?;
    }
    out!(io, "snapshots      {}", listing.snapshots.len())?;
    for snapshot in &listing.snapshots {
        out!(io, "  {}", snapshot_line(snapshot))?;
    }
    out!(io, "subscriptions  {}", listing.checkpoints.len())?;
    for checkpoint in &listing.checkpoints {
        match &checkpoint.position {
            Ok(position) => out!(
                io,
                "  {:<30} at {position} (lag {})",
                checkpoint.name,
                last.saturating_sub(*position)
            )?,
            Err(error) => out!(io, "  {:<30} unreadable: {}", checkpoint.name, error.why())?,
        }
    }
    out!(
        io,
        "dead letters   {dead_count} in {} process manager(s)",
        listing.dead_letters.len()
    )?;
    for manager in &listing.dead_letters {
        let at = format!(
            "checkpoint at {} (lag {})",
            manager.checkpoint,
            last.saturating_sub(manager.checkpoint)
        );
        match &manager.letters {
            Ok(letters) => out!(
                io,
                "  {:<30} {} dead letter(s), {at}",
                manager.process_manager,
                letters.len()
            )?,
            Err(error) => out!(
                io,
                "  {:<30} unreadable ({at}): {}",
                manager.process_manager,
                error.why()
            )?,
        }
    }
    if errors > 0 {
        out!(
            io,
            "problems       {errors} error(s): run `foldkit verify {}`",
            source.argument()
        )?;
    }
    Ok(Outcome::Ok)
}

fn snapshot_line(snapshot: &Snapshot) -> String {
    let lead = format!(
        "{:<24} at {:<10} {:>10} bytes",
        snapshot.state, snapshot.position, snapshot.size
    );
    match &snapshot.contents {
        Ok(SnapshotContents::State(header)) => format!(
            "{lead}  version {}  fingerprint {:#018x}",
            header.version, header.fingerprint
        ),
        Ok(SnapshotContents::ProcessManager { dead_letters, .. }) => format!(
            "{lead}  process manager, {} dead letter(s)",
            dead_letters.len()
        ),
        Err(error) => format!("{lead}  UNUSABLE: {}", error.why()),
    }
}

fn snapshot_json(snapshot: &Snapshot) -> serde_json::Value {
    let mut value = json!({
        "state": snapshot.state,
        "position": snapshot.position,
        "size": snapshot.size,
        "path": snapshot.path.as_ref().map(|p| p.display().to_string()),
    });
    match &snapshot.contents {
        Ok(SnapshotContents::State(header)) => {
            value["kind"] = "state".into();
            value["version"] = header.version.into();
            value["fingerprint"] = format!("{:#018x}", header.fingerprint).into();
        }
        Ok(SnapshotContents::ProcessManager {
            dead_letters,
            state_bytes,
            ..
        }) => {
            value["kind"] = "process_manager".into();
            value["dead_letters"] = dead_letters.len().into();
            value["state_bytes"] = (*state_bytes).into();
        }
        Err(error) => value["error"] = error.why().into(),
    }
    value
}

pub(crate) fn snapshots(
    source: &Source,
    json: bool,
    io: &mut Io<'_>,
    rt: &Rt,
) -> Result<Outcome, CliError> {
    let listing = listing(source, rt)?;
    for snapshot in &listing.snapshots {
        if json {
            out!(io, "{}", snapshot_json(snapshot))?;
        } else {
            out!(io, "{}", snapshot_line(snapshot))?;
        }
    }
    if listing.snapshots.iter().any(|s| s.contents.is_err()) {
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Ok)
}
