//! Gossip (`PUT /state`, and what a node takes from a peer's `GET /state`), and the entries of a
//! stored table (a snapshot's `cluster`), in the shape `GET /state` shows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{body_fields, field, fields, to_bytes};
use crate::core::version::Version;

// --- Gossip: `PUT /state` and what a peer's `GET /state` tells. ---

/// An entry of the gossip a node sends (`PUT /state`): the sender first, with its id (`null`
/// with local writes), then the peers it reaches, by address only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GossipEntry {
    #[serde(default, deserialize_with = "field::text")]
    pub address: Option<String>,
    /// Its id (taken from the first entry only, the sender's).
    #[serde(default, deserialize_with = "field::text")]
    pub id: Option<String>,
}

/// What gossip looks like on the wire: the sender's entry names its id, the others do not.
#[derive(Serialize)]
#[serde(untagged)]
enum GossipOut<'a> {
    Sender { address: &'a str, id: Option<&'a str> },
    Reached { address: &'a str },
}

impl GossipEntry {
    /// The entries of a `PUT /state` body; `None` unless it is a JSON list. An entry that is not
    /// an object has no fields.
    pub fn decode_list(body: &[u8]) -> Option<Vec<GossipEntry>> {
        let Ok(Value::Array(entries)) = serde_json::from_slice::<Value>(body) else { return None };
        Some(entries.iter().map(|e| fields(e).unwrap_or_default()).collect())
    }

    /// `[{"address": me, "id": id}, {"address": peer}, ...]`.
    pub fn encode_list<'a>(me: &str, id: Option<&str>, reached: impl Iterator<Item = &'a str>) -> Vec<u8> {
        let mut entries = vec![GossipOut::Sender { address: me, id }];
        entries.extend(reached.map(|address| GossipOut::Reached { address }));
        to_bytes(&entries)
    }
}

/// An entry of a peer's table, as its `GET /state` shows it (the fields gossip reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PeerStateEntry {
    #[serde(default, deserialize_with = "field::text")]
    pub address: Option<String>,
    #[serde(default, deserialize_with = "field::flag")]
    pub reachable: bool,
}

/// What a node takes from a peer's `GET /state` (the endpoint's full answer is rendered by
/// `cluster.rs` for clients too; these are the fields peers read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PeerState {
    /// The peer's own address: when it is this node's, the "peer" is this node.
    #[serde(default, deserialize_with = "field::text")]
    pub me: Option<String>,
    #[serde(default, deserialize_with = "entries")]
    pub cluster: Vec<PeerStateEntry>,
    #[serde(default, deserialize_with = "field::version")]
    pub version: Option<Version>,
    /// `false` when its store is not known to be committed (missing or other values: it is).
    #[serde(default, deserialize_with = "field::boolean")]
    pub committed: Option<bool>,
    /// Its id as given (not checked: `cluster.rs` checks it where it keeps it).
    #[serde(default, deserialize_with = "field::text")]
    pub id: Option<String>,
}

fn entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PeerStateEntry>, D::Error> {
    let value = Value::deserialize(d)?;
    let list = value.as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(list.iter().map(|e| fields(e).unwrap_or_default()).collect())
}

impl PeerState {
    /// `None` when the body is not JSON.
    pub fn decode(body: &[u8]) -> Option<PeerState> {
        body_fields(body)?.ok()
    }

    /// The addresses of the peers it reaches (an address nobody reaches does not spread).
    pub fn reached(&self) -> impl Iterator<Item = &str> {
        self.cluster.iter().filter(|e| e.reachable).filter_map(|e| e.address.as_deref())
    }

    /// Whether it says its store is committed.
    pub fn is_committed(&self) -> bool {
        self.committed != Some(false)
    }
}

/// A peer of a stored table (a snapshot's `cluster`), as `Peer::to_json` wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StoredPeer {
    #[serde(default, deserialize_with = "field::text")]
    pub address: Option<String>,
    #[serde(default, deserialize_with = "field::version")]
    pub version: Option<Version>,
    #[serde(default, rename = "last-reachable", deserialize_with = "field::u64")]
    pub last_reachable: Option<u64>,
    #[serde(default, rename = "last-update", deserialize_with = "field::u64")]
    pub last_update: Option<u64>,
    #[serde(default, rename = "last-push", deserialize_with = "field::u64")]
    pub last_push: Option<u64>,
    /// Its id, when valid.
    #[serde(default, deserialize_with = "field::id")]
    pub id: Option<String>,
}

impl StoredPeer {
    pub fn read(entry: &Value) -> StoredPeer {
        fields(entry).unwrap_or_default()
    }
}
