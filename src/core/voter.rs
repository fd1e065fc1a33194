//! A voter's side of coordinated writes: it accepts the versions the coordinator pushes (`PUT
//! /cluster/accept`) once they are on its disk, hands a new coordinator the newest it holds (`GET
//! /cluster/accepted`), and serves a version once a beat says it is committed.

use log::info;

use super::consensus::Accepted;
use super::coordinated::Coordinated;
use super::{Effect, Reply, Shared, Ticket};
use crate::core::chain::Writing;
use crate::core::clock::Now;
use crate::core::jobs::{Decoding, DiskError, Job, Owner};
use crate::core::messages::{AcceptAnswer, AcceptChange, AcceptRefusal, ChangeRefusal};
use crate::core::sealed::{DecodeError, Sealed};
use crate::http::Response;

/// A version this node accepted and holds durably (or is writing), not known to be committed.
#[derive(Debug)]
pub struct Pending {
    pub sealed: Sealed,
    /// The write under way, and the coordinator's request that waits for it (`PUT /cluster/accept`).
    pub writing: Option<(u64, Option<Ticket>)>,
    /// While `sealed` is written: the version held durably before it. A write that fails must not
    /// forget it: it is still on disk, and a node that forgot it could vote for a candidate without
    /// it, and so pass over a version a majority holds (a commit answered 200).
    pub replaced: Option<Sealed>,
}

impl Coordinated {
    /// Forgets the pending version; its tree is freed off the loop (one pushed by the coordinator
    /// shares no node with the store).
    pub(super) fn drop_pending(&mut self, node: &mut Shared) {
        if let Some(pending) = self.pending.take() {
            node.store.retire(pending.sealed);
        }
    }

    /// Holds `sealed` as this node's pending version: a version pushed to this voter, or the
    /// coordinator's own commit in flight (it votes for it too); `writing` while its write is
    /// under way, with the request that waits for it.
    pub(super) fn hold_pending(&mut self, sealed: Sealed, writing: Option<(u64, Option<Ticket>)>) {
        let durable = self.pending.take().filter(|p| p.writing.is_none() && writing.is_some());
        let replaced = durable.map(|p| p.sealed);
        self.pending = Some(Pending { sealed, writing, replaced });
    }

    /// `PUT /cluster/accept`: the coordinator pushes a version to this voter, whole or as its
    /// change (`messages::AcceptChange`); decoded first, or made from its base and checked, on the
    /// decoder thread. The base may be the store or the version held pending.
    pub(super) fn accept_request(&mut self, node: &mut Shared, ticket: Ticket, body: &[u8]) -> Reply {
        if AcceptChange::is_change(body) {
            let store = node.store.sealed();
            let mut bases = vec![(store.copy.version, store.copy.root.clone())];
            if let Some(pending) = &self.pending {
                bases.push((pending.sealed.copy.version, pending.sealed.copy.root.clone()));
            }
            node.apply_change(Decoding::Accept(ticket), body.to_vec(), bases);
        } else {
            node.decode(Decoding::Accept(ticket), body.to_vec());
        }
        Reply::Later
    }

    /// A pushed version was decoded: accept it (write it, then answer), or refuse it.
    pub(super) fn accept_decoded(
        &mut self,
        node: &mut Shared,
        now: Now,
        ticket: Ticket,
        result: Result<Sealed, DecodeError>,
    ) {
        let sealed = match result {
            Ok(sealed) if sealed.copy.coordination.is_some() => sealed,
            Ok(_) => return node.answer(ticket, Response::error(400, "a version to accept carries its coordination")),
            // The coordinator sends the whole copy on this answer.
            Err(e @ DecodeError::BaseMissing(_)) => {
                let (accepted, term) = (Some(self.accepted(node)), self.consensus.state().term);
                let refusal = ChangeRefusal { accepted, error: e.to_string(), need: "copy", term };
                return node.answer(ticket, Response::json(409, refusal.encode()));
            }
            Err(e) => return node.answer(ticket, Response::error(400, &format!("version refused: {e}"))),
        };
        let term = sealed.copy.term();
        if let Some(why) = self.term_refusal(node, term, "a pushed version") {
            node.store.retire(sealed);
            return node.answer(ticket, Response::error(409, &format!("version refused: {why}")));
        }
        let stale = self.saw_term(node, now, term);
        let consensus = &self.consensus;
        let same_cluster = self
            .coordination(node)
            .is_none_or(|c| Some(&c.cluster) == sealed.copy.coordination.as_ref().map(|o| &o.cluster));
        if stale || !same_cluster {
            let why = if stale { "a version of an older term" } else { "a version of another cluster" };
            let answer = AcceptRefusal { error: why, term: consensus.state().term };
            node.store.retire(sealed);
            return node.answer(ticket, Response::json(409, answer.encode()));
        }
        let theirs = Accepted::of(&sealed);
        let accepted = self.accepted(node);
        let already = accepted == theirs && self.pending.as_ref().is_none_or(|p| p.writing.is_none());
        if already || theirs == Accepted::of(node.store.sealed()) {
            node.store.retire(sealed);
            return node.answer(ticket, self.accepted_answer(node, 201));
        }
        // An older version than one accepted here: a push delayed and overtaken by the next one of
        // the same term (an older term is stale, above). Taking it would forget the newer version,
        // which a majority may hold: then an election could pass over a committed version.
        if theirs.key() < accepted.key() {
            node.store.retire(sealed);
            return node.answer(ticket, self.accepted_answer(node, 409));
        }
        let id = node.ids.job(Owner::Accept);
        let mut json = node.node_json(self.consensus.confirmed());
        json.committed = false;
        let job = Job::Write { id, sealed: Box::new(sealed.clone()), node: json, writing: Writing::AsRuled };
        node.effects.push(Effect::Job(job));
        self.hold_pending(sealed, Some((id.serial, Some(ticket))));
    }

