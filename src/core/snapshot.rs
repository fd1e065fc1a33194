//! Snapshot files: how a store lands on disk. `--data.d` holds one file per version, named by its
//! UTC time (`YYYYMMDDTHHMMSS.ffffff.json`) and holding
//! `{"cluster":[peers],"copy":BODY,"mine":[...],"file-sha1":"..."}`. The file checksum is the
//! SHA-1 of every byte before `,"file-sha1"`, because the store's checksum covers only the data:
//! a flipped bit in the sequence or the cluster list would otherwise pass. A file is valid when
//! its file checksum matches (or, for a file written by hand without one, when the checksum of
//! its data matches its version); a file cut short or with any single flipped bit fails.
//!
//! This is the format only, bytes in and bytes out; the shell's `data_dir` reads and writes the
//! directory.

use std::io::{self, Write};
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::core::clock::Civil;
use crate::core::pace::Paced;
use crate::core::sealed::{
    CopyFields, CopySeed, DecodeError, Sealed, StoreCopy, finish_body_tail, json_error, seal_checked,
};
use crate::core::snapshot_written;
use crate::core::value::Value;
use crate::core::version::{Checksum, HashWriter, Version};

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub sealed: Sealed,
    /// The cluster table as it was written: one JSON object per peer.
    pub cluster: Vec<serde_json::Value>,
    /// This node's own recent commits, to count them if a concurrent commit supersedes them.
    pub mine: Vec<OwnCommit>,
    /// False for a version that was not known to be committed when it was written (coordinated
    /// mode: accepted, waiting for a majority); such a store is not served after a restart until
    /// the cluster says it is committed.
    pub committed: bool,
}

/// One of this node's own commits, and whether the store has moved to a history without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnCommit {
    pub version: Version,
    pub superseded: bool,
}

impl OwnCommit {
    /// `{"checksum": "...", "sequence": N, "superseded": false}`.
    pub fn to_compact(&self) -> String {
        format!(
            r#"{{"checksum":"{}","sequence":{},"superseded":{}}}"#,
            self.version.checksum, self.version.sequence, self.superseded
        )
    }

    fn from_json(value: &serde_json::Value) -> Option<OwnCommit> {
        let superseded = crate::core::messages::own_commit_superseded(value);
        Some(OwnCommit { version: Version::from_json(value)?, superseded })
    }
}

/// What a snapshot holds about the node itself, rendered as compact JSON by the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeJson {
    /// The cluster table: `[{"address": ..., ...}, ...]`.
    pub cluster: Vec<u8>,
    /// This node's own recent commits: `[{"checksum": ..., "sequence": ...}, ...]`.
    pub mine: Vec<u8>,
    /// Whether the version written is known to be committed (see `Snapshot::committed`).
    pub committed: bool,
}

impl NodeJson {
    /// Appends a version to `mine` (used by the writer once a commit's checksum is known).
    pub fn add_mine(&mut self, version: Version) {
        let closing = self.mine.pop();
        debug_assert_eq!(closing, Some(b']'), "mine is a JSON list");
        if self.mine.len() > 1 {
            self.mine.push(b',');
        }
        self.mine.extend_from_slice(OwnCommit { version, superseded: false }.to_compact().as_bytes());
        self.mine.push(b']');
    }
}

impl Default for NodeJson {
    fn default() -> NodeJson {
        NodeJson { cluster: b"[]".to_vec(), mine: b"[]".to_vec(), committed: true }
    }
}

#[derive(Default)]
pub(super) struct FileFields {
    cluster: Option<serde_json::Value>,
    committed: Option<bool>,
    copy: Option<CopyFields>,
    mine: Option<serde_json::Value>,
    file_sha1: bool,
}

/// Parses a snapshot file's top-level object in one pass, the store straight into a tree.
struct FileSeed;

impl<'de> DeserializeSeed<'de> for FileSeed {
    type Value = FileFields;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<FileFields, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed {
    type Value = FileFields;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a snapshot: an object with \"copy\" and \"cluster\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileFields, A::Error> {
        let mut fields = FileFields::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "cluster" => fields.cluster = Some(map.next_value()?),
                "copy" => fields.copy = Some(map.next_value_seed(CopySeed)?),
                "committed" => fields.committed = Some(map.next_value()?),
                "mine" => fields.mine = Some(map.next_value()?),
                "file-sha1" => {
                    map.next_value::<IgnoredAny>()?;
                    fields.file_sha1 = true;
                }
                _ => {
                    return Err(de::Error::custom(
                        "the snapshot has a field other than \"cluster\", \"committed\", \"copy\", \"mine\", \"file-sha1\"",
                    ));
                }
            }
        }
        Ok(fields)
    }
}

