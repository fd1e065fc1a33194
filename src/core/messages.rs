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
use crate::core::members::{Coordination, Member, valid_id};
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
    use crate::core::members::valid_id;
    use crate::core::version::Version;

    fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    pub fn any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        value(d).map(Some)
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
    /// A node id: a string of the shape `members::valid_id` allows.
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
    use crate::core::members::Member;

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Value::deserialize(d)?.as_u64().ok_or_else(|| D::Error::custom("not a whole number"))
    }
    pub fn accepted<'de, D: Deserializer<'de>>(d: D) -> Result<Accepted, D::Error> {
        super::accepted(&Value::deserialize(d)?).ok_or_else(|| D::Error::custom("not an accepted version"))
    }
    pub fn member<'de, D: Deserializer<'de>>(d: D) -> Result<Member, D::Error> {
        super::member(&Value::deserialize(d)?).ok_or_else(|| D::Error::custom("not a member"))
    }
}

/// How the small objects are written: as their own `to_json` says.
mod encode {
    use serde::{Serialize, Serializer};

    use crate::core::consensus::Accepted;
    use crate::core::members::Member;

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

/// The version a `PUT /copy` was answered with (`{"checksum": ..., "sequence": ...}`).
pub fn copy_answer(body: &[u8]) -> Option<Version> {
    version(&serde_json::from_slice(body).ok()?)
}

// --- Elections: `POST /cluster/vote` and its answer. ---

/// `POST /cluster/vote`: a candidate asks for a voter's vote in `term`; with `pre`, only whether
/// the voter would give it, without either of them taking up the term (Raft's pre-vote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The newest version the candidate accepted: a voter holding a newer one refuses.
    #[serde(deserialize_with = "need::accepted", serialize_with = "encode::accepted")]
    pub accepted: Accepted,
    #[serde(deserialize_with = "need::member", serialize_with = "encode::member")]
    pub candidate: Member,
    #[serde(default, deserialize_with = "field::flag", skip_serializing_if = "is_false")]
    pub pre: bool,
    #[serde(deserialize_with = "need::u64")]
    pub term: u64,
}

impl VoteRequest {
    /// `None` unless the body is JSON with a term, a valid candidate and its accepted version.
    pub fn decode(body: &[u8]) -> Option<VoteRequest> {
        body_fields(body)?.ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        to_bytes(self)
    }
}

/// A voter's answer to a vote request (or a pre-vote): granted, or refused and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteAnswer {
    /// The newest version the voter accepted: the new coordinator adopts the newest of them.
    #[serde(default, deserialize_with = "field::accepted", serialize_with = "encode::accepted_or_null")]
    pub accepted: Option<Accepted>,
    /// The voter's address, where its accepted version can be fetched (empty when not said).
    #[serde(default, deserialize_with = "field::text_or_empty")]
    pub address: String,
    #[serde(default, deserialize_with = "field::flag")]
    pub granted: bool,
    /// It answers a pre-vote.
    #[serde(default, deserialize_with = "field::flag", skip_serializing_if = "is_false")]
    pub pre: bool,
    /// The voter's term (0 when not said).
    #[serde(default, deserialize_with = "field::u64_or_zero")]
    pub term: u64,
    /// The voter's id, when valid.
    #[serde(default, deserialize_with = "field::id")]
    pub voter: Option<String>,
    #[serde(default, deserialize_with = "field::text", skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl VoteAnswer {
    /// `None` when the body is not JSON; any field of the wrong type is taken as not said.
    pub fn decode(body: &[u8]) -> Option<VoteAnswer> {
        body_fields(body)?.ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        to_answer(self)
    }
}

// --- Leases: `POST /cluster/beat` and its answer. ---

