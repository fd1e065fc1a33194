//! The cluster: the table of peers, gossip, and the sync that makes every node converge.
//!
//! Every node keeps a table of the nodes it knows (never itself). About every half second, with
//! jitter, it sends each peer its table with itself first (`PUT /state`) and reads the peer's
//! table and version (`GET /state`). A peer with a newer version is fetched from (`GET /copy`);
//! a peer with an older one is pushed to (`PUT /copy`), and after a commit or a taken copy every
//! peer known to be older is pushed to at once. Versions compare by sequence, then checksum, so
//! two concurrent commits converge everywhere on the greater one.
//!
//! The core only decides: each request to a peer is an `Effect::Peer`, and its outcome comes
//! back through `Node::peer_reply`. The event loop (or a simulated network) carries them.

use log::{debug, info, warn};

use super::coordinated::Coordinated;
use super::{Effect, Shared, json_response};
use crate::core::address::parse_host_port;
use crate::core::clock::{Deadline, Now};
use crate::core::jobs::Decoding;
use crate::core::messages::{GossipEntry, PeerProblem, PeerState, StoredPeer};
use crate::core::version::Version;
use crate::http::{Bytes, Method, Response};
use crate::limits::{DECODES_IN_FLIGHT_MAX, PEER_UNREACHED_FORGET_MS, PEERS_MAX, SYNC_JITTER_MS, SYNC_PERIOD_MS};

/// One node in the table.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: String,
    /// The version it last reported (`None` until reached).
    pub version: Option<Version>,
    pub reachable: bool,
    /// Unix milliseconds: when it last answered, when its version last changed, when this node
    /// last pushed a copy to it.
    pub last_reachable: Option<u64>,
    pub last_update: Option<u64>,
    pub last_push: Option<u64>,
    /// Why it is not usable, when it is not: unreachable, or it refuses this node's key.
    pub problem: Option<PeerProblem>,
    /// Its node id (coordinated mode), as it tells it.
    pub id: Option<String>,
    /// It says its version is committed (false: it started from a version it must confirm).
    pub committed: bool,
    /// It is of another cluster or write mode (`core::peering`): nothing it says is taken.
    pub mismatch: Option<super::peering::Mismatch>,
    /// When it joined the table: an address never reached this long after is forgotten.
    learned: Now,
    next_sync: Deadline,
    /// State requests (`PUT /state`, `GET /state`) still out.
    exchanging: u8,
    /// The version of a `PUT /copy` still out.
    pub(super) pushing: Option<Version>,
}

impl Peer {
    fn new(address: &str, now: Now) -> Peer {
        Peer {
            address: address.to_string(),
            version: None,
            reachable: false,
            last_reachable: None,
            last_update: None,
            last_push: None,
            problem: None,
            id: None,
            committed: true,
            mismatch: None,
            learned: now,
            next_sync: Deadline(now.mono_ms),
            exchanging: 0,
            pushing: None,
        }
    }

    /// The entry `GET /state` and snapshot files show.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "address": self.address,
            "version": self.version.as_ref().map(Version::to_json),
            "reachable": self.reachable,
            "last-reachable": self.last_reachable,
            "last-update": self.last_update,
            "last-push": self.last_push,
            "problem": self.problem.as_ref().map(PeerProblem::to_string),
            "id": self.id,
            "foreign": self.mismatch.as_ref().map(super::peering::Mismatch::role),
        })
    }

    fn saw_version(&mut self, version: Version, now: Now) {
        if self.version != Some(version) {
            self.last_update = Some(now.unix_ms);
        }
        self.version = Some(self.version.map_or(version, |v| v.max(version)));
    }

    fn answered(&mut self, now: Now) {
        self.reachable = true;
        self.last_reachable = Some(now.unix_ms);
    }
}

/// What a request to a peer was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    PutState,
    GetState,
    GetCopy,
    PutCopy(Version),
    /// Local writes: the store pushed as its change (`PUT /copy/change`).
    PutChange(Version),
    /// Coordinated mode: a request for a vote, a beat, a version pushed to a voter, the version a
    /// new coordinator adopts, a client's request forwarded to the coordinator.
    Vote,
    Beat,
    Accept(Version),
    /// A version pushed to a voter as its change (`messages::AcceptChange`).
    AcceptChange(Version),
    FetchAccepted,
    Forward,
}

