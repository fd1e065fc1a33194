//! `/copy`: the whole store with its version, as nodes exchange it.
//!
//! `GET /copy` answers the current store's copy body, rendered once per version by the workers;
//! a peer pushed the store whole waits for the same render, never one on the loop.
//! `PUT /copy` offers one: its body goes to the decoder thread (parsing and hashing a large store
//! would stall the loop), and once checked it replaces the store if, and only if, it is newer.
//! An older or equal copy is ignored; a malformed one or one whose checksum does not match its
//! data is refused with 400 and changes nothing.
//!
//! With coordinated writes a peer's push (a request that carries `X-Lighthouse-Writes` and was not
//! forwarded) is a committed version the node takes, and a client's `PUT /copy` is a restore: the
//! coordinator commits the copy's data at the copy's sequence, stamped with its own term and
//! voters, as a whole-store write (`write.rs`), answered 201 once durable on a majority; any other
//! node forwards it there. The copy may be a backup of any cluster, or of a node with local
//! writes: a restore takes its data and its sequence, never its voters.

use std::sync::Arc;

use log::{info, warn};

use super::coordinated::Coordinated;
use super::write::{Edit, Write};
use super::{Effect, Lock, Reply, Request, Shared, Ticket, method_not_allowed};
use crate::core::clock::Now;
use crate::core::cluster::CallKind;
use crate::core::consensus::Accepted;
use crate::core::jobs::{Decoding, Job, Owner};
use crate::core::messages::{AcceptChange, ChangeRefusal};
use crate::core::sealed::{DecodeError, Sealed};
use crate::core::value::Value;
use crate::core::version::Version;
use crate::http::{Bytes, Method, Response};
use crate::limits::DECODES_IN_FLIGHT_MAX;

/// A peer's own push of its copy: it says its write mode, and no node forwarded it for a client.
fn is_peer_push(request: &Request) -> bool {
    request.headers.peer_writes.is_some() && request.headers.forwarded.is_none()
}

/// `GET /copy` requests and whole pushes to peers waiting for the decoder thread to render the
/// copy body.
#[derive(Default)]
pub(super) struct CopyRenders {
    /// The render in flight: its job's serial, and the store's generation it renders.
    job: Option<(u64, u64)>,
    waiting: Vec<Ticket>,
    /// Peers marked as being pushed the store (`Peer::pushing`), to get it whole once rendered.
    pushes: Vec<String>,
}

pub(super) fn copy_response(body: Arc<[u8]>) -> Response {
    Response {
        status: 200,
        headers: Bytes::Static(b"Content-Type: application/json\r\n"),
        body: Bytes::Shared(body),
        close: false,
    }
}

impl Shared {
    /// Hands a copy to the decoder thread, for `waiter`: the one way a decode starts, so the
    /// count of decodes in flight stays true.
    pub(super) fn decode(&mut self, waiter: Decoding, body: Vec<u8>) {
        let id = self.ids.job(Owner::Decode(waiter));
        self.decodes_in_flight += 1;
        self.effects.push(Effect::Job(Job::Decode { id, body }));
    }

    /// Hands a version pushed as its change to the decoder thread, with the versions it may
    /// apply to, for `waiter`; counted as a decode.
    pub(super) fn apply_change(&mut self, waiter: Decoding, body: Vec<u8>, bases: Vec<(Version, Value)>) {
        let id = self.ids.job(Owner::Decode(waiter));
        self.decodes_in_flight += 1;
        self.effects.push(Effect::Job(Job::Apply { id, body, bases }));
    }

    /// Pushes the store to an older peer (the caller marked it as being pushed to): as its change
    /// (`PUT /copy/change`) when the peer's last seen version (with coordinated writes, its last
    /// committed one) is the change's base, else whole (`PUT /copy`).
    pub(super) fn push_copy(&mut self, address: &str, theirs: Option<Version>) {
        let (sealed, ours) = (self.store.sealed(), self.store.version());
        let change = sealed.change.as_ref().filter(|c| Some(c.base) == theirs && c.len() < sealed.data_len);
        if let Some(change) = change {
            let body = AcceptChange::encode(change, None, &sealed.copy.lineage);
            self.metrics.changes_pushed += 1;
            self.call(address, CallKind::PutChange(ours), Method::Put, "/copy/change", Bytes::Owned(body));
            return;
        }
        self.push_whole(address);
    }

