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

use log::{error, warn};

use super::Shared;
use super::coordinated::Coordinated;
use crate::core::clock::{Deadline, Now};
use crate::core::node_state::NodeState;
use crate::core::roster::{Coordination, Member};
use crate::core::sealed::Sealed;
use crate::core::version::Version;
use crate::http::Response;
use crate::limits::{
    BEAT_MS, COORDINATOR_LEASE_MS, ELECTION_RETRY_MS, ELECTION_STAGGER_MS, ELECTION_TIMEOUT_MS, HANDOVER_GRACE_MS,
    LEASE_MS, PERSIST_RETRY_MS,
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

/// The consensus state of a node in coordinated mode. Its fields are private: every change is one
/// of the transitions below, named by what happens (as etcd's raft names `becomeFollower`,
/// `becomeCandidate` and `becomeLeader`), and the code outside them reads it through the getters.
#[derive(Debug)]
pub struct Consensus {
    /// Id, term and vote, as on disk (or about to be: see `saving`).
    state: NodeState,
    /// The address peers know this node by.
    address: String,
    role: Role,
    /// The coordinator of `state.term`, when known.
    coordinator: Option<Member>,
    /// This voter promised `coordinator` a lease until then: it votes for nobody else before.
    promise_until: Deadline,
    /// When a follower that is a voter stands for election, unless it hears a beat first.
    election_at: Deadline,
    /// The coordination of a node that starts a new cluster, until its first version carries one.
    founding: Option<Coordination>,
    /// A job writing `state` is in flight (its id), and the answers that wait for it.
    saving: Option<u64>,
    after_save: Vec<AfterSave>,
    /// The last write of the state failed: it is tried again then (nothing waiting is answered
    /// before it is on disk).
    save_retry: Option<Deadline>,
    /// The store being served is known to be committed. False only after a start from a version
    /// that was accepted and not yet known committed: the node serves nothing until it knows.
    confirmed: bool,
    /// The rank of this node among the voters, for the stagger of elections.
    rank: u64,
    /// Terms refused as out of bounds (`guard.rs`): the first is logged as a warning.
    terms_refused: u64,
    /// A node restarted from its commit point: the newer version it had accepted, which it may
    /// have served (the commit point is written after). It serves as usual (active, confirmed)
    /// only once its store is at least that new.
    accepted_at_start: Option<Accepted>,
}

/// What waits for the node's state to be on disk.
#[derive(Debug)]
pub enum AfterSave {
    /// Answer a vote request.
    Answer { ticket: super::Ticket, response: Response },
    /// Ask for votes (this node's own candidacy).
    Campaign,
}

/// Reading the state.
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
            accepted_at_start: None,
        }
    }

    /// Id, term, vote and commit point (`node.json`).
    pub fn state(&self) -> &NodeState {
        &self.state
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn coordinator(&self) -> Option<&Member> {
        self.coordinator.as_ref()
    }

    pub fn promise_until(&self) -> Deadline {
        self.promise_until
    }

    pub fn founding(&self) -> Option<&Coordination> {
        self.founding.as_ref()
    }

    /// A write of the node's state is in flight.
    pub fn is_saving(&self) -> bool {
        self.saving.is_some()
    }

    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    pub fn accepted_at_start(&self) -> Option<Accepted> {
        self.accepted_at_start
    }

    pub fn me(&self) -> Member {
        Member { id: self.state.id.clone(), address: self.address.clone() }
    }

    pub fn is_coordinator(&self) -> bool {
        matches!(self.role, Role::Coordinator(_))
    }

    pub fn leading(&self) -> Option<&Leading> {
        match &self.role {
            Role::Coordinator(leading) => Some(leading),
            _ => None,
        }
    }

    /// The coordinator holds a lease now (and has made its term's first version durable).
    pub fn has_lease(&self, now: Now) -> bool {
        matches!(&self.role, Role::Coordinator(l) if l.ready && l.lease_until.is_some_and(|d| !d.fired(now)))
    }

    /// `base` after `now`, staggered by this node's rank among the voters.
    fn staggered(&self, now: Now, base: u64) -> Deadline {
        Deadline::after(now, base + ELECTION_STAGGER_MS * self.rank)
    }
}

