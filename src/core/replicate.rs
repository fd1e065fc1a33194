//! Making a version durable on a majority before it counts (coordinated mode).
//!
//! The coordinator seals a new version (a commit, the version it adopted at election, a change of
//! voters), writes it itself and, in parallel, pushes it to every other voter (`PUT
//! /cluster/accept`: as its change from the version before, or whole to a voter that lacks that
//! one). A voter acknowledges only once the version is on its disk. When a majority of the
//! version's voters hold it durably it is committed: the coordinator answers 200, serves it, and
//! its next beat (sent at once) tells every member to serve it too. A version that does not reach
//! a majority within `COMMIT_TIMEOUT_MS` plus the allowance for its size answers 504 (outcome
//! unknown) and stays pending: a later majority commits it, or a later coordinator adopts it or
//! replaces it. It is never answered 200 and lost later. Members that are behind get the
//! committed store pushed to them, whole.
//! A commit renders its copy body only for a voter that needs it whole (it lacks the change's base):
//! the seal sets it aside, a worker renders it (`Job::Render`) and the push goes out on its report.

use log::{debug, info, warn};

use super::consensus::Accepted;
use super::coordinated::{Content, Coordinated};
use super::lock::Lock;
use super::{Effect, Shared, Ticket, cluster::CallKind};
use crate::core::chain::Writing;
use crate::core::clock::{Deadline, Now};
use crate::core::jobs::{DiskError, Job, Owner};
use crate::core::messages::AcceptChange;
use crate::core::roster::Coordination;
use crate::core::sealed::Sealed;
use crate::core::version::Version;
use crate::http::{Bytes, Method, Response};
use crate::limits::{COMMIT_TIMEOUT_MS, commit_allowance_ms};

/// What a version being made durable is for.
#[derive(Debug)]
pub enum Purpose {
    /// The lock's commit; its answer goes to `ticket` (unless it was answered 504 already).
    Lock { ticket: Ticket, answered: bool },
    /// The newest version found at election, stamped with this coordinator's term.
    Adopt,
    /// A change of voters: `what` for the log, the request to answer if an operator asked.
    Membership { what: String, ticket: Option<Ticket> },
}

/// A version the coordinator is making durable on a majority.
#[derive(Debug)]
pub struct InCommit {
    purpose: Purpose,
    phase: Phase,
    /// Answered 504 past this: `COMMIT_TIMEOUT_MS` after the seal, plus the allowance for the
    /// size of the store (`limits::commit_allowance_ms`).
    deadline: Deadline,
    started: Now,
}

/// Where a version being made durable is.
#[derive(Debug)]
enum Phase {
    /// A worker seals it (or, when not `seal`, stamps it) as job `job`.
    Sealing { job: u64, seal: bool },
    /// Sealed: pushed to the other voters and written here.
    Replicating {
        sealed: Box<Sealed>,
        /// The coordinator's own write of it, while under way.
        own_write: Option<u64>,
        /// Members whose acknowledgment arrived (this node's own included once written).
        durable: Vec<String>,
        /// Members a push is out to.
        pushing: Vec<String>,
        /// Voters that could not take the version as its change (they lack its base): they get it
        /// whole.
        whole: Vec<String>,
        /// The worker rendering the version's body for `whole`, as job `render`.
        render: Option<u64>,
        /// Voters one commit further behind, sent the store's change and this one's at once.
        bridged: Vec<String>,
    },
}

impl InCommit {
    /// When its lock commit is answered 504 if no majority holds it by then; none while it is
    /// sealed (`expire_commit`).
    pub(super) fn deadline(&self) -> Option<Deadline> {
        (!matches!(self.phase, Phase::Sealing { .. })).then_some(self.deadline)
    }

    /// The version, once sealed, and the members that hold it durably (`/cluster/status`).
    pub(super) fn progress(&self) -> (Option<Version>, Vec<String>) {
        match &self.phase {
            Phase::Sealing { .. } => (None, Vec::new()),
            Phase::Replicating { sealed, durable, .. } => (Some(sealed.copy.version), durable.clone()),
        }
    }

    /// The version, once sealed.
    fn sealed(&self) -> Option<&Sealed> {
        match &self.phase {
            Phase::Sealing { .. } => None,
            Phase::Replicating { sealed, .. } => Some(sealed),
        }
    }
}