/// A request to a peer, for the event loop to send.
#[derive(Debug, Clone)]
pub struct PeerRequest {
    pub id: u64,
    pub peer: String,
    pub method: Method,
    /// The target: a path and maybe a query.
    pub path: String,
    /// Header lines beside the ones every request to a peer has (each ending in CRLF).
    pub headers: String,
    pub body: Bytes,
}

/// How the shell's error for a request to a peer begins when the request never left this node
/// (no connection, a full queue): the peer cannot have acted on it.
pub const NOT_SENT: &str = "not sent: ";

/// A peer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReply {
    pub status: u16,
    /// The header lines worth passing on to a client (`Content-Type`, `Retry-After`, ...), each
    /// ending in CRLF.
    pub headers: Vec<u8>,
    pub body: Vec<u8>,
}

/// The peers and the requests out to them.
#[derive(Debug, Default)]
pub struct Cluster {
    pub peers: Vec<Peer>,
    /// Requests out: (id, peer address, kind).
    pub(super) calls: Vec<(u64, String, CallKind)>,
    /// Other names of this node, learned when a "peer" turned out to be itself.
    aliases: Vec<String>,
    /// Bumped whenever an address joins, so the disk queue knows the table changed.
    pub stamp: u64,
    /// The peer being fetched from, and the version it promised.
    fetching: Option<(String, Version)>,
    /// Members removed from the cluster that this node dropped from its table (`membership.rs`).
    pub(super) departures: super::membership::Departures,
}

impl Cluster {
    /// Drops the peers `gone` picks from the table (the table changed: it is written again).
    pub(super) fn drop_peers(&mut self, gone: impl Fn(&Peer) -> bool) {
        self.peers.retain(|p| !gone(p));
        self.stamp += 1;
    }

    /// A request `id` went out to `address`: its answer is expected.
    pub(super) fn track(&mut self, id: u64, address: String, kind: CallKind) {
        self.calls.push((id, address, kind));
    }

    /// A push of `version` to `address` starts again (whole, after its change was refused).
    pub(super) fn pushing_again(&mut self, address: &str, version: Version, now: Now) {
        if let Some(peer) = self.find(address) {
            (peer.pushing, peer.last_push) = (Some(version), Some(now.unix_ms));
        }
    }

    fn find(&mut self, address: &str) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.address == address)
    }

    pub(super) fn find_mut(&mut self, address: &str) -> Option<&mut Peer> {
        self.find(address)
    }

    pub fn reachable(&self) -> usize {
        self.peers.iter().filter(|p| p.reachable).count()
    }

    /// The table as compact JSON, for snapshots.
    pub fn to_compact(&self) -> Vec<u8> {
        let entries: Vec<serde_json::Value> = self.peers.iter().map(Peer::to_json).collect();
        serde_json::to_vec(&entries).expect("serializing a Value cannot fail")
    }

    /// The next sync round due; peers still answering the last one are not due.
    pub fn next_sync(&self) -> Option<Deadline> {
        self.peers.iter().filter(|p| p.exchanging == 0).map(|p| p.next_sync).min()
    }
}

impl Shared {
    /// Adds an address to the table unless it is this node, known, malformed, or the table is full.
    pub(super) fn learn(&mut self, address: &str, now: Now) {
        let me = &self.config.address;
        if address == me || self.cluster.aliases.iter().any(|a| a == address) || self.cluster.find(address).is_some() {
            return;
        }
        if self.departed(address) {
            return;
        }
        if parse_host_port(address).is_err() {
            debug!("ignoring the malformed peer address {address:?}");
            return;
        }
        if self.cluster.peers.len() >= PEERS_MAX {
            warn!("the cluster table is full ({PEERS_MAX} peers); not adding {address}");
            return;
        }
        info!("peer {address} joins the table");
        self.cluster.peers.push(Peer::new(address, now));
        self.cluster.stamp += 1;
    }

    /// Restores a peer from a snapshot's table.
    pub(super) fn restore_peer(&mut self, entry: &serde_json::Value, now: Now) {
        let stored = StoredPeer::read(entry);
        let Some(address) = stored.address.as_deref() else { return };
        self.learn(address, now);
        if let Some(peer) = self.cluster.find(address) {
            peer.version = stored.version;
            peer.last_reachable = stored.last_reachable;
            peer.last_update = stored.last_update;
            peer.last_push = stored.last_push;
            peer.id = stored.id;
        }
    }

