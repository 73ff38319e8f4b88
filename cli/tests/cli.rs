//! The `foldkit` binary on real directories: healthy, corrupted, torn, not
//! foldkit's, of a newer format.

mod common;

use std::fs;

use common::{
    assert_one_line_error, foldkit, foldkit_with_input, healthy, segments, stderr, stdout,
};

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("utf-8 temp path")
}

#[tokio::test]
async fn info_verify_events_and_snapshots_on_a_healthy_directory() {
    let dir = healthy().await;
    let dir_arg = path(&dir);

    let info = foldkit(&["info", dir_arg]);
    let text = stdout(&info);
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(text.contains("format         2"), "{text}");
    assert!(
        text.contains("positions      1 ..= 200 (200 events)"),
        "{text}"
    );
    assert!(text.contains("streams        1"), "{text}");
    assert!(text.contains("Total"), "the snapshot is listed: {text}");
    assert!(text.contains("hash chain     200 records, head "), "{text}");

    let verify = foldkit(&["verify", dir_arg]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(0), "{text}{}", stderr(&verify));
    assert!(text.contains("checked 200 events"), "{text}");
    assert!(text.contains("the stream index"), "{text}");
    assert!(text.contains("hash chain: 200 records, head "), "{text}");
    assert!(text.trim_end().ends_with("OK"), "{text}");

    let json = foldkit(&["verify", "--json", dir_arg]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["ok"], true);
    assert_eq!(value["events"], 200);
    assert_eq!(value["chain"]["head"].as_str().map(str::len), Some(64));

    let events = foldkit(&["events", dir_arg]);
    let text = stdout(&events);
    assert!(events.status.success());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 200);
    let first: Vec<&str> = lines[0].split("  ").collect();
    assert_eq!(first[0], "1");
    assert!(
        first[1].ends_with('Z') && first[1].contains('T'),
        "{}",
        lines[0]
    );
    assert_eq!(&first[2..5], ["Counter", "v1", "-"]);
    assert!(lines[199].contains("acct-1#50"), "{}", lines[199]);

    let range = foldkit(&["events", "--from", "10", "--to", "12", dir_arg]);
    let firsts: Vec<String> = stdout(&range)
        .lines()
        .map(|l| l.split("  ").next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(firsts, ["10", "11", "12"]);

    let stream = foldkit(&["events", "--stream", "acct-1", "--json", dir_arg]);
    let values: Vec<serde_json::Value> = stdout(&stream)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(values.len(), 50);
    assert_eq!(values[0]["position"], 151);
    assert_eq!(values[0]["stream_version"], 1);
    assert!(
        values[0]["payload"].is_string(),
        "hex without a registered type"
    );

    let typed = foldkit(&["events", "--type", "Counter", "--to", "5", dir_arg]);
    assert_eq!(stdout(&typed).lines().count(), 5);

    let snapshots = foldkit(&["snapshots", dir_arg]);
    assert!(snapshots.status.success());
    assert!(
        stdout(&snapshots).contains("Total"),
        "{}",
        stdout(&snapshots)
    );
    assert!(
        stdout(&snapshots).contains("at 200"),
        "{}",
        stdout(&snapshots)
    );

    let repair = foldkit(&["repair", dir_arg]);
    assert_eq!(repair.status.code(), Some(0));
    assert!(stdout(&repair).contains("nothing to repair"));
}

