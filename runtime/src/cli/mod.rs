//! The `foldkit` command line tool, as a library (cargo feature `cli`).
//!
//! The `foldkit` binary (crate `foldkit-cli`) is this with no event types
//! registered: payloads are shown as hex. A service's own binary registers
//! its event types to see them as JSON:
//!
//! ```no_run
//! use foldkit::prelude::*;
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! enum OrderEvent {
//!     Placed { id: u64 },
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     foldkit::cli::Cli::new().event::<OrderEvent>().run()
//! }
//! ```
//!
//! Commands (`foldkit help` lists them): `info DIR`, `verify DIR`, `events DIR
//! [--from SEQ] [--to SEQ] [--type NAME] [--stream ID] [--follow]`, `snapshots
//! DIR` and `repair DIR [--yes]`. Every command but `repair` is read-only: it
//! takes no lock and writes nothing, so it is safe beside a running service
//! (see [`crate::inspect`]). `--json` prints JSON instead of text (one object
//! per line for `events`).
//!
//! Exit codes: 0 success; 1 a check failed (`verify`, `repair`, an unusable
//! snapshot for `snapshots`), a repair was declined, or the log is damaged
//! where `events` read it; 2 bad input (not a foldkit directory, a
//! newer format, an unknown event type, a bad argument), reported as one line
//! on stderr.
//!
//! This module is the only one in the crate that writes to stdout or stderr,
//! and only from [`Cli::run`].

mod decode;
mod repair;
mod show;
mod time;
mod verify;

use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::Event;
use crate::inspect::InspectError;

/// The `foldkit` tool, with the event types to decode as JSON.
#[derive(Default, Clone)]
pub struct Cli {
    decoders: decode::Decoders,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("events", &self.decoders.names().collect::<Vec<_>>())
            .finish()
    }
}

/// Look inside a foldkit data directory.
#[derive(Debug, Parser)]
#[command(name = "foldkit", version, about)]
struct Args {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Format, positions, segments, event types, streams, snapshots, subscriptions.
    Info {
        /// The Db directory.
        dir: PathBuf,
    },
    /// Check every frame, envelope, snapshot, the stream index and the hash
    /// chain; exit 1 on any error.
    Verify {
        /// The Db directory.
        dir: PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// One line per event.
    Events {
        /// The Db directory.
        dir: PathBuf,
        /// The first position to show.
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        /// The last position to show.
        #[arg(long, value_name = "SEQ")]
        to: Option<u64>,
        /// Only events of this type.
        #[arg(long = "type", value_name = "NAME")]
        type_name: Option<String>,
        /// Only events of this stream.
        #[arg(long, value_name = "ID")]
        stream: Option<String>,
        /// Keep polling for new events (read-only; stop with Ctrl-C).
        #[arg(long)]
        follow: bool,
    },
    /// Every snapshot, checked.
    Snapshots {
        /// The Db directory.
        dir: PathBuf,
    },
    /// Cut a damaged log at its first bad record (the one writing command:
    /// the service must be stopped). Damaged segments are copied aside first.
    Repair {
        /// The Db directory.
        dir: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Why a command could not run.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error("no event type named `{name}` in {where_}{known}")]
    UnknownType {
        name: String,
        where_: String,
        known: String,
    },
    #[error("`{}` is open by a running process: stop it before `foldkit repair`", dir.display())]
    Locked { dir: PathBuf },
    #[error("{op} `{}` failed", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the output")]
    Output(#[source] io::Error),
    #[error(transparent)]
    Storage(#[from] foldkit_storage::StorageError),
}

/// What a command ended with.
pub(crate) enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: a check failed.
    Failed,
}

/// Standard streams, swappable in tests.
pub(crate) struct Io<'a> {
    pub(crate) out: &'a mut dyn Write,
    pub(crate) err: &'a mut dyn Write,
    pub(crate) input: &'a mut dyn BufRead,
    /// Whether stderr is a terminal (progress bars only then).
    pub(crate) tty: bool,
}

impl Cli {
    /// A tool with no event types registered (payloads shown as hex).
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows events of type `E` as JSON (decoded with `E`'s upcasting, so
    /// every stored version shows as the current one).
    pub fn event<E: Event>(mut self) -> Self {
        self.decoders.register::<E>();
        self
    }

    /// Parses the process's arguments, runs the command and returns its exit
    /// code (see the [module docs](self)).
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// [`run`](Self::run) with the given arguments (the first is the program name).
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let stdout = io::stdout();
        let stderr = io::stderr();
        let stdin = io::stdin();
        let tty = std::io::IsTerminal::is_terminal(&stderr);
        let (mut out, mut err, mut input) = (stdout.lock(), stderr.lock(), stdin.lock());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            input: &mut input,
            tty,
        };
        ExitCode::from(self.run_with(args, &mut io))
    }

    /// [`run_from`](Self::run_from) writing to `out` and `err` instead of the
    /// process's streams, with nothing on stdin (`repair` then needs `--yes`
    /// to change anything). Returns the exit code. For embedding and tests.
    pub fn run_with_output<I, T>(self, args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut input: &[u8] = b"";
        let mut io = Io {
            out,
            err,
            input: &mut input,
            tty: false,
        };
        self.run_with(args, &mut io)
    }

    pub(crate) fn run_with<I, T>(&self, args: I, io: &mut Io<'_>) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args = match Args::try_parse_from(args) {
            Ok(args) => args,
            Err(error) => {
                let code = if error.use_stderr() { 2 } else { 0 };
                let text = error.render().to_string();
                let _ = if error.use_stderr() {
                    io.err.write_all(text.as_bytes())
                } else {
                    io.out.write_all(text.as_bytes())
                };
                return code;
            }
        };
        let result = match &args.command {
            Command::Info { dir } => show::info(dir, args.json, io),
            Command::Verify { dir, quiet } => verify::run(dir, args.json, *quiet, io),
            Command::Events {
                dir,
                from,
                to,
                type_name,
                stream,
                follow,
            } => {
                let filter = show::Filter {
                    from: *from,
                    to: *to,
                    name: type_name.clone(),
                    stream: stream.clone(),
                    follow: *follow,
                };
                show::events(dir, &filter, &self.decoders, args.json, io)
            }
            Command::Snapshots { dir } => show::snapshots(dir, args.json, io),
            Command::Repair { dir, yes } => repair::run(dir, *yes, args.json, io),
        };
        let _ = io.out.flush();
        match result {
            Ok(Outcome::Ok) => 0,
            Ok(Outcome::Failed) => 1,
            Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
            Err(error) => {
                let _ = writeln!(io.err, "foldkit: error: {}", chain(&error));
                2
            }
        }
    }
}

/// An error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Writes a line, mapping a failure to [`CliError::Output`].
macro_rules! out {
    ($io:expr, $($arg:tt)*) => {
        writeln!($io.out, $($arg)*).map_err($crate::cli::CliError::Output)
    };
}
pub(crate) use out;

#[cfg(test)]
mod tests;
