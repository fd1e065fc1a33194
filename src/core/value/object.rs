//! Objects: entries sorted by key, in one allocation while an object is small, in chunks of
//! about `CHUNK_ENTRIES` once it is wide.
//!
//! An edit copies the containers on its path (`edit.rs`); a wide object held in one allocation
//! would copy all of its entries for a change to one (a commit into an object of 100,000 keys
//! copied 4.8 MB and touched 100,000 reference counts on the loop, about 3 ms). Chunked, the same
//! edit copies the list of chunks (one reference per chunk) and one chunk: for 100,000 keys, 391
//! references and at most 512 entries. The two layouts are one object to everything outside this
//! module: it is read through `chunks()` (a flat object is one chunk), compared by content, and
//! rendered the same.

use std::sync::Arc;

use super::{Entry, Str, Value, find_key};

/// Entries per chunk of a wide object, as parsed; a chunk that grows past twice this splits.
pub const CHUNK_ENTRIES: usize = 256;

/// Objects of more entries than this are chunked when built.
pub(super) const FLAT_ENTRIES_MAX: usize = 2 * CHUNK_ENTRIES;

/// Entries in key order, in one allocation: a flat object's, or one chunk of a wide one.
pub type Chunk = Arc<[Entry]>;

/// The chunks of an object: each non-empty, in key order.
pub type Chunks = Arc<[Chunk]>;

impl Value {
    /// An object of entries sorted by key, keys unique: flat when small, chunked when wide.
    pub fn object(entries: Vec<Entry>) -> Value {
        if entries.len() <= FLAT_ENTRIES_MAX {
            return Value::Object(Arc::from(entries));
        }
        let mut entries = entries.into_iter();
        let mut chunks = Vec::new();
        loop {
            let chunk: Arc<[Entry]> = entries.by_ref().take(CHUNK_ENTRIES).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(chunk);
        }
        Value::Chunked(Arc::from(chunks))
    }

    /// As `object`, from the entries a parser collected (flat ones are moved into their
    /// allocation without a vector in between).
    pub(super) fn object_from_drain(entries: std::vec::Drain<'_, Entry>) -> Value {
        if entries.len() <= FLAT_ENTRIES_MAX {
            Value::Object(entries.collect())
        } else {
            Value::object(entries.collect())
        }
    }

    /// As `object`, from `count` entries sorted by key, keys unique, handed out in order by
    /// `take(n)`, n at a time: each chunk is built in place, with no vector of all the entries.
    pub(super) fn object_by_chunks(count: usize, mut take: impl FnMut(usize) -> Chunk) -> Value {
        if count <= FLAT_ENTRIES_MAX {
            return Value::Object(take(count));
        }
        let mut chunks = Vec::with_capacity(count.div_ceil(CHUNK_ENTRIES));
        let mut left = count;
        while left > 0 {
            let n = left.min(CHUNK_ENTRIES);
            chunks.push(take(n));
            left -= n;
        }
        Value::Chunked(Arc::from(chunks))
    }

