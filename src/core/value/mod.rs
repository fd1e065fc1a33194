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
//! bisection. JSON text is parsed straight into this tree through serde, with no intermediate
//! `serde_json::Value`. Rendering writes exactly what serde_json writes for the same document
//! (compact, or pretty with two spaces), which the checksum depends on.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::limits::STORE_DEPTH_MAX;

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

#[derive(Clone, Debug, PartialEq)]
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
}

const _: () = assert!(std::mem::size_of::<Value>() == 24, "a Value stays 24 bytes");

/// Why an edit could not be made. Both answer 404 at the HTTP level except `TooDeep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditError {
    /// The parent of the target does not exist, is not a container, or the index is past the end.
    NoParent,
    /// The target of a delete does not exist.
    NotFound,
    /// The result would nest deeper than the store allows.
    TooDeep,
}

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

    /// Parses JSON text into a tree, at most `STORE_DEPTH_MAX` levels deep. Duplicate keys keep
    /// the last value, as serde_json does.
    pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = ValueSeed.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }

    /// The child selected by one path segment: a key of an object, or a decimal index of an array.
    pub fn child(&self, segment: &str) -> Option<&Value> {
        match self {
            Value::Object(entries) => find_key(entries, segment).ok().map(|i| &entries[i].1),
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
            Value::Object(entries) => 1 + entries.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Puts `value` at `path`: the empty path replaces the whole tree; an object's key is created
    /// or replaced; an array index below the length replaces, equal to the length appends.
    pub fn put<S: AsRef<str>>(&mut self, path: &[S], value: Value, depth_max: usize) -> Result<(), EditError> {
        if path.len() + value.depth() > depth_max {
            return Err(EditError::TooDeep);
        }
        let Some((last, parent_path)) = path.split_last() else {
            *self = value;
            return Ok(());
        };
        // Check before copying anything, so a failed edit leaves every node shared.
        let last = last.as_ref();
        match self.resolve(parent_path) {
            Some(Value::Object(_)) => {}
            Some(Value::Array(items)) if parse_index(last).is_some_and(|i| i <= items.len()) => {}
            _ => return Err(EditError::NoParent),
        }
        match self.resolve_mut(parent_path) {
            Value::Object(entries) => match find_key(entries, last) {
                Ok(i) => Arc::make_mut(entries)[i].1 = value,
                Err(i) => *entries = spliced(entries, i..i, Some((Str::new(last), value))),
            },
            Value::Array(items) => {
                let index = parse_index(last).expect("index checked above");
                if index == items.len() {
                    *items = spliced(items, index..index, Some(value));
                } else {
                    Arc::make_mut(items)[index] = value;
                }
            }
            _ => unreachable!("parent checked above"),
        }
        Ok(())
    }

    /// Removes the subtree at `path`; later array elements shift down. The empty path resets the
    /// tree to `{}`.
    pub fn delete<S: AsRef<str>>(&mut self, path: &[S]) -> Result<(), EditError> {
        let Some((last, parent_path)) = path.split_last() else {
            *self = Value::empty_object();
            return Ok(());
        };
        let last = last.as_ref();
        if self.resolve(path).is_none() {
            return Err(EditError::NotFound);
        }
        match self.resolve_mut(parent_path) {
            Value::Object(entries) => {
                let i = find_key(entries, last).expect("key checked above");
                *entries = spliced(entries, i..i + 1, None);
            }
            Value::Array(items) => {
                let i = parse_index(last).expect("index checked above");
                *items = spliced(items, i..i + 1, None);
            }
            _ => unreachable!("path checked above"),
        }
        Ok(())
    }

    /// The node at a path known to exist, copying each shared container on the way.
    fn resolve_mut<S: AsRef<str>>(&mut self, path: &[S]) -> &mut Value {
        path.iter().fold(self, |node, segment| {
            let segment = segment.as_ref();
            match node {
                Value::Object(entries) => {
                    let i = find_key(entries, segment).expect("path checked by the caller");
                    &mut Arc::make_mut(entries)[i].1
                }
                Value::Array(items) => {
                    let index = parse_index(segment).expect("path checked by the caller");
                    &mut Arc::make_mut(items)[index]
                }
                _ => unreachable!("path checked by the caller"),
            }
        })
    }

    /// Content equality that skips shared subtrees: cheap when two versions differ in one place.
    pub fn same_content(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Array(a), Value::Array(b)) => {
                Arc::ptr_eq(a, b) || (a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.same_content(y)))
            }
            (Value::Object(a), Value::Object(b)) => {
                Arc::ptr_eq(a, b)
                    || (a.len() == b.len()
                        && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && va.same_content(vb)))
            }
            (a, b) => a == b,
        }
    }

    /// Writes compact JSON with sorted keys, byte for byte what `serde_json::to_writer` writes.
    pub fn write_compact<W: Write>(&self, out: &mut W) -> io::Result<()> {
        match self {
            Value::Array(items) => {
                out.write_all(b"[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    item.write_compact(out)?;
                }
                out.write_all(b"]")
            }
            Value::Object(entries) => {
                out.write_all(b"{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    write_str(out, key.as_bytes())?;
                    out.write_all(b":")?;
                    value.write_compact(out)?;
                }
                out.write_all(b"}")
            }
            scalar => scalar.write_scalar(out),
        }
    }

    fn write_scalar<W: Write>(&self, out: &mut W) -> io::Result<()> {
        match self {
            Value::Null => out.write_all(b"null"),
            Value::Bool(true) => out.write_all(b"true"),
            Value::Bool(false) => out.write_all(b"false"),
            Value::UInt(n) => write_u64(out, *n, false),
            Value::Int(n) => write_u64(out, n.unsigned_abs(), *n < 0),
            Value::Float(f) => {
                let number = serde_json::Number::from_f64(*f).expect("stored floats are finite");
                write!(out, "{number}")
            }
            Value::String(s) => write_str(out, s.as_bytes()),
            Value::Array(_) | Value::Object(_) => unreachable!("containers are not scalars"),
        }
    }

    /// Writes JSON indented by two spaces, byte for byte what `serde_json::to_writer_pretty`
    /// writes (no final newline; the HTTP layer adds it).
    pub fn write_pretty<W: Write>(&self, out: &mut W) -> io::Result<()> {
        self.write_pretty_at(out, 0)
    }

    fn write_pretty_at<W: Write>(&self, out: &mut W, level: usize) -> io::Result<()> {
        match self {
            Value::Array(items) if !items.is_empty() => {
                out.write_all(b"[")?;
                for (i, item) in items.iter().enumerate() {
                    out.write_all(if i > 0 { b",\n" } else { b"\n" })?;
                    write_indent(out, level + 1)?;
                    item.write_pretty_at(out, level + 1)?;
                }
                out.write_all(b"\n")?;
                write_indent(out, level)?;
                out.write_all(b"]")
            }
            Value::Object(entries) if !entries.is_empty() => {
                out.write_all(b"{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    out.write_all(if i > 0 { b",\n" } else { b"\n" })?;
                    write_indent(out, level + 1)?;
                    write_str(out, key.as_bytes())?;
                    out.write_all(b": ")?;
                    value.write_pretty_at(out, level + 1)?;
                }
                out.write_all(b"\n")?;
                write_indent(out, level)?;
                out.write_all(b"}")
            }
            Value::Array(_) => out.write_all(b"[]"),
            Value::Object(_) => out.write_all(b"{}"),
            scalar => scalar.write_scalar(out),
        }
    }

    /// Compact JSON in a new buffer.
    pub fn to_compact(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_compact(&mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Pretty JSON followed by a newline, as every JSON answer ends.
    pub fn to_pretty_line(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_pretty(&mut out).expect("writing to a Vec cannot fail");
        out.push(b'\n');
        out
    }
}

/// A copy of `items` with `range` replaced by `insert`: the one way a container grows or shrinks,
/// since each is a single allocation.
fn spliced<T: Clone>(items: &[T], range: std::ops::Range<usize>, insert: Option<T>) -> Arc<[T]> {
    items[..range.start].iter().cloned().chain(insert).chain(items[range.end..].iter().cloned()).collect()
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

fn write_indent<W: Write>(out: &mut W, level: usize) -> io::Result<()> {
    const SPACES: &[u8; 64] = &[b' '; 64];
    let mut remaining = level * 2;
    while remaining > 0 {
        let n = remaining.min(SPACES.len());
        out.write_all(&SPACES[..n])?;
        remaining -= n;
    }
    Ok(())
}

/// Writes an integer in decimal without the formatting machinery.
fn write_u64<W: Write>(out: &mut W, mut n: u64, negative: bool) -> io::Result<()> {
    let mut digits = [0u8; 21];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        digits[i] = b'-';
    }
    out.write_all(&digits[i..])
}

/// For each byte, the escape serde_json writes for it: 0 for none, `u` for `\u00XX`, else the
/// letter after the backslash.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes a JSON string the way serde_json does: quote, backslash and control characters escaped
/// (the short forms where JSON has them, else `\u00XX` in lower-case hex), everything else as is.
pub fn write_str<W: Write>(out: &mut W, s: &[u8]) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.write_all(b"\"")?;
    let mut start = 0;
    for (i, &byte) in s.iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        out.write_all(&s[start..i])?;
        if escape == b'u' {
            out.write_all(&[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]])?;
        } else {
            out.write_all(&[b'\\', escape])?;
        }
        start = i + 1;
    }
    out.write_all(&s[start..])?;
    out.write_all(b"\"")
}

