//! Where the service keeps its data and listens: flags, then environment, then defaults.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the service keeps its data and listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Db directory (`--data-dir`, `FOLDKIT_DATA_DIR`; default `./bank-data`).
    pub data_dir: PathBuf,
    /// The address to listen on (`--addr`, `FOLDKIT_ADDR`; default `127.0.0.1:3000`).
    pub addr: SocketAddr,
    /// A PostgreSQL connection URL (`--postgres`, `FOLDKIT_POSTGRES`): when set,
    /// the events live there (many instances can share it) and `data_dir` is unused.
    pub postgres: Option<String>,
}

/// The usage text of the `bank_http` example.
pub const USAGE: &str = "\
usage: bank_http [--data-dir DIR | --postgres URL] [--addr HOST:PORT]

  --data-dir DIR     the Db directory (env FOLDKIT_DATA_DIR; default ./bank-data)
  --postgres URL     keep the events in PostgreSQL instead, shared by every instance
                     given the same URL (env FOLDKIT_POSTGRES)
  --addr HOST:PORT   the address to listen on (env FOLDKIT_ADDR; default 127.0.0.1:3000)";

impl Config {
    /// Reads the flags in `args` (without the program name), falling back on the
    /// variables `env` gives, then on the defaults. `Ok(None)`: `--help` was asked.
    pub fn parse(
        args: impl IntoIterator<Item = OsString>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Option<Self>, String> {
        let mut flags: HashMap<&str, OsString> = HashMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let text = arg
                .to_str()
                .ok_or_else(|| format!("argument {arg:?} is not UTF-8"))?;
            if text == "-h" || text == "--help" {
                return Ok(None);
            }
            let (name, inline) = match text.split_once('=') {
                Some((name, value)) => (name, Some(OsString::from(value))),
                None => (text, None),
            };
            let name = match name {
                "--data-dir" => "data-dir",
                "--addr" => "addr",
                "--postgres" => "postgres",
                _ => return Err(format!("unknown argument {text:?}")),
            };
            let value = match inline {
                Some(value) => value,
                None => args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?,
            };
            flags.insert(name, value);
        }
        let data_dir = flags
            .remove("data-dir")
            .or_else(|| env("FOLDKIT_DATA_DIR"))
            .map_or_else(|| PathBuf::from("./bank-data"), PathBuf::from);
        let addr = match flags.remove("addr").or_else(|| env("FOLDKIT_ADDR")) {
            Some(addr) => {
                let text = addr
                    .to_str()
                    .ok_or_else(|| format!("address {addr:?} is not UTF-8"))?;
                text.parse()
                    .map_err(|e| format!("invalid address {text:?}: {e}"))?
            }
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let postgres = match flags.remove("postgres").or_else(|| env("FOLDKIT_POSTGRES")) {
            Some(url) => Some(
                url.into_string()
                    .map_err(|url| format!("PostgreSQL URL {url:?} is not UTF-8"))?,
            ),
            None => None,
        };
        Ok(Some(Self {
            data_dir,
            addr,
            postgres,
        }))
    }
}

#[cfg(test)]
mod postgres_tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Config>, String> {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::parse(args.iter().map(OsString::from), |key| env.get(key).cloned())
    }

    #[test]
    fn the_store_is_a_directory_unless_a_postgres_url_is_given() {
        let config = parse(&[], &[]).expect("parse").expect("config");
        assert_eq!(config.postgres, None);
        let url = "postgres://app@db1,db2/bank?target_session_attrs=read-write";
        let config = parse(&["--postgres", url], &[])
            .expect("parse")
            .expect("config");
        assert_eq!(config.postgres.as_deref(), Some(url));
        let config = parse(&[], &[("FOLDKIT_POSTGRES", "postgres://env/bank")])
            .expect("parse")
            .expect("config");
        assert_eq!(config.postgres.as_deref(), Some("postgres://env/bank"));
        let config = parse(
            &["--postgres=postgres://flag/bank"],
            &[("FOLDKIT_POSTGRES", "postgres://env/bank")],
        )
        .expect("parse")
        .expect("config");
        assert_eq!(
            config.postgres.as_deref(),
            Some("postgres://flag/bank"),
            "the flag wins"
        );
        assert!(parse(&["--postgres"], &[]).is_err(), "a value is required");
    }
}
