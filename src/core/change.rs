//! Changes: a version as the difference from the version before it. A commit changes a few
//! paths of a store that may be large, so the disk (change files between full snapshots) and the
//! voters (pushes of `PUT /cluster/accept`) take the change rather than the whole store.
//!
//! A change is the compact JSON object `{"base":VERSION,"patch":[...],"version":VERSION}`: the
//! version it applies to, an RFC 6902 JSON Patch (`add`, `remove` and `replace`, made by
//! `Value::diff`), and the version it makes. Applying it is pure; the checksum of the result is
//! checked against `version` by the caller, on a worker (`applied_checked`), because it hashes the
//! whole store.

use std::sync::Arc;

use crate::core::messages::AcceptChange;
use crate::core::pace::Paced;
use crate::core::sealed::{DecodeError, Sealed, StoreCopy};
use crate::core::value::{PatchError, TextCache, Value, json_patch_bounded};
use crate::core::version::{Checksum, HashWriter, Version};
use crate::limits::{CHANGE_OPERATIONS_MAX, STORE_DEPTH_MAX};

/// A version as the JSON Patch that makes it from `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub base: Version,
    pub version: Version,
    /// Compact JSON text of the RFC 6902 patch.
    pub patch: Arc<[u8]>,
}

impl Change {
    /// The change from `before` (the tree of `base`) to `after` (the tree of `version`), or
    /// `None` when it has more operations than a change may (`CHANGE_OPERATIONS_MAX`): the whole
    /// store is cheaper then. Two versions share every node an edit did not copy, so this costs
    /// the change, not the store.
    pub fn between(base: Version, before: &Value, version: Version, after: &Value) -> Option<Change> {
        let (patch, operations) = before.diff_with_count(after);
        (operations <= CHANGE_OPERATIONS_MAX).then(|| Change { base, version, patch: patch.into() })
    }

    /// Bytes of the change's patch.
    pub fn len(&self) -> usize {
        self.patch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patch.len() <= 2
    }

    /// This change followed by `next` (whose base is this change's version), as one change from
    /// this one's base: the two patches' operations in order. A voter that missed this change
    /// gets the two at once rather than the whole store.
    pub fn then(&self, next: &Change) -> Option<Change> {
        if self.version != next.base {
            return None;
        }
        let patch: Arc<[u8]> = match (self.is_empty(), next.is_empty()) {
            (true, _) => next.patch.clone(),
            (_, true) => self.patch.clone(),
            _ => [&self.patch[..self.patch.len() - 1], b",", &next.patch[1..]].concat().into(),
        };
        Some(Change { base: self.base, version: next.version, patch })
    }

