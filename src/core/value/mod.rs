//! The store's document: a JSON tree whose arrays and objects are shared, immutable nodes.
//!
//! Every container sits behind an `Arc`, so a copy of the whole store is one reference count.
//! A transaction starts from the current root and changes it with path copying: only the nodes on
//! the way to an edit are copied, each copy being a list of references to the unchanged children.
//! That makes acquiring the lock O(1) on any store, lets a finished store be handed to the writer
//! thread without copying, and makes "did this subtree change?" a pointer comparison.
//!
//! The layout is chosen for memory, since a node holds whole stores: a `Value` is 24 bytes;
//! strings and keys up to 22 bytes live inside it (most keys, names and addresses allocate
//! nothing); numbers are stored flat; an array or object is one allocation (`Arc<[T]>`), its
//! entries sorted by key (byte order, as serde_json's `BTreeMap` sorts them) and found by
//! bisection, except that an object wider than 512 entries is kept in chunks (`object.rs`), so
//! that an edit copies one chunk of it, not all of it. JSON text is parsed straight into this tree through serde, with no intermediate
//! `serde_json::Value`. Rendering writes exactly what serde_json writes for the same document
//! (compact, or pretty with two spaces), which the checksum depends on.

use std::fmt;
use std::sync::Arc;

mod canonical;
mod diff;
mod edit;
mod object;
mod parse;
mod patch;
mod render;
mod text_cache;

pub use edit::EditError;
pub use parse::ValueSeed;
pub use patch::{PatchError, json_patch, json_patch_bounded, merge_patch};
pub use render::write_str;
pub use text_cache::TextCache;

/// Strings at most this long are stored inline, without an allocation.
const INLINE_BYTES_MAX: usize = 22;

/// A string or key: inline when short, shared when long. Compared and ordered as bytes.
#[derive(Clone)]
pub enum Str {
    Inline { len: u8, bytes: [u8; INLINE_BYTES_MAX] },
    Shared(Arc<str>),
}

/// An object's entry.
pub type Entry = (Str, Value);

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    /// Integers from 0 up.
    UInt(u64),
    /// Negative integers.
    Int(i64),
    /// Everything else JSON calls a number (always finite).
    Float(f64),
    String(Str),
    Array(Arc<[Value]>),
    /// Sorted by key, keys unique.
    Object(Arc<[Entry]>),
    /// A wide object, its entries in chunks (`object.rs`): the same JSON as `Object`, equal to
    /// an `Object` of the same entries.
    Chunked(object::Chunks),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::UInt(a), Value::UInt(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            // By bits: -0.0 and 0.0 render differently, so they are different content (a write
            // of one over the other is a change). Stored floats are never NaN.
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (a, b) if a.is_object() && b.is_object() => a.object_len() == b.object_len() && a.entries().eq(b.entries()),
            _ => false,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Value>() == 24, "a Value stays 24 bytes");

impl Str {
    pub fn new(s: &str) -> Str {
        if s.len() <= INLINE_BYTES_MAX {
            let mut bytes = [0u8; INLINE_BYTES_MAX];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Str::Inline { len: s.len() as u8, bytes }
        } else {
            Str::Shared(Arc::from(s))
        }
    }

    /// `s`, which is followed in `window` by at least the rest of an inline string's room:
    /// copied as one block of `INLINE_BYTES_MAX` bytes and cut to its length, without a call
    /// (the parser's strings, most of them short; a `memcpy` of their varying lengths left the
    /// new string in pieces the next read had to wait for).
    pub(super) fn new_from_window(s: &str, window: &[u8]) -> Str {
        let Some(block) = window.first_chunk::<INLINE_BYTES_MAX>().filter(|_| s.len() <= INLINE_BYTES_MAX) else {
            return Str::new(s);
        };
        debug_assert!(window.starts_with(s.as_bytes()));
        let mut bytes = *block;
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = if i < s.len() { *byte } else { 0 };
        }
        Str::Inline { len: s.len() as u8, bytes }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Str::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Str::Shared(s) => s.as_bytes(),
        }
    }

    /// The text. Always valid UTF-8: both variants are only ever built from a `&str`.
    pub fn as_str(&self) -> &str {
        match self {
            Str::Inline { .. } => std::str::from_utf8(self.as_bytes()).expect("built from a str"),
            Str::Shared(s) => s,
        }
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Str {}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for Value {
    fn default() -> Value {
        Value::empty_object()
    }
}

impl Value {
    pub fn empty_object() -> Value {
        Value::Object(Arc::from(Vec::new()))
    }

    /// The child selected by one path segment: a key of an object, or a decimal index of an array.
    pub fn child(&self, segment: &str) -> Option<&Value> {
        match self {
            Value::Object(_) | Value::Chunked(_) => self.member(segment),
            Value::Array(items) => parse_index(segment).and_then(|i| items.get(i)),
            _ => None,
        }
    }

    /// The subtree at a path of decoded segments.
    pub fn resolve<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        path.iter().try_fold(self, |node, segment| node.child(segment.as_ref()))
    }

    /// Nesting of containers: 0 for a scalar, 1 for `[]` or `{"a": 1}`.
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Object(_) | Value::Chunked(_) => 1 + self.entries().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Content equality that skips shared subtrees: cheap when two versions differ in one place.
    pub fn same_content(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Array(a), Value::Array(b)) => {
                Arc::ptr_eq(a, b) || (a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.same_content(y)))
            }
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b) || same_entries(a, b),
            // Chunk by chunk while the chunks line up (an edit copies one): unchanged ones are
            // shared, so comparing a wide object after an edit costs one chunk.
            (Value::Chunked(a), Value::Chunked(b))
                if a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.len() == y.len()) =>
            {
                Arc::ptr_eq(a, b) || a.iter().zip(b.iter()).all(|(x, y)| Arc::ptr_eq(x, y) || same_entries(x, y))
            }
            (a, b) if a.is_object() && b.is_object() => {
                a.object_len() == b.object_len()
                    && a.entries().zip(b.entries()).all(|((ka, va), (kb, vb))| ka == kb && va.same_content(vb))
            }
            (a, b) => a == b,
        }
    }
}

