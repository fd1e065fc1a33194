//! Start-up: decide from the data directory how this node starts (`core::startup`), make its
//! identity durable, build the core, bind the port, run the loop.

use std::io;
use std::path::Path;

use log::{info, warn};
use mio::net::TcpListener;

use crate::config::{Config, Writes};
use crate::core::clock::seconds_to_ms;
use crate::core::startup::{self, Directory, Flags, Refusal, Startup};
use crate::core::{CoreConfig, Node};
use crate::limits::OPEN_FILES_SPARE;
use crate::shell::data_dir::{self, DiskConfig, StartupDir};
use crate::shell::event_loop::{EventLoop, Parts};
use crate::shell::system_clock::SystemClock;
use crate::shell::tokens::{SecretFiles, Secrets};

/// Runs a server until SIGTERM or SIGINT.
pub fn run(config: &Config) -> io::Result<()> {
    match crate::shell::sys::raise_open_files_limit() {
        Ok(limit) if limit < (config.max_connections + OPEN_FILES_SPARE) as u64 => warn!(
            "the open-files limit is {limit}, below --max-connections={}; \
             connections past it wait until others close",
            config.max_connections
        ),
        Ok(_) => {}
        Err(e) => warn!("cannot read the open-files limit: {e}"),
    }
    let secret_files = SecretFiles::of(config);
    let secrets = secret_files.read()?;
    // Read before anything else starts: a certificate that cannot be used stops the start.
    let tls = crate::shell::tls::Tls::from_config(config)?;
    // Held (open and locked) until the server stops: one directory serves one server.
    let _lock = match &config.data_dir {
        Some(dir) => Some(take_data_dir(dir)?),
        None => None,
    };
    let startup = start_up(config)?;
    let voters = startup.start.sealed.copy.coordination.as_ref().map_or(0, |c| c.voters.len());
    if !startup.start.cluster.is_empty() || voters > 1 {
        // A data directory whose snapshot names peers is in a cluster, --seeds or not.
        config.check_reachable_name().map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    }
    let listener = TcpListener::bind(config.bind)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.bind)))?;
    crate::shell::sys::set_listen_backlog(&listener)?;
    crate::shell::sys::defer_accept(&listener);
    let bound = listener.local_addr()?;
    if let Some(warning) = exposure_warning(bound, &secrets) {
        warn!("{warning}");
    }
    let clock = SystemClock::new();
    let address = config.advertise.clone().unwrap_or_else(|| bound.to_string());
    // A node on loopback is meant for this machine alone: it serves no Host a page could rebind.
    let host_guard = bound.ip().is_loopback().then(|| crate::http::HostGuard::new(&address));
    let core_config = CoreConfig {
        address,
        durable: config.data_dir.is_some(),
        lock_timeout_ms: seconds_to_ms(config.lock_timeout_s),
        seeds: config.seeds.clone(),
        bootstrap: startup.bootstrap,
        bootstrap_limit_ms: (!startup.must_catch_up).then(|| seconds_to_ms(config.bootstrap_limit_s)),
        rng_seed: random_u64(),
        access: secrets.access(),
        identity: startup.state.clone(),
        coordinated: startup.coordinated,
    };
    let damaged = match &config.data_dir {
        Some(dir) => startup.damaged.iter().map(|(name, _)| dir.join(name)).collect(),
        None => Vec::new(),
    };
    let mut core = Node::new(core_config, clock.now(), startup.start);
    core.metrics_mut().snapshots_skipped = startup.damaged.len() as u64;
    let disk = DiskConfig {
        dir: config.data_dir.clone(),
        keep_micros: (config.rm_limit_days * 86_400e6).min(u64::MAX as f64) as u64,
        // Coordinated mode keeps the committed version beside one that may be pending.
        keep_count: if config.writes == Writes::Coordinated {
            config.keep_snapshots.max(2)
        } else {
            config.keep_snapshots
        },
        damaged,
        change_files: startup.change_files.clone(),
        chain: startup.chain,
    };
    let parts = Parts {
        listener,
        core,
        disk,
        clock,
        max_body: config.max_body,
        max_connections: config.max_connections,
        cors: config.cors.clone(),
        host_guard,
        peer_headers: secrets.peer_headers(),
        secret_files,
        tls,
    };
    let event_loop = EventLoop::new(parts)?;
    info!("listening on {bound}");
    event_loop.run()
}

