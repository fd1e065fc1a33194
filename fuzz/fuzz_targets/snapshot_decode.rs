//! Snapshot files: `snapshot::decode` on arbitrary bytes, then a node started from what it gives.
//!
//! Each input is decoded as it is, and re-signed: with its file checksum (`,"file-sha1":"..."}`,
//! replacing one already at its end) computed for its bytes, so the fuzzer also reaches the path
//! that takes a file whose checksum matches as the server wrote it, which it could not reach by
//! mutation alone (a mutated byte breaks the SHA-1). An input that holds the placeholder `@SHA1@`
//! (or `@ID@`) is also decoded with it replaced by the SHA-1 of the text between the first
//! `"data":` and the next `,"lineage":` (or that SHA-1's first 16 hex digits, a lineage id), then
//! re-signed, so the data can change and still match its version.
//!
//! Checked: nothing panics; `decode` and `decode_keeping(.., false)` (what start-up calls) agree;
//! an accepted snapshot's data hashes to its version's checksum; its copy body parses with
//! `parse_copy` to the same version, tree and lineage; its `data_len` is the length of the tree's
//! compact JSON at the start of the body; and a node started from it answers `GET /copy` with a
//! body that parses to the same version, and `GET /`, `/state`, `/version`, `/data`, `/metrics`
//! and `/ready` without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lighthouse::core::clock::Now;
use lighthouse::core::jobs::{self, Job, NoDisk};
use lighthouse::core::{CoreConfig, Effect, Node, Reply, Request, Start};
use lighthouse::http::{Method, Response};
use lighthouse::core::sealed::parse_copy;
use lighthouse::core::snapshot::{Snapshot, decode, decode_keeping};
use lighthouse::core::version::Checksum;

const NOW: Now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };

const FILE_SHA1_OPEN: &[u8] = b",\"file-sha1\":\"";
const FILE_SHA1_BYTES: usize = FILE_SHA1_OPEN.len() + 40 + 2;

fuzz_target!(|data: &[u8]| {
    decode_and_check(data);
    decode_and_check(&resign(data));
    if let Some(filled) = fill_placeholders(data) {
        decode_and_check(&resign(&filled));
    }
});

fn decode_and_check(bytes: &[u8]) {
    let full = decode(bytes);
    let lean = decode_keeping(bytes, false);
    match (full, lean) {
        (Ok(full), Ok(lean)) => {
            let (a, b) = (&full.sealed, &lean.sealed);
            assert_eq!(a.copy.version, b.copy.version, "decode and decode_keeping disagree on the version");
            assert_eq!(a.copy.root, b.copy.root, "decode and decode_keeping disagree on the tree");
            assert_eq!(a.copy.lineage, b.copy.lineage, "decode and decode_keeping disagree on the lineage");
            assert_eq!(a.data_len, b.data_len, "decode and decode_keeping disagree on data_len");
            assert!(b.body.is_empty() || b.body == a.body, "decode_keeping kept another body");
            check(&full);
            boot(lean);
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "decode and decode_keeping refuse for different reasons"),
        (full, lean) => panic!("decode gives {:?}, decode_keeping {:?}", full.map(|_| ()), lean.map(|_| ())),
    }
}

/// Replaces `@SHA1@` by the SHA-1 of the data text and `@ID@` by its first 16 hex digits.
fn fill_placeholders(data: &[u8]) -> Option<Vec<u8>> {
    const SHA1: &[u8] = b"@SHA1@";
    const ID: &[u8] = b"@ID@";
    if find(data, SHA1).is_none() && find(data, ID).is_none() {
        return None;
    }
    let start = find(data, b"\"data\":")? + b"\"data\":".len();
    let end = start + find(&data[start..], b",\"lineage\":")?;
    let sum = sha1_smol::Sha1::from(&data[start..end]).digest().to_string();
    Some(replace(&replace(data, SHA1, sum.as_bytes()), ID, &sum.as_bytes()[..16]))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(i) = find(rest, from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

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

/// Checks an accepted snapshot.
fn check(snapshot: &Snapshot) {
    let copy = &snapshot.sealed.copy;
    let body = &snapshot.sealed.body;
    let compact = copy.root.to_compact();
    assert_eq!(Checksum::of(&copy.root), copy.version.checksum, "an accepted snapshot's data does not match");
    let reparsed = parse_copy(body).expect("the copy body of an accepted snapshot parses");
    assert_eq!(reparsed.copy.version, copy.version, "the body's version");
    assert_eq!(reparsed.copy.root, copy.root, "the body's tree");
    assert_eq!(reparsed.copy.lineage, copy.lineage, "the body's lineage");
    assert_eq!(snapshot.sealed.data_len, compact.len(), "data_len");
    assert!(body.starts_with(b"{\"data\":") && body[8..].starts_with(&compact), "the body starts with the data");
}

/// Runs the render job `GET /copy` asked for, as the decoder thread would, and gives the answer.
fn rendered_copy(node: &mut Node) -> Response {
    let jobs: Vec<Job> = node
        .drain_effects()
        .filter_map(|effect| match effect {
            Effect::Job(job @ Job::Render { .. }) => Some(job),
            _ => None,
        })
        .collect();
    assert_eq!(jobs.len(), 1, "GET /copy asks for one render");
    for job in jobs {
        node.job_done(NOW, jobs::run(job, &mut NoDisk, &mut || {}));
    }
    node.drain_effects()
        .find_map(|effect| match effect {
            Effect::Answer { ticket: 1, response } => Some(response),
            _ => None,
        })
        .expect("GET /copy is answered once rendered")
}

/// Starts a node from a snapshot, as start-up does, and reads from it: `GET /copy` must serve a
/// copy a peer accepts.
fn boot(snapshot: Snapshot) {
    let version = snapshot.sealed.copy.version;
    let committed = snapshot.committed;
    let start =
        Start { sealed: snapshot.sealed, cluster: snapshot.cluster, mine: snapshot.mine, committed, ..Start::empty() };
    let mut node = Node::new(CoreConfig::single("127.0.0.1:1"), NOW, start);
    assert_eq!(node.version(), version);
    for target in ["/copy", "/", "/state", "/version", "/data", "/metrics", "/ready"] {
        let request = Request { method: Method::Get, target, headers: Default::default(), body: b"" , client: None, grant: None};
        let response = match node.handle(NOW, 1, &request) {
            Reply::Now(response) => response,
            // A node without peers sets its copy body aside; the decoder thread renders it.
            Reply::Later if target == "/copy" => rendered_copy(&mut node),
            _ => panic!("GET {target} was not answered at once"),
        };
        if target == "/copy" {
            assert_eq!(response.status, 200);
            let served = parse_copy(response.body.as_slice()).expect("GET /copy serves a copy that parses");
            assert_eq!(served.copy.version, version, "GET /copy serves another version");
        }
    }
    node.tick(NOW);
    node.drain_effects().for_each(drop);
}
