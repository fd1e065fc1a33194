//! Coordinated mode's state (`Coordinated`: a node of local writes has none), its start, its peer
//! endpoints, and what `GET /` and `GET /state` show of it.

use log::{info, warn};

use super::consensus::{Accepted, Consensus, Role};
use super::forward::Forward;
use super::jobs::{Done, JobId, Owner, no_owner};
use super::peering::Mismatch;
use super::replicate::{InCommit, Purpose};
use super::voter::Pending;
use super::{CoordinatedConfig, Shared};
use crate::core::clock::{Deadline, Now};
use crate::core::roster::{Coordination, Member};
use crate::core::sealed::Sealed;
use crate::core::version::Version;
use crate::http::{Method, Response};

/// Coordinated mode's state: a node of coordinated writes has one, a node of local writes none.
/// The coordinated code (this file, `consensus.rs`, `beats.rs`, `election.rs`, `replicate.rs`, `voter.rs`,
/// `forward.rs`, `renewal.rs`, `membership.rs`, `commit_point.rs`) is `impl Coordinated`, and
/// takes what every node has as `node: &mut Shared`.
#[derive(Debug)]
pub(super) struct Coordinated {
    /// Terms, votes, the coordinator, leases.
    pub(super) consensus: Consensus,
    /// A version accepted and durable here, not known to be committed.
    pub(super) pending: Option<Pending>,
    /// The version the coordinator is making durable on a majority.
    pub(super) commit: Option<InCommit>,
    /// Requests forwarded to the coordinator, waiting for its answers.
    pub(super) forwards: Vec<Forward>,
    /// While joining: the voters that answered, whose versions the target is the newest of. A
    /// majority of them must answer before the node serves.
    pub(super) heard_while_joining: Vec<String>,
    /// The last lock dropped because the coordinator lost its lease or term, and why.
    pub(super) dropped_lock: Option<(String, String)>,
    /// Requests that need the lease, parked while the coordinator renews it.
    pub(super) lease_waiters: Vec<super::renewal::LeaseWaiter>,
    /// The writes of the commit point (`consensus.state().committed`) to `node.json`.
    pub(super) point_writes: super::commit_point::PointWrites,
}

impl Coordinated {
    /// Sets up coordinated writes at start, from their settings and what the node loaded.
    pub(super) fn start(
        node: &mut Shared,
        settings: CoordinatedConfig,
        now: Now,
        committed: bool,
        pending: Option<Sealed>,
    ) -> Coordinated {
        // `--force-new-cluster` takes the store as committed, whatever it was when written.
        let force = settings.force_new_cluster && node.store.sealed().copy.coordination.is_some();
        let committed = committed || force;
        let consensus = Consensus::new(settings.state, node.config.address.clone(), committed, now);
        let mut co = Coordinated {
            consensus,
            pending: pending.map(|sealed| Pending { sealed, writing: None, replaced: None }),
            commit: None,
            forwards: Vec::new(),
            heard_while_joining: Vec::new(),
            dropped_lock: None,
            lease_waiters: Vec::new(),
            point_writes: Default::default(),
        };
        let accepted = co.accepted(node);
        let accepted_at_start = co.pending.as_ref().map(|p| Accepted::of(&p.sealed));
        co.consensus.started_with(accepted_at_start, accepted);
        if node.store.sealed().copy.coordination.is_none()
            && let Some(cluster) = settings.founding
        {
            info!("founding a new cluster ({cluster}) with this node as its only voter");
            co.consensus.found(cluster, now);
        }
        if !committed {
            info!(
                "sequence {} of term {} was not known to be committed when it was written: serving nothing until the \
                 cluster says which version is",
                accepted.version.sequence, accepted.term
            );
        }
        co.update_rank(node);
        if force {
            co.force_new_cluster(node, now);
        } else {
            co.lead_alone(node, now, committed);
        }
        co
    }

