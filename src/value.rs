//! The store's document: a JSON tree whose arrays and objects are shared, immutable nodes.
//!
//! Every container sits behind an `Arc`, so a copy of the whole store is one reference count.
//! A transaction starts from the current root and changes it with path copying: only the nodes on
//! the way to an edit are cloned, each clone being a list of references to the unchanged children.
//! That makes acquiring the lock O(1) on any store, lets a finished store be handed to the writer
//! thread without copying, and makes "did this subtree change?" a pointer comparison.
//!
//! Objects are vectors sorted by key (byte order, as serde_json's `BTreeMap` sorts them): compact,
//! quick to clone, searched by bisection. Rendering writes exactly what serde_json writes for the
//! same `serde_json::Value` (compact, or pretty with two spaces), which the checksum depends on.

use std::io::{self, Write};
use std::sync::Arc;

use serde_json::Number;

/// Keys and strings. Shared so that cloning an object to edit one key copies no key bytes.
pub type Str = Arc<str>;
/// An object's entries, sorted by key, keys unique.
pub type Entries = Vec<(Str, Value)>;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(Str),
    Array(Arc<Vec<Value>>),
    Object(Arc<Entries>),
}

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

impl Default for Value {
    fn default() -> Value {
        Value::empty_object()
    }
}

impl Value {
    pub fn empty_object() -> Value {
        Value::Object(Arc::new(Vec::new()))
    }

    /// Parses JSON text into a tree. Duplicate keys keep the last value, as serde_json does.
    pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
        let parsed: serde_json::Value = serde_json::from_slice(bytes)?;
        Ok(Value::from_json(parsed))
    }

    /// Converts a serde_json tree, consuming it so each string is moved rather than kept twice.
    pub fn from_json(value: serde_json::Value) -> Value {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(Str::from(s)),
            serde_json::Value::Array(items) => {
                Value::Array(Arc::new(items.into_iter().map(Value::from_json).collect()))
            }
            // serde_json's map is a BTreeMap, so its entries arrive sorted and unique.
            serde_json::Value::Object(map) => {
                Value::Object(Arc::new(map.into_iter().map(|(k, v)| (Str::from(k), Value::from_json(v))).collect()))
            }
        }
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
            Value::Object(entries) => {
                let entries = Arc::make_mut(entries);
                match find_key(entries, last) {
                    Ok(i) => entries[i].1 = value,
                    Err(i) => entries.insert(i, (Str::from(last), value)),
                }
            }
            Value::Array(items) => {
                let items = Arc::make_mut(items);
                let index = parse_index(last).expect("index checked above");
                if index == items.len() {
                    items.push(value);
                } else {
                    items[index] = value;
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
                let entries = Arc::make_mut(entries);
                let i = find_key(entries, last).expect("key checked above");
                entries.remove(i);
            }
            Value::Array(items) => {
                let items = Arc::make_mut(items);
                items.remove(parse_index(last).expect("index checked above"));
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
                    let entries = Arc::make_mut(entries);
                    let i = find_key(entries, segment).expect("path checked by the caller");
                    &mut entries[i].1
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
            Value::Null => out.write_all(b"null"),
            Value::Bool(true) => out.write_all(b"true"),
            Value::Bool(false) => out.write_all(b"false"),
            Value::Number(n) => write!(out, "{n}"),
            Value::String(s) => write_str(out, s),
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
                    write_str(out, key)?;
                    out.write_all(b":")?;
                    value.write_compact(out)?;
                }
                out.write_all(b"}")
            }
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
                    write_str(out, key)?;
                    out.write_all(b": ")?;
                    value.write_pretty_at(out, level + 1)?;
                }
                out.write_all(b"\n")?;
                write_indent(out, level)?;
                out.write_all(b"}")
            }
            scalar_or_empty => scalar_or_empty.write_compact(out),
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

/// Index of `key` in sorted entries, or where it would be inserted.
pub fn find_key(entries: &[(Str, Value)], key: &str) -> Result<usize, usize> {
    entries.binary_search_by(|(k, _)| k.as_ref().cmp(key))
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

/// Writes a JSON string the way serde_json does: quote, backslash and control characters escaped
/// (the short forms where JSON has them, else `\u00XX` in lower-case hex), everything else as is.
pub fn write_str<W: Write>(out: &mut W, s: &str) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.write_all(b"\"")?;
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        if short.is_empty() {
            let hex = [b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
            out.write_all(&hex)?;
        } else {
            out.write_all(short)?;
        }
        start = i + 1;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
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

    const AWKWARD: &str = r#"{"z": [1, -2, 3.5, 1e300, -0.0, 12345678901234567890, 0.1],
        "a": {"": null, "é": "\"quoted\" \\ \n\t\r\b\f \u0001\u001f\u007f ☃ 😀", "nested": [[], {}, [{}]]},
        "m": true, "n": false}"#;

    #[test]
    fn rendering_matches_serde_json_byte_for_byte() {
        for text in [AWKWARD, "{}", "[]", "0", "\"x\"", "[[[]]]", r#"{"a":{"b":{}}}"#] {
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

    #[test]
    fn every_control_character_is_escaped_like_serde_json() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let mut ours = Vec::new();
        write_str(&mut ours, &all).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&all).unwrap());
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
    }
}
