//! One-request writes on `/data` (`PUT`, `DELETE`, `PATCH` with a merge patch or a JSON Patch)
//! and their preconditions (`If-Match`, `If-None-Match`), through the real binary, with curl as
//! docs/tutorial.md shows them; the tutorial's compare-and-set loop run by several shells at once,
//! on one node and on a cluster of three.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::cluster::{Member, chain};
use support::{Server, TempDir, curl, wait_for};

/// curl with the status on the last line: (status, body).
fn curl_status(args: &[&str]) -> (u16, String) {
    let (code, out) = curl(&[&["--write-out", "\n%{http_code}"], args].concat());
    assert_eq!(code, 0, "curl {args:?} ran");
    let (body, status) = out.rsplit_once('\n').expect("the status line");
    (status.parse().expect("a status"), body.to_string())
}

/// `curl -X PATCH` with a JSON Patch: (status, body).
fn json_patch(patch: &str, url: &str) -> (u16, String) {
    curl_status(&["-X", "PATCH", "-H", "Content-Type: application/json-patch+json", "-d", patch, url])
}

fn sequence(server: &Server) -> u64 {
    server.get("/version").json()["sequence"].as_u64().unwrap()
}

#[test]
fn put_delete_and_patch_each_commit_one_version_with_curl() {
    let dir = TempDir::new("writes-curl");
    let server = Server::start(&[&dir.flag()]);
    let url = |path: &str| server.url(path);

    // PUT: one request, one commit, answered with the version as a lock's commit is.
    let (status, body) = curl_status(&["-X", "PUT", "-d", r#"{"port": 8080, "hosts": ["a"]}"#, &url("/data/web")]);
    assert_eq!(status, 200, "{body}");
    let version: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(version["sequence"], 1);
    assert_eq!(server.get("/version").json(), version);
    assert_eq!(server.get("/data/web/port").text(), "8080\n");
    wait_for("the snapshot of sequence 1", || dir.snapshots().len() == 1);

    // The answer carries the ETag of what was written: the ETag a GET gives.
    let put = server.request("PUT", "/data/web/port", b"8081");
    assert_eq!(put.status, 200);
    assert_eq!(put.header("ETag"), server.get("/data/web/port").header("ETag"));

    // Bad input changes nothing.
    assert_eq!(curl_status(&["-X", "PUT", "-d", "{not json", &url("/data/web")]).0, 400);
    assert_eq!(curl_status(&["-X", "PUT", "-d", "1", &url("/data/missing/x")]).0, 404);
    assert_eq!(curl_status(&["-X", "DELETE", &url("/data/missing")]).0, 404);
    assert_eq!(sequence(&server), 2);

    // Writing what is already there makes no version.
    assert_eq!(server.request("PUT", "/data/web/port", b"8081").status, 200);
    assert_eq!(sequence(&server), 2);

    // PATCH, merge patch (RFC 7396): null removes, objects merge.
    let (status, _) = curl_status(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/merge-patch+json",
        "-d",
        r#"{"port": null, "tls": {"on": true}}"#,
        &url("/data/web"),
    ]);
    assert_eq!(status, 200);
    assert_eq!(server.get("/data/web").json(), serde_json::json!({"hosts": ["a"], "tls": {"on": true}}));

    // PATCH, JSON Patch (RFC 6902): all six operations, in one commit.
    let before = sequence(&server);
    let patch = r#"[
        {"op": "test", "path": "/hosts/0", "value": "a"},
        {"op": "add", "path": "/hosts/-", "value": "b"},
        {"op": "copy", "from": "/hosts", "path": "/spare"},
        {"op": "move", "from": "/tls/on", "path": "/secure"},
        {"op": "replace", "path": "/hosts/0", "value": "z"},
        {"op": "remove", "path": "/tls"}
    ]"#;
    let (status, body) = json_patch(patch, &url("/data/web"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(sequence(&server), before + 1, "one patch, one version");
    assert_eq!(
        server.get("/data/web").json(),
        serde_json::json!({"hosts": ["z", "b"], "spare": ["a", "b"], "secure": true})
    );

    // A JSON Patch that does not apply changes nothing, not even its first operations.
    let failing = r#"[{"op": "remove", "path": "/spare"}, {"op": "test", "path": "/secure", "value": false}]"#;
    let (status, body) = json_patch(failing, &url("/data/web"));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("operation 1: test failed"), "{body}");
    assert_eq!(server.get("/data/web/spare").status, 200, "the first operation did not land");
    let malformed = r#"[{"op": "frobnicate", "path": "/x"}]"#;
    let (status, _) = json_patch(malformed, &url("/data"));
    assert_eq!(status, 400);
    let (status, body) = curl_status(&["-X", "PATCH", "-d", "{}", &url("/data/web")]);
    assert_eq!(status, 415, "curl's form type is no patch format: {body}");
    assert!(body.contains("application/merge-patch+json"), "{body}");
    let (status, body) =
        curl_status(&["-X", "PUT", "-H", "Content-Type: application/json-patch+json", "-d", "[]", &url("/data/web")]);
    assert_eq!(status, 415, "a patch sent with PUT is not stored as a value: {body}");

    // A patch whose copies double what they copy is refused before it grows the store.
    let before = sequence(&server);
    let doubling = format!("[{}]", vec![r#"{"op": "copy", "from": "/hosts", "path": "/hosts/-"}"#; 40].join(","));
    let (status, body) = json_patch(&doubling, &url("/data/web"));
    assert_eq!(status, 413, "{body}");
    assert_eq!(sequence(&server), before, "nothing changed");

    // DELETE removes.
    assert_eq!(curl_status(&["-X", "DELETE", &url("/data/web/spare")]).0, 200);
    assert_eq!(server.get("/data/web/spare").status, 404);

    // Every version went to disk, and a restart serves the last one.
    let last = server.get("/version").json();
    drop(server);
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/version").json(), last);
    assert_eq!(server.get("/data/web/secure").text(), "true\n");
}

#[test]
fn preconditions_guard_writes_and_a_failed_one_changes_nothing() {
    let server = Server::start(&[]);
    let put =
        |path: &str, headers: &[(&str, &str)], body: &str| server.request_with("PUT", path, headers, body.as_bytes());
    // If-None-Match: * creates only.
    assert_eq!(put("/data/x", &[("If-None-Match", "*")], "1").status, 200);
    let refused = put("/data/x", &[("If-None-Match", "*")], "2");
    assert_eq!(refused.status, 412);
    assert!(refused.error().contains("exists"), "{}", refused.error());
    // If-Match with the current tag writes; with an old one, 412 and the current tag.
    let tag = server.get("/data/x").header("ETag").unwrap().to_string();
    let written = put("/data/x", &[("If-Match", &tag)], "2");
    assert_eq!(written.status, 200);
    let new_tag = written.header("ETag").unwrap().to_string();
    let stale = put("/data/x", &[("If-Match", &tag)], "3");
    assert_eq!(stale.status, 412);
    assert_eq!(stale.header("ETag"), Some(new_tag.as_str()), "the 412 says what the tag is now");
    assert_eq!(server.get("/data/x").text(), "2\n", "the failed write changed nothing");
    // A tag from ?raw names the same content; a weak tag never matches If-Match.
    let raw_tag = server.get("/data/x?raw").header("ETag").unwrap().to_string();
    assert!(raw_tag.ends_with(".raw\""), "{raw_tag}");
    assert_eq!(put("/data/x", &[("If-Match", &raw_tag)], "4").status, 200);
    let tag = server.get("/data/x").header("ETag").unwrap().to_string();
    let weak = put("/data/x", &[("If-Match", &format!("W/{tag}"))], "5");
    assert_eq!(weak.status, 412);
    assert!(weak.error().contains("weak"), "{}", weak.error());
    let unquoted = put("/data/x", &[("If-Match", tag.trim_matches('"'))], "5");
    assert_eq!(unquoted.status, 400, "a tag without its quotes is no tag");
    assert!(unquoted.error().contains("double quotes"), "{}", unquoted.error());
    // Every answer says the version it was made on.
    let version = server.get("/data/x").header("X-Lighthouse-Version").unwrap().to_string();
    assert!(stale.header("X-Lighthouse-Version").is_some());
    let refused = put("/data/x", &[("If-Match", "\"0000\"")], "5");
    assert_eq!(refused.header("X-Lighthouse-Version"), Some(version.as_str()));
    let written = put("/data/x", &[("If-Match", &tag)], "6");
    assert_ne!(written.header("X-Lighthouse-Version"), Some(version.as_str()));
    assert_eq!(written.header("X-Lighthouse-Version"), server.get("/data/x").header("X-Lighthouse-Version"));
    assert_eq!(put("/data/x", &[], "4").status, 200);
    // If-Match: * needs the path to exist; on DELETE and PATCH too.
    assert_eq!(put("/data/y", &[("If-Match", "*")], "1").status, 412);
    assert_eq!(server.get("/data/y").status, 404);
    assert_eq!(server.request_with("DELETE", "/data/x", &[("If-Match", "\"0000\"")], b"").status, 412);
    let merge = [("Content-Type", "application/merge-patch+json"), ("If-Match", "\"0000\"")];
    assert_eq!(server.request_with("PATCH", "/data", &merge, b"{\"z\": 1}").status, 412);
    // The whole store's tag is its checksum.
    let checksum = server.get("/version").json()["checksum"].as_str().unwrap().to_string();
    let merge = [("Content-Type", "application/merge-patch+json"), ("If-Match", &format!("\"{checksum}\""))];
    let patched = server.request_with("PATCH", "/data", &merge, b"{\"z\": 1}");
    assert_eq!(patched.status, 200);
    let now = server.get("/version").json()["checksum"].as_str().unwrap().to_string();
    assert_eq!(patched.header("ETag"), Some(format!("\"{now}\"").as_str()));
    assert_eq!(server.get("/data").json(), serde_json::json!({"x": 4, "z": 1}));
}

#[test]
fn a_write_waits_for_a_held_lock_then_says_who_holds_it() {
    let server = Server::start(&[]);
    assert_eq!(server.request("PUT", "/lock", b"deploy").status, 200);
    let started = Instant::now();
    let refused = server.request("PUT", "/data/x", b"1");
    let waited = started.elapsed();
    assert_eq!(refused.status, 409);
    assert!(refused.error().contains("held by deploy"), "{}", refused.error());
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert!(waited >= Duration::from_millis(1_900) && waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(server.get("/data/x").status, 404, "the refused write changed nothing");

    // A lock freed while the write waits lets it through, after the transaction's commit.
    let addr = server.addr;
    let committer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let stage = support::try_request(addr, "PUT", "/update/deploy/x", b"\"from the transaction\"").unwrap();
        assert_eq!(stage.status, 201);
        support::try_request(addr, "PUT", "/lock/deploy", b"").unwrap().status
    });
    let written = server.request_with("PUT", "/data/x", &[("If-Match", "*")], b"\"from the write\"");
    assert_eq!(committer.join().unwrap(), 200);
    assert_eq!(written.status, 200, "{}", written.text());
    assert_eq!(server.get("/data/x").text(), "\"from the write\"\n");
    assert_eq!(sequence(&server), 2, "the transaction's commit, then the write's");
    // The audit log names the write and its client.
    wait_for("the write's audit line", || {
        server
            .log()
            .iter()
            .any(|l| l.contains("lock PUT /data/x committed sequence 2") && l.contains(" from 127.0.0.1:"))
    });
}

#[test]
fn writes_need_the_write_token_and_a_url_token_only_reads() {
    let dir = TempDir::new("writes-token");
    let write = dir.path().join("write");
    let read = dir.path().join("read");
    std::fs::write(&write, "w-secret\n").unwrap();
    std::fs::write(&read, "r-secret\n").unwrap();
    let server = Server::start(&[
        &format!("--token-file={}", write.display()),
        &format!("--read-token-file={}", read.display()),
    ]);
    assert_eq!(server.request("PUT", "/data/x", b"1").status, 401);
    let merge = [("Content-Type", "application/merge-patch+json")];
    assert_eq!(server.request_with("PATCH", "/data", &merge, b"{}").status, 401);
    assert_eq!(server.request("DELETE", "/data", b"").status, 401);
    assert_eq!(server.request("PUT", "/data/x?access_token=w-secret", b"1").status, 401, "no writes by URL");
    let bearer = [("Authorization", "Bearer r-secret")];
    assert_eq!(server.request_with("PUT", "/data/x", &bearer, b"1").status, 401, "the read token writes nothing");
    let bearer = [("Authorization", "Bearer w-secret")];
    assert_eq!(server.request_with("PUT", "/data/x", &bearer, b"1").status, 200);
    // Reads take the read token in the URL, for an EventSource.
    assert_eq!(server.get("/data/x").status, 401);
    assert_eq!(server.get("/data/x?access_token=wrong").status, 401);
    assert_eq!(server.get("/data/x?access_token=r-secret").text(), "1\n");
    assert_eq!(server.get("/data/x?raw&access_token=r-secret").text(), "1");
}

/// The tutorial's compare-and-set loop, taken from docs/tutorial.md itself (so the two cannot drift
/// apart), with the URL as its first argument: increments `/data/counter` once, retrying while
/// another writer got there first.
fn cas_increment() -> String {
    let tutorial = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tutorial.md")).unwrap();
    let start = tutorial.find("url=localhost:8001/data/counter\n").expect("the tutorial's compare-and-set loop");
    let last = "rm -f \"$h\"\n";
    let end = start + tutorial[start..].find(last).expect("the loop's last line") + last.len();
    format!("url=$1\n{}", &tutorial[start..end].split_once('\n').unwrap().1)
}

/// Runs `per_shell` increments in one shell per URL, all at once; returns when all are done.
fn run_shells(urls: &[String], per_shell: usize) {
    let script =
        format!("for i in $(seq {per_shell}); do bash -c '{}' _ \"$1\"; done", cas_increment().replace('\'', "'\\''"));
    let mut shells: Vec<_> = urls
        .iter()
        .map(|url| Command::new("bash").args(["-c", &script, "_", url]).spawn().expect("bash runs"))
        .collect();
    for shell in &mut shells {
        assert!(shell.wait().unwrap().success());
    }
}

#[test]
fn the_compare_and_set_loop_of_the_tutorial_loses_no_increment_on_one_node() {
    let server = Server::start(&[]);
    assert_eq!(server.request("PUT", "/data/counter", b"0").status, 200);
    let url = server.url("/data/counter");
    run_shells(&[url.clone(), url.clone(), url], 10);
    assert_eq!(server.get("/data/counter").text(), "30\n");
}

#[test]
fn the_compare_and_set_loop_loses_no_increment_across_a_cluster() {
    let members: Vec<Member> = chain(3, "writes-cluster", &["--lock-timeout=2"]);
    let coordinator = members[0].writes()["coordinator"].as_str().unwrap().to_string();
    // A write to a node that is not the coordinator is forwarded, and visible everywhere.
    let other = members.iter().find(|m| m.address() != coordinator).unwrap();
    let written = other.server().request("PUT", "/data/counter", b"0");
    assert_eq!(written.status, 200, "{}", written.text());
    let sequence = written.json()["sequence"].clone();
    wait_for("the write on every node", || {
        members.iter().all(|m| m.server().get("/version").json()["sequence"] == sequence)
    });
    // Three shells, one per node, each incrementing through its own node.
    let urls: Vec<String> = members.iter().map(|m| m.server().url("/data/counter")).collect();
    run_shells(&urls, 8);
    wait_for("every node to hold 24", || members.iter().all(|m| m.server().get("/data/counter").text() == "24\n"));
    // Preconditions hold on the coordinator, whichever node the write reaches.
    let refused = other.server().request_with("PUT", "/data/counter", &[("If-None-Match", "*")], b"0");
    assert_eq!(refused.status, 412, "{}", refused.text());
    // A burst of writes through one node all reach the coordinator: none is refused for want of
    // room on the way.
    assert_eq!(other.server().request("PUT", "/data/burst", b"{}").status, 200);
    let addr = other.server().addr;
    let writers: Vec<_> = (0..100)
        .map(|i| {
            std::thread::spawn(move || {
                support::try_request(addr, "PUT", &format!("/data/burst/k{i}"), i.to_string().as_bytes())
                    .unwrap()
                    .status
            })
        })
        .collect();
    let statuses: Vec<u16> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(members[0].server().get("/data/burst?keys").json().as_array().unwrap().len(), 100);
}