/// Parses and checks a snapshot file's bytes.
///
/// A file laid out as this server writes it has its copy body taken as it stands in the file, and
/// its data read in one pass that also checks that it is the tree's canonical JSON; then the file
/// checksum (over every byte before it) and the data's checksum (over the data's bytes) are
/// computed together, in one pass that costs little more than one (`Sha1::digest_pair`), and
/// both must match. Any other file, or one whose data does not match its version, has its file
/// checksum checked first, then is parsed in general and checked by rendering its data into a new
/// body and hashing that.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    decode_keeping(bytes, true)
}

/// As `decode`; without `keep_body` the copy body of a file this server wrote is not copied out of
/// the file (the sealed copy then has an empty body, rendered again if it is ever needed). A node
/// without peers has no use for it, and it is as large as the store's JSON. A file that names
/// peers keeps it whatever `keep_body` says.
pub fn decode_keeping(bytes: &[u8], keep_body: bool) -> Result<Snapshot, DecodeError> {
    if let Some(snapshot) = snapshot_written::decode(bytes, keep_body)? {
        return Ok(snapshot);
    }
    let file_checked = check_file_sha1(bytes)?;
    let fields = parse_fields(bytes)?;
    if fields.file_sha1 && !file_checked {
        return Err(DecodeError::Shape("\"file-sha1\" is not the last field of the snapshot"));
    }
    let parts = Parts::of(fields)?;
    let copy = &parts.copy;
    let canonical = |data: &[u8]| Checksum::of_bytes(data) == copy.version.checksum && renders_to(&copy.root, data);
    let written = file_checked.then(|| written_body(bytes, &parts, canonical)).flatten();
    let keep_body = keep_body || !parts.cluster.is_empty();
    let sealed = match written {
        Some((body, data_len)) => {
            let body = if keep_body { Arc::from(&bytes[body]) } else { Arc::from(Vec::new()) };
            Sealed { copy: parts.copy, body, data_len, change: None }
        }
        None => seal_checked(parts.copy, &mut || {})?,
    };
    Ok(Snapshot { sealed, cluster: parts.cluster, mine: parts.mine, committed: parts.committed })
}

pub(super) fn parse_fields(bytes: &[u8]) -> Result<FileFields, DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let fields = FileSeed.deserialize(&mut deserializer).and_then(|f| deserializer.end().map(|()| f));
    fields.map_err(json_error)
}

/// A snapshot file's fields, checked.
pub(super) struct Parts {
    pub(super) cluster: Vec<serde_json::Value>,
    pub(super) mine: Vec<OwnCommit>,
    pub(super) committed: bool,
    pub(super) copy: StoreCopy,
}

impl Parts {
    pub(super) fn of(fields: FileFields) -> Result<Parts, DecodeError> {
        let (cluster, mine) = (cluster_of(fields.cluster)?, mine_of(fields.mine)?);
        let copy = fields.copy.ok_or(DecodeError::Shape("the snapshot has no \"copy\""))?.into_copy()?;
        Ok(Parts { cluster, mine, committed: fields.committed.unwrap_or(true), copy })
    }
}

/// A file's `"cluster"` field: a list of peers (none when it is missing).
pub(crate) fn cluster_of(field: Option<serde_json::Value>) -> Result<Vec<serde_json::Value>, DecodeError> {
    match field {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(peers)) => Ok(peers),
        Some(_) => Err(DecodeError::Shape("\"cluster\" is not a list")),
    }
}

/// A file's `"mine"` field: this node's own recent commits (none when it is missing).
pub(crate) fn mine_of(field: Option<serde_json::Value>) -> Result<Vec<OwnCommit>, DecodeError> {
    match field {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(versions)) => versions
            .iter()
            .map(OwnCommit::from_json)
            .collect::<Option<Vec<OwnCommit>>>()
            .ok_or(DecodeError::Shape("\"mine\" is not a list of versions")),
        Some(_) => Err(DecodeError::Shape("\"mine\" is not a list of versions")),
    }
}