    /// `{"base":{...},"patch":[...],"version":{...}}`, compact.
    pub fn to_compact(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.patch.len() + 160);
        out.extend_from_slice(b"{\"base\":");
        out.extend_from_slice(self.base.to_compact().as_bytes());
        out.extend_from_slice(b",\"patch\":");
        out.extend_from_slice(&self.patch);
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(self.version.to_compact().as_bytes());
        out.push(b'}');
        out
    }

    /// Reads a change object (fields in any order). The patch is kept as its text, checked to be
    /// a JSON array; it is parsed when applied.
    pub fn parse(bytes: &[u8]) -> Result<Change, DecodeError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields<'a> {
            base: serde_json::Value,
            version: serde_json::Value,
            #[serde(borrow)]
            patch: &'a serde_json::value::RawValue,
        }
        let fields: Fields = serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        Change::from_parts(&fields.base, &fields.version, fields.patch.get().as_bytes())
    }

    /// A change from its three fields, as they stand in a larger object (a change file).
    pub fn from_parts(
        base: &serde_json::Value,
        version: &serde_json::Value,
        patch: &[u8],
    ) -> Result<Change, DecodeError> {
        let shape = "a change is {\"base\": VERSION, \"patch\": [operations], \"version\": VERSION}";
        let base = Version::from_json(base).ok_or(DecodeError::Shape(shape))?;
        let version = Version::from_json(version).ok_or(DecodeError::Shape(shape))?;
        if !patch.starts_with(b"[") {
            return Err(DecodeError::Shape(shape));
        }
        if version.sequence <= base.sequence || version.sequence == u64::MAX {
            return Err(DecodeError::Shape("a change's version follows its base, with room for the next"));
        }
        Ok(Change { base, version, patch: patch.into() })
    }

    /// The tree of `version`, from `before` (the tree of `base`). The checksum is not checked:
    /// see `applied_checked`.
    pub fn apply(&self, before: &Value) -> Result<Value, DecodeError> {
        let operations =
            Value::parse(&self.patch).map_err(|e| DecodeError::Json(format!("the change's patch: {e}")))?;
        json_patch_bounded(before, &[], &operations, STORE_DEPTH_MAX, CHANGE_OPERATIONS_MAX).map_err(|e| match e {
            PatchError::TooDeep => DecodeError::TooDeep,
            PatchError::Malformed(m) | PatchError::DoesNotApply(m) => {
                DecodeError::Json(format!("the change does not apply to sequence {}: {m}", self.base.sequence))
            }
            PatchError::TooLarge => DecodeError::Shape("the change copies too many values"),
        })
    }

    /// As `apply`, and checks that the result hashes to the change's version: the store is
    /// rendered straight into the hasher, in pieces, calling `pace` between them (never held as
    /// one buffer).
    pub fn applied_checked(&self, before: &Value, pace: &mut dyn FnMut()) -> Result<Value, DecodeError> {
        let after = self.apply(before)?;
        let actual = checksum_paced(&after, pace);
        if actual != self.version.checksum {
            return Err(DecodeError::ChecksumMismatch { declared: self.version.checksum, actual });
        }
        Ok(after)
    }
}

/// The checksum of a tree, its canonical text streamed into the hasher (`Checksum::of`), calling
/// `pace` between pieces.
pub fn checksum_paced(root: &Value, pace: &mut dyn FnMut()) -> Checksum {
    checksum_and_len_paced(root, pace).0
}