#[tokio::test]
async fn bad_input_is_one_line_on_stderr() {
    let empty = tempfile::tempdir().expect("tempdir");
    assert_one_line_error(
        &foldkit(&["info", path(&empty)]),
        "is not a foldkit directory",
    );
    assert_one_line_error(
        &foldkit(&["verify", path(&empty)]),
        "is not a foldkit directory",
    );
    assert_one_line_error(
        &foldkit(&["events", "/nonexistent/foldkit"]),
        "is not a directory",
    );

    let newer = tempfile::tempdir().expect("tempdir");
    fs::write(newer.path().join("FORMAT"), "foldkit-format 99\n").expect("write");
    assert_one_line_error(
        &foldkit(&["info", path(&newer)]),
        "written by a newer foldkit",
    );

    let dir = healthy().await;
    assert_one_line_error(
        &foldkit(&["events", "--type", "Nope", path(&dir)]),
        "no event type named `Nope`",
    );
    assert!(stderr(&foldkit(&["events", "--type", "Nope", path(&dir)])).contains("known: Counter"));
}

#[tokio::test]
async fn a_flipped_byte_fails_verify_with_segment_and_offset_and_repair_cuts_there() {
    let dir = healthy().await;
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let damaged = segs[1].clone();
    let mut bytes = fs::read(&damaged).expect("read");
    bytes[24 + 40] ^= 0x01; // the first record's payload
    fs::write(&damaged, &bytes).expect("flip");

    let verify = foldkit(&["verify", path(&dir)]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    let name = damaged.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        text.contains(name) && text.contains("at byte offset 24"),
        "{text}"
    );
    assert!(text.contains("checksum mismatch"), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    let json = foldkit(&["verify", "--json", path(&dir)]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["ok"], false);
    assert_eq!(value["problems"][0]["offset"], 24);

    // events shows what precedes the damage, then fails naming it.
    let events = foldkit(&["events", path(&dir)]);
    assert_eq!(events.status.code(), Some(1));
    assert!(
        stderr(&events).contains("corrupt log"),
        "{}",
        stderr(&events)
    );

    // Answering no changes nothing.
    let before: Vec<Vec<u8>> = segs.iter().map(|p| fs::read(p).expect("read")).collect();
    let declined = foldkit_with_input(&["repair", path(&dir)], b"n\n");
    assert_eq!(declined.status.code(), Some(1));
    assert!(stderr(&declined).contains("drops"), "{}", stderr(&declined));
    let after: Vec<Vec<u8>> = segs.iter().map(|p| fs::read(p).expect("read")).collect();
    assert_eq!(before, after, "nothing changed");

    let repaired = foldkit_with_input(&["repair", path(&dir)], b"y\n");
    let text = stdout(&repaired);
    assert_eq!(
        repaired.status.code(),
        Some(0),
        "{text}{}",
        stderr(&repaired)
    );
    assert!(text.contains("kept a copy"), "{text}");
    let copies = fs::read_dir(dir.path().join("log"))
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        })
        .count();
    assert_eq!(
        copies,
        segs.len() - 1,
        "the damaged and every later segment"
    );
    assert!(text.trim_end().ends_with("OK"), "{text}");

    // The Db opens the repaired directory and keeps the records before the cut.
    let db = common::open(dir.path()).await;
    let kept = db.last_seq().await.expect("last seq").unwrap_or(0);
    assert!(kept > 0 && kept < 200, "{kept}");
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_flipped_snapshot_byte_fails_verify() {
    let dir = healthy().await;
    let snap_dir = dir.path().join("snapshots").join("Total");
    let snap = fs::read_dir(&snap_dir)
        .expect("snapshots")
        .next()
        .expect("one")
        .expect("entry")
        .path();
    let mut bytes = fs::read(&snap).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    fs::write(&snap, &bytes).expect("flip");
    let verify = foldkit(&["verify", path(&dir)]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    assert!(text.contains("snapshot checksum mismatch"), "{text}");
    assert_eq!(foldkit(&["snapshots", path(&dir)]).status.code(), Some(1));
}

#[tokio::test]
async fn a_torn_tail_is_reported_not_cut_and_repair_cuts_it() {
    let dir = healthy().await;
    let last = segments(dir.path()).pop().expect("a segment");
    let len = fs::metadata(&last).expect("stat").len();
    let mut bytes = fs::read(&last).expect("read");
    bytes.extend_from_slice(&[0xab; 19]);
    fs::write(&last, &bytes).expect("tear");

    let verify = foldkit(&["verify", path(&dir)]);
    let text = stdout(&verify);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "a torn tail is not corruption: {text}"
    );
    assert!(text.contains("torn tail of 19 bytes"), "{text}");
    assert_eq!(
        stdout(&foldkit(&["events", path(&dir)])).lines().count(),
        200
    );
    assert!(stdout(&foldkit(&["info", path(&dir)])).contains("torn tail      19 bytes"));
    assert_eq!(
        fs::metadata(&last).expect("stat").len(),
        len + 19,
        "not cut"
    );

    let repaired = foldkit(&["repair", "--yes", "--json", path(&dir)]);
    assert_eq!(repaired.status.code(), Some(0), "{}", stderr(&repaired));
    assert!(
        stderr(&repaired).contains("drops 0 record(s): 19 byte(s)"),
        "{}",
        stderr(&repaired)
    );
    assert_eq!(fs::metadata(&last).expect("stat").len(), len);
    let value: serde_json::Value =
        serde_json::from_slice(&repaired.stdout).expect("stdout is the verify report alone");
    assert_eq!(value["ok"], true);
    assert_eq!(value["events"], 200);
}