/// Parses a whole document into a tree, as a part of a larger serde parse (a snapshot file or a
/// copy holds the store inside other fields).
pub struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        let scratch = RefCell::new(Scratch::default());
        Depth { depth: 0, scratch: &scratch }.deserialize(deserializer)
    }
}

/// The elements of the containers being parsed, innermost last. Each container's elements are
/// pushed here and moved into their single allocation when it closes, so parsing allocates once
/// per container and leaves no half-grown vectors behind.
#[derive(Default)]
struct Scratch {
    values: Vec<Value>,
    entries: Vec<Entry>,
}

/// Parses a value `depth` levels below the top; deeper than `STORE_DEPTH_MAX` is an error.
struct Depth<'s> {
    depth: usize,
    scratch: &'s RefCell<Scratch>,
}

impl<'de> DeserializeSeed<'de> for Depth<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Depth<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::UInt(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(if n < 0 { Value::Int(n) } else { Value::UInt(n as u64) })
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        if f.is_finite() { Ok(Value::Float(f)) } else { Err(E::custom("a number out of range")) }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(Str::new(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.below::<A::Error>()?;
        let start = self.scratch.borrow().values.len();
        while let Some(item) = seq.next_element_seed(Depth { depth: child, scratch: self.scratch })? {
            self.scratch.borrow_mut().values.push(item);
        }
        let items: Arc<[Value]> = self.scratch.borrow_mut().values.drain(start..).collect();
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let child = self.below::<A::Error>()?;
        let start = self.scratch.borrow().entries.len();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(Depth { depth: child, scratch: self.scratch })?;
            self.scratch.borrow_mut().entries.push((key, value));
        }
        let mut scratch = self.scratch.borrow_mut();
        let entries = &mut scratch.entries[start..];
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            // Sorted by key; of equal keys the last wins, as in serde_json's map. A stable sort
            // keeps equal keys in input order, so the last of each run is the one to keep.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let sorted: Vec<Entry> = scratch.entries.drain(start..).collect();
            for entry in sorted {
                let has_previous = scratch.entries.len() > start;
                match scratch.entries.last_mut() {
                    Some(last) if has_previous && last.0 == entry.0 => *last = entry,
                    _ => scratch.entries.push(entry),
                }
            }
        }
        let entries: Arc<[Entry]> = scratch.entries.drain(start..).collect();
        Ok(Value::Object(entries))
    }
}

