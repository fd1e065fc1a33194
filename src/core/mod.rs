//! The pure core: everything Lighthouse decides, with no I/O.
//!
//! A `Node` takes the time and one input (a parsed request, a finished disk job, a peer's answer,
//! the passing of time) and returns an answer, queueing any further effects (answers to parked
//! requests, events for streams, jobs for the workers, requests to peers) for the shell to carry
//! out. It never reads a clock, a socket or a file, so tests drive it directly, and a simulation
//! runs several on a simulated network. The domain types it works on live here too.

pub mod address;
pub mod chain;
mod chain_load;
pub mod change;
pub mod change_file;
pub mod clock;
pub mod jobs;
pub mod lineage;
pub mod messages;
pub mod node_state;
pub mod pace;
pub mod path;
pub mod rng;
pub mod roster;
pub mod sealed;
pub mod snapshot;
mod snapshot_written;
pub mod spare;
pub mod startup;
pub mod value;
pub mod version;

mod auth;
mod beats;
mod cluster;
mod commit_point;
mod consensus;
mod coordinated;
mod data;
mod durability;
mod election;
mod forward;
mod grant;
mod guard;
mod info;
mod joining;
mod lock;
mod membership;
mod metrics;
mod peering;
mod renewal;
mod replicate;
mod routing;
mod store;
mod take;
mod transaction;
mod voter;
mod watch;
mod write;

#[cfg(test)]
mod tests;

pub use auth::{Access, Secret, Token};
pub use cluster::{CallKind, NOT_SENT, Peer, PeerReply, PeerRequest};
pub use grant::{Grant, Scope, TokenLine, parse_token_file};
pub use lock::{Lock, valid_name};
pub use metrics::{Buckets, CommitBuckets, Gauges, Histogram, Metrics, SnapshotBuckets, endpoint_of};
pub use store::{Format, ReadError, Rendered, Store, etag_matches};

use std::collections::VecDeque;

use crate::core::clock::{Deadline, Now};
use crate::core::jobs::{Done, Ids, Job, JobId, Owner};
use crate::core::rng::Rng;
use crate::core::sealed::{Sealed, seal};
use crate::core::snapshot::OwnCommit;
use crate::core::value::Value;
use crate::core::version::Version;
use crate::http::{Headers, Method, Response};
use crate::limits::{INACTIVE_RETRY_AFTER_S, LINEAGE_VERSIONS_MAX};
use cluster::Cluster;
pub use consensus::Accepted;
use coordinated::Coordinated;
pub use coordinated::{ConsensusStatus, NodeRole};
use durability::DiskQueue;
use watch::Watches;

/// Identifies one request whose answer may come later (the event loop's connection and request).
pub type Ticket = u64;

/// A request as the core sees it: the head's relevant parts and the whole body.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: Method,
    pub target: &'a str,
    pub headers: Headers<'a>,
    pub body: &'a [u8],
    /// The client's address, for the audit lines of the lock (`None` in simulations and tests).
    pub client: Option<std::net::SocketAddr>,
    /// What its token grants: `None` as the shell hands it in; set once the token is checked
    /// (`routing.rs`), for the checks that judge a change and for the audit lines.
    pub grant: Option<&'a Grant>,
}

/// What the core does with a request.
#[derive(Debug)]
pub enum Reply {
    /// Answer now.
    Now(Response),
    /// The answer comes later as `Effect::Answer` with the request's ticket; until then the
    /// connection reads no further requests, so pipelined answers stay in order.
    Later,
    /// Start a stream (server-sent events): the head and the first event now, more events later
    /// as `Effect::Event` with the request's ticket, for as long as the connection lasts.
    Stream(Response),
}

/// Work the core asks the event loop to do.
#[derive(Debug)]
pub enum Effect {
    /// Send the answer to a parked request.
    Answer { ticket: Ticket, response: Response },
    /// Hand a job to a worker thread.
    Job(Job),
    /// Send a request to a peer; its outcome comes back through `Node::peer_reply`.
    Peer(PeerRequest),
    /// Send one more event on a stream.
    Event { ticket: Ticket, bytes: crate::http::Bytes },
}

