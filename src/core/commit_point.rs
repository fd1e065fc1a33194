//! The commit point: the newest version a node knows was committed, kept in `node.json`, and what
//! a node serves with it after a restart while it cannot reach a majority.
//!
//! A follower writes each version it accepts before the coordinator has committed it, so its
//! snapshot files say "not known to be committed"; it learns of the commit from the next beat. It
//! records that in `node.json` in the background, off the commit's path (the commit was answered
//! already): at once when the last write of it is `COMMIT_POINT_SAVE_MS` old, else when it is, so
//! under steady writes it costs one small write a second, not one per commit. At start the server
//! loads the file of that version as the store (and keeps the newer accepted one as pending, as
//! before the restart).
//!
//! A node restarted from a committed store serves reads at once, even while it has not heard from
//! a majority of its voters ("however long that takes" before): a configuration store keeps
//! serving its configuration. Until it has, those answers carry `X-Lighthouse-Unconfirmed` (it
//! cannot confirm that the version is the newest), `/ready` answers 503 and writes 503.

use super::consensus::Accepted;
use super::coordinated::Coordinated;
use super::{Activation, Effect, Shared, Ticket};
use crate::core::clock::{Deadline, Now};
use crate::core::jobs::{DiskError, Job};
use crate::http::Response;
use crate::limits::{COMMIT_POINT_SAVE_MS, INACTIVE_RETRY_AFTER_S};

/// The header on the reads of a node that cannot confirm its store is the newest committed.
pub const UNCONFIRMED: &str = "X-Lighthouse-Unconfirmed";

/// The writes of the commit point to `node.json`.
#[derive(Debug, Default)]
pub struct PointWrites {
    /// The job writing it, while one is out.
    saving: Option<u64>,
    /// The commit point the last write (successful or under way) carried.
    written: Option<Accepted>,
    /// The next write may start then.
    next_at: Deadline,
}

impl Coordinated {
    /// Notes the store as the commit point when it is known to be committed and newer than the
    /// one noted; `tick` writes it.
    pub(super) fn note_commit_point(&mut self, node: &mut Shared) {
        let sealed = node.store.sealed();
        if !self.consensus.confirmed() || sealed.copy.coordination.is_none() {
            return;
        }
        self.consensus.note_committed(Accepted::of(sealed));
    }

    /// Writes the commit point when it changed, no write of it is out, and the last is old enough.
    pub(super) fn save_commit_point(&mut self, node: &mut Shared, now: Now) {
        let state = self.consensus.state();
        let point = &mut self.point_writes;
        if point.saving.is_some() || point.written == state.committed || !point.next_at.fired(now) {
            return;
        }
        let id = node.ids.job(crate::core::jobs::Owner::CommitPoint);
        point.saving = Some(id.serial);
        point.written = state.committed;
        point.next_at = Deadline::after(now, COMMIT_POINT_SAVE_MS);
        let state = state.clone();
        node.effects.push(Effect::Job(Job::SaveState { id, state }));
    }

    /// True when `id` is a write of the commit point; its outcome is taken.
    pub(super) fn commit_point_saved(&mut self, id: u64, result: &Result<(), DiskError>) {
        let point = &mut self.point_writes;
        if point.saving != Some(id) {
            return;
        }
        point.saving = None;
        if let Err(e) = result {
            log::warn!("the commit point could not be written to node.json ({}); it is tried again", e.message);
            point.written = None;
        }
    }

    /// When the commit point is next written, if it waits.
    pub(super) fn next_commit_point_deadline(&self) -> Option<Deadline> {
        let point = &self.point_writes;
        (point.saving.is_none() && point.written != self.consensus.state().committed).then_some(point.next_at)
    }

    /// The node serves reads it cannot confirm: it started from a store it knows was committed
    /// and has not heard from a majority of its voters since, or has yet to reach the version it
    /// had accepted before it stopped (which it may have served: the commit point is written after).
    pub(super) fn serves_unconfirmed(&self, node: &Shared) -> bool {
        // A node removed from its cluster serves nothing at all (it says so instead).
        !self.is_removed(node)
            && self.consensus.confirmed()
            && (matches!(node.activation, Activation::Joining { .. }) || !self.settled(node))
            && node.store.sealed().copy.coordination.is_some()
    }

    /// The store is at least as new as the version accepted before a restart from the commit
    /// point (always, without such a restart).
    pub(super) fn settled(&self, node: &Shared) -> bool {
        let store = Accepted::of(node.store.sealed());
        self.consensus.accepted_at_start().is_none_or(|a| store.key() >= a.key())
    }
}

impl Shared {
    /// The node serves reads it cannot confirm (coordinated writes only, see `Coordinated::serves_unconfirmed`).
    pub(super) fn serves_unconfirmed(&self, co: Option<&Coordinated>) -> bool {
        co.is_some_and(|co| co.serves_unconfirmed(self))
    }

    /// A read's answer, marked when the node cannot confirm it serves the newest version.
    pub(super) fn mark_read(&self, co: Option<&Coordinated>, response: Response) -> Response {
        if !self.serves_unconfirmed(co) {
            return response;
        }
        let sequence = self.store.version().sequence;
        let why =
            format!("sequence {sequence} was committed; no majority of the voters reached since this node started");
        response.with_header(UNCONFIRMED, &why)
    }

    /// Answers a parked read, marked as `mark_read` says.
    pub(super) fn answer_read(&mut self, co: Option<&Coordinated>, ticket: Ticket, response: Response) {
        let response = self.mark_read(co, response);
        self.answer(ticket, response);
    }

    /// The 503 of a node that serves reads unconfirmed, to a write or `/ready`.
    pub(super) fn unconfirmed_refusal(&self) -> Response {
        let message = format!(
            "this node has not reached a majority of the voters since it started: it serves reads of sequence {} \
             (marked {UNCONFIRMED}) and takes no writes",
            self.store.version().sequence
        );
        Response::error(503, &message).with_header("Retry-After", &INACTIVE_RETRY_AFTER_S.to_string())
    }
}
