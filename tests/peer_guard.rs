//! The peer endpoints against what a web page (or anyone without the cluster key) can send them:
//! browser-forgeable requests, foreign `Host` names (DNS rebinding), absurd terms; and a node that
//! would give its peers an address no one can reach.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::Instant;

use support::cluster::chain;
use support::{BINARY, Client, PATIENCE, Server, TempDir, transact, wait_for};

/// A beat as a forger would write one: a term, a made-up coordinator, no committed version.
fn beat(term: u64) -> Vec<u8> {
    let coordinator = serde_json::json!({"id": "00000000deadbeef", "address": "127.0.0.1:9"});
    serde_json::json!({"term": term, "coordinator": coordinator, "committed": null, "sent": 1}).to_string().into_bytes()
}

/// A write through the lock answers 200 (the node may still be settling after a refused beat:
/// a refused one must not unsettle it, so no retry is allowed for long).
fn assert_writes_work(server: &Server, name: &str) {
    let answer = transact(server, name, "/k", &format!("\"{name}\""));
    assert_eq!(answer.status, 200, "a write after the forged request: {}", answer.text());
    assert_eq!(server.get("/data/k").json(), serde_json::json!(name));
}

/// Runs the server binary with `args`, expecting it to refuse to start: fails (and kills it) if it
/// is still running after `PATIENCE`.
fn refused_start(args: &[&str]) -> Output {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("{args:?} started and ran: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn term_of(server: &Server) -> u64 {
    server.get("/state").json()["writes"]["term"].as_u64().expect("a term")
}

#[test]
fn a_beat_a_web_page_could_send_is_refused_and_writes_go_on() {
    let server = Server::start(&[]);
    assert_writes_work(&server, "before");
    let term = term_of(&server);

    // What any page may send without a preflight: a POST of text/plain (or a form).
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let forged = server.request_with("POST", "/cluster/beat", &[("Content-Type", content_type)], &beat(u64::MAX));
        assert_eq!(forged.status, 415, "{content_type}: {}", forged.text());
        assert!(forged.error().contains("application/json"), "{}", forged.error());
    }
    // A page's request carries its Origin, whatever its type (a preflighted one, or a rebinding page's).
    let headers = [("Content-Type", "application/json"), ("Origin", "https://evil.example")];
    let forged = server.request_with("POST", "/cluster/beat", &headers, &beat(u64::MAX));
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert!(forged.error().contains("Origin"), "{}", forged.error());
    for (method, path) in [("PUT", "/state"), ("PUT", "/copy"), ("POST", "/cluster/vote"), ("GET", "/cluster/accepted")]
    {
        let answer = server.request_with(method, path, &[("Origin", "null")], b"[]");
        assert_eq!(answer.status, 403, "{method} {path} with an Origin");
    }

    assert_eq!(term_of(&server), term, "no forged term was taken up");
    assert_writes_work(&server, "after");
    // The page at /ui still reads /state from its own origin.
    assert_eq!(server.request_with("GET", "/state", &[("Origin", "http://127.0.0.1")], b"").status, 200);
}

#[test]
fn an_absurd_term_is_refused_logged_once_and_writes_go_on() {
    let server = Server::start(&[]);
    assert_writes_work(&server, "before");
    let term = term_of(&server);
    let json = [("Content-Type", "application/json")];
    for absurd in [u64::MAX, u64::MAX - 1, 1 << 53 | 1, term + (1 << 21)] {
        let refused = server.request_with("POST", "/cluster/beat", &json, &beat(absurd));
        assert_eq!(refused.status, 409, "term {absurd}: {}", refused.text());
        assert!(refused.error().contains(&format!("term {absurd}")), "{}", refused.error());
        let vote = serde_json::json!({
            "term": absurd,
            "candidate": {"id": "00000000deadbeef", "address": "127.0.0.1:9"},
            "accepted": {"term": 0, "sequence": 0, "checksum": "0".repeat(40)},
        });
        let refused = server.request_with("POST", "/cluster/vote", &json, vote.to_string().as_bytes());
        assert!(matches!(refused.status, 400 | 409), "vote in term {absurd}: {}", refused.text());
    }
    assert_eq!(term_of(&server), term, "no absurd term was taken up");
    assert_writes_work(&server, "after");
    let warnings = server.log().iter().filter(|l| l.contains("refused a beat from 127.0.0.1:9")).count();
    assert_eq!(warnings, 1, "the first refusal is logged, the rest are not: {:?}", server.log());
}

