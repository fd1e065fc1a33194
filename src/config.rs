//! The command line: every flag of the contract, parsed with pico-args into a `Config`.
//! A bad flag or value is one clear line; `main` prints it with the usage and exits 2.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::core::address::parse_host_port;
use crate::limits::{
    BODY_BYTES_MAX_DEFAULT, BOOTSTRAP_LIMIT_S_DEFAULT, BOOTSTRAP_LIMIT_S_MAX, CONNECTIONS_MAX, CONNECTIONS_MAX_DEFAULT,
    LOCK_TIMEOUT_S_DEFAULT, LOCK_TTL_S_MAX, RM_LIMIT_DAYS_DEFAULT, SNAPSHOTS_KEPT_DEFAULT, SNAPSHOTS_KEPT_MAX,
};

pub const DEFAULT_PORT: u16 = 8001;

/// What a build without the `tls` feature answers to `--tls-cert`, `--tls-key` and `--peer-ca`.
pub const BUILT_WITHOUT_TLS: &str = "built without TLS: rebuild with --features tls";

pub const USAGE: &str = "\
Usage: lighthouse [OPTIONS]

A highly-available, light-weight, in-memory distributed store for one JSON document, served
over HTTP. Read with GET /data/PATH; change it by taking the lock (PUT /lock), staging under
/update/NAME/PATH, and committing (PUT /lock/NAME) or aborting (DELETE /lock/NAME).
The same binary is a client: lighthouse get|put|patch|delete|edit|watch|lock|status
(each takes --help; docs/client.md).

Options:
  --help                     print this help and exit
  --version                  print the version and exit
  --data.d=DIR               keep a snapshot of every version in DIR (created if missing) and
                             load the newest valid one at start; without it, memory only
  --bind=IP[:PORT]           address to listen on (default 127.0.0.1:8001)
  --port=PORT                port to listen on (overrides the port of --bind)
  --advertise=HOST:PORT      address peers use to reach this node (default: the bind address)
  --seeds=HOST:PORT,...      nodes to join at start
  --bootstrap                serve at once, without waiting to catch up with the cluster
  --bootstrap-limit=SECONDS  longest wait to catch up before serving anyway (default 120)
  --lock-timeout=SECONDS     a lock lapses this long after its holder's last request (default 30)
  --rm-limit=DAYS            remove snapshots older than this, never the newest (default 7)
  --keep-snapshots=N         keep at most N snapshots, the newest ones (default 20)
  --start-empty              start from an empty store even when every snapshot in --data.d
                             is damaged (the damaged files are kept)
  --accept-lost-versions     take writes even though a damaged snapshot shows no sequence:
                             new versions are numbered after the highest sequence still known
  --force-new-cluster        recover from a majority of voters lost for good: this node goes on,
                             with the store in its --data.d, as the only voter of a new term of
                             its cluster; wipe the other old members before adding them again
                             (--seeds), and start without this flag after
  --writes=MODE              coordinated (default: one lock for the cluster, commits durable on a
                             majority of voters) or local (each node its own lock)
  --max-body=BYTES           largest request body accepted (default 67108864)
  --max-connections=N        open client connections; more are answered 503 (default 16384)
  --log-level=LEVEL          off, error, warn, info, debug or trace (default info)
  --token-file=PATH          require 'Authorization: Bearer TOKEN' for changes (first line of PATH)
  --read-token-file=PATH     require a token for reads too
  --cluster-key-file=PATH    key that protects and authenticates the peer endpoints
  --cors=ORIGIN[,ORIGIN...]  let pages on these origins (or * for any) read and write from a browser
  --tls-cert=FILE            serve HTTPS with this PEM certificate chain (to clients and peers alike;
                             needs --tls-key and a build with --features tls); SIGHUP re-reads it
  --tls-key=FILE             the PEM private key of --tls-cert
  --peer-ca=FILE             PEM certificates that verify the peers' (default: the system's roots)
