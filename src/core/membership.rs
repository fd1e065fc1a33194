//! Who votes: voters change only through a commit, one at a time, made by the coordinator.
//!
//! A node that joins with `--seeds` is a learner: it receives the committed store and beats but
//! does not vote. Once it holds the committed version, the coordinator promotes it by a commit, on
//! its own. A node that comes back with an empty data directory has a new id, so it returns as a
//! learner; if its address is a voter's, the coordinator first removes that voter (the old node
//! cannot be running where the new one is). `DELETE /state/ADDRESS` (the cluster key) removes a
//! voter (or a learner) by a commit, and refuses (409) a removal after which the voters left could
//! not commit: none left, or fewer of them answering the coordinator than make their majority.
//! The coordinator may remove itself: the new voters' majority commits it (as in Raft), then it
//! says so in a last beat and stops coordinating, and the voters elect another at once. A node that
//! holds its own removal, not known committed (a coordinator restarted before it learned the
//! outcome), still stands, with the votes of the new voters only, until it commits it
//! (`Coordinated::may_stand`). Removed ids are remembered in the configuration and never promoted
//! again; every node drops them from its table (`cluster.rs`), and a removed node serves nothing
//! (503 saying why) and never votes or stands, even when restarted on its old data directory.

use log::{debug, info, warn};

use super::consensus::Role;
use super::coordinated::{Content, Coordinated};
use super::replicate::Purpose;
use super::{Reply, Shared, Ticket};
use crate::core::clock::{Deadline, Now};
use crate::core::cluster::Peer;
use crate::core::roster::{Coordination, Member, valid_id};
use crate::http::Response;
use crate::limits::{COORDINATOR_LEASE_MS, ELECTION_TIMEOUT_MS, REMOVED_MEMBERS_MAX};

impl Coordinated {
    /// A coordinator with nothing in flight looks for a change of voters to make.
    pub(super) fn consider_membership(&mut self, node: &mut Shared, now: Now) {
        let consensus = &self.consensus;
        if !consensus.has_lease(now) || self.commit.is_some() || node.lock.is_some() {
            return;
        }
        let Some(coordination) = self.coordination(node) else { return };
        let me = consensus.state().id.clone();
        // A learner that answers beats promises like a voter: promoting it keeps the lease.
        let beaten: Vec<String> = match consensus.role() {
            super::consensus::Role::Coordinator(leading) => leading.acks.iter().map(|(id, _)| id.clone()).collect(),
            _ => Vec::new(),
        };
        let learners: Vec<(String, String, bool)> = node
            .cluster
            .peers
            .iter()
            .filter_map(|p| {
                let id = p.id.clone()?;
                let caught_up = p.reachable && p.version == Some(node.store.version()) && beaten.contains(&id);
                Some((id, p.address.clone(), caught_up))
            })
            .filter(|(id, _, _)| !coordination.is_voter(id) && !coordination.removed.contains(id) && *id != me)
            .collect();
        for (id, address, _) in &learners {
            if let Some(old) = coordination.voters.iter().find(|v| v.address == *address && v.id != *id && v.id != me) {
                // The old voter goes first, and only when the voters left can commit; until then
                // the new node is not promoted either (two voters at one address).
                if let Some(why) = self.removal_refused(now, &coordination, old) {
                    debug!("not replacing voter {address} yet: {why}");
                    return;
                }
                let what = format!("replacing voter {address} ({}): a new node ({id}) answers at its address", old.id);
                let next = coordination.removing(&old.id, 0);
                self.change_voters(node, now, what, next);
                return;
            }
        }
        if let Some((id, address, _)) = learners.into_iter().find(|(_, _, caught_up)| *caught_up) {
            let what = format!("promoting learner {address} ({id}) to voter");
            info!("{what}");
            let next = coordination.adding(Member { id, address }, 0);
            self.change_voters(node, now, what, next);
        }
    }

    /// Commits the store as it is with the voters `next`, on the coordinator's own initiative
    /// (`what` says why, for the log).
    fn change_voters(&mut self, node: &mut Shared, now: Now, what: String, next: Coordination) {
        let root = node.store.root().clone();
        let content = Content::New { root, coordination: next };
        self.replicate(node, now, Purpose::Membership { what, ticket: None }, content);
    }