/// The transitions: every change of the state.
impl Consensus {
    /// At start: the newer version it had accepted before it stopped, if any; and a term of a
    /// version on disk (`newest`) is a term this node took part in.
    pub(super) fn started_with(&mut self, accepted_at_start: Option<Accepted>, newest: Accepted) {
        self.accepted_at_start = accepted_at_start;
        self.state.term = self.state.term.max(newest.term);
    }

    /// Founds `cluster` as its only voter: alone, it owes no lease to anyone and can stand at once.
    pub(super) fn found(&mut self, cluster: String, now: Now) {
        self.founding = Some(Coordination { cluster, term: 0, voters: vec![self.me()], removed: Vec::new() });
        self.promise_until = Deadline(now.mono_ms);
        self.election_at = Deadline(now.mono_ms);
    }

    /// Its rank among the voters' `addresses` (sorted), by which elections are staggered.
    pub(super) fn rank_among(&mut self, addresses: &[String]) {
        self.rank = addresses.iter().position(|a| *a == self.address).unwrap_or(addresses.len()) as u64;
    }

    /// A node that does not stand now (a learner, or one whose term is at the bound) looks again
    /// after an election timeout.
    pub(super) fn wait_for_election(&mut self, now: Now) {
        self.election_at = Deadline::after(now, ELECTION_TIMEOUT_MS);
    }

    /// No beat for an election timeout: it no longer knows a coordinator. Returns the one it knew.
    pub(super) fn forget_coordinator(&mut self) -> Option<Member> {
        self.coordinator.take()
    }

    /// Asks the voters whether they would vote for it (a pre-vote), counting its own yes; asks
    /// again after a retry, staggered by its rank and by `jitter`.
    pub(super) fn begin_probe(&mut self, now: Now, jitter: u64) {
        self.role = Role::Probing { granted: vec![self.state.id.clone()] };
        self.election_at = self.staggered(now, ELECTION_RETRY_MS + jitter);
    }

    /// `voter` would vote for it: true when that is news to a probing node.
    pub(super) fn probe_granted(&mut self, voter: &str) -> bool {
        let Role::Probing { granted } = &mut self.role else { return false };
        if granted.iter().any(|g| g == voter) {
            return false;
        }
        granted.push(voter.to_string());
        true
    }

    /// Stands in `term` (etcd's `becomeCandidate`): votes for itself, knows no coordinator, holds
    /// `newest` so far, asks for votes once its vote is on disk, and stands again after a retry.
    pub(super) fn stand(&mut self, term: u64, newest: (Accepted, String), now: Now, jitter: u64) {
        self.state.term = term;
        self.state.vote = Some(self.state.id.clone());
        self.coordinator = None;
        self.role = Role::Candidate { granted: vec![self.state.id.clone()], newest };
        self.election_at = self.staggered(now, ELECTION_RETRY_MS + jitter);
        self.after_save.push(AfterSave::Campaign);
    }

    /// `voter` granted its vote, and holds `theirs` (at `address`); kept while it is a candidate.
    pub(super) fn vote_granted(&mut self, voter: &str, theirs: Option<Accepted>, address: &str) {
        let Role::Candidate { granted, newest } = &mut self.role else { return };
        if !granted.iter().any(|g| g == voter) {
            granted.push(voter.to_string());
        }
        if let Some(theirs) = theirs
            && theirs.key() > newest.0.key()
        {
            *newest = (theirs, address.to_string());
        }
    }

    /// Won its term (etcd's `becomeLeader`): it coordinates, and beats at once.
    pub(super) fn win(&mut self, now: Now) {
        self.lead(false, Deadline(now.mono_ms));
    }

