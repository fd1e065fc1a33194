//! Requests for the lock, carried out by the coordinator whichever node they reach.
//!
//! In coordinated mode every request on `/lock` and `/update` (reads included) and every change
//! of the voters is handled by the coordinator. A node that is not the coordinator forwards the
//! request once, over its peer link, and answers the client with the coordinator's answer: there
//! is no redirect to follow, so a transaction may send each request to another node (behind a
//! round-robin balancer, say). A forwarded request carries `X-Lighthouse-Forwarded` (the client's
//! address), and a node that receives one without being the coordinator answers 503 rather than
//! forwarding it again. Without an answer within `FORWARD_TIMEOUT_MS` the client gets 503 (nothing
//! was committed), or for a commit 504: its outcome is unknown.

use super::cluster::CallKind;
use super::coordinated::Coordinated;
use super::{Reply, Request, Shared, Ticket};
use crate::core::clock::{Deadline, Now};
use crate::core::roster::Member;
use crate::http::{Bytes, Method, Response};
use crate::limits::{
    COORDINATOR_LEASE_MS, FORWARD_TIMEOUT_MS, FORWARD_WRITE_TIMEOUT_MS, FORWARDS_MAX, LEASE_MS, commit_allowance_ms,
};

/// A request forwarded to the coordinator and waiting for its answer.
#[derive(Debug)]
pub struct Forward {
    /// The peer call carrying it, and the coordinator it went to.
    pub call: u64,
    pub to: String,
    pub ticket: Ticket,
    /// A commit (`PUT /lock/NAME`): without an answer its outcome is unknown.
    pub commit: bool,
    pub deadline: Deadline,
}

/// The header that marks a forwarded request; its value is the client's address.
pub const FORWARDED: &str = "X-Lighthouse-Forwarded";

/// The header that carries what a forwarded request's token grants (`grant.rs`).
pub const GRANT: &str = "X-Lighthouse-Grant";

impl Coordinated {
    /// True when this request belongs to the coordinator: this node is in coordinated mode and is
    /// not the coordinator.
    pub(super) fn must_forward(&self, resource: &str, method: Method) -> bool {
        let consensus = &self.consensus;
        let writes = matches!(resource, "lock" | "update")
            || (resource == "state" && method == Method::Delete)
            || (resource == "data" && matches!(method, Method::Put | Method::Patch | Method::Delete))
            // A client's restore; a peer's push never asks.
            || (resource == "copy" && method == Method::Put);
        writes && !consensus.is_coordinator()
    }

    /// Forwards a request to the coordinator (once), or answers why it cannot be.
    pub(super) fn forward(
        &mut self,
        node: &mut Shared,
        now: Now,
        ticket: Ticket,
        request: &Request,
        commit: bool,
    ) -> Reply {
        if request.headers.forwarded.is_some() {
            return Reply::Now(
                Response::error(503, "this node is not the coordinator (any more); retry")
                    .with_header("Retry-After", "1"),
            );
        }
        let coordinator = self.consensus.coordinator().cloned();
        let Some(Member { address, .. }) = coordinator else { return Reply::Now(self.no_majority(node, now)) };
        if self.forwards.len() >= FORWARDS_MAX {
            return Reply::Now(
                Response::error(503, "too many requests waiting for the coordinator; retry")
                    .with_header("Retry-After", "1"),
            );
        }
        let client = request.client.map_or_else(|| "unknown".to_string(), |c| c.to_string());
        let mut headers = format!("{FORWARDED}: {client}\r\n{}", node.envelope());
        // The coordinator judges the request by what the client's token grants, not by this
        // node's credential (which may do everything).
        if let Some(grant) = request.grant {
            headers.push_str(&format!("{GRANT}: {}\r\n", grant.to_header()));
        }
        let passed = [
            ("Accept", request.headers.accept),
            ("Content-Type", request.headers.content_type),
            ("If-Match", request.headers.if_match),
            ("If-None-Match", request.headers.if_none_match),
        ];
        for (name, value) in passed.iter().filter_map(|(name, value)| Some((name, (*value)?))) {
            headers.push_str(&format!("{name}: {value}\r\n"));
        }
        let call = node.ids.call();
        node.cluster.track(call, address.clone(), CallKind::Forward);
        let to = address.clone();
        node.effects.push(super::Effect::Peer(super::PeerRequest {
            id: call,
            peer: address,
            method: request.method,
            path: request.target.to_string(),
            headers,
            body: Bytes::Owned(request.body.to_vec()),
        }));
        // A one-request write (or a restore) may wait for the lock on the coordinator before it commits.
        let write = request.target.starts_with("/data") || request.target.starts_with("/copy");
        // A commit (a large write, or one into a large store) is given the time the coordinator
        // gives it (`limits::commit_allowance_ms`); a transaction's commit has only the store.
        let allowance = commit_allowance_ms((node.store.data_len() + request.body.len()) as u64);
        let timeout_ms = match (write, commit) {
            (true, _) => FORWARD_WRITE_TIMEOUT_MS + allowance,
            (false, true) => FORWARD_TIMEOUT_MS + allowance,
            (false, false) => FORWARD_TIMEOUT_MS,
        };
        self.forwards.push(Forward { call, to, ticket, commit, deadline: Deadline::after(now, timeout_ms) });
        Reply::Later
    }