    /// Takes the report of a job of coordinated mode (or of a write of the node's state).
    pub(super) fn job_done(&mut self, node: &mut Shared, now: Now, done: Done) {
        match done {
            Done::Sealed { id: JobId { owner: Owner::Commit, serial }, sealed, file, elapsed_us, .. } => {
                self.commit_sealed(node, now, serial, sealed, file, elapsed_us)
            }
            Done::Written { id: JobId { owner: Owner::Commit, serial }, file, elapsed_us, .. } => {
                self.commit_written(node, now, serial, file, elapsed_us)
            }
            Done::Rendered { id: JobId { owner: Owner::Commit, serial }, body, data_len, .. } => {
                self.commit_rendered(node, serial, body, data_len)
            }
            Done::Rendered { id: JobId { owner: Owner::HeldCopy(ticket), .. }, body, .. } => {
                node.metrics.bodies_rendered += 1;
                node.answer(ticket, super::take::copy_response(body))
            }
            Done::Written { id: JobId { owner: Owner::Accept, serial }, file, elapsed_us, .. } => {
                node.count_write(&file, elapsed_us);
                self.accept_written(node, serial, file);
            }
            Done::StateSaved { id: JobId { owner: Owner::CommitPoint, serial }, result } => {
                self.commit_point_saved(serial, &result)
            }
            Done::StateSaved { id: JobId { owner: Owner::NodeState, serial }, result: Ok(()) } => {
                self.state_saved(node, now, serial)
            }
            Done::StateSaved { id: JobId { owner: Owner::NodeState, serial }, result: Err(e) } => {
                self.state_not_saved(now, serial, &e.message)
            }
            done => no_owner(&done),
        }
    }

