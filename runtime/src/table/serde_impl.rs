//! How a table serializes: its rows in ascending id order; indexes are not stored and are
//! rebuilt on load, in bulk (see `load`). Two rows with one id in the input are an error,
//! never a silent drop.
//!
//! Two layouts of the same rows:
//! - **Rows**, for human-readable formats (JSON, …): the sequence of the rows.
//! - **Chunks**, for binary formats (`Serializer::is_human_readable` is false, as for
//!   postcard and the snapshot codec): a sequence of byte strings, each holding the
//!   postcard encoding (a `Vec<T>`) of the next [`CHUNK_ROWS`] rows. A load finds every
//!   chunk's bounds before decoding a row, so it decodes the chunks on several threads
//!   (`decode_chunks`) and then builds the indexes in parallel (`Table::from_rows_parallel`).
//!
//! A chunk is encoded into one buffer, reused from chunk to chunk, and handed to the
//! serializer as bytes. The snapshot codec sizes a body before writing it; inside
//! [`sizing`] a chunk is only counted (postcard's counting pass) and handed over as that
//! many zero bytes, so sizing does not encode every row a second time. Snapshots written
//! before chunks existed (codec format 2) hold the rows layout, which the codec asks for
//! with [`reading_rows_layout`].

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::ser::{Error as _, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Table;
use super::load::LoadError;
use crate::entity::Entity;

/// Rows per chunk of the binary layout. Big enough that a chunk's bookkeeping (a
/// length, a count, a thread's share) is noise, small enough that a 1M-row table is
/// 61 chunks to share among threads.
pub(crate) const CHUNK_ROWS: usize = 16 * 1024;

thread_local! {
    /// Whether tables deserialized on this thread are read from the rows layout.
    static READING_ROWS: Cell<bool> = const { Cell::new(false) };
    /// Whether tables serialized on this thread go to a serializer that only counts bytes.
    static SIZING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with tables deserialized on this thread from binary formats read in the
/// rows layout (snapshots of codec format 2), then restores what was set before (also
/// when `f` panics).
pub(crate) fn reading_rows_layout<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&READING_ROWS, f)
}

/// Runs `f` (a counting pass such as `postcard::experimental::serialized_size`) with
/// tables serialized on this thread written as chunks of zero bytes of their exact
/// encoded length: the same count, without encoding the rows. Only for a serializer
/// that counts: any other would write zeros.
pub(crate) fn sizing<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&SIZING, f)
}

/// Runs `f` with `flag` set on this thread, then restores what was set before (also
/// when `f` panics).
fn with_flag<R>(flag: &'static std::thread::LocalKey<Cell<bool>>, f: impl FnOnce() -> R) -> R {
    struct Restore(&'static std::thread::LocalKey<Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.with(|f| f.set(self.1));
        }
    }
    let _restore = Restore(flag, flag.with(|f| f.replace(true)));
    f()
}

impl<T: Entity + Serialize> Serialize for Table<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serializer.collect_seq(self.iter());
        }
        let counting = SIZING.with(Cell::get);
        let mut seq = serializer.serialize_seq(Some(self.len().div_ceil(CHUNK_ROWS)))?;
        let mut rows = self.iter();
        let mut chunk: Vec<&T> = Vec::with_capacity(self.len().min(CHUNK_ROWS));
        // The encoded chunk; when counting, zeros (allocated zeroed, so large ones are
        // untouched pages) as long as the longest chunk.
        let mut bytes = Vec::new();
        loop {
            chunk.clear();
            chunk.extend(rows.by_ref().take(CHUNK_ROWS));
            if chunk.is_empty() {
                break;
            }
            let len = if counting {
                let len =
                    postcard::experimental::serialized_size(&chunk).map_err(S::Error::custom)?;
                if bytes.len() < len {
                    bytes = vec![0; len];
                }
                len
            } else {
                bytes.clear();
                bytes = postcard::to_extend(&chunk, bytes).map_err(S::Error::custom)?;
                bytes.len()
            };
            seq.serialize_element(&Bytes(&bytes[..len]))?;
        }
        seq.end()
    }
}

/// A byte string.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de, T: Entity + DeserializeOwned + Send + Sync> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() || READING_ROWS.with(Cell::get) {
            deserializer.deserialize_seq(RowsVisitor(PhantomData))
        } else {
            deserializer.deserialize_seq(ChunksVisitor(PhantomData))
        }
    }
}

/// Turns a load failure into the deserializer's error.
fn load_error<T: Entity, E: serde::de::Error>(error: LoadError<T::Id>) -> E {
    match error {
        LoadError::Duplicate(id) => {
            E::custom(format_args!("table of `{}` holds id {id:?} twice", T::NAME))
        }
        LoadError::TooMany(rows) => E::custom(format_args!(
            "table of `{}` has {rows} rows, more than a table holds",
            T::NAME
        )),
    }
}

struct RowsVisitor<T>(PhantomData<T>);

