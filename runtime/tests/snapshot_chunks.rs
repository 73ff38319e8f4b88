//! A table in a snapshot (codec format 3) is stored in chunks of rows: the codec's body is
//! the state's binary layout, streamed or not; a large table restores
//! through the parallel decode with every index; a snapshot of format 2 (one sequence
//! of rows) still restores; a damaged chunk is refused, never a wrong state.

use foldkit::__private::{TABLE_CHUNK_ROWS, check_table};
use foldkit::prelude::*;
use foldkit::snapshot::codec::{self, SnapshotError};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Ev {
    Put { id: u64, tag: String, at: u64 },
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    #[entity(id)]
    id: u64,
    #[entity(index)]
    tag: String,
    #[entity(index(ordered))]
    at: u64,
}

#[derive(State, Default, Serialize, Deserialize, Debug, PartialEq)]
#[state(event = Ev)]
struct Book {
    rows: Table<Row>,
    puts: u64,
}

impl Apply<Ev> for Book {
    fn apply(&mut self, event: Ev, _: &Meta) -> Result<(), FoldError> {
        let Ev::Put { id, tag, at } = event;
        self.puts += 1;
        self.rows.insert(Row { id, tag, at });
        Ok(())
    }
}

fn row(i: u64) -> Row {
    Row {
        id: i,
        tag: format!("t{}", i % 101),
        at: (i * 7919) % 100_003,
    }
}

fn book(n: u64) -> Book {
    let mut book = Book::default();
    for i in (0..n).rev() {
        book.rows.insert(row(i));
    }
    book.puts = n;
    book
}

/// The rows of `book` in id order, as a plain vector.
fn rows_of(book: &Book) -> Vec<Row> {
    book.rows.iter().cloned().collect()
}

#[test]
fn the_codec_body_is_the_binary_layout_of_the_state() {
    let per = TABLE_CHUNK_ROWS as u64;
    for n in [0, 1, per, per + 1, 4 * per + 5] {
        let book = book(n);
        let blob = codec::encode(&book, None).expect("encode");
        let (_, body) = codec::read_header(&blob).expect("header");
        assert_eq!(
            body,
            postcard::to_allocvec(&book).expect("postcard"),
            "{n} rows"
        );
        let mut streamed = Vec::new();
        codec::encode_to(&book, None, &mut streamed).expect("encode_to");
        assert_eq!(streamed, blob, "{n} rows");
        let (back, _) = codec::decode::<Book>(&blob).expect("decode");
        check_table(&back.rows).expect("a consistent table");
        assert_eq!(back, book, "{n} rows");
        assert_eq!(codec::encode(&back, None).expect("encode"), blob);
    }
}

