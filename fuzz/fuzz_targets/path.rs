//! Request targets: `split_target`, `segments` and `Query::parse` on arbitrary UTF-8, then
//! `Value::resolve` of the segments on a small fixed store, and the core's `GET` of the same
//! target on a node serving that store.
//!
//! Checked: nothing panics; the target splits at its first `?`; the decoded segments match the
//! raw ones one by one, encode and decode back to themselves, and rebuild a path with the same
//! segments; a path that resolves can be put back (changing nothing) and deleted, one that does not
//! cannot be deleted; and a `GET /data...` answers what `segments` and `resolve` say it should
//! (400 for a bad path, 404 for a missing one, else 200 with the subtree's pretty JSON).
#![no_main]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lighthouse::core::clock::Now;
use lighthouse::core::{CoreConfig, Node, Reply, Request, Start};
use lighthouse::http::Method;
use lighthouse::limits::STORE_DEPTH_MAX;
use lighthouse::core::path::{PathError, Query, decode, raw_segments, segments, split_target, unknown_parameter};
use lighthouse::core::sealed::seal;
use lighthouse::core::value::{EditError, Value};

/// Keys that need escaping, an empty key at two levels, digit keys in an object, and arrays.
const STORE: &str = r#"{
    "": {"": [0, {"x": ""}], "y": 1},
    "a": {"b": [1, 2, {"c": null}], "": "empty under a"},
    "a/b": "a slash in a key",
    "a b": true,
    "a?b": "a question mark in a key",
    "%": 1.5,
    "é": [[], {}],
    "0": ["zero"],
    "01": "leading zero",
    "list": [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, [[["deep"]]]]
}"#;

const NOW: Now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };

fn start() -> &'static Start {
    static START: OnceLock<Start> = OnceLock::new();
    START.get_or_init(|| {
        let root = Value::parse(STORE.as_bytes()).expect("the fixed store parses");
        Start { sealed: seal(root, 1, None), ..Start::empty() }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else { return };
    let (path, query_text) = split_target(target);
    check_split(target, path, query_text);
    let query = Query::parse(query_text);
    for value in [query.wait, query.ttl].into_iter().flatten() {
        assert!(!value.contains('&'), "a parameter's value runs past '&': {value:?}");
    }
    let decoded = segments(path);
    check_segments(path, &decoded);
    let root = &start().sealed.copy.root;
    if let Ok(decoded) = &decoded {
        check_resolve(root, decoded);
    }
    check_get(target, path, (query, query_text), &decoded, root);
});

fn check_split(target: &str, path: &str, query: &str) {
    assert!(!path.contains('?'), "the path keeps a '?': {path:?}");
    match target.find('?') {
        Some(i) => assert_eq!((path, query), (&target[..i], &target[i + 1..])),
        None => assert_eq!((path, query), (target, "")),
    }
}

/// Percent-encodes every byte that is not unreserved, so the result has no `/`, `?` or `%` of its
/// own.
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            write!(out, "%{byte:02X}").expect("writing to a String");
        }
    }
    out
}

fn check_segments(path: &str, decoded: &Result<Vec<Cow<'_, str>>, PathError>) {
    let raw = raw_segments(path);
    let (decoded, raw) = match (decoded, raw) {
        (Ok(decoded), Ok(raw)) => (decoded, raw.collect::<Vec<&str>>()),
        (Err(PathError::NotAbsolute), Err(PathError::NotAbsolute)) => return,
        (Err(PathError::EmptySegment), Ok(raw)) => {
            let raw: Vec<&str> = raw.collect();
            assert!(raw.iter().any(|r| r.is_empty()), "EmptySegment but no raw segment is empty: {raw:?}");
            return;
        }
        (Err(e), Ok(raw)) => {
            let raw: Vec<&str> = raw.collect();
            assert!(matches!(e, PathError::BadEscape | PathError::NotUtf8), "{e:?}");
            assert!(raw.iter().any(|r| decode(r).is_err()), "{e:?} but every raw segment decodes: {raw:?}");
            return;
        }
        (decoded, raw) => panic!("segments gave {decoded:?}, raw_segments gave {:?}", raw.map(|_| ())),
    };
    assert!(path.starts_with('/'));
    assert_eq!(raw.len(), decoded.len(), "raw {raw:?} vs decoded {decoded:?}");
    for (raw, decoded) in raw.iter().zip(decoded) {
        assert!(!raw.contains('/'), "a raw segment holds a slash: {raw:?}");
        assert_eq!(decode(raw).as_ref(), Ok(decoded), "segment {raw:?}");
        assert_eq!(matches!(decoded, Cow::Borrowed(_)), !raw.contains('%'), "borrows only when nothing to decode");
        assert_eq!(decode(&encode(decoded)).as_ref(), Ok(decoded), "encoded and decoded back");
    }
    // A path built from the encoded segments has the same segments (none is empty: an empty
    // segment names nothing).
    assert!(decoded.iter().all(|s| !s.is_empty()), "an empty segment was accepted: {decoded:?}");
    let mut rebuilt: String = decoded.iter().map(|s| format!("/{}", encode(s))).collect();
    if decoded.is_empty() {
        rebuilt.push('/');
    }
    assert_eq!(segments(&rebuilt).as_ref(), Ok(decoded), "rebuilt as {rebuilt:?}");
}