impl Coordinated {
    /// True when this node's writes are coordinated and it has voters other than itself: a commit
    /// is then durable only on a majority.
    fn single_voter(&self, coordination: &Coordination) -> bool {
        let me = &self.consensus.state().id;
        coordination.voters.len() == 1 && coordination.is_voter(me)
    }

    /// Starts making a new version durable: seals it from `root` (or stamps `base` in this term).
    pub(super) fn replicate(&mut self, node: &mut Shared, now: Now, purpose: Purpose, content: Content) {
        let consensus = &self.consensus;
        let term = consensus.state().term;
        let id = node.ids.job(Owner::Commit);
        let mut json = node.node_json(self.consensus.confirmed());
        let mut single = false;
        let job = match content {
            Content::New { root, coordination } => {
                let coordination = coordination.in_term(term);
                single = self.single_voter(&coordination);
                json.committed = single;
                Job::Seal {
                    id,
                    sequence: node.next_sequence(node.store.version().sequence),
                    root,
                    parent: node.store.lineage().clone(),
                    before: Some((node.store.version(), node.store.root().clone())),
                    node: json,
                    coordination: Some(Box::new(coordination)),
                    write: single,
                    // Pushed to the voters (or to peers): the body is rendered with the seal only
                    // if the change cannot go instead.
                    body_needed: !single || !node.cluster.peers.is_empty(),
                }
            }
            Content::Stamp { base, coordination } => {
                Job::Restamp { id, sealed: base, coordination: Box::new(coordination.in_term(term)) }
            }
        };
        let phase = Phase::Sealing { job: id.serial, seal: matches!(job, Job::Seal { .. }) };
        node.effects.push(Effect::Job(job));
        // A single voter is its own majority: its commit ends with its own write, done or refused
        // by the disk, however long a large store takes; there is nobody else to wait for, so
        // no outcome is unknown.
        let timeout_ms = COMMIT_TIMEOUT_MS + commit_allowance_ms(node.store.data_len() as u64);
        let deadline = if single { Deadline(u64::MAX) } else { Deadline::after(now, timeout_ms) };
        self.commit = Some(InCommit { purpose, phase, deadline, started: now });
    }

    /// A seal (or stamp) of a version this node makes durable; one it stopped making durable (it
    /// stepped down) is dropped.
    pub(super) fn commit_sealed(
        &mut self,
        node: &mut Shared,
        now: Now,
        serial: u64,
        sealed: Sealed,
        file: Result<Option<std::path::PathBuf>, DiskError>,
        elapsed_us: u64,
    ) {
        let Some(InCommit { phase: Phase::Sealing { job, seal }, .. }) = self.commit else { return };
        if job == serial {
            // A seal that rendered the store (a full snapshot, or a change too large to go).
            node.metrics.bodies_rendered += u64::from(seal && !sealed.body.is_empty());
            node.count_write(&file, elapsed_us);
            self.replicate_sealed(node, now, sealed, file);
        }
    }

    /// The coordinator's own write of a version it makes durable (or made, before it stepped down).
    pub(super) fn commit_written(
        &mut self,
        node: &mut Shared,
        now: Now,
        serial: u64,
        file: Result<Option<std::path::PathBuf>, DiskError>,
        elapsed_us: u64,
    ) {
        node.count_write(&file, elapsed_us);
        let own_write =
            |c: &InCommit| matches!(c.phase, Phase::Replicating { own_write: Some(job), .. } if job == serial);
        if self.commit.as_ref().is_some_and(own_write) {
            self.replicate_written(node, now, file);
        }
    }

