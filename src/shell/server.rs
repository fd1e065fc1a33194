//! Start-up: load the newest valid snapshot, build the core, bind the port, run the loop.

use std::io;
use std::path::{Path, PathBuf};

use log::{info, warn};
use mio::net::TcpListener;

use crate::config::{Config, Writes};
use crate::core::clock::seconds_to_ms;
use crate::core::members::new_id;
use crate::core::node_state::NodeState;
use crate::core::{Access, Coordinated, CoreConfig, Node, Secret, Start};
use crate::limits::OPEN_FILES_SPARE;
use crate::shell::clock::SystemClock;
use crate::shell::data_dir::{self, DiskConfig};
use crate::shell::event_loop::{EventLoop, Parts};

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
    let secrets = Secrets::read(config)?;
    let loaded = load(config)?;
    let listener = TcpListener::bind(config.bind)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.bind)))?;
    crate::shell::sys::set_listen_backlog(&listener)?;
    crate::shell::sys::defer_accept(&listener);
    let bound = listener.local_addr()?;
    if let Some(warning) = exposure_warning(bound, &secrets) {
        warn!("{warning}");
    }
    let clock = SystemClock::new();
    let core_config = CoreConfig {
        address: config.advertise.clone().unwrap_or_else(|| bound.to_string()),
        durable: config.data_dir.is_some(),
        lock_timeout_ms: seconds_to_ms(config.lock_timeout_s),
        seeds: config.seeds.clone(),
        bootstrap: config.bootstrap && !loaded.must_catch_up,
        bootstrap_limit_ms: (!loaded.must_catch_up).then(|| seconds_to_ms(config.bootstrap_limit_s)),
        rng_seed: random_u64(),
        access: secrets.access(),
        coordinated: coordinated(config, &loaded)?,
    };
    let core = Node::new(core_config, clock.now(), loaded.start);
    let disk = DiskConfig {
        dir: config.data_dir.clone(),
        keep_micros: (config.rm_limit_days * 86_400e6).min(u64::MAX as f64) as u64,
        // Coordinated mode keeps the committed version beside one that may be pending.
        keep_count: if config.writes == Writes::Coordinated {
            config.keep_snapshots.max(2)
        } else {
            config.keep_snapshots
        },
        damaged: loaded.damaged,
    };
    let parts = Parts {
        listener,
        core,
        disk,
        clock,
        max_body: config.max_body,
        max_connections: config.max_connections,
        cors: config.cors.clone(),
        peer_headers: secrets
            .for_peers()
            .map(|secret| format!("Authorization: Bearer {secret}\r\n"))
            .unwrap_or_default(),
    };
    let event_loop = EventLoop::new(parts)?;
    info!("listening on {bound}");
    event_loop.run()
}

/// The secrets the flags name, read from their files: the first line of each, without surrounding
/// white space.
struct Secrets {
    write: Option<String>,
    read: Option<String>,
    cluster: Option<String>,
}

impl Secrets {
    fn read(config: &Config) -> io::Result<Secrets> {
        Ok(Secrets {
            write: read_secret(config.token_file.as_deref(), "--token-file")?,
            read: read_secret(config.read_token_file.as_deref(), "--read-token-file")?,
            cluster: read_secret(config.cluster_key_file.as_deref(), "--cluster-key-file")?,
        })
    }

    fn is_empty(&self) -> bool {
        self.write.is_none() && self.read.is_none() && self.cluster.is_none()
    }

    /// What this node sends its peers: the cluster key, else the write token (the peer endpoints
    /// then need it to change anything), else the read token (to read them).
    fn for_peers(&self) -> Option<&str> {
        self.cluster.as_deref().or(self.write.as_deref()).or(self.read.as_deref())
    }

    fn access(&self) -> Access {
        Access {
            write: self.write.as_deref().map(Secret::new),
            read: self.read.as_deref().map(Secret::new),
            cluster: self.cluster.as_deref().map(Secret::new),
        }
    }
}

fn read_secret(path: Option<&Path>, flag: &str) -> io::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{flag}: cannot read {}: {e}", path.display())))?;
    let secret = text.lines().next().unwrap_or("").trim();
    if secret.is_empty() || secret.chars().any(|c| c.is_control() || c == ' ') {
        let why = format!("{flag}: the first line of {} must be the secret: no spaces, not empty", path.display());
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            warn!("{flag}: {} can be read by other users (chmod 600 it)", path.display());
        }
    }
    Ok(Some(secret.to_string()))
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

