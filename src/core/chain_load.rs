//! Start-up's reading of a data directory of chains (`core::chain`): the newest version whose
//! chain loads. A version held by a full snapshot loads if the file decodes; one held by a change
//! file loads if the file decodes (its own file checksum matches), the version it applies to
//! (its base) loads from the newest older file that holds it, and its patch applies to that
//! version's tree. Files are tried newest first (by name, or by the (term, sequence) their last
//! bytes name with coordinated writes); every file tried before the one loaded that did not load
//! is reported, with why, and never removed.
//!
//! What is checked: every file read is checked against its own file checksum (a full snapshot
//! also against its data's checksum, as always). A patch is applied without hashing the store it
//! makes: hashing the whole store after every change would make start-up cost chain x store. The
//! version loaded is hashed once; if it does not match its checksum, it is reported and the
//! version before it in the chain is tried (so the longest prefix of the chain whose version
//! matches its checksum loads; the trees share every node a patch did not copy, so keeping each
//! version of the chain is cheap).

use std::collections::HashMap;

use log::{info, warn};

use crate::core::chain::{ChainState, checksum_and_len};
use crate::core::change_file::{self, Peeked};
use crate::core::sealed::{Sealed, StoreCopy, render_body};
use crate::core::snapshot::{OwnCommit, decode_keeping};
use crate::core::startup::{Damaged, Directory, Refusal};
use crate::core::version::Version;
use crate::core::{Accepted, Start};
use crate::limits::SEQUENCE_PLAUSIBLE_MAX;

/// One file of the directory, as its name and last bytes show it.
struct File {
    name: String,
    time: u64,
    peeked: Option<Peeked>,
}

/// A version a file holds, loaded.
struct State {
    sealed: Sealed,
    cluster: Vec<serde_json::Value>,
    mine: Vec<OwnCommit>,
    committed: bool,
    /// The file this one's change applies to (`None`: a full snapshot).
    parent: Option<usize>,
    /// Its tree is known to hash to its version's checksum.
    verified: bool,
    /// Change files since the full snapshot of its chain, and the bytes of their patches.
    commits: u64,
    bytes: u64,
}

/// A directory's files and the versions loaded from them so far.
pub(crate) struct Loader<'a> {
    dir: &'a mut dyn Directory,
    /// Newest first, in the order they are tried.
    files: Vec<File>,
    states: Vec<Option<Result<State, String>>>,
    /// The files holding each version, by their last bytes.
    holding: HashMap<Version, Vec<usize>>,
    keep_body: bool,
    /// The highest sequence any file names, damaged ones too.
    pub(crate) highest: u64,
}

/// What the newest loadable version is, and what was passed over on the way.
pub(crate) struct Newest {
    pub(crate) start: Option<Start>,
    pub(crate) damaged: Vec<Damaged>,
    /// The damaged files whose last bytes show no sequence at all.
    pub(crate) unnumbered: Vec<String>,
}