    /// The worker sealed (or stamped) the version being made durable.
    fn replicate_sealed(
        &mut self,
        node: &mut Shared,
        now: Now,
        sealed: Sealed,
        file: Result<Option<std::path::PathBuf>, DiskError>,
    ) {
        let coordination = sealed.copy.coordination.clone().expect("a coordinated version");
        let me = self.consensus.state().id.clone();
        let written = match file {
            Err(e) => return self.replicate_failed(node, now, e),
            // A single voter wrote it already, committed; else it is written beside the pushes.
            Ok(file) => file.is_some() || (self.single_voter(&coordination) && !node.config.durable),
        };
        let (durable, own_write) = if written {
            (vec![me.clone()], None)
        } else {
            let id = node.ids.job(Owner::Commit);
            let mut json = node.node_json(self.consensus.confirmed());
            // The only voter's own copy is a majority: the version is committed once written.
            json.committed = self.single_voter(&coordination);
            let job = Job::Write { id, sealed: Box::new(sealed.clone()), node: json, writing: Writing::AsRuled };
            node.effects.push(Effect::Job(job));
            (Vec::new(), Some(id.serial))
        };
        let commit = self.commit.as_mut().expect("a version in flight");
        // The wait for a majority starts now that the version exists, and its own size is known:
        // a large one is given the time it takes.
        let timeout_ms = COMMIT_TIMEOUT_MS + commit_allowance_ms(sealed.data_len as u64);
        commit.deadline = commit.deadline.max(Deadline::after(now, timeout_ms));
        let (pushing, whole, render, bridged) = (Vec::new(), Vec::new(), None, Vec::new());
        let sealed_box = Box::new(sealed.clone());
        commit.phase = Phase::Replicating { sealed: sealed_box, own_write, durable, pushing, whole, render, bridged };
        self.hold_pending(sealed, None);
        for voter in coordination.voters.iter().filter(|m| m.id != me) {
            self.push_accept(node, &voter.id.clone(), &voter.address.clone());
        }
        self.check_commit(node, now);
    }

    /// Pushes the version in flight to one voter: as its change when it has one smaller than the
    /// store (`messages::AcceptChange`), unless the voter said it lacks the base; else whole, once
    /// a worker has rendered the body set aside at the seal (`commit_rendered` pushes then).
    fn push_accept(&mut self, node: &mut Shared, id: &str, address: &str) {
        let Some(InCommit { phase: Phase::Replicating { sealed, durable, pushing, whole, render, .. }, .. }) =
            &mut self.commit
        else {
            return;
        };
        if durable.iter().any(|d| d == id) || pushing.iter().any(|p| p == id) {
            return;
        }
        let version = sealed.copy.version;
        let change = sealed.change.as_ref().filter(|c| c.len() < sealed.data_len && !whole.iter().any(|w| w == id));
        if let Some(change) = change {
            pushing.push(id.to_string());
            let body = AcceptChange::encode(change, sealed.copy.coordination.as_ref(), &sealed.copy.lineage);
            node.metrics.changes_pushed += 1;
            node.call(address, CallKind::AcceptChange(version), Method::Put, "/cluster/accept", Bytes::Owned(body));
            return;
        }
        if sealed.body.is_empty() {
            // Rendering a large store would stall the loop: a worker renders it once, for every
            // voter that needs it whole.
            if !whole.iter().any(|w| w == id) {
                whole.push(id.to_string());
            }
            if render.is_none() {
                let job = node.ids.job(Owner::Commit);
                *render = Some(job.serial);
                let copy = Box::new(sealed.copy.clone());
                node.effects.push(Effect::Job(Job::Render { id: job, copy }));
            }
            return;
        }
        pushing.push(id.to_string());
        let body = Bytes::Shared(sealed.body.clone());
        node.call(address, CallKind::Accept(version), Method::Put, "/cluster/accept", body);
    }

    /// A worker rendered the body of a version this node makes durable: the voters that need it
    /// whole get it now. A render for a commit that ended meanwhile (committed without them,
    /// failed, or this node stepped down) is dropped.
    pub(super) fn commit_rendered(&mut self, node: &mut Shared, serial: u64, body: std::sync::Arc<[u8]>, len: usize) {
        let Some(InCommit { phase: Phase::Replicating { sealed, whole, render, .. }, .. }) = &mut self.commit else {
            return;
        };
        if *render != Some(serial) {
            return;
        }
        node.metrics.bodies_rendered += 1;
        *render = None;
        (sealed.body, sealed.data_len) = (body, len);
        let (coordination, whole) = (sealed.copy.coordination.clone().expect("a coordinated version"), whole.clone());
        for voter in coordination.voters.iter().filter(|v| whole.contains(&v.id)) {
            self.push_accept(node, &voter.id, &voter.address);
        }
    }

    /// The coordinator's own write of the version in flight is done (or failed).
    fn replicate_written(&mut self, node: &mut Shared, now: Now, file: Result<Option<std::path::PathBuf>, DiskError>) {
        let me = self.consensus.state().id.clone();
        let Some(InCommit { phase: Phase::Replicating { own_write, durable, .. }, .. }) = &mut self.commit else {
            unreachable!("the coordinator's own write is of a sealed version in flight");
        };
        *own_write = None;
        match file {
            Ok(_) => {
                durable.push(me);
                self.check_commit(node, now);
            }
            // The voters may hold the version already, and may yet commit it under the next
            // coordinator: this node can neither abandon it nor make another version of this
            // term at its sequence. It stops coordinating; the commit's outcome is unknown.
            Err(e) => {
                // Not durable here: not accepted here.
                self.drop_pending(node);
                self.resign(
                    node,
                    now,
                    &format!("the version being committed could not be written here: {}", e.message),
                );
            }
        }
    }