/// The settings the core needs, derived from the command line.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The address peers know this node by (`--advertise`, else the bind address).
    pub address: String,
    /// Snapshots go to a data directory: commits are answered only once durable.
    pub durable: bool,
    /// The default lease of the lock (`--lock-timeout`).
    pub lock_timeout_ms: u64,
    /// Nodes to join at start (`--seeds`).
    pub seeds: Vec<String>,
    /// Serve at once, without catching up with the cluster (`--bootstrap`).
    pub bootstrap: bool,
    /// The longest a starting node stays inactive (`--bootstrap-limit`); `None`: until it has
    /// caught up, however long that takes (every snapshot on disk was damaged).
    pub bootstrap_limit_ms: Option<u64>,
    /// Seeds the jitter of sync rounds (a simulation passes its own, to replay a run).
    pub rng_seed: u64,
    /// The tokens and the cluster key, if any.
    pub access: Access,
    /// This node's id and cluster as `node.json` holds them (`core::startup` decides them).
    pub identity: node_state::NodeState,
    /// Coordinated writes (`--writes=coordinated`, the default): this node's state on disk, and
    /// the id of the cluster it founds, if it starts one. `None`: local writes.
    pub coordinated: Option<CoordinatedConfig>,
}

/// The settings of coordinated writes.
#[derive(Debug, Clone)]
pub struct CoordinatedConfig {
    /// Id, term and vote as on disk (a new id for a new data directory).
    pub state: node_state::NodeState,
    /// Found a new cluster of one with this id: a first node without seeds, or `--bootstrap` on
    /// a new data directory.
    pub founding: Option<String>,
    /// `--force-new-cluster`: go on as the only voter of the cluster whose store this node holds,
    /// in a new term, its store the committed version (a majority of the voters is lost for good).
    pub force_new_cluster: bool,
}

impl CoreConfig {
    /// A single node at `address` with default settings (tests and examples).
    pub fn single(address: &str) -> CoreConfig {
        CoreConfig {
            address: address.into(),
            durable: false,
            lock_timeout_ms: clock::seconds_to_ms(crate::limits::LOCK_TIMEOUT_S_DEFAULT),
            seeds: Vec::new(),
            bootstrap: false,
            bootstrap_limit_ms: Some(clock::seconds_to_ms(crate::limits::BOOTSTRAP_LIMIT_S_DEFAULT)),
            rng_seed: 1,
            access: Access::default(),
            identity: node_state::NodeState::new("0000000000000001".into()),
            coordinated: None,
        }
    }
}

/// What a node starts from: the newest valid snapshot, or an empty store.
#[derive(Debug, Clone)]
pub struct Start {
    pub sealed: Sealed,
    /// The cluster table stored with it.
    pub cluster: Vec<serde_json::Value>,
    /// This node's own recent commits stored with it.
    pub mine: Vec<OwnCommit>,
    /// The version was known to be committed when it was written (see `Snapshot::committed`), or
    /// is the node's commit point (`NodeState::committed`).
    pub committed: bool,
    /// New versions are numbered above this: the highest sequence any file in the data directory
    /// names, damaged ones too (`durability::next_sequence`).
    pub floor: u64,
    /// Why writes are refused (503): a damaged file shows no sequence, so the floor is unknown.
    pub floor_unknown: Option<String>,
    /// A newer version the node accepted and holds durably, not known to be committed (coordinated
    /// mode): kept as it was before the restart, while `sealed`, the commit point, is served.
    pub pending: Option<Sealed>,
    /// The chain of the data directory's newest file (`core::chain`), for compaction.
    pub chain: chain::ChainState,
}

impl Start {
    /// A new store: `{}` at sequence 0.
    pub fn empty() -> Start {
        let sealed = seal(Value::default(), 0, None);
        let (cluster, mine) = (Vec::new(), Vec::new());
        let chain = chain::ChainState::default();
        Start { sealed, cluster, mine, committed: true, floor: 0, floor_unknown: None, pending: None, chain }
    }
}

/// Whether a node serves `/data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Active,
    /// Catching up with the cluster: active once the store reaches `target` (the newest version a
    /// peer reported; `None` until one answers), or at `limit`.
    Joining {
        limit: Option<Deadline>,
        target: Option<Version>,
    },
}

/// The state of one Lighthouse node: what every node has (`Shared`), and coordinated mode's state
/// (`Coordinated`), which only a node of coordinated writes has. Each input is split between the
/// two once, here, and goes to the coordinated code only when there is such a value, so no code of
/// a node of local writes can reach coordinated state.
pub struct Node {
    shared: Shared,
    /// `None`: local writes.
    co: Option<Coordinated>,
}

