//! Differences between two versions of a subtree as an RFC 6902 JSON Patch, for watchers that
//! ask for changes (`?changes`) instead of whole subtrees.
//!
//! Two versions of the store share every node an edit did not copy (`mod.rs`), so the walk skips
//! a shared container by one pointer comparison, and a wide object chunk by chunk (`object.rs`):
//! a change to one key of an object of 100,000 keys walks the list of chunks and one chunk, and
//! the patch holds that one key. The operations are `add`, `remove` and `replace` with paths
//! relative to the subtree (`""` is the subtree itself); applying them in order to the earlier
//! version gives the later one.

use std::io::Write;
use std::sync::Arc;

use super::{Entry, Str, Value, write_str};

impl Value {
    /// The JSON Patch (compact JSON text) that turns `self` into `after`.
    pub fn diff(&self, after: &Value) -> Vec<u8> {
        self.diff_counted(after).0
    }

    /// The patch, and how many operations it holds.
    pub fn diff_with_count(&self, after: &Value) -> (Vec<u8>, usize) {
        let patch = self.walk(after);
        (patch.out, patch.operations)
    }

    /// The patch, and how many object entries and chunks the walk looked at (its cost).
    fn diff_counted(&self, after: &Value) -> (Vec<u8>, usize) {
        let patch = self.walk(after);
        (patch.out, patch.looked_at)
    }

    fn walk(&self, after: &Value) -> Patch {
        let mut patch = Patch { out: b"[".to_vec(), path: String::new(), empty: true, looked_at: 0, operations: 0 };
        patch.value(self, after);
        patch.out.push(b']');
        patch
    }
}

/// The operations written so far, and the JSON Pointer of the node being compared.
struct Patch {
    out: Vec<u8>,
    path: String,
    empty: bool,
    looked_at: usize,
    operations: usize,
}

impl Patch {
    fn value(&mut self, before: &Value, after: &Value) {
        match (before, after) {
            (Value::Array(a), Value::Array(b)) if Arc::ptr_eq(a, b) => {}
            (Value::Array(a), Value::Array(b)) => self.array(a, b, after),
            (a, b) if a.is_object() && b.is_object() => self.object(a, b),
            (a, b) if a == b => {}
            _ => self.operation("replace", Some(after)),
        }
    }

    /// Index by index; an array whose elements mostly moved (an insertion near its start) is
    /// replaced whole, which is shorter than an operation per element.
    fn array(&mut self, before: &[Value], after: &[Value], whole: &Value) {
        let common = before.len().min(after.len());
        let changed = (0..common).filter(|&i| !before[i].same_content(&after[i])).count();
        if changed > 1 && changed * 2 > after.len() {
            self.operation("replace", Some(whole));
            return;
        }
        for i in 0..common {
            if !before[i].same_content(&after[i]) {
                self.below(&i.to_string(), |patch| patch.value(&before[i], &after[i]));
            }
        }
        for (i, item) in after.iter().enumerate().skip(common) {
            self.below(&i.to_string(), |patch| patch.operation("add", Some(item)));
        }
        // From the end, so that each index is still the element meant.
        for i in (common..before.len()).rev() {
            self.below(&i.to_string(), |patch| patch.operation("remove", None));
        }
    }

