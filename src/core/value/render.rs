//! Rendering: exactly the bytes serde_json writes for the same document, compact (which the
//! checksum is the SHA-1 of) or pretty with two spaces (what clients read).

use std::io::{self, Write};

use super::Value;

impl Value {
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
            Value::Object(_) | Value::Chunked(_) => {
                out.write_all(b"{")?;
                for (i, (key, value)) in self.entries().enumerate() {
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

    pub(super) fn write_scalar<W: Write>(&self, out: &mut W) -> io::Result<()> {
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
            Value::Array(_) | Value::Object(_) | Value::Chunked(_) => unreachable!("containers are not scalars"),
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
            Value::Object(_) | Value::Chunked(_) if self.object_len() > 0 => {
                out.write_all(b"{")?;
                for (i, (key, value)) in self.entries().enumerate() {
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
            Value::Object(_) | Value::Chunked(_) => out.write_all(b"{}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::fixtures::*;

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
}