    /// An array or an object.
    pub fn is_container(&self) -> bool {
        matches!(self, Value::Array(_) | Value::Object(_) | Value::Chunked(_))
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_) | Value::Chunked(_))
    }

    /// An object's entries as chunks in key order (a flat object is one chunk); `None` for
    /// anything else.
    pub fn chunks(&self) -> Option<&[Arc<[Entry]>]> {
        match self {
            Value::Object(entries) => Some(std::slice::from_ref(entries)),
            Value::Chunked(chunks) => Some(chunks),
            _ => None,
        }
    }

    /// An object's entries in key order (none for anything else).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + Clone {
        self.chunks().unwrap_or_default().iter().flat_map(|chunk| chunk.iter())
    }

    /// The number of an object's entries (0 for anything else).
    pub fn object_len(&self) -> usize {
        self.chunks().unwrap_or_default().iter().map(|chunk| chunk.len()).sum()
    }

    /// The member `key` of an object.
    pub fn member(&self, key: &str) -> Option<&Value> {
        let chunks = self.chunks()?;
        let chunk = &chunks[chunk_of(chunks, key)];
        find_key(chunk, key).ok().map(|i| &chunk[i].1)
    }

    /// The member `key` of an object, copying the shared containers on the way to it.
    pub(super) fn member_mut(&mut self, key: &str) -> Option<&mut Value> {
        let (_, entries, i) = self.chunk_mut(key)?;
        let i = i.ok()?;
        Some(&mut Arc::make_mut(entries)[i].1)
    }

    /// Sets the member `key` of an object, adding it if it is missing. `false` if this is not an
    /// object.
    pub(super) fn insert_member(&mut self, key: &str, value: Value) -> bool {
        let Some((at, entries, found)) = self.chunk_mut(key) else { return false };
        match found {
            Ok(i) => Arc::make_mut(entries)[i].1 = value,
            Err(i) => *entries = spliced(entries, i..i, Some((Str::new(key), value))),
        }
        self.rebalance(at);
        true
    }

    /// Removes the member `key` of an object; `false` if it is not there.
    pub(super) fn remove_member(&mut self, key: &str) -> bool {
        let Some((at, entries, Ok(i))) = self.chunk_mut(key) else { return false };
        *entries = spliced(entries, i..i + 1, None);
        self.rebalance(at);
        true
    }

    /// The chunk where `key` is or belongs (copied out of the shared list of chunks if need be,
    /// not itself copied): its index (0 in a flat object), the chunk, and the key's place there.
    fn chunk_mut(&mut self, key: &str) -> Option<(usize, &mut Chunk, Result<usize, usize>)> {
        let (at, entries) = match self {
            Value::Object(entries) => (0, entries),
            Value::Chunked(chunks) => {
                let at = chunk_of(chunks, key);
                (at, &mut Arc::make_mut(chunks)[at])
            }
            _ => return None,
        };
        let found = find_key(entries, key);
        Some((at, entries, found))
    }

    /// After an edit of chunk `at`: a flat object grown wide is chunked, a chunk grown to twice
    /// its size is split, an emptied chunk is dropped (the search by first keys needs every
    /// chunk to have one), a chunk shrunk to a quarter joins a neighbour, and a wide object
    /// shrunk to one chunk is flat again.
    fn rebalance(&mut self, at: usize) {
        match self {
            Value::Object(entries) if entries.len() > FLAT_ENTRIES_MAX => *self = Value::object(entries.to_vec()),
            Value::Chunked(chunks) => {
                let length = chunks[at].len();
                if length > FLAT_ENTRIES_MAX {
                    let (low, high) = chunks[at].split_at(length / 2);
                    let halves = [Arc::from(low), Arc::from(high)];
                    *chunks =
                        chunks[..at].iter().cloned().chain(halves).chain(chunks[at + 1..].iter().cloned()).collect();
                } else if length == 0 {
                    *chunks = spliced(chunks, at..at + 1, None);
                } else if length < CHUNK_ENTRIES / 4 && chunks.len() > 1 {
                    // A chunk shrunk to a quarter joins a neighbour, so deletions cannot leave
                    // a wide object in many tiny chunks.
                    let left = if at + 1 < chunks.len() { at } else { at - 1 };
                    if chunks[left].len() + chunks[left + 1].len() <= FLAT_ENTRIES_MAX {
                        let joined: Chunk = chunks[left].iter().chain(chunks[left + 1].iter()).cloned().collect();
                        let rest = chunks[left + 2..].iter().cloned();
                        *chunks = chunks[..left].iter().cloned().chain(Some(joined)).chain(rest).collect();
                    }
                }
                match &chunks[..] {
                    [] => *self = Value::empty_object(),
                    [only] => *self = Value::Object(only.clone()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// The chunk `key` is in or belongs in: the last whose first key is not after it.
fn chunk_of(chunks: &[Arc<[Entry]>], key: &str) -> usize {
    chunks
        .partition_point(|chunk| chunk.first().is_some_and(|(first, _)| first.as_bytes() <= key.as_bytes()))
        .saturating_sub(1)
}

/// A copy of `items` with `range` replaced by `insert`: the one way a list grows or shrinks,
/// since each is a single allocation.
pub(super) fn spliced<T: Clone>(items: &[T], range: std::ops::Range<usize>, insert: Option<T>) -> Arc<[T]> {
    items[..range.start].iter().cloned().chain(insert).chain(items[range.end..].iter().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::fixtures::*;

    fn wide(keys: usize) -> Value {
        let entries = (0..keys).map(|i| (Str::new(&format!("k{i:06}")), Value::UInt(i as u64))).collect();
        Value::object(entries)
    }

    #[test]
    fn wide_objects_are_chunked_and_read_as_one() {
        let object = wide(100_000);
        let Value::Chunked(chunks) = &object else { panic!("chunked") };
        assert_eq!(chunks.len(), 100_000usize.div_ceil(CHUNK_ENTRIES));
        assert_eq!(object.object_len(), 100_000);
        assert_eq!(object.member("k054321"), Some(&Value::UInt(54_321)));
        assert_eq!(object.member("k1"), None);
        assert_eq!(object.member(""), None);
        let reparsed = parse(std::str::from_utf8(&object.to_compact()).unwrap());
        assert_eq!(reparsed, object);
        assert!(reparsed.same_content(&object));
        assert!(matches!(wide(FLAT_ENTRIES_MAX), Value::Object(_)));
    }

    /// Found by a review: equal objects whose chunks fall at other keys have the same content.
    #[test]
    fn the_same_entries_in_other_chunks_are_the_same_content() {
        let mut edited = wide(1_000);
        edited.delete(&["k000000"]).unwrap();
        let reparsed = parse(std::str::from_utf8(&edited.to_compact()).unwrap());
        let lengths = |v: &Value| v.chunks().unwrap().iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_ne!(lengths(&edited), lengths(&reparsed), "the chunks differ");
        assert!(edited.same_content(&reparsed) && edited == reparsed);
    }

    #[test]
    fn an_edit_of_a_wide_object_copies_one_chunk() {
        let base = wide(100_000);
        let mut edited = base.clone();
        edited.put(&["k050000"], Value::Null, 100).unwrap();
        let (Value::Chunked(before), Value::Chunked(after)) = (&base, &edited) else { panic!("chunked") };
        let shared = before.iter().zip(after.iter()).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert_eq!(shared, before.len() - 1, "all chunks but the edited one are shared");
        assert_eq!(base.member("k050000"), Some(&Value::UInt(50_000)));
        assert_eq!(edited.member("k050000"), Some(&Value::Null));
        assert!(!base.same_content(&edited));
    }

    /// Inserts and removals in every part of a wide object, checked against a flat model after
    /// each: chunks split, empty and merge back into a flat object, and keys stay sorted.
    #[test]
    fn inserts_and_removals_keep_the_content_of_a_model() {
        let mut object = wide(2_000);
        let mut model: std::collections::BTreeMap<String, Value> =
            object.entries().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let mut rng = crate::core::rng::Rng::new(7);
        for step in 0..6_000u64 {
            let key = format!("k{:06}", rng.below(4_000) * 2 / 3);
            if rng.below(3) == 0 {
                assert_eq!(object.delete(&[&key]).is_ok(), model.remove(&key).is_some());
            } else {
                object.put(&[&key], Value::UInt(step), 100).unwrap();
                model.insert(key, Value::UInt(step));
            }
        }
        let expected: Vec<Entry> = model.into_iter().map(|(k, v)| (Str::new(&k), v)).collect();
        assert!(object.entries().eq(expected.iter()), "the same entries in the same order");
        for chunk in object.chunks().unwrap() {
            assert!(!chunk.is_empty() && chunk.len() <= FLAT_ENTRIES_MAX);
        }
        // A run of keys in the middle, emptying whole chunks there: every other key is still found.
        for key in (600..1_900).map(|i| format!("k{i:06}")) {
            object.delete(&[&key]).ok();
        }
        let chunks = object.chunks().unwrap();
        assert!(chunks.iter().all(|chunk| !chunk.is_empty()));
        let small = chunks.iter().filter(|chunk| chunk.len() < CHUNK_ENTRIES / 4).count();
        assert!(small <= 1, "tiny chunks are joined: {:?}", chunks.iter().map(|c| c.len()).collect::<Vec<_>>());
        for (key, value) in expected.iter().filter(|(k, _)| !("k000600".."k001900").contains(&k.as_str())) {
            assert_eq!(object.member(key.as_str()), Some(value), "{key}");
        }
        for key in (0..2_400).map(|i| format!("k{i:06}")) {
            object.delete(&[&key]).ok();
        }
        assert!(matches!(object, Value::Object(_)), "shrunk back to one allocation");
    }
}
