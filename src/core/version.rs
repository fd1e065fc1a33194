//! Versions of the store: a sequence number and the SHA-1 of the store's compact JSON.
//!
//! A version is newer when its sequence is higher; with equal sequences the greater checksum wins
//! (compared as hex strings, which orders the same as the raw digest bytes); equal both means
//! equal stores. Deriving `Ord` on (sequence, checksum) gives exactly that order.

use std::fmt;
use std::io::{self, BufWriter, Write};

use crate::limits::HASH_BUFFER_BYTES;

use crate::core::value::Value;
use crate::sha1::Sha1;

/// A SHA-1 digest, shown as 40 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checksum(pub [u8; 20]);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Version {
    pub sequence: u64,
    pub checksum: Checksum,
}

impl Checksum {
    /// The checksum of a document: SHA-1 of its compact JSON, streamed, never held whole.
    pub fn of(value: &Value) -> Checksum {
        let mut hasher = HashWriter::default();
        {
            let mut buffered = BufWriter::with_capacity(HASH_BUFFER_BYTES, &mut hasher);
            value.write_compact(&mut buffered).expect("hashing cannot fail");
            buffered.flush().expect("hashing cannot fail");
        }
        hasher.finish()
    }

    /// The checksum of bytes that are already compact JSON.
    pub fn of_bytes(bytes: &[u8]) -> Checksum {
        Checksum(Sha1::digest(bytes))
    }

    /// Parses 40 hex digits (either case).
    pub fn parse_hex(text: &str) -> Option<Checksum> {
        let bytes = text.as_bytes();
        if bytes.len() != 40 {
            return None;
        }
        let mut digest = [0u8; 20];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            digest[i] = u8::try_from(high * 16 + low).ok()?;
        }
        Some(Checksum(digest))
    }
}

impl fmt::Display for Checksum {
    /// 40 lower-case hex digits, written at once (snapshots write hundreds of checksums, and
    /// formatting each byte on its own showed in profiles of the commit path).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 40];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Version {
    /// The version of a new store: `{}` at sequence 0.
    pub fn initial() -> Version {
        Version { sequence: 0, checksum: Checksum::of(&Value::empty_object()) }
    }

    /// `{"checksum": "...", "sequence": N}` in compact form, keys sorted.
    pub fn to_compact(&self) -> String {
        format!(r#"{{"checksum":"{}","sequence":{}}}"#, self.checksum, self.sequence)
    }

    /// `{"checksum": "...", "sequence": N}` as a JSON value, for answers built with serde_json.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"sequence": self.sequence, "checksum": self.checksum.to_string()})
    }

    /// The same, pretty-printed with a final newline, as the HTTP answers give it.
    pub fn to_pretty_line(&self) -> String {
        format!("{{\n  \"checksum\": \"{}\",\n  \"sequence\": {}\n}}\n", self.checksum, self.sequence)
    }

    /// The version as the `X-Lighthouse-Version` header gives it: `SEQUENCE-CHECKSUM`.
    pub fn to_header(&self) -> String {
        format!("{}-{}", self.sequence, self.checksum)
    }

    /// Reads what `to_header` writes (`SEQUENCE-CHECKSUM`, as `X-Lighthouse-Version` and the
    /// event ids of streams give it); anything else is `None`.
    pub fn from_header(text: &str) -> Option<Version> {
        let (sequence, checksum) = text.trim().split_once('-')?;
        let digits = !sequence.is_empty() && sequence.bytes().all(|b| b.is_ascii_digit());
        Some(Version { sequence: sequence.parse().ok().filter(|_| digits)?, checksum: Checksum::parse_hex(checksum)? })
    }

    /// Reads `{"sequence": N, "checksum": "..."}`; anything else is `None`.
    /// Decoded in `messages.rs`, with every other peer message.
    pub fn from_json(value: &serde_json::Value) -> Option<Version> {
        crate::core::messages::version(value)
    }
}

/// An `io::Write` that feeds SHA-1.
#[derive(Default)]
pub struct HashWriter(Sha1);

impl HashWriter {
    pub fn finish(&self) -> Checksum {
        Checksum(self.0.finish())
    }
}

impl Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_the_empty_store_is_the_sha1_of_braces() {
        assert_eq!(Version::initial().checksum.to_string(), "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f");
        assert_eq!(Version::initial().sequence, 0);
    }

    #[test]
    fn checksum_is_of_compact_json_with_sorted_keys() {
        let value = Value::parse(br#"{ "b" : [1, 2], "a" : "x" }"#).unwrap();
        assert_eq!(Checksum::of(&value), Checksum::of_bytes(br#"{"a":"x","b":[1,2]}"#));
    }

    #[test]
    fn newer_means_higher_sequence_then_greater_checksum() {
        let low = Checksum::parse_hex(&"0".repeat(40)).unwrap();
        let high = Checksum::parse_hex(&"f".repeat(40)).unwrap();
        let v = |sequence, checksum| Version { sequence, checksum };
        assert!(v(2, low) > v(1, high));
        assert!(v(1, high) > v(1, low));
        assert_eq!(v(1, low), v(1, low));
        assert!(high.to_string() > low.to_string(), "order agrees with the hex strings");
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let text = "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f";
        assert_eq!(Checksum::parse_hex(text).unwrap().to_string(), text);
        assert_eq!(Checksum::parse_hex(&text.to_uppercase()).unwrap().to_string(), text);
        assert!(Checksum::parse_hex(&text[1..]).is_none());
        assert!(Checksum::parse_hex(&format!("{}g", &text[1..])).is_none());
        assert!(Checksum::parse_hex(&format!("{}é", &text[2..])).is_none());
    }

    #[test]
    fn version_json_round_trips() {
        let version = Version { sequence: 7, checksum: Version::initial().checksum };
        let compact: serde_json::Value = serde_json::from_str(&version.to_compact()).unwrap();
        let pretty: serde_json::Value = serde_json::from_str(&version.to_pretty_line()).unwrap();
        assert_eq!(Version::from_json(&compact), Some(version));
        assert_eq!(compact, pretty);
        assert_eq!(version.to_pretty_line(), serde_json::to_string_pretty(&pretty).unwrap() + "\n");
    }
}
