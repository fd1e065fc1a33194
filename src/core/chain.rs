//! Chains of files: a full snapshot, then the change files of the commits after it, each applying
//! to the version of the file before it (`core::change_file`). This is the one rule of which file
//! a version gets, for every job that writes one (a local commit's seal, the coordinator's seal
//! and its own write, a voter's write of a pushed version, a write of the served store): a change
//! file when the version carries a change whose base is the version the directory's newest file
//! holds (the chain is intact) and the chain since the last full snapshot is shorter than
//! `CHANGE_CHAIN_COMMITS_MAX`; else a full snapshot. The real directory (`shell::data_dir`) and
//! the simulated one call the same `write_version`, so both hold the same files.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use crate::core::change::Change;
use crate::core::change_file;
use crate::core::jobs::{Disk, DiskError};
use crate::core::pace::Paced;
use crate::core::sealed::{self, Sealed};
use crate::core::snapshot::{self, NodeJson};
use crate::core::value::{TextCache, Value};
use crate::core::version::{Checksum, HashWriter, Version};
use crate::limits::{
    CHANGE_CHAIN_COMMITS_MAX, CHANGE_CHAIN_COMPACT_BYTES_MIN, CHANGE_CHAIN_COMPACT_COMMITS, HASH_BUFFER_BYTES,
};

/// What a directory's newest files are: the version its newest file holds (`None`: unknown, or
/// the newest file was removed, so the next file is a full one), and the chain of change files
/// since the newest full snapshot (how many, and the bytes of their patches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainState {
    pub newest: Option<Version>,
    pub commits: u64,
    pub bytes: u64,
}

impl ChainState {
    /// Whether a change from `base` is written as a change file.
    pub fn takes(&self, base: Version) -> bool {
        self.newest == Some(base) && self.commits < CHANGE_CHAIN_COMMITS_MAX
    }

    pub fn wrote_full(&mut self, version: Version) {
        *self = ChainState { newest: Some(version), commits: 0, bytes: 0 };
    }

    pub fn wrote_change(&mut self, change: &Change) {
        self.newest = Some(change.version);
        self.commits += 1;
        self.bytes += change.len() as u64;
    }

    /// The newest file was removed: what the one before it holds is not kept, so the next file
    /// is a full one.
    pub fn forget(&mut self) {
        self.newest = None;
    }

    /// Whether a full snapshot of `version` (the served store, `store_bytes` of JSON) is worth
    /// writing now: the newest file holds it as a change, and the chain has reached
    /// `CHANGE_CHAIN_COMPACT_COMMITS` commits or its patches the store's size (and at least
    /// `CHANGE_CHAIN_COMPACT_BYTES_MIN`), so that the disk writes about the change per commit,
    /// amortised.
    pub fn wants_full(&self, version: Version, store_bytes: usize) -> bool {
        let bytes = (store_bytes as u64).max(CHANGE_CHAIN_COMPACT_BYTES_MIN);
        self.newest == Some(version)
            && self.commits > 0
            && (self.commits >= CHANGE_CHAIN_COMPACT_COMMITS || self.bytes >= bytes)
    }
}

/// How a version is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writing {
    /// As the rule says: a change file if the chain takes its change, else a full snapshot.
    AsRuled,
    /// A full snapshot, only if the newest file holds this version as a change (compaction, and
    /// the clean stop); nothing otherwise: a newer file may have been written since it was asked.
    Compact,
}

