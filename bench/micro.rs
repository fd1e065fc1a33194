//! Criterion micro-benchmarks of Lighthouse's hot paths, so that a regression shows up in seconds
//! without starting servers and wrk as `bench/run` does. They measure, in-process and single
//! threaded: parsing a request head (a wrk GET, a curl PUT), decoding a 16 KiB chunked body,
//! resolving a 4-segment path in a store of a few thousand keys, rendering JSON (pretty and
//! compact, a small subtree and a 1 MiB store) and hashing it, reading a store back (parsing,
//! SHA-1), a whole GET answered by the pure
//! core from its render cache, encoding that answer's head, and a commit's checksum on a 10 MiB
//! store (rendered, or from the text kept of unchanged subtrees, against SHA-1 alone). Run them with
//!
//! ```sh
//! cargo bench --bench micro                     # all of them
//! cargo bench --bench micro -- render           # only the benchmarks whose name matches
//! ```
//!
//! Criterion keeps the last run in `target/criterion` and reports the change against it.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lighthouse::core::chain::{checksum_and_len, checksum_and_len_cached};
use lighthouse::core::clock::{Now, http_date};
use lighthouse::core::value::{TextCache, Value};
use lighthouse::core::version::Checksum;
use lighthouse::core::{CoreConfig, Node, Reply, Request, Start};
use lighthouse::core::{path, sealed};
use lighthouse::http::{self, ChunkedDecoder, Headers, Method, Response};
use lighthouse::sha1::Sha1;

/// The server's default `--max-body`.
const MAX_BODY: u64 = 64 << 20;

/// Services in the store that path resolution searches: 2,000 keys at the level searched and
/// about 6,000 in all.
const FEW_THOUSAND_KEYS: usize = 2_000;

/// Services that make the compact JSON of the store about 1 MiB (1,036,770 bytes; checked in
/// `render`). Its pretty JSON is 1.8 MiB.
const ONE_MIB: usize = 16_500;

/// A 4-segment path into `store(_)`.
const PATH: &str = "/services/svc-01234/hosts/1";

/// A subtree of `store(_)` whose compact JSON is 47 bytes (69 pretty).
const SUBTREE: &str = "/services/svc-00042";

/// The README's example configuration plus `services` entries of ~60 bytes each:
/// `"svc-01234": {"hosts": ["10.4.210.1", "10.4.210.2"], "port": 8080}`.
fn store(services: usize) -> Value {
    let mut json = String::from(
        r#"{"file": "/var/log/apache2/access.log", "size": 1024, "providers": {
            "alpha": ["192.168.1.1", "192.168.1.2"],
            "beta": ["192.168.2.1", "192.168.2.2"],
            "gamma": ["192.168.3.1", "192.168.3.2"]}, "services": {"#,
    );
    for i in 0..services {
        let (a, b) = (i / 256 % 256, i % 256);
        let comma = if i > 0 { "," } else { "" };
        json += &format!(r#"{comma}"svc-{i:05}": {{"hosts": ["10.{a}.{b}.1", "10.{a}.{b}.2"], "port": 8080}}"#);
    }
    json += "}}";
    Value::parse(json.as_bytes()).expect("the generated store is JSON")
}

fn parse_head(c: &mut Criterion) {
    let wrk_get = b"GET /data/providers/beta HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n\r\n";
    let curl_put = b"PUT /update/deploy/providers/delta HTTP/1.1\r\nHost: localhost:8001\r\n\
        User-Agent: curl/8.5.0\r\nAccept: */*\r\nContent-Length: 13\r\n\
        Content-Type: application/x-www-form-urlencoded\r\n\r\n";
    let mut group = c.benchmark_group("parse_head");
    for (name, buf) in [("wrk_get", &wrk_get[..]), ("curl_put", &curl_put[..])] {
        assert_eq!(http::parse_head(buf, MAX_BODY).unwrap().unwrap().len, buf.len());
        group.bench_function(name, |b| b.iter(|| http::parse_head(black_box(buf), MAX_BODY)));
    }
    group.finish();
}

fn chunked(c: &mut Criterion) {
    // 16 chunks of 1 KiB each, then the last chunk and no trailers.
    let chunk = [b'x'; 1024];
    let mut input = Vec::new();
    for _ in 0..16 {
        input.extend_from_slice(b"400\r\n");
        input.extend_from_slice(&chunk);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"0\r\n\r\n");
    let mut body = Vec::with_capacity(16 * 1024);
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("decode_16KiB", |b| {
        b.iter(|| {
            body.clear();
            let mut decoder = ChunkedDecoder::default();
            let used = decoder.decode(black_box(&input), &mut body, MAX_BODY).unwrap();
            assert!(decoder.is_done() && used == input.len() && body.len() == 16 * 1024);
        })
    });
    group.finish();
}

fn resolve(c: &mut Criterion) {
    let root = store(FEW_THOUSAND_KEYS);
    assert_eq!(root.resolve(&path::segments(PATH).unwrap()).unwrap().to_compact(), br#""10.4.210.2""#);
    c.bench_function("resolve/4_segments", |b| {
        b.iter(|| {
            let segments = path::segments(black_box(PATH)).unwrap();
            root.resolve(&segments).is_some()
        })
    });
}

fn render(c: &mut Criterion) {
    let root = store(ONE_MIB);
    let subtree = root.resolve(&path::segments(SUBTREE).unwrap()).unwrap().clone();
    let store_len = root.to_compact().len();
    assert!((1 << 20) * 9 / 10 < store_len && store_len < (1 << 20) * 11 / 10, "{store_len} bytes is not ~1 MiB");
    let mut out = Vec::with_capacity(4 << 20);
    let mut group = c.benchmark_group("render");
    // Throughput is of the compact JSON for all five, so pretty and compact compare directly.
    for (name, value) in [("subtree", &subtree), ("1MiB", &root)] {
        group.throughput(Throughput::Bytes(value.to_compact().len() as u64));
        group.bench_function(format!("pretty_{name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(value).write_pretty(&mut out).unwrap();
                out.len()
            })
        });
        group.bench_function(format!("compact_{name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(value).write_compact(&mut out).unwrap();
                out.len()
            })
        });
    }
    group.bench_function("checksum_1MiB", |b| b.iter(|| Checksum::of(black_box(&root))));
    group.finish();
}

