//! Copies: how a store travels between nodes. A *copy* is a store with its version and lineage;
//! nodes exchange it as one compact JSON object, the copy body:
//! `{"data":STORE,"lineage":{...},"version":{...}}`, where `data` is exactly the bytes the
//! checksum is the SHA-1 of. In coordinated mode the body ends with the version's
//! `"coordination"` (its term, cluster and voters). Sealing renders and hashes a store once per version, and `GET /copy`,
//! pushes to peers and snapshot files all reuse the body. Sealing and decoding are pure (bytes in,
//! bytes and checksums out): the workers call them with a pacing hook, the simulation without.

use std::io::Write;
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::core::change::Change;
use crate::core::lineage::Lineage;
use crate::core::pace::Paced;
use crate::core::roster::Coordination;
use crate::core::value::{TextCache, Value, ValueSeed};
use crate::core::version::{Checksum, HashWriter, Version};
use crate::limits::STORE_DEPTH_MAX;

/// A copy of the store as peers exchange it and the disk keeps it: its version, its tree, its
/// recent history, and its roster (coordinated mode).
#[derive(Debug, Clone)]
pub struct StoreCopy {
    pub version: Version,
    pub root: Value,
    pub lineage: Lineage,
    /// The term, cluster and voters of the version (coordinated mode only).
    pub coordination: Option<Coordination>,
}

impl StoreCopy {
    /// The term the version was accepted in (0 outside coordinated mode).
    pub fn term(&self) -> u64 {
        self.coordination.as_ref().map_or(0, |c| c.term)
    }
}

/// A copy with its rendered body.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub copy: StoreCopy,
    /// `{"data":...,"lineage":[...],"version":{...}}`, compact.
    pub body: Arc<[u8]>,
    /// Bytes of the store's compact JSON (the `data` part of the body).
    pub data_len: usize,
    /// The version as the change from the version before it, when it was made by a commit here
    /// and the change is smaller than the store (`core::change`); `None` for a copy taken whole.
    pub change: Option<Arc<Change>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Json(String),
    Shape(&'static str),
    TooDeep,
    ChecksumMismatch {
        declared: Checksum,
        actual: Checksum,
    },
    FileChecksumMismatch {
        declared: String,
        actual: String,
    },
    /// A change whose base this node does not hold (its store, nor the version it holds pending).
    BaseMissing(Version),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "not JSON: {e}"),
            DecodeError::Shape(what) => write!(f, "{what}"),
            DecodeError::TooDeep => write!(f, "the data is nested deeper than {STORE_DEPTH_MAX} levels"),
            DecodeError::ChecksumMismatch { declared, actual } => {
                write!(f, "checksum mismatch: the version says {declared}, the data hashes to {actual}")
            }
            DecodeError::FileChecksumMismatch { declared, actual } => {
                write!(f, "file checksum mismatch: the file says {declared}, its bytes hash to {actual}")
            }
            DecodeError::BaseMissing(base) => write!(
                f,
                "this node does not hold sequence {} ({}), the base of the change; send the whole copy",
                base.sequence, base.checksum
            ),
        }
    }
}

/// Seals a new version: renders the store, hashes it, and builds the body. `parent` is the
/// lineage the new version extends (`None` for a store with no history).
pub fn seal(root: Value, sequence: u64, parent: Option<&Lineage>) -> Sealed {
    seal_paced(root, sequence, parent, None, &mut || {})
}

/// As `seal`, with the version's coordination, calling `pace` between pieces of the long render
/// and hash (the workers yield the core there).
pub fn seal_paced(
    root: Value,
    sequence: u64,
    parent: Option<&Lineage>,
    coordination: Option<Coordination>,
    pace: &mut dyn FnMut(),
) -> Sealed {
    seal_rendered(root, sequence, parent, coordination, None, pace)
}

/// As `seal_paced`, the body rendered with the text kept of unchanged subtrees when `text` is
/// given (`value::TextCache`, a worker's).
pub fn seal_rendered(
    root: Value,
    sequence: u64,
    parent: Option<&Lineage>,
    coordination: Option<Coordination>,
    text: Option<&mut TextCache>,
    pace: &mut dyn FnMut(),
) -> Sealed {
    let (mut body, data_len, checksum) = render_and_hash(&root, text, pace);
    let version = Version { sequence, checksum };
    let copy = StoreCopy { version, root, lineage: lineage_after(parent, version), coordination };
    finish_body(&mut body, &copy);
    Sealed { copy, body: body.into(), data_len, change: None }
}

