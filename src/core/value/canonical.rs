//! Parsing the tree's own compact JSON in one pass: the store's data in a snapshot file or a copy
//! from a peer, which a checksum vouches for only if it is exactly the tree's rendering.
//!
//! `parse_canonical` accepts precisely the texts that `write_compact` writes: no whitespace, keys
//! in strictly increasing byte order, strings escaped as serde_json escapes them (`\"`, `\\`, the
//! short forms of JSON for `\b \f \n \r \t`, `\u00xx` in lower case for the other control
//! characters, nothing else), integers without leading zeros, and floats in the one spelling their
//! value renders to. It stops at the first byte that departs from that form, so the callers fall
//! back to the general parser, which then either says why the text is invalid or renders the
//! canonical text anew. Accepting a text is the same as "`Value::parse` of it renders back to
//! it", checked in the same pass as the parse instead of by a second render.
//!
//! Small arrays and objects of scalars that recur (a list of tags, `{"enabled": true}`) are made
//! once and shared: in canonical text, the same text is the same content, so a node is found by
//! its text. The tree is immutable and edits copy what they change, so sharing is invisible but
//! for memory (a store of a million services with one of seven tag lists each: 96 MB less).

use std::collections::HashMap;
use std::sync::Arc;

use super::object::{CHUNK_ENTRIES, Chunk, FLAT_ENTRIES_MAX};
use super::{Entry, Str, Value};
use crate::limits::{PACE_PIECE_BYTES, SHARED_NODES_MAX, SHARED_TEXT_BYTES_MAX, STORE_DEPTH_MAX};

impl Value {
    /// Parses the value at the start of `bytes` when it is in the tree's compact canonical form;
    /// gives the tree and its length in bytes (anything may follow it). `None` when it is not
    /// canonical, not JSON, or nested deeper than `STORE_DEPTH_MAX`. `pace` is called after each
    /// `PACE_PIECE_BYTES` of input.
    pub fn parse_canonical(bytes: &[u8], pace: &mut dyn FnMut()) -> Option<(Value, usize)> {
        // UTF-8 is checked once, over the whole input, not string by string: JSON is UTF-8 from
        // end to end, and a string's text between two ASCII bytes of valid UTF-8 is valid too.
        // An invalid byte ends the input where it stands, so a value reaching it is refused.
        let source = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?,
        };
        let mut parser = Canonical {
            bytes: source.as_bytes(),
            source,
            at: 0,
            paced_at: 0,
            pace,
            values: Vec::new(),
            entries: Vec::new(),
            chunks: Vec::new(),
            text: Vec::new(),
            shared: HashMap::new(),
            recent: std::array::from_fn(|_| None),
        };
        let value = parser.value(0)?;
        Some((value, parser.at))
    }
}

