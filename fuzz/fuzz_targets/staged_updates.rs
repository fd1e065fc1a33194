//! The store's tree under a sequence of edits, as a transaction stages them: the input is a small
//! program (decoded with `arbitrary`) that writes a JSON document as text, parses it with
//! `Value::parse`, then applies `Value::put` and `Value::delete` on paths that exist and paths that
//! do not. The same edits are applied to a `serde_json::Value` as a reference model.
//!
//! Checked after every step: the compact JSON parses back to an equal tree; `Checksum::of` is the
//! SHA-1 of the compact JSON; serde_json reads and writes the compact JSON back byte for byte; the
//! compact and pretty renderings equal serde_json's renderings of the model; a failed edit leaves
//! the tree unchanged and unshared nodes uncopied, with the same error the model gives; and a clone
//! taken before an edit is not changed by it; the copy a commit of the tree would send to peers
//! (`snapshot::seal`) is accepted by `parse_copy` as the same tree. Every JSON text parses with `Value::parse` exactly
//! when serde_json parses it (and it nests at most `STORE_DEPTH_MAX` levels), to the same document.
#![no_main]

use std::fmt::Write as _;
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lighthouse::limits::STORE_DEPTH_MAX;
use lighthouse::core::sealed::{parse_copy, seal};
use lighthouse::core::value::{EditError, Value};
use lighthouse::core::version::Checksum;
use serde_json::Value as Json;

/// Keys and segments the generator picks most of the time, so that edits meet.
const NAMES: [&str; 14] = [
    "",
    "a",
    "b",
    "0",
    "1",
    "2",
    "10",
    "01",
    "é",
    "a/b",
    "\u{0}\"\\\n\u{1f}\u{7f}",
    "ключ",
    "22 bytes fit inline!!!",
    "a key too long to be stored inline",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Pool(u8),
    Text(String),
}

