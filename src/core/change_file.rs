//! Change files: a commit's file in `--data.d` when it holds the change, not the store. Same names
//! as full snapshots (`YYYYMMDDTHHMMSS.ffffff.json`), so listing, ordering and retention are one
//! mechanism; the bytes hold
//!
//! `{"cluster":[peers],"change":{"patch":[...],"lineage":{...},"version":V,"coordination":{...},"base":B},"committed":false,"mine":[...],"file-sha1":"..."}`
//!
//! that is: the RFC 6902 patch that makes version `V` from version `B` (`core::change`),
//! everything a full snapshot holds about the version but its data (lineage, coordination in
//! coordinated mode, the cluster table, this node's own commits, whether it is known committed;
//! `"committed"` only when false, `"coordination"` only in coordinated mode), and the SHA-1 of every
//! byte before `,"file-sha1"`. The version stands after the patch and the base after the version,
//! so a file's last bytes name its version, its term and, for a change file, its base (`peek`),
//! however large the patch. This is the format only; `core::chain` decides which file a version
//! gets and loads the chains at start.

use std::io::{self, Write};

use crate::core::change::Change;
use crate::core::lineage::Lineage;
use crate::core::roster::Coordination;
use crate::core::sealed::{DecodeError, StoreCopy, json_error};
use crate::core::snapshot::{
    FILE_SHA1_CLOSE, FILE_SHA1_OPEN, NodeJson, OwnCommit, check_file_sha1, cluster_of, mine_of,
};
use crate::core::version::{Checksum, Version};

/// A change file, decoded and checked against its file checksum (the patch is applied by the
/// loader).
#[derive(Debug, Clone)]
pub struct ChangeFile {
    pub change: Change,
    pub lineage: Lineage,
    pub coordination: Option<Coordination>,
    pub cluster: Vec<serde_json::Value>,
    pub mine: Vec<OwnCommit>,
    pub committed: bool,
}

/// The bytes of the change file of `change`, whose version is `copy`'s (its lineage and
/// coordination are written; its data is not).
pub fn encode(node: &NodeJson, change: &Change, copy: &StoreCopy) -> Vec<u8> {
    let mut out = Vec::with_capacity(change.patch.len() + node.cluster.len() + node.mine.len() + 512);
    out.extend_from_slice(b"{\"cluster\":");
    out.extend_from_slice(&node.cluster);
    out.extend_from_slice(b",\"change\":{\"patch\":");
    out.extend_from_slice(&change.patch);
    out.extend_from_slice(b",\"lineage\":");
    out.extend_from_slice(copy.lineage.to_compact().as_bytes());
    out.extend_from_slice(b",\"version\":");
    out.extend_from_slice(change.version.to_compact().as_bytes());
    if let Some(coordination) = &copy.coordination {
        out.extend_from_slice(b",\"coordination\":");
        out.extend_from_slice(coordination.to_compact().as_bytes());
    }
    out.extend_from_slice(b",\"base\":");
    out.extend_from_slice(change.base.to_compact().as_bytes());
    out.push(b'}');
    if !node.committed {
        out.extend_from_slice(b",\"committed\":false");
    }
    out.extend_from_slice(b",\"mine\":");
    out.extend_from_slice(&node.mine);
    let sha1 = Checksum::of_bytes(&out).to_string();
    out.extend_from_slice(FILE_SHA1_OPEN);
    out.extend_from_slice(sha1.as_bytes());
    out.extend_from_slice(FILE_SHA1_CLOSE);
    out
}

/// Writes `bytes` (a change file) to `out`.
pub fn write(mut out: impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// True when `bytes` are laid out as a change file (`{"cluster":[...],"change":`), whatever
/// else is wrong with them; anything else is read as a full snapshot.
pub fn is_change_file(bytes: &[u8]) -> bool {
    let Some(cluster) = bytes.strip_prefix(b"{\"cluster\":") else { return false };
    let mut values = serde_json::Deserializer::from_slice(cluster).into_iter::<serde::de::IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => cluster[values.byte_offset()..].starts_with(b",\"change\":"),
        _ => false,
    }
}

/// Parses and checks a change file's bytes: its file checksum must match (a change file always
/// has one), and its fields be as `encode` writes them, in any order.
pub fn decode(bytes: &[u8]) -> Result<ChangeFile, DecodeError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Fields<'a> {
        cluster: Option<serde_json::Value>,
        #[serde(borrow)]
        change: ChangeFields<'a>,
        committed: Option<bool>,
        mine: Option<serde_json::Value>,
        #[serde(rename = "file-sha1")]
        _file_sha1: serde::de::IgnoredAny,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ChangeFields<'a> {
        base: serde_json::Value,
        #[serde(borrow)]
        patch: &'a serde_json::value::RawValue,
        lineage: serde_json::Value,
        version: serde_json::Value,
        coordination: Option<serde_json::Value>,
    }
    if !check_file_sha1(bytes)? {
        return Err(DecodeError::Shape("a change file ends with its \"file-sha1\""));
    }
    let fields: Fields = serde_json::from_slice(bytes).map_err(json_error)?;
    let ChangeFields { base, patch, lineage, version, coordination } = fields.change;
    let change = Change::from_parts(&base, &version, patch.get().as_bytes())?;
    let coordination = match coordination {
        None => None,
        Some(value) => Some(Coordination::from_json(&value).ok_or(DecodeError::Shape(
            "the change's \"coordination\" is not {\"cluster\", \"term\", \"voters\": [{\"id\", \"address\"}]}",
        ))?),
    };
    Ok(ChangeFile {
        lineage: Lineage::from_json(Some(&lineage), change.version),
        change,
        coordination,
        cluster: cluster_of(fields.cluster)?,
        mine: mine_of(fields.mine)?,
        committed: fields.committed.unwrap_or(true),
    })
}

