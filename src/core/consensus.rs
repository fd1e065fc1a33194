//! Coordinated writes: who coordinates, by terms and votes, and for how long, by leases.
//!
//! Raft's rules, simplified because the lock allows at most one version in flight at a time, so
//! there is no log: a node holds its committed store (served) and at most one newer version it has
//! accepted (durable, not served). Versions order by (accepted term, sequence), never by checksum.
//!
//! - A node coordinates term T only with the votes of a majority of the voters of its newest
//!   version. A voter writes (term, vote) to disk before it answers, votes once per term, only for
//!   a candidate whose (accepted term, sequence) is at least its own, and never while it has
//!   promised another coordinator a lease (or in the first `LEASE_MS` after it started, since it
//!   may have promised one before).
//! - A voter whose promise ran out first asks the others whether they would vote for it (a
//!   pre-vote, `election.rs`), and starts a term only once a majority would: a node cut off from a
//!   majority keeps its term, so it cannot depose a working coordinator when it comes back. A node
//!   that coordinates with a lease, or has promised one, refuses a candidate without taking up its
//!   term.
//! - A new coordinator adopts the newest accepted version among its voters' replies, stamps it with
//!   its own term and makes it durable on a majority (`replicate.rs`) before it grants any lock.
//! - The coordinator beats every `BEAT_MS`; each beat a voter acknowledges renews its promise for
//!   `LEASE_MS` from receipt. The coordinator's lease runs `COORDINATOR_LEASE_MS` from the send
//!   time of the newest beat a majority acknowledged, on its own clock; the lease gates lock grants
//!   and `GET /lock`. Commits are fenced by the term, so they stay safe when the clock or pause
//!   bounds are broken; only the lock's exclusivity depends on them.

use log::{error, info, warn};

use super::Shared;
use super::coordinated::Coordinated;
use crate::core::clock::{Deadline, Now};
use crate::core::messages::{Beat, BeatAnswer};
use crate::core::node_state::NodeState;
use crate::core::roster::{Coordination, Member};
use crate::core::sealed::Sealed;
use crate::core::version::Version;
use crate::http::{Bytes, Method, Response};
use crate::limits::{
    BEAT_MS, COORDINATOR_LEASE_MS, ELECTION_STAGGER_MS, ELECTION_TIMEOUT_MS, HANDOVER_GRACE_MS, LEASE_MS,
    PERSIST_RETRY_MS,
};

/// A version and the term it was accepted in; versions compare by (term, sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub term: u64,
    pub version: Version,
}

impl Accepted {
    pub fn of(sealed: &Sealed) -> Accepted {
        Accepted { term: sealed.copy.term(), version: sealed.copy.version }
    }

    /// The order elections compare by.
    pub fn key(&self) -> (u64, u64) {
        (self.term, self.version.sequence)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"term": self.term, "sequence": self.version.sequence, "checksum": self.version.checksum.to_string()})
    }

    /// Decoded in `messages.rs`, with every other peer message.
    pub fn from_json(value: &serde_json::Value) -> Option<Accepted> {
        crate::core::messages::accepted(value)
    }
}

/// What this node is in the current term.
#[derive(Debug)]
pub enum Role {
    /// Follows the coordinator (if it knows one); stands for election at `election_at` if it is a
    /// voter.
    Follower,
    /// Asked the voters whether they would vote for it in the next term, without starting it
    /// (Raft's pre-vote): the voters that said yes. It stands once a majority did.
    Probing { granted: Vec<String> },
    /// Asked for votes in the current term: the voters that granted theirs, and the newest
    /// accepted version among them (with who holds it).
    Candidate { granted: Vec<String>, newest: (Accepted, String) },
    /// Coordinates the current term.
    Coordinator(Leading),
}

/// The coordinator's state.
#[derive(Debug, Default)]
pub struct Leading {
    /// Per member id: the send time (own clock) of the newest beat it acknowledged.
    pub acks: Vec<(String, u64)>,
    /// The lease, while it holds (as of the last check): locks may be granted before this.
    pub lease_until: Option<Deadline>,
    /// The version adopted at election is durable on a majority in this term: commits may start.
    pub ready: bool,
    pub next_beat: Deadline,
    /// The lease lapsed and a request waits while beats renew it, until then (`renewal.rs`);
    /// cleared whenever the lease holds.
    pub renewal: Option<Deadline>,
}

