//! Throwaway PostgreSQL servers for tests and benchmarks (feature `testing`).
//!
//! [`PgServer::start`] runs `initdb` into a temporary directory and starts a
//! server on a free 127.0.0.1 port, with its unix socket in that directory too,
//! so tests never touch a server they did not start. Binaries are found via
//! `FOLDKIT_PG_BINDIR`, `pg_config --bindir`, or `/usr/lib/postgresql/*/bin`
//! (the newest). PostgreSQL refuses to run as root, so when the process is
//! root the server runs as the `postgres` OS user (`runuser`), with the
//! directory given to that user.
//!
//! The server is stopped (immediate shutdown) and its directory removed when
//! the [`PgServer`] is dropped, including while a test panics; a small
//! watchdog process does the same if the test process dies without unwinding.
//!
//! Without server binaries, [`server_or_skip`] prints one line saying the
//! PostgreSQL tests were skipped and how to enable them, and returns `None`;
//! with `FOLDKIT_REQUIRE_POSTGRES=1` it panics instead (CI sets it).
//!
//! Everything here but [`migrate_to`] is blocking (processes, files): call it
//! outside a runtime.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// A harness failure: which step, and what it said.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// No PostgreSQL server binaries were found.
    #[error("no PostgreSQL server binaries found ({0})")]
    NoBinaries(String),
    /// A command failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (or the server log).
        output: String,
    },
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// How a server is configured.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    fsync: bool,
    settings: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            fsync: true,
            settings: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// Durable commits (the default) or not (faster, for tests that never
    /// crash the server).
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// One `postgresql.conf` setting.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running throwaway server. See the [module docs](self).
#[derive(Debug)]
pub struct PgServer {
    dir: tempfile::TempDir,
    data: PathBuf,
    bindir: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

/// The directory with `initdb`, `pg_ctl` and `postgres`, if there is one.
pub fn find_bindir() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("FOLDKIT_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return has(&dir).then_some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&dir) {
            return Some(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let dir = entry.path().join("bin");
            has(&dir).then_some((version, dir))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir)
}

/// Creates or upgrades foldkit's tables at `url` to schema version `version`
/// only, as an older build would have left them (for migration tests);
/// returns the version found before.
///
/// # Cancel safety
///
/// As [`PgStoreBuilder::connect`](crate::PgStoreBuilder::connect): the
/// migration commits whole or rolls back.
pub async fn migrate_to(url: &str, version: u32) -> Result<u32, foldkit::store::StoreError> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| crate::error::backend("connect to the database to migrate", e))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let found = crate::schema::migrate_to(&mut client, version).await;
    drop(client);
    let _ = driver.await;
    found
}

