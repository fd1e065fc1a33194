//! Versions of the store: a sequence number and the SHA-1 of the store's compact JSON.
//!
//! A version is newer when its sequence is higher; with equal sequences the greater checksum wins
//! (compared as hex strings, which orders the same as the raw digest bytes); equal both means
//! equal stores. Deriving `Ord` on (sequence, checksum) gives exactly that order.

use std::fmt;
use std::io::{self, BufWriter, Write};

use crate::value::Value;

/// A SHA-1 digest, shown as 40 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checksum(pub [u8; 20]);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Version {
    pub sequence: u64,
    pub checksum: Checksum,
}

impl Checksum {
    /// The checksum of a document: SHA-1 of its compact JSON, streamed, never held whole.
    pub fn of(value: &Value) -> Checksum {
        let mut hasher = HashWriter::default();
        {
            let mut buffered = BufWriter::with_capacity(64 * 1024, &mut hasher);
            value.write_compact(&mut buffered).expect("hashing cannot fail");
            buffered.flush().expect("hashing cannot fail");
        }
        hasher.finish()
    }

    /// The checksum of bytes that are already compact JSON.
    pub fn of_bytes(bytes: &[u8]) -> Checksum {
        Checksum(sha1_smol::Sha1::from(bytes).digest().bytes())
    }

    /// Parses 40 hex digits (either case).
    pub fn parse_hex(text: &str) -> Option<Checksum> {
        let bytes = text.as_bytes();
        if bytes.len() != 40 {
            return None;
        }
        let mut digest = [0u8; 20];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            digest[i] = u8::try_from(high * 16 + low).ok()?;
        }
        Some(Checksum(digest))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Version {
    /// The version of a new store: `{}` at sequence 0.
    pub fn initial() -> Version {
        Version { sequence: 0, checksum: Checksum::of(&Value::empty_object()) }
    }

    /// `{"checksum": "...", "sequence": N}` in compact form, keys sorted.
    pub fn to_compact(&self) -> String {
        format!(r#"{{"checksum":"{}","sequence":{}}}"#, self.checksum, self.sequence)
    }

    /// `{"checksum": "...", "sequence": N}` as a JSON value, for answers built with serde_json.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"sequence": self.sequence, "checksum": self.checksum.to_string()})
    }

    /// The same, pretty-printed with a final newline, as the HTTP answers give it.
    pub fn to_pretty_line(&self) -> String {
        format!("{{\n  \"checksum\": \"{}\",\n  \"sequence\": {}\n}}\n", self.checksum, self.sequence)
    }

    /// The version as the `X-Lighthouse-Version` header gives it: `SEQUENCE-CHECKSUM`.
    pub fn to_header(&self) -> String {
        format!("{}-{}", self.sequence, self.checksum)
    }

    /// Reads `{"sequence": N, "checksum": "..."}`; anything else is `None`.
    pub fn from_json(value: &serde_json::Value) -> Option<Version> {
        let object = value.as_object()?;
        let sequence = object.get("sequence")?.as_u64()?;
        let checksum = Checksum::parse_hex(object.get("checksum")?.as_str()?)?;
        Some(Version { sequence, checksum })
    }
}

/// An `io::Write` that feeds SHA-1.
#[derive(Default)]
pub struct HashWriter(sha1_smol::Sha1);

impl HashWriter {
    pub fn finish(&self) -> Checksum {
        Checksum(self.0.digest().bytes())
    }
}

impl Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_the_empty_store_is_the_sha1_of_braces() {
        assert_eq!(Version::initial().checksum.to_string(), "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f");
        assert_eq!(Version::initial().sequence, 0);
    }