    /// `DELETE /state/ADDRESS` at the coordinator: removes that voter (or learner) by a commit,
    /// unless the voters left could not commit.
    pub(super) fn remove_voter(&mut self, node: &mut Shared, now: Now, ticket: Ticket, address: &str) -> Reply {
        let Some(coordination) = self.coordination(node) else {
            return Reply::Now(Response::error(404, "this node is not in a cluster with coordinated writes"));
        };
        let Some(target) = self.removable(node, &coordination, address) else {
            let voters: Vec<&str> = coordination.voters.iter().map(|v| v.address.as_str()).collect();
            let message =
                format!("{address} is neither a voter nor a learner of this cluster (voters: {})", voters.join(", "));
            return Reply::Now(Response::error(404, &message));
        };
        if !self.consensus.has_lease(now) {
            return Reply::Now(self.no_majority(node, now));
        }
        if let Some(why) = self.removal_refused(now, &coordination, &target) {
            warn!("refused to remove {address}: {why}");
            return Reply::Now(Response::error(409, &why));
        }
        let busy = match (&self.commit, &node.lock) {
            (Some(_), _) => Some("another change is being committed".to_string()),
            (None, Some(lock)) => Some(format!("the lock is held by {}", lock.name())),
            (None, None) => None,
        };
        if let Some(why) = busy {
            return Reply::Now(Response::error(409, &format!("{why}; retry")).with_header("Retry-After", "1"));
        }
        let what = match coordination.is_voter(&target.id) {
            true => format!("removing voter {address} ({})", target.id),
            false => format!("removing learner {address} ({})", target.id),
        };
        info!("{what}");
        let next = coordination.removing(&target.id, 0);
        let root = node.store.root().clone();
        self.replicate(
            node,
            now,
            Purpose::Membership { what, ticket: Some(ticket) },
            Content::New { root, coordination: next },
        );
        Reply::Later
    }

    /// The member at `address` an operator may remove: a voter, or a learner in this node's table
    /// (removing it keeps it from ever being promoted, and takes it out of every table).
    fn removable(&self, node: &Shared, coordination: &Coordination, address: &str) -> Option<Member> {
        if let Some(voter) = coordination.voters.iter().find(|v| v.address == address) {
            return Some(voter.clone());
        }
        let peer = node.cluster.peers.iter().find(|p| p.address == address)?;
        let id = peer.id.clone().filter(|id| !coordination.removed.contains(id))?;
        Some(Member { id, address: address.to_string() })
    }

    /// Why removing `target` would leave the cluster unable to commit, if it would: no voter left,
    /// or fewer of the voters left answer this coordinator than make their majority.
    fn removal_refused(&self, now: Now, coordination: &Coordination, target: &Member) -> Option<String> {
        if !coordination.is_voter(&target.id) {
            return None;
        }
        let address = &target.address;
        let left = coordination.removing(&target.id, 0);
        if left.voters.is_empty() {
            return Some(format!(
                "{address} is the only voter: removing it would leave no node able to commit; add a node first (start \
                 one with --seeds naming a member), then remove this one"
            ));
        }
        let (answering, silent): (Vec<&Member>, Vec<&Member>) =
            left.voters.iter().partition(|v| self.answers_beats(now, &v.id));
        if answering.len() >= left.majority() {
            return None;
        }
        let silent: Vec<&str> = silent.iter().map(|v| v.address.as_str()).collect();
        Some(format!(
            "removing {address} would leave {} voters of which {} answer the coordinator, and {} must answer to \
             commit; bring back or remove {} first",
            left.voters.len(),
            answering.len(),
            left.majority(),
            silent.join(", ")
        ))
    }

    /// True for this node, and for a member that acknowledged one of its beats within the last
    /// `COORDINATOR_LEASE_MS`, as `no_majority` counts them (a working voter answers every
    /// `BEAT_MS`).
    fn answers_beats(&self, now: Now, id: &str) -> bool {
        let consensus = &self.consensus;
        if consensus.state().id == id {
            return true;
        }
        let Role::Coordinator(leading) = consensus.role() else { return false };
        leading.acks.iter().any(|(member, sent)| member == id && sent + COORDINATOR_LEASE_MS > now.mono_ms)
    }

    /// The coordinator committed a set of voters without itself: it says so in one last beat (the
    /// voters serve the commit and elect another coordinator at once) and stops coordinating.
    pub(super) fn leave_if_no_voter(&mut self, node: &mut Shared, now: Now) {
        let consensus = &self.consensus;
        let committed = node.store.sealed().copy.coordination.as_ref();
        if !consensus.is_coordinator() || committed.is_none_or(|c| c.is_voter(&consensus.state().id)) {
            return;
        }
        self.beat(node, now);
        let consensus = &mut self.consensus;
        warn!(
            "this node is no longer a voter: it stops coordinating term {}; the voters elect another coordinator",
            consensus.state().term
        );
        consensus.step_down(Deadline::after(now, ELECTION_TIMEOUT_MS));
        self.drop_lock_for(node, "this node was removed from the voters");
    }

    /// This node's id is among the removed ones of the committed version: it never votes, stands
    /// or serves again (a node started with an empty data directory is a new node, and may join).
    pub(super) fn is_removed(&self, node: &Shared) -> bool {
        let consensus = &self.consensus;
        let committed = node.store.sealed().copy.coordination.as_ref();
        committed.is_some_and(|c| c.removed.contains(&consensus.state().id))
    }