/// Where the copy body stands in a file this server wrote, and the length of its data, or `None`
/// when the file is not laid out exactly so. The file is `{"cluster":C,"copy":BODY,"mine":M,
/// "file-sha1":"..."}` and BODY is `{"data":DATA,"lineage":L,"version":V}`: C, M, L and V are
/// rendered again from what was parsed and must match the bytes around BODY and DATA, so nothing
/// inside DATA can be taken for a boundary. `data_is_canonical` must hold of DATA: that it hashes
/// to the version's checksum and is the tree's own compact JSON, since a file checksum vouches
/// that no byte changed since it was written, not that the writer was this server.
pub(super) fn written_body(
    bytes: &[u8],
    parts: &Parts,
    data_is_canonical: impl FnOnce(&[u8]) -> bool,
) -> Option<(std::ops::Range<usize>, usize)> {
    let mut head = b"{\"cluster\":".to_vec();
    head.extend_from_slice(&serde_json::to_vec(&parts.cluster).ok()?);
    head.extend_from_slice(b",\"copy\":{\"data\":");
    let mine: Vec<String> = parts.mine.iter().map(OwnCommit::to_compact).collect();
    let tail = format!("{},\"mine\":[{}]", if parts.committed { "" } else { ",\"committed\":false" }, mine.join(","));
    let covered = bytes.len().checked_sub(FILE_SHA1_BYTES)?;
    let body_end = covered.checked_sub(tail.len())?;
    if !bytes.starts_with(&head) || &bytes[body_end..covered] != tail.as_bytes() {
        return None;
    }
    let body_start = head.len() - b"{\"data\":".len();
    let body = bytes.get(body_start..body_end)?;
    let mut body_tail = b",\"lineage\":".to_vec();
    finish_body_tail(&mut body_tail, &parts.copy);
    let data = body.get(b"{\"data\":".len()..body.len().checked_sub(body_tail.len())?)?;
    let whole = body.ends_with(&body_tail) && data_is_canonical(data);
    whole.then_some((body_start..body_end, data.len()))
}

/// Whether a tree's compact JSON is exactly `expected`, compared as it renders, without a buffer.
/// Data that hashes to its version but is not the canonical rendering (keys out of order, spaces,
/// another spelling of a number) would be served under a checksum its own tree does not have, and
/// every peer would refuse the copy.
fn renders_to(root: &Value, expected: &[u8]) -> bool {
    /// A writer that checks each write against the rest of `expected`, and stops at a difference.
    struct Compare<'a>(&'a [u8]);
    impl Write for Compare<'_> {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            match self.0.strip_prefix(bytes) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(bytes.len())
                }
                None => Err(io::ErrorKind::InvalidData.into()),
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut compare = Compare(expected);
    root.write_compact(&mut compare).is_ok() && compare.0.is_empty()
}

/// The field that closes every snapshot file: `,"file-sha1":"<40 hex digits>"}`.
pub(crate) const FILE_SHA1_OPEN: &[u8] = b",\"file-sha1\":\"";
pub(crate) const FILE_SHA1_CLOSE: &[u8] = b"\"}";
const FILE_SHA1_BYTES: usize = FILE_SHA1_OPEN.len() + 40 + FILE_SHA1_CLOSE.len();

/// Checks the file checksum when the file ends with one: `Ok(true)` if it matches, `Ok(false)`
/// if there is none, an error if it does not match.
pub(crate) fn check_file_sha1(bytes: &[u8]) -> Result<bool, DecodeError> {
    let Some((covered, declared)) = file_sha1_parts(bytes) else { return Ok(false) };
    compare_file_sha1(declared, Checksum::of_bytes(covered)).map(|()| true)
}

/// The bytes a file's checksum covers and the checksum it declares (as text), when the file ends
/// with one.
pub(super) fn file_sha1_parts(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (covered, trailer) = bytes.split_at(bytes.len().checked_sub(FILE_SHA1_BYTES)?);
    let declared = trailer.strip_prefix(FILE_SHA1_OPEN)?.strip_suffix(FILE_SHA1_CLOSE)?;
    Some((covered, declared))
}

/// A file checksum as declared against the one its bytes hash to.
pub(super) fn compare_file_sha1(declared: &[u8], actual: Checksum) -> Result<(), DecodeError> {
    // Compared as text, not parsed: a flipped case bit in a hex letter must not pass.
    let actual = actual.to_string();
    if declared == actual.as_bytes() {
        Ok(())
    } else {
        Err(DecodeError::FileChecksumMismatch { declared: String::from_utf8_lossy(declared).into_owned(), actual })
    }
}

