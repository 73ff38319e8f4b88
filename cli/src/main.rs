//! `foldkit`: look inside a foldkit data directory, or a PostgreSQL database
//! with `--postgres URL` (see `foldkit help`).
//!
//! This binary shows payloads as hex. To see a service's events as JSON,
//! build the same tool with its event types registered:
//! `foldkit::cli::Cli::new().event::<OrderEvent>().run()` (foldkit's `cli`
//! feature; see `foldkit::cli`), adding `.postgres(..)` as below to keep
//! `--postgres`.

use foldkit_postgres::PgStore;

fn main() -> std::process::ExitCode {
    foldkit::cli::Cli::new()
        .postgres(|url| async move { PgStore::builder(&url).read_only().connect().await })
        .run()
}