    /// The version could not be written here: nothing is committed (the lock stays held).
    fn replicate_failed(&mut self, node: &mut Shared, now: Now, e: DiskError) {
        let commit = self.commit.take().expect("a version in flight");
        warn!("the version being committed could not be written here: {}", e.message);
        self.drop_pending(node);
        if let Purpose::Lock { answered, .. } = commit.purpose
            && node.lock.is_some()
        {
            // Open again (its lease runs), even when its client already has a 504.
            node.commit_failed(now, &e, answered);
        }
        self.start_lock_commit(node, now);
    }

    /// A voter's answer to a push of the version in flight.
    pub(super) fn accept_reply(
        &mut self,
        node: &mut Shared,
        now: Now,
        address: &str,
        (version, as_change): (Version, bool),
        status: u16,
        body: &[u8],
    ) {
        let Some(id) = self.members(node).into_iter().find(|(_, a)| a == address).map(|(id, _)| id) else { return };
        // Whatever the answer (none, when the push was lost), the push is over: the next beat's
        // answer may start another.
        if let Some(InCommit { phase: Phase::Replicating { pushing, .. }, .. }) = &mut self.commit {
            pushing.retain(|p| *p != id);
        }
        let reply = crate::core::messages::AcceptAnswer::decode(body);
        let term = reply.term;
        if self.saw_term(node, now, term) {
            return;
        }
        let Some(InCommit { phase: Phase::Replicating { sealed, durable, .. }, .. }) = &mut self.commit else {
            return;
        };
        let ours = Accepted::of(sealed);
        let theirs = reply.accepted;
        if status == 201 && ours.version == version && Some(ours) == theirs {
            if !durable.contains(&id) {
                durable.push(id);
            }
            self.check_commit(node, now);
        } else if as_change && ours.version == version && (reply.need.as_deref() == Some("copy") || status == 400) {
            node.metrics.changes_refused += 1;
            let holds = theirs.filter(|_| status == 409).map(|a| a.version);
            if self.push_bridge(node, &id, address, holds) {
                return;
            }
            // The voter lacks the base, or could not make the version from it (its checksum did
            // not match, or it reads only whole copies): it gets the version whole.
            debug!("voter {address} could not take sequence {} as its change: sending it whole", version.sequence);
            let Some(InCommit { phase: Phase::Replicating { whole, .. }, .. }) = &mut self.commit else { return };
            whole.push(id.clone());
            self.push_accept(node, &id, address);
        }
    }

    /// A voter that lacks the base of the version in flight but holds the store's own base (it
    /// missed one commit) gets the two changes at once, once; true when they went.
    fn push_bridge(&mut self, node: &mut Shared, id: &str, address: &str, holds: Option<Version>) -> bool {
        let Some(InCommit { phase: Phase::Replicating { sealed, pushing, bridged, .. }, .. }) = &mut self.commit else {
            return false;
        };
        let before = node.store.sealed().change.as_ref().filter(|c| Some(c.base) == holds);
        let change = before.zip(sealed.change.as_ref()).and_then(|(before, change)| before.then(change));
        let Some(change) = change.filter(|c| c.len() < sealed.data_len && !bridged.iter().any(|b| b == id)) else {
            return false;
        };
        debug!("voter {address} holds sequence {}: sending it the changes since", change.base.sequence);
        bridged.push(id.to_string());
        pushing.push(id.to_string());
        let body = AcceptChange::encode(&change, sealed.copy.coordination.as_ref(), &sealed.copy.lineage);
        node.metrics.changes_pushed += 1;
        let kind = CallKind::AcceptChange(sealed.copy.version);
        node.call(address, kind, Method::Put, "/cluster/accept", Bytes::Owned(body));
        true
    }