    /// The coordinator's answer to a forwarded request: the client gets it as it is.
    pub(super) fn forward_reply(&mut self, node: &mut Shared, call: u64, result: Result<super::PeerReply, String>) {
        let Some(position) = self.forwards.iter().position(|f| f.call == call) else { return };
        let forward = self.forwards.swap_remove(position);
        let response = match result {
            Ok(reply) => Response {
                status: reply.status,
                headers: Bytes::Owned(reply.headers),
                body: Bytes::Owned(reply.body),
                close: false,
            },
            Err(e) => self.unanswered(node, &forward, &e),
        };
        node.answer(forward.ticket, response);
    }

    /// Answers the forwarded requests the coordinator did not answer in time.
    pub(super) fn expire_forwards(&mut self, node: &mut Shared, now: Now) {
        while let Some(position) = self.forwards.iter().position(|f| f.deadline.fired(now)) {
            let forward = self.forwards.swap_remove(position);
            let response = self.unanswered(node, &forward, "no answer in time");
            node.answer(forward.ticket, response);
        }
    }

    /// The coordinator the waiting requests went to is no longer the coordinator: they are
    /// answered at once (503, or 504 for a commit) rather than after their deadline, so that
    /// clients retry with the next one.
    pub(super) fn abandon_forwards(&mut self, node: &mut Shared, why: &str) {
        for forward in std::mem::take(&mut self.forwards) {
            let response = self.unanswered(node, &forward, why);
            node.answer(forward.ticket, response);
        }
    }

    pub(super) fn next_forward_deadline(&self) -> Option<Deadline> {
        self.forwards.iter().map(|f| f.deadline).min()
    }

    /// 503 for a request that did not reach the coordinator or was not answered (nothing was
    /// committed); 504 for a commit that was sent and not answered, whose outcome is unknown
    /// (counted: the coordinator's own 504s are counted there, and passed on uncounted here).
    fn unanswered(&mut self, node: &mut Shared, forward: &Forward, why: &str) -> Response {
        let coordinator = &forward.to;
        // A request that never left this node changed nothing, a commit included.
        let not_sent = why.strip_prefix(super::NOT_SENT);
        let why = not_sent.unwrap_or(why);
        if forward.commit && not_sent.is_none() {
            let message = format!(
                "the coordinator {coordinator} did not answer the commit ({why}): it may have landed or not; read \
                 the version to find out (and do not reuse a lock's name)"
            );
            node.metrics.commits_unknown += 1;
            return Response::outcome_unknown(&message);
        }
        Response::error(503, &format!("the coordinator {coordinator} did not answer ({why}); nothing changed, retry"))
            .with_header("Retry-After", "1")
    }

    /// The voters this node counts as reachable (itself included, when it is one): for the
    /// coordinator, those that acknowledged a beat within its lease (as the lease itself counts);
    /// for any other node, those that answered it within a lease.
    pub(super) fn reachable_voters(&self, node: &Shared, now: Now) -> usize {
        let consensus = &self.consensus;
        let acked = |id: &str| match consensus.role() {
            super::consensus::Role::Coordinator(leading) => {
                leading.acks.iter().any(|(by, sent)| by == id && sent + COORDINATOR_LEASE_MS > now.mono_ms)
            }
            _ => false,
        };
        let lately = |v: &Member| {
            node.cluster.peers.iter().any(|p| {
                p.address == v.address && p.reachable && p.last_reachable.is_some_and(|at| at + LEASE_MS >= now.unix_ms)
            })
        };
        self.voters(node)
            .iter()
            .filter(|v| {
                v.id == consensus.state().id || if consensus.is_coordinator() { acked(&v.id) } else { lately(v) }
            })
            .count()
    }

    /// The 503 of a node that knows no coordinator, or coordinates without a lease: writes need a
    /// majority of the voters.
    pub(super) fn no_majority(&self, node: &Shared, now: Now) -> Response {
        let voters = self.voters(node);
        let consensus = &self.consensus;
        let reachable = self.reachable_voters(node, now);
        let whom = if consensus.is_coordinator() {
            "this node coordinates but no majority answered it lately"
        } else {
            "and no coordinator is known"
        };
        let why = if voters.is_empty() {
            "this node is not a voter of a cluster yet (it joins as a learner once the coordinator has its address)"
                .to_string()
        } else {
            format!("writes need a majority: {reachable} of {} voters reachable, {whom}", voters.len())
        };
        Response::error(503, &why).with_header("Retry-After", "1")
    }
}
