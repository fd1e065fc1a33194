//! Parsing: JSON text straight into the tree through serde, with no intermediate
//! `serde_json::Value`, nesting bounded as it goes.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Entry, Str, Value};
use crate::limits::{SHOWN_KEY_BYTES_MAX, STORE_DEPTH_MAX};

/// Items per block of the scratch stack; small in unit tests, so that they cross many blocks.
const PARSE_BLOCK_ITEMS: usize = if cfg!(test) { 64 } else { crate::limits::PARSE_BLOCK_ITEMS };

impl Value {
    /// Parses JSON text into a tree, at most `STORE_DEPTH_MAX` levels deep. A key twice in one
    /// object is an error naming it: serde_json would keep the last value silently, and a client
    /// that wrote both meant one of them (RFC 8259 leaves duplicates' meaning open).
    pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = ValueSeed.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }
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
    values: Stack<Value>,
    entries: Stack<Entry>,
}

/// A stack in fixed-size blocks. A vector stays whole while a closing container is moved out of
/// it into the container's own allocation, so a large array was held twice: a 65 MB array of
/// 8.3 million numbers peaked at 456 MB of memory. Blocks are allocated as the stack grows and
/// freed as a closing container's elements are moved out, so parsing holds the finished
/// containers, the body, and about one block more.
struct Stack<T> {
    blocks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Stack<T> {
    fn default() -> Stack<T> {
        Stack { blocks: Vec::new(), len: 0 }
    }
}

impl<T> Stack<T> {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, item: T) {
        if self.len == self.blocks.len() * PARSE_BLOCK_ITEMS {
            // The first block grows as a vector grows, so a small document allocates little;
            // the others are whole blocks, mapped on their own and touched only as filled.
            let block = if self.blocks.is_empty() { Vec::new() } else { Vec::with_capacity(PARSE_BLOCK_ITEMS) };
            self.blocks.push(block);
        }
        self.blocks[self.len / PARSE_BLOCK_ITEMS].push(item);
        self.len += 1;
    }

    fn last(&self) -> Option<&T> {
        self.len.checked_sub(1).map(|i| &self.blocks[i / PARSE_BLOCK_ITEMS][i % PARSE_BLOCK_ITEMS])
    }

    /// Moves the items from `start` on into one exactly sized allocation, in order.
    fn take_from<C: FromIterator<T>>(&mut self, start: usize, hole: fn() -> T) -> C {
        let count = self.len - start;
        self.drain_from(start, hole).take(count)
    }

    /// Hands out the items from `start` on, in order, in pieces (`Drain::take`); they leave the
    /// stack when the drain ends.
    fn drain_from(&mut self, start: usize, hole: fn() -> T) -> Drain<'_, T> {
        let first = start / PARSE_BLOCK_ITEMS;
        Drain { stack: self, start, first, block: first, at: start % PARSE_BLOCK_ITEMS, hole }
    }
}

/// The items of a stack from `start` on, being moved out: each block is freed once emptied, so
/// the stack shrinks as the container it held grows.
struct Drain<'s, T> {
    stack: &'s mut Stack<T>,
    start: usize,
    first: usize,
    block: usize,
    at: usize,
    /// What is left in a slot moved out of (in the block kept, until truncated).
    hole: fn() -> T,
}

impl<T> Drain<'_, T> {
    /// The next `count` items in one allocation. `repeat_with(..).take(n)` has an exact length,
    /// so an `Arc<[T]>` collects it into one allocation of that size, with no vector between.
    fn take<C: FromIterator<T>>(&mut self, count: usize) -> C {
        std::iter::repeat_with(|| {
            let item = std::mem::replace(&mut self.stack.blocks[self.block][self.at], (self.hole)());
            self.at += 1;
            if self.at == PARSE_BLOCK_ITEMS {
                // Freed unless part of it (before `start`) is kept.
                if self.block > self.first || self.start.is_multiple_of(PARSE_BLOCK_ITEMS) {
                    self.stack.blocks[self.block] = Vec::new();
                }
                (self.block, self.at) = (self.block + 1, 0);
            }
            item
        })
        .take(count)
        .collect()
    }
}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        let stack = &mut *self.stack;
        stack.blocks.truncate(self.first + 1);
        if let Some(kept) = stack.blocks.get_mut(self.first) {
            kept.truncate(self.start % PARSE_BLOCK_ITEMS);
            if kept.is_empty() {
                stack.blocks.truncate(self.first);
            }
        }
        stack.len = self.start;
    }
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
        let items: Arc<[Value]> = self.scratch.borrow_mut().values.take_from(start, || Value::Null);
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let child = self.below::<A::Error>()?;
        let start = self.scratch.borrow().entries.len();
        let mut sorted = true;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(Depth { depth: child, scratch: self.scratch })?;
            let mut scratch = self.scratch.borrow_mut();
            let after_previous =
                scratch.entries.len() == start || scratch.entries.last().is_some_and(|(k, _)| *k < key);
            sorted &= after_previous;
            scratch.entries.push((key, value));
        }
        let mut scratch = self.scratch.borrow_mut();
        let count = scratch.entries.len() - start;
        let mut drain = scratch.entries.drain_from(start, hole_entry);
        if sorted {
            return Ok(Value::object_by_chunks(count, |n| drain.take(n)));
        }
        // Sorted by key; equal keys end up side by side (in sorted input, a key equal to the one
        // before it made `sorted` false, so it is found here too).
        let mut entries: Vec<Entry> = drain.take(count);
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(de::Error::custom(duplicate_key(pair[0].0.as_str())));
        }
        Ok(Value::object(entries))
    }
}

