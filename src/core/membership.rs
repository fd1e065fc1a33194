//! Who votes: voters change only through a commit, one at a time, made by the coordinator.
//!
//! A node that joins with `--seeds` is a learner: it receives the committed store and beats but
//! does not vote. Once it holds the committed version, the coordinator promotes it by a commit, on
//! its own. A node that comes back with an empty data directory has a new id, so it returns as a
//! learner; if its address is a voter's, the coordinator first removes that voter (the old node
//! cannot be running where the new one is). `DELETE /state/ADDRESS` (the cluster key) removes a
//! voter by a commit. Removed ids are remembered in the configuration and never promoted again.

use log::info;

use super::replicate::{Content, Purpose};
use super::{Node, Reply, Ticket};
use crate::core::clock::Now;
use crate::core::members::Member;
use crate::http::Response;

impl Node {
    /// A coordinator with nothing in flight looks for a change of voters to make.
    pub(super) fn consider_membership(&mut self, now: Now) {
        let Some(consensus) = &self.consensus else { return };
        if !consensus.has_lease(now) || self.commit.is_some() || self.lock.is_some() {
            return;
        }
        let Some(coordination) = self.coordination() else { return };
        let me = consensus.state.id.clone();
        // A learner that answers beats promises like a voter: promoting it keeps the lease.
        let beaten: Vec<String> = match &consensus.role {
            super::consensus::Role::Coordinator(leading) => leading.acks.iter().map(|(id, _)| id.clone()).collect(),
            _ => Vec::new(),
        };
        let learners: Vec<(String, String, bool)> = self
            .cluster
            .peers
            .iter()
            .filter_map(|p| {
                let id = p.id.clone()?;
                let caught_up = p.reachable && p.version == Some(self.store.version()) && beaten.contains(&id);
                Some((id, p.address.clone(), caught_up))
            })
            .filter(|(id, _, _)| !coordination.is_voter(id) && !coordination.removed.contains(id) && *id != me)
            .collect();
        for (id, address, _) in &learners {
            if let Some(old) = coordination.voters.iter().find(|v| v.address == *address && v.id != *id && v.id != me) {
                let what = format!("replacing voter {address} ({}): a new node ({id}) answers at its address", old.id);
                let next = coordination.removing(&old.id, 0);
                let root = self.store.root().clone();
                self.replicate(
                    now,
                    Purpose::Membership { what, ticket: None },
                    Content::New { root, coordination: next },
                );
                return;
            }
        }
        if let Some((id, address, _)) = learners.into_iter().find(|(_, _, caught_up)| *caught_up) {
            let what = format!("promoting learner {address} ({id}) to voter");
            info!("{what}");
            let next = coordination.adding(Member { id, address }, 0);
            let root = self.store.root().clone();
            self.replicate(now, Purpose::Membership { what, ticket: None }, Content::New { root, coordination: next });
        }
    }

    /// `DELETE /state/ADDRESS` at the coordinator: removes that voter by a commit.
    pub(super) fn remove_voter(&mut self, now: Now, ticket: Ticket, address: &str) -> Reply {
        let Some(coordination) = self.coordination() else {
            return Reply::Now(Response::error(404, "this node is not in a cluster with coordinated writes"));
        };
        let Some(voter) = coordination.voters.iter().find(|v| v.address == address).cloned() else {
            return Reply::Now(Response::error(404, &format!("no voter has the address {address}")));
        };
        let busy = match (&self.commit, &self.lock) {
            (Some(_), _) => Some("another change is being committed".to_string()),
            (None, Some(lock)) => Some(format!("the lock is held by {}", lock.name)),
            (None, None) if !self.consensus.as_ref().is_some_and(|c| c.has_lease(now)) => {
                return Reply::Now(self.no_majority(now));
            }
            (None, None) => None,
        };
        if let Some(why) = busy {
            return Reply::Now(Response::error(409, &format!("{why}; retry")).with_header("Retry-After", "1"));
        }
        let what = format!("removing voter {address} ({})", voter.id);
        info!("{what}");
        let next = coordination.removing(&voter.id, 0);
        let root = self.store.root().clone();
        self.replicate(
            now,
            Purpose::Membership { what, ticket: Some(ticket) },
            Content::New { root, coordination: next },
        );
        Reply::Later
    }
}
