//! The cache's one promise: the text of a walk is exactly `write_compact`'s, whatever the store
//! and its history; and its memory stays about one store's text.

use std::io::{self, Write};

use super::*;
use crate::core::rng::Rng;
use crate::core::value::{Str, json_patch, merge_patch};
use crate::limits::STORE_DEPTH_MAX;

/// Walks `root` and checks the text against a fresh render; gives the text's length.
fn check(cache: &mut TextCache, root: &Value, what: &str) -> usize {
    let mut text = Vec::new();
    cache.write(root, &mut text).unwrap();
    let fresh = root.to_compact();
    assert!(
        text == fresh,
        "{what}: the cached text differs from a fresh render ({} against {} bytes)",
        text.len(),
        fresh.len()
    );
    assert!(
        cache.text_bytes() <= fresh.len(),
        "{what}: {} bytes kept for a store of {}: each byte is kept at most once",
        cache.text_bytes(),
        fresh.len()
    );
    fresh.len()
}

const AWKWARD_STRINGS: &[&str] = &[
    "",
    "plain",
    "\"quoted\" \\ slash",
    "\n\t\r\u{8}\u{c}",
    "\u{1}\u{1f}\u{7f}",
    "é☃😀",
    "a string long enough to be shared, not inline",
];

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(500)),
        2 => Value::UInt(rng.next_u64() >> rng.below(64)),
        3 => Value::Int(-1 - (rng.next_u64() >> (1 + rng.below(63))) as i64),
        4 => Value::Float([0.1, -0.0, 1e300, 5e-324, 1.5e-7, 9467308077970.215, -2.5][rng.below(7) as usize]),
        5 => Value::Float(f64::from_bits(rng.next_u64() >> 2)),
        _ => {
            let base = AWKWARD_STRINGS[rng.below(AWKWARD_STRINGS.len() as u64) as usize];
            Value::String(Str::new(&format!("{base}{}", "x".repeat(rng.below(40) as usize))))
        }
    }
}

/// A random tree of about `budget` values: empty containers, wide objects (chunked), deep chains.
fn tree(rng: &mut Rng, budget: usize, depth: usize) -> Value {
    if budget <= 1 || depth >= STORE_DEPTH_MAX - 2 || rng.chance(150) {
        return if rng.chance(100) {
            if rng.chance(500) { Value::Array(Vec::new().into()) } else { Value::empty_object() }
        } else {
            scalar(rng)
        };
    }
    if rng.chance(20) {
        // A chain of single-member containers, deep.
        let mut value = tree(rng, budget - 1, depth + 30);
        for i in 0..30 {
            value =
                if i % 2 == 0 { Value::Array(vec![value].into()) } else { Value::object(vec![(Str::new("d"), value)]) };
        }
        return value;
    }
    let widest = if rng.chance(50) { 2_000 } else { 40 };
    let width = 1 + rng.below(widest) as usize;
    let each = (budget - 1) / width;
    if rng.chance(400) {
        Value::Array((0..width).map(|_| tree(rng, each, depth + 1)).collect::<Vec<_>>().into())
    } else {
        let mut keys: Vec<String> = (0..width).map(|i| format!("{}{i}", key_text(rng))).collect();
        keys.sort();
        Value::object(keys.into_iter().map(|k| (Str::new(&k), tree(rng, each, depth + 1))).collect())
    }
}

fn key_text(rng: &mut Rng) -> &'static str {
    ["k", "é", "\"", "\\n", "a long key that does not fit inline"][rng.below(5) as usize]
}

/// The path of a random node of `root` (maybe the root).
fn random_path(rng: &mut Rng, root: &Value) -> Vec<String> {
    let mut path = Vec::new();
    let mut node = root;
    while rng.chance(800) {
        let next = match node {
            Value::Array(items) if !items.is_empty() => {
                let i = rng.below(items.len() as u64) as usize;
                Some((i.to_string(), &items[i]))
            }
            object if object.object_len() > 0 => {
                let i = rng.below(object.object_len() as u64) as usize;
                object.entries().nth(i).map(|(k, v)| (k.to_string(), v))
            }
            _ => None,
        };
        let Some((segment, child)) = next else { break };
        path.push(segment);
        node = child;
    }
    path
}

fn pointer(path: &[String]) -> String {
    path.iter().map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect()
}

