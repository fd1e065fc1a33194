//! The work the core hands to the worker threads, and what they report back.
//!
//! A job is immutable: the new store travels as a shared tree (one reference count, no copy), so
//! serializing and hashing a large store happen on a worker, never on the event loop. `run` is the
//! one place a job is carried out: the shell's workers call it with the real data directory and a
//! pacing hook that yields the core; the simulation calls it with a simulated disk that can fail.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::Ticket;
use crate::core::chain::{self, ChainState, Writing};
use crate::core::change::Change;
use crate::core::lineage::Lineage;
use crate::core::node_state::NodeState;
use crate::core::roster::Coordination;
use crate::core::sealed::{self, DecodeError, Sealed, StoreCopy};
use crate::core::snapshot::NodeJson;
use crate::core::value::{TextCache, Value};
use crate::core::version::Version;

/// Who waits for a job's report: `Node::job_done` hands each report to its owner, and to no one
/// else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The flush queue (`durability.rs`): a local commit's seal, a write of the served store, the
    /// removal of a commit that lost.
    Disk,
    /// The version the coordinator is making durable (`replicate.rs`): its seal, its own write,
    /// and its body rendered for voters that lack the change's base.
    Commit,
    /// A version the coordinator pushed, written here before it is acknowledged (`voter.rs`).
    Accept,
    /// A copy being checked, and who waits for it.
    Decode(Decoding),
    /// The store's copy body, for `GET /copy` and for peers that take it whole (`take.rs`).
    Render,
    /// The copy body of the newest version a voter holds, for a new coordinator's `GET
    /// /cluster/accepted` (`voter.rs`).
    HeldCopy(Ticket),
    /// The node's id, term and vote (`consensus.rs`), or, with local writes, the cluster it joined.
    NodeState,
    /// The commit point in `node.json` (`commit_point.rs`).
    CommitPoint,
}

/// Who waits for a copy the decoder thread is checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// A `PUT /copy` request.
    Request(Ticket),
    /// A copy fetched from a peer.
    Fetched,
    /// A version the coordinator pushes (`PUT /cluster/accept`).
    Accept(Ticket),
    /// The version a new coordinator adopts, fetched from the voter that holds it.
    Adopt,
    /// A client's `PUT /copy` with coordinated writes: a restore (`take.rs`).
    Restore { ticket: Ticket, client: Option<std::net::SocketAddr> },
}

/// A job's name: a serial number from the node's one allocator (`Ids`), and who waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobId {
    pub serial: u64,
    pub owner: Owner,
}

/// The one source of the ids of jobs and of calls to peers: every id is new, so a late report or
/// answer is never taken for a newer one's.
#[derive(Debug)]
pub(crate) struct Ids {
    next: u64,
}

impl Ids {
    pub(crate) fn new() -> Ids {
        Ids { next: 1 }
    }

    /// The id of a new job, reported to `owner`.
    pub(crate) fn job(&mut self, owner: Owner) -> JobId {
        JobId { serial: self.take(), owner }
    }

    /// The id of a new call to a peer.
    pub(crate) fn call(&mut self) -> u64 {
        self.take()
    }

    fn take(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }
}

/// Work for the worker threads.
#[derive(Debug)]
pub enum Job {
    /// Seal a commit at `sequence`, extending `parent`: render and hash the store, and, if `write`,
    /// write it (with a data directory). `coordination`: the version's term and voters.
    Seal {
        id: JobId,
        sequence: u64,
        root: Value,
        parent: Lineage,
        /// The version the commit started from and its tree: the seal also gives the commit as
        /// the change from it (`Sealed::change`).
        before: Option<(Version, Value)>,
        node: NodeJson,
        coordination: Option<Box<Coordination>>,
        write: bool,
        /// The version goes to peers: its copy body is rendered with the seal only if its change
        /// cannot go instead (there is none, or it is not smaller than the store). Otherwise the
        /// body is set aside (`sealed::seal_set_aside`), unless the seal writes a full snapshot,
        /// which renders it anyway; a peer that later needs it whole gets it rendered by
        /// `Job::Render`.
        body_needed: bool,
    },
    /// Stamp a version with another coordination (a new coordinator's term); nothing is written.
    Restamp { id: JobId, sealed: Box<Sealed>, coordination: Box<Coordination> },
    /// Write the node's id, term and vote, durably.
    SaveState { id: JobId, state: NodeState },
    /// Write a version that is already sealed (a copy taken from a peer, a version pushed to a
    /// voter, the served store) to the data directory, as `writing` says (`core::chain`): a
    /// change file when its change applies to the newest file, else a full snapshot, its body
    /// rendered by the writer if it was set aside.
    Write { id: JobId, sealed: Box<Sealed>, node: NodeJson, writing: Writing },
    /// Remove a snapshot that must never be loaded (a commit that lost to a newer store), durably.
    Remove { id: JobId, file: PathBuf },
    /// Parse a copy sent by a peer, check its checksum and render its canonical body.
    Decode { id: JobId, body: Vec<u8> },
    /// Make a version pushed as its change (`PUT /cluster/accept`) from the one of `bases` it
    /// applies to, and check its checksum (`change::sealed_from_pushed`); reported as `Decoded`.
    Apply { id: JobId, body: Vec<u8>, bases: Vec<(Version, Value)> },
    /// Render the copy body of a version whose body was set aside, off the loop: for `GET /copy`,
    /// for a peer pushed the store whole, for a voter that lacks the base of a commit's change.
    Render { id: JobId, copy: Box<StoreCopy> },
    /// Let go of a version the store no longer serves: freeing a large tree (every node of a copy
    /// taken from a peer, or a wide object an edit copied) takes milliseconds.
    Retire(Box<Sealed>),
}