/// `POST /cluster/beat`: the coordinator of `term`, the committed version to serve (if it knows
/// its store to be committed), when it sent the beat (echoed in the answer), and whether it is
/// leaving the voters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    /// The cluster's id (said, not read: the headers carry the one that is checked).
    #[serde(default, deserialize_with = "field::text")]
    pub cluster: Option<String>,
    #[serde(default, deserialize_with = "field::accepted", serialize_with = "encode::accepted_or_null")]
    pub committed: Option<Accepted>,
    #[serde(deserialize_with = "need::member", serialize_with = "encode::member")]
    pub coordinator: Member,
    #[serde(default, deserialize_with = "field::flag", skip_serializing_if = "is_false")]
    pub leaving: bool,
    /// The coordinator's clock when it sent the beat, as sent: the answer echoes it unchanged.
    #[serde(default, deserialize_with = "field::any")]
    pub sent: Option<Value>,
    #[serde(deserialize_with = "need::u64")]
    pub term: u64,
}

impl Beat {
    /// `None` unless the body is JSON with a term and a valid coordinator.
    pub fn decode(body: &[u8]) -> Option<Beat> {
        body_fields(body)?.ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        to_bytes(self)
    }
}

/// A member's answer to a beat: whether it took it, and what it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BeatAnswer {
    #[serde(default, deserialize_with = "field::accepted", serialize_with = "encode::accepted_or_null")]
    pub accepted: Option<Accepted>,
    /// Its store, when it knows it to be committed.
    #[serde(default, deserialize_with = "field::accepted", serialize_with = "encode::accepted_or_null")]
    pub committed: Option<Accepted>,
    /// The member's id, when valid.
    #[serde(default, deserialize_with = "field::id")]
    pub id: Option<String>,
    /// It took the beat (its term was not newer).
    #[serde(default, deserialize_with = "field::flag")]
    pub ok: bool,
    /// The beat's `sent`, echoed.
    #[serde(default, deserialize_with = "field::any")]
    pub sent: Option<Value>,
    /// The member's term (0 when not said).
    #[serde(default, deserialize_with = "field::u64_or_zero")]
    pub term: u64,
}

impl BeatAnswer {
    /// `None` when the body is not JSON; any field of the wrong type is taken as not said.
    pub fn decode(body: &[u8]) -> Option<BeatAnswer> {
        body_fields(body)?.ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        to_answer(self)
    }

    /// The echoed send time of the beat, in the coordinator's milliseconds.
    pub fn sent_ms(&self) -> Option<u64> {
        self.sent.as_ref().and_then(Value::as_u64)
    }
}

// --- Replication: the answer to `PUT /cluster/accept`. ---

/// A voter's answer to a pushed version (`201` once durable): its term and what it holds. The
/// refusal of a version of an older term or another cluster (`409`) is an `AcceptRefusal`, read
/// the same way (it has no `accepted`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptAnswer {
    #[serde(default, deserialize_with = "field::accepted", serialize_with = "encode::accepted_or_null")]
    pub accepted: Option<Accepted>,
    #[serde(default, deserialize_with = "field::u64_or_zero")]
    pub term: u64,
}

impl AcceptAnswer {
    /// Never fails: a body that is not JSON (or no body: the push was lost) says nothing.
    pub fn decode(body: &[u8]) -> AcceptAnswer {
        body_fields(body).and_then(Result::ok).unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        to_answer(self)
    }
}

/// A voter's refusal of a pushed version of an older term or another cluster, with its term.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptRefusal {
    pub error: &'static str,
    pub term: u64,
}

impl AcceptRefusal {
    pub fn encode(&self) -> Vec<u8> {
        to_answer(self)
    }
}

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

// --- Why a peer is not usable. ---

/// Why a peer is not usable, as the table keeps it; `Display` gives the text of the log and of
/// `GET /state`'s `problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerProblem {
    /// No answer: the connection failed or timed out (the transport's words).
    Unreachable(String),
    /// It answered 401: it refuses this node's cluster key (or token).
    RefusesKey,
    /// It is of another cluster or write mode (`peering::Mismatch::message`).
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

#[cfg(test)]
mod tests;
