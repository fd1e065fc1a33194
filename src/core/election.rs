//! Elections: a voter whose promise to the coordinator ran out stands in a new term, asks the
//! other voters for their votes, and coordinates once a majority granted them; and the voter's
//! side, which grants a vote only by the rules in `consensus.rs` (written to disk first).

use log::{error, info, warn};

use super::Shared;
use super::cluster::CallKind;
use super::consensus::Accepted;
use super::consensus::Role;
use super::coordinated::{Content, Coordinated};
use super::replicate::Purpose;
use crate::core::clock::Now;
use crate::core::messages::{VoteAnswer, VoteRequest};
use crate::core::sealed::{DecodeError, Sealed};
use crate::http::{Bytes, Method, Response};
use crate::limits::{ELECTION_STAGGER_MS, TERM_MAX};

impl Coordinated {
    /// Whether this node stands when its election timer fires: a voter of the newest roster it
    /// holds; or a voter of its committed roster that a newer roster, not known to be committed,
    /// removes (a coordinator that removed itself and restarted before it learned the outcome).
    /// That one stands as Raft has it (a server not in its own latest configuration still starts
    /// elections, since it may be needed until that configuration is committed): it asks the
    /// voters of the newest roster and counts only theirs, not its own (`count_probes`,
    /// `count_votes`); once elected it commits the roster it holds (`adopt`) and steps down
    /// (`leave_if_no_voter`). Else the voters left may wait on it for ever: they hold the older
    /// roster, and it refuses them its vote, holding the newer version.
    pub(super) fn may_stand(&self, node: &Shared) -> bool {
        let me = self.consensus.state().id.as_str();
        let committed = node.store.sealed().copy.coordination.as_ref();
        self.coordination(node).is_some_and(|c| c.is_voter(me)) || committed.is_some_and(|c| c.is_voter(me))
    }

    /// Asks the other voters whether they would vote for this node in the next term, without
    /// starting that term (Raft's pre-vote): a voter cut off from a majority does not raise its
    /// term while it is away, so when it comes back it cannot depose a working coordinator. It
    /// stands once a majority (itself included) says yes; it asks again at `election_at`.
    pub(super) fn probe(&mut self, node: &mut Shared, now: Now) {
        let accepted = self.accepted(node);
        let stagger = node.rng.below(ELECTION_STAGGER_MS);
        let consensus = &mut self.consensus;
        let Some(next) = super::guard::next_term(consensus.state().term) else {
            error!(
                "this node's term ({}) is at the highest a term may be ({TERM_MAX}): it never stands; its node.json \
                 holds a term forged before terms were bounded",
                consensus.state().term
            );
            consensus.wait_for_election(now);
            return;
        };
        // No beat for an election timeout: it no longer knows a coordinator to forward to.
        if consensus.forget_coordinator().is_some() {
            self.abandon_forwards(node, "no beat from it for an election timeout");
        }
        let consensus = &mut self.consensus;
        consensus.begin_probe(now, stagger);
        let body = VoteRequest { term: next, candidate: consensus.me(), accepted, pre: true }.encode();
        let me = consensus.state().id.clone();
        for voter in self.voters(node).into_iter().filter(|m| m.id != me) {
            let body = Bytes::Owned(body.clone());
            node.call(&voter.address, super::cluster::CallKind::Vote, Method::Post, "/cluster/vote", body);
        }
        self.count_probes(node, now);
    }

    /// Stands once a majority of the voters would vote for it.
    fn count_probes(&mut self, node: &mut Shared, now: Now) {
        let Some(coordination) = self.coordination(node) else { return };
        let consensus = &self.consensus;
        let Role::Probing { granted } = consensus.role() else { return };
        if granted.iter().filter(|g| coordination.is_voter(g)).count() >= coordination.majority() {
            self.stand(node, now);
        }
    }

