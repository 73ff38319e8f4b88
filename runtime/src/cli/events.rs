//! `events`: the log, one line per event, read through the store seam (the
//! same code for a directory and a database), optionally followed live.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;

use super::decode::Decoders;
use super::source::{Rt, Source};
use super::time::rfc3339;
use super::{CliError, Io, Outcome, out};
use crate::Seq;
use crate::inspect::{EventFilter, hex, summary};
use crate::store::{EventStore, RecordedEvent, StoreError, StoreTail};

/// Events read (or tailed) at a time.
const PAGE: usize = 1024;

/// `events`' options.
pub(crate) struct Filter {
    pub(crate) from: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) name: Option<String>,
    pub(crate) stream: Option<String>,
    pub(crate) follow: bool,
}

pub(crate) fn run(
    source: &Source,
    filter: &Filter,
    decoders: &Decoders,
    json: bool,
    io: &mut Io<'_>,
    rt: &Rt,
) -> Result<Outcome, CliError> {
    let store = source.store();
    if let Some(name) = &filter.name {
        check_type(source, &store, name, decoders, rt)?;
    }
    let admit = EventFilter {
        from: filter.from,
        to: filter.to,
        name: filter.name.clone(),
        stream: filter.stream.clone(),
    };
    let to = filter.to.unwrap_or(Seq::MAX);
    let mut from = filter.from.unwrap_or(1).max(1);
    let mut tail: Option<Box<dyn StoreTail>> = filter.follow.then(|| store.tail(from));
    while from <= to {
        let page = match tail.take() {
            Some(mut live) => {
                let (live, page) = rt.run(async move {
                    let page = live.next_batch(PAGE).await;
                    (live, page)
                })?;
                tail = Some(live);
                page
            }
            None => {
                let store = Arc::clone(&store);
                rt.run(async move { store.read(from, PAGE).await })?
            }
        };
        let page = match page {
            Ok(page) => page,
            Err(StoreError::Corrupt { what, reason }) => {
                let _ = writeln!(
                    io.err,
                    "foldkit: error: corrupt log: {what}: {reason} (events after it are not shown)"
                );
                return Ok(Outcome::Failed);
            }
            Err(StoreError::Closed) => break,
            Err(other) => return Err(other.into()),
        };
        let Some(last) = page.last().map(|e| e.position) else {
            break; // the end (a tail never returns an empty batch)
        };
        for event in page.iter().filter(|e| admit.matches(e)) {
            print(event, decoders, json, io)?;
        }
        io.out.flush().map_err(CliError::Output)?;
        from = last + 1;
    }
    Ok(Outcome::Ok)
}

/// An unknown `--type` is an error: neither registered nor in the log.
fn check_type(
    source: &Source,
    store: &Arc<dyn EventStore>,
    name: &str,
    decoders: &Decoders,
    rt: &Rt,
) -> Result<(), CliError> {
    if decoders.contains(name) {
        return Ok(());
    }
    let store = Arc::clone(store);
    let seen = match rt.run(async move { summary(&*store).await })? {
        Ok(summary) => summary.event_types,
        // The log is damaged: the listing says where; do not hide it here.
        Err(StoreError::Corrupt { .. }) => return Ok(()),
        Err(other) => return Err(other.into()),
    };
    if seen.contains_key(name) {
        return Ok(());
    }
    let mut known: BTreeSet<String> = seen.into_keys().collect();
    known.extend(decoders.names().map(str::to_owned));
    let known = if known.is_empty() {
        " (it holds no events)".to_owned()
    } else {
        format!(
            " (known: {})",
            known.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    Err(CliError::UnknownType {
        name: name.to_owned(),
        where_: source.label(),
        known,
    })
}

fn print(
    event: &RecordedEvent,
    decoders: &Decoders,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let time = rfc3339(event.timestamp);
    let decoded = decoders.decode(&event.name, event.schema_version, &event.payload);
    if json {
        let mut value = json!({
            "position": event.position,
            "time": time,
            "timestamp_ms": event.timestamp,
            "type": &*event.name,
            "version": event.schema_version,
            "stream": event.stream.as_ref().map(|s| &*s.id),
            "stream_version": event.stream.as_ref().map(|s| s.version),
            "size": event.payload.len(),
        });
        if let Some(context) = &event.context {
            value["correlation_id"] = json!(context.correlation_id);
            value["causation"] = json!(context.causation);
            value["actor"] = json!(context.actor);
            value["metadata"] = json!(context.metadata);
        }
        match decoded {
            Some(Ok(data)) => value["data"] = data,
            Some(Err(error)) => {
                value["decode_error"] = error.into();
                value["payload"] = hex(&event.payload).into();
            }
            None => value["payload"] = hex(&event.payload).into(),
        }
        return out!(io, "{value}");
    }
    let shown = match decoded {
        Some(Ok(data)) => data.to_string(),
        Some(Err(error)) => format!("<cannot decode: {error}> {}", hex(&event.payload)),
        None => hex(&event.payload),
    };
    let stream = event
        .stream
        .as_ref()
        .map(|s| format!("{}#{}", s.id, s.version));
    out!(
        io,
        "{}  {time}  {}  v{}  {}  {}  {shown}",
        event.position,
        event.name,
        event.schema_version,
        stream.as_deref().unwrap_or("-"),
        event.payload.len()
    )
}