    /// A merge of the two key orders, skipping chunks both versions share.
    fn object(&mut self, before: &Value, after: &Value) {
        let (a, b) = (before.chunks().unwrap_or_default(), after.chunks().unwrap_or_default());
        let (mut ia, mut ja, mut ib, mut jb) = (0, 0, 0, 0);
        loop {
            self.looked_at += 1;
            // At the start of a chunk on both sides: a shared chunk holds the same entries.
            if ja == 0 && jb == 0 && ia < a.len() && ib < b.len() && Arc::ptr_eq(&a[ia], &b[ib]) {
                ia += 1;
                ib += 1;
                continue;
            }
            // Only a flat object's one chunk may be empty (`{}`): it has no entry either.
            let left: Option<&Entry> = a.get(ia).and_then(|chunk| chunk.get(ja));
            let right: Option<&Entry> = b.get(ib).and_then(|chunk| chunk.get(jb));
            let order = match (left, right) {
                (None, None) => return,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
            };
            match (order, left, right) {
                (std::cmp::Ordering::Less, Some((key, _)), _) => {
                    self.below_key(key, |patch| patch.operation("remove", None));
                    step(a, &mut ia, &mut ja);
                }
                (std::cmp::Ordering::Greater, _, Some((key, value))) => {
                    self.below_key(key, |patch| patch.operation("add", Some(value)));
                    step(b, &mut ib, &mut jb);
                }
                (_, Some((key, va)), Some((_, vb))) => {
                    if !va.same_content(vb) {
                        self.below_key(key, |patch| patch.value(va, vb));
                    }
                    step(a, &mut ia, &mut ja);
                    step(b, &mut ib, &mut jb);
                }
                _ => unreachable!("an ordering comes from the entries present"),
            }
        }
    }

    /// Runs `f` with the path one key deeper.
    fn below_key(&mut self, key: &Str, f: impl FnOnce(&mut Patch)) {
        self.below(key.as_str(), f);
    }

    /// Runs `f` with the path one segment deeper, escaped as JSON Pointer asks (`~0`, `~1`).
    fn below(&mut self, segment: &str, f: impl FnOnce(&mut Patch)) {
        let length = self.path.len();
        self.path.push('/');
        for c in segment.chars() {
            match c {
                '~' => self.path.push_str("~0"),
                '/' => self.path.push_str("~1"),
                c => self.path.push(c),
            }
        }
        f(self);
        self.path.truncate(length);
    }

    /// Writes one operation at the current path.
    fn operation(&mut self, op: &str, value: Option<&Value>) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.operations += 1;
        // Writing into a vector cannot fail.
        let _ = write!(self.out, "{{\"op\":\"{op}\",\"path\":");
        let _ = write_str(&mut self.out, self.path.as_bytes());
        if let Some(value) = value {
            self.out.extend_from_slice(b",\"value\":");
            let _ = value.write_compact(&mut self.out);
        }
        self.out.push(b'}');
    }
}

/// Moves to the next entry of a chunked object's chunks.
fn step(chunks: &[Arc<[Entry]>], chunk: &mut usize, entry: &mut usize) {
    *entry += 1;
    if *entry == chunks[*chunk].len() {
        *chunk += 1;
        *entry = 0;
    }
}

#[cfg(test)]
mod tests {
    use crate::core::value::fixtures::*;
    use crate::core::value::{Value, json_patch};