/// The error of a key found twice in one object, naming it (JSON-escaped, cut to
/// `SHOWN_KEY_BYTES_MAX`).
fn duplicate_key(key: &str) -> String {
    let mut shown = serde_json::to_string(key).unwrap_or_default();
    if shown.len() > SHOWN_KEY_BYTES_MAX {
        let cut = (0..=SHOWN_KEY_BYTES_MAX).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    format!("duplicate key {shown} in one object: send each key once")
}

/// What is left where an entry was moved out of the scratch stack (allocates nothing).
fn hole_entry() -> Entry {
    (Str::Inline { len: 0, bytes: [0; super::INLINE_BYTES_MAX] }, Value::Null)
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
    use crate::core::value::fixtures::*;

    #[test]
    fn a_key_twice_in_one_object_is_an_error_naming_it() {
        for text in [r#"{"b": 1, "a": 2, "b": 3}"#, r#"{"a": 1, "b": 2, "b": 3}"#, r#"[{"x": {"b\n": 1, "b\n": 1}}]"#] {
            let error = Value::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(error.starts_with("duplicate key \"b"), "{text}: {error}");
        }
        assert_eq!(parse(r#"{"a": {"b": 1}, "b": {"b": 2}}"#).to_compact(), br#"{"a":{"b":1},"b":{"b":2}}"#);
        let long = format!(r#"{{"{0}": 1, "{0}": 2}}"#, "k".repeat(1000));
        let error = Value::parse(long.as_bytes()).unwrap_err().to_string();
        assert!(error.len() < SHOWN_KEY_BYTES_MAX + 100 && error.contains("kkk... in one object"), "{error}");
    }

    #[test]
    fn nesting_is_bounded_while_parsing() {
        let ok = format!("{}{}", "[".repeat(STORE_DEPTH_MAX), "]".repeat(STORE_DEPTH_MAX));
        assert_eq!(parse(&ok).depth(), STORE_DEPTH_MAX);
        let deep = format!("{}{}", "[".repeat(STORE_DEPTH_MAX + 1), "]".repeat(STORE_DEPTH_MAX + 1));
        assert!(Value::parse(deep.as_bytes()).unwrap_err().to_string().contains("deeper"));
    }

    #[test]
    fn containers_across_the_scratch_blocks_parse_as_serde_json_does() {
        let long: Vec<String> = (0..PARSE_BLOCK_ITEMS + 7).map(|i| i.to_string()).collect();
        let wide: Vec<String> = (0..PARSE_BLOCK_ITEMS + 300).map(|i| format!("\"k{i:07}\": [{i}, {{}}]")).collect();
        let unsorted: Vec<String> = (0..2000).map(|i| format!("\"u{}\": {i}", (i * 7919) % 2000)).collect();
        let small: Vec<String> = (0..PARSE_BLOCK_ITEMS + 10).map(|i| format!("[{i}]")).collect();
        let text = format!(
            "[[{}], {{{}}}, {{{}}}, [{}], {{\"b\": [1, [2, [3]]], \"a\": {{}}}}]",
            long.join(","),
            wide.join(","),
            unsorted.join(","),
            small.join(",")
        );
        let expected = serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(&text).unwrap()).unwrap();
        assert!(parse(&text).to_compact() == expected, "the tree renders as serde_json's value does");
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(Value::parse(b"{} x").is_err());
        assert!(Value::parse(b"").is_err());
    }
}
