//! Tokens and the cluster key, as a client and a peer meet them.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{Server, TempDir, wait_for};

/// Writes `secret` (with a newline, as `echo` would) to a private file and returns its path.
fn secret_file(dir: &TempDir, name: &str, secret: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

#[test]
fn changes_need_the_token_and_reads_stay_open() {
    let dir = TempDir::new("token");
    let token = secret_file(&dir, "token", "write-s3cret");
    let server = Server::start(&[&format!("--token-file={token}")]);
    let refused = server.request("PUT", "/lock", b"ops");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("WWW-Authenticate"), Some("Bearer realm=\"lighthouse\""));
    refused.error();
    let wrong = server.request_with("PUT", "/lock", &[("Authorization", "Bearer nope")], b"ops");
    assert_eq!(wrong.status, 401);
    let auth = [("Authorization", "Bearer write-s3cret")];
    assert_eq!(server.request_with("PUT", "/lock", &auth, b"ops").status, 200);
    assert_eq!(server.request("PUT", "/update/ops/x", b"1").status, 401, "staging needs it too");
    assert_eq!(server.request_with("PUT", "/update/ops/x", &auth, b"1").status, 201);
    assert_eq!(server.request("DELETE", "/lock/ops", b"").status, 401, "so does aborting");
    assert_eq!(server.request_with("PUT", "/lock/ops", &auth, b"").status, 200);
    assert_eq!(server.get("/data/x").text(), "1\n", "reads need no token without --read-token-file");
    assert_eq!(server.get("/lock").status, 404);
}

#[test]
fn reads_need_the_read_token_or_the_write_token() {
    let dir = TempDir::new("read-token");
    let read = secret_file(&dir, "read", "reader");
    let write = secret_file(&dir, "write", "writer");
    let server = Server::start(&[&format!("--read-token-file={read}"), &format!("--token-file={write}")]);
    assert_eq!(server.get("/data").status, 401);
    assert_eq!(server.get("/version").status, 401);
    assert_eq!(server.get("/metrics").status, 401);
    assert_eq!(server.request_with("GET", "/data", &[("Authorization", "Bearer reader")], b"").status, 200);
    assert_eq!(server.request_with("GET", "/data", &[("Authorization", "Bearer writer")], b"").status, 200);
    assert_eq!(server.request_with("PUT", "/lock", &[("Authorization", "Bearer reader")], b"x").status, 401);
    assert_eq!(server.get("/health").status, 200, "health checks need no token");
    assert_eq!(server.get("/ready").status, 200);
}

#[test]
fn nodes_sharing_the_cluster_key_sync_and_peer_endpoints_refuse_others() {
    let dir = TempDir::new("cluster-key");
    let key = secret_file(&dir, "key", "cluster-k3y");
    let first = Server::start(&[&format!("--cluster-key-file={key}")]);
    let second = Server::start(&[&format!("--cluster-key-file={key}"), &format!("--seeds={}", first.addr)]);
    wait_for("the keyed nodes to sync", || second.get("/data").status == 200);
    assert_eq!(support::transact(&first, "w", "/k", "1").status, 200);
    wait_for("the commit to reach the second node", || second.get("/data/k").status == 200);

    assert_eq!(first.get("/state").status, 401, "the table needs the key");
    assert_eq!(first.get("/copy").status, 401, "so does the store");
    let forged = r#"[{"address": "127.0.0.1:1"}]"#;
    assert_eq!(first.request("PUT", "/state", forged.as_bytes()).status, 401);
    let with_key = [("Authorization", "Bearer cluster-k3y")];
    assert_eq!(first.request_with("GET", "/state", &with_key, b"").status, 200);

    // A node without the key cannot join: its requests are refused, it stays inactive.
    let outsider = Server::start(&[&format!("--seeds={}", first.addr), "--bootstrap-limit=60"]);
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(outsider.get("/data").status, 503, "an outsider never catches up");
    let table = first.request_with("GET", "/state", &with_key, b"").json();
    let addresses: Vec<&str> =
        table["cluster"].as_array().unwrap().iter().map(|p| p["address"].as_str().unwrap()).collect();
    assert!(!addresses.contains(&outsider.addr.to_string().as_str()), "the outsider did not join: {addresses:?}");
}