    /// Stands for election in a new term: votes for itself, writes that down, then asks.
    pub(super) fn stand(&mut self, node: &mut Shared, now: Now) {
        let coordination = self.coordination(node);
        let accepted = self.accepted(node);
        let consensus = &mut self.consensus;
        // `probe` went on only below the bound, and every term taken since is below it too.
        let Some(next) = super::guard::next_term(consensus.state().term) else { return };
        node.metrics.elections_started += 1;
        let newest = (accepted, consensus.address().to_string());
        self.abandon_forwards(node, "this node stands for election");
        let jitter = node.rng.below(ELECTION_STAGGER_MS);
        let consensus = &mut self.consensus;
        consensus.stand(next, newest, now, jitter);
        info!(
            "standing for election in term {} ({} voters)",
            consensus.state().term,
            coordination.as_ref().map_or(0, |c| c.voters.len())
        );
        self.save_state(node);
        // A cluster of one: this node's own vote is the majority.
        self.count_votes(node, now);
    }

    /// Asks every other voter for its vote (once this node's own vote is on disk).
    pub(super) fn campaign(&mut self, node: &mut Shared) {
        let accepted = self.accepted(node);
        let consensus = &self.consensus;
        if !matches!(consensus.role(), Role::Candidate { .. }) {
            return;
        }
        let body =
            VoteRequest { term: consensus.state().term, candidate: consensus.me(), accepted, pre: false }.encode();
        let me = consensus.state().id.clone();
        for voter in self.voters(node).into_iter().filter(|m| m.id != me) {
            let body = Bytes::Owned(body.clone());
            node.call(&voter.address, super::cluster::CallKind::Vote, Method::Post, "/cluster/vote", body);
        }
    }

    /// A voter's answer to this node's request for its vote.
    pub(super) fn vote_reply(&mut self, node: &mut Shared, now: Now, body: &[u8]) {
        let Some(reply) = VoteAnswer::decode(body) else { return };
        let term = reply.term;
        if reply.pre {
            // A voter that would vote for this node is in an earlier term (or this one): only a
            // later term matters, and ends the probe.
            if term > self.consensus.state().term {
                self.saw_term(node, now, term);
                return;
            }
            if let Some(voter) = reply.voter.as_deref()
                && reply.granted
                && self.consensus.probe_granted(voter)
            {
                self.count_probes(node, now);
            }
            return;
        }
        if self.saw_term(node, now, term) {
            return;
        }
        if !matches!(self.consensus.role(), Role::Candidate { .. })
            || term != self.consensus.state().term
            || !reply.granted
        {
            return;
        }
        let Some(voter) = reply.voter.as_deref() else {
            return;
        };
        self.consensus.vote_granted(voter, reply.accepted, &reply.address);
        self.count_votes(node, now);
    }

    /// Becomes the coordinator once a majority of the voters granted their votes.
    pub(super) fn count_votes(&mut self, node: &mut Shared, now: Now) {
        let Some(coordination) = self.coordination(node) else { return };
        let consensus = &self.consensus;
        if consensus.is_saving() {
            // Its own vote is not on disk yet; it counts once it is.
            return;
        }
        let Role::Candidate { granted, newest } = consensus.role() else { return };
        let votes = granted.iter().filter(|g| coordination.is_voter(g)).count();
        if votes < coordination.majority() {
            return;
        }
        let newest = newest.clone();
        let consensus = &mut self.consensus;
        info!(
            "coordinating term {} with {votes} of {} votes; the newest version is sequence {} of term {}",
            consensus.state().term,
            coordination.voters.len(),
            newest.0.version.sequence,
            newest.0.term
        );
        consensus.win(now);
        node.metrics.elections_won += 1;
        self.drop_lock_for(node, "this node became the coordinator");
        self.adopt(node, now, newest);
        self.beat(node, now);
    }