impl<'a> Loader<'a> {
    /// Lists `dir`'s files and reads their last bytes. With `coordinated` writes files are tried
    /// by the (term, sequence) they name, else by their names. `keep_body`: the loaded version
    /// keeps (or renders) its copy body.
    pub(crate) fn new(dir: &'a mut dyn Directory, coordinated: bool, keep_body: bool) -> Result<Loader<'a>, Refusal> {
        let names = dir.snapshots().map_err(Refusal)?;
        let mut keyed = Vec::with_capacity(names.len());
        let mut highest = 0;
        for (time, name) in names {
            let tail = dir.tail(&name).map_err(|e| unreadable(&name, &e))?;
            let peeked = change_file::peek(&tail);
            // A sequence no store reaches is damage too: it must not push the numbering to the end.
            let plausible = peeked.filter(|p| p.version.sequence <= SEQUENCE_PLAUSIBLE_MAX);
            highest = highest.max(plausible.map_or(0, |p| p.version.sequence));
            let order = match peeked {
                Some(peeked) if coordinated => peeked.order(),
                // A file whose tail shows no version is probably damaged: tried first, so that it
                // is reported, not silently passed over.
                None if coordinated => (u64::MAX, u64::MAX),
                _ => (0, 0),
            };
            keyed.push(((order.0, order.1, time), File { name, time, peeked: plausible }));
        }
        keyed.sort_by_key(|(key, _)| std::cmp::Reverse(*key));
        let files: Vec<File> = keyed.into_iter().map(|(_, file)| file).collect();
        let mut holding: HashMap<Version, Vec<usize>> = HashMap::new();
        for (index, file) in files.iter().enumerate() {
            if let Some(peeked) = file.peeked {
                holding.entry(peeked.version).or_default().push(index);
            }
        }
        let states = files.iter().map(|_| None).collect();
        Ok(Loader { dir, files, states, holding, keep_body, highest })
    }

    /// The newest version that loads, and the files tried before it that did not.
    pub(crate) fn newest(&mut self) -> Result<Newest, Refusal> {
        let mut newest = Newest { start: None, damaged: Vec::new(), unnumbered: Vec::new() };
        for index in 0..self.files.len() {
            match self.load(index)? {
                Ok(()) => {
                    let name = &self.files[index].name;
                    let state = self.state(index).expect("loaded");
                    let version = state.sealed.copy.version;
                    let chain = if state.commits > 0 {
                        format!(", after {} change file(s)", state.commits)
                    } else {
                        String::new()
                    };
                    info!("loaded {name} (sequence {}, checksum {}{chain})", version.sequence, version.checksum);
                    self.highest = self.highest.max(version.sequence);
                    newest.start = Some(self.start(index));
                    return Ok(newest);
                }
                Err(why) => {
                    let file = &self.files[index];
                    warn!("skipping snapshot {}: {why}", file.name);
                    if file.peeked.is_none() {
                        newest.unnumbered.push(file.name.clone());
                    }
                    newest.damaged.push((file.name.clone(), why));
                }
            }
        }
        Ok(newest)
    }

    /// The version `point` (the commit point of `node.json`) from the file that holds it, if one
    /// loads.
    pub(crate) fn find(&mut self, point: Accepted) -> Result<Option<(String, Sealed)>, Refusal> {
        let candidates = self.holding.get(&point.version).cloned().unwrap_or_default();
        for index in candidates {
            if self.files[index].peeked.map(|p| p.term) != Some(point.term) || self.load(index)?.is_err() {
                continue;
            }
            let start = self.start(index);
            if Accepted::of(&start.sealed) == point {
                return Ok(Some((self.files[index].name.clone(), start.sealed)));
            }
        }
        Ok(None)
    }

    /// The chain of the directory's newest file, as the writer goes on with it: unknown unless
    /// that file's version was loaded.
    pub(crate) fn chain(&self) -> ChainState {
        let Some(newest) = (0..self.files.len()).max_by_key(|&i| self.files[i].time) else {
            return ChainState::default();
        };
        match self.state(newest) {
            Some(state) if self.chain_loads(newest) => {
                ChainState { newest: Some(state.sealed.copy.version), commits: state.commits, bytes: state.bytes }
            }
            _ => ChainState::default(),
        }
    }

    /// The names of the change files, as their last bytes show them.
    pub(crate) fn change_files(&self) -> Vec<String> {
        let changes = self.files.iter().filter(|f| f.peeked.is_some_and(|p| p.base.is_some()));
        changes.map(|f| f.name.clone()).collect()
    }

    fn state(&self, index: usize) -> Option<&State> {
        self.states[index].as_ref()?.as_ref().ok()
    }

    /// Loads the version of file `index` (and the chain it applies to), checked as the module
    /// says; `Err` says why it does not load.
    fn load(&mut self, index: usize) -> Result<Result<(), String>, Refusal> {
        // The files down the chain whose versions are not loaded yet, newest first.
        let mut path = Vec::new();
        let mut next = Some(index);
        while let Some(at) = next {
            if self.states[at].is_some() || path.len() > self.files.len() {
                break;
            }
            path.push(at);
            next = self.files[at].peeked.and_then(|p| p.base).and_then(|base| self.base_file(at, base));
        }
        for &at in path.iter().rev() {
            let state = self.read(at)?;
            self.states[at] = Some(state);
        }
        if let Err(why) = self.states[index].as_ref().expect("loaded above") {
            return Ok(Err(why.clone()));
        }
        if !self.chain_loads(index) {
            return Ok(Err("a version of its chain does not hash to its checksum".into()));
        }
        let state = self.states[index].as_mut().and_then(|s| s.as_mut().ok()).expect("loaded");
        if !state.verified {
            let (checksum, data_len) = checksum_and_len(&state.sealed.copy.root, &mut || {});
            if checksum != state.sealed.copy.version.checksum {
                let why = format!(
                    "the store its chain of changes makes hashes to {checksum}, not to its version's checksum {}",
                    state.sealed.copy.version.checksum
                );
                self.states[index] = Some(Err(why.clone()));
                return Ok(Err(why));
            }
            (state.verified, state.sealed.data_len) = (true, data_len);
        }
        Ok(Ok(()))
    }

    /// Whether every version down the chain of file `index` loaded (none was found not to hash
    /// to its checksum since).
    fn chain_loads(&self, index: usize) -> bool {
        let mut at = Some(index);
        while let Some(i) = at {
            match self.state(i) {
                Some(state) => at = state.parent,
                None => return false,
            }
        }
        true
    }

    /// The newest file written before file `index` that holds `base` (the writer writes a change
    /// file only on the file of its base).
    fn base_file(&self, index: usize, base: Version) -> Option<usize> {
        let before = self.files[index].time;
        let holders = self.holding.get(&base)?.iter().filter(|&&j| self.files[j].time < before);
        holders.max_by_key(|&&j| self.files[j].time).copied()
    }

    /// Reads and decodes file `index`; a change file is applied to its base's version, which
    /// is loaded already (or did not load).
    fn read(&mut self, index: usize) -> Result<Result<State, String>, Refusal> {
        let name = self.files[index].name.clone();
        let bytes = self.dir.read(&name).map_err(|e| unreadable(&name, &e))?;
        if !change_file::is_change_file(&bytes) {
            return Ok(match decode_keeping(&bytes, self.keep_body) {
                Ok(snapshot) => Ok(State {
                    sealed: snapshot.sealed,
                    cluster: snapshot.cluster,
                    mine: snapshot.mine,
                    committed: snapshot.committed,
                    parent: None,
                    verified: true,
                    commits: 0,
                    bytes: 0,
                }),
                Err(e) => Err(e.to_string()),
            });
        }
        let file = match change_file::decode(&bytes) {
            Ok(file) => file,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let base = file.change.base;
        let Some(parent) = self.base_file(index, base) else {
            return Ok(Err(format!(
                "it applies to sequence {} ({}), which no older file holds",
                base.sequence, base.checksum
            )));
        };
        let Some(before) = self.state(parent) else {
            return Ok(Err(format!("it applies to {}, which does not load", self.files[parent].name)));
        };
        let root = match file.change.apply(&before.sealed.copy.root) {
            Ok(root) => root,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let (commits, bytes) = (before.commits + 1, before.bytes + file.change.len() as u64);
        let copy =
            StoreCopy { version: file.change.version, root, lineage: file.lineage, coordination: file.coordination };
        Ok(Ok(State {
            sealed: Sealed { copy, body: Vec::new().into(), data_len: 0, change: None },
            cluster: file.cluster,
            mine: file.mine,
            committed: file.committed,
            parent: Some(parent),
            verified: false,
            commits,
            bytes,
        }))
    }

    /// What the node starts from with the (loaded) version of file `index`: its body rendered
    /// if the node keeps one (it has peers) and the chain did not give it.
    fn start(&self, index: usize) -> Start {
        let state = self.state(index).expect("loaded");
        let mut sealed = state.sealed.clone();
        if sealed.body.is_empty() && (self.keep_body || !state.cluster.is_empty()) {
            (sealed.body, sealed.data_len) = render_body(&sealed.copy);
        }
        Start {
            sealed,
            cluster: state.cluster.clone(),
            mine: state.mine.clone(),
            committed: state.committed,
            ..Start::empty()
        }
    }
}

/// The refusal of a snapshot file that cannot be read (not a damaged one).
pub(crate) fn unreadable(name: &str, e: &str) -> Refusal {
    Refusal(format!(
        "cannot read the snapshot {name}: {e}; this is not damage but a fault to fix (permissions, the disk), or move \
         the file out of the directory"
    ))
}