    /// When coordinated mode's timers next have something to do.
    pub(super) fn next_deadline(&self) -> Option<Deadline> {
        [
            self.next_consensus_deadline(),
            self.next_forward_deadline(),
            self.next_lease_waiters_deadline(),
            self.next_commit_point_deadline(),
            self.commit.as_ref().and_then(InCommit::deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The coordination of the newest version this node holds (or of the cluster it founds).
    pub(super) fn coordination(&self, node: &Shared) -> Option<Coordination> {
        let newest = self.pending.as_ref().map(|p| &p.sealed).unwrap_or(node.store.sealed());
        newest.copy.coordination.clone().or_else(|| self.consensus.founding().cloned())
    }

    /// The newest version this node holds, committed or not: the one it is accepting (or, as the
    /// coordinator, committing) when that is newer than its store, else the store. It is what the
    /// node tells a candidate and what it gives a new coordinator that adopts it, so the two can
    /// never differ (a pending version older than a store taken since is passed over).
    pub(super) fn newest_held<'a>(&'a self, node: &'a Shared) -> &'a Sealed {
        match &self.pending {
            Some(p) if Accepted::of(&p.sealed).key() > Accepted::of(node.store.sealed()).key() => &p.sealed,
            _ => node.store.sealed(),
        }
    }

    /// The (term, version) of `newest_held`.
    pub(super) fn accepted(&self, node: &Shared) -> Accepted {
        Accepted::of(self.newest_held(node))
    }

    /// The voters of the newest version, this node's rank among them, and whether it is one.
    pub(super) fn voters(&self, node: &Shared) -> Vec<Member> {
        self.coordination(node).map(|c| c.voters).unwrap_or_default()
    }

    /// `--force-new-cluster`: a majority of the voters is lost for good, and this node goes on
    /// with what it holds. Its store becomes the committed version of a new term, stamped with
    /// this node as the only voter (the cluster keeps its id), and made durable here before any
    /// write, as a coordinator adopts a version at election. The other old voters are recorded
    /// as removed, so that one started again with its old data directory is never counted or
    /// promoted: it must be wiped and join anew (an empty directory and `--seeds`).
    fn force_new_cluster(&mut self, node: &mut Shared, now: Now) {
        let old = node.store.sealed().copy.coordination.clone().expect("checked by the caller");
        let version = node.store.version();
        let consensus = &mut self.consensus;
        let me = consensus.me();
        consensus.coordinate_alone(consensus.state().term + 1, false, now);
        let term = consensus.state().term;
        let mut next = Coordination { voters: vec![me.clone()], ..old.in_term(term) };
        let others: Vec<&Member> = old.voters.iter().filter(|v| v.id != me.id).collect();
        for voter in &others {
            next = next.removing(&voter.id, term);
        }
        let others: Vec<String> = others.iter().map(|v| format!("{} ({})", v.address, v.id)).collect();
        warn!(
            "--force-new-cluster: this node ({} at {}) goes on as the ONLY voter of cluster {}, in term {term}, with \
             its store (sequence {}, {}) as the committed version; any later commit the lost voters held is gone. \
             The other voters are removed for good: {}. Wipe their data directories before starting them again \
             with --seeds (they join as new nodes and are promoted), and restart this node without \
             --force-new-cluster from now on",
            me.id,
            me.address,
            next.cluster,
            version.sequence,
            version.checksum,
            if others.is_empty() { "none".to_string() } else { others.join(", ") }
        );
        self.save_state(node);
        self.check_lease(node, now);
        let base = Box::new(node.store.sealed().clone());
        self.replicate(node, now, Purpose::Adopt, Content::Stamp { base, coordination: next });
    }

    /// A node that is the only voter of its cluster, and serves a committed store, coordinates at
    /// once (the next term, its own vote, written in the background): there is no other version
    /// its term must win over, so writes are open from the first request.
    fn lead_alone(&mut self, node: &mut Shared, now: Now, committed: bool) {
        let Some(coordination) = self.coordination(node) else { return };
        let consensus = &mut self.consensus;
        // A version accepted and not known committed is adopted by an election, as any other.
        if !committed
            || self.pending.is_some()
            || coordination.voters.len() != 1
            || !coordination.is_voter(&consensus.state().id)
        {
            return;
        }
        let Some(next) = super::guard::next_term(consensus.state().term) else {
            log::error!(
                "this node's term ({}) is at the highest a term may be: it cannot coordinate; its node.json holds a \
                 term forged before terms were bounded",
                consensus.state().term
            );
            return;
        };
        consensus.coordinate_alone(next, true, now);
        info!("coordinating term {} as the only voter", consensus.state().term);
        // An election held with itself: started and won.
        node.metrics.elections_started += 1;
        node.metrics.elections_won += 1;
        self.save_state(node);
        self.check_lease(node, now);
        // A store from before coordinated writes (a snapshot of local writes, or one written by
        // hand) is stamped with this term first, as a new coordinator stamps what it adopts: the
        // learners that join take only versions of this cluster.
        if node.store.sealed().copy.coordination.is_none() && node.store.version().sequence > 0 {
            let term = self.consensus.state().term;
            info!(
                "sequence {} is from before coordinated writes: stamping it with term {term}",
                node.store.version().sequence
            );
            self.stamp(node, now, node.store.sealed().clone());
        }
    }

    /// This node's place among the voters' addresses: elections are staggered by it.
    pub(super) fn update_rank(&mut self, node: &mut Shared) {
        let mut addresses: Vec<String> = self.voters(node).into_iter().map(|m| m.address).collect();
        addresses.sort();
        self.consensus.rank_among(&addresses);
    }

    /// The peer endpoints of coordinated writes: `POST /cluster/vote`, `POST /cluster/beat`,
    /// `PUT /cluster/accept`, `GET /cluster/accepted`.
    pub(super) fn cluster_request(
        &mut self,
        node: &mut Shared,
        now: Now,
        ticket: super::Ticket,
        request: &super::Request,
        below: &str,
    ) -> super::Reply {
        let reply = match (request.method, below) {
            (Method::Post, "/vote") => return self.vote_request(node, now, ticket, request.body),
            (Method::Post, "/beat") => self.beat_request(node, now, request.body),
            (Method::Put, "/accept") => return self.accept_request(node, ticket, request.body),
            (Method::Get, "/accepted") => return self.accepted_copy(node, ticket),
            (_, "/vote" | "/beat" | "/accept" | "/accepted") => super::method_not_allowed("the method the path names"),
            _ => Response::error(404, &format!("no such resource: /cluster{below}")),
        };
        super::Reply::Now(reply)
    }

    /// `"coordinator"`, `"term"` and the voters, for `GET /` and `GET /state`.
    pub(super) fn consensus_json(&self, node: &Shared, now: Now) -> serde_json::Value {
        let consensus = &self.consensus;
        let role = match consensus.role() {
            Role::Coordinator(_) => "coordinator",
            Role::Candidate { .. } | Role::Probing { .. } => "candidate",
            Role::Follower if self.is_removed(node) => "removed",
            Role::Follower if self.voters(node).iter().any(|m| m.id == consensus.state().id) => "follower",
            Role::Follower => "learner",
        };
        serde_json::json!({
            "writes": "coordinated",
            "id": consensus.state().id,
            "term": consensus.state().term,
            "role": role,
            "coordinator": consensus.coordinator().map(|c| c.address.clone()),
            "lease": consensus.has_lease(now),
            "voters": self.voters(node).iter().map(Member::to_json).collect::<Vec<_>>(),
            "voter-count": self.voters(node).len(),
            "accepted": self.accepted(node).to_json(),
        })
    }
}

/// What a node is in its cluster, as `GET /state`, the page and `/metrics` show it: one function
/// (`Shared::role_of`) decides it for this node and for each peer, from what the peer told of
/// itself (its id, its cluster and write mode) and the coordination of the newest version this
/// node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Coordinates the current term, as far as this node knows.
    Coordinator,
    /// A voter of the newest version this node holds.
    Voter,
    /// Receives the store and the beats but does not vote: it joined and is not promoted yet.
    Learner,
    /// Removed from the voters (by `DELETE /state/ADDRESS`, or replaced at its address): it is
    /// never promoted again.
    Removed,
    /// A node of another cluster (its cluster id is not this node's).
    Foreign,
    /// A node whose write mode (coordinated or local) is not this node's.
    OtherMode,
    /// Local writes (`--writes=local`): every node commits on its own.
    Local,
    /// Not heard from yet: its id is not known, nor is its address a voter's.
    Unknown,
}

impl NodeRole {
    /// The roles a node can have itself, in the order `/metrics` lists them.
    pub const OWN: [NodeRole; 5] =
        [NodeRole::Coordinator, NodeRole::Voter, NodeRole::Learner, NodeRole::Removed, NodeRole::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Coordinator => "coordinator",
            NodeRole::Voter => "voter",
            NodeRole::Learner => "learner",
            NodeRole::Removed => "removed",
            NodeRole::Foreign => "foreign",
            NodeRole::OtherMode => "other-mode",
            NodeRole::Local => "local",
            NodeRole::Unknown => "unknown",
        }
    }
}

impl Shared {
    /// The role of the node with `id` (as it told it; `None` until it has) at `address`, which
    /// told it is of another cluster or write mode when `mismatch` is.
    fn role_of(
        &self,
        co: Option<&Coordinated>,
        id: Option<&str>,
        address: &str,
        mismatch: Option<&Mismatch>,
    ) -> NodeRole {
        match mismatch {
            Some(Mismatch::Cluster { .. }) => return NodeRole::Foreign,
            Some(Mismatch::Writes { .. }) => return NodeRole::OtherMode,
            None => {}
        }
        let Some(co) = co else { return NodeRole::Local };
        let consensus = &co.consensus;
        let coordination = co.coordination(self);
        let voters = coordination.as_ref().map_or(&[][..], |c| &c.voters[..]);
        let coordinator = consensus.coordinator();
        let Some(id) = id else {
            // Not heard from: known only by its address.
            return if coordinator.is_some_and(|c| c.address == address) {
                NodeRole::Coordinator
            } else if voters.iter().any(|v| v.address == address) {
                NodeRole::Voter
            } else {
                NodeRole::Unknown
            };
        };
        let me = id == consensus.state().id;
        if (me && consensus.is_coordinator()) || (!me && coordinator.is_some_and(|c| c.id == id)) {
            NodeRole::Coordinator
        } else if voters.iter().any(|v| v.id == id) {
            NodeRole::Voter
        } else if coordination.as_ref().is_some_and(|c| c.removed.iter().any(|r| r == id)) {
            NodeRole::Removed
        } else {
            NodeRole::Learner
        }
    }

