//! `--cors` on the wire, as a browser's requests reach the server: which answers carry the
//! `Access-Control-*` headers (every answer to an allowed origin: errors, streams, preflights) and
//! which carry none (other origins, no flag). `tests/ui.rs` checks the same with a real browser.

mod support;

use support::{Client, Server};

const ALLOWED: &str = "http://dash.example:3000";

fn cors_headers(response: &support::Response) -> Vec<String> {
    response
        .headers
        .iter()
        .filter(|(name, _)| {
            name.to_ascii_lowercase().starts_with("access-control-") || name.eq_ignore_ascii_case("vary")
        })
        .map(|(name, value)| format!("{name}: {value}"))
        .collect()
}

#[test]
fn an_allowed_origin_gets_the_headers_on_every_answer_and_others_get_none() {
    let server = Server::start(&[&format!("--cors=https://other.example,{ALLOWED}"), "--max-body=64"]);
    let from = |origin: &str, method: &str, path: &str, body: &[u8]| {
        server.request_with(method, path, &[("Origin", origin)], body)
    };
    assert_eq!(server.request("PUT", "/data/x", b"1").status, 200);
    for (method, path, body, status) in [
        ("GET", "/data/x", &b""[..], 200),
        ("GET", "/data/missing", b"", 404),
        ("PUT", "/data/x", b"{not json", 400),
        ("PUT", "/data/x", &[b'1'; 100][..], 413),
        ("POST", "/data/x", b"", 405),
    ] {
        let answer = from(ALLOWED, method, path, body);
        assert_eq!(answer.status, status, "{method} {path}");
        assert_eq!(answer.header("Access-Control-Allow-Origin"), Some(ALLOWED), "{method} {path} ({status})");
        assert_eq!(answer.header("Vary"), Some("Origin"));
        assert_eq!(answer.header("Access-Control-Expose-Headers"), Some("ETag, X-Lighthouse-Version, Retry-After"));
        // Another origin gets nothing but `Vary: Origin`, so that no cache hands this answer to
        // an allowed page.
        let other = from("http://evil.example", method, path, body);
        assert_eq!(other.status, status);
        assert_eq!(cors_headers(&other), ["Vary: Origin"], "{method} {path}");
        let no_origin = server.request(method, path, body);
        assert_eq!(cors_headers(&no_origin), ["Vary: Origin"], "{method} {path}");
    }

    // The preflight of a write with If-Match.
    let preflight = server.request_with(
        "OPTIONS",
        "/data/x",
        &[
            ("Origin", ALLOWED),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "if-match, content-type"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("Access-Control-Allow-Origin"), Some(ALLOWED));
    assert_eq!(preflight.header("Access-Control-Allow-Methods"), Some("GET, HEAD, PUT, PATCH, DELETE, OPTIONS"));
    let allowed_headers = preflight.header("Access-Control-Allow-Headers").unwrap();
    for needed in ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Last-Event-ID"] {
        assert!(allowed_headers.contains(needed), "{allowed_headers}");
    }
    assert_eq!(preflight.header("Access-Control-Max-Age"), Some("600"));

    // An event stream: the head carries them too.
    let mut stream = Client::connect(server.addr);
    stream.send_request("GET", "/data/x", &[("Origin", ALLOWED), ("Accept", "text/event-stream")], b"");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut stream.stream, &mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.contains("Content-Type: text/event-stream"), "{head}");
    assert!(head.contains(&format!("Access-Control-Allow-Origin: {ALLOWED}\r\n")), "{head}");
}

#[test]
fn without_the_flag_no_answer_carries_them() {
    let server = Server::start(&[]);
    for (method, path) in [("GET", "/data"), ("OPTIONS", "/data"), ("GET", "/nope")] {
        let answer = server.request_with(method, path, &[("Origin", ALLOWED)], b"");
        assert!(cors_headers(&answer).is_empty(), "{method} {path}: {:?}", cors_headers(&answer));
    }
    assert_eq!(server.request("OPTIONS", "/data", b"").header("Allow"), Some("GET, HEAD, PUT, PATCH, DELETE, OPTIONS"));
    assert_eq!(server.request("OPTIONS", "/version", b"").header("Allow"), Some("GET, HEAD, OPTIONS"));
}
