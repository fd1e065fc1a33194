//! Coordinated mode's start, its peer endpoints, and what `GET /state` shows of it.

use log::{info, warn};

use super::Node;
use super::consensus::{Accepted, Consensus, Leading, Role};
use super::peering::Mismatch;
use super::replicate::{Content, Purpose};
use crate::core::clock::{Deadline, Now};
use crate::core::roster::{Coordination, Member};
use crate::core::version::Version;
use crate::http::{Method, Response};
use crate::limits::BEAT_MS;

impl Node {
    /// Sets up coordinated writes at start (nothing in local mode).
    pub(super) fn start_consensus(&mut self, now: Now, committed: bool) {
        let Some(coordinated) = self.config.coordinated.clone() else { return };
        let accepted = self.accepted();
        // `--force-new-cluster` takes the store as committed, whatever it was when written.
        let force = coordinated.force_new_cluster && self.store.sealed().copy.coordination.is_some();
        let committed = committed || force;
        let mut consensus = Consensus::new(coordinated.state, self.config.address.clone(), committed, now);
        consensus.accepted_at_start = self.pending.as_ref().map(|p| Accepted::of(&p.sealed));
        // A term of a version on disk is a term this node took part in.
        consensus.state.term = consensus.state.term.max(accepted.term);
        if self.store.sealed().copy.coordination.is_none()
            && let Some(cluster) = coordinated.founding
        {
            info!("founding a new cluster ({cluster}) with this node as its only voter");
            consensus.founding =
                Some(Coordination { cluster, term: 0, voters: vec![consensus.me()], removed: Vec::new() });
            // Alone, it owes no lease to anyone and can stand at once.
            consensus.promise_until = Deadline(now.mono_ms);
            consensus.election_at = Deadline(now.mono_ms);
        }
        if !committed {
            info!(
                "sequence {} of term {} was not known to be committed when it was written: serving nothing until the \
                 cluster says which version is",
                accepted.version.sequence, accepted.term
            );
        }
        self.consensus = Some(consensus);
        self.update_rank();
        if force {
            self.force_new_cluster(now);
        } else {
            self.lead_alone(now, committed);
        }
    }

    /// `--force-new-cluster`: a majority of the voters is lost for good, and this node goes on
    /// with what it holds. Its store becomes the committed version of a new term, stamped with
    /// this node as the only voter (the cluster keeps its id), and made durable here before any
    /// write, as a coordinator adopts a version at election. The other old voters are recorded
    /// as removed, so that one started again with its old data directory is never counted or
    /// promoted: it must be wiped and join anew (an empty directory and `--seeds`).
    fn force_new_cluster(&mut self, now: Now) {
        let old = self.store.sealed().copy.coordination.clone().expect("checked by the caller");
        let version = self.store.version();
        let consensus = self.consensus.as_mut().expect("coordinated");
        let me = consensus.me();
        consensus.state.term += 1;
        consensus.state.vote = Some(me.id.clone());
        consensus.coordinator = Some(me.clone());
        consensus.promise_until = Deadline(now.mono_ms);
        let leading = Leading { ready: false, next_beat: Deadline::after(now, BEAT_MS), ..Leading::default() };
        consensus.role = Role::Coordinator(leading);
        let term = consensus.state.term;
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
        self.save_state();
        self.check_lease(now);
        let base = Box::new(self.store.sealed().clone());
        self.replicate(now, Purpose::Adopt, Content::Stamp { base, coordination: next });
    }

    /// A node that is the only voter of its cluster, and serves a committed store, coordinates at
    /// once (the next term, its own vote, written in the background): there is no other version
    /// its term must win over, so writes are open from the first request.
    fn lead_alone(&mut self, now: Now, committed: bool) {
        let Some(coordination) = self.coordination() else { return };
        let consensus = self.consensus.as_mut().expect("coordinated");
        // A version accepted and not known committed is adopted by an election, as any other.
        if !committed
            || self.pending.is_some()
            || coordination.voters.len() != 1
            || !coordination.is_voter(&consensus.state.id)
        {
            return;
        }
        let Some(next) = super::guard::next_term(consensus.state.term) else {
            log::error!(
                "this node's term ({}) is at the highest a term may be: it cannot coordinate; its node.json holds a \
                 term forged before terms were bounded",
                consensus.state.term
            );
            return;
        };
        consensus.state.term = next;
        consensus.state.vote = Some(consensus.state.id.clone());
        consensus.coordinator = Some(consensus.me());
        consensus.promise_until = Deadline(now.mono_ms);
        let leading = Leading { ready: true, next_beat: Deadline::after(now, BEAT_MS), ..Leading::default() };
        consensus.role = Role::Coordinator(leading);
        info!("coordinating term {} as the only voter", consensus.state.term);
        // An election held with itself: started and won.
        self.metrics.elections_started += 1;
        self.metrics.elections_won += 1;
        self.save_state();
        self.check_lease(now);
        // A store from before coordinated writes (a snapshot of local writes, or one written by
        // hand) is stamped with this term first, as a new coordinator stamps what it adopts: the
        // learners that join take only versions of this cluster.
        if self.store.sealed().copy.coordination.is_none() && self.store.version().sequence > 0 {
            let term = self.consensus.as_ref().expect("coordinated").state.term;
            info!(
                "sequence {} is from before coordinated writes: stamping it with term {term}",
                self.store.version().sequence
            );
            self.stamp(now, self.store.sealed().clone());
        }
    }