    /// `GET /state` (and the answer to `PUT /state`): this node, its version and its table.
    fn state(&self, co: Option<&Coordinated>, now: Now) -> Response {
        let version = self.store.version();
        let peers = self.peer_entries(co);
        let own_commits: Vec<serde_json::Value> = self
            .mine
            .iter()
            .map(|c| {
                let mut commit = c.version.to_json();
                commit["superseded"] = c.superseded.into();
                commit
            })
            .collect();
        json_response(
            200,
            &serde_json::json!({
                "me": self.config.address,
                "id": co.map(|co| co.consensus.state().id.clone()),
                "cluster-id": self.cluster_id(),
                "role": self.own_role(co).as_str(),
                "version": version.to_json(),
                "committed": co.is_none_or(|co| co.consensus.confirmed() && co.settled(self)),
                "cluster": peers,
                "own-commits": own_commits,
                "writes": co.map_or_else(|| serde_json::json!({"writes": "local"}), |co| co.consensus_json(self, now)),
                "last-disk-error": self.last_disk_error.as_ref().map(|(time, message)| {
                    serde_json::json!({"time": time, "message": message})
                }),
            }),
        )
    }

    /// `/state`: `GET` shows the table; `PUT` with `[{"address": ...}, ...]` (the sender first)
    /// adds the addresses this node does not know.
    pub(super) fn state_request(
        &mut self,
        co: Option<&Coordinated>,
        now: Now,
        method: Method,
        body: &[u8],
    ) -> Response {
        match method {
            Method::Get | Method::Head => self.state(co, now),
            Method::Put => {
                let Some(entries) = GossipEntry::decode_list(body) else {
                    return Response::error(400, "PUT /state takes a list of {\"address\": \"host:port\"}");
                };
                for (i, entry) in entries.iter().enumerate() {
                    if let Some(address) = entry.address.as_deref() {
                        // The sender comes first, with its id.
                        let id = entry.id.as_deref().filter(|_| i == 0);
                        self.learn_sender(co, address, id, now);
                    }
                }
                self.state(co, now)
            }
            _ => super::method_not_allowed("GET, HEAD, PUT"),
        }
    }

    /// Forgets addresses that were never reached within `PEER_UNREACHED_FORGET_MS` of joining the
    /// table and are not `--seeds` of this node: they never were members (a mistyped seed of some
    /// other node, say). A peer that was reached once stays until an operator removes it.
    fn forget_strangers(&mut self, now: Now) {
        let seeds = &self.config.seeds;
        let stranger = |p: &Peer| {
            p.last_reachable.is_none()
                && !seeds.contains(&p.address)
                && now.mono_ms.saturating_sub(p.learned.mono_ms) >= PEER_UNREACHED_FORGET_MS
        };
        let before = self.cluster.peers.len();
        for peer in self.cluster.peers.iter().filter(|p| stranger(p)) {
            info!(
                "forgetting peer {}: never reached in {} s, and not one of --seeds",
                peer.address,
                PEER_UNREACHED_FORGET_MS / 1000
            );
        }
        self.cluster.peers.retain(|p| !stranger(p));
        if self.cluster.peers.len() != before {
            self.cluster.stamp += 1;
        }
    }