/// The consensus state of a node in coordinated mode.
#[derive(Debug)]
pub struct Consensus {
    /// Id, term and vote, as on disk (or about to be: see `saving`).
    pub state: NodeState,
    /// The address peers know this node by.
    pub address: String,
    pub role: Role,
    /// The coordinator of `state.term`, when known.
    pub coordinator: Option<Member>,
    /// This voter promised `coordinator` a lease until then: it votes for nobody else before.
    pub promise_until: Deadline,
    /// When a follower that is a voter stands for election, unless it hears a beat first.
    pub election_at: Deadline,
    /// The coordination of a node that starts a new cluster, until its first version carries one.
    pub founding: Option<Coordination>,
    /// A job writing `state` is in flight (its id), and the answers that wait for it.
    pub saving: Option<u64>,
    pub after_save: Vec<AfterSave>,
    /// The last write of the state failed: it is tried again then (nothing waiting is answered
    /// before it is on disk).
    pub save_retry: Option<Deadline>,
    /// The store being served is known to be committed. False only after a start from a version
    /// that was accepted and not yet known committed: the node serves nothing until it knows.
    pub confirmed: bool,
    /// The rank of this node among the voters, for the stagger of elections.
    pub rank: u64,
    /// Terms refused as out of bounds (`guard.rs`): the first is logged as a warning.
    pub terms_refused: u64,
    /// The writes of the commit point (`state.committed`) to disk.
    pub point: super::commit_point::PointWrites,
    /// A node restarted from its commit point: the newer version it had accepted, which it may
    /// have served (the commit point is written after). It serves as usual (active, confirmed)
    /// only once its store is at least that new.
    pub accepted_at_start: Option<Accepted>,
}

/// What waits for the node's state to be on disk.
#[derive(Debug)]
pub enum AfterSave {
    /// Answer a vote request.
    Answer { ticket: super::Ticket, response: Response },
    /// Ask for votes (this node's own candidacy).
    Campaign,
}

impl Consensus {
    pub fn new(state: NodeState, address: String, confirmed: bool, now: Now) -> Consensus {
        Consensus {
            state,
            address,
            role: Role::Follower,
            coordinator: None,
            // A restarted node may have promised a lease before it stopped: it promises nothing,
            // and votes for nobody, for a whole lease.
            promise_until: Deadline::after(now, LEASE_MS),
            election_at: Deadline::after(now, ELECTION_TIMEOUT_MS),
            founding: None,
            saving: None,
            after_save: Vec::new(),
            save_retry: None,
            confirmed,
            rank: 0,
            terms_refused: 0,
            point: Default::default(),
            accepted_at_start: None,
        }
    }

    pub fn me(&self) -> Member {
        Member { id: self.state.id.clone(), address: self.address.clone() }
    }

    pub fn is_coordinator(&self) -> bool {
        matches!(self.role, Role::Coordinator(_))
    }

    pub fn leading(&mut self) -> Option<&mut Leading> {
        match &mut self.role {
            Role::Coordinator(leading) => Some(leading),
            _ => None,
        }
    }

    /// The coordinator holds a lease now (and has made its term's first version durable).
    pub fn has_lease(&self, now: Now) -> bool {
        matches!(&self.role, Role::Coordinator(l) if l.ready && l.lease_until.is_some_and(|d| !d.fired(now)))
    }
}