";

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: Option<PathBuf>,
    pub bind: SocketAddr,
    pub advertise: Option<String>,
    pub seeds: Vec<String>,
    pub bootstrap: bool,
    pub bootstrap_limit_s: u64,
    pub lock_timeout_s: u64,
    pub rm_limit_days: f64,
    /// Snapshots kept in the data directory at most (`--keep-snapshots`).
    pub keep_snapshots: usize,
    /// Start from `{}` even when every snapshot is damaged (`--start-empty`).
    pub start_empty: bool,
    /// Take writes even though a damaged snapshot shows no sequence (`--accept-lost-versions`).
    pub accept_lost_versions: bool,
    /// Go on alone after a majority of the voters is lost (`--force-new-cluster`).
    pub force_new_cluster: bool,
    pub max_body: u64,
    pub max_connections: usize,
    pub log_level: log::LevelFilter,
    /// How writes work in a cluster (`--writes`).
    pub writes: Writes,
    pub token_file: Option<PathBuf>,
    pub read_token_file: Option<PathBuf>,
    pub cluster_key_file: Option<PathBuf>,
    /// The origins whose pages may use this server from a browser (`--cors`).
    pub cors: Option<crate::http::Cors>,
    /// The PEM certificate chain and key served over TLS (`--tls-cert`, `--tls-key`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The PEM certificates that verify peers' (`--peer-ca`); the system's roots without it.
    pub peer_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: None,
            bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            advertise: None,
            seeds: Vec::new(),
            bootstrap: false,
            bootstrap_limit_s: BOOTSTRAP_LIMIT_S_DEFAULT,
            lock_timeout_s: LOCK_TIMEOUT_S_DEFAULT,
            rm_limit_days: RM_LIMIT_DAYS_DEFAULT,
            keep_snapshots: SNAPSHOTS_KEPT_DEFAULT,
            start_empty: false,
            accept_lost_versions: false,
            force_new_cluster: false,
            max_body: BODY_BYTES_MAX_DEFAULT,
            max_connections: CONNECTIONS_MAX_DEFAULT,
            log_level: log::LevelFilter::Info,
            writes: Writes::Coordinated,
            token_file: None,
            read_token_file: None,
            cluster_key_file: None,
            cors: None,
            tls_cert: None,
            tls_key: None,
            peer_ca: None,
        }
    }
}

/// How writes work in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// One lock for the whole cluster, held by an elected coordinator; a commit is answered once a
    /// majority of voters holds it durably.
    Coordinated,
    /// Each node its own lock; concurrent commits on two nodes: the greater version wins.
    Local,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

impl Config {
    /// Some TLS flag is given (a build without the feature refuses them all).
    pub fn wants_tls(&self) -> bool {
        self.tls_cert.is_some() || self.tls_key.is_some() || self.peer_ca.is_some()
    }

    /// The TLS flags go together: a certificate with its key, and `--peer-ca` only on a node that
    /// speaks TLS (its peers are reached over TLS when it does).
    fn check_tls(&self) -> Result<(), String> {
        match (&self.tls_cert, &self.tls_key, &self.peer_ca) {
            (Some(_), None, _) => Err("--tls-cert needs --tls-key, the certificate's private key".into()),
            (None, Some(_), _) => Err("--tls-key needs --tls-cert, the certificate it is the key of".into()),
            (None, None, Some(_)) => {
                Err("--peer-ca needs --tls-cert and --tls-key: peers speak TLS only to a node that does".into())
            }
            _ => Ok(()),
        }
    }

    /// The address peers know this node by.
    pub fn address(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.bind.to_string())
    }

    /// A node in a cluster tells its peers the address to reach it by: an unspecified bind
    /// address (`0.0.0.0`, `[::]`) is none, and without `--advertise` the peers would register a
    /// voter at `0.0.0.0:PORT` that no one can reach. Checked here for `--seeds`, and at start-up
    /// for a data directory whose snapshot names peers.
    pub fn check_reachable_name(&self) -> Result<(), String> {
        if self.bind.ip().is_unspecified() && self.advertise.is_none() {
            return Err(format!(
                "--bind={} listens on every address, so it names none the other nodes can reach: add \
                 --advertise=HOST:PORT, the address they reach this node by",
                self.bind
            ));
        }
        Ok(())
    }
}

/// The flags that take a value, as `--flag=VALUE` or `--flag VALUE`.
const VALUE_FLAGS: [&str; 20] = [
    "--cors",
    "--writes",
    "--data.d",
    "--bind",
    "--port",
    "--advertise",
    "--seeds",
    "--bootstrap-limit",
    "--lock-timeout",
    "--rm-limit",
    "--keep-snapshots",
    "--max-body",
    "--max-connections",
    "--log-level",
    "--token-file",
    "--read-token-file",
    "--cluster-key-file",
    "--tls-cert",
    "--tls-key",
    "--peer-ca",
];