/// As `checksum_paced`, with the length of the canonical text.
fn checksum_and_len_paced(root: &Value, pace: &mut dyn FnMut()) -> (Checksum, usize) {
    struct Counted(HashWriter, usize);
    impl std::io::Write for Counted {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(bytes)?;
            self.1 += n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hash = Paced::new(Counted(HashWriter::default(), 0), pace);
    root.write_compact(&mut hash).expect("hashing cannot fail");
    let Counted(hash, len) = hash.into_inner();
    (hash.finish(), len)
}

/// A version pushed as its change (`PUT /cluster/accept`, `PUT /copy/change`:
/// `messages::AcceptChange`), made from the one of `bases` (the store, the version a voter holds
/// pending) that is its base, and checked against its checksum, on the decoder thread. The result is the same version
/// a whole copy gives, with its body set aside (rendered when needed) and its change kept.
pub fn sealed_from_pushed(
    body: &[u8],
    bases: &[(Version, Value)],
    text: &mut TextCache,
    pace: &mut dyn FnMut(),
) -> Result<Sealed, DecodeError> {
    let AcceptChange { change, coordination, lineage } = AcceptChange::decode(body)?;
    let (_, before) = bases.iter().find(|(v, _)| *v == change.base).ok_or(DecodeError::BaseMissing(change.base))?;
    let root = change.apply(before)?;
    // The decoder's text of the version before: only the change is rendered.
    let (actual, data_len) = crate::core::chain::checksum_and_len_cached(&root, text, pace);
    if actual != change.version.checksum {
        return Err(DecodeError::ChecksumMismatch { declared: change.version.checksum, actual });
    }
    let copy = StoreCopy { version: change.version, root, lineage, coordination };
    Ok(Sealed { copy, body: Arc::from(Vec::new()), data_len, change: Some(Arc::new(change)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        Value::parse(text.as_bytes()).unwrap()
    }

    fn version(sequence: u64, root: &Value) -> Version {
        Version { sequence, checksum: Checksum::of(root) }
    }

    #[test]
    fn a_change_round_trips_and_makes_its_version_from_its_base() {
        let before = parse(r#"{"web": {"port": 80, "hosts": ["a", "b"]}, "db": {"port": 5432}}"#);
        let after = parse(r#"{"web": {"port": 8080, "hosts": ["a"]}, "db": {"port": 5432}, "new": true}"#);
        let change = Change::between(version(4, &before), &before, version(5, &after), &after).unwrap();
        let parsed = Change::parse(&change.to_compact()).unwrap();
        assert_eq!(parsed, change);
        let applied = parsed.applied_checked(&before, &mut || {}).unwrap();
        assert!(applied.same_content(&after));
    }

    #[test]
    fn two_changes_in_a_row_make_one_from_the_first_base_and_others_do_not() {
        let (one, two, three) = (parse(r#"{"a": 1}"#), parse(r#"{"a": 2, "b": [1]}"#), parse(r#"{"b": [1, 2]}"#));
        let first = Change::between(version(1, &one), &one, version(2, &two), &two).unwrap();
        let second = Change::between(version(2, &two), &two, version(3, &three), &three).unwrap();
        let both = first.then(&second).expect("the second follows the first");
        assert_eq!((both.base, both.version), (first.base, second.version));
        assert!(both.applied_checked(&one, &mut || {}).unwrap().same_content(&three));
        assert!(second.then(&first).is_none(), "not in a row");
        let same = Change::between(version(3, &three), &three, version(4, &three), &three).unwrap();
        assert!(same.is_empty());
        assert_eq!(second.then(&same).unwrap().patch, second.patch, "an empty patch adds nothing");
    }

    #[test]
    fn a_change_applied_to_another_tree_is_refused_by_its_checksum() {
        let before = parse(r#"{"a": 1}"#);
        let after = parse(r#"{"a": 2}"#);
        let change = Change::between(version(1, &before), &before, version(2, &after), &after).unwrap();
        let other = parse(r#"{"a": 1, "b": 0}"#);
        assert!(matches!(change.applied_checked(&other, &mut || {}), Err(DecodeError::ChecksumMismatch { .. })));
        let unrelated = parse(r#"{"x": 1}"#);
        assert!(matches!(change.apply(&unrelated), Err(DecodeError::Json(_))), "the path is missing");
    }

    #[test]
    fn malformed_changes_are_refused_with_why() {
        let v = |s: u64| format!(r#"{{"sequence":{s},"checksum":"{}"}}"#, Version::initial().checksum);
        let ok = format!(r#"{{"base":{},"patch":[],"version":{}}}"#, v(1), v(2));
        assert!(Change::parse(ok.as_bytes()).is_ok());
        let backwards = format!(r#"{{"base":{},"patch":[],"version":{}}}"#, v(2), v(2));
        assert!(matches!(Change::parse(backwards.as_bytes()), Err(DecodeError::Shape(_))));
        let not_a_list = format!(r#"{{"base":{},"patch":{{}},"version":{}}}"#, v(1), v(2));
        assert!(matches!(Change::parse(not_a_list.as_bytes()), Err(DecodeError::Shape(_))));
        let extra = format!(r#"{{"base":{},"patch":[],"version":{},"x":1}}"#, v(1), v(2));
        assert!(Change::parse(extra.as_bytes()).is_err());
    }

    #[test]
    fn a_change_with_more_operations_than_allowed_is_not_made() {
        let before = Value::empty_object();
        let mut text = String::from("{");
        for i in 0..=CHANGE_OPERATIONS_MAX {
            text.push_str(&format!("{}\"k{i}\":0", if i > 0 { "," } else { "" }));
        }
        text.push('}');
        let after = parse(&text);
        assert!(Change::between(version(1, &before), &before, version(2, &after), &after).is_none());
    }
}