    /// Coordinates `term` by its own vote alone (the only voter, or `--force-new-cluster`);
    /// `ready`: writes are open at once.
    pub(super) fn coordinate_alone(&mut self, term: u64, ready: bool, now: Now) {
        self.state.term = term;
        self.state.vote = Some(self.state.id.clone());
        self.promise_until = Deadline(now.mono_ms);
        self.lead(ready, Deadline::after(now, BEAT_MS));
    }

    fn lead(&mut self, ready: bool, next_beat: Deadline) {
        self.coordinator = Some(self.me());
        self.role = Role::Coordinator(Leading { ready, next_beat, ..Leading::default() });
    }

    /// Votes for `candidate` in its term: the answer waits until the vote is on disk.
    pub(super) fn vote_for(&mut self, candidate: &str, now: Now, ticket: super::Ticket, answer: Response) {
        self.state.vote = Some(candidate.to_string());
        self.election_at = self.staggered(now, ELECTION_TIMEOUT_MS);
        self.after_save.push(AfterSave::Answer { ticket, response: answer });
    }

    /// A newer term began elsewhere (etcd's `becomeFollower`): no vote in it, no coordinator known
    /// yet. A deposed coordinator (one that comes back from the minority side, say) waits for the
    /// new one's beats as a follower does, rather than stand at once in a later term and depose it
    /// in turn; otherwise the election timer is left as it is: a candidate that cannot win (its
    /// version is older) must not keep the others from standing by asking again and again.
    pub(super) fn take_term(&mut self, term: u64, now: Now) {
        if self.is_coordinator() {
            warn!("term {term} began elsewhere: this node stops coordinating term {}", self.state.term);
            self.election_at = self.staggered(now, ELECTION_TIMEOUT_MS);
        }
        self.state.term = term;
        self.state.vote = None;
        self.coordinator = None;
        self.role = Role::Follower;
    }

    /// Stops coordinating (or standing) in its term, and stands again at `election_at`.
    pub(super) fn step_down(&mut self, election_at: Deadline) {
        self.role = Role::Follower;
        self.coordinator = None;
        self.election_at = election_at;
    }

    /// Hears a beat of `coordinator` in its term: follows it, promises it a lease, and waits for
    /// its beats before it stands.
    pub(super) fn follow(&mut self, coordinator: Member, now: Now) {
        if matches!(self.role, Role::Candidate { .. } | Role::Probing { .. }) {
            self.role = Role::Follower;
        }
        self.coordinator = Some(coordinator);
        self.promise_until = Deadline::after(now, LEASE_MS);
        self.election_at = self.staggered(now, ELECTION_TIMEOUT_MS);
    }

    /// The coordinator left the voters: it is owed no promise, and the voters stand at once (after
    /// `HANDOVER_GRACE_MS`, in the order of their ranks). Returns the coordinator it followed.
    pub(super) fn released(&mut self, now: Now) -> Option<Member> {
        let left = self.coordinator.take();
        self.promise_until = Deadline(now.mono_ms);
        self.election_at = self.staggered(now, HANDOVER_GRACE_MS);
        left
    }

    /// The coordinator's next beat goes at `at`.
    pub(super) fn beat_at(&mut self, at: Deadline) {
        if let Role::Coordinator(leading) = &mut self.role {
            leading.next_beat = at;
        }
    }

    /// A member acknowledged the beat sent at `sent`; false unless this node coordinates.
    pub(super) fn acked(&mut self, id: &str, sent: u64) -> bool {
        let Role::Coordinator(leading) = &mut self.role else { return false };
        match leading.acks.iter_mut().find(|(member, _)| member == id) {
            Some((_, at)) => *at = (*at).max(sent),
            None => leading.acks.push((id.to_string(), sent)),
        }
        true
    }

    /// The lease lapsed and requests wait for beats to renew it, until `until` (`renewal.rs`).
    pub(super) fn renewing(&mut self, until: Deadline) {
        if let Role::Coordinator(leading) = &mut self.role {
            leading.renewal = Some(until);
        }
    }