/// As `seal_paced`, without the body: the store's canonical text is streamed into the hasher,
/// never rendered into a buffer, and the body is set aside (empty; rendered if it is ever needed:
/// `GET /copy` renders it off the loop, a full snapshot's write on the writer). A commit written
/// as a change file needs nothing more.
pub fn seal_set_aside(
    root: Value,
    sequence: u64,
    parent: Option<&Lineage>,
    coordination: Option<Coordination>,
    text: &mut TextCache,
    pace: &mut dyn FnMut(),
) -> Sealed {
    let (checksum, data_len) = crate::core::chain::checksum_and_len_cached(&root, text, pace);
    let version = Version { sequence, checksum };
    let copy = StoreCopy { version, root, lineage: lineage_after(parent, version), coordination };
    Sealed { copy, body: Arc::from(Vec::new()), data_len, change: None }
}

/// The lineage of a new `version` extending `parent`.
fn lineage_after(parent: Option<&Lineage>, version: Version) -> Lineage {
    match parent {
        Some(parent) if parent.current().sequence.checked_add(1) == Some(version.sequence) => parent.extended(version),
        // A version numbered past sequences lost with a damaged file starts a history of its own.
        _ => Lineage::of(version),
    }
}

/// The same version with another coordination (a new coordinator adopting it in its own term):
/// the data part of the body is kept, the rest rendered again.
pub fn restamp(sealed: &Sealed, coordination: Coordination) -> Sealed {
    let copy = StoreCopy { coordination: Some(coordination), ..sealed.copy.clone() };
    if sealed.body.is_empty() {
        // A body set aside stays so: it is rendered only if a peer needs the version whole.
        return Sealed { copy, body: sealed.body.clone(), data_len: sealed.data_len, change: sealed.change.clone() };
    }
    let data_end = DATA_START.len() + sealed.data_len;
    let mut body = sealed.body[..data_end].to_vec();
    finish_body(&mut body, &copy);
    Sealed { copy, body: body.into(), data_len: sealed.data_len, change: sealed.change.clone() }
}

/// Where the data starts in every copy body.
const DATA_START: &[u8] = b"{\"data\":";

/// Renders the body of a copy that is already sealed (one whose body was set aside to save
/// memory); gives the body and the length of its data.
pub fn render_body(copy: &StoreCopy) -> (Arc<[u8]>, usize) {
    render_body_paced(copy, &mut || {})
}

/// As `render_body`, calling `pace` between pieces of the render.
pub fn render_body_paced(copy: &StoreCopy, pace: &mut dyn FnMut()) -> (Arc<[u8]>, usize) {
    let mut body = DATA_START.to_vec();
    copy.root.write_compact(&mut Paced::new(&mut body, pace)).expect("writing to a Vec cannot fail");
    let data_len = body.len() - DATA_START.len();
    finish_body(&mut body, copy);
    (body.into(), data_len)
}

/// As `render_body_paced`, copying the text kept of unchanged subtrees (`value::TextCache`)
/// instead of rendering it, when the thread keeps some. A thread that keeps none (it has not
/// hashed a store: the decoder of a node no peer sends changes to, the writer of a voter)
/// renders plainly: keeping a store's text for an occasional render would only cost memory.
pub fn render_body_cached(copy: &StoreCopy, text: &mut TextCache, pace: &mut dyn FnMut()) -> (Arc<[u8]>, usize) {
    if text.is_empty() {
        return render_body_paced(copy, pace);
    }
    let mut body = DATA_START.to_vec();
    text.write(&copy.root, &mut Paced::new(&mut body, pace)).expect("writing to a Vec cannot fail");
    let data_len = body.len() - DATA_START.len();
    finish_body(&mut body, copy);
    (body.into(), data_len)
}

/// Appends `,"lineage":{...},"version":{...}}` after the data.
fn finish_body(body: &mut Vec<u8>, copy: &StoreCopy) {
    body.extend_from_slice(b",\"lineage\":");
    finish_body_tail(body, copy);
}

/// Appends the lineage's own JSON, `,"version":{...}`, the coordination if any, and the closing
/// brace.
pub(crate) fn finish_body_tail(body: &mut Vec<u8>, copy: &StoreCopy) {
    body.extend_from_slice(copy.lineage.to_compact().as_bytes());
    body.extend_from_slice(b",\"version\":");
    body.extend_from_slice(copy.lineage.current().to_compact().as_bytes());
    if let Some(coordination) = &copy.coordination {
        body.extend_from_slice(b",\"coordination\":");
        body.extend_from_slice(coordination.to_compact().as_bytes());
    }
    body.push(b'}');
}

/// The fields of a copy as parsed: the store straight into a tree, the small rest as JSON.
#[derive(Default)]
pub(crate) struct CopyFields {
    version: Option<serde_json::Value>,
    lineage: Option<serde_json::Value>,
    coordination: Option<serde_json::Value>,
    data: Option<Value>,
}

