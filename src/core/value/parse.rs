//! Parsing: JSON text straight into the tree through serde, with no intermediate
//! `serde_json::Value`, nesting bounded as it goes.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Entry, Str, Value};
use crate::limits::STORE_DEPTH_MAX;

impl Value {
    /// Parses JSON text into a tree, at most `STORE_DEPTH_MAX` levels deep. Duplicate keys keep
    /// the last value, as serde_json does.
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
        Ok(Value::object_from_drain(scratch.entries.drain(start..)))
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
    use crate::core::value::fixtures::*;

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
    fn trailing_garbage_is_an_error() {
        assert!(Value::parse(b"{} x").is_err());
        assert!(Value::parse(b"").is_err());
    }
}