fn check_resolve(root: &Value, path: &[Cow<'_, str>]) {
    let found = root.resolve(path);
    let stepwise = path.iter().try_fold(root, |node, segment| node.child(segment));
    assert_eq!(found, stepwise, "resolve is child after child");
    let mut edited = root.clone();
    match found {
        Some(subtree) => {
            edited.put(path, subtree.clone(), STORE_DEPTH_MAX).expect("a subtree can be put back where it is");
            assert_eq!(&edited, root, "putting a subtree back changes nothing");
            edited.delete(path).expect("a path that resolves can be deleted");
            if !path.is_empty() {
                assert_ne!(&edited, root, "a delete changed something");
            }
        }
        None => {
            assert_eq!(edited.delete(path), Err(EditError::NotFound));
            assert_eq!(&edited, root, "a failed delete changes nothing");
        }
    }
}

/// The core's answer to `GET target`, compared with what the path module and the tree say.
fn check_get(
    target: &str,
    path: &str,
    (query, query_text): (Query, &str),
    decoded: &Result<Vec<Cow<'_, str>>, PathError>,
    root: &Value,
) {
    // Only targets whose first raw segment is `data` are reads of the store.
    let Some(first) = path.strip_prefix('/').map(|rest| rest.split('/').next().unwrap_or("")) else { return };
    let mut node = Node::new(CoreConfig::single("127.0.0.1:1"), NOW, start().clone());
    let request = Request { method: Method::Get, target, headers: Default::default(), body: b"" , client: None, grant: None};
    let response = match node.handle(NOW, 1, &request) {
        Reply::Now(response) => response,
        // `?wait=S` on a path that does not exist (yet) waits for it; `GET /copy` on a node
        // without peers has its body rendered off the loop.
        Reply::Later if query.wait.is_some() || first == "copy" => return,
        other => panic!("a GET without If-None-Match or Accept was not answered at once: {other:?}"),
    };
    if first != "data" {
        return;
    }
    // A parameter `/data` does not take (a typo such as `?wiat=30`) is refused before anything else.
    if unknown_parameter("data", query_text).is_some() {
        assert_eq!(response.status, 400, "GET {target:?}: an unknown query parameter is refused");
        return;
    }
    if query.wait.is_some_and(|wait| wait.parse::<f64>().map_or(true, |s| !s.is_finite() || s < 0.0)) {
        assert_eq!(response.status, 400, "GET {target:?}: a bad ?wait= is refused");
        return;
    }
    let expected = match decoded {
        Err(e) => Err(e.status()),
        Ok(decoded) => match root.resolve(&decoded[1..]) {
            None => Err(404),
            Some(Value::Array(_) | Value::Object(_) | Value::Chunked(_)) => Ok(None),
            Some(_) if query.keys => Err(400),
            Some(scalar) => Ok(Some(scalar)),
        },
    };
    match expected {
        Err(status) => assert_eq!(response.status, status, "GET {target:?}"),
        Ok(scalar) => {
            assert_eq!(response.status, 200, "GET {target:?}");
            if !query.keys && !(query.raw && scalar.is_some()) {
                let subtree = root.resolve(&decoded.as_ref().expect("resolved above")[1..]).expect("resolved above");
                assert_eq!(
                    String::from_utf8_lossy(response.body.as_slice()),
                    String::from_utf8_lossy(&subtree.to_pretty_line()),
                    "GET {target:?} answered another subtree than segments {decoded:?} name"
                );
            }
        }
    }
}
