//! Loading a snapshot file this server wrote (`core::snapshot`), in one pass over its data: the
//! data parsed as canonical JSON where it stands in the file, the frame around it (a few hundred
//! bytes) parsed and its layout checked, then the file checksum and the data's checksum computed
//! together (`Sha1::digest_pair`: a start-up hashes the store's text twice, and the two passes
//! interleaved cost little more than one). Nothing is taken from a file before both match.

use std::sync::Arc;

use serde::de::IgnoredAny;

use crate::core::sealed::DecodeError;
use crate::core::sealed::Sealed;
use crate::core::snapshot::{Parts, Snapshot, compare_file_sha1, file_sha1_parts, parse_fields, written_body};
use crate::core::value::Value;
use crate::core::version::Checksum;
use crate::sha1::Sha1;

/// A file this server wrote, read in one pass: its data parsed as canonical JSON where it stands,
/// and the rest (the frame: the file with `null` for the data, a few hundred bytes) parsed and
/// checked as `written_body` checks any file; then its file checksum and its data's checksum,
/// computed together. An error when the file checksum does not match (as `check_file_sha1` says
/// it); `None` when anything else departs from that, for `decode_keeping` to check the file
/// checksum and parse the file in general (and say what is wrong with it, if anything).
pub(super) fn decode(bytes: &[u8], keep_body: bool) -> Result<Option<Snapshot>, DecodeError> {
    let Some((covered, declared)) = file_sha1_parts(bytes) else { return Ok(None) };
    let Some(written) = parse_written(bytes) else { return Ok(None) };
    let data = &bytes[written.data.clone()];
    // Both checksums before anything is taken from the file: the file's, over every byte before
    // it (the data too), and the data's, over the data alone, which the version names.
    let (file, data_checksum) = Sha1::digest_pair(covered, data);
    compare_file_sha1(declared, Checksum(file))?;
    let WrittenFile { mut parts, root, data: data_range, frame_body } = written;
    if Checksum(data_checksum) != parts.copy.version.checksum {
        return Ok(None);
    }
    parts.copy.root = root;
    let keep_body = keep_body || !parts.cluster.is_empty();
    let data_len = data_range.len();
    let body_end = frame_body.end - b"null".len() + data_len;
    let body = if keep_body { Arc::from(&bytes[frame_body.start..body_end]) } else { Arc::from(Vec::new()) };
    let sealed = Sealed { copy: parts.copy, body, data_len, change: None };
    Ok(Some(Snapshot { sealed, cluster: parts.cluster, mine: parts.mine, committed: parts.committed }))
}

/// A file laid out as this server writes it, parsed, not yet checked against its checksums.
struct WrittenFile {
    parts: Parts,
    root: Value,
    /// Where the data stands in the file.
    data: std::ops::Range<usize>,
    /// Where the copy body stands in the frame (the file with `null` for the data).
    frame_body: std::ops::Range<usize>,
}

/// Parses a file laid out as this server writes it: the data as canonical JSON where it stands,
/// the frame in general, its layout checked by `written_body`.
fn parse_written(bytes: &[u8]) -> Option<WrittenFile> {
    const CLUSTER: &[u8] = b"{\"cluster\":";
    const DATA: &[u8] = b",\"copy\":{\"data\":";
    let cluster = bytes.strip_prefix(CLUSTER)?;
    let mut peers = serde_json::Deserializer::from_slice(cluster).into_iter::<IgnoredAny>();
    peers.next()?.ok()?;
    let data_start = CLUSTER.len() + peers.byte_offset() + DATA.len();
    if !bytes.get(..data_start)?.ends_with(DATA) {
        return None;
    }
    let (root, data_len) = Value::parse_canonical(&bytes[data_start..], &mut || {})?;
    let frame = [&bytes[..data_start], b"null", &bytes[data_start + data_len..]].concat();
    let parts = Parts::of(parse_fields(&frame).ok()?).ok()?;
    let (frame_body, _) = written_body(&frame, &parts, |data| data == b"null")?;
    Some(WrittenFile { parts, root, data: data_start..data_start + data_len, frame_body })
}

#[cfg(test)]
mod tests {
    use crate::core::sealed::{DecodeError, seal};
    use crate::core::snapshot::{NodeJson, decode, encode};
    use crate::core::value::Value;
    use crate::core::version::Checksum;

    /// A file of a store of many blocks (the two checksums run side by side over most of it).
    fn written() -> (Vec<u8>, Value) {
        let services: Vec<String> =
            (0..300).map(|i| format!(r#""s{i:03}": {{"port": {}, "on": true}}"#, 8000 + i)).collect();
        let root = Value::parse(format!("{{{}}}", services.join(",")).as_bytes()).unwrap();
        let mut bytes = Vec::new();
        encode(&mut bytes, &NodeJson::default(), &seal(root.clone(), 5, None).body, &mut || {}).unwrap();
        (bytes, root)
    }

    /// `bytes` with its file checksum computed again over what it now holds.
    fn signed_again(mut bytes: Vec<u8>) -> Vec<u8> {
        let covered = bytes.len() - r#","file-sha1":"0123456789012345678901234567890123456789"}"#.len();
        let file = Checksum::of_bytes(&bytes[..covered]).to_string();
        bytes.splice(covered + r#","file-sha1":""#.len()..bytes.len() - 2, file.into_bytes());
        bytes
    }

    #[test]
    fn a_written_file_loads_with_both_checksums_checked_in_one_pass() {
        let (bytes, root) = written();
        let snapshot = decode(&bytes).expect("it loads");
        assert_eq!(snapshot.sealed.copy.root, root);
        assert_eq!(snapshot.sealed.copy.version.checksum, Checksum::of(&root));
        assert_eq!(decode(&signed_again(bytes)).map(|s| s.sealed.copy.root), Ok(root), "signing again changes nothing");
    }

    #[test]
    fn data_changed_into_other_canonical_data_is_refused_by_the_file_checksum() {
        let (mut bytes, _) = written();
        // A port's digit: the data is still canonical JSON, so the one-pass parse takes it.
        let at = bytes.windows(4).position(|w| w == b"8150").unwrap();
        bytes[at + 3] = b'7';
        assert!(matches!(decode(&bytes), Err(DecodeError::FileChecksumMismatch { .. })), "{:?}", decode(&bytes).err());
    }

    #[test]
    fn data_changed_and_signed_again_is_refused_by_the_data_checksum() {
        let (mut bytes, _) = written();
        let at = bytes.windows(4).position(|w| w == b"8150").unwrap();
        bytes[at + 3] = b'7';
        let bytes = signed_again(bytes);
        assert!(matches!(decode(&bytes), Err(DecodeError::ChecksumMismatch { .. })), "{:?}", decode(&bytes).err());
    }

    #[test]
    fn a_changed_file_checksum_or_version_checksum_is_refused() {
        let (bytes, _) = written();
        let file_sha1 = bytes.len() - 3;
        let version = bytes.windows(12).rposition(|w| w == br#""checksum":""#).unwrap() + 12;
        for at in [file_sha1, version] {
            for byte in [b'0', b'f', b'F'] {
                let mut damaged = bytes.clone();
                if damaged[at] == byte {
                    continue;
                }
                damaged[at] = byte;
                assert!(decode(&damaged).is_err(), "byte {at} set to {}", char::from(byte));
            }
        }
    }
}
