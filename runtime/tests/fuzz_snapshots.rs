//! Fuzz-style test of snapshot files and bundles (issue 14): seeded random and
//! mutated snapshot blobs, bundles, and `<dir>/snapshots/` contents must give a
//! typed error or a replay, never a panic, an abort, or a wrong state.
//!
//! The cases run in a child process (this test binary re-executed with
//! `FOLDKIT_FUZZ_CHILD` set), so an abort (e.g. an allocation sized by a
//! crafted length) fails the parent instead of killing the test run.
//! `FOLDKIT_FUZZ_CASES=<n>` runs more cases (default 6000); `FOLDKIT_FUZZ_SEED`
//! picks the seed (printed by the child).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use foldkit::prelude::*;
use foldkit::snapshot::{Bundle, RecordIdentity, codec};

const CHILD_ENV: &str = "FOLDKIT_FUZZ_CHILD";
const CASES_ENV: &str = "FOLDKIT_FUZZ_CASES";
const SEED_ENV: &str = "FOLDKIT_FUZZ_SEED";
const DEFAULT_CASES: u64 = 6000;
const EVENTS: u64 = 60;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Ev {
    Put { id: u64, tag: String },
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    #[entity(id)]
    id: u64,
    #[entity(index)]
    tag: String,
}

#[derive(State, Default, Serialize, Deserialize, Debug, PartialEq, Clone)]
#[state(event = Ev)]
struct Book {
    rows: Table<Row>,
    names: Vec<String>,
    count: u64,
}

impl Apply<Ev> for Book {
    fn apply(&mut self, Ev::Put { id, tag }: Ev, _: &Meta) -> Result<(), FoldError> {
        self.count += 1;
        self.names.push(tag.clone());
        self.rows.insert(Row { id: id % 17, tag });
        Ok(())
    }
}

/// splitmix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A random change to `bytes`. `true`: the trailing CRC32C was recomputed, so
/// the result may be a well-formed blob of another value.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> bool {
    match rng.below(8) {
        0 => {
            for _ in 0..=rng.below(4) {
                if !bytes.is_empty() {
                    let i = rng.below(bytes.len() as u64) as usize;
                    bytes[i] ^= 1 << rng.below(8);
                }
            }
            false
        }
        1 => {
            let len = rng.below(bytes.len() as u64 + 1) as usize;
            bytes.truncate(len);
            false
        }
        2 => {
            let extra = {
                let n = rng.below(64) as usize;
                rng.bytes(n)
            };
            bytes.extend(extra);
            false
        }
        3 => {
            *bytes = {
                let n = rng.below(256) as usize;
                rng.bytes(n)
            };
            false
        }
        // Past the checksum: a length field (u16 name length at 9, u64 body
        // length near the end) or any header byte set to an extreme, CRC fixed.
        4 => {
            if bytes.len() > 16 {
                let at = if rng.below(2) == 0 {
                    9
                } else {
                    bytes.len() - 12 - rng.below(3) as usize
                };
                let value = [0xff, 0x00, 0x7f, 0x80][rng.below(4) as usize];
                for b in bytes.iter_mut().skip(at).take(1 + rng.below(8) as usize) {
                    *b = value;
                }
            }
            fix_crc(bytes)
        }
        // Body bytes changed, CRC fixed: postcard sees garbage (huge lengths).
        5 => {
            for _ in 0..=rng.below(6) {
                if bytes.len() > 4 {
                    let i = rng.below(bytes.len() as u64 - 4) as usize;
                    bytes[i] = rng.next() as u8;
                }
            }
            fix_crc(bytes)
        }
        6 => {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            let junk = {
                let n = 1 + rng.below(16) as usize;
                rng.bytes(n)
            };
            bytes.splice(at..at, junk);
            fix_crc(bytes)
        }
        _ => {
            if bytes.len() > 4 {
                let tail = bytes.len() - 4;
                let cut = rng.below(tail as u64) as usize;
                bytes.drain(cut..tail);
            }
            fix_crc(bytes)
        }
    }
}

fn fix_crc(bytes: &mut [u8]) -> bool {
    if bytes.len() < 4 {
        return false;
    }
    let body = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    true
}

fn book(n: u64) -> Book {
    let mut book = Book::default();
    for i in 1..=n {
        let event = Ev::Put {
            id: i,
            tag: format!("t{}", i % 5),
        };
        Apply::apply(&mut book, event, &Meta::new(i, 0, 1)).expect("apply");
    }
    book
}

fn identity(seq: u64) -> RecordIdentity {
    RecordIdentity {
        seq,
        timestamp: 1_700_000_000_000,
        payload_crc: seq as u32,
    }
}

/// Codec cases: no panic; an unaltered checksum never decodes to another value.
fn codec_case(rng: &mut Rng, originals: &[(Book, Vec<u8>)]) {
    let (original, blob) = &originals[rng.below(originals.len() as u64) as usize];
    let mut bytes = blob.clone();
    let crc_fixed = mutate(rng, &mut bytes);
    let _ = codec::read_header(&bytes);
    match codec::decode::<Book>(&bytes) {
        Ok((state, _)) if !crc_fixed && bytes != *blob => {
            assert_eq!(&state, original, "a corrupt blob decoded to another state");
        }
        Ok(_) | Err(_) => {}
    }
}

/// Bundle cases: no panic; an unaltered checksum never parses to another bundle.
fn bundle_case(rng: &mut Rng, bundle: &Bundle) {
    let good = bundle.to_bytes();
    let mut bytes = good.clone();
    let crc_fixed = mutate(rng, &mut bytes);
    if let Ok(parsed) = Bundle::from_bytes(&bytes) {
        if !crc_fixed {
            assert_eq!(&parsed, bundle, "a corrupt bundle parsed to another one");
        }
        assert_eq!(parsed.headers().count(), parsed.len());
        if let Some(blob) = parsed.get("Book") {
            let _ = codec::decode::<Book>(blob);
        }
    }
}

