//! What the log reports: metrics through the `metrics` facade (a debugging
//! recorder installed for this test binary) and `tracing` events (captured).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use foldkit_storage::{FsyncPolicy, Log, LogOptions};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The recorder and the log text, installed once for the binary.
fn installed() -> &'static (Snapshotter, Arc<Mutex<Vec<u8>>>) {
    static ONCE: OnceLock<(Snapshotter, Arc<Mutex<Vec<u8>>>)> = OnceLock::new();
    ONCE.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("install the recorder");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&logs);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Captured(Arc::clone(&writer)))
            .init();
        (snapshotter, logs)
    })
}

/// Counter totals and histogram sample counts by name, from one snapshot
/// (a snapshot drains what it reports).
fn values() -> std::collections::HashMap<String, u64> {
    let mut found = std::collections::HashMap::new();
    for (key, _, _, value) in installed().0.snapshot().into_vec() {
        let n = match value {
            DebugValue::Counter(n) => n,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => 0,
        };
        *found.entry(key.key().name().to_owned()).or_default() += n;
    }
    found
}

fn logs() -> String {
    String::from_utf8_lossy(&installed().1.lock().expect("logs")).into_owned()
}

// One test: the recorder is global and snapshots drain histograms.
#[tokio::test]
async fn appends_fsyncs_slow_fsyncs_and_poisoning_are_reported() {
    installed();
    let dir = tempfile::tempdir().expect("tempdir");
    let slow = Arc::new(AtomicBool::new(false));
    let fail = Arc::new(AtomicBool::new(false));
    let (slow_hook, fail_hook) = (Arc::clone(&slow), Arc::clone(&fail));
    let options = LogOptions::default()
        .fsync(FsyncPolicy::Always)
        .fsync_hook(Arc::new(move || {
            if slow_hook.load(Ordering::SeqCst) {
                std::thread::sleep(foldkit_storage::SLOW_FSYNC + Duration::from_millis(20));
            }
            if fail_hook.load(Ordering::SeqCst) {
                return Err(io::Error::other("injected fsync failure"));
            }
            Ok(())
        }));
    let log = Log::open(dir.path(), options).expect("open");
    for i in 0..10u8 {
        log.append(&[i; 10]).await.expect("append");
    }
    let seen = values();
    assert_eq!(seen["foldkit_log_records_written_total"], 10);
    assert_eq!(seen["foldkit_log_bytes_written_total"], 10 * (32 + 10));
    assert!(seen["foldkit_fsync_seconds"] >= 10, "{seen:?}");
    assert!(!logs().contains("slow fsync"), "{}", logs());

    slow.store(true, Ordering::SeqCst);
    log.append(b"slow").await.expect("append");
    slow.store(false, Ordering::SeqCst);
    assert_eq!(logs().matches("slow fsync").count(), 1, "{}", logs());
    fail.store(true, Ordering::SeqCst);
    assert!(log.append(b"fails").await.is_err());
    assert!(log.append(b"refused").await.is_err());
    assert!(
        log.sync().await.is_err(),
        "a sync round after the poisoning fails too"
    );
    let text = logs();
    assert_eq!(
        text.matches("the log is poisoned").count(),
        1,
        "logged once: {text}"
    );
    assert!(text.contains("injected fsync failure"), "{text}");
    assert_eq!(values()["foldkit_log_poisoned_total"], 1);
}
