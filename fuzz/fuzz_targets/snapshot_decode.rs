//! Snapshot files: `snapshot::decode` on arbitrary bytes, then a node started from what it gives.
//!
//! Each input is decoded twice: as it is, and re-signed, that is with its file checksum
//! (`,"file-sha1":"..."}`, replacing one already at its end) computed for its bytes, so the fuzzer
//! also reaches the path that trusts a file whose checksum matches, which it could not reach by
//! mutation alone (a mutated byte breaks the SHA-1).
//!
//! Checked: nothing panics; an accepted snapshot's data hashes to its version's checksum; its
//! copy body parses with `parse_copy` to the same version, tree and lineage; its `data_len` is the
//! length of the tree's compact JSON at the start of the body; and a node started from it answers
//! `GET /copy` with a body that parses to the same version, and `GET /`, `/state`, `/version`,
//! `/data` and `/metrics` without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lighthouse::clock::Now;
use lighthouse::core::{CoreConfig, Node, Reply, Request, Start};
use lighthouse::http::Method;
use lighthouse::snapshot::{Snapshot, decode, parse_copy};
use lighthouse::version::Checksum;

const NOW: Now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };

const FILE_SHA1_OPEN: &[u8] = b",\"file-sha1\":\"";
const FILE_SHA1_BYTES: usize = FILE_SHA1_OPEN.len() + 40 + 2;

/// Whether to skip the findings already reported (`FUZZ_SKIP_KNOWN=1`), so fuzzing goes past them.
fn skip_known() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = decode(data) {
        check(snapshot, true);
    }
    let signed = resign(data);
    if let Ok(snapshot) = decode(&signed) {
        // Finding F3 (fuzz/README.md): a file whose file checksum matches is taken as it stands,
        // its data unchecked and its copy body cut out of it by byte markers.
        check(snapshot, !skip_known());
    }
});

/// The bytes with a matching file checksum at their end.
fn resign(data: &[u8]) -> Vec<u8> {
    let covered = match data.len().checked_sub(FILE_SHA1_BYTES) {
        Some(start) if data[start..].starts_with(FILE_SHA1_OPEN) => &data[..start],
        _ => data,
    };
    let mut signed = covered.to_vec();
    signed.extend_from_slice(FILE_SHA1_OPEN);
    signed.extend_from_slice(sha1_smol::Sha1::from(covered).digest().to_string().as_bytes());
    signed.extend_from_slice(b"\"}");
    signed
}

fn check(snapshot: Snapshot, strict: bool) {
    let copy = &snapshot.sealed.copy;
    if strict {
        assert_eq!(Checksum::of(&copy.root), copy.version.checksum, "an accepted snapshot's data does not match");
        let reparsed = parse_copy(&snapshot.sealed.body).expect("the copy body of an accepted snapshot parses");
        assert_eq!(reparsed.copy.version, copy.version, "the body's version");
        assert_eq!(reparsed.copy.root, copy.root, "the body's tree");
        assert_eq!(reparsed.copy.lineage, copy.lineage, "the body's lineage");
        let compact = copy.root.to_compact();
        let body = &snapshot.sealed.body;
        assert_eq!(snapshot.sealed.data_len, compact.len(), "data_len");
        assert!(body.starts_with(b"{\"data\":") && body[8..].starts_with(&compact), "the body starts with the data");
    }
    let version = copy.version;
    let start = Start { sealed: snapshot.sealed, cluster: snapshot.cluster, mine: snapshot.mine };
    let mut node = Node::new(CoreConfig::single("127.0.0.1:1"), NOW, start);
    assert_eq!(node.version(), version);
    for target in ["/copy", "/", "/state", "/version", "/data", "/metrics", "/ready"] {
        let request = Request { method: Method::Get, target, headers: Default::default(), body: b"" };
        let Reply::Now(response) = node.handle(NOW, 1, &request) else { panic!("GET {target} was not answered at once") };
        if target == "/copy" && strict {
            assert_eq!(response.status, 200);
            let served = parse_copy(response.body.as_slice()).expect("GET /copy serves a copy that parses");
            assert_eq!(served.copy.version, version, "GET /copy serves another version");
        }
    }
    node.tick(NOW);
    node.drain_effects().for_each(drop);
}