/// Whether a missing server must fail the tests (`FOLDKIT_REQUIRE_POSTGRES=1`).
pub fn required() -> bool {
    std::env::var("FOLDKIT_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A started server, or `None` (after one line on stderr for the whole test
/// binary) when there are no server binaries and they are not required.
///
/// # Panics
///
/// When the binaries are missing and `FOLDKIT_REQUIRE_POSTGRES=1`, or when a
/// server cannot be started.
pub fn server_or_skip(options: ServerOptions) -> Option<PgServer> {
    if find_bindir().is_none() {
        let why = "no PostgreSQL server binaries (initdb) in FOLDKIT_PG_BINDIR, `pg_config --bindir` \
                   or /usr/lib/postgresql/*/bin";
        if required() {
            panic!("FOLDKIT_REQUIRE_POSTGRES=1 but {why}");
        }
        static SKIP: Once = Once::new();
        SKIP.call_once(|| {
            // Straight to stderr: the test harness does not capture this.
            let _ = writeln!(
                std::io::stderr(),
                "foldkit-postgres: PostgreSQL tests skipped: {why}; install PostgreSQL \
                 (e.g. `apt-get install postgresql`) or set FOLDKIT_PG_BINDIR to run them, \
                 FOLDKIT_REQUIRE_POSTGRES=1 to make this a failure"
            );
        });
        return None;
    }
    match PgServer::start_with(options) {
        Ok(server) => Some(server),
        Err(e) => panic!("cannot start a throwaway PostgreSQL server: {e}"),
    }
}

impl PgServer {
    /// `initdb` and start a durable (fsync on) server.
    pub fn start() -> Result<PgServer, HarnessError> {
        Self::start_with(ServerOptions::default())
    }

    /// `initdb` and start a server with `options`.
    pub fn start_with(options: ServerOptions) -> Result<PgServer, HarnessError> {
        let mut server = Self::prepare()?;
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(&server.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        server.run(initdb, "initdb")?;
        server.configure(&options)?;
        server.launch()?;
        Ok(server)
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started.
    pub fn standby_of(
        primary: &PgServer,
        options: ServerOptions,
    ) -> Result<PgServer, HarnessError> {
        let mut server = Self::prepare()?;
        let mut backup = server.command("pg_basebackup");
        backup
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "postgres", "-R", "-X", "stream", "-c", "fast", "-D"])
            .arg(&server.data);
        server.run(backup, "pg_basebackup")?;
        server.configure(&options)?;
        server.launch()?;
        Ok(server)
    }

    fn prepare() -> Result<PgServer, HarnessError> {
        let bindir = find_bindir()
            .ok_or_else(|| HarnessError::NoBinaries("see FOLDKIT_PG_BINDIR".into()))?;
        let dir = tempfile::Builder::new()
            .prefix("foldkit-pg-")
            .tempdir()
            .map_err(io("create a temporary directory"))?;
        let as_postgres = rustix::process::geteuid().is_root();
        if as_postgres {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(io(format!(
                "give {} to the postgres user",
                dir.path().display()
            )))?;
        }
        let data = dir.path().join("data");
        let server = PgServer {
            dir,
            data,
            bindir,
            port: 0,
            as_postgres,
            running: false,
        };
        server.spawn_watchdog()?;
        Ok(server)
    }

    fn configure(&mut self, options: &ServerOptions) -> Result<(), HarnessError> {
        self.port = free_port()?;
        let conf = self.data.join("postgresql.conf");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io(format!("open {}", conf.display())))?;
        let mut text = format!(
            "\n# foldkit-postgres test harness\nport = {}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nfsync = {}\nmax_connections = 300\n\
             shared_buffers = 32MB\n",
            self.port,
            self.dir.path().display(),
            if options.fsync { "on" } else { "off" },
        );
        for (name, value) in &options.settings {
            text.push_str(&format!("{name} = {value}\n"));
        }
        file.write_all(text.as_bytes())
            .map_err(io(format!("write {}", conf.display())))
    }

    fn launch(&mut self) -> Result<(), HarnessError> {
        let log = self.dir.path().join("server.log");
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"]);
        if let Err(e) = self.run(start, "pg_ctl start") {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            return Err(HarnessError::Command {
                command: "pg_ctl start".into(),
                status: e.to_string(),
                output: tail,
            });
        }
        self.running = true;
        Ok(())
    }

    /// Starts the server again after [`stop`](Self::stop) or [`kill9`](Self::kill9).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.launch()
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` for a multi-host connection string.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A connection URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, HarnessError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    /// Runs `sql` with `psql` on database `db`; returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        let mut psql = Command::new(self.bindir.join("psql"));
        psql.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ]);
        let out = psql.stdin(Stdio::null()).output().map_err(io("run psql"))?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                command: format!("psql -c {sql:?}"),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    pub fn promote(&self) -> Result<(), HarnessError> {
        let mut promote = self.command("pg_ctl");
        promote
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "promote"]);
        self.run(promote, "pg_ctl promote")
    }

    /// SIGKILLs the postmaster and every process it started: a node loss.
    pub fn kill9(&mut self) -> Result<(), HarnessError> {
        let pid = self.postmaster_pid()?;
        let children = children_of(pid);
        for p in std::iter::once(pid).chain(children) {
            if let Some(p) = rustix::process::Pid::from_raw(p) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        self.running = false;
        // Wait until the port is free again (the processes are gone).
        wait_gone(pid);
        Ok(())
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`).
    pub fn stop(&mut self) -> Result<(), HarnessError> {
        if !self.running {
            return Ok(());
        }
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        self.running = false;
        self.run(stop, "pg_ctl stop")
    }

    fn postmaster_pid(&self) -> Result<i32, HarnessError> {
        let file = self.data.join("postmaster.pid");
        let text = fs::read_to_string(&file).map_err(io(format!("read {}", file.display())))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| HarnessError::Command {
                command: format!("read {}", file.display()),
                status: "no pid".into(),
                output: text.clone(),
            })
    }

    /// A command running `bin` from the server binaries, as the postgres
    /// user when we are root.
    fn command(&self, bin: &str) -> Command {
        let path = self.bindir.join(bin);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// Runs `cmd` with its output in a file (a server started by it must not
    /// hold a pipe of ours open).
    fn run(&self, mut cmd: Command, what: &str) -> Result<(), HarnessError> {
        let out_path = self
            .dir
            .path()
            .join(format!("{}.out", what.replace(' ', "_")));
        let out = File::create(&out_path).map_err(io(format!("create {}", out_path.display())))?;
        let err = out.try_clone().map_err(io("clone a file handle"))?;
        let status = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(io(format!("run {what}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(HarnessError::Command {
                command: what.into(),
                status: status.to_string(),
                output: fs::read_to_string(&out_path).unwrap_or_default(),
            })
        }
    }

    /// A detached shell that stops the server and removes the directory once
    /// this process is gone (for deaths that skip `Drop`).
    fn spawn_watchdog(&self) -> Result<(), HarnessError> {
        let me = std::process::id();
        let dir = self.dir.path().display().to_string();
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
             if [ -f '{dir}/data/postmaster.pid' ]; then \
               kill -QUIT \"$(head -n1 '{dir}/data/postmaster.pid')\" 2>/dev/null; sleep 1; fi; \
             rm -rf '{dir}'"
        );
        // In its own session (setsid, where there is one), so that killing
        // the test's process group does not take the watchdog with it.
        let mut cmd = if Path::new("/usr/bin/setsid").exists() {
            let mut c = Command::new("/usr/bin/setsid");
            c.arg("sh");
            c
        } else {
            Command::new("sh")
        };
        cmd.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("start the server watchdog"))?;
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            if let Ok(pid) = self.postmaster_pid()
                && let Some(pid) = rustix::process::Pid::from_raw(pid)
            {
                // SIGQUIT: immediate shutdown; no need to wait for a checkpoint.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::QUIT);
                wait_gone(pid.as_raw_nonzero().get());
            }
            self.running = false;
        }
    }
}

fn postgres_ids() -> Result<(u32, u32), HarnessError> {
    let id = |flag: &str| -> Result<u32, HarnessError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(io("run id"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| HarnessError::Command {
                command: format!("id {flag} postgres"),
                status: out.status.to_string(),
                output: "running as root needs a `postgres` OS user to run the server".into(),
            })
    };
    Ok((id("-u")?, id("-g")?))
}

fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("read the free port"))?
        .port();
    Ok(port)
}

/// Waits (at most 10 s) until process `pid` has exited: gone, or a zombie
/// (its parent, not us, reaps it whenever it likes).
fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next());
                if matches!(state, Some("Z" | "X")) {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The pids whose parent is `pid` (from /proc).
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}