/// One random edit through the store's own edit paths: put, delete, JSON Patch (including copies,
/// which share a node in two places) and merge patch.
fn edit(rng: &mut Rng, root: &mut Value) {
    let path = random_path(rng, root);
    match rng.below(6) {
        0 | 1 => {
            let mut at = path.clone();
            if root.resolve(&at).is_some_and(Value::is_container) && rng.chance(600) {
                let length = match root.resolve(&at) {
                    Some(Value::Array(items)) => items.len().to_string(),
                    _ => format!("new{}", rng.below(1000)),
                };
                at.push(length);
            }
            let budget = if rng.chance(100) { 3_000 } else { 5 };
            let _ = root.put(&at, tree(rng, budget, at.len()), STORE_DEPTH_MAX);
        }
        2 if !path.is_empty() => root.delete(&path).unwrap(),
        3 if !path.is_empty() => {
            let to = random_path(rng, root);
            let mut to = to[..to.len().min(path.len().saturating_sub(1))].to_vec();
            if !root.resolve(&to).is_some_and(Value::is_object) {
                return;
            }
            to.push(format!("copy{}", rng.below(100)));
            let op = serde_json::json!([{"op": "copy", "from": pointer(&path), "path": pointer(&to)}]);
            let operations = Value::parse(op.to_string().as_bytes()).unwrap();
            if let Ok(patched) = json_patch(root, &[], &operations, STORE_DEPTH_MAX) {
                *root = patched;
            }
        }
        4 if root.is_object() => {
            let patch = tree(rng, 20, 1);
            if patch.is_object() {
                *root = merge_patch(Some(root), &patch);
            }
        }
        _ => {
            let _ = root.put(&path, scalar(rng), STORE_DEPTH_MAX);
        }
    }
}

#[test]
fn random_stores_edited_over_many_versions_hash_as_a_fresh_render() {
    let mut versions_with_units = 0;
    for seed in 1..=12u64 {
        let mut rng = Rng::new(seed);
        let mut root = tree(&mut rng, if seed % 3 == 0 { 40_000 } else { 4_000 }, 0);
        let mut cache = TextCache::default();
        let mut largest = 0;
        for version in 0..150 {
            let length = check(&mut cache, &root, &format!("seed {seed}, version {version}"));
            largest = largest.max(length);
            versions_with_units += usize::from(cache.units() > 0);
            for _ in 0..1 + rng.below(3) {
                edit(&mut rng, &mut root);
            }
        }
        assert!(cache.text_bytes() <= largest, "seed {seed}: memory stays about one store's text");
    }
    assert!(versions_with_units > 600, "the stores are large enough to keep units: {versions_with_units} of 1800");
}

fn wide(keys: usize, version: u64) -> Value {
    let entries = (0..keys)
        .map(|i| {
            let item = format!(
                r#"{{"host": "10.0.{}.{}", "port": {}, "tags": ["blue", "zone-{}"], "v": {version}}}"#,
                i / 256,
                i % 256,
                8000 + i,
                i % 7
            );
            (Str::new(&format!("service-{i:07}")), Value::parse(item.as_bytes()).unwrap())
        })
        .collect();
    Value::object(entries)
}

/// The shape the commit benchmark uses: a wide object whose chunks are the units; an edit
/// renders one chunk again and keeps the rest.
#[test]
fn a_commit_into_a_wide_object_renders_one_chunk_again() {
    let mut root = Value::object(vec![(Str::new("counter"), Value::UInt(0)), (Str::new("services"), wide(20_000, 0))]);
    let mut cache = TextCache::default();
    let length = check(&mut cache, &root, "first");
    let units = cache.units();
    assert!(units >= 20_000 / 256, "every chunk is a unit: {units}");
    assert!(cache.text_bytes() > length * 9 / 10, "nearly all the text is kept: {} of {length}", cache.text_bytes());
    for n in 1..50u64 {
        root.put(&["counter"], Value::UInt(n), STORE_DEPTH_MAX).unwrap();
        let key = format!("service-{:07}", (n * 7919) % 20_000);
        let _ = root.put(&["services", &key, "port"], Value::UInt(n), STORE_DEPTH_MAX);
        if n % 10 == 0 {
            root.delete(&["services", &format!("service-{:07}", n * 13)]).unwrap();
        }
        check(&mut cache, &root, &format!("commit {n}"));
        assert!(cache.units().abs_diff(units) < 5, "the units are the chunks, one version's worth");
    }
    // A new store: the old one's text goes.
    root = wide(300, 1);
    check(&mut cache, &root, "replaced");
    assert!(cache.text_bytes() <= root.to_compact().len());
}

/// A writer that fails after `left` bytes, as a full disk does.
struct Failing {
    left: usize,
}

impl Write for Failing {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.len() > self.left {
            return Err(io::Error::other("disk full"));
        }
        self.left -= bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_walk_cut_by_a_failing_writer_leaves_the_cache_right() {
    let mut root = wide(5_000, 0);
    let mut cache = TextCache::default();
    check(&mut cache, &root, "first");
    for (n, cut) in [0, 100, 70_000, 300_000].into_iter().enumerate() {
        let key = format!("service-{:07}", n * 1_000);
        root.put(&[key.as_str(), "port"], Value::UInt(n as u64), STORE_DEPTH_MAX).unwrap();
        let length = root.to_compact().len();
        assert!(cache.write(&root, &mut Failing { left: cut }).is_err(), "a cut at {cut} of {length}");
        check(&mut cache, &root, &format!("after a cut at {cut}"));
    }
}

#[test]
fn small_and_scalar_stores_render_alike() {
    let mut cache = TextCache::default();
    for text in [crate::core::value::fixtures::AWKWARD, "{}", "[]", "0", "\"x\"", "[[[]]]", "-1", "1.5e-7"] {
        check(&mut cache, &crate::core::value::fixtures::parse(text), text);
    }
}
