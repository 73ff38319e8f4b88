//! The `foldkit` command line tool, as a library (cargo feature `cli`).
//!
//! The `foldkit` binary (crate `foldkit-cli`) is this with no event types
//! registered (payloads are shown as hex) and `--postgres` wired to
//! `foldkit-postgres`. A service's own binary registers its event types to see
//! them as JSON, and its aggregates to see the commands of dead letters too:
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
//! With `.aggregate::<A>()` ([`Cli::aggregate`]) for `A`'s events and commands,
//! and `.postgres(..)` ([`Cli::postgres`]) to keep `--postgres URL`.
//!
//! Commands (`foldkit help` lists them), each on a directory `DIR` or, with
//! `--postgres URL` instead, on a PostgreSQL database (see [`Cli::postgres`];
//! the `foldkit` binary has it):
//!
//! - `info`: positions, event types, streams, snapshots, subscriptions and
//!   their checkpoints, dead letters; for a directory also its format,
//!   segments, bytes, torn tail and hash chain.
//! - `verify [--quiet]`: every frame, envelope, snapshot, the stream index, the
//!   hash chain and the checkpoints of a directory; of a database, what
//!   applies ([`verify_store`](crate::inspect::verify_store)). Exit 1 on any error.
//! - `events [--from SEQ] [--to SEQ] [--type NAME] [--stream ID] [--follow]`:
//!   one line per event (payload as hex, or JSON for a registered type).
//! - `snapshots`: every snapshot, checked.
//! - `dead-letters`: the parked reactions of every process manager (manager,
//!   id, the causing event's position, type and stream, the reaction, the last
//!   error, attempts, when), read from the managers' snapshots.
//! - `repair DIR [--yes]`: the one writing command (directories only).
//!
//! Every command but `repair` is read-only: it takes no lock and writes
//! nothing, so it is safe beside a running service (see [`crate::inspect`];
//! a database is opened with `PgStore`'s read-only mode). `--json` prints JSON
//! instead of text (one object per line for `events`, `snapshots` and
//! `dead-letters`).
//!
//! Exit codes: 0 success; 1 a check failed (`verify`, `repair`, an unusable
//! snapshot for `snapshots`, dead letters that cannot be read), a repair was
//! declined, or the log is damaged where `events` read it; 2 bad input (not
//! a foldkit directory or database, a newer format, a database that does not
//! connect, an unknown event type, a bad argument), reported as one line on
//! stderr.
//!
//! This module is the only one in the crate that writes to stdout or stderr,
//! and only from [`Cli::run`].

mod dead;
mod decode;
mod events;
mod repair;
mod show;
mod source;
mod time;
mod verify;

use std::ffi::OsString;
use std::future::Future;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::inspect::InspectError;
use crate::store::{EventStore, StoreError};
use crate::{Aggregate, Event};

/// Opens the store a `--postgres URL` names.
type Opener = Arc<
    dyn Fn(String) -> BoxFuture<'static, Result<Arc<dyn EventStore>, StoreError>> + Send + Sync,
>;

/// The `foldkit` tool, with the event types to decode as JSON.
#[derive(Default, Clone)]
pub struct Cli {
    decoders: decode::Decoders,
    postgres: Option<Opener>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("events", &self.decoders.names().collect::<Vec<_>>())
            .field(
                "commands",
                &self.decoders.command_names().collect::<Vec<_>>(),
            )
            .field("postgres", &self.postgres.is_some())
            .finish()
    }
}