/// Parses the arguments (without the program name). Empty arguments are ignored (scripts pass
/// `''` for options they leave unset); a flag given twice takes its last value.
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    let args = normalize(args)?;
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains("--help") || args.contains("-h") {
        return Ok(Command::Help);
    }
    if args.contains("--version") || args.contains("-V") {
        return Ok(Command::Version);
    }
    let defaults = Config::default();
    let mut config = Config {
        data_dir: last(&mut args, "--data.d", |s| non_empty(s).map(PathBuf::from))?,
        bind: last(&mut args, "--bind", parse_bind)?.unwrap_or(defaults.bind),
        advertise: last(&mut args, "--advertise", parse_host_port)?,
        seeds: last(&mut args, "--seeds", parse_seeds)?.unwrap_or_default(),
        bootstrap: flag(&mut args, "--bootstrap"),
        bootstrap_limit_s: last(&mut args, "--bootstrap-limit", |s| ranged(s, 0, BOOTSTRAP_LIMIT_S_MAX))?
            .unwrap_or(defaults.bootstrap_limit_s),
        lock_timeout_s: last(&mut args, "--lock-timeout", |s| ranged(s, 1, LOCK_TTL_S_MAX))?
            .unwrap_or(defaults.lock_timeout_s),
        rm_limit_days: last(&mut args, "--rm-limit", parse_days)?.unwrap_or(defaults.rm_limit_days),
        keep_snapshots: last(&mut args, "--keep-snapshots", |s| ranged(s, 1, SNAPSHOTS_KEPT_MAX as u64))?
            .map_or(defaults.keep_snapshots, |n| n as usize),
        start_empty: flag(&mut args, "--start-empty"),
        accept_lost_versions: flag(&mut args, "--accept-lost-versions"),
        force_new_cluster: flag(&mut args, "--force-new-cluster"),
        max_body: last(&mut args, "--max-body", |s| ranged(s, 1, u64::MAX))?.unwrap_or(defaults.max_body),
        max_connections: last(&mut args, "--max-connections", |s| ranged(s, 1, CONNECTIONS_MAX as u64))?
            .map_or(defaults.max_connections, |n| n as usize),
        log_level: last(&mut args, "--log-level", parse_level)?.unwrap_or(defaults.log_level),
        writes: last(&mut args, "--writes", parse_writes)?.unwrap_or(defaults.writes),
        token_file: last(&mut args, "--token-file", |s| non_empty(s).map(PathBuf::from))?,
        read_token_file: last(&mut args, "--read-token-file", |s| non_empty(s).map(PathBuf::from))?,
        cluster_key_file: last(&mut args, "--cluster-key-file", |s| non_empty(s).map(PathBuf::from))?,
        cors: last(&mut args, "--cors", crate::http::Cors::parse)?,
        tls_cert: last(&mut args, "--tls-cert", |s| non_empty(s).map(PathBuf::from))?,
        tls_key: last(&mut args, "--tls-key", |s| non_empty(s).map(PathBuf::from))?,
        peer_ca: last(&mut args, "--peer-ca", |s| non_empty(s).map(PathBuf::from))?,
    };
    if let Some(port) = last(&mut args, "--port", |s| ranged(s, 0, u64::from(u16::MAX)))? {
        config.bind.set_port(port as u16);
    }
    let rest = args.finish();
    if let Some(first) = rest.first() {
        return Err(format!("unknown argument '{}'", first.to_string_lossy()));
    }
    if !config.seeds.is_empty() {
        config.check_reachable_name()?;
    }
    config.check_tls()?;
    Ok(Command::Run(Box::new(config)))
}

/// Drops empty arguments, and refuses a flag that takes a value whose next argument is another
/// flag: `--data.d --port=1` must not make a directory named `--port=1`.
fn normalize(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let args: Vec<OsString> = args.into_iter().filter(|a| !a.is_empty()).collect();
    for pair in args.windows(2) {
        let (flag, next) = (pair[0].to_string_lossy(), pair[1].to_string_lossy());
        if VALUE_FLAGS.contains(&flag.as_ref()) && next.starts_with('-') {
            return Err(format!("{flag} needs a value (it was followed by '{next}')"));
        }
    }
    if let Some(flag) = args.last().map(|a| a.to_string_lossy()).filter(|a| VALUE_FLAGS.contains(&a.as_ref())) {
        return Err(format!("{flag} needs a value"));
    }
    Ok(args)
}

/// The last value of an optional flag given any number of times, with the flag's name in any error.
fn last<T>(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let mut found = None;
    loop {
        let value = args.opt_value_from_fn(flag, parse).map_err(|e| match e {
            pico_args::Error::Utf8ArgumentParsingFailed { cause, .. } => format!("{flag}: {cause}"),
            pico_args::Error::OptionWithoutAValue(_) => format!("{flag} needs a value"),
            other => format!("{flag}: {other}"),
        })?;
        match value {
            Some(value) => found = Some(value),
            None => return Ok(found),
        }
    }
}

/// A flag without a value, given any number of times.
fn flag(args: &mut pico_args::Arguments, flag: &'static str) -> bool {
    let mut found = false;
    while args.contains(flag) {
        found = true;
    }
    found
}