impl Depth<'_> {
    /// The depth of this container's children, or an error when it is one level too deep.
    fn below<E: de::Error>(&self) -> Result<usize, E> {
        if self.depth >= STORE_DEPTH_MAX {
            return Err(E::custom(format!("nested deeper than {STORE_DEPTH_MAX} levels")));
        }
        Ok(self.depth + 1)
    }
}

/// Parses an object key.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Str;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Str, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Str, E> {
        Ok(Str::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        Value::parse(text.as_bytes()).expect("test JSON parses")
    }

    fn seed() -> Value {
        parse(
            r#"{"file": "/var/log/apache2/access.log", "size": 1024, "providers": {
                "alpha": ["192.168.1.1", "192.168.1.2"], "beta": ["192.168.2.1", "192.168.2.2"],
                "gamma": ["192.168.3.1", "192.168.3.2"]}}"#,
        )
    }

    const AWKWARD: &str = r#"{"z": [1, -2, 3.5, 1e300, -0.0, 12345678901234567890, 0.1, 1e2, -9223372036854775808,
        18446744073709551615, 18446744073709551616, 5e-324],
        "a": {"": null, "é": "\"quoted\" \\ \n\t\r\b\f \u0001\u001f\u007f ☃ 😀", "nested": [[], {}, [{}]]},
        "a long key that does not fit inline at all": "and a long string value that does not either",
        "dup": 1, "dup": 2, "m": true, "n": false}"#;

    #[test]
    fn rendering_matches_serde_json_byte_for_byte() {
        for text in [AWKWARD, "{}", "[]", "0", "\"x\"", "[[[]]]", r#"{"a":{"b":{}}}"#, "-1", "1.5e-7"] {
            let reference: serde_json::Value = serde_json::from_str(text).unwrap();
            let tree = parse(text);
            assert_eq!(
                String::from_utf8(tree.to_compact()).unwrap(),
                serde_json::to_string(&reference).unwrap(),
                "compact rendering of {text}"
            );
            let mut pretty = Vec::new();
            tree.write_pretty(&mut pretty).unwrap();
            assert_eq!(
                String::from_utf8(pretty).unwrap(),
                serde_json::to_string_pretty(&reference).unwrap(),
                "pretty rendering of {text}"
            );
        }
    }

    /// Found by fuzzing (fuzz/regressions/staged_updates): without serde_json's `float_roundtrip`
    /// this float read back as a neighbour, so its store's checksum could not be checked again.
    #[test]
    fn floats_read_back_exactly() {
        for text in ["9467308077970.2143", "0.30000000000000004", "1.7976931348623157e308", "5e-324"] {
            let value = parse(text);
            assert_eq!(Value::parse(&value.to_compact()).unwrap(), value, "{text}");
        }
    }

    #[test]
    fn every_byte_is_escaped_like_serde_json() {
        let all: String = (0u8..0x80).map(char::from).chain("é☃😀".chars()).collect();
        let mut ours = Vec::new();
        write_str(&mut ours, all.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&all).unwrap());
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_as_serde_json_does() {
        assert_eq!(parse(r#"{"b": 1, "a": 2, "b": 3}"#).to_compact(), br#"{"a":2,"b":3}"#);
    }

    #[test]
    fn nesting_is_bounded_while_parsing() {
        let ok = format!("{}{}", "[".repeat(STORE_DEPTH_MAX), "]".repeat(STORE_DEPTH_MAX));
        assert_eq!(parse(&ok).depth(), STORE_DEPTH_MAX);
        let deep = format!("{}{}", "[".repeat(STORE_DEPTH_MAX + 1), "]".repeat(STORE_DEPTH_MAX + 1));
        assert!(Value::parse(deep.as_bytes()).unwrap_err().to_string().contains("deeper"));
    }

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        assert!(matches!(Str::new("192.168.255.255:65535"), Str::Inline { .. }));
        assert!(matches!(Str::new(&"x".repeat(23)), Str::Shared(_)));
        assert_eq!(Str::new("ünï").as_str(), "ünï");
        assert!(Str::new("a") < Str::new(&"b".repeat(40)));
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(Value::parse(b"{} x").is_err());
        assert!(Value::parse(b"").is_err());
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
    fn put_creates_replaces_and_appends() {
        let mut store = seed();
        store.put(&["new"], parse("[1]"), 100).unwrap();
        store.put(&["new", "1"], parse("2"), 100).unwrap();
        store.put(&["new", "0"], parse("0"), 100).unwrap();
        assert_eq!(store.resolve(&["new"]), Some(&parse("[0, 2]")));
        assert_eq!(store.put(&["new", "3"], parse("9"), 100), Err(EditError::NoParent));
        assert_eq!(store.put(&["missing", "x"], parse("9"), 100), Err(EditError::NoParent));
        assert_eq!(store.put(&["size", "x"], parse("9"), 100), Err(EditError::NoParent));
        store.put(&["a"], parse("1"), 100).unwrap();
        assert_eq!(store.to_compact()[..6], *br#"{"a":1"#, "new keys land in sorted order");
        store.put::<&str>(&[], parse("[]"), 100).unwrap();
        assert_eq!(store, parse("[]"));
    }

    #[test]
    fn delete_shifts_array_elements_and_resets_on_empty_path() {
        let mut store = seed();
        store.delete(&["providers", "alpha", "0"]).unwrap();
        assert_eq!(store.resolve(&["providers", "alpha"]), Some(&parse(r#"["192.168.1.2"]"#)));
        assert_eq!(store.delete(&["providers", "zeta"]), Err(EditError::NotFound));
        store.delete(&["providers"]).unwrap();
        assert_eq!(store.resolve(&["providers"]), None);
        store.delete::<&str>(&[]).unwrap();
        assert_eq!(store, parse("{}"));
    }

    #[test]
    fn edits_copy_only_the_path_to_the_change() {
        let base = seed();
        let mut staged = base.clone();
        staged.put(&["providers", "beta", "0"], parse("\"10.0.0.1\""), 100).unwrap();
        let (Some(Value::Array(base_alpha)), Some(Value::Array(staged_alpha))) =
            (base.resolve(&["providers", "alpha"]), staged.resolve(&["providers", "alpha"]))
        else {
            panic!("alpha is an array in both");
        };
        assert!(Arc::ptr_eq(base_alpha, staged_alpha), "untouched sibling is shared");
        assert_eq!(base.resolve(&["providers", "beta", "0"]), Some(&parse("\"192.168.2.1\"")));
        assert!(!base.same_content(&staged));
    }

    #[test]
    fn a_failed_edit_changes_nothing_and_copies_nothing() {
        let base = seed();
        let mut staged = base.clone();
        assert!(staged.put(&["providers", "beta", "9"], parse("1"), 100).is_err());
        let (Value::Object(a), Value::Object(b)) = (&base, &staged) else { panic!() };
        assert!(Arc::ptr_eq(a, b));
    }

    #[test]
    fn depth_is_bounded() {
        let mut store = Value::empty_object();
        let deep = parse(&format!("{}{}", "[".repeat(10), "]".repeat(10)));
        assert_eq!(deep.depth(), 10);
        assert_eq!(store.put(&["a", "b"], deep.clone(), 10), Err(EditError::TooDeep));
        store.put(&["a"], deep, 11).unwrap();
    }

    #[test]
    fn same_content_sees_equal_values_built_apart() {
        assert!(seed().same_content(&seed()));
        let mut other = seed();
        other.put(&["size"], parse("1025"), 100).unwrap();
        assert!(!seed().same_content(&other));
        assert!(!parse("1").same_content(&parse("1.0")), "an integer is not a float, as in serde_json");
    }
}
