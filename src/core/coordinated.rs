//! Coordinated mode's start, its peer endpoints, and what `GET /state` shows of it.

use log::info;

use super::Node;
use super::consensus::{Accepted, Consensus, Leading, Role};
use crate::core::clock::{Deadline, Now};
use crate::core::members::{Coordination, Member};
use crate::core::version::Version;
use crate::http::{Method, Response};
use crate::limits::BEAT_MS;

impl Node {
    /// Sets up coordinated writes at start (nothing in local mode).
    pub(super) fn start_consensus(&mut self, now: Now, committed: bool) {
        let Some(coordinated) = self.config.coordinated.clone() else { return };
        let accepted = self.accepted();
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
        self.lead_alone(now, committed);
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
        consensus.state.term += 1;
        consensus.state.vote = Some(consensus.state.id.clone());
        consensus.coordinator = Some(consensus.me());
        consensus.promise_until = Deadline(now.mono_ms);
        let leading = Leading { ready: true, next_beat: Deadline::after(now, BEAT_MS), ..Leading::default() };
        consensus.role = Role::Coordinator(leading);
        info!("coordinating term {} as the only voter", consensus.state.term);
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
            in_flight: self.commit.as_ref().map(|c| (c.sealed.as_ref().map(|s| s.copy.version), c.durable.clone())),
        })
    }
}
