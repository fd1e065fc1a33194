//! What a node decides when it starts, from what its data directory holds and its flags: which
//! snapshot it loads, its identity (`node.json`: its id, and the id of the cluster it belongs to),
//! and whether it founds a cluster, joins one, or serves at once.
//!
//! The server (`shell::server`) and the simulations call the same `decide`, each with a
//! `Directory` of its own (the real one, or a simulated disk holding the bytes the real one
//! would), so the simulation boots nodes exactly as operators do. The decision does no I/O but
//! through the `Directory` it is handed.

use log::{info, warn};

use crate::core::chain::ChainState;
use crate::core::chain_load::{Loader, Newest};
use crate::core::node_state::NodeState;
use crate::core::roster::new_id;
use crate::core::{Accepted, CoordinatedConfig, Start};

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
    /// `--accept-lost-versions`: take writes although a damaged snapshot shows no sequence.
    pub accept_lost_versions: bool,
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
    pub coordinated: Option<CoordinatedConfig>,
    /// `--bootstrap` still holds (it does not when the node must catch up).
    pub bootstrap: bool,
    /// The chain of the directory's newest file, for the writer to go on with (`core::chain`).
    pub chain: ChainState,
    /// The directory's change files, by name (for the retention rules).
    pub change_files: Vec<String>,
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
    // Without seeds the copy body is needed only if the snapshot names peers; the loader knows.
    let mut loader = Loader::new(dir, flags.coordinated, flags.has_seeds)?;
    let Newest { start: newest, damaged, unnumbered } = loader.newest()?;
    let highest = loader.highest;
    let state = stored.clone().unwrap_or_else(|| NodeState::new(new_id(random())));
    let none_valid = newest.is_none();
    let (mut start, must_catch_up) = match newest {
        // `--force-new-cluster` goes on with the newest version this node holds, committed or not.
        Some(start) if flags.coordinated && !flags.force_new_cluster => {
            (start_at_commit_point(&mut loader, &state, start)?, false)
        }
        Some(start) => (start, false),
        None => (start_without_snapshot(&damaged, flags)?, !damaged.is_empty() && !flags.start_empty),
    };
    start.floor = highest;
    start.floor_unknown = floor_unknown(&unnumbered, highest, flags, none_valid);
    // The newest version this node holds: a pending one kept beside the commit point counts.
    let held =
        start.pending.as_ref().unwrap_or(&start.sealed).copy.version.sequence.max(start.sealed.copy.version.sequence);
    if highest > held {
        warn!(
            "damaged snapshots name sequences up to {highest}, above the loaded {}: new versions are numbered from \
             {}, so that no sequence names two versions",
            start.sealed.copy.version.sequence,
            highest.saturating_add(1)
        );
    }
    if flags.force_new_cluster {
        check_force(&start, flags)?;
    }
    let (chain, change_files) = (loader.chain(), loader.change_files());
    let mut startup = identify(start, damaged, must_catch_up, state, flags, random);
    startup.save_state = stored.as_ref() != Some(&startup.state);
    (startup.chain, startup.start.chain, startup.change_files) = (chain, chain, change_files);
    Ok(startup)
}