    /// A pushed version is on this voter's disk: acknowledge it.
    pub(super) fn accept_written(
        &mut self,
        node: &mut Shared,
        id: u64,
        file: Result<Option<std::path::PathBuf>, DiskError>,
    ) -> bool {
        let Some(pending) = &mut self.pending else { return false };
        let Some((writing, ticket)) = pending.writing else { return false };
        if writing != id {
            return false;
        }
        pending.writing = None;
        let replaced = pending.replaced.take();
        let response = match file {
            Ok(_) => self.accepted_answer(node, 201),
            Err(e) => {
                // Not durable: not accepted; the version held durably before it is held again.
                self.drop_pending(node);
                self.pending = replaced.map(|sealed| Pending { sealed, writing: None, replaced: None });
                Response::error(e.status, &e.message)
            }
        };
        if let Some(ticket) = ticket {
            node.answer(ticket, response);
        }
        true
    }

    /// `{"term": T, "accepted": {...}}`.
    fn accepted_answer(&self, node: &Shared, status: u16) -> Response {
        let consensus = &self.consensus;
        let answer = AcceptAnswer { term: consensus.state().term, accepted: Some(self.accepted(node)), need: None };
        Response::json(status, answer.encode())
    }

    /// `GET /cluster/accepted`: the newest version this node holds, committed or not, for a new
    /// coordinator that must adopt it.
    pub(super) fn accepted_copy(&mut self, node: &mut Shared, ticket: Ticket) -> Reply {
        let held = self.newest_held(node);
        if !held.body.is_empty() {
            return Reply::Now(super::take::copy_response(held.body.clone()));
        }
        // A body set aside (a commit written as a change, a version made from a pushed change)
        // is rendered by a worker, off the loop, and answered when it reports.
        let copy = Box::new(held.copy.clone());
        let id = node.ids.job(Owner::HeldCopy(ticket));
        node.effects.push(Effect::Job(Job::Render { id, copy }));
        Reply::Later
    }

    /// A follower learns from a beat which version is committed: it serves it if it holds it.
    pub(super) fn learn_committed(&mut self, node: &mut Shared, now: Now, committed: Accepted) {
        // A late beat may name a version older than one this node has since taken from a peer:
        // that pending version is superseded, never served.
        if self.pending.as_ref().is_some_and(|p| {
            p.writing.is_none()
                && self.consensus.confirmed()
                && p.sealed.copy.version.sequence < node.store.version().sequence
        }) {
            self.drop_pending(node);
        }
        if let Some(pending) = &self.pending
            && pending.writing.is_none()
            && Accepted::of(&pending.sealed) == committed
        {
            let pending = self.pending.take().expect("checked above");
            let version = pending.sealed.copy.version;
            node.disk.wrote(version, node.cluster.stamp);
            if self.consensus.confirmed() {
                node.store.promote(pending.sealed);
            } else {
                // The store was never served: the coordinator's version replaces it, even at a
                // lower sequence (a version no majority held, that no coordinator adopted).
                node.store.reset(pending.sealed);
                self.consensus.confirm();
                info!("sequence {} is committed: serving it", version.sequence);
            }
            node.store_changed(Some(self));
        }
        let consensus = &mut self.consensus;
        if node.store.version() == committed.version && !consensus.confirmed() {
            consensus.confirm();
            info!("sequence {} is committed: serving it", committed.version.sequence);
        }
        // What the node had accepted before it restarted was never committed, and so never
        // served, when a coordinator of a later term committed an older sequence: it adopted the
        // newest version a majority held, and that was not it. Holding that committed version,
        // the node serves as usual (seed 684 of the default run waited for ever).
        if let Some(before) = consensus.accepted_at_start()
            && committed.term > before.term
            && committed.version.sequence < before.version.sequence
            && node.store.version() == committed.version
        {
            consensus.accepted_at_start_lost();
        }
        self.note_commit_point(node);
        node.check_activation(now, Some(self));
    }
}