struct Canonical<'a, 'p> {
    bytes: &'a [u8],
    /// The same input as text: strings are sliced out of it without checking them again.
    source: &'a str,
    at: usize,
    paced_at: usize,
    pace: &'p mut dyn FnMut(),
    /// The elements of the open containers, innermost last (as in `parse`).
    values: Vec<Value>,
    entries: Vec<Entry>,
    /// The chunks of the open wide objects, innermost last: a wide object's entries are moved
    /// into chunks as they come (`object`), so the parse never holds them all in one vector (the
    /// top object of a store of a million services was 48 MB in `entries`, doubled as it grew,
    /// then copied again into its chunks).
    chunks: Vec<Chunk>,
    /// A string with escapes, unescaped.
    text: Vec<u8>,
    /// Small containers of scalars parsed so far, by their text: the same text again (canonical
    /// text is the same exactly when the content is) shares the node instead of allocating one.
    shared: HashMap<&'a [u8], Value>,
    /// The last node of `shared` found or kept in each of a few slots, by a cheap hash of its
    /// text: a store's recurring containers are found here without hashing their text with
    /// SipHash (4% of a start-up). A text of another slot's hash, or not there, is looked up
    /// in `shared` as before, so texts made to collide cost no more than that.
    recent: [Option<(&'a [u8], Value)>; RECENT_SLOTS],
}

/// Slots of `Canonical::recent` (a power of two).
const RECENT_SLOTS: usize = 64;

/// The slot of `text` in `Canonical::recent`: its length and last eight bytes, mixed.
fn recent_slot(text: &[u8]) -> usize {
    let mut last = [0u8; 8];
    let tail = &text[text.len().saturating_sub(8)..];
    last[..tail.len()].copy_from_slice(tail);
    let mixed = (u64::from_le_bytes(last) ^ text.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

impl<'a> Canonical<'a, '_> {
    fn value(&mut self, depth: usize) -> Option<Value> {
        self.item(depth)
    }

    /// A value, inlined into the containers' loops: a scalar is made where it is stored, not
    /// returned through memory and read back wider than it was written (a wait on every value).
    #[inline(always)]
    fn item(&mut self, depth: usize) -> Option<Value> {
        if self.at - self.paced_at >= PACE_PIECE_BYTES {
            self.paced_at = self.at;
            (self.pace)();
        }
        match *self.bytes.get(self.at)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => Some(Value::String(self.string()?)),
            b'n' => self.literal(b"null", Value::Null),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Option<Value> {
        self.bytes[self.at..].starts_with(word).then(|| {
            self.at += word.len();
            value
        })
    }

    /// The byte at the cursor, consumed when it is `byte`.
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(found);
        found
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        if depth >= STORE_DEPTH_MAX {
            return None;
        }
        let open = self.at;
        self.at += 1;
        let start = self.values.len();
        if !self.eat(b']') {
            loop {
                let item = self.item(depth + 1)?;
                self.values.push(item);
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        let scalars = self.values[start..].iter().all(|item| !item.is_container());
        if let Some(shared) = self.shared_node(open, scalars) {
            self.values.truncate(start);
            return Some(shared);
        }
        let items: Arc<[Value]> = self.values.drain(start..).collect();
        Some(self.keep_shared(open, scalars, Value::Array(items)))
    }

    /// The node already made of the same text as the container from `open` to the cursor, if it
    /// is small and of scalars only.
    fn shared_node(&mut self, open: usize, scalars: bool) -> Option<Value> {
        let text = &self.bytes[open..self.at];
        if !scalars || text.len() > SHARED_TEXT_BYTES_MAX {
            return None;
        }
        let slot = recent_slot(text);
        if let Some((recent, node)) = &self.recent[slot]
            && *recent == text
        {
            return Some(node.clone());
        }
        let node = self.shared.get(text)?.clone();
        self.recent[slot] = Some((text, node.clone()));
        Some(node)
    }

    /// Keeps a small container of scalars to share with later ones of the same text.
    fn keep_shared(&mut self, open: usize, scalars: bool, value: Value) -> Value {
        let text = &self.bytes[open..self.at];
        if scalars && text.len() <= SHARED_TEXT_BYTES_MAX && self.shared.len() < SHARED_NODES_MAX {
            self.shared.insert(text, value.clone());
            self.recent[recent_slot(text)] = Some((text, value.clone()));
        }
        value
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        if depth >= STORE_DEPTH_MAX {
            return None;
        }
        let open = self.at;
        self.at += 1;
        let (start, first_chunk) = (self.entries.len(), self.chunks.len());
        if !self.eat(b'}') {
            loop {
                if self.bytes.get(self.at) != Some(&b'"') {
                    return None;
                }
                let key = self.string()?;
                let in_order = self.entries.len() == start
                    || self.entries.last().is_some_and(|(last, _)| precedes(last.as_bytes(), key.as_bytes()));
                if !in_order || !self.eat(b':') {
                    return None;
                }
                let value = self.item(depth + 1)?;
                self.entries.push((key, value));
                // Past the flat size the object is chunked: a whole chunk moves out, at least
                // one entry stays (the next key is checked against the last).
                if self.entries.len() - start > FLAT_ENTRIES_MAX {
                    self.chunks.push(self.entries.drain(start..start + CHUNK_ENTRIES).collect());
                }
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        if self.chunks.len() > first_chunk {
            // The same chunks as `Value::object` makes of the same entries: all full but the last.
            while self.entries.len() > start {
                let end = self.entries.len().min(start + CHUNK_ENTRIES);
                self.chunks.push(self.entries.drain(start..end).collect());
            }
            return Some(Value::Chunked(self.chunks.drain(first_chunk..).collect()));
        }
        let scalars = self.entries[start..].iter().all(|(_, value)| !value.is_container());
        if let Some(shared) = self.shared_node(open, scalars) {
            self.entries.truncate(start);
            return Some(shared);
        }
        let object = Value::object_from_drain(self.entries.drain(start..));
        Some(self.keep_shared(open, scalars, object))
    }

    /// A string at the cursor (on its opening quote).
    fn string(&mut self) -> Option<Str> {
        self.at += 1;
        let start = self.at;
        let mut run = start;
        self.text.clear();
        loop {
            let byte = *self.bytes.get(self.at)?;
            match byte {
                b'"' => break,
                b'\\' => {
                    self.text.extend_from_slice(&self.bytes[run..self.at]);
                    let unescaped = self.escape()?;
                    self.text.push(unescaped);
                    run = self.at;
                }
                0..0x20 => return None,
                _ => self.at += 1,
            }
        }
        let end = self.at;
        self.at += 1;
        if run == start {
            return self.source.get(start..end).map(|text| Str::new_from_window(text, &self.bytes[start..]));
        }
        // Pieces of the text and the bytes of escapes: checked again only in a string with one.
        self.text.extend_from_slice(&self.bytes[run..end]);
        std::str::from_utf8(&self.text).ok().map(Str::new)
    }

    /// The escape at the cursor (on its backslash), when it is the one serde_json writes for the
    /// byte it stands for.
    fn escape(&mut self) -> Option<u8> {
        let letter = *self.bytes.get(self.at + 1)?;
        let (byte, length) = match letter {
            b'"' => (b'"', 2),
            b'\\' => (b'\\', 2),
            b'b' => (0x08, 2),
            b't' => (0x09, 2),
            b'n' => (0x0a, 2),
            b'f' => (0x0c, 2),
            b'r' => (0x0d, 2),
            b'u' => {
                let digits = self.bytes.get(self.at + 2..self.at + 6)?;
                let byte = match digits {
                    [b'0', b'0', high @ b'0'..=b'1', low] => (high - b'0') << 4 | lower_hex(*low)?,
                    _ => return None,
                };
                // Only the control characters without a short form are written as `\u00xx`.
                if matches!(byte, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                    return None;
                }
                (byte, 6)
            }
            _ => return None,
        };
        self.at += length;
        Some(byte)
    }

    /// A number at the cursor. Integers are read here; anything with a fraction or an exponent,
    /// or out of the integers' range, is read by the general parser and kept only when it renders
    /// back to the same text.
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        let negative = self.bytes[start] == b'-';
        let digits_start = start + usize::from(negative);
        let mut end = digits_start;
        while self.bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let digits = &self.bytes[digits_start..end];
        let is_integer = !matches!(self.bytes.get(end), Some(b'.' | b'e' | b'E'));
        let canonical_digits = digits == b"0" || digits.first().is_some_and(|d| (b'1'..=b'9').contains(d));
        if is_integer && canonical_digits && !(negative && digits == b"0") {
            let magnitude = digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')));
            let value = match (magnitude, negative) {
                (Some(n), false) => Some(Value::UInt(n)),
                (Some(n), true) if n <= i64::MIN.unsigned_abs() => Some(Value::Int(0i64.wrapping_sub_unsigned(n))),
                _ => None,
            };
            if let Some(value) = value {
                self.at = end;
                return Some(value);
            }
        }
        while self.bytes.get(end).is_some_and(|b| matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')) {
            end += 1;
        }
        let token = &self.bytes[start..end];
        let value = Value::parse(token).ok()?;
        if value.to_compact() != token {
            return None;
        }
        self.at = end;
        Some(value)
    }
}

/// Whether key `a` sorts strictly before key `b` in byte order, compared eight bytes at a time
/// and without a call: keys are short, and many share a long prefix (`service-0000123`); a
/// `memcmp` per key was 5% of loading a store.
fn precedes(a: &[u8], b: &[u8]) -> bool {
    let word = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().expect("eight bytes"));
    let mut at = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let (x, y) = (word(x), word(y));
        if x != y {
            return x < y;
        }
        at += 8;
    }
    for (x, y) in a[at..].iter().zip(&b[at..]) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

fn lower_hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::fixtures::*;

    /// What the canonical parser must agree with: a text is canonical exactly when the general
    /// parser reads it and renders it back to the same bytes, and then both read the same tree.
    fn agrees(text: &[u8]) {
        let general = Value::parse(text).ok().filter(|value| value.to_compact() == text);
        let canonical = Value::parse_canonical(text, &mut || {}).filter(|(_, length)| *length == text.len());
        match (&general, &canonical) {
            (Some(a), Some((b, _))) => assert!(a == b, "{}", String::from_utf8_lossy(text)),
            (None, None) => {}
            _ => panic!(
                "general {:?}, canonical {:?} on {}",
                general.is_some(),
                canonical.is_some(),
                String::from_utf8_lossy(text)
            ),
        }
    }

    #[test]
    fn the_rendering_of_every_tree_is_read_back_in_one_pass() {
        for text in [AWKWARD, "{}", "[]", "0", "\"x\"", "[[[]]]", r#"{"a":{"b":{}}}"#, "-1", "1.5e-7", "5e-324"] {
            let compact = parse(text).to_compact();
            let (value, length) = Value::parse_canonical(&compact, &mut || {}).expect("canonical");
            assert_eq!((value, length), (parse(text), compact.len()));
        }
        let all: String = (0u8..0x80).map(char::from).chain("é☃😀".chars()).collect();
        agrees(&Value::String(Str::new(&all)).to_compact());
    }

    #[test]
    fn every_other_spelling_is_refused() {
        for text in [
            "{ }",
            "[1, 2]",
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            "01",
            "-0",
            "1.0e2",
            "1E2",
            "100.0e0",
            "+1",
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
            r#""\/""#,
            r#""\u0041""#,
            r#""\u000a""#,
            r#""\u001F""#,
            r#""\u007f""#,
            "\"\u{7f}\"",
            "\"\x01\"",
            "nul",
            "tru",
            "[1,]",
            "{\"a\"}",
            "\"\\x\"",
            "-",
            "1.",
            ".5",
            "[",
            "{\"a\":",
            "\"\\u00",
            "\"\\",
            "18446744073709551615",
            "-9223372036854775808",
            "0.1",
            "-0.0",
            "1e300",
            "12345678901234567890",
        ] {
            agrees(text.as_bytes());
        }
        agrees(b"\"\xff\"");
        agrees(b"\"\xc3\"");
    }

    #[test]
    fn it_stops_at_the_end_of_the_value_and_bounds_nesting() {
        assert_eq!(Value::parse_canonical(br#"{"a":[1]},"lineage""#, &mut || {}), Some((parse(r#"{"a":[1]}"#), 9)));
        let deep = format!("{}{}", "[".repeat(STORE_DEPTH_MAX + 1), "]".repeat(STORE_DEPTH_MAX + 1));
        assert_eq!(Value::parse_canonical(deep.as_bytes(), &mut || {}), None);
        let ok = format!("{}{}", "[".repeat(STORE_DEPTH_MAX), "]".repeat(STORE_DEPTH_MAX));
        assert!(Value::parse_canonical(ok.as_bytes(), &mut || {}).is_some());
    }

    #[test]
    fn small_containers_of_scalars_of_the_same_text_share_one_node() {
        let text = br#"[{"a":1},{"a":1},{"a":2},["x",null],["x",null],[["x",null]],[["x",null]]]"#;
        let (mut tree, _) = Value::parse_canonical(text, &mut || {}).unwrap();
        let Value::Array(items) = &tree else { panic!("an array") };
        let same = |i: usize, j: usize| match (&items[i], &items[j]) {
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            (Value::Array(a), Value::Array(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        assert!(same(0, 1) && same(3, 4), "the same text, one node");
        assert!(!same(0, 2), "another text, another node");
        assert!(!same(5, 6), "containers of containers are not looked up");
        tree.put(&["1", "a"], Value::UInt(9), 100).unwrap();
        assert_eq!(tree.to_compact(), br#"[{"a":1},{"a":9},{"a":2},["x",null],["x",null],[["x",null]],[["x",null]]]"#);
    }

    #[test]
    fn wide_objects_are_chunked_as_they_are_read_into_the_chunks_of_the_general_parse() {
        for width in [512, 513, 600, 768, 769, 1000, 1025] {
            let inner =
                |i: usize| if i % 300 == 7 { format!("{{{}}}", keys(width + i % 3, "1")) } else { i.to_string() };
            let text = format!(
                "{{{}}}",
                (0..width).map(|i| format!("\"k{i:05}\":{}", inner(i))).collect::<Vec<_>>().join(",")
            );
            let general = Value::parse(text.as_bytes()).unwrap();
            let (canonical, length) = Value::parse_canonical(text.as_bytes(), &mut || {}).expect("canonical");
            assert_eq!((&canonical, length), (&general, text.len()), "width {width}");
            let layout = |v: &Value| v.chunks().unwrap().iter().map(|c| c.len()).collect::<Vec<_>>();
            assert_eq!(layout(&canonical), layout(&general), "width {width}");
            let nested = canonical.entries().map(|(_, v)| v).find(|v| v.is_object()).unwrap();
            assert_eq!(layout(nested), layout(general.entries().map(|(_, v)| v).find(|v| v.is_object()).unwrap()));
        }
        let unordered = format!("{{{},\"a\":1}}", keys(700, "0"));
        assert!(Value::parse_canonical(unordered.as_bytes(), &mut || {}).is_none(), "a key out of order after a chunk");
    }

    #[test]
    fn strings_of_every_length_around_the_inline_room_are_read_whole() {
        for length in 0..48 {
            let text: String = (0..length).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            for rest in ["", "]", "]0123456789012345678901234567890"] {
                let input = format!("[\"{text}\"{rest}");
                let parsed = Value::parse_canonical(input.as_bytes(), &mut || {});
                let expected =
                    (!rest.is_empty()).then(|| (Value::Array(Arc::from([Value::String(Str::new(&text))])), length + 4));
                assert_eq!(parsed, expected, "{input}");
            }
        }
    }

    #[test]
    fn keys_precede_each_other_in_byte_order() {
        let keys: [&[u8]; 12] = [
            b"",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgha",
            b"abcdefgi",
            b"b",
            b"service-0000123",
            b"service-0000124",
            b"service-00001240",
            b"\xc3\xa9",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(precedes(a, b), a < b, "{a:?} {b:?}");
            }
        }
    }

    /// `count` keys in order, each with the value `value`, as the inside of an object's text.
    fn keys(count: usize, value: &str) -> String {
        (0..count).map(|i| format!("\"w{i:05}\":{value}")).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn many_recurring_texts_share_their_nodes_and_are_never_taken_for_each_other() {
        // 300 distinct lists, more than the recent slots, each three times, interleaved.
        let lists: Vec<String> = (0..900).map(|i| format!("[\"t\",{}]", (i * 7) % 300)).collect();
        let text = format!("[{}]", lists.join(","));
        let (tree, _) = Value::parse_canonical(text.as_bytes(), &mut || {}).unwrap();
        assert_eq!(tree, parse(&text), "no list was taken for another");
        let Value::Array(items) = &tree else { panic!("an array") };
        for (i, item) in items.iter().enumerate() {
            // Item i has the text of item i % 300, its first occurrence.
            let (Value::Array(first), Value::Array(this)) = (&items[i % 300], item) else { panic!("arrays") };
            assert!(Arc::ptr_eq(first, this), "item {i} shares the node of its first occurrence");
        }
    }

    #[test]
    fn a_long_parse_is_paced() {
        let large = parse(&format!("[{}]", vec!["\"0123456789\""; 100_000].join(","))).to_compact();
        let mut paces = 0;
        assert!(Value::parse_canonical(&large, &mut || paces += 1).is_some());
        assert_eq!(paces, large.len() / PACE_PIECE_BYTES);
    }

    /// Every single-byte change of a canonical text: the canonical parser and the general one
    /// agree on each.
    #[test]
    fn single_byte_changes_are_judged_as_the_general_parser_judges_them() {
        let compact = parse(AWKWARD).to_compact();
        for i in 0..compact.len() {
            for byte in [b' ', b'"', b'\\', b'0', b'9', b'-', b'.', b'e', b'a', b'z', b'}', b']', b',', 0x7f, 0xc3] {
                let mut changed = compact.clone();
                changed[i] = byte;
                agrees(&changed);
            }
        }
    }
}
