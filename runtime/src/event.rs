//! Events: the versioned, self-describing facts the log stores.
//!
//! An event type has a stable [`Event::NAME`] (it names the log the events live in)
//! and a schema [`Event::VERSION`]. Every stored payload records the version it was
//! written with, so a payload written by an old binary is decoded with the old
//! schema and upcast, step by step, to the current one (`previous = OlderEnum` in
//! `#[event(..)]`, with `From<OlderEnum>`). Stored events are never rewritten.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A versioned event type. Derive it with `#[derive(Event)]`; implementing it by hand
/// is possible but the derive also checks the version chain at compile time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldkit event",
    label = "this type does not implement `foldkit::Event`",
    note = "add `#[derive(Event, Serialize, Deserialize)]` to the event enum"
)]
pub trait Event: Serialize + DeserializeOwned + Send + 'static {
    /// Stable name of the event type. Every version of one event type shares it,
    /// and it names the log the events are stored in.
    const NAME: &'static str;
    /// Schema version of this type (>= 1). Older versions are upcast to it.
    const VERSION: u32;

    /// The name of this event's variant, e.g. `"Placed"`.
    fn variant_name(&self) -> &'static str;

    /// Encodes the event with the current schema (postcard).
    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut bytes = Vec::new();
        self.encode_into(&mut bytes)?;
        Ok(bytes)
    }

    /// Appends the event, encoded with the current schema (postcard), to `buf`.
    ///
    /// The runtime encodes events with this method, into a buffer it reuses.
    /// Override `encode_into` (not only `encode`) to change the body format;
    /// `decode` must read what it writes.
    fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        *buf = postcard::to_extend(self, std::mem::take(buf)).map_err(|source| {
            CodecError::Encode {
                event: Self::NAME,
                version: Self::VERSION,
                source,
            }
        })?;
        Ok(())
    }

    /// Decodes a payload that was written with schema `version`, upcasting it to the
    /// current schema when it is older.
    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError>;
}

/// Why an event could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The payload was written by a newer schema than this binary knows.
    #[error(
        "event `{event}` was stored with schema version {found}, newer than this build's version {current}: \
         run a binary that knows version {found}"
    )]
    NewerVersion {
        /// The event type's stable name.
        event: &'static str,
        /// The version found in the stored record.
        found: u32,
        /// The newest version this build knows.
        current: u32,
    },
    /// The payload's version is older than the oldest schema in the `previous` chain.
    #[error(
        "event `{event}` was stored with schema version {found}, but the oldest schema this build knows \
         is version {oldest}: keep the old enum and name it with `#[event(previous = ..)]`"
    )]
    UnknownOldVersion {
        /// The event type's stable name.
        event: &'static str,
        /// The version found in the stored record.
        found: u32,
        /// The oldest version reachable through the `previous` chain.
        oldest: u32,
    },
    /// The payload's version falls between two schemas of the `previous` chain.
    #[error(
        "event `{event}` was stored with schema version {found}, but the chain goes from version {previous} \
         to {next}: declare the version-{found} enum and chain it with `#[event(previous = ..)]`"
    )]
    VersionGap {
        /// The event type's stable name.
        event: &'static str,
        /// The version found in the stored record.
        found: u32,
        /// The closest older version in the chain.
        previous: u32,
        /// The closest newer version in the chain.
        next: u32,
    },
    /// The bytes do not decode as the schema they claim to be.
    #[error("cannot decode event `{event}` (schema version {version})")]
    Decode {
        /// The event type's stable name.
        event: &'static str,
        /// The schema version the bytes were decoded as.
        version: u32,
        /// What postcard reported.
        source: postcard::Error,
    },
    /// The event could not be serialized.
    #[error("cannot encode event `{event}` (schema version {version})")]
    Encode {
        /// The event type's stable name.
        event: &'static str,
        /// The schema version being written.
        version: u32,
        /// What postcard reported.
        source: postcard::Error,
    },
}