    /// Starts a sync exchange with every peer whose turn has come.
    pub(super) fn sync(&mut self, now: Now, co: Option<&Coordinated>) {
        self.forget_strangers(now);
        if self.identity_unsaved && self.cluster.next_sync().is_some_and(|d| d.fired(now)) {
            self.save_identity();
        }
        if self.forget_removed(co) {
            return;
        }
        let due: Vec<String> = self
            .cluster
            .peers
            .iter()
            .filter(|p| p.next_sync.fired(now) && p.exchanging == 0)
            .map(|p| p.address.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let gossip = self.gossip_body(co);
        for address in due {
            let jitter = self.rng.below(2 * SYNC_JITTER_MS + 1);
            let peer = self.cluster.find(&address).expect("listed above");
            peer.next_sync = Deadline::after(now, SYNC_PERIOD_MS - SYNC_JITTER_MS + jitter);
            peer.exchanging = 2;
            self.call(&address, CallKind::PutState, Method::Put, "/state", Bytes::Shared(gossip.clone()));
            self.call(&address, CallKind::GetState, Method::Get, "/state", Bytes::EMPTY);
        }
    }

    /// `[{"address": me}, {"address": peer}, ...]`: this node and the peers it reaches. An address
    /// nobody reaches does not spread from table to table.
    fn gossip_body(&self, co: Option<&Coordinated>) -> std::sync::Arc<[u8]> {
        let id = co.map(|co| co.consensus.state().id.as_str());
        let reached = self.cluster.peers.iter().filter(|p| p.reachable).map(|p| p.address.as_str());
        GossipEntry::encode_list(&self.config.address, id, reached).into()
    }

    pub(super) fn call(&mut self, address: &str, kind: CallKind, method: Method, path: &str, body: Bytes) {
        let id = self.ids.call();
        self.cluster.calls.push((id, address.to_string(), kind));
        let (peer, path, headers) = (address.to_string(), path.to_string(), self.envelope());
        self.effects.push(Effect::Peer(PeerRequest { id, peer, method, path, headers, body }));
    }

    /// Pushes the current store to every peer known to be older that is not being pushed to.
    pub(super) fn push_to_older(&mut self, co: Option<&Coordinated>, now: Now) {
        if !Shared::store_confirmed(co) {
            return;
        }
        let ours = self.store.version();
        let older: Vec<String> = self
            .cluster
            .peers
            .iter()
            .filter(|p| p.version.is_some_and(|v| v < ours) && p.pushing.is_none() && self.pushes_to(co, p.version))
            .map(|p| p.address.clone())
            .collect();
        for address in older {
            let peer = self.cluster.find(&address).expect("listed above");
            peer.pushing = Some(ours);
            peer.last_push = Some(now.unix_ms);
            let theirs = peer.version;
            self.push_copy(&address, theirs);
        }
    }

    /// The outcome of a request to a peer. Unknown ids (a duplicate answer) are ignored.
    pub(super) fn peer_reply(
        &mut self,
        mut co: Option<&mut Coordinated>,
        now: Now,
        id: u64,
        result: Result<PeerReply, String>,
    ) {
        self.handling(now);
        let Some(position) = self.cluster.calls.iter().position(|(call, _, _)| *call == id) else { return };
        let (_, address, kind) = self.cluster.calls.swap_remove(position);
        // Nothing is taken from a peer of another cluster or mode: its answer is a failure.
        let result = match result {
            Ok(reply) => match self.check_peer_answer(co.as_deref_mut(), &address, &reply.headers) {
                Ok(()) => Ok(reply),
                Err(mismatch) => Err(mismatch.message(&address)),
            },
            Err(e) => Err(e),
        };
        if let Some(co) = co.as_deref_mut()
            && co.consensus_reply(self, now, id, &address, kind, &result)
        {
            return;
        }
        let Some(peer) = self.cluster.find(&address) else { return };
        match kind {
            CallKind::PutState | CallKind::GetState => peer.exchanging = peer.exchanging.saturating_sub(1),
            CallKind::PutCopy(_) | CallKind::PutChange(_) => peer.pushing = None,
            _ => {}
        }
        let reply = match result {
            Ok(reply) if reply.status != 401 => reply,
            failed => {
                let problem = match failed {
                    Ok(_) => PeerProblem::RefusesKey,
                    Err(e) if peer.mismatch.is_some() => PeerProblem::Mismatch(e),
                    Err(e) => PeerProblem::Unreachable(e),
                };
                if peer.reachable || (peer.problem.as_ref() != Some(&problem) && problem == PeerProblem::RefusesKey) {
                    warn!("peer {address} is not usable: {problem}");
                }
                peer.reachable = false;
                peer.problem = Some(problem);
                if kind == CallKind::GetCopy {
                    self.cluster.fetching = None;
                }
                return;
            }
        };
        // A peer that refused this node's key for a change stays not usable until a change goes
        // through, even though its reads (open without a read token) still answer.
        let refused = peer.problem == Some(PeerProblem::RefusesKey);
        if !refused || matches!(kind, CallKind::PutState | CallKind::PutCopy(_) | CallKind::PutChange(_)) {
            if !peer.reachable {
                let again = if peer.last_reachable.is_some() { " again" } else { "" };
                info!("peer {address} is reachable{again}");
            }
            peer.problem = None;
            peer.answered(now);
        }
        match (kind, reply.status) {
            (CallKind::GetState, 200) => self.state_read(co, now, &address, &reply.body),
            (CallKind::PutState, 200) => {}
            (CallKind::PutChange(version), status) if status != 201 => {
                self.change_refused(co.as_deref(), now, &address, version)
            }
            (CallKind::PutCopy(_) | CallKind::PutChange(_), 201) => {
                if let Some(version) = crate::core::messages::copy_answer(&reply.body) {
                    self.cluster.find(&address).expect("found above").saw_version(version, now);
                    self.metrics.copies_pushed += 1;
                }
                // A newer version may have been committed while this push was out.
                self.push_to_older(co.as_deref(), now);
            }
            (CallKind::GetCopy, 200) => {
                self.decode(Decoding::Fetched, reply.body);
            }
            (kind, status) => {
                debug!("peer {address} answered {kind:?} with {status}");
                if kind == CallKind::GetCopy {
                    self.cluster.fetching = None;
                }
            }
        }
    }

    /// A peer's `GET /state`: its version and table.
    fn state_read(&mut self, mut co: Option<&mut Coordinated>, now: Now, address: &str, body: &[u8]) {
        let Some(state) = PeerState::decode(body) else { return };
        if state.me.as_deref() == Some(self.config.address.as_str()) {
            // The "peer" is this node under another name.
            info!("{address} is this node; dropping it from the table");
            self.cluster.peers.retain(|p| p.address != address);
            self.cluster.aliases.push(address.to_string());
            return;
        }
        // Only the peers it reaches: an address nobody reaches does not spread.
        for learned in state.reached() {
            self.learn(learned, now);
        }
        let Some(theirs) = state.version else { return };
        let peer = self.cluster.find(address).expect("a peer in the table");
        peer.saw_version(theirs, now);
        peer.committed = state.is_committed();
        if let Some(id) = state.id.as_deref().filter(|id| crate::core::roster::valid_id(id)) {
            peer.id = Some(id.to_string());
        }
        // A version its node does not know to be committed is nobody's to take.
        if !peer.committed {
            return;
        }
        self.heard_while_joining(co.as_deref_mut(), theirs, state.id.as_deref());
        self.check_activation(now, co.as_deref());
        let ours = self.store.version();
        if theirs > ours {
            self.fetch(address, theirs);
        } else if theirs < ours {
            self.push_to_older(co.as_deref(), now);
        }
    }

    /// Fetches a newer copy from `address`, unless a fetch of at least that version is out.
    fn fetch(&mut self, address: &str, theirs: Version) {
        let busy = self.cluster.fetching.as_ref().is_some_and(|(_, v)| *v >= theirs);
        if busy || self.decodes_in_flight >= DECODES_IN_FLIGHT_MAX {
            return;
        }
        self.cluster.fetching = Some((address.to_string(), theirs));
        self.call(address, CallKind::GetCopy, Method::Get, "/copy", Bytes::EMPTY);
    }

    /// A fetched copy was decoded (or refused).
    pub(super) fn fetched(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        result: Result<crate::core::sealed::Sealed, crate::core::sealed::DecodeError>,
    ) {
        let from = self.cluster.fetching.take().map(|(address, _)| address).unwrap_or_default();
        match result {
            Ok(sealed) => {
                if self.take_copy(co, now, sealed) {
                    self.metrics.copies_pulled += 1;
                }
            }
            Err(e) => warn!("refused the copy fetched from {from}: {e}"),
        }
    }
}

impl Coordinated {
    /// The outcome of a call of coordinated mode; true when it was one (the rest of `peer_reply`
    /// is about the table and sync).
    fn consensus_reply(
        &mut self,
        node: &mut Shared,
        now: Now,
        id: u64,
        address: &str,
        kind: CallKind,
        result: &Result<PeerReply, String>,
    ) -> bool {
        let reply = result.as_ref().ok();
        match kind {
            CallKind::Forward => self.forward_reply(node, id, result.clone()),
            CallKind::Vote => {
                if let Some(reply) = reply.filter(|r| r.status == 200) {
                    self.vote_reply(node, now, &reply.body);
                }
            }
            CallKind::Beat => {
                if let Some(reply) = reply.filter(|r| r.status == 200) {
                    self.beat_reply(node, now, address, &reply.body);
                }
            }
            CallKind::Accept(version) | CallKind::AcceptChange(version) => {
                let (status, body) = reply.map_or((0, &[][..]), |r| (r.status, &r.body[..]));
                let as_change = matches!(kind, CallKind::AcceptChange(_));
                self.accept_reply(node, now, address, (version, as_change), status, body);
            }
            CallKind::FetchAccepted => match reply.filter(|r| r.status == 200) {
                Some(reply) => {
                    node.decode(Decoding::Adopt, reply.body.clone());
                }
                None => warn!("could not fetch the version to adopt from {address}; the election will be held again"),
            },
            _ => return false,
        }
        // The table still learns that the peer answered (or not).
        if let Some(peer) = node.cluster.find(address) {
            match result {
                Ok(_) => peer.answered(now),
                Err(e) => {
                    peer.reachable = false;
                    peer.problem = Some(PeerProblem::Unreachable(e.clone()));
                }
            }
        }
        true
    }
}