    /// What a removed node answers on `/data`, `/lock`, `/update` and `/ready`.
    pub(super) fn removed_answer(&self, node: &Shared) -> Response {
        let id = self.consensus.state().id.as_str();
        Response::error(
            503,
            &format!(
                "this node ({id}) was removed from its cluster (DELETE /state/{}): it serves nothing; stop it, or \
                 start it with an empty data directory and --seeds to join as a new node",
                node.config.address
            ),
        )
    }
}

/// Members removed from the cluster that this node dropped from its table, as (address, id),
/// newest last (at most `REMOVED_MEMBERS_MAX`): gossip naming the address does not bring them back;
/// a node announcing itself there with another id (a replacement) does.
#[derive(Debug, Default)]
pub struct Departures {
    departed: Vec<(String, String)>,
    /// This node found itself removed from the cluster, and said so.
    left: bool,
}

impl Departures {
    /// The member at `address` is welcome again (a new node there, not the one removed).
    fn forget(&mut self, address: &str) {
        self.departed.retain(|(a, _)| a != address);
    }

    /// The member `id` at `address` was removed: the newest `REMOVED_MEMBERS_MAX` are kept.
    fn record(&mut self, address: String, id: String) {
        self.forget(&address);
        if self.departed.len() >= REMOVED_MEMBERS_MAX {
            self.departed.remove(0);
        }
        self.departed.push((address, id));
    }

    /// This node found itself removed; true if it knew already.
    fn leave(&mut self) -> bool {
        std::mem::replace(&mut self.left, true)
    }
}

/// The peer table and removed members: a removed member leaves every table and stays out.
impl Shared {
    /// True when the member at `address` was removed: gossip naming it does not add it again.
    pub(super) fn departed(&self, address: &str) -> bool {
        let departed = self.cluster.departures.departed.iter().any(|(a, _)| a == address);
        if departed {
            debug!("not adding {address}: the member there was removed from the cluster");
        }
        departed
    }

    /// The answer of a node that does not serve: removed from its cluster, or not caught up yet
    /// (with coordinated writes, and why: what `report_joining` logs).
    pub(super) fn inactive(&self, co: Option<&Coordinated>) -> Response {
        match co {
            Some(co) if co.is_removed(self) => co.removed_answer(self),
            Some(co) => super::inactive_because(&co.joining_why(self, self.clock.now)),
            None => super::inactive(),
        }
    }

    /// A node announcing itself (`PUT /state`, the sender first, with its id) joins the table,
    /// unless its id was removed from the cluster; a new id at a removed member's address is a
    /// new node (a replacement), welcome.
    pub(super) fn learn_sender(&mut self, co: Option<&Coordinated>, address: &str, id: Option<&str>, now: Now) {
        let Some(id) = id.filter(|id| valid_id(id)) else { return self.learn(address, now) };
        if self.removed_ids(co).iter().any(|r| r == id) {
            return;
        }
        self.cluster.departures.forget(address);
        self.learn(address, now);
        if let Some(peer) = self.cluster.find_mut(address) {
            peer.id = Some(id.to_string());
        }
    }

    /// The ids the committed version lists as removed (none with local writes).
    fn removed_ids(&self, co: Option<&Coordinated>) -> Vec<String> {
        let committed = self.store.sealed().copy.coordination.as_ref().filter(|_| co.is_some());
        committed.map(|c| c.removed.clone()).unwrap_or_default()
    }

    /// Before each sync round: true when this node itself was removed (it syncs with nobody any
    /// more); else drops from the table every peer whose id the committed version lists as
    /// removed: nothing syncs with it, beats it or pushes to it any more, and gossip does not
    /// bring it back (nor does the table of an older snapshot, loaded at start).
    pub(super) fn forget_removed(&mut self, co: Option<&Coordinated>) -> bool {
        if let Some(co) = co.filter(|co| co.is_removed(self)) {
            self.note_removed(co);
            return true;
        }
        let removed = self.removed_ids(co);
        if removed.is_empty() {
            return false;
        }
        let gone = |p: &Peer| p.id.as_ref().is_some_and(|id| removed.contains(id));
        let departed: Vec<(String, String)> = self
            .cluster
            .peers
            .iter()
            .filter(|p| gone(p))
            .map(|p| (p.address.clone(), p.id.clone().expect("filtered above")))
            .collect();
        if departed.is_empty() {
            return false;
        }
        for (address, id) in departed {
            info!("peer {address} ({id}) was removed from the cluster: dropping it from the table");
            self.cluster.departures.record(address, id);
        }
        self.cluster.drop_peers(gone);
        false
    }

    /// Says once that this node was removed (its id is on disk since it started, so a restart on
    /// this data directory finds it removed again).
    fn note_removed(&mut self, co: &Coordinated) {
        if self.cluster.departures.leave() {
            return;
        }
        let consensus = &co.consensus;
        warn!(
            "this node ({}) was removed from its cluster: it serves nothing, votes for nobody and syncs with \
             nobody; stop it, or start it with an empty data directory and --seeds to join as a new node",
            consensus.state().id
        );
    }
}