impl CopyFields {
    /// Checks the version and gives the copy (its lineage falls back to the version alone).
    pub(crate) fn into_copy(self) -> Result<StoreCopy, DecodeError> {
        let version = self.version.as_ref().and_then(Version::from_json).ok_or(DecodeError::Shape(
            "the copy has no valid \"version\" {\"sequence\": N, \"checksum\": \"40 hex digits\"}",
        ))?;
        if version.sequence == u64::MAX {
            // No commit could follow it: a sequence must leave room for the next one.
            return Err(DecodeError::Shape("the copy's sequence is the largest possible"));
        }
        let lineage = Lineage::from_json(self.lineage.as_ref(), version);
        let root = self.data.ok_or(DecodeError::Shape("the copy has no \"data\""))?;
        let coordination = match &self.coordination {
            None => None,
            Some(value) => Some(Coordination::from_json(value).ok_or(DecodeError::Shape(
                "the copy's \"coordination\" is not {\"cluster\", \"term\", \"voters\": [{\"id\", \"address\"}]}",
            ))?),
        };
        Ok(StoreCopy { version, root, lineage, coordination })
    }
}

/// Parses a copy object: `{"data": ..., "lineage": [...], "version": {...}}`, in any order.
pub(crate) struct CopySeed;

impl<'de> DeserializeSeed<'de> for CopySeed {
    type Value = CopyFields;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<CopyFields, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CopySeed {
    type Value = CopyFields;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a copy: an object with \"version\" and \"data\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CopyFields, A::Error> {
        let mut fields = CopyFields::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "data" => fields.data = Some(map.next_value_seed(ValueSeed)?),
                "version" => fields.version = Some(map.next_value()?),
                "lineage" => fields.lineage = Some(map.next_value()?),
                "coordination" => fields.coordination = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// Renders the canonical body of a copy and checks the data against the version's checksum.
pub(crate) fn seal_checked(copy: StoreCopy, pace: &mut dyn FnMut()) -> Result<Sealed, DecodeError> {
    let (mut body, data_len, actual) = render_and_hash(&copy.root, None, pace);
    if actual != copy.version.checksum {
        return Err(DecodeError::ChecksumMismatch { declared: copy.version.checksum, actual });
    }
    finish_body(&mut body, &copy);
    Ok(Sealed { copy, body: body.into(), data_len, change: None })
}

/// Parses and checks a copy sent by a peer (`PUT /copy`, or the answer to `GET /copy`).
pub fn parse_copy(bytes: &[u8]) -> Result<Sealed, DecodeError> {
    parse_copy_paced(bytes, &mut || {})
}

/// As `parse_copy`, calling `pace` between pieces of the long parse, render and hash.
///
/// A copy laid out as nodes send it (`{"data":DATA,"lineage":...}` with DATA the tree's
/// canonical JSON, which is what every node sends) is read in one pass and its body kept as it
/// came; anything else is parsed in general and its canonical body rendered anew.
pub fn parse_copy_paced(bytes: &[u8], pace: &mut dyn FnMut()) -> Result<Sealed, DecodeError> {
    if let Some(sealed) = parse_canonical_copy(bytes, pace) {
        return sealed;
    }
    seal_checked(copy_fields(bytes).map_err(json_error)?.into_copy()?, pace)
}

/// A copy whose body is canonical, read in one pass: its data parsed where it stands, and the rest
/// (the frame: the body with `null` for the data) parsed and rendered again to compare. `None`
/// when anything departs from that form; a checksum mismatch is final.
fn parse_canonical_copy(bytes: &[u8], pace: &mut dyn FnMut()) -> Option<Result<Sealed, DecodeError>> {
    let rest = bytes.strip_prefix(DATA_START)?;
    let (root, data_len) = Value::parse_canonical(rest, pace)?;
    let (data, tail) = rest.split_at(data_len);
    let frame = [DATA_START, b"null", tail].concat();
    let mut copy = copy_fields(&frame).ok()?.into_copy().ok()?;
    let mut canonical_tail = Vec::new();
    finish_body(&mut canonical_tail, &copy);
    if tail != canonical_tail {
        return None;
    }
    let mut hash = Paced::new(HashWriter::default(), pace);
    hash.write_all(data).expect("hashing cannot fail");
    let actual = hash.into_inner().finish();
    if actual != copy.version.checksum {
        return Some(Err(DecodeError::ChecksumMismatch { declared: copy.version.checksum, actual }));
    }
    copy.root = root;
    Some(Ok(Sealed { copy, body: bytes.into(), data_len, change: None }))
}

/// A copy body's fields, the whole text one copy object.
fn copy_fields(bytes: &[u8]) -> Result<CopyFields, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    CopySeed.deserialize(&mut deserializer).and_then(|fields| deserializer.end().map(|()| fields))
}

pub(crate) fn json_error(e: serde_json::Error) -> DecodeError {
    if e.to_string().contains("deeper than") { DecodeError::TooDeep } else { DecodeError::Json(e.to_string()) }
}

/// The start of a copy body, `{"data":` and the store's compact JSON, with the length and the
/// checksum of that JSON; rendered and hashed paced, since the workers call it on large stores.
fn render_and_hash(root: &Value, text: Option<&mut TextCache>, pace: &mut dyn FnMut()) -> (Vec<u8>, usize, Checksum) {
    let mut body = DATA_START.to_vec();
    let data_start = body.len();
    let mut out = Paced::new(&mut body, &mut *pace);
    match text {
        Some(text) => text.write(root, &mut out),
        None => root.write_compact(&mut out),
    }
    .expect("writing to a Vec cannot fail");
    let mut hash = Paced::new(HashWriter::default(), pace);
    hash.write_all(&body[data_start..]).expect("hashing cannot fail");
    let data_len = body.len() - data_start;
    (body, data_len, hash.into_inner().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::roster::{Member, new_id};

    #[test]
    fn a_restamped_copy_keeps_its_data_and_version_and_parses_back() {
        let member = Member { id: new_id(1), address: "10.0.0.1:8001".into() };
        let first = Coordination { cluster: new_id(7), term: 1, voters: vec![member], removed: vec![] };
        let sealed = seal_paced(seed(), 4, None, Some(first.clone()), &mut || {});
        let again = restamp(&sealed, first.in_term(5));
        assert_eq!(again.copy.version, sealed.copy.version);
        assert_eq!(again.copy.term(), 5);
        let parsed = parse_copy(&again.body).unwrap();
        assert_eq!(parsed.body, again.body, "the body is canonical");
        assert_eq!(parsed.copy.coordination, Some(first.in_term(5)));
        assert_eq!(parse_copy(&seal(seed(), 4, None).body).unwrap().copy.coordination, None);
    }

    #[test]
    fn a_body_rendered_with_kept_text_is_the_plain_body() {
        let wide: Vec<String> =
            (0..3_000).map(|i| format!(r#""service-{i:05}": {{"port": {i}, "tags": ["a", "b"]}}"#)).collect();
        let mut root = Value::parse(format!("{{{}}}", wide.join(",")).as_bytes()).unwrap();
        let mut text = TextCache::default();
        let sealed = seal(root.clone(), 1, None);
        assert_eq!(render_body_cached(&sealed.copy, &mut text, &mut || {}).0, sealed.body);
        assert!(text.is_empty(), "a thread that keeps no text renders plainly and keeps none");
        for sequence in 2..6 {
            root.put(&["service-00042", "port"], Value::UInt(sequence), STORE_DEPTH_MAX).unwrap();
            let kept = seal_rendered(root.clone(), sequence, None, None, Some(&mut text), &mut || {});
            let plain = seal(root.clone(), sequence, None);
            assert_eq!((&kept.body, kept.data_len), (&plain.body, plain.data_len));
            assert_eq!(render_body_cached(&plain.copy, &mut text, &mut || {}).0, plain.body);
            assert!(!text.is_empty());
        }
    }

    fn seed() -> Value {
        Value::parse(br#"{"size": 1024, "providers": {"beta": ["192.168.2.1"]}}"#).unwrap()
    }

    #[test]
    fn a_copy_body_parses_as_json_with_its_version() {
        let sealed = seal(seed(), 1, None);
        let value: serde_json::Value = serde_json::from_slice(&sealed.body).unwrap();
        assert_eq!(value["data"]["size"], 1024);
        assert_eq!(Version::from_json(&value["version"]), Some(sealed.copy.version));
        let parsed = parse_copy(&sealed.body).unwrap();
        assert_eq!(parsed.body, sealed.body);
    }

    #[test]
    fn a_checksum_that_does_not_match_is_refused() {
        let text = format!(
            r#"{{"version": {{"sequence": 1, "checksum": "{}"}}, "data": {{"a": 1}}}}"#,
            Version::initial().checksum
        );
        assert!(matches!(parse_copy(text.as_bytes()), Err(DecodeError::ChecksumMismatch { .. })));
        assert!(matches!(parse_copy(b"[1]"), Err(DecodeError::Json(_))), "not an object");
        assert!(matches!(parse_copy(b"{\"data\": 1}"), Err(DecodeError::Shape(_))), "no version");
        assert!(matches!(parse_copy(b"{\"data\": 1"), Err(DecodeError::Json(_))));
    }
}