#[test]
fn secrets_never_reach_the_log() {
    let dir = TempDir::new("log");
    let token = secret_file(&dir, "token", "do-not-log-me");
    let key = secret_file(&dir, "key", "nor-me-either");
    let server =
        Server::start(&[&format!("--token-file={token}"), &format!("--cluster-key-file={key}"), "--log-level=trace"]);
    server.request_with("PUT", "/lock", &[("Authorization", "Bearer do-not-log-me")], b"a");
    server.request_with("PUT", "/lock", &[("Authorization", "Bearer wrong-guess")], b"a");
    server.request_with("PUT", "/copy", &[("Authorization", "Bearer nor-me-either")], b"{");
    server.request("GET", "/data", b"");
    let log = server.log().join("\n");
    assert!(!log.is_empty());
    for secret in ["do-not-log-me", "nor-me-either", "wrong-guess"] {
        assert!(!log.contains(secret), "{secret} was logged");
    }
}

#[test]
fn an_unreadable_or_empty_token_file_stops_the_start() {
    let dir = TempDir::new("bad-token");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for flag in [format!("--token-file={}", empty.display()), "--read-token-file=/nonexistent/token".to_string()] {
        let output = std::process::Command::new(support::BINARY).arg("--bind=127.0.0.1:0").arg(&flag).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{flag}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("token"), "{flag}");
    }
}

#[test]
fn without_a_cluster_key_the_write_token_guards_the_copy_and_a_cluster_still_syncs() {
    let dir = TempDir::new("token-peers");
    let token = secret_file(&dir, "token", "write-s3cret");
    let token_flag = format!("--token-file={token}");
    let first = Server::start(&[&token_flag]);
    // The Security example of docs/operations.md: a token and no cluster key. A forged copy must not land.
    let root = lighthouse::core::value::Value::parse(br#"{"evil": true}"#).unwrap();
    let checksum = lighthouse::core::version::Checksum::of(&root);
    let forged = format!(r#"{{"version": {{"sequence": 99, "checksum": "{checksum}"}}, "data": {{"evil": true}}}}"#);
    let refused = first.request("PUT", "/copy", forged.as_bytes());
    assert_eq!(refused.status, 401, "an unauthenticated copy is refused: {}", refused.text());
    assert_eq!(first.request("PUT", "/state", br#"[{"address": "127.0.0.1:1"}]"#).status, 401);
    assert_eq!(first.get("/version").json()["sequence"], 0);
    assert_eq!(first.get("/data/evil").status, 404);
    // Nodes that share the token sync: each sends it to its peers.
    let second = Server::start(&[&token_flag, &format!("--seeds={}", first.addr)]);
    wait_for("the second node to catch up", || second.get("/data").status == 200);
    let auth = [("Authorization", "Bearer write-s3cret")];
    assert_eq!(first.request_with("PUT", "/lock", &auth, b"ops").status, 200);
    assert_eq!(first.request_with("PUT", "/update/ops/k", &auth, b"1").status, 201);
    assert_eq!(first.request_with("PUT", "/lock/ops", &auth, b"").status, 200);
    wait_for("the commit to reach the second node", || second.get("/data/k").status == 200);
    // A node without the token may read (reads are open without --read-token-file), but it cannot
    // join or write: its forwarded writes are refused, and it shows the others as not usable.
    let outsider = Server::start(&[&format!("--seeds={}", first.addr), "--bootstrap-limit=60"]);
    wait_for("the outsider to log the refusal", || {
        outsider.log().iter().any(|l| l.contains("WARN") && l.contains(&first.addr.to_string()) && l.contains("401"))
    });
    wait_for("the outsider to read the store", || outsider.get("/data/k").status == 200);
    let entry = |state: &serde_json::Value| {
        state["cluster"].as_array().unwrap().iter().find(|p| p["address"] == first.addr.to_string()).cloned().unwrap()
    };
    let state = outsider.get("/state").json();
    assert_eq!(entry(&state)["reachable"], false, "a peer that refuses us is not usable: {state}");
    assert!(entry(&state)["problem"].as_str().unwrap().contains("401"), "{state}");
    assert_eq!(outsider.request("PUT", "/lock", b"x").status, 503, "it is no voter and knows no coordinator");
    let forwarded = [("X-Lighthouse-Forwarded", "10.9.9.9:1")];
    assert_eq!(first.request_with("PUT", "/lock", &forwarded, b"x").status, 401, "a forged forward needs the token");
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(first.get("/data/evil").status, 404, "the outsider's commit was not taken");
    assert_eq!(second.get("/data/evil").status, 404);
}
