//! The read-only views: `info`, `events`, `snapshots`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::decode::Decoders;
use super::time::rfc3339;
use super::{CliError, Io, Outcome, out};
use crate::inspect::{Directory, EventFilter, InspectedEvent, Severity, Snapshot, hex};

/// `events`' options.
pub(crate) struct Filter {
    pub(crate) from: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) name: Option<String>,
    pub(crate) stream: Option<String>,
    pub(crate) follow: bool,
}

/// How often `events --follow` looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub(crate) fn info(dir: &Path, json: bool, io: &mut Io<'_>) -> Result<Outcome, CliError> {
    let directory = Directory::open(dir)?;
    let report = directory.verify(|_, _| {})?;
    let snapshots = directory.snapshots()?;
    let checkpoints = directory.checkpoints()?;
    let last = report.last_position.unwrap_or(0);
    let errors = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    if json {
        let value = json!({
            "directory": dir.display().to_string(),
            "format": directory.format(),
            "first_position": report.first_position,
            "last_position": report.last_position,
            "events": report.records,
            "segments": report.segments,
            "bytes": report.bytes,
            "event_types": report.event_types,
            "streams": report.streams,
            "chain_head": report.chain.map(|(_, head)| hex(&head)),
            "torn_tail": report.torn_tail.as_ref().map(|t| json!({
                "segment": t.segment.display().to_string(), "offset": t.offset, "bytes": t.bytes,
            })),
            "snapshots": snapshots.iter().map(snapshot_json).collect::<Vec<_>>(),
            "subscriptions": checkpoints.iter().map(|c| json!({
                "name": c.name,
                "position": c.position.as_ref().ok(),
                "lag": c.position.as_ref().ok().map(|p| last.saturating_sub(*p)),
                "error": c.position.as_ref().err(),
            })).collect::<Vec<_>>(),
            "errors": errors,
        });
        out!(io, "{value}")?;
        return Ok(Outcome::Ok);
    }
    out!(io, "directory      {}", dir.display())?;
    out!(io, "format         {}", directory.format())?;
    match (report.first_position, report.last_position) {
        (Some(first), Some(last)) => out!(
            io,
            "positions      {first} ..= {last} ({} events)",
            report.records
        )?,
        _ => out!(io, "positions      none (no events)")?,
    }
    out!(
        io,
        "segments       {} ({} bytes)",
        report.segments,
        report.bytes
    )?;
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
    out!(io, "snapshots      {}", snapshots.len())?;
    for snapshot in &snapshots {
        out!(io, "  {}", snapshot_line(snapshot))?;
    }
    out!(io, "subscriptions  {}", checkpoints.len())?;
    for checkpoint in &checkpoints {
        match &checkpoint.position {
            Ok(position) => out!(
                io,
                "  {:<30} at {position} (lag {})",
                checkpoint.name,
                last.saturating_sub(*position)
            )?,
            Err(reason) => out!(io, "  {:<30} unreadable: {reason}", checkpoint.name)?,
        }
    }
    if errors > 0 {
        out!(
            io,
            "problems       {errors} error(s): run `foldkit verify {}`",
            dir.display()
        )?;
    }
    Ok(Outcome::Ok)
}

fn snapshot_line(snapshot: &Snapshot) -> String {
    match &snapshot.header {
        Ok(header) => format!(
            "{:<24} at {:<10} {:>10} bytes  version {}  fingerprint {:#018x}",
            snapshot.state, snapshot.position, snapshot.size, header.version, header.fingerprint
        ),
        Err(reason) => format!(
            "{:<24} at {:<10} {:>10} bytes  UNUSABLE: {reason}",
            snapshot.state, snapshot.position, snapshot.size
        ),
    }
}

fn snapshot_json(snapshot: &Snapshot) -> serde_json::Value {
    json!({
        "state": snapshot.state,
        "position": snapshot.position,
        "size": snapshot.size,
        "path": snapshot.path.display().to_string(),
        "version": snapshot.header.as_ref().ok().map(|h| h.version),
        "fingerprint": snapshot.header.as_ref().ok().map(|h| format!("{:#018x}", h.fingerprint)),
        "error": snapshot.header.as_ref().err(),
    })
}