    /// Pushes the store whole to a peer marked as being pushed to: at once if its body is at
    /// hand, else once the decoder thread has rendered it (`copy_rendered`).
    fn push_whole(&mut self, address: &str) {
        match self.store.body_at_hand() {
            Some(body) => {
                let version = self.store.version();
                self.call(address, CallKind::PutCopy(version), Method::Put, "/copy", Bytes::Shared(body));
            }
            None => {
                if !self.copy_renders.pushes.iter().any(|a| a == address) {
                    self.copy_renders.pushes.push(address.to_string());
                }
                self.render_copy();
            }
        }
    }

    /// Has the decoder thread render the store's copy body, unless it does already.
    fn render_copy(&mut self) {
        if self.copy_renders.job.is_none() {
            let id = self.ids.job(Owner::Render);
            self.copy_renders.job = Some((id.serial, self.store.generation()));
            let copy = Box::new(self.store.sealed().copy.clone());
            self.effects.push(Effect::Job(Job::Render { id, copy }));
        }
    }

    /// Whether this node pushes its store to an older peer that last showed `theirs` (gossip's
    /// version, which lags): with local writes always; with coordinated writes only the change.
    /// The coordinator pushes the whole store to a member whose beat answer shows it needs it
    /// (`member_holds`), and a member fetches a newer store itself; else every node would send
    /// the others the whole store after each commit their gossip had not yet seen.
    pub(super) fn pushes_to(&self, co: Option<&Coordinated>, theirs: Option<Version>) -> bool {
        co.is_none() || self.store.sealed().change.as_ref().is_some_and(|c| Some(c.base) == theirs)
    }

    /// A peer did not take the store as its change (it lacks the base, or is of a version that
    /// takes only whole copies): it gets the store whole, if it is still the store.
    pub(super) fn change_refused(&mut self, co: Option<&Coordinated>, now: Now, address: &str, version: Version) {
        self.metrics.changes_refused += 1;
        // With coordinated writes only the coordinator sends a member the whole store (`pushes_to`).
        if version == self.store.version() && co.is_none_or(|co| co.consensus.is_coordinator()) {
            self.cluster.pushing_again(address, version, now);
            self.push_whole(address);
        }
    }

    /// `PUT /copy/change`: a peer pushes its store (with coordinated writes, the committed one) as
    /// the change from the version this node last showed it; made from the store (or a voter's
    /// pending version) and checked on the decoder thread, then taken as a copy would be. A node
    /// without the base answers 409 with `"need": "copy"`, unless it is past it already.
    pub(super) fn change_request(&mut self, co: Option<&Coordinated>, ticket: Ticket, request: &Request) -> Reply {
        if request.method != Method::Put {
            return Reply::Now(method_not_allowed("PUT"));
        }
        if !is_peer_push(request) {
            let why = "PUT /copy/change takes a peer's push of its store as a change; a client restores with PUT /copy";
            return Reply::Now(Response::error(403, why));
        }
        if self.decodes_in_flight >= DECODES_IN_FLIGHT_MAX {
            return Reply::Now(
                Response::error(503, "too many copies being checked; retry").with_header("Retry-After", "1"),
            );
        }
        let mut bases = vec![(self.store.version(), self.store.root().clone())];
        if let Some(pending) = co.and_then(|co| co.pending.as_ref()) {
            bases.push((pending.sealed.copy.version, pending.sealed.copy.root.clone()));
        }
        self.apply_change(Decoding::Request(ticket), request.body.to_vec(), bases);
        Reply::Later
    }