/// The settings of coordinated writes: this node's id, term and vote from the data directory (new
/// ones for a new directory), and whether it founds a new cluster. A node founds one when it has
/// no seeds and no cluster of its own yet (a first node), or with `--bootstrap` on a directory that
/// holds no node state. `--bootstrap` on a directory that does is ignored, with a warning.
fn coordinated(config: &Config, loaded: &Loaded) -> io::Result<Option<Coordinated>> {
    if config.writes == Writes::Local {
        return Ok(None);
    }
    let stored = match &config.data_dir {
        Some(dir) => data_dir::load_state(dir)?,
        None => None,
    };
    let fresh = stored.is_none();
    let state = stored.unwrap_or_else(|| NodeState { id: new_id(random_u64()), term: 0, vote: None });
    let in_a_cluster = loaded.start.sealed.copy.coordination.is_some();
    if config.bootstrap && !fresh {
        warn!(
            "--bootstrap is ignored: the data directory holds this node's state (id {}); it loads it as usual",
            state.id
        );
    }
    let founds =
        !in_a_cluster && ((config.bootstrap && fresh) || (config.seeds.is_empty() && loaded.start.cluster.is_empty()));
    if !in_a_cluster && !founds {
        info!("this node ({}) joins its cluster as a learner: it waits for the coordinator to add it", state.id);
    }
    Ok(Some(Coordinated { state, founding: founds.then(|| new_id(random_u64())) }))
}

/// 64 random bits from the system, for ids and the seed of jitter.
fn random_u64() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => crate::shell::clock::unix_micros() ^ (u64::from(std::process::id()) << 32),
    }
}

/// What start-up found in the data directory.
struct Loaded {
    start: Start,
    /// Files that could not be loaded; the writer never removes them.
    damaged: Vec<PathBuf>,
    /// Every snapshot was damaged and the node has seeds: it serves nothing until it holds its
    /// peers' store, however long that takes.
    must_catch_up: bool,
}

/// The store to start from: the newest valid snapshot in `--data.d`, else `{}` at sequence 0. A
/// directory whose snapshots are all damaged is not a fresh one: without peers to catch up from,
/// the node refuses to start unless `--start-empty` says to.
fn load(config: &Config) -> io::Result<Loaded> {
    let Some(dir) = &config.data_dir else {
        info!("no --data.d: the store lives in memory only");
        return Ok(Loaded { start: Start::empty(), damaged: Vec::new(), must_catch_up: false });
    };
    // Without seeds the copy body is needed only if the snapshot names peers; the loader knows.
    let by_term = config.writes == Writes::Coordinated;
    let loaded = data_dir::load_in_order(dir, !config.seeds.is_empty(), by_term)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot use the data directory {}: {e}", dir.display())))?;
    let damaged: Vec<PathBuf> = loaded.damaged.into_iter().map(|(file, _)| file).collect();
    if let Some((file, snapshot)) = loaded.newest {
        let version = snapshot.sealed.copy.version;
        info!("loaded {} (sequence {}, checksum {})", file.display(), version.sequence, version.checksum);
        let committed = snapshot.committed;
        let start = Start { sealed: snapshot.sealed, cluster: snapshot.cluster, mine: snapshot.mine, committed };
        return Ok(Loaded { start, damaged, must_catch_up: false });
    }
    if damaged.is_empty() {
        info!("no snapshot in {}: starting from an empty store", dir.display());
        return Ok(Loaded { start: Start::empty(), damaged, must_catch_up: false });
    }
    let names: Vec<String> = damaged.iter().map(|f| f.display().to_string()).collect();
    let names = names.join(", ");
    if config.start_empty {
        warn!("every snapshot in {} is damaged ({names}); --start-empty: starting from an empty store", dir.display());
        return Ok(Loaded { start: Start::empty(), damaged, must_catch_up: false });
    }
    if config.seeds.is_empty() {
        let why = format!(
            "every snapshot in {} is damaged ({names}), so there is no store to load; restore a good snapshot into \
             the directory, or start with --start-empty to begin from an empty store (the damaged files are kept)",
            dir.display()
        );
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    warn!(
        "every snapshot in {} is damaged ({names}); the damaged files are kept, and this node serves nothing \
         until it holds the store of a peer (--seeds), however long that takes",
        dir.display()
    );
    Ok(Loaded { start: Start::empty(), damaged, must_catch_up: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exposed_node_without_secrets_is_warned_about() {
        let none = Secrets { write: None, read: None, cluster: None };
        let token = Secrets { write: Some("t".into()), read: None, cluster: None };
        let public: std::net::SocketAddr = "0.0.0.0:8001".parse().unwrap();
        let loopback: std::net::SocketAddr = "127.0.0.1:8001".parse().unwrap();
        assert!(exposure_warning(public, &none).is_some_and(|w| w.contains("--token-file")));
        assert_eq!(exposure_warning(public, &token), None);
        assert_eq!(exposure_warning(loopback, &none), None);
        assert_eq!(token.for_peers(), Some("t"), "the write token goes to peers without a cluster key");
    }
}
