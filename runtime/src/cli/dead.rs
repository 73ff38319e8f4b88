//! `dead-letters`: the parked reactions of every process manager, read from
//! the managers' snapshots through the store seam, each with the event that
//! caused it.

use serde_json::json;

use super::decode::Decoders;
use super::source::{Rt, Source};
use super::time::rfc3339;
use super::{CliError, Io, Outcome, out};
use crate::inspect::{dead_letters, event_at, hex};
use crate::process::DeadLetter;
use crate::process::reaction::Kind;
use crate::store::RecordedEvent;

pub(crate) fn run(
    source: &Source,
    decoders: &Decoders,
    json: bool,
    io: &mut Io<'_>,
    rt: &Rt,
) -> Result<Outcome, CliError> {
    let store = source.store();
    let managers = {
        let store = store.clone();
        rt.run(async move { dead_letters(&*store).await })??
    };
    let mut outcome = Outcome::Ok;
    let mut shown = 0usize;
    for manager in &managers {
        for (position, error) in &manager.skipped {
            let _ = writeln!(
                io.err,
                "foldkit: warning: process manager `{}`: the snapshot at {position} is unusable ({})",
                manager.process_manager,
                error.why()
            );
        }
        let letters = match &manager.letters {
            Ok(letters) => letters,
            Err(error) => {
                let _ = writeln!(
                    io.err,
                    "foldkit: error: the dead letters of process manager `{}` cannot be read (snapshot at {}): {}",
                    manager.process_manager,
                    manager.checkpoint,
                    error.why()
                );
                outcome = Outcome::Failed;
                continue;
            }
        };
        for letter in letters {
            let cause = {
                let store = store.clone();
                let at = letter.id.causation;
                rt.run(async move { event_at(&*store, at).await })?
            };
            // A cause that cannot be read is shown as unknown, not a failure:
            // the letter itself was read.
            let cause = cause.ok().flatten();
            if json {
                out!(io, "{}", letter_json(letter, cause.as_ref(), decoders))?;
            } else {
                out!(io, "{}", letter_line(letter, cause.as_ref(), decoders))?;
            }
            shown += 1;
        }
    }
    if shown == 0 && !json && matches!(outcome, Outcome::Ok) {
        out!(
            io,
            "no dead letters ({} process manager(s) in {})",
            managers.len(),
            source.label()
        )?;
    }
    Ok(outcome)
}

/// `<type> <stream>#<version>` of the causing event, or why it is not shown.
fn cause_text(position: u64, cause: Option<&RecordedEvent>) -> String {
    match cause {
        Some(event) => format!(
            "event {position} {} {}",
            event.name,
            event
                .stream
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| format!("{}#{}", s.id, s.version))
        ),
        None => format!("event {position} (not in the log)"),
    }
}

/// The reaction, with its command or event as JSON when registered.
fn reaction_text(letter: &DeadLetter, decoders: &Decoders) -> String {
    let described = letter.reaction.describe();
    let decoded = match &letter.reaction.kind {
        Kind::Command {
            aggregate, command, ..
        } => decoders.decode_command(aggregate, command),
        Kind::Append {
            name,
            version,
            payload,
            ..
        } => decoders.decode(name, *version, payload),
        Kind::Invalid { reason, .. } => return format!("{described} ({reason})"),
    };
    match decoded {
        Some(Ok(value)) => format!("{described} {value}"),
        _ => described,
    }
}

fn letter_line(letter: &DeadLetter, cause: Option<&RecordedEvent>, decoders: &Decoders) -> String {
    format!(
        "{}  {}  {}  {}  attempts {}  parked {}  error: {}",
        letter.id.process_manager,
        letter.id,
        cause_text(letter.id.causation, cause),
        reaction_text(letter, decoders),
        letter.attempts,
        rfc3339(letter.parked_at),
        letter.error
    )
}

fn letter_json(
    letter: &DeadLetter,
    cause: Option<&RecordedEvent>,
    decoders: &Decoders,
) -> serde_json::Value {
    let reaction = match &letter.reaction.kind {
        Kind::Command {
            aggregate,
            id,
            command,
        } => {
            let mut value = json!({
                "kind": "command", "aggregate": aggregate, "id": id, "payload": hex(command),
            });
            match decoders.decode_command(aggregate, command) {
                Some(Ok(data)) => value["command"] = data,
                Some(Err(error)) => value["decode_error"] = error.into(),
                None => {}
            }
            value
        }
        Kind::Append {
            stream,
            name,
            version,
            payload,
        } => {
            let mut value = json!({
                "kind": "append", "type": name, "version": version, "stream": stream,
                "payload": hex(payload),
            });
            match decoders.decode(name, *version, payload) {
                Some(Ok(data)) => value["data"] = data,
                Some(Err(error)) => value["decode_error"] = error.into(),
                None => {}
            }
            value
        }
        Kind::Invalid { what, reason } => json!({
            "kind": "invalid", "what": what, "reason": reason,
        }),
    };
    json!({
        "process_manager": letter.id.process_manager,
        "id": letter.id.to_string(),
        "causation": letter.id.causation,
        "index": letter.id.index,
        "event": cause.map(|e| json!({
            "position": e.position,
            "type": &*e.name,
            "version": e.schema_version,
            "stream": e.stream.as_ref().map(|s| &*s.id),
            "stream_version": e.stream.as_ref().map(|s| s.version),
            "time": rfc3339(e.timestamp),
        })),
        "reaction": reaction,
        "describe": letter.reaction.describe(),
        "correlation_id": letter.correlation_id,
        "error": letter.error,
        "attempts": letter.attempts,
        "parked_at": rfc3339(letter.parked_at),
        "parked_at_ms": letter.parked_at,
    })
}