fn same_entries(a: &[Entry], b: &[Entry]) -> bool {
    a.len() == b.len() && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && va.same_content(vb))
}

/// Index of `key` in sorted entries, or where it would be inserted.
pub fn find_key(entries: &[Entry], key: &str) -> Result<usize, usize> {
    entries.binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
}

/// An array index: decimal digits without sign or leading zeros ("0", "7", "12"), so that each
/// element has exactly one path.
pub fn parse_index(segment: &str) -> Option<usize> {
    let bytes = segment.as_bytes();
    let canonical = match bytes {
        [] => false,
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    };
    if canonical { segment.parse().ok() } else { None }
}

/// What the tests of the tree's parts share: a parser that panics, the original's example
/// configuration, and a document of awkward cases.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::Value;

    pub fn parse(text: &str) -> Value {
        Value::parse(text.as_bytes()).expect("test JSON parses")
    }

    pub fn seed() -> Value {
        parse(
            r#"{"file": "/var/log/apache2/access.log", "size": 1024, "providers": {
                "alpha": ["192.168.1.1", "192.168.1.2"], "beta": ["192.168.2.1", "192.168.2.2"],
                "gamma": ["192.168.3.1", "192.168.3.2"]}}"#,
        )
    }

    pub const AWKWARD: &str = r#"{"z": [1, -2, 3.5, 1e300, -0.0, 12345678901234567890, 0.1, 1e2, -9223372036854775808,
        18446744073709551615, 18446744073709551616, 5e-324],
        "a": {"": null, "é": "\"quoted\" \\ \n\t\r\b\f \u0001\u001f\u007f ☃ 😀", "nested": [[], {}, [{}]]},
        "a long key that does not fit inline at all": "and a long string value that does not either",
        "dup": 2, "m": true, "n": false}"#;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::fixtures::*;

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        assert!(matches!(Str::new("192.168.255.255:65535"), Str::Inline { .. }));
        assert!(matches!(Str::new(&"x".repeat(23)), Str::Shared(_)));
        assert_eq!(Str::new("ünï").as_str(), "ünï");
        assert!(Str::new("a") < Str::new(&"b".repeat(40)));
    }

    #[test]
    fn paths_select_keys_and_array_indexes() {
        let store = seed();
        assert_eq!(store.resolve(&["size"]), Some(&parse("1024")));
        assert_eq!(store.resolve(&["providers", "beta", "0"]), Some(&parse("\"192.168.2.1\"")));
        assert_eq!(store.resolve(&["providers", "beta", "2"]), None);
        assert_eq!(store.resolve(&["providers", "beta", "01"]), None, "leading zero is no index");
        assert_eq!(store.resolve(&["providers", "beta", "-1"]), None);
        assert_eq!(store.resolve(&["size", "x"]), None, "a scalar has no children");
        assert_eq!(store.resolve(&["nope"]), None);
        assert_eq!(store.resolve::<&str>(&[]), Some(&store));
    }

    #[test]
    fn same_content_sees_equal_values_built_apart() {
        assert!(seed().same_content(&seed()));
        let mut other = seed();
        other.put(&["size"], parse("1025"), 100).unwrap();
        assert!(!seed().same_content(&other));
        assert!(!parse("1").same_content(&parse("1.0")), "an integer is not a float, as in serde_json");
        assert!(!parse("0.0").same_content(&parse("-0.0")), "they render differently (found by a user trial)");
    }
}
