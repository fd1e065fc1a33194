//! A node's data directory in memory, shared by both simulations: snapshot files, spare files
//! and `node.json` as the bytes the real directory would hold (written by the writer's own code,
//! `jobs::run` and `core::spare`, through `SimFiles`, which keeps what a crash keeps), and the
//! faults of a bad disk. A node is booted from it by the server's own start-up steps
//! (`core::spare::recover`, then `core::startup::decide`), so a restart in a simulation is a
//! restart as operators do it.

use std::io;
use std::path::{Path, PathBuf};

use lighthouse::core::chain::ChainState;
use lighthouse::core::clock::Now;
use lighthouse::core::jobs::{Disk, DiskError};
use lighthouse::core::node_state::NodeState;
use lighthouse::core::rng::Rng;
use lighthouse::core::snapshot::{self, NodeJson};
use lighthouse::core::spare::{self, Spares};
use lighthouse::core::startup::{self, Directory, Flags, Startup};
use lighthouse::core::{CoreConfig, Node};

use super::files::SimFiles;

/// What a failing disk does to a write.
#[derive(Debug, Clone, Copy)]
pub enum DiskFault {
    /// No space left: 507.
    Full,
    /// Mounted read-only: 503.
    ReadOnly,
}

/// One node's directory.
#[derive(Debug, Default)]
pub struct SimDir {
    /// Its files (snapshot names sort by time, as the real ones do).
    pub files: SimFiles,
    /// The writer's spare files (`core::spare`).
    spares: Spares,
    /// The time in the name of the last file written, in microseconds: names always increase.
    last_micros: u64,
    /// The chain of the newest files, as the real writer keeps it (`core::chain`).
    chain: ChainState,
}

impl SimDir {
    /// A directory holding one snapshot file, as a node of an existing cluster would.
    pub fn with_snapshot(body: &[u8], state: Option<NodeState>) -> SimDir {
        let mut dir = SimDir::default();
        let node = NodeJson::default();
        dir.write_file(false, &mut |out| snapshot::encode(out, &node, body, &mut || {})).expect("no fault yet");
        if let Some(state) = state {
            dir.save_state(&state).expect("no fault yet");
        }
        dir
    }

    pub fn set_fault(&mut self, fault: Option<DiskFault>) {
        self.files.fault = fault;
    }

    /// Whether the writer has work of its own (`core::spare::settle`).
    pub fn unsettled(&self) -> bool {
        self.spares.unsettled()
    }

    /// The writer's work off the commits' path, as the server's writer does it when idle: a
    /// failure leaves it for later.
    pub fn settle(&mut self) {
        let _ = spare::settle(&mut self.files, &mut self.spares);
    }

    /// Decides how the node starts, as the server does, and writes `node.json` first if it must.
    /// `None`: the node cannot start (its disk refuses `node.json`), as the server exits.
    pub fn start_up(&mut self, flags: &Flags, random: &mut dyn FnMut() -> u64) -> Option<Startup> {
        // As `StartupDir::prepare`: what a crash left in spare files is placed or removed.
        spare::recover(&mut self.files, self.last_micros + 1).ok()?;
        let names: Vec<String> = self.files.list().cloned().collect();
        let newest = names.iter().filter_map(|n| snapshot::parse_file_name(n)).max();
        self.last_micros = self.last_micros.max(newest.unwrap_or(0));
        self.spares = Spares::new(&names);
        let startup = startup::decide(Some(self), flags, random).expect("a simulated directory never refuses start-up");
        if startup.save_state {
            self.save_state(&startup.state).ok()?;
        }
        // The writer goes on with the chain start-up found, as the server's does.
        self.chain = startup.chain;
        Some(startup)
    }

    /// Starts a node from this directory as the server does (`start_up`, then the core with the
    /// settings the decision gave), with `seeds` and `coordinated` as its command line. `None`:
    /// the disk refused `node.json`, and the node did not start.
    pub fn boot(
        &mut self,
        address: &str,
        seeds: Vec<String>,
        coordinated: bool,
        rng: &mut Rng,
        now: Now,
    ) -> Option<Node> {
        let flags = Flags { coordinated, has_seeds: !seeds.is_empty(), ..Flags::default() };
        let startup = self.start_up(&flags, &mut || rng.next_u64())?;
        let config = CoreConfig {
            address: address.to_string(),
            durable: true,
            lock_timeout_ms: if coordinated { 4_000 } else { 30_000 },
            seeds,
            bootstrap: startup.bootstrap,
            bootstrap_limit_ms: (!startup.must_catch_up).then_some(3_000),
            rng_seed: rng.next_u64(),
            access: Default::default(),
            identity: startup.state,
            coordinated: startup.coordinated,
        };
        Some(Node::new(config, now, startup.start))
    }