/// The warning for a node that anyone who can reach it may read and change.
fn exposure_warning(bound: std::net::SocketAddr, secrets: &Secrets) -> Option<String> {
    (!bound.ip().is_loopback() && secrets.is_empty()).then(|| {
        format!(
            "bound to {bound}, which is not loopback, with no token and no cluster key: anyone who can reach it \
             can read and change the store (see --token-file, --read-token-file, --cluster-key-file)"
        )
    })
}

/// 64 random bits from the system, for ids and the seed of jitter.
fn random_u64() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => crate::shell::system_clock::unix_micros() ^ (u64::from(std::process::id()) << 32),
    }
}

/// Takes the data directory for this process (its lock file) and checks that it takes a file: a
/// second server on it, or a directory it cannot write, stops the start with one line saying why.
fn take_data_dir(dir: &Path) -> io::Result<std::fs::File> {
    let lock = data_dir::lock(dir).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => e,
        _ => io::Error::new(e.kind(), format!("cannot use the data directory {}: {e}", dir.display())),
    })?;
    data_dir::probe(dir)?;
    Ok(lock)
}

/// Decides how this node starts (`core::startup`) from its data directory and flags, and makes
/// its identity durable before it first speaks to a peer: a node that joined a cluster and is
/// restarted comes back as the same node.
fn start_up(config: &Config) -> io::Result<Startup> {
    let flags = Flags {
        coordinated: config.writes == Writes::Coordinated,
        has_seeds: !config.seeds.is_empty(),
        bootstrap: config.bootstrap,
        start_empty: config.start_empty,
        accept_lost_versions: config.accept_lost_versions,
        force_new_cluster: config.force_new_cluster,
    };
    let in_dir = |dir: &Path, why: String| format!("cannot use the data directory {}: {why}", dir.display());
    let mut directory = config.data_dir.as_deref().map(StartupDir);
    if let Some(directory) = &directory {
        directory.prepare().map_err(|e| io::Error::new(e.kind(), in_dir(directory.0, e.to_string())))?;
    }
    let decided = startup::decide(directory.as_mut().map(|d| d as &mut dyn Directory), &flags, &mut random_u64);
    let startup = match (decided, &config.data_dir) {
        (Ok(startup), _) => startup,
        (Err(Refusal(why)), Some(dir)) => return Err(io::Error::new(io::ErrorKind::InvalidData, in_dir(dir, why))),
        (Err(Refusal(why)), None) => return Err(io::Error::new(io::ErrorKind::InvalidData, why)),
    };
    if let Some(dir) = &config.data_dir
        && startup.save_state
    {
        data_dir::save_state(dir, &startup.state)
            .map_err(|e| io::Error::new(e.kind(), in_dir(dir, format!("cannot write node.json: {e}"))))?;
    }
    Ok(startup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exposed_node_without_secrets_is_warned_about() {
        let none = Secrets { write: None, read: None, cluster: None };
        let lines =
            crate::core::parse_token_file("s label=s prefixes=/x\nt\n", crate::core::Scope::Write, "--token-file");
        let token = Secrets { write: Some(lines.unwrap()), read: None, cluster: None };
        let public: std::net::SocketAddr = "0.0.0.0:8001".parse().unwrap();
        let loopback: std::net::SocketAddr = "127.0.0.1:8001".parse().unwrap();
        assert!(exposure_warning(public, &none).is_some_and(|w| w.contains("--token-file")));
        assert_eq!(exposure_warning(public, &token), None);
        assert_eq!(exposure_warning(loopback, &none), None);
        assert_eq!(token.for_peers(), Some("t"), "a write token without prefixes goes to peers without a cluster key");
    }
}