/// Where a read-only command looks: a directory, or `--postgres URL`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct Target {
    /// The Db directory.
    dir: Option<PathBuf>,
    /// A PostgreSQL database instead of a directory (a URL or a libpq
    /// connection string; opened read-only).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
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
    /// Positions, event types, streams, snapshots, subscriptions, dead letters
    /// (and a directory's format, segments and hash chain).
    Info {
        #[command(flatten)]
        target: Target,
    },
    /// Check every frame, envelope, snapshot, the stream index and the hash
    /// chain (of a database: what applies); exit 1 on any error.
    Verify {
        #[command(flatten)]
        target: Target,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// One line per event.
    Events {
        #[command(flatten)]
        target: Target,
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
        #[command(flatten)]
        target: Target,
    },
    /// The parked reactions of every process manager.
    DeadLetters {
        #[command(flatten)]
        target: Target,
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "this tool cannot open PostgreSQL (`--postgres`): use the `foldkit` binary of crate \
         foldkit-cli, or build yours with `Cli::postgres(..)`"
    )]
    NoPostgres,
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    #[error("internal error: {0}")]
    Internal(String),
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
    /// every stored version shows as the current one), also where a dead
    /// letter would append one.
    pub fn event<E: Event>(mut self) -> Self {
        self.decoders.register::<E>();
        self
    }

    /// Shows `A`'s events as JSON ([`event`](Self::event)), and the commands
    /// for `A` that dead letters hold.
    pub fn aggregate<A: Aggregate>(mut self) -> Self
    where
        A::Command: Serialize + DeserializeOwned,
    {
        self.decoders.register::<A::Event>();
        self.decoders.register_command::<A>();
        self
    }

    /// Lets `--postgres URL` open a store: `open` gets the URL and returns a
    /// store opened **read-only** (the commands only read, but a store opened
    /// for writing may migrate tables at connect). The `foldkit` binary passes
    /// `foldkit-postgres`' read-only store:
    ///
    /// ```ignore
    /// foldkit::cli::Cli::new()
    ///     .event::<OrderEvent>()
    ///     .postgres(|url| async move {
    ///         foldkit_postgres::PgStore::builder(&url).read_only().connect().await
    ///     })
    ///     .run()
    /// ```
    ///
    /// Without it, `--postgres` is an error naming this method.
    pub fn postgres<F, Fut, S>(mut self, open: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, StoreError>> + Send + 'static,
        S: EventStore,
    {
        self.postgres = Some(Arc::new(move |url| {
            let opened = open(url);
            Box::pin(async move { opened.await.map(|s| Arc::new(s) as Arc<dyn EventStore>) })
        }));
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
        let result = self.dispatch(&args, io);
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

impl Cli {
    fn dispatch(&self, args: &Args, io: &mut Io<'_>) -> Result<Outcome, CliError> {
        let json = args.json;
        let rt = source::Rt::new()?;
        match &args.command {
            Command::Info { target } => show::info(&self.open(target, &rt)?, json, io, &rt),
            Command::Verify { target, quiet } => {
                verify::run(&self.open(target, &rt)?, json, *quiet, io, &rt)
            }
            Command::Events {
                target,
                from,
                to,
                type_name,
                stream,
                follow,
            } => {
                let filter = events::Filter {
                    from: *from,
                    to: *to,
                    name: type_name.clone(),
                    stream: stream.clone(),
                    follow: *follow,
                };
                let source = self.open(target, &rt)?;
                events::run(&source, &filter, &self.decoders, json, io, &rt)
            }
            Command::Snapshots { target } => {
                show::snapshots(&self.open(target, &rt)?, json, io, &rt)
            }
            Command::DeadLetters { target } => {
                dead::run(&self.open(target, &rt)?, &self.decoders, json, io, &rt)
            }
            Command::Repair { dir, yes } => repair::run(dir, *yes, json, io),
        }
    }

    fn open(&self, target: &Target, rt: &source::Rt) -> Result<source::Source, CliError> {
        match (&target.dir, &target.postgres) {
            (_, Some(url)) => {
                let open = self.postgres.clone().ok_or(CliError::NoPostgres)?;
                let url = url.clone();
                let store = rt.run(async move { open(url).await })??;
                Ok(source::Source::Store { store })
            }
            (Some(dir), None) => source::Source::directory(dir),
            // clap's group makes one of them required.
            (None, None) => Err(CliError::Internal("neither DIR nor --postgres".into())),
        }
    }
}

/// An error and its causes on one line (a cause whose text its error already
/// ends with, as some libraries print it, is not repeated).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
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