async fn open(dir: &Path, bundle: Option<Bundle>) -> Result<Db, foldkit::DbError> {
    let mut builder = Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .snapshot_on_close(false)
        .state::<Book>();
    if let Some(bundle) = bundle {
        builder = builder.restore(bundle);
    }
    builder.open().await
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Db cases: random and mutated files in `<dir>/snapshots/Book/`, or a mutated
/// bundle to restore; the Db opens (or fails with a typed error) and its state
/// is the replay's, unless a file's checksum was forged.
async fn db_case(rng: &mut Rng, template: &Path, expected: &Book, bundle: &Bundle) {
    let work = tempfile::tempdir().expect("tempdir");
    copy_dir(template, work.path());
    let snaps = work.path().join("snapshots").join("Book");
    let mut forged = false;
    let mut restore = None;
    match rng.below(4) {
        0 | 1 => {
            let mut files: Vec<_> = std::fs::read_dir(&snaps)
                .expect("snapshots")
                .map(|e| e.expect("entry").path())
                .collect();
            files.sort();
            let file = &files[rng.below(files.len() as u64) as usize];
            let mut bytes = std::fs::read(file).expect("read");
            forged = mutate(rng, &mut bytes);
            std::fs::write(file, bytes).expect("write");
        }
        2 => {
            let names = [
                "99999999999999999999.snap".to_owned(),
                "18446744073709551615.snap".to_owned(),
                "00000000000000000030.snap".to_owned(),
                "00000000000000000045.snap".to_owned(),
                "-1.snap".to_owned(),
                "abc.snap".to_owned(),
                ".snap".to_owned(),
                format!("{:020}.snap", rng.next()),
            ];
            let name = &names[rng.below(names.len() as u64) as usize];
            let path = snaps.join(name);
            if rng.below(4) == 0 {
                let _ = std::fs::create_dir(&path);
            } else {
                let source = snaps.join("00000000000000000060.snap");
                let mut bytes = std::fs::read(source).expect("read");
                if rng.below(2) == 0 {
                    bytes = {
                        let n = rng.below(512) as usize;
                        rng.bytes(n)
                    };
                } else {
                    forged = mutate(rng, &mut bytes);
                }
                let _ = std::fs::remove_file(&path);
                std::fs::write(&path, bytes).expect("write");
            }
        }
        _ => {
            let mut bytes = bundle.to_bytes();
            forged = mutate(rng, &mut bytes);
            match Bundle::from_bytes(&bytes) {
                Ok(parsed) => restore = Some(parsed),
                Err(_) => return, // a typed error: nothing to open
            }
        }
    }
    let db = match open(work.path(), restore).await {
        Ok(db) => db,
        Err(foldkit::DbError::RestoreBeyondLog { .. }) => return, // typed refusal
        Err(error) => panic!("open failed: {error:?}"),
    };
    let handle = db.state::<Book>();
    let waited = tokio::time::timeout(Duration::from_secs(10), handle.wait_for_seq(EVENTS)).await;
    let state = handle.read().clone();
    db.close().await.expect("close");
    match waited.expect("the fold must not hang") {
        Ok(()) => {
            if !forged {
                assert_eq!(&state, expected, "a damaged snapshot gave a wrong state");
            }
        }
        Err(error) => assert!(forged, "a fold failed on an unforged case: {error:?}"),
    }
}

#[test]
fn fuzz_snapshots_and_bundles_in_a_child_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let output = Command::new(exe)
        .args(["--exact", "fuzz_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the fuzz child");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stderr}");
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the fuzz child failed or died ({:?}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
fn fuzz_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cases: u64 = std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f01d);
    let mut rng = Rng(seed);
    let originals: Vec<(Book, Vec<u8>)> = [0u64, 1, 7, 40]
        .iter()
        .map(|&n| {
            let state = book(n);
            let last = (n > 0).then(|| identity(n));
            let blob = codec::encode(&state, last).expect("encode");
            (state, blob)
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let template = tempfile::tempdir().expect("tempdir");
    let (expected, bundle) = runtime.block_on(async {
        // A log of EVENTS events, with snapshot files at 30 and 60.
        let db = open(template.path(), None).await.expect("open");
        for i in 1..=EVENTS {
            db.append(Ev::Put {
                id: i,
                tag: format!("t{}", i % 5),
            })
            .await
            .expect("append");
            if i == 30 || i == EVENTS {
                db.state::<Book>().wait_for_seq(i).await.expect("fold");
                db.snapshot_to_disk().await.expect("snapshot");
            }
        }
        let bundle = db.snapshot().await.expect("bundle");
        let expected = db.state::<Book>().read().clone();
        db.close().await.expect("close");
        (expected, bundle)
    });
    assert_eq!(expected, book(EVENTS));

    let db_cases = (cases / 40).max(20);
    let bundle_cases = cases / 4;
    let codec_cases = cases.saturating_sub(db_cases + bundle_cases);
    let started = std::time::Instant::now();
    for _ in 0..codec_cases {
        codec_case(&mut rng, &originals);
    }
    for _ in 0..bundle_cases {
        bundle_case(&mut rng, &bundle);
    }
    runtime.block_on(async {
        for _ in 0..db_cases {
            db_case(&mut rng, template.path(), &expected, &bundle).await;
        }
    });
    eprintln!(
        "fuzz: seed {seed:#x}: {codec_cases} codec + {bundle_cases} bundle + {db_cases} Db cases in {:?}",
        started.elapsed()
    );
}