pub(crate) fn snapshots(dir: &Path, json: bool, io: &mut Io<'_>) -> Result<Outcome, CliError> {
    let directory = Directory::open(dir)?;
    let snapshots = directory.snapshots()?;
    for snapshot in &snapshots {
        if json {
            out!(io, "{}", snapshot_json(snapshot))?;
        } else {
            out!(io, "{}", snapshot_line(snapshot))?;
        }
    }
    if snapshots.iter().any(|s| s.header.is_err()) {
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Ok)
}

pub(crate) fn events(
    dir: &Path,
    filter: &Filter,
    decoders: &Decoders,
    json: bool,
    io: &mut Io<'_>,
) -> Result<Outcome, CliError> {
    let directory = Directory::open(dir)?;
    if let Some(name) = &filter.name {
        check_type(&directory, name, decoders)?;
    }
    let mut scan_filter = EventFilter {
        from: filter.from,
        to: filter.to,
        name: filter.name.clone(),
        stream: filter.stream.clone(),
    };
    loop {
        let mut written = Ok(());
        let report = directory.events(&scan_filter, |event| {
            written = print_event(event, decoders, json, io);
            written.is_ok()
        })?;
        written?;
        if let Some(damage) = &report.corruption {
            let _ = writeln!(
                io.err,
                "foldkit: error: corrupt log: segment `{}` at byte offset {}: {} (events after it are not shown)",
                damage.segment.display(),
                damage.offset,
                damage.reason
            );
            return Ok(Outcome::Failed);
        }
        let next = report.next_seq();
        if !filter.follow || filter.to.is_some_and(|to| next > to) {
            return Ok(Outcome::Ok);
        }
        io.out.flush().map_err(CliError::Output)?;
        scan_filter.from = Some(next.max(filter.from.unwrap_or(1)));
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// An unknown `--type` is an error: neither registered nor in the log.
fn check_type(directory: &Directory, name: &str, decoders: &Decoders) -> Result<(), CliError> {
    if decoders.contains(name) {
        return Ok(());
    }
    let mut seen = BTreeSet::new();
    directory.scan_all(1, |event| {
        if let Ok(envelope) = &event.envelope
            && !seen.contains(envelope.name)
        {
            seen.insert(envelope.name.to_owned());
        }
    })?;
    if seen.contains(name) {
        return Ok(());
    }
    seen.extend(decoders.names().map(str::to_owned));
    let known = if seen.is_empty() {
        " (it holds no events)".to_owned()
    } else {
        format!(
            " (known: {})",
            seen.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(CliError::UnknownType {
        name: name.to_owned(),
        where_: format!("`{}`", directory.path().display()),
        known,
    })
}

fn print_event(
    event: &InspectedEvent<'_>,
    decoders: &Decoders,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let time = rfc3339(event.timestamp);
    let envelope = match &event.envelope {
        Ok(envelope) => envelope,
        Err(error) => {
            if json {
                let value = json!({
                    "position": event.position, "time": time, "size": event.size,
                    "error": error.to_string(), "payload": hex(event.payload),
                });
                return out!(io, "{value}");
            }
            return out!(
                io,
                "{}  {time}  <not an event: {error}>  {}  {}",
                event.position,
                event.size,
                hex(event.payload)
            );
        }
    };
    let decoded = decoders.decode(envelope.name, envelope.version, envelope.body);
    let stream = envelope.stream.map(|(id, v)| format!("{id}#{v}"));
    if json {
        let mut value = json!({
            "position": event.position,
            "time": time,
            "timestamp_ms": event.timestamp,
            "type": envelope.name,
            "version": envelope.version,
            "stream": envelope.stream.map(|(id, _)| id),
            "stream_version": envelope.stream.map(|(_, v)| v),
            "size": envelope.body.len(),
        });
        match decoded {
            Some(Ok(data)) => value["data"] = data,
            Some(Err(error)) => {
                value["decode_error"] = error.into();
                value["payload"] = hex(envelope.body).into();
            }
            None => value["payload"] = hex(envelope.body).into(),
        }
        return out!(io, "{value}");
    }
    let shown = match decoded {
        Some(Ok(data)) => data.to_string(),
        Some(Err(error)) => format!("<cannot decode: {error}> {}", hex(envelope.body)),
        None => hex(envelope.body),
    };
    out!(
        io,
        "{}  {time}  {}  v{}  {}  {}  {shown}",
        event.position,
        envelope.name,
        envelope.version,
        stream.as_deref().unwrap_or("-"),
        envelope.body.len()
    )
}