/// The state every node has, whatever its write mode: the store, the lock, the disk, the peers,
/// the effects queued for the shell. Coordinated code takes it as `node: &mut Shared`; shared code
/// that may reach coordinated code takes coordinated mode's state as `co: Option<&mut Coordinated>`.
struct Shared {
    config: CoreConfig,
    store: Store,
    /// The lock and its transaction, when someone holds it.
    lock: Option<Lock>,
    /// Snapshot writes: the one in flight and what the disk still lacks.
    disk: DiskQueue,
    /// The peers and the requests out to them.
    cluster: Cluster,
    /// This node's own recent commits, newest last, each marked superseded while the store's
    /// history does not contain it.
    mine: VecDeque<OwnCommit>,
    /// Copies the decoder thread is checking (each job names who waits for it).
    decodes_in_flight: usize,
    /// `GET /copy` requests waiting for the decoder thread to render the body.
    copy_renders: take::CopyRenders,
    activation: Activation,
    /// Long-polls and event streams waiting for their subtree to change.
    watches: Watches,
    /// Commits of the last minutes by lock name, newest last, for retried commits.
    recent_commits: VecDeque<lock::RecentCommit>,
    effects: Vec<Effect>,
    /// The ids of jobs and of calls to peers.
    ids: Ids,
    metrics: Metrics,
    rng: Rng,
    /// One-request writes waiting for the lock.
    waiting_writes: write::WaitingWrites,
    /// This node's id and cluster (the cluster is learned from the first peer, when it starts
    /// without one).
    identity: node_state::NodeState,
    /// Peers of another cluster or write mode already logged, and why.
    mismatches_logged: Vec<(String, peering::Mismatch)>,
    /// With local writes: the cluster this node joined could not be written to `node.json`; it
    /// is tried again at the next sync round.
    identity_unsaved: bool,
    /// `Start::floor`, `Start::floor_unknown`.
    floor: u64,
    writes_refused: Option<String>,
    /// The last write the disk refused: when (Unix milliseconds) and why, for `/state`.
    last_disk_error: Option<(u64, String)>,
    /// The commit being timed, and the time of the input being handled (`metrics.rs`).
    clock: metrics::CommitClock,
    /// While joining with coordinated writes: when the node next logs why it does not serve.
    joining_report_at: Deadline,
}

impl Node {
    /// A node serving `start`. With a data directory, `start` is taken to be on disk already.
    pub fn new(config: CoreConfig, now: Now, start: Start) -> Node {
        let version = start.sealed.copy.version;
        let mut shared = Shared {
            rng: Rng::new(config.rng_seed),
            store: Store::new(start.sealed),
            lock: None,
            disk: DiskQueue::new(version),
            cluster: Cluster::default(),
            mine: start.mine.into_iter().rev().take(LINEAGE_VERSIONS_MAX).rev().collect(),
            decodes_in_flight: 0,
            copy_renders: take::CopyRenders::default(),
            activation: Activation::Active,
            watches: Watches::default(),
            recent_commits: VecDeque::new(),
            effects: Vec::new(),
            ids: Ids::new(),
            metrics: Metrics::default(),
            waiting_writes: write::WaitingWrites::new(),
            identity: config.identity.clone(),
            mismatches_logged: Vec::new(),
            identity_unsaved: false,
            floor: start.floor,
            writes_refused: start.floor_unknown,
            last_disk_error: None,
            clock: metrics::CommitClock { now, started: None },
            joining_report_at: Deadline(u64::MAX),
            config,
        };
        // Coordinated writes set up their state at start (a local-writes node has none).
        let settings = shared.config.coordinated.clone();
        let co =
            settings.map(|settings| Coordinated::start(&mut shared, settings, now, start.committed, start.pending));
        for entry in &start.cluster {
            shared.restore_peer(entry, now);
        }
        for seed in shared.config.seeds.clone() {
            shared.learn(&seed, now);
        }
        shared.disk.table_written(shared.cluster.stamp);
        shared.disk.chain = start.chain;
        shared.keep_body_if_needed();
        if !shared.config.bootstrap && !shared.cluster.peers.is_empty() {
            shared.start_joining(now, co.as_ref());
        }
        Node { shared, co }
    }

    pub fn version(&self) -> Version {
        self.shared.store.version()
    }

    pub fn root(&self) -> &Value {
        self.shared.store.root()
    }

    /// The recent history of the store being served.
    pub fn lineage(&self) -> &crate::core::lineage::Lineage {
        self.shared.store.lineage()
    }

    /// Serving `/data`: caught up with the cluster, and, in coordinated mode, sure that the store
    /// is committed.
    pub fn is_active(&self) -> bool {
        self.shared.is_active(self.co.as_ref())
    }

