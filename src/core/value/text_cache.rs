//! The canonical compact text of the unchanged parts of a store, kept between versions, so that a
//! commit's checksum costs hashing the store, not rendering it.
//!
//! The version checksum is the SHA-1 of the whole store's compact text (the contract), and a commit
//! changes a few paths of a tree whose other nodes it shares with the version before (`Arc`s, see
//! `mod.rs`). A node reached by the same pointer has the same text: the tree is immutable, and the
//! cache holds a reference to every node it keeps text for, so the allocation (and its address) is
//! never reused while its text is kept. A walk of a new version writes the text of every node
//! it has kept as one slice, and renders only the nodes above them and the paths an edit copied.
//!
//! What is kept: the text of the *largest* containers whose text is at most
//! `TEXT_CACHE_UNIT_BYTES_MAX` (and at least `TEXT_CACHE_UNIT_BYTES_MIN`, below which the entry
//! would cost more memory than rendering the text costs time). A chunk of a wide object (`object.rs`)
//! is such a container, its text the entries between the braces. When a container becomes a unit,
//! the units inside it are dropped, so each byte of the store is kept about once: the cache holds
//! about one store's text. After each walk, units the walk did not meet are dropped (they belong
//! to older versions), so the cache never holds more than the version walked last.
//!
//! It is pure (no I/O, no clock): each worker thread that hashes or renders whole stores owns one
//! (`core::jobs::run` takes it), and the simulation calls the same code.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use super::{Entry, Value, write_str};
use crate::limits::{HASH_BUFFER_BYTES, TEXT_CACHE_UNIT_BYTES_MAX, TEXT_CACHE_UNIT_BYTES_MIN};

/// The kept text of the unchanged subtrees of the store walked last.
#[derive(Default)]
pub struct TextCache {
    units: HashMap<Key, Unit>,
    /// The number of the walk in progress or last done; a unit met in it carries it.
    walk: u64,
    /// Bytes of text held by `units`.
    text_bytes: usize,
}

/// A node by its allocation and what its text is (a chunk's text has no braces, and one list of
/// entries can be both a flat object and a chunk).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    address: usize,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Array,
    Object,
    /// A wide object's list of chunks: the whole object's text.
    Chunked,
    /// One chunk of a wide object: its entries, comma-separated, without braces.
    Chunk,
}

struct Unit {
    /// Keeps the node alive, so that no other node takes its address while its text is kept.
    _node: Node,
    text: Box<[u8]>,
    /// The walk that last met it.
    walk: u64,
}

enum Node {
    Values(#[allow(dead_code)] Arc<[Value]>),
    Entries(#[allow(dead_code)] Arc<[Entry]>),
    Chunks(#[allow(dead_code)] super::object::Chunks),
}

impl Key {
    fn of<T>(node: &Arc<[T]>, kind: Kind) -> Key {
        Key { address: Arc::as_ptr(node) as *const u8 as usize, kind }
    }
}

impl TextCache {
    /// Writes `root`'s compact text to `out`, byte for byte what `Value::write_compact` writes,
    /// using the text kept of its unchanged nodes and keeping the text of new ones; then drops
    /// the units of nodes `root` does not hold. On an error of `out`, the walk stops and nothing
    /// is dropped.
    pub fn write(&mut self, root: &Value, out: &mut dyn Write) -> io::Result<()> {
        self.walk += 1;
        let mut walk =
            Walk { cache: self, out, pending: Vec::new(), open: Vec::new(), viable_from: 0, met: Vec::new() };
        walk.value(root)?;
        walk.flush_all()?;
        let walk_number = self.walk;
        self.units.retain(|_, unit| unit.walk == walk_number);
        self.text_bytes = self.units.values().map(|unit| unit.text.len()).sum();
        Ok(())
    }

    /// Bytes of text kept (about the size of the store walked last).
    pub fn text_bytes(&self) -> usize {
        self.text_bytes
    }

    /// The number of nodes whose text is kept.
    pub fn units(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }
}

/// One walk: the text goes through `pending`, which holds the text of the containers being
/// rendered that may still become units (`open`), and is written to `out` in large pieces.
struct Walk<'a> {
    cache: &'a mut TextCache,
    out: &'a mut dyn Write,
    pending: Vec<u8>,
    /// Where the text of each container being rendered (not found in the cache) starts in
    /// `pending`, outermost first.
    open: Vec<usize>,
    /// The containers of `open` before this index cannot become units (their text is longer than
    /// a unit may be, or was written out); their offsets are stale.
    viable_from: usize,
    /// The units met in this walk so far (found or kept), in order: those met while a container
    /// was rendered are inside it.
    met: Vec<Key>,
}

impl Walk<'_> {
    fn value(&mut self, value: &Value) -> io::Result<()> {
        match value {
            Value::Array(items) => self.container(Key::of(items, Kind::Array), value, |walk| {
                walk.put(b"[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        walk.put(b",")?;
                    }
                    walk.value(item)?;
                }
                walk.put(b"]")
            }),
            Value::Object(entries) => self.container(Key::of(entries, Kind::Object), value, |walk| {
                walk.put(b"{")?;
                walk.entries(entries)?;
                walk.put(b"}")
            }),
            Value::Chunked(chunks) => self.container(Key::of(chunks, Kind::Chunked), value, |walk| {
                walk.put(b"{")?;
                // Chunks are never empty (`object.rs`); an empty one would add no comma here.
                for (i, chunk) in chunks.iter().filter(|chunk| !chunk.is_empty()).enumerate() {
                    if i > 0 {
                        walk.put(b",")?;
                    }
                    walk.chunk(chunk)?;
                }
                walk.put(b"}")
            }),
            scalar => {
                scalar.write_scalar(&mut self.pending)?;
                self.settle()
            }
        }
    }