impl Name {
    fn text(&self) -> &str {
        match self {
            Name::Pool(i) => NAMES[usize::from(*i) % NAMES.len()],
            Name::Text(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Number {
    UInt(u64),
    Int(i64),
    Float(f64),
    /// `[-]INT[.FRAC][e[+|-]EXP]`, with FRAC's leading zeros.
    Text {
        negative: bool,
        int: u64,
        frac: Option<(u8, u64)>,
        exp: Option<(u8, i16)>,
    },
}

/// A JSON document to write as text.
#[derive(Arbitrary, Debug)]
enum Gen {
    Null,
    Bool(bool),
    Number(Number),
    String(Name),
    Array(Vec<Gen>),
    /// Keys may repeat: `Value::parse` refuses the text, serde_json keeps the last.
    Object(Vec<(Name, Gen)>),
    /// The inner document inside this many arrays (modulo 112), to reach the depth limit.
    Nested(u8, Box<Gen>),
    /// Text written as it is: usually not JSON.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    /// The n-th key (or index, one past the end included) of the node reached so far.
    Existing(u8),
    Name(Name),
    Index(u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Put(Vec<Segment>, Gen),
    Delete(Vec<Segment>),
    /// Puts `[[...[]...]]` nested this many levels (modulo 112), to probe the depth limit.
    PutNested(Vec<Segment>, u8),
    /// Puts the subtree at the first path (when there is one) at the second, so nodes are shared.
    Copy(Vec<Segment>, Vec<Segment>),
}

#[derive(Arbitrary, Debug)]
struct Program {
    /// How JSON text is written: bit 0 escapes non-ASCII as `\u`, bit 1 writes `/` as `\/`,
    /// bit 2 adds whitespace, bit 3 uses `\u00XX` for every control character.
    style: u8,
    init: Gen,
    ops: Vec<Op>,
}

const OPS_MAX: usize = 48;

fuzz_target!(|program: Program| {
    let Some((mut tree, mut model)) = parse_both(&program.init, program.style) else { return };
    check(&tree, &model);
    for op in program.ops.iter().take(OPS_MAX) {
        let before = tree.clone();
        let before_compact = before.to_compact();
        let (outcome, expected) = match op {
            Op::Put(segments, doc) => {
                let path = build_path(&tree, segments);
                let Some((value, json)) = parse_both(doc, program.style) else { continue };
                (tree.put(&path, value, STORE_DEPTH_MAX), model_put(&mut model, &path, json))
            }
            Op::PutNested(segments, levels) => {
                let path = build_path(&tree, segments);
                let levels = usize::from(*levels % 112);
                (
                    tree.put(&path, nested_value(levels), STORE_DEPTH_MAX),
                    model_put(&mut model, &path, nested_json(levels)),
                )
            }
            Op::Delete(segments) => {
                let path = build_path(&tree, segments);
                (tree.delete(&path), model_delete(&mut model, &path))
            }
            Op::Copy(from, to) => {
                let from = build_path(&tree, from);
                let to = build_path(&tree, to);
                let Some(subtree) = tree.resolve(&from).cloned() else { continue };
                let json = model_get(&model, &from).expect("the model has what the tree has").clone();
                (tree.put(&to, subtree, STORE_DEPTH_MAX), model_put(&mut model, &to, json))
            }
        };
        assert_eq!(outcome, expected, "the edit's outcome differs from the model's ({op:?})");
        if outcome.is_err() {
            assert_eq!(tree, before, "a failed edit changed the tree");
            assert!(same_node(&tree, &before), "a failed edit copied the root");
        }
        assert_eq!(before.to_compact(), before_compact, "an edit changed a clone taken before it");
        check(&tree, &model);
    }
});

/// Writes `doc` as JSON text and parses it both with `Value::parse` and with serde_json, which
/// must agree; gives both documents when the text is JSON.
fn parse_both(doc: &Gen, style: u8) -> Option<(Value, Json)> {
    let mut text = String::new();
    write_json(doc, style, &mut text);
    let ours = Value::parse(text.as_bytes());
    let theirs = serde_json::from_str::<Json>(&text);
    match (ours, theirs) {
        (Ok(value), Ok(json)) => {
            let compact = String::from_utf8(value.to_compact()).expect("compact JSON is UTF-8");
            assert_eq!(compact, serde_json::to_string(&json).unwrap(), "parsed {text:?}");
            Some((value, json))
        }
        (Err(e), Ok(_)) => {
            // Nesting is bounded in the text, values of duplicate keys that serde_json drops
            // included; and a key twice in one object is refused (serde_json keeps the last).
            let duplicate = e.to_string().starts_with("duplicate key") && may_repeat_a_key(doc);
            assert!(duplicate || text_depth(&text) > STORE_DEPTH_MAX, "only Value::parse refused {text:?}: {e}");
            None
        }
        (Ok(value), Err(e)) => panic!("only serde_json refused {text:?} ({e}); we gave {value:?}"),
        (Err(_), Err(_)) => None,
    }
}

/// How deep brackets nest in JSON text.
/// Whether the document has an object with a key twice (or raw text, which may).
fn may_repeat_a_key(doc: &Gen) -> bool {
    match doc {
        Gen::Object(entries) => {
            let mut keys: Vec<&str> = entries.iter().map(|(name, _)| name.text()).collect();
            keys.sort_unstable();
            keys.windows(2).any(|pair| pair[0] == pair[1]) || entries.iter().any(|(_, value)| may_repeat_a_key(value))
        }
        Gen::Array(items) => items.iter().any(may_repeat_a_key),
        Gen::Nested(_, inner) => may_repeat_a_key(inner),
        Gen::Raw(_) => true,
        Gen::Null | Gen::Bool(_) | Gen::Number(_) | Gen::String(_) => false,
    }
}

fn text_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for byte in text.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
            (false, _, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `levels` arrays, one inside the other (`null` for none).
fn nested_value(levels: usize) -> Value {
    (0..levels)
        .fold(Value::Null, |inner, level| Value::Array(Arc::from(if level == 0 { Vec::new() } else { vec![inner] })))
}

fn nested_json(levels: usize) -> Json {
    (0..levels).fold(Json::Null, |inner, level| Json::Array(if level == 0 { Vec::new() } else { vec![inner] }))
}

/// The invariants of one tree, and its agreement with the model.
fn check(tree: &Value, model: &Json) {
    let compact = tree.to_compact();
    let reparsed = Value::parse(&compact).expect("compact JSON parses back");
    assert_eq!(&reparsed, tree, "compact JSON parses back to another tree: {}", String::from_utf8_lossy(&compact));
    assert!(reparsed.same_content(tree));
    assert_eq!(Checksum::of(tree), Checksum::of_bytes(&compact), "streamed checksum");
    let through_serde = serde_json::to_vec(&serde_json::from_slice::<Json>(&compact).expect("serde_json reads it"))
        .expect("serde_json writes it");
    assert_eq!(
        String::from_utf8_lossy(&through_serde),
        String::from_utf8_lossy(&compact),
        "serde_json does not give the same compact JSON back"
    );
    assert_eq!(
        String::from_utf8_lossy(&compact),
        serde_json::to_string(model).unwrap(),
        "the tree differs from the model"
    );
    let pretty = String::from_utf8(tree.to_pretty_line()).expect("pretty JSON is UTF-8");
    assert_eq!(pretty, serde_json::to_string_pretty(model).unwrap() + "\n", "pretty rendering");
    assert_eq!(tree.depth(), json_depth(model), "depth");
    assert!(tree.depth() <= STORE_DEPTH_MAX, "the tree nests deeper than the limit");
    // What a commit of this tree sends to peers, and writes to disk, is accepted by them.
    let sealed = seal(tree.clone(), 1, None);
    let received = parse_copy(&sealed.body).expect("a peer accepts this node's copy");
    assert_eq!(&received.copy.root, tree, "a peer receives another tree");
    assert_eq!(received.body, sealed.body, "a peer renders another body");
}

/// Whether two trees are the same node (for containers, the same allocation).
fn same_node(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(a), Value::Array(b)) => Arc::ptr_eq(a, b),
        (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
        (Value::Chunked(a), Value::Chunked(b)) => Arc::ptr_eq(a, b),
        (a, b) => a == b,
    }
}

/// Turns segments into a path, walking the tree so that `Existing` picks real keys and indexes.
fn build_path(tree: &Value, segments: &[Segment]) -> Vec<String> {
    let mut node = Some(tree);
    let mut path = Vec::new();
    for segment in segments.iter().take(STORE_DEPTH_MAX + 4) {
        let text = match segment {
            Segment::Existing(n) => match node {
                Some(object) if object.object_len() > 0 => {
                    let nth = usize::from(*n) % object.object_len();
                    object.entries().nth(nth).expect("within the length").0.as_str().to_string()
                }
                Some(Value::Array(items)) => (usize::from(*n) % (items.len() + 1)).to_string(),
                _ => NAMES[usize::from(*n) % NAMES.len()].to_string(),
            },
            Segment::Name(name) => name.text().to_string(),
            Segment::Index(i) => i.to_string(),
        };
        node = node.and_then(|n| n.child(&text));
        path.push(text);
    }
    path
}

// ---- The model: the edits as docs/tutorial.md describes them, on serde_json's tree --------------

fn json_depth(json: &Json) -> usize {
    match json {
        Json::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Json::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Decimal digits without sign or leading zeros.
fn index(segment: &str) -> Option<usize> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    if digits && (segment == "0" || !segment.starts_with('0')) { segment.parse().ok() } else { None }
}

fn model_get<'a>(json: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(json, |node, segment| match node {
        Json::Object(map) => map.get(segment),
        Json::Array(items) => items.get(index(segment)?),
        _ => None,
    })
}

fn model_get_mut<'a>(json: &'a mut Json, path: &[String]) -> Option<&'a mut Json> {
    path.iter().try_fold(json, |node, segment| match node {
        Json::Object(map) => map.get_mut(segment),
        Json::Array(items) => items.get_mut(index(segment)?),
        _ => None,
    })
}

fn model_put(model: &mut Json, path: &[String], value: Json) -> Result<(), EditError> {
    if path.len() + json_depth(&value) > STORE_DEPTH_MAX {
        return Err(EditError::TooDeep);
    }
    let Some((last, parent)) = path.split_last() else {
        *model = value;
        return Ok(());
    };
    match model_get_mut(model, parent) {
        Some(Json::Object(map)) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Some(Json::Array(items)) => match index(last) {
            Some(i) if i < items.len() => {
                items[i] = value;
                Ok(())
            }
            Some(i) if i == items.len() => {
                items.push(value);
                Ok(())
            }
            _ => Err(EditError::NoParent),
        },
        _ => Err(EditError::NoParent),
    }
}

fn model_delete(model: &mut Json, path: &[String]) -> Result<(), EditError> {
    let Some((last, parent)) = path.split_last() else {
        *model = Json::Object(serde_json::Map::new());
        return Ok(());
    };
    match model_get_mut(model, parent) {
        Some(Json::Object(map)) => map.remove(last).map(drop).ok_or(EditError::NotFound),
        Some(Json::Array(items)) => match index(last) {
            Some(i) if i < items.len() => {
                items.remove(i);
                Ok(())
            }
            _ => Err(EditError::NotFound),
        },
        _ => Err(EditError::NotFound),
    }
}

// ---- Writing JSON text ----------------------------------------------------------------------------

fn write_json(doc: &Gen, style: u8, out: &mut String) {
    let space = if style & 4 != 0 { " \n\t" } else { "" };
    match doc {
        Gen::Null => out.push_str("null"),
        Gen::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Gen::Number(n) => write_number(n, out),
        Gen::String(name) => write_string(name.text(), style, out),
        Gen::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(space);
                write_json(item, style, out);
            }
            out.push_str(space);
            out.push(']');
        }
        Gen::Object(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(space);
                write_string(key.text(), style, out);
                out.push_str(space);
                out.push(':');
                out.push_str(space);
                write_json(value, style, out);
            }
            out.push_str(space);
            out.push('}');
        }
        Gen::Nested(levels, inner) => {
            let levels = usize::from(*levels % 112);
            out.push_str(&"[".repeat(levels));
            write_json(inner, style, out);
            out.push_str(&"]".repeat(levels));
        }
        Gen::Raw(text) => out.push_str(text),
    }
}

fn write_number(number: &Number, out: &mut String) {
    match number {
        Number::UInt(n) => write!(out, "{n}"),
        Number::Int(n) => write!(out, "{n}"),
        Number::Float(f) if f.is_finite() => write!(out, "{f:?}"),
        Number::Float(_) => write!(out, "1e999"),
        Number::Text { negative, int, frac, exp } => {
            if *negative {
                out.push('-');
            }
            write!(out, "{int}").expect("writing to a String");
            if let Some((zeros, digits)) = frac {
                write!(out, ".{}{digits}", "0".repeat(usize::from(*zeros % 24))).expect("writing to a String");
            }
            match exp {
                Some((form, exp)) => write!(out, "{}{exp}", ["e", "E", "e+", "E+"][usize::from(*form % 4)]),
                None => Ok(()),
            }
        }
    }
    .expect("writing to a String");
}

fn write_string(text: &str, style: u8, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style & 2 != 0 => out.push_str("\\/"),
            '\n' if style & 8 == 0 => out.push_str("\\n"),
            '\t' if style & 8 == 0 => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).expect("writing to a String"),
            c if !c.is_ascii() && style & 1 != 0 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04X}").expect("writing to a String");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