/// Why writes are refused when damaged files show no sequence (`unnumbered`): the sequences
/// they used are unknown, so a new version could reuse one. The operator lifts it by saying the
/// versions they held may be lost: `--accept-lost-versions`, or `--start-empty` when it is used
/// (every file damaged).
fn floor_unknown(unnumbered: &[String], highest: u64, flags: &Flags, none_valid: bool) -> Option<String> {
    if unnumbered.is_empty() {
        return None;
    }
    let names = unnumbered.join(", ");
    let accepted = if flags.accept_lost_versions {
        Some("--accept-lost-versions")
    } else if flags.start_empty && none_valid {
        Some("--start-empty")
    } else {
        None
    };
    if let Some(flag) = accepted {
        warn!(
            "the damaged snapshot(s) {names} show no sequence; {flag}: new versions are numbered after {highest}, the \
             highest sequence still known, and may reuse a sequence the damaged files held"
        );
        return None;
    }
    let why = format!(
        "writes are refused: the damaged snapshot(s) {names} show no sequence, so a new version could reuse one they \
         held; restore the file(s), or restart with --accept-lost-versions to number new versions after {highest}"
    );
    warn!("{why}");
    Some(why)
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

/// A node whose newest file holds a version it accepted without knowing it committed (a
/// follower's files always do) starts from its commit point instead: the version `node.json` says
/// it knew committed, loaded from its file, served at once (marked unconfirmed until a majority
/// answers, `core::commit_point`); the newer version stays accepted and pending, as it was before
/// the restart, so an election still counts it. Without a commit point, or a valid file of it,
/// nothing changes: the node serves nothing until the cluster says which version is committed.
fn start_at_commit_point(loader: &mut Loader, state: &NodeState, mut start: Start) -> Result<Start, Refusal> {
    let Some(point) = state.committed else { return Ok(start) };
    let newest = Accepted::of(&start.sealed);
    if start.committed || newest.key() < point.key() {
        return Ok(start);
    }
    if newest == point {
        start.committed = true;
        return Ok(start);
    }
    if let Some((name, sealed)) = loader.find(point)? {
        info!(
            "loaded {name} (sequence {} of term {}, the newest version this node knows was committed) to serve; \
             sequence {} of term {} stays accepted, not known to be committed",
            point.version.sequence, point.term, newest.version.sequence, newest.term
        );
        start.pending = Some(std::mem::replace(&mut start.sealed, sealed));
        start.committed = true;
        return Ok(start);
    }
    warn!(
        "no valid file holds sequence {} of term {}, the newest version this node knew was committed: it serves \
         nothing until the cluster says which version is",
        point.version.sequence, point.term
    );
    Ok(start)
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
        CoordinatedConfig {
            state: state.clone(),
            founding: founds.then(|| state.cluster.clone()).flatten(),
            force_new_cluster: flags.force_new_cluster && in_a_cluster,
        }
    });
    let (chain, change_files) = (ChainState::default(), Vec::new());
    Startup { start, damaged, must_catch_up, save_state: true, coordinated, bootstrap, state, chain, change_files }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::change::Change;
    use crate::core::change_file;
    use crate::core::sealed::seal;
    use crate::core::snapshot::{NodeJson, encode, file_name};
    use crate::core::value::Value;
    use crate::core::version::Checksum;

    /// Snapshot files in memory, by name.
    #[derive(Default)]
    struct Files(Vec<(u64, String, Vec<u8>)>);

    impl Files {
        /// A valid file of `{"n": sequence}` at `sequence`, named by `micros`; returns its bytes' index.
        fn add(&mut self, micros: u64, sequence: u64) -> usize {
            let root = Value::parse(format!(r#"{{"n": {sequence}}}"#).as_bytes()).unwrap();
            let mut bytes = Vec::new();
            encode(&mut bytes, &NodeJson::default(), &seal(root, sequence, None).body, &mut || {}).unwrap();
            self.0.push((micros, file_name(micros), bytes));
            self.0.len() - 1
        }

        /// A chain: a full file of `{"n": first}` at `first`, then a change file for each next
        /// sequence up to `last` (`{"n": sequence}`), a second apart; returns their indexes.
        fn add_chain(&mut self, micros: u64, first: u64, last: u64) -> Vec<usize> {
            let root = |n: u64| Value::parse(format!(r#"{{"n": {n}, "same": [1, 2, 3]}}"#).as_bytes()).unwrap();
            let mut sealed = seal(root(first), first, None);
            let mut bytes = Vec::new();
            encode(&mut bytes, &NodeJson::default(), &sealed.body, &mut || {}).unwrap();
            self.0.push((micros, file_name(micros), bytes));
            let mut indexes = vec![self.0.len() - 1];
            for sequence in first + 1..=last {
                let next = seal(root(sequence), sequence, Some(&sealed.copy.lineage));
                let change =
                    Change::between(sealed.copy.version, &sealed.copy.root, next.copy.version, &next.copy.root)
                        .unwrap();
                let bytes = change_file::encode(&NodeJson::default(), &change, &next.copy);
                let at = micros + (sequence - first) * 1_000_000;
                self.0.push((at, file_name(at), bytes));
                indexes.push(self.0.len() - 1);
                sealed = next;
            }
            indexes
        }

        /// Flips a bit inside file `index`'s patch or data (its file checksum then fails).
        fn damage(&mut self, index: usize) {
            let bytes = &mut self.0[index].2;
            let full = bytes.windows(4).position(|w| w == b"\"n\":");
            let at = full.or_else(|| bytes.windows(3).position(|w| w == b"/n\"")).unwrap();
            bytes[at + 1] ^= 0x20;
        }
    }

    impl Directory for Files {
        fn snapshots(&mut self) -> Result<Vec<(u64, String)>, String> {
            Ok(self.0.iter().map(|(time, name, _)| (*time, name.clone())).collect())
        }
        fn read(&mut self, name: &str) -> Result<Vec<u8>, String> {
            Ok(self.0.iter().find(|(_, n, _)| n == name).ok_or("no such file")?.2.clone())
        }
        fn tail(&mut self, name: &str) -> Result<Vec<u8>, String> {
            self.read(name)
        }
        fn node_state(&mut self) -> Result<Option<Vec<u8>>, String> {
            Ok(None)
        }
    }

    fn start(files: &mut Files, flags: &Flags) -> Start {
        decide(Some(files as &mut dyn Directory), flags, &mut || 7).expect("it starts").start
    }

    #[test]
    fn new_versions_are_numbered_above_a_damaged_newest_file() {
        for coordinated in [false, true] {
            let flags = Flags { coordinated, ..Flags::default() };
            let mut files = Files::default();
            files.add(1_000_000, 70);
            let newest = files.add(2_000_000, 71);
            // A flipped byte in the data: the file is damaged, its tail still names 71.
            let data = files.0[newest].2.windows(4).position(|w| w == b"\"n\":").unwrap();
            files.0[newest].2[data + 1] ^= 0x20;
            let start = start(&mut files, &flags);
            assert_eq!(start.sealed.copy.version.sequence, 70, "the one before is loaded");
            assert_eq!((start.floor, start.floor_unknown), (71, None), "coordinated: {coordinated}");
        }
    }

    #[test]
    fn a_damaged_file_that_shows_no_sequence_refuses_writes_until_accepted() {
        let mut files = Files::default();
        files.add(1_000_000, 70);
        let newest = files.add(2_000_000, 71);
        files.0[newest].2.truncate(10);
        let refused = start(&mut files, &Flags::default());
        assert_eq!(refused.floor, 70);
        let why = refused.floor_unknown.expect("writes are refused");
        assert!(why.contains(&files.0[newest].1) && why.contains("--accept-lost-versions"), "{why}");
        let accepted = start(&mut files, &Flags { accept_lost_versions: true, ..Flags::default() });
        assert_eq!((accepted.floor, accepted.floor_unknown), (70, None));
    }

    #[test]
    fn a_damaged_file_naming_an_absurd_sequence_does_not_move_the_numbering() {
        let mut files = Files::default();
        files.add(1_000_000, 70);
        let newest = files.add(2_000_000, 1 << 60);
        let data = files.0[newest].2.windows(4).position(|w| w == b"\"n\":").unwrap();
        files.0[newest].2[data + 1] ^= 0x20;
        let start = start(&mut files, &Flags::default());
        assert_eq!(start.floor, 70, "not numbered after {}", 1u64 << 60);
        assert!(start.floor_unknown.is_some(), "writes wait for the operator");
    }

    /// The value of `n` in a started store.
    fn n(start: &Start) -> u64 {
        let Some(Value::UInt(n)) = start.sealed.copy.root.resolve(&["n".to_string()]) else { panic!("no n") };
        *n
    }

    #[test]
    fn a_chain_of_change_files_loads_to_its_last_version() {
        let mut files = Files::default();
        files.add_chain(1_000_000, 5, 9);
        let start = start(&mut files, &Flags::default());
        assert_eq!((start.sealed.copy.version.sequence, n(&start), start.floor), (9, 9, 9));
        assert_eq!((start.chain.commits, start.chain.newest), (4, Some(start.sealed.copy.version)));
        assert_eq!(Checksum::of(&start.sealed.copy.root), start.sealed.copy.version.checksum);
        assert_eq!(start.sealed.copy.lineage.current(), start.sealed.copy.version);
    }

    #[test]
    fn a_damaged_change_file_ends_the_chain_and_new_sequences_go_above_it() {
        for damaged in [9, 7] {
            let mut files = Files::default();
            let chain = files.add_chain(1_000_000, 5, 9);
            files.damage(chain[(damaged - 5) as usize]);
            let startup = decide(Some(&mut files as &mut dyn Directory), &Flags::default(), &mut || 7).unwrap();
            let start = &startup.start;
            assert_eq!((start.sealed.copy.version.sequence, n(start)), (damaged - 1, damaged - 1), "damaged {damaged}");
            assert_eq!((start.floor, start.floor_unknown.as_deref()), (9, None), "above every sequence a file names");
            assert_eq!(startup.damaged.len() as u64, 10 - damaged, "the damaged file and the ones after it");
            assert_eq!(startup.chain, ChainState::default(), "the newest file did not load: a full file comes next");
        }
    }

    #[test]
    fn a_damaged_full_snapshot_ends_its_chain_and_an_older_chain_loads() {
        let mut files = Files::default();
        files.add_chain(1_000_000, 1, 3);
        let second = files.add_chain(10_000_000, 4, 6);
        files.damage(second[0]);
        let start = start(&mut files, &Flags::default());
        assert_eq!((start.sealed.copy.version.sequence, n(&start), start.floor), (3, 3, 6));
    }

    #[test]
    fn a_change_whose_base_no_file_holds_is_skipped() {
        let mut files = Files::default();
        files.add_chain(1_000_000, 1, 2);
        let orphan = files.add_chain(10_000_000, 4, 5);
        files.0.remove(orphan[0]);
        let startup = decide(Some(&mut files as &mut dyn Directory), &Flags::default(), &mut || 7).unwrap();
        assert_eq!((startup.start.sealed.copy.version.sequence, startup.start.floor), (2, 5));
        assert!(startup.damaged[0].1.contains("which no older file holds"), "{:?}", startup.damaged);
    }

    #[test]
    fn a_change_file_cut_short_is_damaged_and_its_lost_sequence_waits_for_the_operator() {
        let mut files = Files::default();
        let chain = files.add_chain(1_000_000, 1, 3);
        files.0[chain[2]].2.truncate(40);
        let refused = start(&mut files, &Flags::default());
        assert_eq!(refused.sealed.copy.version.sequence, 2);
        assert!(refused.floor_unknown.is_some(), "the cut file shows no sequence");
        let accepted = start(&mut files, &Flags { accept_lost_versions: true, ..Flags::default() });
        assert_eq!((accepted.sealed.copy.version.sequence, accepted.floor_unknown), (2, None));
    }

    #[test]
    fn a_chain_whose_last_version_does_not_hash_to_its_checksum_loads_its_longest_matching_prefix() {
        let mut files = Files::default();
        let chain = files.add_chain(1_000_000, 1, 3);
        // A change file written with another version's checksum: its file checksum matches.
        let before = seal(Value::parse(br#"{"n": 3, "same": [1, 2, 3]}"#).unwrap(), 3, None);
        let after = seal(Value::parse(br#"{"n": 4, "same": [1, 2, 3]}"#).unwrap(), 4, None);
        let mut change =
            Change::between(before.copy.version, &before.copy.root, after.copy.version, &after.copy.root).unwrap();
        change.version.checksum = Checksum([9; 20]);
        let mut copy = after.copy.clone();
        copy.lineage = crate::core::lineage::Lineage::of(change.version);
        files.0.push((9_000_000, file_name(9_000_000), change_file::encode(&NodeJson::default(), &change, &copy)));
        let startup = decide(Some(&mut files as &mut dyn Directory), &Flags::default(), &mut || 7).unwrap();
        assert_eq!((startup.start.sealed.copy.version.sequence, n(&startup.start), startup.start.floor), (3, 3, 4));
        assert!(startup.damaged[0].1.contains("hashes to"), "{:?}", startup.damaged);
        assert_eq!(chain.len(), 3);
    }
}