    /// Commits the version in flight once a majority of its voters hold it durably.
    fn check_commit(&mut self, node: &mut Shared, now: Now) {
        let Some(InCommit { phase: Phase::Replicating { sealed, durable, .. }, .. }) = &self.commit else { return };
        let coordination = sealed.copy.coordination.as_ref().expect("a coordinated version");
        let durable = durable.iter().filter(|id| coordination.is_voter(id)).count();
        if durable < coordination.majority() {
            return;
        }
        let commit = self.commit.take().expect("checked above");
        let Phase::Replicating { sealed, .. } = commit.phase else { unreachable!("checked above") };
        let sealed = *sealed;
        let version = sealed.copy.version;
        // A change of voters keeps the data: a transaction that started on the version before goes
        // on from this one.
        let before = node.store.version();
        if let (Purpose::Membership { .. }, Some(lock)) = (&commit.purpose, &mut node.lock) {
            lock.restamped(before, version);
        }
        self.drop_pending(node);
        node.disk.wrote(version, node.cluster.stamp);
        if self.consensus.confirmed() {
            node.store.promote(sealed);
        } else {
            // Elected on a store loaded unconfirmed: the version it adopted replaces it, even at
            // a lower sequence (the store was one no majority held).
            node.store.reset(sealed);
        }
        node.store_changed(Some(self));
        let consensus = &mut self.consensus;
        consensus.confirm();
        match commit.purpose {
            Purpose::Lock { ticket, answered } => node.lock_committed(now, ticket, answered, version),
            Purpose::Adopt => {
                info!(
                    "term {}: sequence {} is durable on a majority; writes are open",
                    consensus.state().term,
                    version.sequence
                );
                consensus.adopted();
            }
            Purpose::Membership { what, ticket } => {
                info!("{what}: committed as sequence {}", version.sequence);
                if let Some(ticket) = ticket {
                    node.answer(ticket, Response::json(200, version.to_pretty_line().into_bytes()));
                }
            }
        }
        node.check_activation(now, Some(self));
        self.leave_if_no_voter(node, now);
        self.after_commit(node, now);
    }

    /// Starts the lock's commit, once nothing else is in flight (a change of voters may be).
    pub(super) fn start_lock_commit(&mut self, node: &mut Shared, now: Now) {
        if self.commit.is_some() {
            return;
        }
        let Some(lock) = &node.lock else { return };
        let Some(ticket) = lock.waiting_commit() else { return };
        let root = lock.staged().clone();
        let restore = lock.one_request().and_then(|o| o.restore.clone());
        let coordination = self.coordination(node).expect("a coordinator has a coordination");
        let content = match restore {
            None => Content::New { root, coordination },
            // A change of voters committed while the restore waited its turn: the copy is no
            // longer newer than the store, and is ignored.
            Some(copy) if copy.copy.version.sequence <= node.store.version().sequence => {
                let lock = node.release_if(|_| true).expect("checked above");
                info!("PUT /copy of sequence {} ignored: the store is newer now", copy.copy.version.sequence);
                node.store.retire(*copy);
                if let Some(sealed) = lock.into_restore() {
                    node.store.retire(*sealed);
                }
                let version = node.store.version();
                node.answer(ticket, Response::json(201, version.to_pretty_line().into_bytes()));
                return;
            }
            // The copy's data at the copy's sequence, stamped with this cluster's voters in this
            // term: its lineage and checksum stay the copy's.
            Some(copy) => Content::Stamp { base: copy, coordination },
        };
        self.replicate(node, now, Purpose::Lock { ticket, answered: false }, content);
        let Some(InCommit { phase: Phase::Sealing { job, .. }, .. }) = self.commit else {
            unreachable!("a version in flight is sealed first");
        };
        node.lock.as_mut().expect("checked above").commit_running(job);
    }

    /// After a commit: tell every member at once, start a lock commit that waited, and see whether
    /// the voters should change.
    fn after_commit(&mut self, node: &mut Shared, now: Now) {
        self.start_lock_commit(node, now);
        self.consensus.beat_at(Deadline(now.mono_ms));
        self.tick_consensus(node, now);
        self.consider_membership(node, now);
    }