    fn chunk(&mut self, chunk: &Arc<[Entry]>) -> io::Result<()> {
        let node = || Node::Entries(chunk.clone());
        self.container_with(Key::of(chunk, Kind::Chunk), node, |walk| walk.entries(chunk))
    }

    fn entries(&mut self, entries: &[Entry]) -> io::Result<()> {
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 {
                self.pending.push(b',');
            }
            write_str(&mut self.pending, key.as_bytes())?;
            self.pending.push(b':');
            self.value(value)?;
        }
        self.settle()
    }

    /// A container of the tree: its kept text, or rendered by `render` (and kept, if it is a unit).
    fn container(
        &mut self,
        key: Key,
        value: &Value,
        render: impl FnOnce(&mut Self) -> io::Result<()>,
    ) -> io::Result<()> {
        let node = || match value {
            Value::Array(items) => Node::Values(items.clone()),
            Value::Object(entries) => Node::Entries(entries.clone()),
            Value::Chunked(chunks) => Node::Chunks(chunks.clone()),
            _ => unreachable!("only containers are kept"),
        };
        self.container_with(key, node, render)
    }

    fn container_with(
        &mut self,
        key: Key,
        node: impl FnOnce() -> Node,
        render: impl FnOnce(&mut Self) -> io::Result<()>,
    ) -> io::Result<()> {
        if let Some(unit) = self.cache.units.get_mut(&key) {
            unit.walk = self.cache.walk;
            self.met.push(key);
            if self.viable_from == self.open.len() {
                // No container being rendered can take this text into its own: straight out.
                if !self.pending.is_empty() {
                    self.out.write_all(&self.pending)?;
                    self.pending.clear();
                }
                return self.out.write_all(&unit.text);
            }
            self.pending.extend_from_slice(&unit.text);
            return self.settle();
        }
        let depth = self.open.len();
        self.open.push(self.pending.len());
        let met_before = self.met.len();
        render(self)?;
        let start = self.open.pop().expect("pushed above");
        let viable = depth >= self.viable_from;
        self.viable_from = self.viable_from.min(self.open.len());
        let length = self.pending.len() - start;
        if viable && length >= TEXT_CACHE_UNIT_BYTES_MIN {
            debug_assert!(length <= TEXT_CACHE_UNIT_BYTES_MAX);
            // The units inside this one go: its text holds theirs. (A node met both inside and
            // elsewhere loses its unit too, which costs a render, never a wrong byte.)
            for inner in self.met.drain(met_before..) {
                self.cache.units.remove(&inner);
            }
            self.met.push(key);
            let text = self.pending[start..].into();
            self.cache.units.insert(key, Unit { _node: node(), text, walk: self.cache.walk });
        }
        Ok(())
    }

    /// Appends bytes to the text.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        self.settle()
    }

    /// After text was added: the containers whose text grew past a unit's bound stop being
    /// candidates, and the text no candidate needs is written out once there is enough of it.
    fn settle(&mut self) -> io::Result<()> {
        while self.viable_from < self.open.len()
            && self.pending.len() - self.open[self.viable_from] > TEXT_CACHE_UNIT_BYTES_MAX
        {
            self.viable_from += 1;
        }
        let needed_from = self.open.get(self.viable_from).copied().unwrap_or(self.pending.len());
        if needed_from >= HASH_BUFFER_BYTES {
            self.out.write_all(&self.pending[..needed_from])?;
            self.pending.drain(..needed_from);
            for start in &mut self.open[self.viable_from..] {
                *start -= needed_from;
            }
        }
        Ok(())
    }

    fn flush_all(&mut self) -> io::Result<()> {
        self.out.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
