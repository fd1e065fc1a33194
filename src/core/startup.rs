//! What a node decides when it starts, from what its data directory holds and its flags: which
//! snapshot it loads, its identity (`node.json`: its id, and the id of the cluster it belongs to),
//! and whether it founds a cluster, joins one, or serves at once.
//!
//! The server (`shell::server`) and the simulations call the same `decide`, each with a
//! `Directory` of its own (the real one, or a simulated disk holding the bytes the real one
//! would), so the simulation boots nodes exactly as operators do. The decision does no I/O but
//! through the `Directory` it is handed.

use log::{info, warn};

use crate::core::members::new_id;
use crate::core::node_state::NodeState;
use crate::core::snapshot::{self, decode_keeping};
use crate::core::{Coordinated, Start};

/// What start-up reads of a data directory. Errors are the directory's own (permissions, I/O),
/// never damage: a file that reads but does not decode is damaged, and that is decided here.
pub trait Directory {
    /// The snapshot files, as `(time from the name, name)`, in any order.
    fn snapshots(&mut self) -> Result<Vec<(u64, String)>, String>;
    /// A snapshot file's bytes.
    fn read(&mut self, name: &str) -> Result<Vec<u8>, String>;
    /// The last bytes of a snapshot file (`SNAPSHOT_TAIL_PEEK_BYTES` of them, or all).
    fn tail(&mut self, name: &str) -> Result<Vec<u8>, String>;
    /// `node.json`, if there is one.
    fn node_state(&mut self) -> Result<Option<Vec<u8>>, String>;
}

/// The flags that bear on start-up.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--writes=coordinated` (the default).
    pub coordinated: bool,
    /// `--seeds` names at least one node.
    pub has_seeds: bool,
    /// `--bootstrap`.
    pub bootstrap: bool,
    /// `--start-empty`.
    pub start_empty: bool,
    /// `--force-new-cluster`.
    pub force_new_cluster: bool,
}

/// A snapshot file that could not be loaded, and why.
pub type Damaged = (String, String);

/// What start-up decided.
#[derive(Debug)]
pub struct Startup {
    /// The store to serve first.
    pub start: Start,
    /// Snapshot files that could not be loaded, and why; the writer never removes them.
    pub damaged: Vec<Damaged>,
    /// Every snapshot was damaged and the node has seeds: it serves nothing until it holds its
    /// peers' store, however long that takes.
    pub must_catch_up: bool,
    /// This node's id, term, vote and cluster, as `node.json` must hold them.
    pub state: NodeState,
    /// `node.json` must be written (durably) before the node speaks to any peer: it is new, or
    /// it lacks what start-up decided (a joiner that is restarted must come back as itself).
    pub save_state: bool,
    /// Coordinated writes: the settings the core takes (`None`: local writes).
    pub coordinated: Option<Coordinated>,
    /// `--bootstrap` still holds (it does not when the node must catch up).
    pub bootstrap: bool,
}

/// Why a node cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Decides how a node starts: from `dir` (none: no `--data.d`), its flags, and `random` for new
/// ids.
pub fn decide(
    dir: Option<&mut dyn Directory>,
    flags: &Flags,
    random: &mut dyn FnMut() -> u64,
) -> Result<Startup, Refusal> {
    let Some(dir) = dir else {
        if flags.force_new_cluster {
            return Err(Refusal(
                "--force-new-cluster starts a cluster again from a surviving node's data directory: give it with \
                 --data.d"
                    .into(),
            ));
        }
        info!("no --data.d: the store lives in memory only");
        let state = NodeState::new(new_id(random()));
        return Ok(identify(Start::empty(), Vec::new(), false, state, flags, random));
    };
    let stored = match dir.node_state().map_err(Refusal)? {
        Some(bytes) => Some(NodeState::from_bytes(&bytes).ok_or_else(|| {
            Refusal(
                "node.json is damaged: it holds this node's id, term, vote and cluster; remove it to start as a new \
                 node (it joins its cluster as a learner), or restore it"
                    .into(),
            )
        })?),
        None => None,
    };
    let (newest, damaged) = load_newest(dir, flags)?;
    let state = stored.clone().unwrap_or_else(|| NodeState::new(new_id(random())));
    let (start, must_catch_up) = match newest {
        Some(start) => (start, false),
        None => (start_without_snapshot(&damaged, flags)?, !damaged.is_empty() && !flags.start_empty),
    };
    if flags.force_new_cluster {
        check_force(&start, flags)?;
    }
    let mut startup = identify(start, damaged, must_catch_up, state, flags, random);
    startup.save_state = stored.as_ref() != Some(&startup.state);
    Ok(startup)
}