    /// This node's place among the voters' addresses: elections are staggered by it.
    pub(super) fn update_rank(&mut self) {
        let mut addresses: Vec<String> = self.voters().into_iter().map(|m| m.address).collect();
        addresses.sort();
        let Some(consensus) = &mut self.consensus else { return };
        consensus.rank = addresses.iter().position(|a| *a == consensus.address).unwrap_or(addresses.len()) as u64;
    }

    /// The peer endpoints of coordinated writes: `POST /cluster/vote`, `POST /cluster/beat`,
    /// `PUT /cluster/accept`, `GET /cluster/accepted`.
    pub(super) fn cluster_request(
        &mut self,
        now: Now,
        ticket: super::Ticket,
        request: &super::Request,
        below: &str,
    ) -> super::Reply {
        let reply = match (request.method, below) {
            (Method::Post, "/vote") => return self.vote_request(now, ticket, request.body),
            (Method::Post, "/beat") => self.beat_request(now, request.body),
            (Method::Put, "/accept") => return self.accept_request(ticket, request.body),
            (Method::Get, "/accepted") => self.accepted_copy(),
            (_, "/vote" | "/beat" | "/accept" | "/accepted") => super::method_not_allowed("the method the path names"),
            _ => Response::error(404, &format!("no such resource: /cluster{below}")),
        };
        super::Reply::Now(reply)
    }

    /// `"coordinator"`, `"term"` and the voters, for `GET /` and `GET /state`.
    pub(super) fn consensus_json(&self, now: Now) -> serde_json::Value {
        let Some(consensus) = &self.consensus else { return serde_json::json!({"writes": "local"}) };
        let role = match &consensus.role {
            Role::Coordinator(_) => "coordinator",
            Role::Candidate { .. } | Role::Probing { .. } => "candidate",
            Role::Follower if self.is_removed() => "removed",
            Role::Follower if self.voters().iter().any(|m| m.id == consensus.state.id) => "follower",
            Role::Follower => "learner",
        };
        serde_json::json!({
            "writes": "coordinated",
            "id": consensus.state.id,
            "term": consensus.state.term,
            "role": role,
            "coordinator": consensus.coordinator.as_ref().map(|c| c.address.clone()),
            "lease": consensus.has_lease(now),
            "voters": self.voters().iter().map(Member::to_json).collect::<Vec<_>>(),
            "voter-count": self.voters().len(),
            "accepted": self.accepted().to_json(),
        })
    }
}

/// What a node is in its cluster, as `GET /state`, the page and `/metrics` show it: one function
/// (`Node::role_of`) decides it for this node and for each peer, from what the peer told of
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

impl Node {
    /// The role of the node with `id` (as it told it; `None` until it has) at `address`, which
    /// told it is of another cluster or write mode when `mismatch` is.
    pub(super) fn role_of(&self, id: Option<&str>, address: &str, mismatch: Option<&Mismatch>) -> NodeRole {
        match mismatch {
            Some(Mismatch::Cluster { .. }) => return NodeRole::Foreign,
            Some(Mismatch::Writes { .. }) => return NodeRole::OtherMode,
            None => {}
        }
        let Some(consensus) = &self.consensus else { return NodeRole::Local };
        let coordination = self.coordination();
        let voters = coordination.as_ref().map_or(&[][..], |c| &c.voters[..]);
        let coordinator = consensus.coordinator.as_ref();
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
        let me = id == consensus.state.id;
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
    pub(super) fn own_role(&self) -> NodeRole {
        match &self.consensus {
            Some(consensus) => self.role_of(Some(&consensus.state.id), &self.config.address, None),
            None => NodeRole::Local,
        }
    }

    /// The entries of `GET /state`'s `cluster`: each peer as its snapshot entry has it, and its role.
    pub(super) fn peer_entries(&self) -> Vec<serde_json::Value> {
        let entry = |peer: &super::Peer| {
            let mut entry = peer.to_json();
            entry["role"] = self.role_of(peer.id.as_deref(), &peer.address, peer.mismatch.as_ref()).as_str().into();
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

impl Node {
    /// Coordinated writes as this node sees them at `now` (`None` in local mode).
    pub fn consensus_status(&self, now: Now) -> Option<ConsensusStatus> {
        let consensus = self.consensus.as_ref()?;
        Some(ConsensusStatus {
            id: consensus.state.id.clone(),
            term: consensus.state.term,
            coordinator: consensus.is_coordinator(),
            lease: consensus.has_lease(now),
            voters: self.voters().len(),
            accepted: self.accepted(),
            in_flight: self.commit.as_ref().map(super::replicate::InCommit::progress),
        })
    }
}