impl Job {
    /// True for the jobs that touch the data directory (one writer does them, in order); decoding
    /// and rendering a copy go to their own worker, so they never wait behind an fsync.
    pub fn writes(&self) -> bool {
        !matches!(self, Job::Decode { .. } | Job::Apply { .. } | Job::Render { .. } | Job::Retire(_))
    }
}

/// A finished job, reported back to the core. `file` is the snapshot written (`None` without a
/// data directory); `chain` is the directory's chain after it (`None` without a data directory);
/// `elapsed_us` is how long the job took, for the latency histogram (the shell measures it).
#[derive(Debug)]
pub enum Done {
    Sealed {
        id: JobId,
        sealed: Sealed,
        file: Result<Option<PathBuf>, DiskError>,
        chain: Option<ChainState>,
        elapsed_us: u64,
    },
    Written {
        id: JobId,
        file: Result<Option<PathBuf>, DiskError>,
        chain: Option<ChainState>,
        elapsed_us: u64,
    },
    Decoded {
        id: JobId,
        result: Result<Sealed, DecodeError>,
    },
    /// The copy body of `version`, and the length of its data.
    Rendered {
        id: JobId,
        version: Version,
        body: Arc<[u8]>,
        data_len: usize,
    },
    /// The file is gone, and the directory synced (or the removal failed and was logged).
    Removed {
        id: JobId,
    },
    /// A retired version is gone.
    Retired,
    /// The node's state is on disk (or could not be written).
    StateSaved {
        id: JobId,
        result: Result<(), DiskError>,
    },
}

/// A report whose owner does not take it: no job of that owner reports so (a broken invariant).
pub(super) fn no_owner(done: &Done) -> ! {
    match done {
        Done::Sealed { id, .. }
        | Done::Written { id, .. }
        | Done::Removed { id }
        | Done::Decoded { id, .. }
        | Done::Rendered { id, .. }
        | Done::StateSaved { id, .. } => unreachable!("no {:?} job reports so: {}", id.owner, id.serial),
        Done::Retired => unreachable!("a retired tree has no owner to report to"),
    }
}

impl Done {
    /// Records how long the job took.
    pub fn took(mut self, micros: u64) -> Done {
        if let Done::Sealed { elapsed_us, .. } | Done::Written { elapsed_us, .. } = &mut self {
            *elapsed_us = micros;
        }
        self
    }
}

/// A snapshot that could not be written. The answer to the waiting commit says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskError {
    /// 507 when the disk is full, 503 otherwise (read-only, permissions, I/O error).
    pub status: u16,
    pub message: String,
}

/// Where the jobs' snapshot files go: the data directory, or a simulated one.
pub trait Disk {
    /// What the directory's newest files are (`None` without a data directory: nothing is
    /// written). `core::chain::write_version` decides with it which file a version gets, and
    /// keeps it up to date.
    fn chain(&mut self) -> Option<&mut ChainState>;
    /// Writes a new file durably (it survives `kill -9` and power loss once this returns, under
    /// its name or in a spare file that start-up places: `core::spare`), its bytes given by `write`; `change` says it is a change file (for the retention rules). Old
    /// files are removed later, off the answer's path (`shell::data_dir::DataDir::tidy`).
    fn write_file(
        &mut self,
        change: bool,
        write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> Result<PathBuf, DiskError>;
    /// Removes a snapshot file durably. A failure is logged; the file may stay.
    fn remove_snapshot(&mut self, file: &Path);
    /// Writes the node's state durably (nothing without a data directory).
    fn save_state(&mut self, state: &NodeState) -> Result<(), DiskError>;
}

/// The disk of a node without a data directory: nothing is written, and nothing fails.
pub struct NoDisk;

impl Disk for NoDisk {
    fn chain(&mut self) -> Option<&mut ChainState> {
        None
    }

