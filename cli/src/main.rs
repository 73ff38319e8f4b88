//! `foldkit`: look inside a foldkit data directory (see `foldkit help`).
//!
//! This binary shows payloads as hex. To see a service's events as JSON,
//! build the same tool with its event types registered:
//! `foldkit::cli::Cli::new().event::<OrderEvent>().run()` (foldkit's `cli`
//! feature; see `foldkit::cli`).

fn main() -> std::process::ExitCode {
    foldkit::cli::Cli::new().run()
}
