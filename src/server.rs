//! Start-up: load the newest valid snapshot, build the core, bind the port, run the loop.

use std::io;

use log::{info, warn};
use mio::net::TcpListener;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::core::{CoreConfig, Node, Start};
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
    };
    let core = Node::new(core_config, clock.now(), start);
    if !core.is_active() {
        info!("joining the cluster: /data answers 503 until this node has caught up");
    }
    let disk = DiskConfig {
        dir: config.data_dir.clone(),
        keep_micros: (config.rm_limit_days * 86_400e6).min(u64::MAX as f64) as u64,
    };
    let parts =
        Parts { listener, core, disk, clock, max_body: config.max_body, max_connections: config.max_connections };
    let event_loop = EventLoop::new(parts)?;
    info!("listening on {bound}");
    event_loop.run()
}

/// The store to start from: the newest valid snapshot in `--data.d`, else `{}` at sequence 0.
fn load(config: &Config) -> io::Result<Start> {
    let Some(dir) = &config.data_dir else {
        info!("no --data.d: the store lives in memory only");
        return Ok(Start::empty());
    };
    let loaded = snapshot::load_newest(dir)
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