/// Writes a snapshot file: the node's table (`{"cluster":[...],"mine":[...]}` parts, rendered by
/// the core as `node_json`), the copy body, then the file checksum. `pace` is called between
/// pieces of the long hash and write (the workers yield the core there).
pub fn encode<W: Write>(out: W, node: &NodeJson, body: &[u8], pace: &mut dyn FnMut()) -> io::Result<()> {
    // The small head, the body as it is (no copy, however large), the small tail.
    let mut head = Vec::with_capacity(node.cluster.len() + 32);
    head.extend_from_slice(b"{\"cluster\":");
    head.extend_from_slice(&node.cluster);
    head.extend_from_slice(b",\"copy\":");
    let mut tail = Vec::with_capacity(node.mine.len() + FILE_SHA1_BYTES + 40);
    if !node.committed {
        tail.extend_from_slice(b",\"committed\":false");
    }
    tail.extend_from_slice(b",\"mine\":");
    tail.extend_from_slice(&node.mine);
    let mut hash = Paced::new(HashWriter::default(), &mut *pace);
    for part in [&head[..], body, &tail[..]] {
        hash.write_all(part)?;
    }
    tail.extend_from_slice(FILE_SHA1_OPEN);
    tail.extend_from_slice(hash.into_inner().finish().to_string().as_bytes());
    tail.extend_from_slice(FILE_SHA1_CLOSE);
    let mut out = Paced::new(out, pace);
    for part in [&head[..], body, &tail[..]] {
        out.write_all(part)?;
    }
    out.flush()
}

/// The (term, sequence) a snapshot file's last bytes name, to order files without reading them
/// whole: the version and the coordination stand at the end of the copy body. `None` when the
/// tail shows no version (term 0 when it shows no coordination); the file is checked in full when
/// it is loaded.
pub fn peek_order(tail: &[u8]) -> Option<(u64, u64)> {
    let value_after = |key: &[u8]| -> Option<serde_json::Value> {
        let at = tail.windows(key.len()).rposition(|w| w == key)? + key.len();
        // One value, whatever follows it.
        serde::Deserialize::deserialize(&mut serde_json::Deserializer::from_slice(&tail[at..])).ok()
    };
    let sequence = value_after(b",\"version\":").and_then(|v| v.get("sequence")?.as_u64())?;
    let term = value_after(b",\"coordination\":").and_then(|c| c.get("term")?.as_u64()).unwrap_or(0);
    Some((term, sequence))
}

/// The file name for a snapshot taken at `unix_micros`: `YYYYMMDDTHHMMSS.ffffff.json`.
pub fn file_name(unix_micros: u64) -> String {
    let date = Civil::from_unix(unix_micros / 1_000_000).iso8601("", "");
    format!("{date}.{:06}.json", unix_micros % 1_000_000)
}

/// The time in a snapshot file name, or `None` if the name is not one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let b = name.as_bytes();
    let shape_ok = b.len() == 27
        && name.ends_with(".json")
        && b[8] == b'T'
        && b[15] == b'.'
        && b[..8].iter().chain(&b[9..15]).chain(&b[16..22]).all(u8::is_ascii_digit);
    if !shape_ok {
        return None;
    }
    let number = |range: std::ops::Range<usize>| name[range].parse::<u32>().ok();
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second, micros) = (number(9..11)?, number(11..13)?, number(13..15)?, number(16..22)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = u64::try_from(Civil::days_from_civil(i64::from(year), month, day)).ok()?;
    let seconds = days * 86_400 + u64::from(hour * 3600 + minute * 60 + second);
    Some(seconds * 1_000_000 + u64::from(micros))
}