    /// Applies `before.diff(after)` to `before` and checks it gives `after`; returns the patch.
    fn round_trip(before: &Value, after: &Value) -> String {
        let patch = before.diff(after);
        let operations = Value::parse(&patch).expect("a patch is JSON");
        let applied = json_patch(before, &[], &operations, 1000).expect("the patch applies");
        assert!(
            applied.same_content(after),
            "{} then {} is not {}",
            before.to_compact_text(),
            text(&patch),
            after.to_compact_text()
        );
        text(&patch)
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    impl Value {
        fn to_compact_text(&self) -> String {
            text(&self.to_compact())
        }
    }

    #[test]
    fn a_diff_names_each_change_with_its_path() {
        let before = seed();
        let mut after = seed();
        after.put(&["size"], parse("2048"), 100).unwrap();
        after.put(&["providers", "delta"], parse(r#"["10.0.0.1"]"#), 100).unwrap();
        after.delete(&["file"]).unwrap();
        assert_eq!(
            round_trip(&before, &after),
            r#"[{"op":"remove","path":"/file"},{"op":"add","path":"/providers/delta","value":["10.0.0.1"]},{"op":"replace","path":"/size","value":2048}]"#
        );
        assert_eq!(round_trip(&before, &before), "[]");
    }

    #[test]
    fn a_diff_escapes_keys_and_handles_arrays_and_scalars() {
        let cases = [
            (r#"{"a/b": 1, "c~d": [1, 2, 3]}"#, r#"{"a/b": 2, "c~d": [1, 5]}"#),
            ("[1, 2]", "[1, 2, 3, 4]"),
            ("[1, 2, 3, 4]", "[0, 1, 2, 3, 4]"),
            ("1", "\"x\""),
            ("{}", "[]"),
            ("1", "1.0"),
            (AWKWARD, r#"{"z": [], "a": {"nested": [[1]]}}"#),
        ];
        for (before, after) in cases {
            round_trip(&parse(before), &parse(after));
        }
        let escaped = round_trip(&parse(r#"{"a/b": 1, "c~d": 2}"#), &parse(r#"{"a/b": 2, "c~d": 3}"#));
        assert!(escaped.contains(r#""/a~1b""#) && escaped.contains(r#""/c~0d""#), "{escaped}");
    }

    #[test]
    fn random_edits_of_random_documents_round_trip() {
        // A small deterministic generator (xorshift), so a failure replays.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let keys = ["a", "b", "a/b", "c~d", "", "k1", "k2", "z"];
        let mut changed = 0;
        for _ in 0..300 {
            let wide: Vec<String> = (0..next(700)).map(|i| format!("\"w{i:04}\": {i}")).collect();
            let before =
                parse(&format!(r#"{{"list": [1, [2, 3], {{"x": 4}}], "wide": {{{}}}, "n": null}}"#, wide.join(",")));
            let mut after = before.clone();
            for _ in 0..1 + next(6) {
                let mut path: Vec<String> = Vec::new();
                let mut node = &after;
                while node.is_container() && next(3) > 0 {
                    let segment = match node {
                        Value::Array(items) if !items.is_empty() => next(items.len() as u64).to_string(),
                        Value::Array(_) => break,
                        _ => {
                            let members: Vec<String> = node.entries().map(|(k, _)| k.as_str().to_string()).collect();
                            if members.is_empty() || next(4) == 0 {
                                keys[next(keys.len() as u64) as usize].to_string()
                            } else {
                                members[next(members.len() as u64) as usize].clone()
                            }
                        }
                    };
                    match node.child(&segment) {
                        Some(child) => node = child,
                        None => {
                            path.push(segment);
                            break;
                        }
                    }
                    path.push(segment);
                }
                let value = ["7", "\"s\"", "[1, 2]", "{\"q\": [true]}", "null", "-0.0"][next(6) as usize];
                let _ = if next(4) == 0 { after.delete(&path) } else { after.put(&path, parse(value), 100) };
            }
            if round_trip(&before, &after) != "[]" {
                changed += 1;
            }
            round_trip(&after, &before);
        }
        assert!(changed > 200, "only {changed} of 300 rounds changed something");
    }

    #[test]
    fn a_change_to_one_key_of_a_wide_object_costs_the_change() {
        let entries: Vec<String> = (0..100_000).map(|i| format!("\"k{i:06}\": {i}")).collect();
        let before = parse(&format!("{{{}}}", entries.join(",")));
        let mut after = before.clone();
        after.put(&["k050000"], parse("\"changed\""), 100).unwrap();
        after.put(&["k050000x"], parse("1"), 100).unwrap();
        after.delete(&["k099999"]).unwrap();
        let patch = round_trip(&before, &after);
        assert_eq!(
            patch,
            r#"[{"op":"replace","path":"/k050000","value":"changed"},{"op":"add","path":"/k050000x","value":1},{"op":"remove","path":"/k099999"}]"#
        );
        // Entry by entry, the walk would look at 100,000 entries; chunk by chunk, it skips the
        // 390 chunks both versions share and walks the two changed ones.
        let (_, looked_at) = before.diff_counted(&after);
        assert!(looked_at < 390 + 4 * 256, "the walk looked at {looked_at} entries and chunks");
    }
}