/// `blob` with the format byte `format` and the body `body`, checksummed again.
fn with_body(blob: &[u8], format: u8, body: &[u8]) -> Vec<u8> {
    let (_, old) = codec::read_header(blob).expect("header");
    let head_len = blob.len() - 4 - old.len();
    let mut out = blob[..head_len].to_vec();
    out[8] = format;
    out[head_len - 8..].copy_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// `blob` (format 3) rewritten as format 2 wrote it: the format byte, and the body with
/// the table as one sequence of rows, checksummed again.
fn as_format_2(blob: &[u8], book: &Book) -> Vec<u8> {
    let rows_body = postcard::to_allocvec(&(rows_of(book), book.puts)).expect("encode");
    with_body(blob, 2, &rows_body)
}

#[test]
fn a_format_2_snapshot_with_a_table_as_one_sequence_of_rows_still_restores() {
    let book = book(3 * TABLE_CHUNK_ROWS as u64);
    let blob = codec::encode(&book, None).expect("encode");
    let old = as_format_2(&blob, &book);
    let (back, _) = codec::decode::<Book>(&old).expect("a format 2 snapshot decodes");
    check_table(&back.rows).expect("a consistent table");
    assert_eq!(back, book);
    // Read as format 3, the same rows layout is not a state.
    let mut mislabelled = old[..old.len() - 4].to_vec();
    mislabelled[8] = 3;
    let crc = crc32c::crc32c(&mislabelled);
    mislabelled.extend_from_slice(&crc.to_le_bytes());
    assert!(codec::decode::<Book>(&mislabelled).is_err());
}

#[test]
fn a_damaged_chunk_is_refused_even_under_a_valid_checksum() {
    let book = book(3 * TABLE_CHUNK_ROWS as u64);
    let blob = codec::encode(&book, None).expect("encode");
    let (_, body) = codec::read_header(&blob).expect("header");
    let head_len = blob.len() - 4 - body.len();
    // Flip a byte inside the second chunk's rows (past the first chunk's bytes), where
    // every byte is a row's field or a string's length.
    let mut damaged = blob[..blob.len() - 4].to_vec();
    let at = head_len + body.len() / 2;
    damaged[at] = 0xff;
    let crc = crc32c::crc32c(&damaged);
    damaged.extend_from_slice(&crc.to_le_bytes());
    match codec::decode::<Book>(&damaged) {
        Err(SnapshotError::Decode { .. }) => {}
        Ok((state, _)) => {
            // 0xff may still decode (a varint continuing): then the table must differ
            // from the original and still be consistent, never a silent wrong index.
            check_table(&state.rows).expect("a consistent table");
            assert_ne!(state, book);
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn a_db_restores_a_large_table_from_its_snapshot_with_every_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 5 * TABLE_CHUNK_ROWS as u64 + 17;
    let open = || {
        Db::builder(dir.path())
            .fsync(FsyncPolicy::Never)
            .state::<Book>()
            .open()
    };
    let db = open().await.expect("open");
    let events: Vec<Ev> = (0..n)
        .map(|i| {
            let Row { id, tag, at } = row(i);
            Ev::Put { id, tag, at }
        })
        .collect();
    for batch in events.chunks(10_000) {
        db.append_batch(batch.to_vec()).await.expect("append");
    }
    db.state::<Book>().wait_for_seq(n).await.expect("fold");
    db.snapshot_to_disk().await.expect("snapshot");
    db.close().await.expect("close");

    let db = open().await.expect("reopen");
    let opened = db.open_report().state(Book::NAME).expect("report").clone();
    assert_eq!(opened.resumed_at, n, "{opened:?}");
    assert!(opened.rejected.is_empty(), "{opened:?}");
    let book = db.state::<Book>();
    let state = book.read();
    check_table(&state.rows).expect("a consistent table");
    assert_eq!(state.rows.len() as u64, n);
    let expected: Vec<u64> = (0..n).filter(|i| i % 101 == 5).collect();
    assert_eq!(state.rows.query().where_tag("t5").ids(), expected);
    let mut by_at: Vec<(u64, u64)> = (0..n).map(|i| (row(i).at, i)).collect();
    by_at.sort();
    let top: Vec<u64> = by_at.iter().rev().take(3).map(|&(_, i)| i).collect();
    assert_eq!(state.rows.query().order_by_at(Desc).limit(3).ids(), top);
    drop(state);
    db.close().await.expect("close");
}

/// `blob` with its body replaced by the table as `chunks` (each a chunk's bytes as
/// written: a row count, then rows) and `puts`, checksummed again.
fn with_chunks(blob: &[u8], chunks: &[Vec<u8>], puts: u64) -> Vec<u8> {
    let varint = |n: u64| postcard::to_allocvec(&n).expect("varint");
    let mut body = varint(chunks.len() as u64);
    for chunk in chunks {
        body.extend(varint(chunk.len() as u64));
        body.extend_from_slice(chunk);
    }
    body.extend(varint(puts));
    with_body(blob, blob[8], &body)
}

#[test]
fn a_chunk_whose_row_count_or_length_is_wrong_is_refused() {
    // Rows are decoded straight into a vector reserved from each chunk's row count,
    // which is believed only up to the chunk's length: a count of 2^40 rows in a chunk
    // of a few bytes fails to decode instead of reserving terabytes.
    let book = book(3);
    let blob = codec::encode(&book, None).expect("encode");
    let rows = rows_of(&book);
    let good = postcard::to_allocvec(&rows).expect("rows");
    let (back, _) = codec::decode::<Book>(&with_chunks(&blob, std::slice::from_ref(&good), 3))
        .expect("the rebuilt blob of the same rows decodes");
    assert_eq!(back, book);
    let mut lying = postcard::to_allocvec(&(1u64 << 40)).expect("varint");
    lying.extend_from_slice(&good[1..]);
    let mut trailing = good.clone();
    trailing.push(0);
    let split = vec![
        postcard::to_allocvec(&rows[..1]).expect("rows"),
        postcard::to_allocvec(&rows[1..]).expect("rows"),
    ];
    let (back, _) =
        codec::decode::<Book>(&with_chunks(&blob, &split, 3)).expect("two chunks decode");
    assert_eq!(back, book, "chunks of any size make one table");
    for (what, chunks) in [
        ("a count of 2^40", vec![lying]),
        ("a trailing byte", vec![trailing]),
    ] {
        match codec::decode::<Book>(&with_chunks(&blob, &chunks, 3)) {
            Err(SnapshotError::Decode { .. }) => {}
            Ok(_) => panic!("{what}: decoded"),
            Err(other) => panic!("{what}: unexpected error: {other}"),
        }
    }
}
