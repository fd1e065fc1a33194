//! The two patch formats of `PATCH /data[/path]`: JSON Merge Patch (RFC 7396) and JSON Patch
//! (RFC 6902, with JSON Pointers of RFC 6901). Both work on a copy of the tree by path copying,
//! so a patch that fails halfway leaves the original untouched: they apply all or nothing.

use std::sync::Arc;

use super::{EditError, Entry, Value, parse_index};
use crate::limits::{PATCH_COPIED_VALUES_MAX, PATCH_OPERATIONS_MAX};

/// Why a JSON Patch was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The patch document is not a list of operations as RFC 6902 writes them (400).
    Malformed(String),
    /// The operations are well formed but do not apply to this document: a missing path, a
    /// failed `test` (422).
    DoesNotApply(String),
    /// The result would nest deeper than the store allows (400).
    TooDeep,
    /// The `copy` operations would copy more than `PATCH_COPIED_VALUES_MAX` values (413): each may
    /// double what the one before copied, so a small patch could grow the store without bound.
    TooLarge,
}

/// Patches of at most this many members are merged into an object member by member (each edit
/// copying one chunk of a wide object); larger ones in one pass over both (copying the target's
/// entries once).
const MERGE_BY_MEMBER_MAX: usize = 16;

/// RFC 7396: `patch` merged into `target`. An object patch sets its members recursively and
/// removes those it gives as `null`; any other patch replaces the target.
pub fn merge_patch(target: Option<&Value>, patch: &Value) -> Value {
    if !patch.is_object() {
        return patch.clone();
    }
    if let Some(target) = target.filter(|t| t.is_object())
        && patch.object_len() <= MERGE_BY_MEMBER_MAX
    {
        // A few members: edited one by one, each copying one chunk of a wide target.
        let mut merged = target.clone();
        for (key, change) in patch.entries() {
            let key = key.as_str();
            if matches!(change, Value::Null) {
                merged.remove_member(key);
            } else {
                let member = merge_patch(merged.member(key), change);
                merged.insert_member(key, member);
            }
        }
        return merged;
    }
    let members = target.filter(|t| t.is_object()).unwrap_or(&Value::Null);
    // Both lists are sorted by key: one pass merges them, however many members either has.
    let (mut ours, mut theirs) = (members.entries().peekable(), patch.entries().peekable());
    let mut merged: Vec<Entry> = Vec::with_capacity(members.object_len() + patch.object_len());
    loop {
        let order = match (ours.peek(), theirs.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        let (kept, change) = match order {
            std::cmp::Ordering::Less => (ours.next(), None),
            std::cmp::Ordering::Greater => (None, theirs.next()),
            std::cmp::Ordering::Equal => (ours.next(), theirs.next()),
        };
        match (kept, change) {
            (Some(entry), None) => merged.push(entry.clone()),
            // `null` removes the member (a member that is not there is no error).
            (_, Some((_, Value::Null))) => {}
            (kept, Some((key, change))) => merged.push((key.clone(), merge_patch(kept.map(|(_, v)| v), change))),
            (None, None) => unreachable!("one side had an entry"),
        }
    }
    Value::object(merged)
}

/// RFC 6902: applies `operations` to the subtree of `root` at `base`, all or nothing. Pointers
/// are relative to that subtree. Returns the new root.
pub fn json_patch(root: &Value, base: &[String], operations: &Value, depth_max: usize) -> Result<Value, PatchError> {
    json_patch_bounded(root, base, operations, depth_max, PATCH_OPERATIONS_MAX)
}

/// As `json_patch`, with at most `operations_max` operations: a client's patch is bounded by
/// `PATCH_OPERATIONS_MAX`; a change made by this crate (`core::change`) by the store's own size.
pub fn json_patch_bounded(
    root: &Value,
    base: &[String],
    operations: &Value,
    depth_max: usize,
    operations_max: usize,
) -> Result<Value, PatchError> {
    let Value::Array(operations) = operations else {
        return Err(PatchError::Malformed("a JSON Patch is an array of operations".into()));
    };
    if operations.len() > operations_max {
        return Err(PatchError::Malformed(format!("at most {operations_max} operations in one patch")));
    }
    let mut doc = root.clone();
    let mut copied = 0;
    for (i, operation) in operations.iter().enumerate() {
        apply(&mut doc, base, operation, depth_max, &mut copied).map_err(|e| match e {
            PatchError::Malformed(m) => PatchError::Malformed(format!("operation {i}: {m}")),
            PatchError::DoesNotApply(m) => PatchError::DoesNotApply(format!("operation {i}: {m}")),
            other => other,
        })?;
    }
    Ok(doc)
}

fn apply(
    doc: &mut Value,
    base: &[String],
    operation: &Value,
    depth_max: usize,
    copied: &mut usize,
) -> Result<(), PatchError> {
    let member = |name: &str| operation.child(name);
    let text = |name: &str| match member(name) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(PatchError::Malformed(format!("\"{name}\" must be a string"))),
        None => Err(PatchError::Malformed(format!("\"{name}\" is missing"))),
    };
    if !operation.is_object() {
        return Err(PatchError::Malformed("an operation is an object".into()));
    }
    let op = text("op")?;
    let pointer = text("path")?;
    let path = absolute(base, pointer)?;
    let value = || member("value").cloned().ok_or_else(|| PatchError::Malformed("\"value\" is missing".into()));
    let from = || text("from").and_then(|from| absolute(base, from));
    match op {
        "add" => add(doc, base.len(), &path, value()?, depth_max),
        "remove" => remove(doc, &path, pointer),
        "replace" => {
            if path.len() > base.len() {
                remove(doc, &path, pointer)?;
            } else if doc.resolve(&path).is_none() {
                return Err(missing(pointer));
            }
            add(doc, base.len(), &path, value()?, depth_max)
        }
        "move" => {
            let from = from()?;
            if path.len() > from.len() && path.starts_with(&from) {
                return Err(PatchError::DoesNotApply("cannot move a value into itself".into()));
            }
            let moved = doc.resolve(&from).cloned().ok_or_else(|| missing(text("from").unwrap_or_default()))?;
            remove(doc, &from, "from")?;
            add(doc, base.len(), &path, moved, depth_max)
        }
        "copy" => {
            let value = doc.resolve(&from()?).cloned().ok_or_else(|| missing(text("from").unwrap_or_default()))?;
            *copied += values_in(&value, PATCH_COPIED_VALUES_MAX + 1);
            if *copied > PATCH_COPIED_VALUES_MAX {
                return Err(PatchError::TooLarge);
            }
            add(doc, base.len(), &path, value, depth_max)
        }
        "test" => match doc.resolve(&path) {
            Some(found) if same_json(found, &value()?) => Ok(()),
            Some(_) => Err(PatchError::DoesNotApply(format!("test failed: {pointer} holds another value"))),
            None => Err(missing(pointer)),
        },
        other => Err(PatchError::Malformed(format!("unknown op \"{other}\" (add, remove, replace, move, copy, test)"))),
    }
}