    /// This node's own role.
    pub(super) fn own_role(&self, co: Option<&Coordinated>) -> NodeRole {
        self.role_of(co, co.map(|co| co.consensus.state().id.as_str()), &self.config.address, None)
    }

    /// The entries of `GET /state`'s `cluster`: each peer as its snapshot entry has it, and its role.
    pub(super) fn peer_entries(&self, co: Option<&Coordinated>) -> Vec<serde_json::Value> {
        let entry = |peer: &super::Peer| {
            let mut entry = peer.to_json();
            entry["role"] = self.role_of(co, peer.id.as_deref(), &peer.address, peer.mismatch.as_ref()).as_str().into();
            entry
        };
        self.cluster.peers.iter().map(entry).collect()
    }
}

/// What a node says of coordinated writes, for tests and simulations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsensusStatus {
    pub id: String,
    pub term: u64,
    pub coordinator: bool,
    /// It coordinates and holds a lease now: it may grant the lock.
    pub lease: bool,
    /// The voters of its newest version.
    pub voters: usize,
    /// The newest version it holds durably (committed or not), and its term: what it tells a
    /// candidate, and what it gives a new coordinator that adopts it.
    pub accepted: Accepted,
    /// The coordinator's commit in flight: its version (once sealed), and the members it is
    /// durable on.
    pub in_flight: Option<(Option<Version>, Vec<String>)>,
}

impl Coordinated {
    /// Coordinated writes as this node sees them at `now`.
    pub(super) fn consensus_status(&self, node: &Shared, now: Now) -> ConsensusStatus {
        let consensus = &self.consensus;
        ConsensusStatus {
            id: consensus.state().id.clone(),
            term: consensus.state().term,
            coordinator: consensus.is_coordinator(),
            lease: consensus.has_lease(now),
            voters: self.voters(node).len(),
            accepted: self.accepted(node),
            in_flight: self.commit.as_ref().map(super::replicate::InCommit::progress),
        }
    }
}

/// What a new version is made from.
pub enum Content {
    /// A new store: sealed at the next sequence with `coordination` (in this term).
    New { root: crate::core::value::Value, coordination: Coordination },
    /// An existing version, stamped with this term.
    Stamp { base: Box<Sealed>, coordination: Coordination },
}
