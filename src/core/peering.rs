//! The boundary of a cluster. Every request a node sends a peer carries the id of its cluster,
//! its write mode and its own address (`X-Lighthouse-Cluster`, `X-Lighthouse-Writes`,
//! `X-Lighthouse-From`), and so does every answer to such a request. A node answers a peer of
//! another cluster, or of the other write mode, with nothing but a 409 that names both, and takes
//! nothing from its answers: no table, no version, no copy, no vote, no beat. It logs an error
//! once per peer, and `GET /state` shows the peer as foreign.
//!
//! A node that does not know its cluster yet (a new data directory with `--seeds`) joins the
//! cluster of the first peer it hears from, and writes that id to `node.json`. A node that holds a
//! cluster's id never takes another.

use log::{error, info};

use super::Shared;
use super::coordinated::Coordinated;
use crate::core::jobs::{Done, JobId, Owner};
use crate::http::{Headers, Response};
use crate::limits::FOREIGN_PEERS_LOGGED_MAX;

pub const CLUSTER_HEADER: &str = "X-Lighthouse-Cluster";
pub const WRITES_HEADER: &str = "X-Lighthouse-Writes";
pub const FROM_HEADER: &str = "X-Lighthouse-From";

/// Why a peer is not of this node's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// It belongs to another cluster.
    Cluster { ours: String, theirs: String },
    /// Its writes are of the other mode (`--writes`).
    Writes { ours: &'static str, theirs: String },
}

impl Mismatch {
    pub fn message(&self, peer: &str) -> String {
        match self {
            Mismatch::Cluster { ours, theirs } => format!(
                "{peer} belongs to cluster {theirs}, this node to cluster {ours}: nodes of different clusters never \
                 exchange anything (check --seeds)"
            ),
            Mismatch::Writes { ours, theirs } => format!(
                "{peer} has {theirs} writes, this node {ours} writes: every node of a cluster needs the same --writes"
            ),
        }
    }

    /// How `GET /state` shows such a peer (its `role`, spelled by `NodeRole`).
    pub fn role(&self) -> &'static str {
        match self {
            Mismatch::Cluster { .. } => super::NodeRole::Foreign.as_str(),
            Mismatch::Writes { .. } => super::NodeRole::OtherMode.as_str(),
        }
    }
}

impl Shared {
    /// `coordinated` or `local`, as peers are told.
    pub(super) fn writes_mode(&self) -> &'static str {
        if self.config.coordinated.is_some() { "coordinated" } else { "local" }
    }

    /// The id of this node's cluster, if it knows it.
    pub(super) fn cluster_id(&self) -> Option<&str> {
        self.identity.cluster.as_deref()
    }

    /// The header lines every request to a peer, and every answer to one, carries.
    pub(super) fn envelope(&self) -> String {
        let mut lines =
            format!("{WRITES_HEADER}: {}\r\n{FROM_HEADER}: {}\r\n", self.writes_mode(), self.config.address);
        if let Some(cluster) = self.cluster_id() {
            lines.push_str(&format!("{CLUSTER_HEADER}: {cluster}\r\n"));
        }
        lines
    }

    /// Checks a request that a peer sent (it carries `X-Lighthouse-Writes`): `Some` is the
    /// refusal to answer with. Requests of clients pass.
    pub(super) fn check_peer_request(&mut self, co: Option<&mut Coordinated>, headers: &Headers) -> Option<Response> {
        let writes = headers.peer_writes?;
        let from = headers.peer_from.unwrap_or("a peer");
        let mismatch = self.meet(co, from, headers.peer_cluster, writes)?;
        let message = mismatch.message(from);
        Some(Response::error(409, &message).with_extra_lines(&self.envelope()))
    }

    /// Checks the header lines of a peer's answer (`PeerReply::headers`).
    pub(super) fn check_peer_answer(
        &mut self,
        co: Option<&mut Coordinated>,
        address: &str,
        headers: &[u8],
    ) -> Result<(), Mismatch> {
        let text = String::from_utf8_lossy(headers);
        let value = |name: &str| {
            text.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
            })
        };
        // An answer without the header is from a node of an older version, or did not get as far
        // as the node (a proxy's error): nothing to check.
        let Some(writes) = value(WRITES_HEADER) else { return Ok(()) };
        let cluster = value(CLUSTER_HEADER);
        self.meet(co, address, cluster.as_deref(), &writes).map_or(Ok(()), Err)
    }

    /// Meets a peer that says it is of `cluster` with `writes`: joins its cluster if this node has
    /// none yet, and tells when it is of another.
    fn meet(
        &mut self,
        co: Option<&mut Coordinated>,
        address: &str,
        cluster: Option<&str>,
        writes: &str,
    ) -> Option<Mismatch> {
        let ours = self.writes_mode();
        let mismatch = if writes != ours {
            Some(Mismatch::Writes { ours, theirs: writes.to_string() })
        } else {
            match (self.cluster_id(), cluster) {
                (Some(ours), Some(theirs)) if ours != theirs => {
                    Some(Mismatch::Cluster { ours: ours.to_string(), theirs: theirs.to_string() })
                }
                (None, Some(theirs)) if crate::core::roster::valid_id(theirs) => {
                    self.join_cluster(co, address, theirs);
                    None
                }
                _ => None,
            }
        };
        if let Some(peer) = self.cluster.find_mut(address) {
            peer.mismatch = mismatch.clone();
        }
        if let Some(mismatch) = &mismatch {
            self.log_mismatch_once(address, mismatch);
        }
        mismatch
    }

    /// Takes `cluster` as this node's cluster, for good: `node.json` is written at once.
    fn join_cluster(&mut self, co: Option<&mut Coordinated>, address: &str, cluster: &str) {
        info!("this node joins cluster {cluster} (first heard of from {address})");
        self.identity.cluster = Some(cluster.to_string());
        if let Some(co) = co {
            co.consensus.join_cluster(cluster);
            co.save_state(self);
        } else {
            self.save_identity();
        }
    }

    /// With local writes: writes `node.json` (nobody waits for it; a failure is tried again at
    /// the next sync round, `sync`).
    pub(super) fn save_identity(&mut self) {
        self.identity_unsaved = false;
        let id = self.ids.job(crate::core::jobs::Owner::NodeState);
        let state = self.identity.clone();
        self.effects.push(super::Effect::Job(crate::core::jobs::Job::SaveState { id, state }));
    }

    /// With local writes only the cluster a node joined is saved to `node.json`, and nobody waits
    /// for it: a failed write is tried again at the next sync round.
    pub(super) fn local_state_saved(&mut self, done: Done) {
        match done {
            Done::StateSaved { id: JobId { owner: Owner::NodeState, .. }, result: Ok(()) } => {}
            Done::StateSaved { id: JobId { owner: Owner::NodeState, .. }, result: Err(e) } => {
                error!(
                    "node.json cannot be written ({}): the cluster this node joined is tried again shortly",
                    e.message
                );
                self.identity_unsaved = true;
            }
            done => crate::core::jobs::no_owner(&done),
        }
    }

    fn log_mismatch_once(&mut self, address: &str, mismatch: &Mismatch) {
        let key = (address.to_string(), mismatch.clone());
        if self.mismatches_logged.contains(&key) {
            return;
        }
        error!("refusing peer {}", mismatch.message(address));
        if self.mismatches_logged.len() >= FOREIGN_PEERS_LOGGED_MAX {
            self.mismatches_logged.remove(0);
        }
        self.mismatches_logged.push(key);
    }
}
