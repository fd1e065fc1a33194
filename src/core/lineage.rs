//! A store's recent history, carried in every copy, so a node can tell which of its own commits a
//! store it takes contains.

use crate::core::version::{Checksum, Version};
use crate::limits::LINEAGE_VERSIONS_MAX;

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
        if next.ids.len() >= LINEAGE_VERSIONS_MAX {
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
            let (from, hex) = crate::core::messages::lineage_fields(value?)?;
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
            while lineage.ids.len() > LINEAGE_VERSIONS_MAX {
                lineage.ids.pop_front();
                lineage.from += 1;
            }
            fits.then_some(lineage)
        };
        parsed().unwrap_or_else(|| Lineage::of(current))
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(lineage.len(), LINEAGE_VERSIONS_MAX);
        assert_eq!(lineage.current(), v(999, 0));
        assert!(lineage.contains(&v(999 - LINEAGE_VERSIONS_MAX as u64 + 1, 0)));
        assert!(!lineage.excludes(&v(999 - LINEAGE_VERSIONS_MAX as u64, 7)));
    }
}
