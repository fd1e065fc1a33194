//! A node joining its cluster at start: how long it waits, and, with coordinated writes, why it
//! does not serve yet.
//!
//! With coordinated writes a node serves only a store of its cluster: a member serves only what
//! it knows the cluster committed, never older than it served before it stopped, and a node with
//! `--seeds` never founds a cluster of its own (a mistyped seed must not make it serve an empty
//! store as if it were the configuration). So `--bootstrap-limit` applies to local writes only, and
//! a joining node of coordinated writes logs why it does not serve every `JOINING_REPORT_MS`.

use log::{info, warn};

use super::coordinated::Coordinated;
use super::{Activation, Shared, json_response};
use crate::core::clock::{Deadline, Now};
use crate::core::version::Version;
use crate::http::Response;
use crate::limits::{JOINING_REPORT_MS, LEASE_MS};

impl Shared {
    /// A node with peers starts inactive, until it has caught up with them.
    pub(super) fn start_joining(&mut self, now: Now, co: Option<&Coordinated>) {
        // With coordinated writes it waits past --bootstrap-limit (see above).
        let limit_ms = self.config.bootstrap_limit_ms.filter(|_| co.is_none());
        let limit = limit_ms.map(|ms| Deadline::after(now, ms));
        self.activation = Activation::Joining { limit, target: None };
        self.joining_report_at = Deadline::after(now, JOINING_REPORT_MS);
        match limit_ms {
            Some(ms) => info!(
                "joining the cluster: /data answers 503 until this node has caught up with a peer, or for at \
                 most {} s (--bootstrap-limit); --bootstrap serves at once",
                ms / 1000
            ),
            None if self.config.bootstrap_limit_ms.is_none() => info!(
                "joining the cluster: /data answers 503 until this node holds the store a peer serves, however \
                 long that takes"
            ),
            None if self.serves_unconfirmed(co) => info!(
                "joining the cluster: serving reads of sequence {}, the newest version this node knows was \
                 committed, marked {} until it hears from a majority of the voters; writes and /ready answer 503 \
                 until then",
                self.store.version().sequence,
                super::commit_point::UNCONFIRMED
            ),
            // Without a limit and with --bootstrap-limit set: coordinated writes.
            None => info!(
                "joining the cluster: with coordinated writes /data and /ready answer 503 until this node holds \
                 its cluster's store from a majority of the voters, however long that takes (--bootstrap-limit \
                 does not apply: a node with --seeds or stored peers never founds a cluster of its own); {}",
                co.map(|co| co.joining_why(self, now)).unwrap_or_default()
            ),
        }
    }

    /// Logs why the node does not serve yet, every `JOINING_REPORT_MS` (coordinated writes).
    fn report_joining(&mut self, now: Now, co: Option<&Coordinated>) {
        if let Some(co) = co
            && self.joining_report_at.fired(now)
        {
            self.joining_report_at = Deadline::after(now, JOINING_REPORT_MS);
            warn!("this node does not serve /data yet: {}", co.joining_why(self, now));
        }
    }

    /// `GET /ready`: 200 when the node serves `/data` and can confirm its store; 503 otherwise. A
    /// node that serves reads it cannot confirm is out of a load balancer's rotation, as a node
    /// catching up is (docs/operations.md, "When a majority is down").
    pub(super) fn ready(&self, co: Option<&Coordinated>) -> Response {
        if self.is_active(co) {
            json_response(200, &serde_json::json!({"status": "ready"}))
        } else if self.serves_unconfirmed(co) {
            self.mark_read(co, self.unconfirmed_refusal())
        } else {
            self.inactive(co)
        }
    }

    /// Becomes active once caught up with the newest version a peer reported, or at the limit.
    /// While joining: a peer (`id`, if it said) reported the committed version `theirs`; the
    /// newest such is what the node catches up to, and with coordinated writes a majority of the
    /// voters must have answered.
    pub(super) fn heard_while_joining(&mut self, co: Option<&mut Coordinated>, theirs: Version, id: Option<&str>) {
        if let Activation::Joining { target, .. } = &mut self.activation {
            *target = Some(target.map_or(theirs, |t| t.max(theirs)));
            if let Some(id) = id
                && let Some(co) = co
                && !co.heard_while_joining.iter().any(|h| h == id)
            {
                co.heard_while_joining.push(id.to_string());
            }
        }
    }

