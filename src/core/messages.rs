//! Every message nodes exchange, as Rust types, with its encoding and decoding in one place: a
//! vote request (and pre-vote) and its answer, a beat and its answer, the answer to a pushed
//! version, the gossip of `PUT /state` and what a peer's `GET /state` tells, the answer to a
//! pushed copy, and the small objects a copy carries (version, accepted version, member,
//! coordination, lineage). The rest of the core reads typed fields, never a peer's raw JSON.
//!
//! The wire format is the one nodes have always spoken: keys in alphabetical order (as
//! `serde_json`'s map sorts them), unknown keys ignored. Decoding is as lenient as it always was,
//! field by field: a JSON body is read as a `serde_json::Value` first (so a key given twice counts
//! once, the last time, and a body that is not an object has no fields), then each field is taken
//! only if it has the right type (`field::*`); a field of another type counts as missing. A
//! message refuses to decode only when a field it cannot do without is missing (`need::*`).
//!
//! The cluster id, write mode and sender of every message travel as HTTP headers, not fields:
//! their names and checks stay in `peering.rs`, the boundary they draw.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::consensus::Accepted;
use crate::core::node_state::NodeState;
use crate::core::roster::{Coordination, Member, valid_id};
use crate::core::version::{Checksum, Version};
use crate::limits::TERM_MAX;

/// The fields of a JSON value: an object's, or none for anything else (as `Value::get` reads it).
fn fields<T: DeserializeOwned>(value: &Value) -> Result<T, serde_json::Error> {
    if value.is_object() { T::deserialize(value) } else { T::deserialize(&Value::Object(serde_json::Map::new())) }
}

/// The fields of a JSON body; `None` when it is not JSON.
fn body_fields<T: DeserializeOwned>(body: &[u8]) -> Option<Result<T, serde_json::Error>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(fields(&value))
}

/// Optional fields: the value if it has the right type, else `None` (or `false`, `0`, `""`).
mod field {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    use crate::core::consensus::Accepted;
    use crate::core::roster::valid_id;
    use crate::core::version::Version;

    fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    pub fn any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        value(d).map(Some)
    }
    /// A value to echo as it came: `null` is the same as not said (both are echoed as `null`).
    pub fn echo<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        value(d).map(|v| Some(v).filter(|v| !v.is_null()))
    }
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        value(d).map(|v| v.as_u64())
    }
    pub fn u64_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        value(d).map(|v| v.as_u64().unwrap_or(0))
    }
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        value(d).map(|v| v.as_str().map(str::to_string))
    }
    pub fn text_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        value(d).map(|v| v.as_str().unwrap_or_default().to_string())
    }
    /// A node id: a string of the shape `roster::valid_id` allows.
    pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        text(d).map(|t| t.filter(|id| valid_id(id)))
    }
    /// `true` only when the field is the JSON `true`.
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        value(d).map(|v| v == Value::Bool(true))
    }
    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        value(d).map(|v| v.as_bool())
    }
    pub fn accepted<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Accepted>, D::Error> {
        value(d).map(|v| super::accepted(&v))
    }
    pub fn version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Version>, D::Error> {
        value(d).map(|v| super::version(&v))
    }
}

/// Fields a message cannot do without: of another type, the message does not decode (and
/// missing, it does not either, as `deserialize_with` without `default` makes it).
mod need {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    use crate::core::consensus::Accepted;
    use crate::core::roster::Member;

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Value::deserialize(d)?.as_u64().ok_or_else(|| D::Error::custom("not a whole number"))
    }
    pub fn accepted<'de, D: Deserializer<'de>>(d: D) -> Result<Accepted, D::Error> {
        super::accepted(&Value::deserialize(d)?).ok_or_else(|| D::Error::custom("not an accepted version"))
    }
    pub fn member<'de, D: Deserializer<'de>>(d: D) -> Result<Member, D::Error> {
        super::member(&Value::deserialize(d)?).ok_or_else(|| D::Error::custom("not a member"))
    }
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Value::deserialize(d)?.as_str().map(str::to_string).ok_or_else(|| D::Error::custom("not a string"))
    }
    /// `null`, or a valid node id.
    pub fn id_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::String(id) if crate::core::roster::valid_id(&id) => Ok(Some(id)),
            _ => Err(D::Error::custom("neither null nor a node id")),
        }
    }
    /// A valid accepted version (when the field is given at all).
    pub fn some_accepted<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Accepted>, D::Error> {
        accepted(d).map(Some)
    }
}