    /// Removed from its cluster's voters (coordinated writes): it serves nothing any more.
    pub fn is_removed(&self) -> bool {
        self.co.as_ref().is_some_and(|co| co.is_removed(&self.shared))
    }

    /// The id of this node's cluster, if it knows it.
    pub fn cluster_id(&self) -> Option<&str> {
        self.shared.cluster_id()
    }

    /// Coordinated writes as this node sees them at `now` (`None` in local mode).
    pub fn consensus_status(&self, now: Now) -> Option<ConsensusStatus> {
        self.co.as_ref().map(|co| co.consensus_status(&self.shared, now))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The token files were read again (SIGHUP): requests from now on are checked against them.
    pub fn set_access(&mut self, access: Access) {
        self.shared.set_access(access);
    }

    /// The counters, for the event loop to count requests, bytes and connections in.
    pub fn metrics_mut(&mut self) -> &mut Metrics {
        &mut self.shared.metrics
    }

    /// The peers this node knows.
    pub fn peers(&self) -> &[Peer] {
        &self.shared.cluster.peers
    }

    /// This node's recent commits (at most `LINEAGE_VERSIONS_MAX`), oldest first.
    pub fn own_commits(&self) -> impl Iterator<Item = &OwnCommit> {
        self.shared.mine.iter()
    }

    /// This node's recent commits that the store's history does not contain: lost to concurrent
    /// commits elsewhere, unless a later store brings them back.
    pub fn superseded(&self) -> impl Iterator<Item = Version> + '_ {
        self.shared.mine.iter().filter(|c| c.superseded).map(|c| c.version)
    }

    /// True while the writer thread works on a snapshot for this node.
    pub fn is_writing(&self) -> bool {
        self.shared.disk.is_busy()
    }

    /// At a clean stop (SIGTERM, SIGINT): the job that writes a full snapshot of the served store
    /// if the newest file holds it as a change, so that the next start reads one file.
    pub fn closing_snapshot(&mut self) -> Option<Job> {
        let Node { shared, co } = self;
        shared.closing_snapshot(co.as_ref())
    }

    /// The lock's holder, if any.
    pub fn lock_holder(&self) -> Option<&str> {
        self.shared.lock.as_ref().map(|l| l.name())
    }