    pub(super) fn copy_request(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        request: &Request,
    ) -> Reply {
        match (request.method, co) {
            // A version this node does not know to be committed is nobody's to take.
            (Method::Get | Method::Head, co) if !Shared::store_confirmed(co.as_deref()) => Reply::Now(
                Response::error(503, "this node's store is not known to be committed yet; ask another node")
                    .with_header("Retry-After", "1"),
            ),
            (Method::Get | Method::Head, _) => match self.store.body_at_hand() {
                Some(body) => Reply::Now(copy_response(body)),
                None => {
                    // Rendering a large store would stall the loop: the decoder thread renders
                    // it once for every request waiting (their number is bounded by the
                    // connections).
                    self.render_copy();
                    self.copy_renders.waiting.push(ticket);
                    Reply::Later
                }
            },
            (Method::Put, Some(co)) if !is_peer_push(request) => co.restore_request(self, now, ticket, request),
            (Method::Put, _) => {
                if self.decodes_in_flight >= DECODES_IN_FLIGHT_MAX {
                    let busy =
                        Response::error(503, "too many copies being checked; retry").with_header("Retry-After", "1");
                    return Reply::Now(busy);
                }
                self.decode(Decoding::Request(ticket), request.body.to_vec());
                Reply::Later
            }
            (_, _) => Reply::Now(method_not_allowed("GET, HEAD, PUT")),
        }
    }

    /// The decoder thread rendered a copy body: it answers every `GET /copy` waiting, and is kept
    /// while it is the store's (until the next version). The peers waiting get it if it is still
    /// the store's; else they are no longer pushed to, and the usual rules push them the store
    /// that replaced it (`push_to_older`; with coordinated writes, the coordinator's next beat).
    pub(super) fn copy_rendered(
        &mut self,
        co: Option<&Coordinated>,
        now: Now,
        rendered: (u64, Version, Arc<[u8]>, usize),
    ) {
        let (id, version, body, data_len) = rendered;
        let Some((serial, generation)) = self.copy_renders.job.take() else {
            unreachable!("a rendered copy was asked for")
        };
        assert_eq!(serial, id, "the rendered copy is the one asked for");
        self.metrics.bodies_rendered += 1;
        self.store.keep_body(generation, body.clone(), data_len);
        for ticket in std::mem::take(&mut self.copy_renders.waiting) {
            self.answer(ticket, copy_response(body.clone()));
        }
        let pushes = std::mem::take(&mut self.copy_renders.pushes);
        // Only a render of the store still served goes to peers: a version stamped in a later
        // term meanwhile has the same sequence and checksum, and another term and voters.
        if generation == self.store.generation() {
            for address in pushes {
                self.call(&address, CallKind::PutCopy(version), Method::Put, "/copy", Bytes::Shared(body.clone()));
            }
            return;
        }
        for address in &pushes {
            if let Some(peer) = self.cluster.find_mut(address) {
                peer.pushing = None;
            }
        }
        self.push_to_older(co, now);
    }

    /// The decoder thread checked a copy: one sent with `PUT /copy`, or one fetched from a peer.
    pub(super) fn copy_decoded(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        waiter: Decoding,
        result: Result<Sealed, DecodeError>,
    ) {
        self.decodes_in_flight -= 1;
        match (waiter, co) {
            (Decoding::Request(ticket), co) => self.copy_checked(co, now, ticket, result),
            (Decoding::Fetched, co) => self.fetched(co, now, result),
            (Decoding::Accept(ticket), Some(co)) => co.accept_decoded(self, now, ticket, result),
            (Decoding::Adopt, Some(co)) => co.adopted(self, now, result),
            (Decoding::Restore { ticket, client }, Some(co)) => co.restore_decoded(self, now, ticket, client, result),
            // Only coordinated mode decodes a version pushed to a voter, adopted, or restored.
            (waiter, None) => unreachable!("a node of local writes decodes no {waiter:?}"),
        }
    }