#[tokio::test]
async fn a_damaged_stream_index_fails_verify() {
    let dir = healthy().await;
    let index = dir.path().join("streams.idx");
    let mut bytes = fs::read(&index).expect("read the index");
    bytes[10] ^= 0x04;
    fs::write(&index, &bytes).expect("flip");
    let verify = foldkit(&["verify", path(&dir)]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    assert!(
        text.contains("streams.idx") && text.contains("stream index unusable (checksum mismatch)"),
        "{text}"
    );
}

#[tokio::test]
async fn records_appended_without_the_chain_after_it_started_fail_verify() {
    use foldkit::prelude::*;
    let dir = healthy().await;
    let db = common::open_with(|| {
        Db::builder(dir.path())
            .state::<common::Total>()
            .chain_hashes(false)
    })
    .await;
    db.append(common::Counter::Added { n: 1 })
        .await
        .expect("append");
    db.close().await.expect("close");
    let verify = foldkit(&["verify", path(&dir)]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "hash chain broken at position 201: a record without a hash after the chain started"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn info_lists_subscription_checkpoints_with_their_lag() {
    let dir = healthy().await;
    let checkpoints = dir.path().join("checkpoints");
    fs::create_dir_all(&checkpoints).expect("mkdir");
    // The file store's checkpoint file: the position (u64 LE) and its CRC32C.
    let mut bytes = 150u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    fs::write(checkpoints.join("mailer%3Aeu.ckpt"), &bytes).expect("write");
    fs::write(checkpoints.join("broken.ckpt"), b"short").expect("write");
    let info = foldkit(&["info", path(&dir)]);
    let text = stdout(&info);
    assert!(text.contains("subscriptions  2"), "{text}");
    assert!(
        text.contains("mailer:eu") && text.contains("at 150 (lag 50)"),
        "{text}"
    );
    assert!(
        text.contains("broken") && text.contains("unreadable"),
        "{text}"
    );
    let verify = foldkit(&["verify", path(&dir)]);
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("broken.ckpt"),
        "{}",
        stdout(&verify)
    );
}

#[tokio::test]
async fn a_stray_segment_name_fails_verify_naming_it() {
    let dir = healthy().await;
    fs::write(dir.path().join("log").join("junk.seg"), b"x").expect("write");
    let verify = foldkit(&["verify", path(&dir)]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{text}{}", stderr(&verify));
    assert!(
        text.contains("junk.seg") && text.contains("not a seq of 20 digits"),
        "{text}"
    );
    // The other commands cannot read such a log: one line, exit 2.
    assert_one_line_error(&foldkit(&["events", path(&dir)]), "junk.seg");
}
