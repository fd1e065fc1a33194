//! Beats: the coordinator's beats to every member; each member's answer, which renews the
//! coordinator's lease (`check_lease`) and says what the member holds; and a follower's side: it
//! follows the coordinator it hears, and stands at once when that one says it left the voters.

use log::{info, warn};

use super::Shared;
use super::consensus::Accepted;
use super::coordinated::Coordinated;
use crate::core::clock::{Deadline, Now};
use crate::core::messages::{Beat, BeatAnswer};
use crate::http::{Bytes, Method, Response};
use crate::limits::BEAT_MS;

impl Coordinated {
    /// Sends a beat to every member: the term, and the committed version to serve.
    pub(super) fn beat(&mut self, node: &mut Shared, now: Now) {
        let Some(coordination) = self.coordination(node) else { return };
        let consensus = &mut self.consensus;
        let me = consensus.state().id.clone();
        if !consensus.is_coordinator() {
            return;
        }
        consensus.beat_at(Deadline::after(now, BEAT_MS));
        // A coordinator that committed voters without itself says so in its last beat: the
        // voters owe it no promise and elect another coordinator at once.
        let leaving = node.store.sealed().copy.coordination.as_ref().is_some_and(|c| !c.is_voter(&me));
        let body = Beat {
            term: consensus.state().term,
            coordinator: consensus.me(),
            cluster: Some(coordination.cluster),
            // Only a store known to be committed: one elected on a store it loaded unconfirmed
            // says nothing until its adopted version is durable on a majority (else a member
            // holding the same unconfirmed version would serve it as committed).
            committed: consensus.confirmed().then(|| Accepted::of(node.store.sealed())),
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

    /// A beat from the coordinator: `POST /cluster/beat`.
    pub(super) fn beat_request(&mut self, node: &mut Shared, now: Now, body: &[u8]) -> Response {
        let Some(Beat { term, coordinator, committed, leaving, sent, .. }) = Beat::decode(body) else {
            return Response::error(400, "a beat is {\"term\", \"coordinator\", \"committed\"}");
        };
        if let Some(why) = self.term_refusal(node, term, &format!("a beat from {}", coordinator.address)) {
            return Response::error(409, &format!("beat refused: {why}"));
        }
        let stale = self.saw_term(node, now, term);
        let consensus = &self.consensus;
        if !stale && consensus.state().id != coordinator.id {
            if consensus.coordinator() != Some(&coordinator) {
                info!("{} coordinates term {term}", coordinator.address);
                self.abandon_forwards(node, &format!("{} coordinates term {term} now", coordinator.address));
            }
            self.consensus.follow(coordinator, now);
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
            term: consensus.state().term,
            ok: !stale,
            id: Some(consensus.state().id.clone()),
            sent,
            accepted: Some(accepted),
            committed: consensus.confirmed().then(|| Accepted::of(node.store.sealed())),
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
        if term != self.consensus.state().term || !self.consensus.acked(id, sent) {
            return;
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
        if let Some(left) = self.consensus.released(now) {
            info!("{} left the voters: electing another coordinator", left.address);
        }
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

    /// Recomputes the lease from the acknowledged beats; a coordinator whose lease ran out drops
    /// the lock.
    pub(super) fn check_lease(&mut self, node: &mut Shared, now: Now) {
        // The voters in effect are those of the committed version: a change of voters in flight
        // counts once it is committed.
        let committed = node.store.sealed().copy.coordination.clone();
        let founding = self.consensus.founding().cloned();
        let Some(coordination) = committed.or(founding) else { return };
        if self.consensus.renew_lease(&coordination, now) {
            warn!("the coordinator's lease ran out: no majority acknowledged its beats");
            node.metrics.leases_lost += 1;
            self.drop_lock_for(node, "the coordinator lost its lease (no majority of voters answered)");
        }
    }
}