    /// A request for this node's vote: `POST /cluster/vote`.
    pub(super) fn vote_request(
        &mut self,
        node: &mut Shared,
        now: Now,
        ticket: super::Ticket,
        body: &[u8],
    ) -> super::Reply {
        let Some(VoteRequest { term, candidate, accepted: theirs, pre }) = VoteRequest::decode(body) else {
            return super::Reply::Now(Response::error(
                400,
                "a vote request is {\"term\", \"candidate\", \"accepted\"}",
            ));
        };
        if let Some(why) = self.term_refusal(node, term, &format!("a request for a vote from {}", candidate.address)) {
            return super::Reply::Now(Response::error(409, &format!("vote refused: {why}")));
        }
        let consensus = &self.consensus;
        let leading = consensus.is_coordinator() && consensus.has_lease(now);
        let promised =
            !consensus.promise_until().fired(now) && consensus.coordinator().is_none_or(|c| c.id != candidate.id);
        // A pre-vote asks whether this node would vote for the candidate in that term: nothing
        // changes here, no term and no vote.
        if !pre && term > consensus.state().term && (leading || (promised && consensus.coordinator().is_some())) {
            // Raft's guard against disruptive candidates: while this node coordinates with a lease,
            // or has promised the coordinator one, no candidate can win, so its term is not taken
            // up (taking it would depose a working coordinator for nothing).
            let why = "this node promised a lease to the coordinator, which is alive";
            return super::Reply::Now(self.vote_answer(node, Some(why), false));
        }
        if !pre {
            self.saw_term(node, now, term);
        }
        let accepted = self.accepted(node);
        let consensus = &self.consensus;
        let refusal = if pre && term <= consensus.state().term {
            Some(format!("term {term} is not after this node's ({})", consensus.state().term))
        } else if term < consensus.state().term {
            Some(format!("term {term} is over (this node is in term {})", consensus.state().term))
        } else if !pre && consensus.state().vote.as_ref().is_some_and(|v| *v != candidate.id) {
            Some(format!("this node voted for another candidate in term {term}"))
        } else if leading || promised {
            Some("this node promised a lease to the coordinator (or started a moment ago)".to_string())
        } else if theirs.key() < accepted.key() {
            Some(format!(
                "this node holds a newer version (sequence {} of term {})",
                accepted.version.sequence, accepted.term
            ))
        } else {
            None
        };
        let answer = self.vote_answer(node, refusal.as_deref(), pre);
        if refusal.is_some() || pre {
            return super::Reply::Now(answer);
        }
        self.consensus.vote_for(&candidate.id, now, ticket, answer);
        info!("voted for {} in term {term}", candidate.address);
        self.save_state(node);
        super::Reply::Later
    }

    /// The answer to a vote request (or a pre-vote): granted, or refused and why.
    fn vote_answer(&self, node: &Shared, refusal: Option<&str>, pre: bool) -> Response {
        let consensus = &self.consensus;
        let answer = VoteAnswer {
            term: consensus.state().term,
            voter: Some(consensus.state().id.clone()),
            address: consensus.address().to_string(),
            accepted: Some(self.accepted(node)),
            granted: refusal.is_none(),
            why: refusal.map(str::to_string),
            pre,
        };
        Response::json(200, answer.encode())
    }
}

/// A new coordinator's first act: adopting the newest version among its voters.
impl Coordinated {
    /// A new coordinator's first act: the newest version among its voters, stamped with its term
    /// and made durable on a majority, before any lock is granted.
    pub(super) fn adopt(&mut self, node: &mut Shared, now: Now, newest: (Accepted, String)) {
        let (accepted, holder) = newest;
        let base = (self.accepted(node) == accepted).then(|| self.newest_held(node).clone());
        match base {
            Some(base) => self.stamp(node, now, base),
            None => {
                info!(
                    "fetching sequence {} of term {} from {holder} to adopt it",
                    accepted.version.sequence, accepted.term
                );
                node.call(&holder, CallKind::FetchAccepted, Method::Get, "/cluster/accepted", Bytes::EMPTY);
            }
        }
    }

    /// Stamps `base` with this coordinator's term and makes it durable on a majority.
    pub(super) fn stamp(&mut self, node: &mut Shared, now: Now, base: Sealed) {
        let Some(coordination) = base.copy.coordination.clone().or_else(|| self.coordination(node)) else { return };
        self.replicate(node, now, Purpose::Adopt, Content::Stamp { base: Box::new(base), coordination });
    }

    /// The version to adopt arrived (decoded): stamp it.
    pub(super) fn adopted(&mut self, node: &mut Shared, now: Now, result: Result<Sealed, DecodeError>) {
        if !self.consensus.is_coordinator() || self.commit.is_some() {
            if let Ok(sealed) = result {
                node.store.retire(sealed);
            }
            return;
        }
        match result {
            Ok(sealed) => self.stamp(node, now, sealed),
            Err(e) => warn!("the version to adopt was refused: {e}; standing again"),
        }
    }
}
