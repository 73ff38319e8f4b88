//! The events of a directory, read from the log files with their envelopes.

use std::path::Path;

use foldkit_storage::inspect::{self, ScanOptions, ScanReport, ScannedRecord};

use super::{Directory, InspectError};
use crate::Seq;
use crate::store::RecordedEvent;
use crate::store::file::{Envelope, EnvelopeError};

/// One stored event as the log holds it (borrowed from the scan's buffer).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InspectedEvent<'a> {
    /// Its position in the log.
    pub position: Seq,
    /// Its timestamp (ms since the UNIX epoch).
    pub timestamp: u64,
    /// The segment file holding it, and the offset of its frame.
    pub segment: &'a Path,
    /// The byte offset of its frame in `segment`.
    pub offset: u64,
    /// The size of the record's payload (envelope and body).
    pub size: usize,
    /// The whole record payload (envelope and body).
    pub payload: &'a [u8],
    /// The envelope, or why it does not decode.
    pub envelope: Result<Envelope<'a>, EnvelopeError>,
}

impl<'a> InspectedEvent<'a> {
    fn of(record: &ScannedRecord<'a>) -> Self {
        InspectedEvent {
            position: record.seq,
            timestamp: record.timestamp,
            segment: record.segment,
            offset: record.offset,
            size: record.payload.len(),
            payload: record.payload,
            envelope: Envelope::decode(record.payload),
        }
    }
}

/// Which events [`Directory::events`] passes on.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EventFilter {
    /// The first position (default: the log's first).
    pub from: Option<Seq>,
    /// The last position (default: the log's last).
    pub to: Option<Seq>,
    /// Only events of this type name.
    pub name: Option<String>,
    /// Only events of this stream.
    pub stream: Option<String>,
}

impl EventFilter {
    /// Whether `event` passes (records whose envelope does not decode pass
    /// only an unfiltered name and stream, so damage is never hidden).
    pub fn admits(&self, event: &InspectedEvent<'_>) -> bool {
        if self.from.is_some_and(|from| event.position < from)
            || self.to.is_some_and(|to| event.position > to)
        {
            return false;
        }
        match &event.envelope {
            Ok(envelope) => {
                self.name.as_deref().is_none_or(|n| n == envelope.name)
                    && self
                        .stream
                        .as_deref()
                        .is_none_or(|s| envelope.stream.is_some_and(|(id, _)| id == s))
            }
            Err(_) => self.name.is_none() && self.stream.is_none(),
        }
    }
}

impl EventFilter {
    /// Whether the stored `event` passes.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        !(self.from.is_some_and(|from| event.position < from)
            || self.to.is_some_and(|to| event.position > to)
            || self.name.as_deref().is_some_and(|n| n != &*event.name)
            || self
                .stream
                .as_deref()
                .is_some_and(|s| event.stream.as_ref().is_none_or(|st| &*st.id != s)))
    }
}

impl Directory {
    /// Scans the log from `filter.from`, calling `visit` with every event the
    /// filter admits, in order, until `filter.to` or until `visit` returns
    /// `false`. Returns what the scan found (segments, torn tail, damage).
    pub fn events(
        &self,
        filter: &EventFilter,
        mut visit: impl FnMut(&InspectedEvent<'_>) -> bool,
    ) -> Result<ScanReport, InspectError> {
        if !self.has_log() {
            return Ok(ScanReport::default());
        }
        let options = ScanOptions::default().from(filter.from.unwrap_or(1));
        let to = filter.to.unwrap_or(Seq::MAX);
        let report = inspect::scan(self.log_dir(), &options, |record| {
            if record.seq > to {
                return false;
            }
            let event = InspectedEvent::of(record);
            if filter.admits(&event) {
                return visit(&event);
            }
            true
        })?;
        Ok(report)
    }

    /// Scans every record from `from` (the verifier's and the statistics' pass).
    pub(crate) fn scan_all(
        &self,
        from: Seq,
        mut visit: impl FnMut(&InspectedEvent<'_>),
    ) -> Result<ScanReport, InspectError> {
        if !self.has_log() {
            return Ok(ScanReport::default());
        }
        let options = ScanOptions::default().from(from);
        Ok(inspect::scan(self.log_dir(), &options, |record| {
            visit(&InspectedEvent::of(record));
            true
        })?)
    }
}