fn non_empty(s: &str) -> Result<&str, String> {
    if s.is_empty() { Err("the value is empty".into()) } else { Ok(s) }
}

/// A whole number from `min` to `max`, with the range in the error.
fn ranged(s: &str, min: u64, max: u64) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a whole number from {min} to {max}")),
    }
}

fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = s.parse::<SocketAddr>() {
        return Ok(address);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, DEFAULT_PORT)).map_err(|_| format!("'{s}' is not IP or IP:PORT"))
}

fn parse_seeds(s: &str) -> Result<Vec<String>, String> {
    s.split(',').filter(|seed| !seed.trim().is_empty()).map(|seed| parse_host_port(seed.trim())).collect()
}

fn parse_days(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(days) if days.is_finite() && days >= 0.0 => Ok(days),
        _ => Err(format!("'{s}' is not a number of days")),
    }
}

fn parse_writes(s: &str) -> Result<Writes, String> {
    match s {
        "coordinated" => Ok(Writes::Coordinated),
        "local" => Ok(Writes::Local),
        _ => Err(format!("'{s}' is not coordinated or local")),
    }
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse().map_err(|_| format!("'{s}' is not one of off, error, warn, info, debug, trace"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(OsString::from).collect())? {
            Command::Run(config) => Ok(*config),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_listen_on_loopback_8001_in_memory() {
        let config = run(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.bind.to_string(), "127.0.0.1:8001");
        assert_eq!(config.data_dir, None);
    }

    #[test]
    fn every_flag_is_read_in_both_spellings() {
        let config = run(&[
            "--data.d=/tmp/x",
            "--bind",
            "0.0.0.0:9000",
            "--port=9001",
            "--advertise=node1:9001",
            "--seeds=a:1,b:2",
            "--bootstrap",
            "--bootstrap-limit=5",
            "--lock-timeout=7",
            "--rm-limit=0.5",
            "--max-body=1000",
            "--max-connections=10",
            "--log-level=debug",
            "--token-file=/t",
            "--read-token-file=/r",
            "--cluster-key-file=/k",
            "--force-new-cluster",
        ])
        .unwrap();
        assert_eq!(config.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(config.bind.to_string(), "0.0.0.0:9001");
        assert_eq!(config.address(), "node1:9001");
        assert_eq!(config.seeds, ["a:1", "b:2"]);
        assert!(config.bootstrap);
        assert_eq!((config.bootstrap_limit_s, config.lock_timeout_s, config.max_body), (5, 7, 1000));
        assert_eq!((config.rm_limit_days, config.max_connections), (0.5, 10));
        assert_eq!(config.log_level, log::LevelFilter::Debug);
        assert_eq!(config.cluster_key_file, Some(PathBuf::from("/k")));
        assert!(config.force_new_cluster);
    }

    #[test]
    fn bind_without_port_uses_8001() {
        assert_eq!(run(&["--bind=127.0.0.2"]).unwrap().bind.to_string(), "127.0.0.2:8001");
        assert_eq!(run(&["--bind=[::1]"]).unwrap().bind.to_string(), "[::1]:8001");
    }

    #[test]
    fn bad_flags_and_values_are_one_clear_line() {
        for (args, needle) in [
            (&["--frobnicate"][..], "unknown argument '--frobnicate'"),
            (&["--port=99999"], "--port"),
            (&["--port=x"], "--port"),
            (&["--bind=nonsense"], "--bind"),
            (&["--seeds=a"], "--seeds"),
            (&["--lock-timeout=0"], "--lock-timeout"),
            (&["--rm-limit=-1"], "--rm-limit"),
            (&["--log-level=loud"], "--log-level"),
            (&["--data.d"], "--data.d needs a value"),
            (&["--bind=0.0.0.0:9000", "--seeds=a:1"], "add --advertise=HOST:PORT"),
            (&["--bind=[::]", "--seeds=a:1"], "add --advertise=HOST:PORT"),
        ] {
            let error = run(args).unwrap_err();
            assert!(error.contains(needle), "{args:?} gave '{error}'");
            assert!(!error.contains('\n'), "one line: '{error}'");
        }
    }

    #[test]
    fn an_unspecified_bind_address_is_fine_alone_or_advertised() {
        assert!(run(&["--bind=0.0.0.0:9000"]).is_ok(), "a single node names itself to nobody");
        assert!(run(&["--bind=0.0.0.0:9000", "--seeds=a:1", "--advertise=node1:9000"]).is_ok());
        assert!(run(&["--bind=127.0.0.1:9000", "--seeds=a:1"]).is_ok());
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(parse(vec!["--help".into()]), Ok(Command::Help));
        assert_eq!(parse(vec!["--port=1".into(), "--version".into()]), Ok(Command::Version));
    }
}