/// RFC 6902 `add`: an object's member is set; in an array the value is inserted before the index
/// (`-` appends); the empty pointer (`path` of `base_len` segments) replaces the target.
fn add(doc: &mut Value, base_len: usize, path: &[String], value: Value, depth_max: usize) -> Result<(), PatchError> {
    let inserted = match path.split_last().filter(|_| path.len() > base_len) {
        None => (path, value),
        Some((last, parent_path)) => match doc.resolve(parent_path) {
            Some(Value::Array(items)) => {
                let index = if last == "-" { Some(items.len()) } else { parse_index(last) };
                let Some(index) = index else {
                    return Err(PatchError::DoesNotApply(format!("\"{last}\" is not an array index (0, 1, ... or -)")));
                };
                if index > items.len() {
                    return Err(PatchError::DoesNotApply(format!("index {last} is past the end of its array")));
                }
                let grown: Arc<[Value]> =
                    items[..index].iter().cloned().chain(Some(value)).chain(items[index..].iter().cloned()).collect();
                (parent_path, Value::Array(grown))
            }
            Some(parent) if parent.is_object() => (path, value),
            _ => {
                return Err(PatchError::DoesNotApply(format!(
                    "the parent of /{} does not exist or is not an object or array",
                    path[base_len..].join("/")
                )));
            }
        },
    };
    doc.put(inserted.0, inserted.1, depth_max).map_err(|e| match e {
        EditError::TooDeep => PatchError::TooDeep,
        _ => PatchError::DoesNotApply(format!("cannot add at /{}", path.join("/"))),
    })
}