    /// A copy sent with `PUT /copy` by a peer (or, with local writes, by a client) was checked.
    fn copy_checked(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        result: Result<Sealed, DecodeError>,
    ) {
        let response = match result {
            // The peer pushes the store whole on this answer.
            Err(DecodeError::BaseMissing(base)) if self.store.version().sequence > base.sequence => {
                // Past the base already (it took the version, or a newer one, another way): as
                // an older copy, ignored.
                Response::json(201, self.store.version().to_pretty_line().into_bytes())
            }
            Err(e @ DecodeError::BaseMissing(_)) => Response::json(
                409,
                ChangeRefusal { accepted: None, error: e.to_string(), need: "copy", term: 0 }.encode(),
            ),
            Err(e) => {
                warn!("refused a copy: {e}");
                Response::error(400, &format!("copy refused: {e}"))
            }
            Ok(sealed) => match self.foreign(co.as_deref(), &sealed) {
                Some(why) => {
                    self.store.retire(sealed);
                    Response::error(409, &why)
                }
                None => {
                    if self.take_copy(co, now, sealed) {
                        // Answered once on disk: a node never goes back to an older version.
                        return self.answer_copy_when_durable(ticket);
                    }
                    Response::json(201, self.store.version().to_pretty_line().into_bytes())
                }
            },
        };
        self.answer(ticket, response);
    }

    /// Replaces the store with a checked copy if it is newer; returns whether it was taken.
    /// Counts this node's commits the copy does not contain, makes a waiting commit lose, writes
    /// the copy to disk, and pushes it on to older peers.
    pub(super) fn take_copy(&mut self, co: Option<&mut Coordinated>, now: Now, sealed: Sealed) -> bool {
        if let Some(co) = co {
            return co.take_committed(self, now, sealed);
        }
        let theirs = sealed.copy.version;
        if theirs <= self.store.version() {
            self.store.retire(sealed);
            return false;
        }
        info!("took sequence {} ({}) from a peer", theirs.sequence, theirs.checksum);
        self.judge_own_commits(&sealed.copy.lineage);
        if let Some(lock) = &mut self.lock
            && !lock.is_committing()
            && !lock.changed_something()
        {
            // The holder has only read so far: let the transaction see the newest store.
            lock.rebase(theirs, sealed.copy.root.clone());
        }
        let waiting_commit = self.lock.as_ref().and_then(Lock::waiting_commit);
        self.store.install(sealed);
        self.store_changed(None);
        self.metrics.copies_taken += 1;
        if waiting_commit.is_some() {
            // The commit had not started writing; it can only lose now.
            self.commit_lost(now);
        }
        self.check_activation(now, None);
        self.pump_disk(now, None);
        self.push_to_older(None, now);
        true
    }

    /// Why a copy cannot be taken in this node's mode: a coordinated node takes only copies of its
    /// own cluster (or, a learner that has yet to hear of its cluster, of any), a local node only
    /// copies without a coordination.
    fn foreign(&self, co: Option<&Coordinated>, sealed: &Sealed) -> Option<String> {
        let theirs = sealed.copy.coordination.as_ref();
        if let (Some(ours), Some(theirs)) = (self.cluster_id(), theirs)
            && co.is_some()
            && ours != theirs.cluster
        {
            return Some(format!("the copy is of another cluster ({}, this one is {ours})", theirs.cluster));
        }
        match (co.is_some(), co.and_then(|co| co.coordination(self)), theirs) {
            (false, _, Some(_)) => Some(
                "this node's writes are local (--writes=local); the copy is of a cluster with \
                coordinated writes"
                    .into(),
            ),
            (true, _, None) => {
                Some("this node's writes are coordinated; the copy is of a node with local writes".into())
            }
            (true, Some(ours), Some(theirs)) if ours.cluster != theirs.cluster => {
                Some(format!("the copy is of another cluster ({}, this one is {})", theirs.cluster, ours.cluster))
            }
            _ => None,
        }
    }
}

