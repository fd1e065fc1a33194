//! The messages of coordinated writes: elections (`POST /cluster/vote` and its answer), leases
//! (`POST /cluster/beat` and its answer) and replication (`PUT /cluster/accept` as a change, and
//! the answers to `PUT /cluster/accept`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{body_fields, encode, field, is_false, need, to_answer, to_bytes};
use crate::core::change::Change;
use crate::core::consensus::Accepted;
use crate::core::lineage::Lineage;
use crate::core::roster::{Coordination, Member};
use crate::core::sealed::DecodeError;

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
    #[serde(default, deserialize_with = "field::echo")]
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
    #[serde(default, deserialize_with = "field::echo")]
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
    /// `"copy"` when the voter does not hold the base of a change pushed to it (`ChangeRefusal`):
    /// the coordinator sends it the whole copy.
    #[serde(default, deserialize_with = "field::text", skip_serializing_if = "Option::is_none")]
    pub need: Option<String>,
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

/// A version pushed as its change: `PUT /cluster/accept` (coordinated writes) and `PUT
/// /copy/change` (local writes). It is the version the patch makes from `base`, with what a whole
/// copy carries beside its data (the lineage, and with coordinated writes the coordination), so
/// that a node holding the base makes the same version as from the whole copy. Written
/// `{"change":{"base","patch","version"},"coordination":{...},"lineage":{...}}`, keys in
/// alphabetical order (no `coordination` with local writes); a whole copy starts `{"data":`, so
/// the two are told apart by their first key (`is_change`).
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptChange {
    pub change: Change,
    pub coordination: Option<Coordination>,
    pub lineage: Lineage,
}

impl AcceptChange {
    const START: &'static [u8] = b"{\"change\":";

    /// Whether a body pushed to `PUT /cluster/accept` is a change (else it is a whole copy).
    pub fn is_change(body: &[u8]) -> bool {
        body.starts_with(Self::START)
    }

    pub fn encode(change: &Change, coordination: Option<&Coordination>, lineage: &Lineage) -> Vec<u8> {
        let mut out = Self::START.to_vec();
        out.extend_from_slice(&change.to_compact());
        if let Some(coordination) = coordination {
            out.extend_from_slice(b",\"coordination\":");
            out.extend_from_slice(coordination.to_compact().as_bytes());
        }
        out.extend_from_slice(b",\"lineage\":");
        out.extend_from_slice(lineage.to_compact().as_bytes());
        out.push(b'}');
        out
    }

    /// The fields, each valid; the patch is kept as its text (it is parsed when applied).
    pub fn decode(body: &[u8]) -> Result<AcceptChange, DecodeError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields<'a> {
            #[serde(borrow)]
            change: &'a serde_json::value::RawValue,
            coordination: Option<Value>,
            lineage: Value,
        }
        let fields: Fields = serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
        let change = Change::parse(fields.change.get().as_bytes())?;
        let coordination = match &fields.coordination {
            None => None,
            Some(value) => Some(Coordination::from_json(value).ok_or(DecodeError::Shape(
                "the change's \"coordination\" is not {\"cluster\", \"term\", \"voters\": [{\"id\", \"address\"}]}",
            ))?),
        };
        let lineage = Lineage::from_json(Some(&fields.lineage), change.version);
        Ok(AcceptChange { change, coordination, lineage })
    }
}

/// A node's refusal of a change whose base it does not hold (`409`): `need` is `"copy"`, and the
/// sender sends the whole copy instead, or, to a voter that holds the version before the base
/// (`accepted`, said by voters only), the two changes at once. Read as an `AcceptAnswer`; `term`
/// is 0 with local writes.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRefusal {
    #[serde(serialize_with = "encode::accepted_or_null", skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Accepted>,
    pub error: String,
    pub need: &'static str,
    pub term: u64,
}

impl ChangeRefusal {
    pub fn encode(&self) -> Vec<u8> {
        to_answer(self)
    }
}