impl<'de, T: Entity + DeserializeOwned + Send + Sync> Visitor<'de> for RowsVisitor<T> {
    type Value = Table<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of `{}` rows", T::NAME)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Table<T>, A::Error> {
        // The length comes from the input: trust it only up to what it costs to be wrong
        // (1 MiB of rows); past that the vector grows as rows actually arrive.
        let cautious = (1 << 20) / std::mem::size_of::<T>().max(1);
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(cautious));
        while let Some(row) = seq.next_element::<T>()? {
            rows.push(row);
        }
        Table::from_rows_parallel(rows).map_err(load_error::<T, A::Error>)
    }
}

struct ChunksVisitor<T>(PhantomData<T>);

impl<'de, T: Entity + DeserializeOwned + Send + Sync> Visitor<'de> for ChunksVisitor<T> {
    type Value = Table<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of chunks of `{}` rows", T::NAME)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Table<T>, A::Error> {
        // As above: a chunk is at least one byte of input, so the hint is trusted only
        // up to a small bound.
        let mut chunks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(ChunkBytes(bytes)) = seq.next_element()? {
            chunks.push(bytes);
        }
        let rows = decode_chunks::<T>(&chunks).map_err(|(at, source)| {
            A::Error::custom(format_args!(
                "table of `{}`, chunk {at} of {}: {source}",
                T::NAME,
                chunks.len()
            ))
        })?;
        drop(chunks);
        Table::from_rows_parallel(rows).map_err(load_error::<T, A::Error>)
    }
}

/// One chunk's bytes, borrowed from the input when the deserializer can.
struct ChunkBytes<'de>(Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for ChunkBytes<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = ChunkBytes<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a chunk of rows as bytes")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(ChunkBytes(Cow::Borrowed(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(ChunkBytes(Cow::Owned(v.to_vec())))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(ChunkBytes(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// Decodes every chunk, in order; a large table's chunks are shared among threads
/// (contiguous runs, one per available core). Fails with the first failing chunk's
/// index and postcard's error. A row's `Deserialize` that panics panics here.
///
/// Each run decodes its rows straight into one vector reserved up front from the row
/// counts at the head of its chunks (the first run's reserves room for every run, which
/// are then appended to it), so no row is decoded into a chunk's own vector and copied
/// again, and no vector grows by doubling.
fn decode_chunks<T: DeserializeOwned + Send>(
    chunks: &[Cow<'_, [u8]>],
) -> Result<Vec<T>, (usize, postcard::Error)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(chunks.len());
    let all = reserved_rows(chunks);
    if threads <= 1 {
        return decode_run::<T>(chunks, 0, all);
    }
    let per = chunks.len().div_ceil(threads);
    let runs: Vec<Result<Vec<T>, _>> = std::thread::scope(|scope| {
        // A run whose thread cannot be started is decoded here, after the first.
        let spawned: Vec<_> = chunks
            .chunks(per)
            .enumerate()
            .skip(1)
            .map(|(i, run)| {
                let decode = move || decode_run::<T>(run, i * per, reserved_rows(run));
                std::thread::Builder::new()
                    .name("foldkit-decode".into())
                    .spawn_scoped(scope, decode)
                    .map_err(|_| decode)
            })
            .collect();
        let first = decode_run::<T>(&chunks[..per], 0, all);
        std::iter::once(first)
            .chain(spawned.into_iter().map(|run| {
                match run {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(decode) => decode(),
                }
            }))
            .collect()
    });
    let mut runs = runs.into_iter();
    let mut rows = runs.next().unwrap_or(Ok(Vec::new()))?;
    for run in runs {
        rows.append(&mut run?);
    }
    Ok(rows)
}

/// The rows to reserve for `chunks`: the count at the head of each (a postcard varint),
/// believed only up to [`CHUNK_ROWS`] and the chunk's length in bytes, so input bytes
/// bound the reservation whatever the counts say (a chunk that holds more rows than
/// that, or a wrong count, only makes its vector grow or fail to decode).
fn reserved_rows(chunks: &[Cow<'_, [u8]>]) -> usize {
    chunks
        .iter()
        .map(|chunk| {
            let count = postcard::take_from_bytes::<u64>(chunk).map_or(0, |(count, _)| count);
            usize::try_from(count)
                .unwrap_or(usize::MAX)
                .min(CHUNK_ROWS)
                .min(chunk.len())
        })
        .sum()
}

/// Decodes `run`, whose first chunk has index `first`, into one vector reserved for
/// `reserve` rows.
fn decode_run<T: DeserializeOwned>(
    run: &[Cow<'_, [u8]>],
    first: usize,
    reserve: usize,
) -> Result<Vec<T>, (usize, postcard::Error)> {
    let mut rows = Vec::with_capacity(reserve);
    for (i, chunk) in run.iter().enumerate() {
        let mut input = postcard::Deserializer::from_bytes(chunk);
        let decoded = AppendRows(&mut rows)
            .deserialize(&mut input)
            .and_then(|()| input.finalize());
        match decoded {
            Ok([]) => {}
            Ok(_) => return Err((first + i, postcard::Error::DeserializeBadEncoding)),
            Err(error) => return Err((first + i, error)),
        }
    }
    Ok(rows)
}

/// Deserializes a sequence of rows by pushing each onto the vector.
struct AppendRows<'v, T>(&'v mut Vec<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for AppendRows<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for AppendRows<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<T>()? {
            self.0.push(row);
        }
        Ok(())
    }
}