    /// The node's state as `node.json` holds it.
    pub fn state(&self) -> Option<NodeState> {
        NodeState::from_bytes(self.files.get(STATE_FILE)?)
    }

    /// The answer to a write the disk refused.
    fn error(&self, e: &io::Error) -> DiskError {
        let status = if matches!(self.files.fault, Some(DiskFault::Full)) { 507 } else { 503 };
        DiskError { status, message: e.to_string() }
    }
}

/// `shell::data_dir::STATE_FILE`.
const STATE_FILE: &str = "node.json";

/// Every node's `node.json` names one and the same cluster, once the cluster has settled: a node
/// that was restarted is the node it was, of the cluster it was.
pub fn assert_one_cluster<'a>(seed: u64, dirs: impl Iterator<Item = &'a SimDir>) {
    let clusters: Vec<Option<String>> = dirs.map(|dir| dir.state().and_then(|s| s.cluster)).collect();
    assert!(
        clusters.iter().all(|c| c.is_some() && *c == clusters[0]),
        "seed {seed}: the nodes' node.json name clusters {clusters:?}"
    );
}

impl Disk for SimDir {
    fn chain(&mut self) -> Option<&mut ChainState> {
        Some(&mut self.chain)
    }

    fn write_file(
        &mut self,
        _change: bool,
        write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> Result<PathBuf, DiskError> {
        self.last_micros = (self.last_micros + 1).max(1_800_000_000_000_000);
        let name = snapshot::file_name(self.last_micros);
        spare::write_new(&mut self.files, &mut self.spares, &name, write).map_err(|e| self.error(&e))?;
        Ok(PathBuf::from(name))
    }

    fn remove_snapshot(&mut self, file: &Path) {
        let name = file.to_string_lossy().into_owned();
        if self.spares.holds(&name) {
            self.settle();
        }
        let _ = lighthouse::core::spare::Files::remove(&mut self.files, &name)
            .and_then(|()| lighthouse::core::spare::Files::sync_dir(&mut self.files));
        self.chain.forget();
    }

    fn save_state(&mut self, state: &NodeState) -> Result<(), DiskError> {
        let bytes = state.to_bytes();
        spare::write_atomically(&mut self.files, STATE_FILE, &mut |out| out.write_all(&bytes))
            .map_err(|e| self.error(&e))
    }
}

impl Directory for SimDir {
    fn snapshots(&mut self) -> Result<Vec<(u64, String)>, String> {
        let names = self.files.list().filter_map(|name| Some((snapshot::parse_file_name(name)?, name.clone())));
        Ok(names.collect())
    }

    fn read(&mut self, name: &str) -> Result<Vec<u8>, String> {
        self.files.get(name).cloned().ok_or_else(|| format!("{name} is gone"))
    }

    fn tail(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let bytes = self.read(name)?;
        let from = bytes.len().saturating_sub(lighthouse::limits::SNAPSHOT_TAIL_PEEK_BYTES);
        Ok(bytes[from..].to_vec())
    }

    fn node_state(&mut self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.files.get(STATE_FILE).cloned())
    }
}

/// The disk model and start-up's recovery on it: a commit answered from a spare (never renamed)
/// loads after a kill or a power loss, and a write cut short in the next spare is removed.
#[test]
fn an_answered_commit_in_a_spare_survives_a_kill_or_a_power_loss_and_a_cut_write_does_not_block() {
    use lighthouse::core::sealed::seal;
    use lighthouse::core::value::Value;
    for power_loss in [false, true] {
        let mut dir = SimDir::default();
        let write = |dir: &mut SimDir, sequence: u64| {
            let root = Value::parse(format!(r#"{{"n": {sequence}}}"#).as_bytes()).unwrap();
            let sealed = seal(root, sequence, None);
            let node = NodeJson::default();
            dir.write_file(false, &mut |out| snapshot::encode(out, &node, &sealed.body, &mut || {}))
        };
        write(&mut dir, 1).expect("no spare yet: the whole cycle");
        dir.settle();
        write(&mut dir, 2).expect("into a spare");
        assert!(dir.files.list().any(|n| n.starts_with(".spare-") && !dir.files.get(n).unwrap().is_empty()));
        dir.files.cut_after(1);
        assert!(write(&mut dir, 3).is_err(), "the process dies in the middle of the write");
        dir.files.crash(power_loss);
        let startup = dir.start_up(&Flags::default(), &mut || 7).expect("it starts");
        assert_eq!(startup.start.sealed.copy.version.sequence, 2, "power loss {power_loss}");
        assert!(startup.damaged.is_empty() && startup.start.floor_unknown.is_none());
        let held = dir.files.list().filter(|n| n.starts_with(".spare-") && !dir.files.get(n).unwrap().is_empty());
        assert_eq!(held.count(), 0, "placed or removed, power loss {power_loss}");
    }
}