    /// The version adopted at election is durable on a majority in this term: commits may start.
    pub(super) fn adopted(&mut self) {
        if let Role::Coordinator(leading) = &mut self.role {
            leading.ready = true;
        }
    }

    /// The store being served is known to be committed.
    pub(super) fn confirm(&mut self) {
        self.confirmed = true;
    }

    /// The version accepted before the restart was never committed: a coordinator of a later
    /// term committed an older one, which this node holds.
    pub(super) fn accepted_at_start_lost(&mut self) {
        self.accepted_at_start = None;
    }

    /// Notes `point` as the commit point (`node.json`) when it is newer than the one noted.
    pub(super) fn note_committed(&mut self, point: Accepted) {
        if self.state.committed.is_none_or(|known| known.key() < point.key()) {
            self.state.committed = Some(point);
        }
    }

    /// Takes `cluster` as the cluster this node belongs to (written with the state).
    pub(super) fn join_cluster(&mut self, cluster: &str) {
        self.state.cluster = Some(cluster.to_string());
    }

    /// Recomputes the lease from the send times of the beats the voters of `coordination`
    /// acknowledged (and its own, when it is one); true when the lease just ran out.
    pub(super) fn renew_lease(&mut self, coordination: &Coordination, now: Now) -> bool {
        let me = &self.state.id;
        let Role::Coordinator(leading) = &mut self.role else { return false };
        let mut sent: Vec<u64> =
            leading.acks.iter().filter(|(id, _)| coordination.is_voter(id) && id != me).map(|(_, at)| *at).collect();
        if coordination.is_voter(me) {
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
        had && leading.lease_until.is_none()
    }

    /// A write of the state (job `id`) starts: the state it writes.
    pub(super) fn save_started(&mut self, id: u64) -> NodeState {
        self.saving = Some(id);
        self.save_retry = None;
        self.state.clone()
    }

    /// The write `id` failed: it is tried again after `PERSIST_RETRY_MS`. False when `id` is not
    /// the write in flight.
    pub(super) fn save_failed(&mut self, id: u64, now: Now) -> bool {
        if self.saving != Some(id) {
            return false;
        }
        self.save_retry = Some(Deadline::after(now, PERSIST_RETRY_MS));
        true
    }

    /// The write `id` is on disk: what waited for it (`None` when `id` is not the write in flight).
    pub(super) fn saved(&mut self, id: u64) -> Option<Vec<AfterSave>> {
        if self.saving != Some(id) {
            return None;
        }
        self.saving = None;
        Some(std::mem::take(&mut self.after_save))
    }

    /// Counts a term refused as out of bounds; returns how many were refused before.
    pub(super) fn refuse_term(&mut self) -> u64 {
        self.terms_refused += 1;
        self.terms_refused - 1
    }
}

impl Coordinated {
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
                if self.may_stand(node) {
                    self.probe(node, now);
                } else {
                    // A learner never stands; it looks again later (it may have become a voter).
                    self.consensus.wait_for_election(now);
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
        let id = node.ids.job(crate::core::jobs::Owner::NodeState);
        let state = self.consensus.save_started(id.serial);
        node.effects.push(super::Effect::Job(crate::core::jobs::Job::SaveState { id, state }));
    }

    /// The node's state could not be written: nothing that waits for it happens (no vote is
    /// granted, no candidacy goes on) until a retry succeeds.
    pub(super) fn state_not_saved(&mut self, now: Now, id: u64, why: &str) {
        if self.consensus.save_failed(id, now) {
            error!("this node's term and vote cannot be written ({why}): it neither votes nor stands until they can");
        }
    }

    /// The node's state is on disk: answer the votes that waited, ask for the votes this node needs.
    pub(super) fn state_saved(&mut self, node: &mut Shared, now: Now, id: u64) {
        let Some(waited) = self.consensus.saved(id) else { return };
        for waiting in waited {
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
            consensus.take_term(term, now);
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
        consensus.step_down(consensus.staggered(now, ELECTION_TIMEOUT_MS));
        self.drop_lock_for(node, why);
        self.step_down_commit(node);
    }
}