fn remove(doc: &mut Value, path: &[String], pointer: &str) -> Result<(), PatchError> {
    if doc.resolve(path).is_none() {
        return Err(missing(pointer));
    }
    doc.delete(path).map_err(|_| missing(pointer))
}

fn missing(pointer: &str) -> PatchError {
    PatchError::DoesNotApply(format!("no such path: \"{pointer}\""))
}

/// The store path of a JSON Pointer below `base`: `""` is the base itself, else `/`-separated
/// tokens with `~1` for `/` and `~0` for `~`.
fn absolute(base: &[String], pointer: &str) -> Result<Vec<String>, PatchError> {
    let mut path = base.to_vec();
    if pointer.is_empty() {
        return Ok(path);
    }
    let Some(tokens) = pointer.strip_prefix('/') else {
        return Err(PatchError::Malformed(format!("\"{pointer}\" is not a JSON Pointer (it starts with /)")));
    };
    for token in tokens.split('/') {
        let mut decoded = String::with_capacity(token.len());
        let mut chars = token.chars();
        while let Some(c) = chars.next() {
            match (c, c == '~') {
                (_, false) => decoded.push(c),
                (_, true) => match chars.next() {
                    Some('0') => decoded.push('~'),
                    Some('1') => decoded.push('/'),
                    _ => return Err(PatchError::Malformed(format!("\"{pointer}\": ~ is escaped as ~0 or ~1"))),
                },
            }
        }
        path.push(decoded);
    }
    Ok(path)
}

/// JSON equality for `test`: numbers compare by value (1 equals 1.0), objects ignore order.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same_json(a, b))
        }
        (x, y) if x.is_object() && y.is_object() => {
            x.object_len() == y.object_len()
                && x.entries().zip(y.entries()).all(|((ka, va), (kb, vb))| ka == kb && same_json(va, vb))
        }
        // Integers compare exactly (the store keeps them exactly, past 2^53 too); a float by value.
        (Value::Float(_), Value::UInt(_) | Value::Int(_) | Value::Float(_))
        | (Value::UInt(_) | Value::Int(_), Value::Float(_)) => number(a) == number(b),
        _ => a == b,
    }
}