impl Coordinated {
    /// The coordination of the newest version this node holds (or of the cluster it founds).
    pub(super) fn coordination(&self, node: &Shared) -> Option<Coordination> {
        let consensus = &self.consensus;
        let newest = self.pending.as_ref().map(|p| &p.sealed).unwrap_or(node.store.sealed());
        newest.copy.coordination.clone().or_else(|| consensus.founding.clone())
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

    /// Timers of coordinated mode: elections, beats, the lease.
    pub(super) fn tick_consensus(&mut self, node: &mut Shared, now: Now) {
        let consensus = &mut self.consensus;
        if consensus.saving.is_some() {
            if consensus.save_retry.is_some_and(|at| at.fired(now)) {
                self.save_state(node);
            }
            return;
        }
        match &consensus.role {
            Role::Coordinator(leading) => {
                if leading.next_beat.fired(now) {
                    self.beat(node, now);
                }
                self.check_lease(node, now);
            }
            Role::Follower | Role::Probing { .. } | Role::Candidate { .. } => {
                if !consensus.election_at.fired(now) {
                    return;
                }
                let me = consensus.state.id.clone();
                if self.voters(node).iter().any(|m| m.id == me) {
                    self.probe(node, now);
                } else {
                    // A learner never stands; it looks again later (it may have become a voter).
                    let consensus = &mut self.consensus;
                    consensus.election_at = Deadline::after(now, ELECTION_TIMEOUT_MS);
                }
            }
        }
    }

    /// When the consensus timers next have something to do.
    pub(super) fn next_consensus_deadline(&self) -> Option<Deadline> {
        let consensus = &self.consensus;
        if consensus.saving.is_some() {
            return consensus.save_retry;
        }
        match &consensus.role {
            Role::Coordinator(leading) => {
                Some(leading.lease_until.map_or(leading.next_beat, |d| d.min(leading.next_beat)))
            }
            _ => Some(consensus.election_at),
        }
    }

    /// Writes the node's state (id, term, vote) to disk; what waits for it runs in `state_saved`.
    pub(super) fn save_state(&mut self, node: &mut Shared) {
        let consensus = &mut self.consensus;
        let id = node.ids.job(crate::core::jobs::Owner::NodeState);
        consensus.saving = Some(id.serial);
        consensus.save_retry = None;
        let state = consensus.state.clone();
        node.effects.push(super::Effect::Job(crate::core::jobs::Job::SaveState { id, state }));
    }

    /// The node's state could not be written: nothing that waits for it happens (no vote is
    /// granted, no candidacy goes on) until a retry succeeds.
    pub(super) fn state_not_saved(&mut self, now: Now, id: u64, why: &str) {
        let consensus = &mut self.consensus;
        if consensus.saving != Some(id) {
            return;
        }
        error!("this node's term and vote cannot be written ({why}): it neither votes nor stands until they can");
        consensus.save_retry = Some(Deadline::after(now, PERSIST_RETRY_MS));
    }

    /// The node's state is on disk: answer the votes that waited, ask for the votes this node needs.
    pub(super) fn state_saved(&mut self, node: &mut Shared, now: Now, id: u64) {
        let consensus = &mut self.consensus;
        if consensus.saving != Some(id) {
            return;
        }
        consensus.saving = None;
        for waiting in std::mem::take(&mut consensus.after_save) {
            match waiting {
                AfterSave::Answer { ticket, response } => node.answer(ticket, response),
                AfterSave::Campaign => {
                    self.campaign(node);
                    self.count_votes(node, now);
                }
            }
        }
    }

    /// Every message carries a term: a newer one ends this node's term (a coordinator steps down,
    /// a candidate gives up). Returns true when `term` is older than this node's: the message is
    /// stale.
    /// A term out of bounds (`guard.rs`) is taken as stale: the message is ignored.
    pub(super) fn saw_term(&mut self, node: &mut Shared, now: Now, term: u64) -> bool {
        if self.term_refusal(node, term, "a peer's message").is_some() {
            return true;
        }
        let consensus = &mut self.consensus;
        if term < consensus.state.term {
            return true;
        }
        if term > consensus.state.term {
            if consensus.is_coordinator() {
                warn!("term {term} began elsewhere: this node stops coordinating term {}", consensus.state.term);
                // A deposed coordinator (one that comes back from the minority side, say) waits
                // for the new one's beats as a follower does, rather than stand at once in a
                // later term and depose it in turn.
                consensus.election_at =
                    Deadline::after(now, ELECTION_TIMEOUT_MS + ELECTION_STAGGER_MS * consensus.rank);
            }
            // Otherwise the election timer is left as it is: a candidate that cannot win (its
            // version is older) must not keep the others from standing by asking again and again.
            consensus.state.term = term;
            consensus.state.vote = None;
            consensus.coordinator = None;
            consensus.role = Role::Follower;
            self.abandon_forwards(node, &format!("a new term ({term}) began"));
            self.drop_lock_for(node, &format!("a new term ({term}) began"));
            self.step_down_commit(node);
        }
        false
    }

    /// A coordinator that cannot go on (its disk fails) stops coordinating: the voters elect
    /// another once its lease has run out. It does not stand again before that.
    pub(super) fn resign(&mut self, node: &mut Shared, now: Now, why: &str) {
        let consensus = &mut self.consensus;
        if !consensus.is_coordinator() {
            return;
        }
        warn!("this node stops coordinating term {}: {why}", consensus.state.term);
        consensus.role = Role::Follower;
        consensus.coordinator = None;
        consensus.election_at = Deadline::after(now, ELECTION_TIMEOUT_MS + ELECTION_STAGGER_MS * consensus.rank);
        self.drop_lock_for(node, why);
        self.step_down_commit(node);
    }

    /// Sends a beat to every member: the term, and the committed version to serve.
    pub(super) fn beat(&mut self, node: &mut Shared, now: Now) {
        let Some(coordination) = self.coordination(node) else { return };
        let consensus = &mut self.consensus;
        let me = consensus.state.id.clone();
        let Role::Coordinator(leading) = &mut consensus.role else { return };
        leading.next_beat = Deadline::after(now, BEAT_MS);
        // A coordinator that committed voters without itself says so in its last beat: the
        // voters owe it no promise and elect another coordinator at once.
        let leaving = node.store.sealed().copy.coordination.as_ref().is_some_and(|c| !c.is_voter(&me));
        let body = Beat {
            term: consensus.state.term,
            coordinator: consensus.me(),
            cluster: Some(coordination.cluster),
            // Only a store known to be committed: one elected on a store it loaded unconfirmed
            // says nothing until its adopted version is durable on a majority (else a member
            // holding the same unconfirmed version would serve it as committed).
            committed: consensus.confirmed.then(|| Accepted::of(node.store.sealed())),
            sent: Some(now.mono_ms.into()),
            leaving,
        }
        .encode();
        let members: Vec<String> = self.members(node).into_iter().filter(|(id, _)| *id != me).map(|(_, a)| a).collect();
        for address in members {
            let body = Bytes::Owned(body.clone());
            node.call(&address, super::cluster::CallKind::Beat, Method::Post, "/cluster/beat", body);
        }
        self.check_lease(node, now);
    }

    /// Recomputes the lease from the acknowledged beats; a coordinator whose lease ran out drops
    /// the lock.
    pub(super) fn check_lease(&mut self, node: &mut Shared, now: Now) {
        // The voters in effect are those of the committed version: a change of voters in flight
        // counts once it is committed.
        let committed = node.store.sealed().copy.coordination.clone();
        let founding = self.consensus.founding.clone();
        let Some(coordination) = committed.or(founding) else { return };
        let consensus = &mut self.consensus;
        let me = consensus.state.id.clone();
        let Role::Coordinator(leading) = &mut consensus.role else { return };
        let mut sent: Vec<u64> =
            leading.acks.iter().filter(|(id, _)| coordination.is_voter(id) && *id != me).map(|(_, at)| *at).collect();
        if coordination.is_voter(&me) {
            sent.push(now.mono_ms);
        }
        sent.sort_unstable_by(|a, b| b.cmp(a));
        let had = leading.lease_until.is_some();
        leading.lease_until = sent
            .get(coordination.majority() - 1)
            .map(|at| Deadline(at + COORDINATOR_LEASE_MS))
            .filter(|until| !until.fired(now));
        if leading.lease_until.is_some() {
            leading.renewal = None;
        }
        if had && leading.lease_until.is_none() {
            warn!("the coordinator's lease ran out: no majority acknowledged its beats");
            node.metrics.leases_lost += 1;
            self.drop_lock_for(node, "the coordinator lost its lease (no majority of voters answered)");
        }
    }

    /// A beat from the coordinator: `POST /cluster/beat`.
    pub(super) fn beat_request(&mut self, node: &mut Shared, now: Now, body: &[u8]) -> Response {
        let Some(Beat { term, coordinator, committed, leaving, sent, .. }) = Beat::decode(body) else {
            return Response::error(400, "a beat is {\"term\", \"coordinator\", \"committed\"}");
        };
        if let Some(why) = self.term_refusal(node, term, &format!("a beat from {}", coordinator.address)) {
            return Response::error(409, &format!("beat refused: {why}"));
        }
        let stale = self.saw_term(node, now, term);
        let consensus = &mut self.consensus;
        if !stale && consensus.state.id != coordinator.id {
            if consensus.coordinator.as_ref() != Some(&coordinator) {
                info!("{} coordinates term {term}", coordinator.address);
                self.abandon_forwards(node, &format!("{} coordinates term {term} now", coordinator.address));
            }
            let consensus = &mut self.consensus;
            if matches!(consensus.role, Role::Candidate { .. } | Role::Probing { .. }) {
                consensus.role = Role::Follower;
            }
            consensus.coordinator = Some(coordinator);
            consensus.promise_until = Deadline::after(now, LEASE_MS);
            consensus.election_at = Deadline::after(now, ELECTION_TIMEOUT_MS + ELECTION_STAGGER_MS * consensus.rank);
            if let Some(committed) = committed {
                self.learn_committed(node, now, committed);
            }
            if leaving {
                self.coordinator_left(now);
            }
        }
        let accepted = self.accepted(node);
        let consensus = &self.consensus;
        let answer = BeatAnswer {
            term: consensus.state.term,
            ok: !stale,
            id: Some(consensus.state.id.clone()),
            sent,
            accepted: Some(accepted),
            committed: consensus.confirmed.then(|| Accepted::of(node.store.sealed())),
        };
        Response::json(200, answer.encode())
    }

    /// A member's answer to a beat: it renews the lease, and says what the member holds.
    pub(super) fn beat_reply(&mut self, node: &mut Shared, now: Now, address: &str, body: &[u8]) {
        let Some(reply) = BeatAnswer::decode(body) else { return };
        let term = reply.term;
        if self.saw_term(node, now, term) || !reply.ok {
            return;
        }
        let (Some(id), Some(sent)) = (reply.id.as_deref(), reply.sent_ms()) else {
            return;
        };
        let consensus = &mut self.consensus;
        if term != consensus.state.term {
            return;
        }
        let Role::Coordinator(leading) = &mut consensus.role else { return };
        match leading.acks.iter_mut().find(|(member, _)| member == id) {
            Some((_, at)) => *at = (*at).max(sent),
            None => leading.acks.push((id.to_string(), sent)),
        }
        self.check_lease(node, now);
        self.run_lease_waiters(node, now);
        let (accepted, committed) = (reply.accepted, reply.committed);
        self.member_holds(node, now, id, address, accepted, committed);
    }

    /// The coordinator said in its last beat that it is no voter any more: this node owes it no
    /// promise, forwards nothing more to it, and stands (in the order of the voters' ranks) at
    /// once (after a grace for the answers it sent with the beat: the removal that made it leave
    /// among them, answered on another connection than the beat).
    fn coordinator_left(&mut self, now: Now) {
        let consensus = &mut self.consensus;
        if let Some(left) = consensus.coordinator.take() {
            info!("{} left the voters: electing another coordinator", left.address);
        }
        consensus.promise_until = Deadline(now.mono_ms);
        consensus.election_at = Deadline::after(now, HANDOVER_GRACE_MS + ELECTION_STAGGER_MS * consensus.rank);
    }

    /// The members a coordinator beats: the voters and the learners it knows, as (id, address).
    pub(super) fn members(&self, node: &Shared) -> Vec<(String, String)> {
        let mut members: Vec<(String, String)> = self.voters(node).into_iter().map(|m| (m.id, m.address)).collect();
        let removed = self.coordination(node).map(|c| c.removed).unwrap_or_default();
        for peer in &node.cluster.peers {
            if let Some(id) = &peer.id
                && !members.iter().any(|(m, _)| m == id)
                && !removed.contains(id)
            {
                members.push((id.clone(), peer.address.clone()));
            }
        }
        members
    }
}