/// How the small objects are written: as their own `to_json` says.
mod encode {
    use serde::{Serialize, Serializer};

    use crate::core::consensus::Accepted;
    use crate::core::roster::Member;

    pub fn accepted<S: Serializer>(a: &Accepted, s: S) -> Result<S::Ok, S::Error> {
        a.to_json().serialize(s)
    }
    pub fn accepted_or_null<S: Serializer>(a: &Option<Accepted>, s: S) -> Result<S::Ok, S::Error> {
        a.as_ref().map(Accepted::to_json).serialize(s)
    }
    pub fn member<S: Serializer>(m: &Member, s: S) -> Result<S::Ok, S::Error> {
        m.to_json().serialize(s)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A request's body: compact.
fn to_bytes<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("a message of strings, numbers and JSON values serializes")
}

/// An answer's body: pretty, with a final newline, as every JSON answer of the core
/// (`core::json_response`).
fn to_answer<T: Serialize>(message: &T) -> Vec<u8> {
    let mut bytes =
        serde_json::to_vec_pretty(message).expect("a message of strings, numbers and JSON values serializes");
    bytes.push(b'\n');
    bytes
}

// --- The small objects a copy (and many messages) carry. ---

#[derive(Deserialize)]
struct VersionFields {
    #[serde(default, deserialize_with = "field::u64")]
    sequence: Option<u64>,
    #[serde(default, deserialize_with = "field::text")]
    checksum: Option<String>,
}

/// `{"sequence": N, "checksum": "40 hex digits"}`; anything else is `None`.
pub fn version(value: &Value) -> Option<Version> {
    let fields: VersionFields = fields(value).ok()?;
    Some(Version { sequence: fields.sequence?, checksum: Checksum::parse_hex(&fields.checksum?)? })
}

#[derive(Deserialize)]
struct AcceptedFields {
    #[serde(default, deserialize_with = "field::u64")]
    term: Option<u64>,
}

/// `{"term": T, "sequence": N, "checksum": "..."}`, with a term within `limits::TERM_MAX`.
pub fn accepted(value: &Value) -> Option<Accepted> {
    let fields: AcceptedFields = fields(value).ok()?;
    let term = fields.term.filter(|t| *t <= TERM_MAX)?;
    Some(Accepted { term, version: version(value)? })
}

#[derive(Deserialize)]
struct MemberFields {
    #[serde(default, deserialize_with = "field::text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    address: Option<String>,
}

/// `{"id": "...", "address": "host:port"}`: a valid id and an address that is not empty.
pub fn member(value: &Value) -> Option<Member> {
    let MemberFields { id, address } = fields(value).ok()?;
    let (id, address) = (id?, address?);
    (valid_id(&id) && !address.is_empty()).then_some(Member { id, address })
}

#[derive(Deserialize)]
struct CoordinationFields {
    #[serde(default, deserialize_with = "field::text")]
    cluster: Option<String>,
    #[serde(default, deserialize_with = "field::u64")]
    term: Option<u64>,
    #[serde(default, deserialize_with = "field::any")]
    voters: Option<Value>,
    #[serde(default, deserialize_with = "field::any")]
    removed: Option<Value>,
}

/// `{"cluster": "...", "term": T, "voters": [member...], "removed": ["id"...]}` (`removed` may be
/// missing; every voter must be valid). The voters come sorted, without repeated ids.
pub fn coordination(value: &Value) -> Option<Coordination> {
    let fields: CoordinationFields = fields(value).ok()?;
    let cluster = fields.cluster?;
    // A term above the bound is forged or corrupt (`limits::TERM_MAX`).
    let term = fields.term.filter(|t| *t <= TERM_MAX)?;
    let mut voters: Vec<Member> = fields.voters?.as_array()?.iter().map(member).collect::<Option<_>>()?;
    voters.sort();
    voters.dedup_by(|a, b| a.id == b.id);
    let removed: Vec<String> = match fields.removed {
        None => Vec::new(),
        Some(list) => list.as_array()?.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<_>>()?,
    };
    valid_id(&cluster).then_some(Coordination { cluster, term, voters, removed })
}

#[derive(Deserialize)]
struct LineageFields {
    #[serde(default, deserialize_with = "field::u64")]
    from: Option<u64>,
    #[serde(default, deserialize_with = "field::text")]
    ids: Option<String>,
}

/// A lineage's `{"from": N, "ids": "hex..."}`, not checked yet (`Lineage::from_json` does).
pub fn lineage_fields(value: &Value) -> Option<(u64, String)> {
    let fields: LineageFields = fields(value).ok()?;
    Some((fields.from?, fields.ids?))
}

// --- On disk, in the same shapes: `node.json`, a snapshot's own commits. ---

#[derive(Deserialize)]
struct NodeStateFields {
    #[serde(deserialize_with = "need::text")]
    id: String,
    #[serde(deserialize_with = "need::u64")]
    term: u64,
    /// Required, `null` when the node voted for nobody in `term`.
    #[serde(deserialize_with = "need::id_or_null")]
    vote: Option<String>,
    /// A file from before clusters had ids has none.
    #[serde(default, deserialize_with = "need::id_or_null")]
    cluster: Option<String>,
    /// A file from before the commit point was kept has none; given, it must be valid.
    #[serde(default, deserialize_with = "need::some_accepted")]
    committed: Option<Accepted>,
}

/// `node.json`: `{"cluster", "id", "term", "vote"}` and, once known, `"committed"`; `None` for
/// anything else.
pub fn node_state(value: &Value) -> Option<NodeState> {
    let NodeStateFields { id, term, vote, cluster, committed } = fields(value).ok()?;
    valid_id(&id).then_some(NodeState { id, term, vote, cluster, committed })
}

#[derive(Deserialize)]
struct OwnCommitFields {
    #[serde(default, deserialize_with = "field::flag")]
    superseded: bool,
}

/// Whether a snapshot's own commit (`{"checksum", "sequence", "superseded"}`) is superseded
/// (missing or not a boolean: it is not).
pub fn own_commit_superseded(value: &Value) -> bool {
    fields::<OwnCommitFields>(value).is_ok_and(|f| f.superseded)
}

/// The version a `PUT /copy` was answered with (`{"checksum": ..., "sequence": ...}`).
pub fn copy_answer(body: &[u8]) -> Option<Version> {
    version(&serde_json::from_slice(body).ok()?)
}

// --- Why a peer is not usable. ---

/// Why a peer is not usable, as the table keeps it; `Display` gives the text of the log and of
/// `GET /state`'s `problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerProblem {
    /// No answer: the connection failed or timed out (the transport's words).
    Unreachable(String),
    /// It answered 401: it refuses this node's cluster key (or token).
    RefusesKey,
    /// It is known to be of another cluster or write mode: the failure's words as they came
    /// (`peering::Mismatch::message`, or the transport's when the link fails afterwards).
    Mismatch(String),
}

impl std::fmt::Display for PeerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerProblem::Unreachable(e) => write!(f, "unreachable: {e}"),
            PeerProblem::RefusesKey => f.write_str(
                "it refuses this node's key (401): give every node the same --cluster-key-file (or, without one, \
                 the same --token-file)",
            ),
            PeerProblem::Mismatch(message) => f.write_str(message),
        }
    }
}

mod coordinated;
mod gossip;
pub use coordinated::{
    AcceptAnswer, AcceptChange, AcceptRefusal, Beat, BeatAnswer, ChangeRefusal, VoteAnswer, VoteRequest,
};
pub use gossip::{GossipEntry, PeerState, PeerStateEntry, StoredPeer};

#[cfg(test)]
mod tests;