    #[test]
    fn checksum_is_of_compact_json_with_sorted_keys() {
        let value = Value::parse(br#"{ "b" : [1, 2], "a" : "x" }"#).unwrap();
        assert_eq!(Checksum::of(&value), Checksum::of_bytes(br#"{"a":"x","b":[1,2]}"#));
    }

    #[test]
    fn newer_means_higher_sequence_then_greater_checksum() {
        let low = Checksum::parse_hex(&"0".repeat(40)).unwrap();
        let high = Checksum::parse_hex(&"f".repeat(40)).unwrap();
        let v = |sequence, checksum| Version { sequence, checksum };
        assert!(v(2, low) > v(1, high));
        assert!(v(1, high) > v(1, low));
        assert_eq!(v(1, low), v(1, low));
        assert!(high.to_string() > low.to_string(), "order agrees with the hex strings");
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let text = "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f";
        assert_eq!(Checksum::parse_hex(text).unwrap().to_string(), text);
        assert_eq!(Checksum::parse_hex(&text.to_uppercase()).unwrap().to_string(), text);
        assert!(Checksum::parse_hex(&text[1..]).is_none());
        assert!(Checksum::parse_hex(&format!("{}g", &text[1..])).is_none());
        assert!(Checksum::parse_hex(&format!("{}é", &text[2..])).is_none());
    }

    #[test]
    fn version_json_round_trips() {
        let version = Version { sequence: 7, checksum: Version::initial().checksum };
        let compact: serde_json::Value = serde_json::from_str(&version.to_compact()).unwrap();
        let pretty: serde_json::Value = serde_json::from_str(&version.to_pretty_line()).unwrap();
        assert_eq!(Version::from_json(&compact), Some(version));
        assert_eq!(compact, pretty);
        assert_eq!(version.to_pretty_line(), serde_json::to_string_pretty(&pretty).unwrap() + "\n");
    }
}

/// The recent history of a store: its version and the versions before it, at most
/// `LINEAGE_VERSIONS_MAX`. Sequences are consecutive, since each version is its parent's
/// sequence + 1, so only the first sequence is kept, and of each version only the first eight
/// bytes of its checksum (two versions at one sequence share them with odds of 1 in 2^64).
///
/// Copies carry their lineage, so a node that replaces its store with a copy can tell which of
/// its own commits the copy contains, and which were superseded by a concurrent commit elsewhere
/// and are lost. A commit older than the copy's window cannot be told apart and is not counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lineage {
    current: Version,
    /// The sequence of the oldest version kept.
    from: u64,
    /// A checksum prefix per version, oldest first; the last is the current version's.
    ids: std::collections::VecDeque<u64>,
}

/// The first eight bytes of a checksum, as a number.
fn prefix(checksum: &Checksum) -> u64 {
    u64::from_be_bytes(checksum.0[..8].try_into().expect("20 bytes"))
}

impl Lineage {
    /// A lineage that knows only `version`.
    pub fn of(version: Version) -> Lineage {
        Lineage { current: version, from: version.sequence, ids: std::iter::once(prefix(&version.checksum)).collect() }
    }

    pub fn current(&self) -> Version {
        self.current
    }

    /// How many versions it holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The lineage of a child of the current version.
    pub fn extended(&self, version: Version) -> Lineage {
        debug_assert_eq!(version.sequence, self.current.sequence + 1);
        let mut next = self.clone();
        if next.ids.len() >= crate::limits::LINEAGE_VERSIONS_MAX {
            next.ids.pop_front();
            next.from += 1;
        }
        next.ids.push_back(prefix(&version.checksum));
        next.current = version;
        next
    }

    /// The id this lineage holds for `sequence`, if its window reaches it.
    fn id_at(&self, sequence: u64) -> Option<u64> {
        let index = usize::try_from(sequence.checked_sub(self.from)?).ok()?;
        self.ids.get(index).copied()
    }

    /// True when `version` is in the window of this lineage.
    pub fn contains(&self, version: &Version) -> bool {
        self.id_at(version.sequence) == Some(prefix(&version.checksum))
    }

    /// True when `version` is certainly not in the history of this lineage's store: the window
    /// reaches back to its sequence, and another version (or none) stands there.
    pub fn excludes(&self, version: &Version) -> bool {
        version.sequence >= self.from && !self.contains(version)
    }

    /// `{"from": N, "ids": "<16 hex digits per version>"}` in compact form.
    pub fn to_compact(&self) -> String {
        let mut ids = String::with_capacity(self.ids.len() * 16);
        for id in &self.ids {
            ids.push_str(&format!("{id:016x}"));
        }
        format!(r#"{{"from":{},"ids":"{ids}"}}"#, self.from)
    }

    /// Reads a lineage that must end with `current`; anything malformed gives just `current`,
    /// since a lineage only refines what is counted, never what is taken.
    pub fn from_json(value: Option<&serde_json::Value>, current: Version) -> Lineage {
        let parsed = || -> Option<Lineage> {
            let value = value?;
            let from = value.get("from")?.as_u64()?;
            let hex = value.get("ids")?.as_str()?;
            if hex.is_empty() || hex.len() % 16 != 0 {
                return None;
            }
            let ids: Option<std::collections::VecDeque<u64>> = hex
                .as_bytes()
                .chunks(16)
                .map(|id| u64::from_str_radix(std::str::from_utf8(id).ok()?, 16).ok())
                .collect();
            let mut lineage = Lineage { current, from, ids: ids? };
            let fits = from.checked_add(lineage.ids.len() as u64 - 1) == Some(current.sequence)
                && lineage.ids.back() == Some(&prefix(&current.checksum));
            while lineage.ids.len() > crate::limits::LINEAGE_VERSIONS_MAX {
                lineage.ids.pop_front();
                lineage.from += 1;
            }
            fits.then_some(lineage)
        };
        parsed().unwrap_or_else(|| Lineage::of(current))
    }
}

#[cfg(test)]
mod lineage_tests {
    use super::*;

    fn v(sequence: u64, tag: u8) -> Version {
        Version { sequence, checksum: Checksum([tag; 20]) }
    }

    fn chain(versions: &[(u64, u8)]) -> Lineage {
        versions[1..].iter().fold(Lineage::of(v(versions[0].0, versions[0].1)), |l, &(s, t)| l.extended(v(s, t)))
    }

    #[test]
    fn a_lineage_excludes_versions_it_cannot_contain() {
        let theirs = chain(&[(1, 0), (2, 9), (3, 8)]);
        assert!(theirs.contains(&v(2, 9)), "an ancestor");
        assert!(!theirs.excludes(&v(2, 9)));
        assert!(theirs.excludes(&v(2, 1)), "a concurrent commit at the same sequence");
        assert!(theirs.excludes(&v(4, 1)), "a later version");
        assert!(!theirs.excludes(&v(0, 1)), "older than the window: cannot tell");
    }

    #[test]
    fn json_round_trips_and_malformed_lineages_shrink_to_the_current_version() {
        let lineage = chain(&[(4, 1), (5, 2)]);
        let json: serde_json::Value = serde_json::from_str(&lineage.to_compact()).unwrap();
        assert_eq!(Lineage::from_json(Some(&json), v(5, 2)), lineage);
        assert_eq!(Lineage::from_json(Some(&json), v(6, 2)), Lineage::of(v(6, 2)), "must end at the version");
        assert_eq!(Lineage::from_json(Some(&json), v(5, 3)), Lineage::of(v(5, 3)), "must end with its id");
        let odd = serde_json::json!({"from": 4, "ids": "0101"});
        assert_eq!(Lineage::from_json(Some(&odd), v(5, 2)), Lineage::of(v(5, 2)));
        assert_eq!(Lineage::from_json(None, v(6, 2)), Lineage::of(v(6, 2)));
    }

    #[test]
    fn lineages_are_bounded() {
        let lineage = (1..1000).fold(Lineage::of(v(0, 0)), |l, s| l.extended(v(s, 0)));
        assert_eq!(lineage.len(), crate::limits::LINEAGE_VERSIONS_MAX);
        assert_eq!(lineage.current(), v(999, 0));
        assert!(lineage.contains(&v(999 - crate::limits::LINEAGE_VERSIONS_MAX as u64 + 1, 0)));
        assert!(!lineage.excludes(&v(999 - crate::limits::LINEAGE_VERSIONS_MAX as u64, 7)));
    }
}