    fn write_file(
        &mut self,
        _: bool,
        _: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> Result<PathBuf, DiskError> {
        unreachable!("nothing is written without a data directory")
    }

    fn remove_snapshot(&mut self, _: &Path) {}

    fn save_state(&mut self, _: &NodeState) -> Result<(), DiskError> {
        Ok(())
    }
}

/// Carries out one job, keeping no text between jobs (tests; see `run_keeping`). `pace` is called
/// between pieces of long work.
pub fn run(job: Job, disk: &mut dyn Disk, pace: &mut dyn FnMut()) -> Done {
    run_keeping(job, disk, &mut TextCache::default(), pace)
}

/// Carries out one job. `text` is the thread's text of the store it walked last
/// (`value::TextCache`): hashing and rendering a new version render only what changed. `pace` is
/// called between pieces of long work.
pub fn run_keeping(job: Job, disk: &mut dyn Disk, text: &mut TextCache, pace: &mut dyn FnMut()) -> Done {
    match job {
        Job::Seal { id, sequence, root, parent, before, mut node, coordination, write, body_needed } => {
            let coordination = coordination.map(|c| *c);
            // A full snapshot needs the body: rendered and hashed in one pass.
            let full_file = write
                && disk.chain().is_some()
                && !before.as_ref().is_some_and(|(base, _)| chain::would_take(disk, *base));
            let mut sealed = if full_file {
                sealed::seal_rendered(root, sequence, Some(&parent), coordination, Some(text), pace)
            } else {
                sealed::seal_set_aside(root, sequence, Some(&parent), coordination, text, pace)
            };
            sealed.change = before
                .and_then(|(base, tree)| Change::between(base, &tree, sealed.copy.version, &sealed.copy.root))
                .map(Arc::new);
            let change_goes = sealed.change.as_ref().is_some_and(|c| c.len() < sealed.data_len);
            if body_needed && sealed.body.is_empty() && !change_goes {
                (sealed.body, sealed.data_len) = sealed::render_body_cached(&sealed.copy, text, pace);
            }
            // The node's own commits include this one, which only now has its checksum.
            node.add_mine(sealed.copy.version);
            let file =
                if write { chain::write_version(disk, &node, &sealed, Writing::AsRuled, text, pace) } else { Ok(None) };
            Done::Sealed { id, sealed, file, chain: disk.chain().copied(), elapsed_us: 0 }
        }
        Job::Restamp { id, sealed, coordination } => {
            let sealed = sealed::restamp(&sealed, *coordination);
            Done::Sealed { id, sealed, file: Ok(None), chain: None, elapsed_us: 0 }
        }
        Job::SaveState { id, state } => Done::StateSaved { id, result: disk.save_state(&state) },
        Job::Write { id, sealed, node, writing } => {
            let file = chain::write_version(disk, &node, &sealed, writing, text, pace);
            Done::Written { id, file, chain: disk.chain().copied(), elapsed_us: 0 }
        }
        Job::Remove { id, file } => {
            disk.remove_snapshot(&file);
            Done::Removed { id }
        }
        Job::Decode { id, body } => Done::Decoded { id, result: sealed::parse_copy_paced(&body, pace) },
        Job::Apply { id, body, bases } => {
            Done::Decoded { id, result: crate::core::change::sealed_from_pushed(&body, &bases, text, pace) }
        }
        Job::Retire(sealed) => {
            drop(sealed);
            Done::Retired
        }
        Job::Render { id, copy } => {
            let (body, data_len) = sealed::render_body_cached(&copy, text, pace);
            Done::Rendered { id, version: copy.version, body, data_len }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_new_whoever_asks_for_it() {
        let mut ids = Ids::new();
        let seal = ids.job(Owner::Disk);
        let call = ids.call();
        let decode = ids.job(Owner::Decode(Decoding::Fetched));
        assert_eq!((seal.serial, call, decode.serial), (1, 2, 3));
        assert_eq!(decode.owner, Owner::Decode(Decoding::Fetched));
    }

    #[test]
    fn a_seal_from_a_known_base_gives_the_commit_as_its_change() {
        let before = Value::parse(br#"{"web": {"port": 80}, "db": {"port": 5432}}"#).unwrap();
        let base = Version { sequence: 3, checksum: crate::core::version::Checksum::of(&before) };
        let root = Value::parse(br#"{"web": {"port": 8080}, "db": {"port": 5432}}"#).unwrap();
        let seal = |before| Job::Seal {
            id: JobId { serial: 1, owner: Owner::Disk },
            sequence: 4,
            root: root.clone(),
            parent: Lineage::of(base),
            before,
            node: NodeJson::default(),
            coordination: None,
            write: false,
            body_needed: false,
        };
        let Done::Sealed { sealed, .. } = run(seal(Some((base, before.clone()))), &mut NoDisk, &mut || {}) else {
            panic!("a seal reports sealed")
        };
        let change = sealed.change.expect("a change from a known base");
        assert_eq!((change.base, change.version), (base, sealed.copy.version));
        assert_eq!(&*change.patch, br#"[{"op":"replace","path":"/web/port","value":8080}]"#);
        let Done::Sealed { sealed, .. } = run(seal(None), &mut NoDisk, &mut || {}) else { panic!() };
        assert!(sealed.change.is_none(), "no base, no change");
    }
}