    /// Effects queued since the last call, oldest first.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        let shared = &mut self.shared;
        let retired = shared.store.retired().map(|sealed| Effect::Job(Job::Retire(Box::new(sealed))));
        shared.effects.extend(retired);
        shared.effects.drain(..)
    }

    /// Handles one request: answers now, later (`Effect::Answer`), or starts a stream.
    pub fn handle(&mut self, now: Now, ticket: Ticket, request: &Request) -> Reply {
        self.shared.handle(self.co.as_mut(), now, ticket, request)
    }

    /// Takes the outcome of a request to a peer (`Effect::Peer`).
    pub fn peer_reply(&mut self, now: Now, id: u64, result: Result<PeerReply, String>) {
        self.shared.peer_reply(self.co.as_mut(), now, id, result)
    }

    /// A client connection closed: forgets its long-polls and streams. True when one was forgotten.
    pub fn disconnected(&mut self, ticket: Ticket) -> bool {
        self.shared.disconnected(ticket)
    }

    /// Runs what is due at `now`: the lease lapsing, the end of joining, sync rounds, a snapshot
    /// write to retry.
    pub fn tick(&mut self, now: Now) {
        let Node { shared, co } = self;
        shared.handling(now);
        shared.expire_lock(now);
        shared.expire_watches(now, co.as_ref());
        shared.check_activation(now, co.as_ref());
        shared.sync(now, co.as_ref());
        if let Some(co) = co.as_mut() {
            co.tick_consensus(shared, now);
            co.expire_commit(shared, now);
            co.expire_forwards(shared, now);
            co.consider_membership(shared, now);
        }
        shared.pump_disk(now, co.as_ref());
        shared.run_waiting_writes(now, co.as_mut());
        if let Some(co) = co.as_mut() {
            co.run_lease_waiters(shared, now);
            co.save_commit_point(shared, now);
        }
    }

    /// When `tick` next has something to do.
    pub fn next_deadline(&self) -> Option<Deadline> {
        let Node { shared, co } = self;
        let lease = shared.lock.as_ref().filter(|l| !l.is_committing()).map(|l| l.expires());
        let joining = match shared.activation {
            Activation::Joining { limit: Some(limit), .. } => Some(limit.min(shared.joining_report_at)),
            Activation::Joining { limit: None, .. } if co.is_some() => Some(shared.joining_report_at),
            Activation::Joining { limit: None, .. } | Activation::Active => None,
        };
        let removed = co.as_ref().is_some_and(|co| co.is_removed(shared));
        [
            lease,
            joining,
            shared.cluster.next_sync().filter(|_| !removed),
            shared.disk.retry_at(),
            shared.watches.next_deadline(),
            shared.next_write_deadline(),
            co.as_ref().and_then(|co| co.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Takes the report of a finished worker job, and hands it to the job's owner.
    pub fn job_done(&mut self, now: Now, done: Done) {
        let Node { shared, co } = self;
        shared.note_disk_error(now, &done);
        if let Done::Sealed { chain: Some(chain), .. } | Done::Written { chain: Some(chain), .. } = &done {
            shared.disk.chain = *chain;
        }
        shared.handling(now);
        match done {
            Done::Sealed { id: JobId { owner: Owner::Disk, serial }, sealed, file, elapsed_us, .. } => {
                shared.sealed_done(co.as_mut(), now, serial, sealed, file, elapsed_us)
            }
            Done::Written { id: JobId { owner: Owner::Disk, serial }, file, elapsed_us, .. } => {
                shared.written_done(co.as_mut(), now, serial, file, elapsed_us)
            }
            Done::Removed { id: JobId { owner: Owner::Disk, serial } } => shared.removed_done(co.as_mut(), now, serial),
            Done::Decoded { id: JobId { owner: Owner::Decode(waiter), .. }, result } => {
                shared.copy_decoded(co.as_mut(), now, waiter, result)
            }
            Done::Rendered { id: JobId { owner: Owner::Render, serial }, version, body, data_len } => {
                shared.copy_rendered(co.as_ref(), now, (serial, version, body, data_len))
            }
            Done::Retired => {}
            // The jobs of coordinated mode (and the node's state, which both modes write).
            done => match co {
                Some(co) => co.job_done(shared, now, done),
                None => shared.local_state_saved(done),
            },
        }
        // Any write may have made a taken copy durable.
        shared.answer_durable_copies(None);
    }
}

impl Shared {
    /// Serving `/data`: caught up with the cluster, and, in coordinated mode, sure that the store
    /// is committed, not removed, and at least as new as the version accepted before a restart.
    fn is_active(&self, co: Option<&Coordinated>) -> bool {
        self.activation == Activation::Active
            && co.is_none_or(|co| co.consensus.confirmed() && !co.is_removed(self) && co.settled(self))
    }

    /// The store is one the cluster committed: always with local writes; in coordinated mode,
    /// unless the node started from a version it has yet to confirm.
    fn store_confirmed(co: Option<&Coordinated>) -> bool {
        co.is_none_or(|co| co.consensus.confirmed())
    }

    fn answer(&mut self, ticket: Ticket, response: Response) {
        self.commit_answered(ticket, response.status);
        self.effects.push(Effect::Answer { ticket, response });
    }

    /// Called whenever the store is replaced: notes the commit point (coordinated mode), wakes
    /// the watchers of changed subtrees.
    fn store_changed(&mut self, mut co: Option<&mut Coordinated>) {
        if let Some(co) = co.as_deref_mut() {
            co.note_commit_point(self);
        }
        self.wake_watchers(co.as_deref());
        self.wake_version_waiters(co.as_deref());
        self.keep_body_if_needed();
    }

    /// A node with peers keeps the copy body of its store, to push it; a node without lets it go
    /// (it is as large as the store's JSON) and renders it again if `GET /copy` asks.
    fn keep_body_if_needed(&mut self) {
        if self.cluster.peers.is_empty() {
            self.store.forget_body();
        }
    }
}

/// The 503 of a node that is still catching up with its cluster.
fn inactive() -> Response {
    inactive_because("")
}

/// As `inactive`, saying why (empty: no more to say).
fn inactive_because(why: &str) -> Response {
    let what = "this node is starting and has not caught up with its cluster yet";
    let message = if why.is_empty() { what.to_string() } else { format!("{what}: {why}") };
    Response::error(503, &message).with_header("Retry-After", &INACTIVE_RETRY_AFTER_S.to_string())
}

fn method_not_allowed(allow: &str) -> Response {
    Response::error(405, "method not allowed on this resource").with_header("Allow", allow)
}

/// Pretty JSON of a serde_json value, with the final newline.
pub fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let mut bytes = serde_json::to_vec_pretty(body).expect("serializing a Value cannot fail");
    bytes.push(b'\n');
    Response::json(status, bytes)
}