    /// Answers 504 to a lock commit that has not reached a majority in time; the lock is free, and
    /// the version may still land.
    pub(super) fn expire_commit(&mut self, node: &mut Shared, now: Now) {
        let Some(commit) = &mut self.commit else { return };
        // Sealing is this node's own work, and no voter has been asked yet: the wait for a
        // majority starts when the version is sealed (`replicate_sealed`), however long a large
        // store took (a 30 MB `PUT` whose seal took over 1.5 s on a busy machine answered 504).
        if !commit.deadline.fired(now) || matches!(commit.phase, Phase::Sealing { .. }) {
            return;
        }
        commit.deadline = Deadline(u64::MAX);
        match &mut commit.purpose {
            Purpose::Lock { ticket, answered } if !*answered => {
                *answered = true;
                let ticket = *ticket;
                let name = node.lock.as_ref().map(|l| l.name().to_string()).unwrap_or_default();
                let waited = now.mono_ms.saturating_sub(commit.started.mono_ms);
                warn!("the commit of lock {name} is not durable on a majority after {waited} ms: answered 504");
                node.answer(ticket, super::write::outcome_unknown(node.lock.as_ref()));
            }
            Purpose::Membership { what, ticket } => {
                let waited = now.mono_ms.saturating_sub(commit.started.mono_ms);
                let what = format!("{what}: not durable on a majority of voters after {waited} ms");
                warn!("{what}");
                if let Some(ticket) = ticket.take() {
                    node.answer(ticket, Response::outcome_unknown(&format!("{what}; it may land or not")));
                }
                node.refuse_waiting_commit(&what);
            }
            _ => {}
        }
    }

    /// This node stops coordinating: a commit in flight ends here, its outcome unknown.
    pub(super) fn step_down_commit(&mut self, node: &mut Shared) {
        node.refuse_waiting_commit("this node stopped coordinating");
        let Some(commit) = self.commit.take() else { return };
        if let Purpose::Lock { ticket, answered: false } = commit.purpose {
            node.answer(ticket, super::write::outcome_unknown(node.lock.as_ref()));
        }
        if let Purpose::Membership { ticket: Some(ticket), what } = commit.purpose {
            node.answer(ticket, Response::error(503, &format!("{what}: this node stopped coordinating; retry")));
        }
        node.release_if(Lock::is_committing);
    }

    /// The coordinator hears what a member holds: a voter that lacks the version in flight gets it
    /// again, a member whose committed store is behind gets the committed store (once this node's
    /// store is known to be committed).
    pub(super) fn member_holds(
        &mut self,
        node: &mut Shared,
        _now: Now,
        id: &str,
        address: &str,
        accepted: Option<Accepted>,
        committed: Option<Accepted>,
    ) {
        let sealed = self.commit.as_ref().and_then(InCommit::sealed);
        let in_flight = sealed.map(Accepted::of);
        if sealed.is_some_and(|s| s.copy.coordination.as_ref().is_some_and(|c| c.is_voter(id))) {
            self.push_accept(node, id, address);
        }
        let ours = node.store.version();
        // A voter that holds this very version or the one in flight, or has a push of a version
        // still to answer (it is about to hold it), learns from a beat that it is committed.
        let pushed = |(_, to, kind): &(u64, String, CallKind)| {
            to == address && matches!(kind, CallKind::Accept(_) | CallKind::AcceptChange(_))
        };
        let holds_ours = accepted == Some(Accepted::of(node.store.sealed()))
            || (accepted.is_some() && accepted == in_flight)
            || node.cluster.calls.iter().any(pushed);
        let behind = !holds_ours
            && committed.is_none_or(|c| {
                c.version.sequence < ours.sequence || (c.version != ours && c.version.sequence == ours.sequence)
            });
        // Only a store known to be committed is pushed: a coordinator elected on a store it
        // loaded unconfirmed has yet to make its adopted version durable on a majority.
        if behind
            && self.consensus.confirmed()
            && let Some(peer) = node.cluster.find_mut(address)
            && peer.pushing.is_none()
        {
            peer.pushing = Some(ours);
            // One commit behind (a push lost; a learner), in its store or pending: the change.
            let base = node.store.sealed().change.as_ref().map(|c| c.base);
            let theirs = accepted.map(|a| a.version).filter(|v| Some(*v) == base).or(committed.map(|c| c.version));
            node.push_copy(address, theirs);
        }
    }

    /// Drops the lock when this node can no longer grant it: its holder's next request answers
    /// that it is gone, and why.
    pub(super) fn drop_lock_for(&mut self, node: &mut Shared, why: &str) {
        node.refuse_waiting_commit(why);
        if let Some(lock) = node.release_if(|l| !l.is_committing()) {
            warn!(
                "lock {} dropped{}: {why}; {} dropped",
                lock.name(),
                super::transaction::from(lock.client()),
                super::transaction::changes(lock.changes())
            );
            self.dropped_lock = Some((lock.name().to_string(), why.to_string()));
        }
    }
}
