//! Start-up: load the newest valid snapshot, build the core, bind the port, run the loop.

use std::io;
use std::path::Path;

use log::{info, warn};
use mio::net::TcpListener;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::core::{Access, CoreConfig, Node, Secret, Start};
use crate::event_loop::{EventLoop, Parts};
use crate::flush::DiskConfig;
use crate::snapshot;

/// Runs a server until SIGTERM or SIGINT.
pub fn run(config: &Config) -> io::Result<()> {
    match crate::sys::raise_open_files_limit() {
        Ok(limit) if (limit as usize) < config.max_connections + 64 => warn!(
            "the open-files limit is {limit}, below --max-connections={}; \
             connections past it wait until others close",
            config.max_connections
        ),
        Ok(_) => {}
        Err(e) => warn!("cannot read the open-files limit: {e}"),
    }
    let secrets = Secrets::read(config)?;
    let start = load(config)?;
    let listener = TcpListener::bind(config.bind)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.bind)))?;
    crate::sys::set_listen_backlog(&listener)?;
    crate::sys::defer_accept(&listener);
    let bound = listener.local_addr()?;
    let clock = SystemClock::new();
    let core_config = CoreConfig {
        address: config.advertise.clone().unwrap_or_else(|| bound.to_string()),
        durable: config.data_dir.is_some(),
        lock_timeout_ms: config.lock_timeout_s * 1000,
        seeds: config.seeds.clone(),
        bootstrap: config.bootstrap,
        bootstrap_limit_ms: config.bootstrap_limit_s.saturating_mul(1000),
        rng_seed: crate::clock::unix_micros() ^ u64::from(std::process::id()),
        access: secrets.access(),
    };
    let core = Node::new(core_config, clock.now(), start);
    if !core.is_active() {
        info!("joining the cluster: /data answers 503 until this node has caught up");
    }
    let disk = DiskConfig {
        dir: config.data_dir.clone(),
        keep_micros: (config.rm_limit_days * 86_400e6).min(u64::MAX as f64) as u64,
    };
    let parts = Parts {
        listener,
        core,
        disk,
        clock,
        max_body: config.max_body,
        max_connections: config.max_connections,
        peer_headers: secrets
            .cluster
            .as_ref()
            .map(|key| format!("Authorization: Bearer {key}\r\n"))
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

/// The store to start from: the newest valid snapshot in `--data.d`, else `{}` at sequence 0.
fn load(config: &Config) -> io::Result<Start> {
    let Some(dir) = &config.data_dir else {
        info!("no --data.d: the store lives in memory only");
        return Ok(Start::empty());
    };
    // Without seeds the copy body is needed only if the snapshot names peers; the loader knows.
    let loaded = snapshot::load_newest_keeping(dir, !config.seeds.is_empty())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot use the data directory {}: {e}", dir.display())))?;
    match loaded {
        Some((file, snapshot)) => {
            let version = snapshot.sealed.copy.version;
            info!("loaded {} (sequence {}, checksum {})", file.display(), version.sequence, version.checksum);
            Ok(Start { sealed: snapshot.sealed, cluster: snapshot.cluster, mine: snapshot.mine })
        }
        None => {
            info!("no snapshot in {}: starting from an empty store", dir.display());
            Ok(Start::empty())
        }
    }
}