#[test]
fn a_loopback_node_serves_only_names_a_page_cannot_rebind() {
    let server = Server::start(&["--advertise=lighthouse-test.example:8001"]);
    let port = server.addr.port();
    for host in ["evil.example", &format!("evil.example:{port}"), &format!("localhost.evil.example:{port}")] {
        for path in ["/data", "/cluster/accepted", "/", "/ui"] {
            let refused = server.request_with("GET", path, &[("Host", host)], b"");
            assert_eq!(refused.status, 421, "Host {host} on {path}: {}", refused.text());
            assert!(refused.error().contains("DNS rebinding"), "{}", refused.error());
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
        "lighthouse-test.example:8001".to_string(),
    ] {
        assert_eq!(server.request_with("GET", "/data", &[("Host", &host)], b"").status, 200, "Host {host}");
    }
    // An HTTP/1.0 client may send no Host at all; a browser always sends one.
    let mut client = Client::connect(server.addr);
    client.send(b"GET /data HTTP/1.0\r\n\r\n");
    assert_eq!(client.read_response().status, 200);
    // curl names the address it was given.
    let (code, body) = support::curl(&[&format!("http://localhost:{port}/data")]);
    assert_eq!((code, body.as_str()), (0, "{}\n"));
}

#[test]
fn three_nodes_still_commit_behind_the_guards() {
    let members = chain(3, "guarded", &[]);
    let follower = members.iter().find(|m| m.writes()["role"] == "follower").expect("a follower");
    let term = follower.writes()["term"].as_u64().unwrap();
    let plain = [("Content-Type", "text/plain")];
    assert_eq!(follower.server().request_with("POST", "/cluster/beat", &plain, &beat(u64::MAX)).status, 415);
    let json = [("Content-Type", "application/json")];
    assert_eq!(follower.server().request_with("POST", "/cluster/beat", &json, &beat(term + (1 << 21))).status, 409);
    for (i, member) in members.iter().enumerate() {
        let answer = transact(member.server(), &format!("w{i}"), "/n", &i.to_string());
        assert_eq!(answer.status, 200, "a write through node {i}: {}", answer.text());
    }
    wait_for("the last write on every node", || members.iter().all(|m| m.server().get("/data/n").text() == "2\n"));
    assert!(members.iter().all(|m| m.writes()["term"].as_u64() == Some(term)), "no election was caused");
}

#[test]
fn an_unspecified_bind_address_in_a_cluster_needs_advertise() {
    for bind in ["--bind=0.0.0.0:0", "--bind=[::]:0"] {
        let output = refused_start(&[bind, "--seeds=127.0.0.1:1"]);
        assert_eq!(output.status.code(), Some(2), "{bind} with --seeds");
        let text = String::from_utf8(output.stderr).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.contains("add --advertise=HOST:PORT"), "{bind}: {first}");
    }

    // A data directory whose snapshot names peers is in a cluster too: known once it is loaded.
    let dir = TempDir::new("unspecified-bind");
    let node = Server::start(&[&dir.flag(), "--writes=local", "--seeds=127.0.0.1:1", "--bootstrap"]);
    assert_eq!(transact(&node, "w", "/x", "1").status, 200);
    assert!(node.terminate().success());
    let output = refused_start(&["--bind=0.0.0.0:0", &dir.flag(), "--writes=local"]);
    assert_eq!(output.status.code(), Some(1), "a stored cluster and no --advertise");
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.lines().any(|l| l.contains("add --advertise=HOST:PORT")), "{text}");
    assert!(!text.contains("listening on"), "it never listened: {text}");
}