/// snapshot pattern, so a file left by a crash in the middle of a write is never loaded.
pub fn temporary_name(final_name: &str) -> String {
    format!(".{final_name}.tmp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lineage::Lineage;
    use crate::core::sealed::{parse_copy, seal};

    fn seed() -> Value {
        Value::parse(br#"{"size": 1024, "providers": {"beta": ["192.168.2.1"]}}"#).unwrap()
    }

    fn encoded(sequence: u64, root: &Value) -> Vec<u8> {
        encoded_as(sequence, root, None)
    }

    /// A file of coordinated mode: its version accepted in term 4, not known to be committed.
    fn encoded_pending(sequence: u64, root: &Value) -> Vec<u8> {
        use crate::core::roster::{Coordination, Member, new_id};
        let voters = vec![Member { id: new_id(1), address: "10.0.0.1:8001".into() }];
        encoded_as(sequence, root, Some(Coordination { cluster: new_id(9), term: 4, voters, removed: vec![new_id(2)] }))
    }

    fn encoded_as(sequence: u64, root: &Value, coordination: Option<crate::core::roster::Coordination>) -> Vec<u8> {
        let parent = Lineage::of(Version { sequence: sequence - 1, checksum: Checksum([7; 20]) });
        let committed = coordination.is_none();
        let sealed = crate::core::sealed::seal_paced(root.clone(), sequence, Some(&parent), coordination, &mut || {});
        let node = NodeJson {
            cluster: br#"[{"address":"127.0.0.1:9"}]"#.to_vec(),
            mine: format!("[{}]", OwnCommit { version: sealed.copy.version, superseded: false }.to_compact())
                .into_bytes(),
            committed,
        };
        let mut out = Vec::new();
        encode(&mut out, &node, &sealed.body, &mut || {}).unwrap();
        out
    }

    #[test]
    fn encoded_snapshots_decode_to_the_same_store_and_lineage() {
        let bytes = encoded(3, &seed());
        let snapshot = decode(&bytes).unwrap();
        let copy = &snapshot.sealed.copy;
        assert_eq!(copy.root, seed());
        assert_eq!(copy.version, Version { sequence: 3, checksum: Checksum::of(&seed()) });
        assert_eq!(copy.lineage.len(), 2);
        assert!(copy.lineage.contains(&Version { sequence: 2, checksum: Checksum([7; 20]) }));
        assert_eq!(snapshot.cluster[0]["address"], "127.0.0.1:9");
        assert_eq!(snapshot.mine, vec![OwnCommit { version: copy.version, superseded: false }]);
        let resealed = seal(seed(), 3, Some(&Lineage::of(Version { sequence: 2, checksum: Checksum([7; 20]) })));
        assert_eq!(snapshot.sealed.body, resealed.body, "the body is canonical");
    }

    #[test]
    fn every_truncation_is_refused() {
        for bytes in [encoded(3, &seed()), encoded_pending(3, &seed())] {
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "a file cut at byte {cut} was accepted");
            }
        }
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        for bytes in [encoded(3, &seed()), encoded_pending(3, &seed())] {
            for position in 0..bytes.len() * 8 {
                let mut damaged = bytes.clone();
                damaged[position / 8] ^= 1 << (position % 8);
                assert!(decode(&damaged).is_err(), "a file with bit {position} flipped was accepted");
            }
        }
    }

    #[test]
    fn a_pending_file_of_coordinated_mode_keeps_its_term_and_state_and_peeks_in_order() {
        let bytes = encoded_pending(3, &seed());
        let snapshot = decode(&bytes).unwrap();
        assert!(!snapshot.committed);
        assert_eq!(snapshot.sealed.copy.term(), 4);
        assert_eq!(peek_order(&bytes), Some((4, 3)));
        let key = b"\"lineage\"";
        let lineage = bytes.windows(key.len()).position(|w| w == key).unwrap();
        assert_eq!(peek_order(&bytes[lineage..]), Some((4, 3)), "the tail from the lineage on is enough");
        assert_eq!(peek_order(&encoded(5, &seed())), Some((0, 5)));
        assert_eq!(peek_order(&encoded(0, &seed())), Some((0, 0)), "a first version is a version");
        assert_eq!(peek_order(b"{\"copy\":{\"data\":{}"), None, "no version in sight");
        assert!(decode(&encoded(3, &seed())).unwrap().committed);
    }

    #[test]
    fn a_hand_written_file_without_file_checksum_is_checked_by_its_data_checksum() {
        let good = format!(
            r#"{{"copy": {{"version": {{"sequence": 2, "checksum": "{}"}}, "data": {{}}}}}}"#,
            Version::initial().checksum
        );
        assert_eq!(decode(good.as_bytes()).unwrap().sealed.copy.version.sequence, 2);
        let bad = good.replace("{}}", "{\"a\": 1}}");
        assert!(matches!(decode(bad.as_bytes()), Err(DecodeError::ChecksumMismatch { .. })));
    }

    /// Found by fuzzing (fuzz/regressions/snapshot_decode): files with a valid file checksum that
    /// this server did not write, one with data that does not match its version, one with the
    /// copy's fields in another order.

    #[test]
    fn a_file_checksum_vouches_for_no_byte_changed_not_for_the_writer() {
        for bytes in [
            &include_bytes!("../../fuzz/regressions/snapshot_decode/trusted_file_wrong_data.json")[..],
            include_bytes!("../../fuzz/regressions/snapshot_decode/trusted_file_reordered_copy.json"),
        ] {
            match decode(bytes) {
                Err(_) => {}
                Ok(snapshot) => {
                    let copy = &snapshot.sealed.copy;
                    assert_eq!(Checksum::of(&copy.root), copy.version.checksum, "accepted data hashes to its version");
                    let reparsed = parse_copy(&snapshot.sealed.body).expect("the body is a valid copy");
                    assert_eq!(reparsed.copy.root, copy.root);
                    assert_eq!(snapshot.sealed.data_len, copy.root.to_compact().len());
                }
            }
        }
        assert!(decode(include_bytes!("../../fuzz/regressions/snapshot_decode/trusted_file_wrong_data.json")).is_err());
    }

    #[test]
    fn a_large_snapshot_is_written_in_pieces_with_the_same_bytes() {
        /// Records the size of each write it is handed.
        struct Recorder(Vec<u8>, Vec<usize>);
        impl Write for Recorder {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.extend_from_slice(bytes);
                self.1.push(bytes.len());
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let big = Value::parse(format!("[\"{}\"]", "x".repeat(3 << 20)).as_bytes()).unwrap();
        let sealed = seal(big, 1, None);
        let node = NodeJson::default();
        let mut recorder = Recorder(Vec::new(), Vec::new());
        let mut paces = 0;
        encode(&mut recorder, &node, &sealed.body, &mut || paces += 1).unwrap();
        assert!(recorder.1.iter().all(|&n| n <= crate::limits::PACE_PIECE_BYTES), "a write of more than a piece");
        assert!(paces >= 24, "3 MiB hashed and written, paced {paces} times");
        assert!(recorder.1.len() >= 12, "3 MiB in {} writes", recorder.1.len());
        let decoded = decode(&recorder.0).expect("the paced file decodes");
        assert_eq!(decoded.sealed.copy.version, sealed.copy.version);
        assert_eq!(decoded.sealed.body, sealed.body);
    }

    #[test]
    fn data_that_hashes_to_its_version_but_is_not_canonical_is_refused() {
        // Fuzz finding F4: signed, laid out as written, data hashing to the version, but its keys
        // out of order; the tree's own checksum is another, so peers would refuse every copy.
        let bytes = include_bytes!("../../fuzz/regressions/snapshot_decode/trusted_file_noncanonical_data.json");
        assert!(check_file_sha1(bytes).expect("the file checksum matches"));
        match decode(bytes) {
            Err(DecodeError::ChecksumMismatch { .. }) => {}
            other => panic!("expected a checksum mismatch, got {:?}", other.map(|s| s.sealed.copy.version)),
        }
    }

    /// Found by a review: a file whose checksum matches and whose cluster value runs on over the
    /// file checksum, so the data would start past the end of the file; refused, not a panic.
    #[test]
    fn a_cluster_that_swallows_the_file_checksum_is_refused() {
        let covered = br#"{"cluster":{"a":1"#;
        let file =
            format!("{},\"file-sha1\":\"{}\"}}", std::str::from_utf8(covered).unwrap(), Checksum::of_bytes(covered));
        assert!(check_file_sha1(file.as_bytes()).expect("the file checksum matches"));
        assert!(decode(file.as_bytes()).is_err());
    }

    #[test]
    fn file_names_sort_by_time_and_round_trip() {
        let micros = 1_795_000_000_123_456;
        let name = file_name(micros);
        assert_eq!(name, "20261118T110640.123456.json");
        assert_eq!(parse_file_name(&name), Some(micros));
        assert!(file_name(micros + 1) > name);
        for junk in ["20261118T074640.123456.jso", "x0261118T074640.123456.json", "20261318T074640.123456.json"] {
            assert_eq!(parse_file_name(junk), None, "{junk}");
        }
        assert_eq!(parse_file_name(&temporary_name(&name)), None);
    }
}