    pub(super) fn check_activation(&mut self, now: Now, co: Option<&Coordinated>) {
        let Activation::Joining { limit, target } = self.activation else { return };
        // With coordinated writes, the newest version of a majority of the voters (itself
        // included): a committed version is on a majority, and a single peer may be one that is
        // joining too, with an older store (this node may have served a newer one before it
        // stopped, if its disk could not keep it).
        // The only voter of its cluster is a majority on its own: it waits for nobody (its seeds
        // may be down, or of another cluster).
        let (heard_enough, alone_enough) = match (co, co.and_then(|co| co.coordination(self))) {
            (Some(co), Some(coordination)) => {
                let me = usize::from(coordination.is_voter(&co.consensus.state().id));
                let heard = co.heard_while_joining.iter().filter(|h| coordination.is_voter(h)).count();
                (heard + me >= coordination.majority(), me >= coordination.majority())
            }
            // A node that holds no version of a cluster yet (a new learner) serves only once it
            // has taken one: two new learners that reach each other before the coordinator must
            // not serve each other's empty store.
            (Some(_), None) => (false, false),
            (None, _) => (true, false),
        };
        // A node of coordinated writes serves only a store of a cluster (its own, or the one it
        // founds): never a store of local writes, or the empty one a node with a mistyped seed has.
        // A node restarted from its commit point with a newer version accepted (which it may have
        // served: the commit point is written after) serves as usual once that one is settled.
        let settled = co.is_none_or(|co| co.settled(self));
        let of_a_cluster = co.is_none_or(|co| co.coordination(self).is_some());
        let caught_up = alone_enough
            || (heard_enough && settled && of_a_cluster && target.is_some_and(|t| self.store.version() >= t));
        if caught_up {
            info!("caught up with the cluster at sequence {}; serving", self.store.version().sequence);
            self.activation = Activation::Active;
        } else if limit.is_some_and(|limit| limit.fired(now)) {
            warn!(
                "could not catch up with the cluster within --bootstrap-limit (no peer answered); serving what this \
                 node has, sequence {}",
                self.store.version().sequence
            );
            self.activation = Activation::Active;
        } else {
            self.report_joining(now, co);
        }
    }
}

impl Coordinated {
    /// Why a joining node of coordinated writes does not serve yet, and what may help.
    pub(super) fn joining_why(&self, node: &Shared, now: Now) -> String {
        let reached: Vec<&str> =
            node.cluster.peers.iter().filter(|p| p.last_reachable.is_some()).map(|p| p.address.as_str()).collect();
        let known: Vec<&str> = node.cluster.peers.iter().map(|p| p.address.as_str()).collect();
        let sequence = node.store.version().sequence;
        let Some(coordination) = self.coordination(node) else {
            if let Some(coordinator) = self.consensus.coordinator().filter(|_| sequence > 0) {
                // The coordinator pushes its store only to a member whose store is older
                // (`Coordinated::member_holds`): a learner newer than the cluster waits for ever.
                return format!(
                    "its data (sequence {sequence}) was written with --writes=local, and the coordinator {} has not \
                     replaced it with the cluster's store, which it does only for an older one: the cluster was \
                     founded on an older version than this node holds; to keep this node's data, stop every node and \
                     start this one first, with --bootstrap (docs/clustering.md: Upgrading a --writes=local cluster); \
                     to take the cluster's store instead, start this node on an empty data directory",
                    coordinator.address
                );
            }
            if sequence > 0 {
                return format!(
                    "its data (sequence {sequence}) was written with --writes=local and names no coordinated cluster, \
                     and no peer has given it one; if this is an upgrade from local writes, start the node with the \
                     newest version with --bootstrap, then the others (docs/clustering.md: Upgrading a --writes=local cluster)"
                );
            }
            if reached.is_empty() {
                return format!(
                    "none of its seeds or stored peers has ever answered ({}); check --seeds and that they run; a node \
                     with --seeds never founds a cluster of its own (start the first node without --seeds, or with \
                     --bootstrap on an empty data directory)",
                    known.join(", ")
                );
            }
            return format!(
                "its peers answer ({}) but none has given it the store of a coordinated cluster (are they joining \
                 too?); one node must found the cluster: started without --seeds, or with --bootstrap on an empty \
                 data directory",
                reached.join(", ")
            );
        };
        let up: Vec<&str> = node
            .cluster
            .peers
            .iter()
            .filter(|p| p.reachable && p.last_reachable.is_some_and(|at| at + LEASE_MS >= now.unix_ms))
            .map(|p| p.address.as_str())
            .collect();
        format!(
            "it needs the versions of a majority ({}) of the {} voters of its cluster, itself included, and has heard \
             from {} (peers reachable now: {}); it holds sequence {sequence}",
            coordination.majority(),
            coordination.voters.len(),
            self.heard_while_joining.iter().filter(|h| coordination.is_voter(h)).count()
                + usize::from(coordination.is_voter(&self.consensus.state().id)),
            if up.is_empty() { "none".to_string() } else { up.join(", ") }
        )
    }
}