/// Decodes `bytes` as exactly `E`'s current schema: the end of a `previous` chain.
#[doc(hidden)]
pub fn decode_oldest<E: Event>(version: u32, bytes: &[u8]) -> Result<E, CodecError> {
    if version > E::VERSION {
        return Err(CodecError::NewerVersion {
            event: E::NAME,
            found: version,
            current: E::VERSION,
        });
    }
    if version < E::VERSION {
        return Err(CodecError::UnknownOldVersion {
            event: E::NAME,
            found: version,
            oldest: E::VERSION,
        });
    }
    decode_exact(bytes)
}

/// Decodes `bytes` with `E`'s current schema, or walks the chain through `P`.
#[doc(hidden)]
pub fn decode_with_previous<E, P>(version: u32, bytes: &[u8]) -> Result<E, CodecError>
where
    E: Event + UpcastFrom<P>,
    P: Event,
{
    if version > E::VERSION {
        return Err(CodecError::NewerVersion {
            event: E::NAME,
            found: version,
            current: E::VERSION,
        });
    }
    if version == E::VERSION {
        return decode_exact(bytes);
    }
    match P::decode(version, bytes) {
        Ok(previous) => Ok(E::upcast(previous)),
        // Between `P` and `E` in the chain: no schema was ever declared for it.
        Err(CodecError::NewerVersion { found, current, .. }) => Err(CodecError::VersionGap {
            event: E::NAME,
            found,
            previous: current,
            next: E::VERSION,
        }),
        Err(other) => Err(other),
    }
}

fn decode_exact<E: Event>(bytes: &[u8]) -> Result<E, CodecError> {
    match postcard::take_from_bytes::<E>(bytes) {
        Ok((event, [])) => Ok(event),
        Ok((_, _rest)) => Err(CodecError::Decode {
            event: E::NAME,
            version: E::VERSION,
            source: postcard::Error::DeserializeBadEncoding,
        }),
        Err(source) => Err(CodecError::Decode {
            event: E::NAME,
            version: E::VERSION,
            source,
        }),
    }
}

/// How an event is upcast from the previous schema: through `From`.
///
/// A separate trait so that a missing `From` impl reads as what it is.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` names `{P}` as its `previous` schema, but there is no `impl From<{P}> for {Self}`",
    label = "`{Self}` cannot be upcast from `{P}`",
    note = "write `impl From<{P}> for {Self}` that maps every old variant to the current schema"
)]
pub trait UpcastFrom<P> {
    /// Converts an event of the previous schema.
    fn upcast(previous: P) -> Self;
}

impl<P, E: From<P>> UpcastFrom<P> for E {
    fn upcast(previous: P) -> Self {
        E::from(previous)
    }
}

/// The event type of a state whose `#[derive(State)]` failed before naming one (see the
/// derive's fallback expansion): no value of it exists.
#[doc(hidden)]
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub enum NoEvent {}

impl Event for NoEvent {
    const NAME: &'static str = "foldkit::NoEvent";
    const VERSION: u32 = 1;

    fn variant_name(&self) -> &'static str {
        match *self {}
    }

    fn decode(_: u32, _: &[u8]) -> Result<Self, CodecError> {
        Err(CodecError::UnknownOldVersion {
            event: Self::NAME,
            found: 0,
            oldest: 1,
        })
    }
}

/// Compile-time check of one link of a version chain: `P` must be the version just before
/// `E`, with the same stable name.
#[doc(hidden)]
pub const fn check_previous<P: Event>(version: u32, name: &str) {
    assert!(
        P::VERSION < version,
        "foldkit: the `previous` event type must have a lower `#[event(version = ..)]` than the type naming it"
    );
    assert!(
        P::VERSION + 1 == version,
        "foldkit: a gap in the version chain: the `previous` event type must be exactly one version older; declare the enum of each version in between and chain them with `previous = ..`"
    );
    assert!(
        str_eq(P::NAME, name),
        "foldkit: the `previous` event type must have the same stable name: add `#[event(name = \"..\")]` to the older enum"
    );
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