/// What a file's last bytes say about it, without reading it whole: the version it holds, the
/// term of that version (0 outside coordinated mode), and, for a change file, the version it
/// applies to. A hint: the file is checked in full when it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peeked {
    pub term: u64,
    pub version: Version,
    pub base: Option<Version>,
}

impl Peeked {
    /// The order files are tried in with coordinated writes: (term, sequence).
    pub fn order(&self) -> (u64, u64) {
        (self.term, self.version.sequence)
    }
}

/// Reads `Peeked` from a file's last bytes (full snapshot or change file): the last
/// `,"version":` is the version's (the data and the patch stand before it), then maybe the
/// coordination, then, in a change file, the base. `None` when the tail shows no version.
pub fn peek(tail: &[u8]) -> Option<Peeked> {
    const VERSION: &[u8] = b",\"version\":";
    let at = tail.windows(VERSION.len()).rposition(|w| w == VERSION)? + VERSION.len();
    let (version, mut rest) = one_value(&tail[at..])?;
    let version = Version::from_json(&version)?;
    let mut term = 0;
    if let Some(after) = rest.strip_prefix(b",\"coordination\":") {
        let (coordination, after) = one_value(after)?;
        term = coordination.get("term").and_then(serde_json::Value::as_u64).unwrap_or(0);
        rest = after;
    }
    let base = match rest.strip_prefix(b",\"base\":") {
        Some(after) => Some(Version::from_json(&one_value(after)?.0)?),
        None => None,
    };
    Some(Peeked { term, version, base })
}

/// The JSON value at the start of `bytes`, and what follows it.
fn one_value(bytes: &[u8]) -> Option<(serde_json::Value, &[u8])> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    let value = values.next()?.ok()?;
    Some((value, &bytes[values.byte_offset()..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sealed::seal;
    use crate::core::snapshot;
    use crate::core::value::Value;

    fn parse(text: &str) -> Value {
        Value::parse(text.as_bytes()).unwrap()
    }

    /// A change file of `{"a": 1, "version": 0}` at 4 made `{"a": 2, ...}` at 5, with a table.
    fn encoded(committed: bool) -> (Vec<u8>, Change) {
        let before = seal(parse(r#"{"a": 1, "version": {"sequence": 9}}"#), 4, None);
        let after = seal(parse(r#"{"a": 2, "version": {"sequence": 9}}"#), 5, Some(&before.copy.lineage));
        let change = Change::between(before.copy.version, &before.copy.root, after.copy.version, &after.copy.root)
            .expect("a small change");
        let node = NodeJson { cluster: br#"[{"address":"127.0.0.1:9"}]"#.to_vec(), mine: b"[]".to_vec(), committed };
        (encode(&node, &change, &after.copy), change)
    }

    #[test]
    fn a_change_file_round_trips_and_peeks_its_version_and_base() {
        for committed in [true, false] {
            let (bytes, change) = encoded(committed);
            assert!(is_change_file(&bytes));
            let file = decode(&bytes).unwrap();
            assert_eq!(file.change, change);
            assert_eq!(file.committed, committed);
            assert_eq!(file.lineage.current(), change.version);
            assert!(file.lineage.contains(&change.base));
            assert_eq!(file.cluster[0]["address"], "127.0.0.1:9");
            let peeked = peek(&bytes).unwrap();
            assert_eq!(peeked, Peeked { term: 0, version: change.version, base: Some(change.base) });
            assert_eq!(snapshot::peek_order(&bytes), Some((0, 5)), "the full files' peek reads it too");
        }
    }

    #[test]
    fn a_full_snapshot_is_not_a_change_file_and_peeks_without_base() {
        let sealed = seal(parse(r#"{"change": 1}"#), 3, None);
        let mut bytes = Vec::new();
        snapshot::encode(&mut bytes, &NodeJson::default(), &sealed.body, &mut || {}).unwrap();
        assert!(!is_change_file(&bytes));
        assert_eq!(peek(&bytes), Some(Peeked { term: 0, version: sealed.copy.version, base: None }));
    }

    #[test]
    fn every_truncation_and_flipped_bit_of_a_change_file_is_refused() {
        let (bytes, _) = encoded(false);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "a file cut at byte {cut} was accepted");
        }
        for position in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[position / 8] ^= 1 << (position % 8);
            assert!(decode(&damaged).is_err(), "a file with bit {position} flipped was accepted");
        }
    }
}