fn number(v: &Value) -> f64 {
    match v {
        Value::UInt(n) => *n as f64,
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

/// The values in `value` (itself, and every member and element below it), counted up to `limit`.
fn values_in(value: &Value, limit: usize) -> usize {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(_) | Value::Chunked(_) => Box::new(value.entries().map(|(_, v)| v)),
        _ => return 1,
    };
    let mut count = 1;
    for child in children {
        if count >= limit {
            break;
        }
        count += values_in(child, limit - count);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::fixtures::parse;

    fn merged(target: &str, patch: &str) -> Value {
        merge_patch(Some(&parse(target)), &parse(patch))
    }

    #[test]
    fn merge_patch_follows_the_examples_of_rfc_7396() {
        // Appendix A of the RFC, row by row.
        let rows = [
            (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
            (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
            (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
            (r#"{"a":{"b":"c"}}"#, r#"{"a":{"b":"d","c":null}}"#, r#"{"a":{"b":"d"}}"#),
            (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
            (r#"["a","b"]"#, r#"["c","d"]"#, r#"["c","d"]"#),
            (r#"{"a":"b"}"#, r#"["c"]"#, r#"["c"]"#),
            (r#"{"a":"foo"}"#, "null", "null"),
            (r#"{"a":"foo"}"#, r#""bar""#, r#""bar""#),
            (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"a":1,"e":null}"#),
            ("[1,2]", r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#),
            ("{}", r#"{"a":{"bb":{"ccc":null}}}"#, r#"{"a":{"bb":{}}}"#),
        ];
        for (target, patch, result) in rows {
            assert_eq!(merged(target, patch), parse(result), "{target} + {patch}");
        }
        assert_eq!(merge_patch(None, &parse(r#"{"a":null,"b":1}"#)), parse(r#"{"b":1}"#));
        // Many members merge in one pass (a quadratic merge took seconds on 100,000 keys).
        let wide: String = (0..100_000).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(",");
        let patch = wide.replace("\"k5\":5,", "\"k5\":null,");
        let merged = merged(&format!("{{{wide}}}"), &format!("{{{patch}}}"));
        assert_eq!(merged.child("k7"), Some(&parse("7")));
        assert_eq!(merged.child("k5"), None);
    }

    fn patched(doc: &str, patch: &str) -> Result<Value, PatchError> {
        json_patch(&parse(doc), &[], &parse(patch), 100)
    }

    #[test]
    fn json_patch_applies_the_six_operations_of_rfc_6902() {
        let ok = |doc: &str, patch: &str, result: &str| assert_eq!(patched(doc, patch), Ok(parse(result)), "{patch}");
        ok(r#"{"foo":"bar"}"#, r#"[{"op":"add","path":"/baz","value":"qux"}]"#, r#"{"baz":"qux","foo":"bar"}"#);
        ok(
            r#"{"foo":["bar","baz"]}"#,
            r#"[{"op":"add","path":"/foo/1","value":"qux"}]"#,
            r#"{"foo":["bar","qux","baz"]}"#,
        );
        ok(r#"{"foo":[1]}"#, r#"[{"op":"add","path":"/foo/-","value":2}]"#, r#"{"foo":[1,2]}"#);
        ok(r#"{"baz":"qux","foo":"bar"}"#, r#"[{"op":"remove","path":"/baz"}]"#, r#"{"foo":"bar"}"#);
        ok(r#"{"foo":["bar","qux","baz"]}"#, r#"[{"op":"remove","path":"/foo/1"}]"#, r#"{"foo":["bar","baz"]}"#);
        ok(
            r#"{"baz":"qux","foo":"bar"}"#,
            r#"[{"op":"replace","path":"/baz","value":"boo"}]"#,
            r#"{"baz":"boo","foo":"bar"}"#,
        );
        ok(r#"{"foo":["a","b"]}"#, r#"[{"op":"replace","path":"/foo/0","value":"z"}]"#, r#"{"foo":["z","b"]}"#);
        ok(
            r#"{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}"#,
            r#"[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]"#,
            r#"{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}"#,
        );
        ok(
            r#"{"foo":["all","grass","cows","eat"]}"#,
            r#"[{"op":"move","from":"/foo/1","path":"/foo/3"}]"#,
            r#"{"foo":["all","cows","eat","grass"]}"#,
        );
        ok(r#"{"a":{"b":1}}"#, r#"[{"op":"copy","from":"/a","path":"/c"}]"#, r#"{"a":{"b":1},"c":{"b":1}}"#);
        ok(
            r#"{"a/b":1,"m~n":2}"#,
            r#"[{"op":"test","path":"/a~1b","value":1.0},{"op":"remove","path":"/m~0n"}]"#,
            r#"{"a/b":1}"#,
        );
        ok(r#"{"a":1}"#, r#"[{"op":"replace","path":"","value":[1]}]"#, "[1]");
        ok(
            r#"{"a":{"b":[1,{"c":2}]}}"#,
            r#"[{"op":"test","path":"/a","value":{"b":[1,{"c":2}]}}]"#,
            r#"{"a":{"b":[1,{"c":2}]}}"#,
        );
    }

    #[test]
    fn a_json_patch_applies_all_or_nothing_and_says_why_not() {
        let doc = r#"{"a":1,"list":[1]}"#;
        let fails = |patch: &str| match patched(doc, patch) {
            Err(PatchError::DoesNotApply(m)) => m,
            other => panic!("{patch}: {other:?}"),
        };
        assert!(
            fails(r#"[{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":2}]"#)
                .starts_with("operation 1: test failed")
        );
        assert!(fails(r#"[{"op":"remove","path":"/zzz"}]"#).contains("no such path"));
        assert!(fails(r#"[{"op":"replace","path":"/zzz","value":1}]"#).contains("no such path"));
        assert!(fails(r#"[{"op":"add","path":"/list/5","value":1}]"#).contains("past the end"));
        assert!(fails(r#"[{"op":"add","path":"/x/y","value":1}]"#).contains("parent"));
        assert!(fails(r#"[{"op":"move","from":"/list","path":"/list/0"}]"#).contains("into itself"));
        let malformed = |patch: &str| assert!(matches!(patched(doc, patch), Err(PatchError::Malformed(_))), "{patch}");
        malformed(r#"{"op":"add"}"#);
        malformed(r#"[{"op":"add","path":"/b"}]"#);
        malformed(r#"[{"op":"frobnicate","path":"/a"}]"#);
        malformed(r#"[{"path":"/a"}]"#);
        malformed(r#"[{"op":"remove","path":"a"}]"#);
        malformed(r#"[{"op":"remove","path":"/a~2"}]"#);
        malformed(r#"[{"op":"remove","path":"/~~01"}]"#);
        malformed("[1]");
        let too_many =
            format!("[{}]", vec![r#"{"op":"test","path":"/a","value":1}"#; PATCH_OPERATIONS_MAX + 1].join(","));
        malformed(&too_many);
    }

    #[test]
    fn pointers_are_relative_to_the_base_path() {
        let doc = parse(r#"{"svc":{"port":1}}"#);
        let base = vec!["svc".to_string()];
        let result = json_patch(&doc, &base, &parse(r#"[{"op":"replace","path":"/port","value":2}]"#), 100);
        assert_eq!(result, Ok(parse(r#"{"svc":{"port":2}}"#)));
        // The empty pointer is the subtree itself, even inside an array: replaced, not inserted.
        let doc = parse(r#"{"list":[1,2]}"#);
        let base = vec!["list".to_string(), "0".to_string()];
        for op in ["add", "replace"] {
            let patch = parse(&format!(r#"[{{"op":"{op}","path":"","value":9}}]"#));
            assert_eq!(json_patch(&doc, &base, &patch, 100), Ok(parse(r#"{"list":[9,2]}"#)), "{op}");
        }
    }

    #[test]
    fn test_compares_integers_exactly_and_copies_are_bounded() {
        let doc = r#"{"v":9007199254740993,"f":1.0}"#;
        let big = r#"[{"op":"test","path":"/v","value":9007199254740992}]"#;
        assert!(matches!(patched(doc, big), Err(PatchError::DoesNotApply(_))));
        assert!(patched(doc, r#"[{"op":"test","path":"/v","value":9007199254740993}]"#).is_ok());
        assert!(patched(doc, r#"[{"op":"test","path":"/f","value":1}]"#).is_ok());
        // Each copy of the list into itself doubles it: 2^31 values from a patch of 1 KB, unbounded.
        let doubling = |n| format!("[{}]", vec![r#"{"op":"copy","from":"/l","path":"/l/-"}"#; n].join(","));
        assert_eq!(patched(r#"{"l":[1]}"#, &doubling(30)), Err(PatchError::TooLarge));
        assert_eq!(patched(r#"{"l":[1]}"#, &doubling(5)).unwrap().child("l").map(|l| values_in(l, 100)), Some(64));
    }
}