/// The newest snapshot that decodes, and the files tried before it that did not. With
/// coordinated writes, files are tried by the (term, sequence) of the version they hold, newest
/// first, not by their names: a version of a later term wins, and wall clocks may step back.
fn load_newest(dir: &mut dyn Directory, flags: &Flags) -> Result<(Option<Start>, Vec<Damaged>), Refusal> {
    let mut files = dir.snapshots().map_err(Refusal)?;
    let mut keyed: Vec<((u64, u64, u64), String)> = Vec::with_capacity(files.len());
    for (time, name) in files.drain(..) {
        let order = if flags.coordinated {
            // A file whose tail shows no version is probably damaged: tried first, so that it is
            // reported, not silently passed over.
            let tail = dir.tail(&name).map_err(|e| Refusal(format!("cannot read {name}: {e}")))?;
            snapshot::peek_order(&tail).unwrap_or((u64::MAX, u64::MAX))
        } else {
            (0, 0)
        };
        keyed.push(((order.0, order.1, time), name));
    }
    keyed.sort_by(|a, b| b.cmp(a));
    let mut damaged = Vec::new();
    // Without seeds the copy body is needed only if the snapshot names peers; the decoder knows.
    let keep_body = flags.has_seeds;
    for (_, name) in keyed {
        let bytes = dir.read(&name).map_err(|e| Refusal(format!("cannot read {name}: {e}")))?;
        match decode_keeping(&bytes, keep_body) {
            Ok(snapshot) => {
                let version = snapshot.sealed.copy.version;
                info!("loaded {name} (sequence {}, checksum {})", version.sequence, version.checksum);
                let committed = snapshot.committed;
                let start =
                    Start { sealed: snapshot.sealed, cluster: snapshot.cluster, mine: snapshot.mine, committed };
                return Ok((Some(start), damaged));
            }
            Err(e) => {
                warn!("skipping snapshot {name}: {e}");
                damaged.push((name, e.to_string()));
            }
        }
    }
    Ok((None, damaged))
}

/// `--force-new-cluster` needs coordinated writes and a store of a cluster to go on with.
fn check_force(start: &Start, flags: &Flags) -> Result<(), Refusal> {
    if !flags.coordinated {
        return Err(Refusal(
            "--force-new-cluster is for coordinated writes; with --writes=local every node writes".into(),
        ));
    }
    if start.sealed.copy.coordination.is_none() {
        return Err(Refusal(
            "--force-new-cluster: the data directory holds no version of a cluster with coordinated writes, so \
             there is nothing to go on with; give it the data directory of a surviving voter (or start a new \
             cluster from a backup: PUT /copy)"
                .into(),
        ));
    }
    Ok(())
}

/// The store of a directory without a valid snapshot: empty when it holds none, or when every
/// one is damaged and `--start-empty` or seeds say the node may start without it.
fn start_without_snapshot(damaged: &[Damaged], flags: &Flags) -> Result<Start, Refusal> {
    if damaged.is_empty() {
        info!("no snapshot in the data directory: starting from an empty store");
        return Ok(Start::empty());
    }
    let names: Vec<&str> = damaged.iter().map(|(name, _)| name.as_str()).collect();
    let names = names.join(", ");
    if flags.start_empty {
        warn!("every snapshot is damaged ({names}); --start-empty: starting from an empty store");
    } else if flags.has_seeds {
        warn!(
            "every snapshot is damaged ({names}); the damaged files are kept, and this node serves nothing until it \
             holds the store of a peer (--seeds), however long that takes"
        );
    } else {
        return Err(Refusal(format!(
            "every snapshot is damaged ({names}), so there is no store to load; restore a good snapshot into the \
             directory, or start with --start-empty to begin from an empty store (the damaged files are kept)"
        )));
    }
    Ok(Start::empty())
}

/// The node's cluster and role at start. A node that holds a cluster's data keeps that
/// cluster's id for ever; a node without one founds a cluster when it has nobody to join (no
/// seeds and no stored peers) or is told to (`--bootstrap`), and otherwise joins the cluster of
/// the first peer that answers it (`core::peering`).
fn identify(
    start: Start,
    damaged: Vec<Damaged>,
    must_catch_up: bool,
    mut state: NodeState,
    flags: &Flags,
    random: &mut dyn FnMut() -> u64,
) -> Startup {
    let held = start.sealed.copy.coordination.as_ref().map(|c| c.cluster.clone());
    if let (Some(held), Some(stored)) = (&held, &state.cluster)
        && held != stored
    {
        warn!("node.json names cluster {stored}, the store was made by cluster {held}: this node is of {held}");
    }
    let in_a_cluster = held.is_some();
    if in_a_cluster {
        state.cluster = held;
    }
    // `--bootstrap` founds coordinated writes only on a node that never took part in them (a new
    // directory, or one written with local writes): never a second cluster beside its own.
    let never_coordinated = !in_a_cluster && state.term == 0 && state.vote.is_none();
    let bootstrap = flags.bootstrap && !must_catch_up;
    if flags.coordinated && flags.bootstrap && !never_coordinated {
        warn!(
            "--bootstrap is ignored: the data directory holds this node's state (id {}, term {}); it loads it as usual",
            state.id, state.term
        );
    }
    let alone = !flags.has_seeds && start.cluster.is_empty();
    let founds = !in_a_cluster && !must_catch_up && (alone || (bootstrap && never_coordinated));
    if founds && state.cluster.is_none() {
        state.cluster = Some(new_id(random()));
        info!("founding cluster {}", state.cluster.as_deref().unwrap_or_default());
    }
    let coordinated = flags.coordinated.then(|| {
        if !in_a_cluster && !founds {
            info!("this node ({}) joins its cluster as a learner: it waits for the coordinator to add it", state.id);
        }
        Coordinated {
            state: state.clone(),
            founding: founds.then(|| state.cluster.clone()).flatten(),
            force_new_cluster: flags.force_new_cluster && in_a_cluster,
        }
    });
    Startup { start, damaged, must_catch_up, save_state: true, coordinated, bootstrap, state }
}