/// Reading a store back: the general parser against the one-pass canonical parser, and SHA-1
/// with the processor's extensions (where it has them) against `sha1_smol`, on 1 MiB of JSON.
fn load(c: &mut Criterion) {
    let compact = store(ONE_MIB).to_compact();
    let mut group = c.benchmark_group("load");
    group.throughput(Throughput::Bytes(compact.len() as u64));
    group.bench_function("parse_general_1MiB", |b| b.iter(|| Value::parse(black_box(&compact)).unwrap()));
    group.bench_function("parse_canonical_1MiB", |b| {
        b.iter(|| Value::parse_canonical(black_box(&compact), &mut || {}).unwrap())
    });
    group.bench_function("sha1_1MiB", |b| b.iter(|| lighthouse::sha1::Sha1::digest(black_box(&compact))));
    group.bench_function("sha1_smol_1MiB", |b| b.iter(|| sha1_smol::Sha1::from(black_box(&compact[..])).digest()));
    group.finish();
}

/// A node serving `store(ONE_MIB)` whose render cache already holds `GET /data/providers/beta`,
/// that request, and the time.
fn cached_node() -> (Node, Request<'static>, Now) {
    let now = Now { mono_ms: 1_000, unix_ms: 1_764_115_200_000 };
    let start = Start { sealed: sealed::seal(store(ONE_MIB), 1, None), ..Start::empty() };
    let node = Node::new(CoreConfig::single("127.0.0.1:1"), now, start);
    let request = Request {
        method: Method::Get,
        target: "/data/providers/beta",
        headers: Headers::default(),
        body: b"",
        client: None,
        grant: None,
    };
    (node, request, now)
}

/// The answer of `node` to `request`, which must be 200 at once.
fn answer(node: &mut Node, now: Now, request: &Request) -> Response {
    match node.handle(now, 1, request) {
        Reply::Now(response) if response.status == 200 => response,
        other => panic!("expected a 200 answer, got {other:?}"),
    }
}

fn core_cached_get(c: &mut Criterion) {
    let (mut node, request, now) = cached_node();
    let first = answer(&mut node, now, &request);
    assert_eq!(first.body.as_slice(), b"[\n  \"192.168.2.1\",\n  \"192.168.2.2\"\n]\n");
    c.bench_function("core/cached_get", |b| b.iter(|| node.handle(now, 1, black_box(&request))));
}

fn encode_head(c: &mut Criterion) {
    let (mut node, request, now) = cached_node();
    let response = answer(&mut node, now, &request);
    let date = http_date(now.unix_ms / 1000);
    let mut out = Vec::with_capacity(512);
    c.bench_function("encode_head/cached_get", |b| {
        b.iter(|| {
            out.clear();
            http::encode_head(black_box(&response), true, false, &date, &mut out);
            out.len()
        })
    });
}

/// A commit's checksum on a store of about 10 MiB after a one-key edit: rendered into the hasher
/// (what every commit did before the workers kept text), with the text kept of the unchanged
/// subtrees (`value::TextCache`, what a commit does), and the floor, SHA-1 of the text alone.
fn commit_checksum(c: &mut Criterion) {
    let mut root = store(10 * ONE_MIB);
    let text = root.to_compact();
    let mut kept = TextCache::default();
    checksum_and_len_cached(&root, &mut kept, &mut || {});
    let mut group = c.benchmark_group("commit_checksum");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("sha1_of_the_text_10MiB", |b| b.iter(|| Sha1::digest(black_box(&text))));
    group.bench_function("rendered_10MiB", |b| b.iter(|| checksum_and_len(black_box(&root), &mut || {})));
    let mut port = 0;
    group.bench_function("kept_text_10MiB", |b| {
        b.iter(|| {
            port += 1;
            root.put(&["services", "svc-01234", "port"], Value::UInt(port), 100).unwrap();
            checksum_and_len_cached(black_box(&root), &mut kept, &mut || {})
        })
    });
    group.finish();
}

criterion_group!(benches, parse_head, chunked, resolve, render, load, core_cached_get, encode_head, commit_checksum);
criterion_main!(benches);