impl Coordinated {
    /// A client's `PUT /copy` with coordinated writes: a restore, which the coordinator commits
    /// (any other node forwards it there, once). The copy is checked off the loop first.
    fn restore_request(&mut self, node: &mut Shared, now: Now, ticket: Ticket, request: &Request) -> Reply {
        if !node.is_active(Some(self)) {
            return Reply::Now(super::inactive());
        }
        if self.must_forward("copy", Method::Put) {
            return self.forward(node, now, ticket, request, true);
        }
        if node.decodes_in_flight >= DECODES_IN_FLIGHT_MAX {
            let busy = Response::error(503, "too many copies being checked; retry").with_header("Retry-After", "1");
            return Reply::Now(busy);
        }
        node.decode(Decoding::Restore { ticket, client: request.client }, request.body.to_vec());
        Reply::Later
    }

    /// The copy of a restore is checked: it is committed as a whole-store write, under the lock
    /// like any write (it waits for a transaction to end), if it is newer than the store then.
    fn restore_decoded(
        &mut self,
        node: &mut Shared,
        now: Now,
        ticket: Ticket,
        client: Option<std::net::SocketAddr>,
        result: Result<Sealed, DecodeError>,
    ) {
        let sealed = match result {
            Ok(sealed) => sealed,
            Err(e) => {
                warn!("refused a copy to restore: {e}");
                return node.answer(ticket, Response::error(400, &format!("copy refused: {e}")));
            }
        };
        if !self.consensus.is_coordinator() {
            node.store.retire(sealed);
            let why = "this node stopped coordinating while the copy was checked; nothing changed, retry";
            return node.answer(ticket, Response::error(503, why).with_header("Retry-After", "1"));
        }
        let body_len = sealed.body.len();
        let write = Write {
            edit: Edit::Restore(Box::new(sealed)),
            path: Vec::new(),
            name: "PUT /copy".into(),
            if_match: None,
            if_none_match: None,
            client,
            body_len,
            // Only a token without prefixes restores (`grant.rs`): nothing to narrow.
            grant: None,
        };
        if let Reply::Now(response) = node.write(Some(self), now, ticket, write) {
            node.answer(ticket, response);
        }
    }

    /// Coordinated mode: takes a committed store (pushed by the coordinator, or fetched from a
    /// peer that serves it) when it is newer than the one served. Committed versions form one
    /// chain, so a higher sequence is newer.
    ///
    /// A store that was never confirmed (the node started from a version it accepted) is replaced
    /// when the committed chain has another version at its sequence, or a version stamped in a
    /// later term: a coordinator of that term adopted the newest version its voters held, so a
    /// version it did not adopt was never committed and never will be. It is confirmed when the
    /// committed version is itself. Otherwise the node waits (serving nothing) rather than serve a
    /// version older than one it may have served before it stopped.
    fn take_committed(&mut self, node: &mut Shared, now: Now, sealed: Sealed) -> bool {
        if node.foreign(Some(self), &sealed).is_some() {
            node.store.retire(sealed);
            return false;
        }
        // A version committed in a later term proves that term began: a coordinator of an earlier
        // one steps down (else it could count, for its lease, voters that joined in that term).
        self.saw_term(node, now, sealed.copy.term());
        let confirmed = self.consensus.confirmed();
        let ours = Accepted::of(node.store.sealed());
        let theirs = sealed.copy.version;
        let newer = theirs.sequence > ours.version.sequence;
        let confirms = theirs == ours.version && !confirmed;
        let dead = !confirmed
            && theirs != ours.version
            && (theirs.sequence == ours.version.sequence || Accepted::of(&sealed).key() > ours.key());
        if !(newer || confirms || dead) {
            node.store.retire(sealed);
            return false;
        }
        info!("took committed sequence {} ({}) from a peer", theirs.sequence, theirs.checksum);
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.writing.is_none() && p.sealed.copy.version.sequence <= theirs.sequence)
        {
            self.drop_pending(node);
        }
        self.consensus.confirm();
        if confirmed {
            node.store.promote(sealed);
        } else {
            node.store.reset(sealed);
        }
        node.store_changed(Some(self));
        self.update_rank(node);
        node.metrics.copies_taken += 1;
        node.check_activation(now, Some(self));
        node.pump_disk(now, Some(self));
        node.push_to_older(Some(self), now);
        true
    }
}