/// Writes `sealed` into `disk` as the rule says (see the module), and reports the file (`None`
/// without a data directory, or for a compaction that is not needed). A full snapshot of a version
/// whose body was set aside renders it here, paced.
pub fn write_version(
    disk: &mut dyn Disk,
    node: &NodeJson,
    sealed: &Sealed,
    writing: Writing,
    text: &mut TextCache,
    pace: &mut dyn FnMut(),
) -> Result<Option<PathBuf>, DiskError> {
    let Some(chain) = disk.chain() else { return Ok(None) };
    let state = *chain;
    let version = sealed.copy.version;
    if writing == Writing::Compact && (state.newest != Some(version) || state.commits == 0) {
        return Ok(None);
    }
    let change = sealed.change.as_deref().filter(|c| writing == Writing::AsRuled && state.takes(c.base));
    if let Some(change) = change {
        let bytes = change_file::encode(node, change, &sealed.copy);
        let file = disk.write_file(true, &mut |out| change_file::write(out, &bytes))?;
        disk.chain().expect("a directory").wrote_change(change);
        return Ok(Some(file));
    }
    let body = if sealed.body.is_empty() {
        sealed::render_body_cached(&sealed.copy, text, pace).0
    } else {
        sealed.body.clone()
    };
    let file = disk.write_file(false, &mut |out| snapshot::encode(out, node, &body, &mut *pace))?;
    disk.chain().expect("a directory").wrote_full(version);
    Ok(Some(file))
}

/// Whether a commit from `base` would be written as a change file now (without a data directory,
/// never): its seal then need not render the store into a body.
pub fn would_take(disk: &mut dyn Disk, base: Version) -> bool {
    disk.chain().is_some_and(|chain| chain.takes(base))
}

/// The checksum of a tree and the bytes of its compact JSON, the text streamed into the hasher
/// (never held as one buffer, but gathered in `HASH_BUFFER_BYTES` pieces: fed the render's small
/// writes one by one, SHA-1 spent more time copying them into its block buffer than hashing),
/// calling `pace` between pieces.
pub fn checksum_and_len(root: &Value, pace: &mut dyn FnMut()) -> (Checksum, usize) {
    let mut hash = BufWriter::with_capacity(HASH_BUFFER_BYTES, Paced::new(Counting(HashWriter::default(), 0), pace));
    root.write_compact(&mut hash).expect("hashing cannot fail");
    let Ok(paced) = hash.into_inner() else { unreachable!("hashing cannot fail") };
    let counting = paced.into_inner();
    (counting.0.finish(), counting.1)
}

/// As `checksum_and_len`, with the text kept of the subtrees unchanged since the tree `text` walked
/// last: a commit hashes the store's text without rendering more of it than its change (see
/// `value::TextCache`).
pub fn checksum_and_len_cached(root: &Value, text: &mut TextCache, pace: &mut dyn FnMut()) -> (Checksum, usize) {
    let mut hash = Paced::new(Counting(HashWriter::default(), 0), pace);
    text.write(root, &mut hash).expect("hashing cannot fail");
    let counting = hash.into_inner();
    (counting.0.finish(), counting.1)
}

/// Feeds SHA-1 and counts.
struct Counting(HashWriter, usize);

impl Write for Counting {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.1 += bytes.len();
        self.0.write_all(bytes)?;
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
    fn checksum_and_len_match_the_rendered_store() {
        let root = Value::parse(br#"{"a": [1, 2, {"b": "c"}], "d": null}"#).unwrap();
        let text = root.to_compact();
        assert_eq!(checksum_and_len(&root, &mut || {}), (Checksum::of_bytes(&text), text.len()));
    }

    #[test]
    fn the_chain_takes_a_change_from_its_newest_version_until_its_limit() {
        let version = |sequence| Version { sequence, checksum: Checksum([sequence as u8; 20]) };
        let mut chain = ChainState::default();
        assert!(!chain.takes(version(1)), "nothing known: a full snapshot first");
        chain.wrote_full(version(1));
        assert!(chain.takes(version(1)) && !chain.takes(version(2)));
        let change = Change { base: version(1), version: version(2), patch: b"[]".to_vec().into() };
        chain.wrote_change(&change);
        assert_eq!((chain.newest, chain.commits, chain.bytes), (Some(version(2)), 1, 2));
        assert!(!chain.wants_full(version(2), 1), "a small store waits for a chain of some size");
        chain.bytes = CHANGE_CHAIN_COMPACT_BYTES_MIN;
        assert!(chain.wants_full(version(2), 2) && !chain.wants_full(version(2), 1 << 20));
        chain.commits = CHANGE_CHAIN_COMMITS_MAX;
        assert!(!chain.takes(version(2)), "a chain at its limit takes no more");
        chain.forget();
        assert!(!chain.takes(version(2)));
    }
}
