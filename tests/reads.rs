//! Reads: `/`, `/data[/path]` and `/version`, exactly as the contract and the seed's curl session
//! show them.

mod support;

use support::{Client, SEED_CONFIG, Server, TempDir, curl, write_snapshot};

/// A server loaded with the seed's example configuration at sequence 1.
fn seeded() -> (Server, TempDir) {
    let dir = TempDir::new("reads");
    write_snapshot(dir.path(), 1_700_000_000_000_000, 1, SEED_CONFIG);
    (Server::start(&[&dir.flag()]), dir)
}

#[test]
fn the_seed_curl_session_prints_what_the_readme_shows() {
    let (server, _dir) = seeded();
    let run = |path: &str| curl(&[&server.url(path)]);
    assert_eq!(run("/data/file"), (0, "\"/var/log/apache2/access.log\"\n".into()));
    assert_eq!(run("/data/size"), (0, "1024\n".into()));
    assert_eq!(run("/data/providers/beta"), (0, "[\n  \"192.168.2.1\",\n  \"192.168.2.2\"\n]\n".into()));
    assert_eq!(run("/data/providers/beta/0"), (0, "\"192.168.2.1\"\n".into()));
}

#[test]
fn the_whole_store_is_pretty_json_with_sorted_keys() {
    let (server, _dir) = seeded();
    let response = server.get("/data");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let expected: serde_json::Value = serde_json::from_str(SEED_CONFIG).unwrap();
    assert_eq!(response.text(), serde_json::to_string_pretty(&expected).unwrap() + "\n");
    assert!(response.text().find("\"file\"") < response.text().find("\"size\""), "keys sorted");
}

#[test]
fn missing_paths_are_404_with_a_json_error() {
    let (server, _dir) = seeded();
    for path in
        ["/data/nope", "/data/providers/beta/2", "/data/providers/beta/01", "/data/size/x", "/data/providers/beta/-1"]
    {
        let response = server.get(path);
        assert_eq!(response.status, 404, "{path}");
        assert!(response.error().contains("no such path"), "{path}");
    }
    assert_eq!(server.get("/nothing-here").status, 404);
}

#[test]
fn trailing_slashes_are_ignored_everywhere() {
    let (server, _dir) = seeded();
    assert_eq!(server.get("/data/providers/beta/").text(), server.get("/data/providers/beta").text());
    assert_eq!(server.get("/data/").text(), server.get("/data").text());
    assert_eq!(server.get("/version/").status, 200);
}

#[test]
fn segments_are_percent_decoded_so_keys_may_hold_slashes_and_spaces() {
    let dir = TempDir::new("decode");
    write_snapshot(dir.path(), 1_700_000_000_000_000, 1, r#"{"a/b": {"c d": "slash and space"}, "ünï": 1}"#);
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/data/a%2Fb/c%20d").text(), "\"slash and space\"\n");
    assert_eq!(server.get("/data/%C3%BCn%C3%AF").text(), "1\n");
    assert_eq!(server.get("/data/a/b").status, 404, "an unencoded slash separates segments");
    assert_eq!(server.get("/data/%zz").status, 400);
    assert_eq!(server.get("/data/%FF").status, 400);
}

#[test]
fn version_is_sequence_and_checksum() {
    let (server, _dir) = seeded();
    let version = server.get("/version").json();
    assert_eq!(version["sequence"], 1);
    let expected = lighthouse::core::version::Checksum::of(
        &lighthouse::core::value::Value::parse(SEED_CONFIG.as_bytes()).unwrap(),
    );
    assert_eq!(version["checksum"], expected.to_string());
}

#[test]
fn a_new_store_is_empty_at_sequence_zero() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/data").text(), "{}\n");
    let version = server.get("/version").json();
    assert_eq!(version, serde_json::json!({"sequence": 0, "checksum": "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f"}));
}

#[test]
fn root_describes_the_node() {
    let (server, _dir) = seeded();
    let info = server.get("/").json();
    assert_eq!(info["name"], "lighthouse");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["address"], server.addr.to_string());
    assert_eq!(info["store"]["sequence"], 1);
    assert_eq!(info["active"], true);
}

#[test]
fn reads_carry_an_etag_and_the_store_version_and_honour_if_none_match() {
    let (server, _dir) = seeded();
    let response = server.get("/data/providers/beta");
    let etag = response.header("ETag").expect("an ETag").to_string();
    let version = server.get("/version").json();
    assert_eq!(
        response.header("X-Lighthouse-Version"),
        Some(format!("{}-{}", version["sequence"], version["checksum"].as_str().unwrap()).as_str())
    );
    let again = server.request_with("GET", "/data/providers/beta", &[("If-None-Match", &etag)], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("ETag"), Some(etag.as_str()));
}

#[test]
fn empty_path_segments_name_nothing() {
    let (server, _dir) = seeded();
    for path in ["//", "/data//", "/data//providers", "/data/providers//beta", "/version//"] {
        let answer = server.get(path);
        assert_eq!(answer.status, 404, "{path}: {}", answer.text());
        answer.error();
    }
    assert_eq!(server.get("/").status, 200);
    assert_eq!(server.get("/data/providers/").status, 200, "one trailing slash is fine");
}

#[test]
fn a_target_in_absolute_form_is_served_like_its_path() {
    let (server, _dir) = seeded();
    let mut client = Client::connect(server.addr);
    client.send(format!("GET http://{}/data/size HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", server.addr).as_bytes());
    let answer = client.read_response();
    assert_eq!((answer.status, answer.text()), (200, "1024\n".to_string()));
}
