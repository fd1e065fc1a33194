//! The write path over real HTTP: the lock, staging under /update, commit and abort, the lease,
//! and the seed's walkthrough run with curl exactly as README's first session shows it.

mod support;

use std::time::{Duration, Instant};

use support::{Client, SEED_CONFIG, Server, TempDir, curl, transact, wait_for};

#[test]
fn the_readme_walkthrough_runs_with_curl_byte_for_byte() {
    let dir = TempDir::new("walkthrough");
    let server = Server::start(&[&dir.flag()]);
    let seed_file = dir.path().join("seed.json");
    std::fs::write(&seed_file, SEED_CONFIG).unwrap();
    let url = |path: &str| server.url(path);
    assert_eq!(curl(&["-X", "PUT", "-d", "deploy", &url("/lock")]), (0, "deploy\n".into()));
    assert_eq!(
        curl(&["-X", "PUT", "--data-binary", &format!("@{}", seed_file.display()), &url("/update/deploy")]),
        (0, String::new())
    );
    let checksum = lighthouse::core::version::Checksum::of(
        &lighthouse::core::value::Value::parse(SEED_CONFIG.as_bytes()).unwrap(),
    );
    assert_eq!(
        curl(&["-X", "PUT", &url("/lock/deploy")]),
        (0, format!("{{\n  \"checksum\": \"{checksum}\",\n  \"sequence\": 1\n}}\n"))
    );
    assert_eq!(curl(&[&url("/data/file")]), (0, "\"/var/log/apache2/access.log\"\n".into()));
    assert_eq!(curl(&[&url("/data/size")]), (0, "1024\n".into()));
    assert_eq!(curl(&[&url("/data/providers/beta")]), (0, "[\n  \"192.168.2.1\",\n  \"192.168.2.2\"\n]\n".into()));
    assert_eq!(curl(&[&url("/data/providers/beta/0")]), (0, "\"192.168.2.1\"\n".into()));
    assert_eq!(curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", &url("/lock")]), (0, "404".into()));
}

#[test]
fn status_codes_before_a_lock_with_it_with_the_wrong_name_and_after() {
    let server = Server::start(&[]);
    let status = |method: &str, path: &str, body: &str| server.request(method, path, body.as_bytes()).status;
    // Before any lock.
    assert_eq!(status("GET", "/lock", ""), 404);
    assert_eq!(status("PUT", "/lock", ""), 404, "commit without a lock");
    assert_eq!(status("PUT", "/lock/a", ""), 404);
    assert_eq!(status("DELETE", "/lock", ""), 404);
    assert_eq!(status("DELETE", "/lock/a", ""), 404);
    assert_eq!(status("PUT", "/update/a/x", "1"), 403);
    assert_eq!(status("GET", "/update/a", ""), 403);
    assert_eq!(status("GET", "/update", ""), 404);
    assert_eq!(status("PUT", "/update/", "1"), 404);
    assert_eq!(status("PUT", "/lock", "no spaces allowed"), 400);
    assert_eq!(status("PUT", "/lock", &"x".repeat(129)), 400);
    // With the lock, by its holder and by another name.
    assert_eq!(status("PUT", "/lock", "a"), 200);
    assert_eq!(server.get("/lock").text(), "a\n");
    assert_eq!(status("PUT", "/lock", "b"), 403);
    assert_eq!(status("PUT", "/update/b/x", "1"), 403);
    assert_eq!(status("DELETE", "/update/b", ""), 403);
    assert_eq!(status("PUT", "/lock/b", ""), 404);
    assert_eq!(status("DELETE", "/lock/b", ""), 404);
    assert_eq!(status("PUT", "/update/a/x", "{\"y\": 1}"), 201);
    assert_eq!(status("PUT", "/update/a/x/y", "not json"), 400);
    assert_eq!(status("PUT", "/update/a/nope/y", "1"), 404);
    assert_eq!(status("GET", "/update/a/x/y", ""), 200);
    assert_eq!(status("DELETE", "/update/a/x/z", ""), 404);
    // A one-request write waits for the lock (2 s), then says who holds it.
    assert_eq!(status("PUT", "/data/x", "1"), 409);
    // After commit.
    assert_eq!(status("PUT", "/lock/a", ""), 200);
    assert_eq!(status("GET", "/lock", ""), 404);
    assert_eq!(status("PUT", "/update/a/x", "1"), 403);
    assert_eq!(server.get("/data/x/y").text(), "1\n");
    // After abort.
    assert_eq!(status("PUT", "/lock", "b"), 200);
    assert_eq!(status("PUT", "/update/b/x", "2"), 201);
    assert_eq!(status("DELETE", "/lock/b", ""), 200);
    assert_eq!(status("GET", "/lock", ""), 404);
    assert_eq!(server.get("/data/x/y").text(), "1\n", "the aborted change did not land");
    assert_eq!(server.get("/version").json()["sequence"], 1);
}

#[test]
fn a_commit_or_an_abort_that_names_no_lock_answers_404_and_changes_nothing() {
    let server = Server::start(&[]);
    assert_eq!(transact(&server, "first", "/x", "1").status, 200);
    assert_eq!(server.request("PUT", "/lock", b"ops").status, 200);
    assert_eq!(server.request("PUT", "/update/ops/x", b"2").status, 201);
    // What the original Java client sends when its key is empty.
    for (method, path) in [("PUT", "/lock"), ("PUT", "/lock/"), ("DELETE", "/lock"), ("DELETE", "/lock/")] {
        let refused = server.request(method, path, b"");
        assert_eq!(refused.status, 404, "{method} {path}");
        assert!(refused.error().contains("name the lock"), "{method} {path}: {}", refused.error());
    }
    assert_eq!(server.get("/lock").text(), "ops\n", "the lock is still held");
    assert_eq!(server.get("/update/ops/x").text(), "2\n", "the staged change is still there");
    assert_eq!(server.get("/data/x").text(), "1\n", "nothing was committed");
    assert_eq!(server.get("/version").json()["sequence"], 1);
    assert_eq!(server.request("PUT", "/lock/ops", b"").status, 200, "naming it commits");
    assert_eq!(server.get("/data/x").text(), "2\n");
}

/// The loop used to serve ready connections before expiring the lock, so a request handled just
/// after the deadline renewed a lapsed lease. Here the server is stopped (SIGSTOP) while the
/// request arrives, just before the deadline, and resumed after it: the request and the lapse are
/// then due in the same turn of the loop, the request first.
#[test]
fn a_request_handled_after_the_deadline_does_not_renew_a_lapsed_lease() {
    let server = Server::start(&["--lock-timeout=1"]);
    assert_eq!(server.request("PUT", "/lock", b"late").status, 200);
    assert_eq!(server.request("PUT", "/update/late/x", b"1").status, 201);
    let renewed = Instant::now();
    let mut client = Client::connect(server.addr);
    support::signal(&server.child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(800).saturating_sub(renewed.elapsed()));
    client.send_request("PUT", "/update/late/x", &[], b"2");
    std::thread::sleep(Duration::from_millis(1_300).saturating_sub(renewed.elapsed()));
    support::signal(&server.child, libc::SIGCONT);
    let late = client.read_response();
    assert_eq!(late.status, 403, "a request handled 1.3 s into a 1 s lease: {} {}", late.status, late.text());
    assert_eq!(server.get("/lock").status, 404, "the lease lapsed");
    assert_eq!(server.get("/data").text(), "{}\n");
    wait_for("the lapse in the log", || server.log().iter().any(|l| l.contains("lock late lapsed")));
}

#[test]
fn every_lock_event_leaves_an_audit_line_with_the_client() {
    let server = Server::start(&[]);
    assert_eq!(transact(&server, "ops", "/x", "1").status, 200);
    server.request("PUT", "/lock", b"ops");
    server.request("PUT", "/lock", b"ops");
    assert_eq!(server.request("DELETE", "/lock/ops", b"").status, 200);
    wait_for("the abort in the log", || server.log().iter().any(|l| l.contains("aborted")));
    let log = server.log();
    for needle in [
        "lock ops acquired at sequence 0 from 127.0.0.1:",
        "lock ops committed sequence 1 (",
        "1 change) from 127.0.0.1:",
        "lock ops renewed by a new client 127.0.0.1:",
        "lock ops aborted, 0 changes dropped from 127.0.0.1:",
    ] {
        assert!(log.iter().any(|l| l.contains(needle) && l.contains(" INFO ")), "no line with {needle:?}: {log:#?}");
    }
}

#[test]
fn a_retried_commit_learns_which_version_its_first_attempt_made() {
    let server = Server::start(&[]);
    let first = transact(&server, "ops", "/x", "1");
    assert_eq!(first.status, 200);
    let retried = server.request("PUT", "/lock/ops", b"");
    assert_eq!(retried.status, 404);
    let message = retried.error();
    let checksum = first.json()["checksum"].as_str().unwrap().to_string();
    assert!(message.contains("ops committed sequence 1") && message.contains(&checksum), "{message}");
    server.request("PUT", "/lock", b"ops");
    let wrong = server.request("DELETE", "/lock/other", b"");
    assert_eq!(wrong.status, 404);
    assert!(wrong.error().contains("held by ops, not other"), "{}", wrong.error());
}

#[test]
fn lock_details_as_json() {
    let server = Server::start(&[]);
    server.request("PUT", "/lock?ttl=120", b"ops");
    server.request("PUT", "/update/ops/a", b"1");
    let details = server.request_with("GET", "/lock", &[("Accept", "application/json")], b"").json();
    assert_eq!(details["name"], "ops");
    assert_eq!(details["lease"], 120);
    assert_eq!(details["changes"], 1);
    assert_eq!(details["base"]["sequence"], 0);
    assert_eq!(details["committing"], false);
    let (since, expires) = (details["since"].as_u64().unwrap(), details["expires"].as_u64().unwrap());
    assert!((119_000..=121_000).contains(&(expires - since)), "expires {expires} since {since}");
}

#[test]
fn the_lease_lapses_on_the_timer_and_drops_staged_changes() {
    let server = Server::start(&["--lock-timeout=1"]);
    let started = Instant::now();
    assert_eq!(server.request("PUT", "/lock", b"slow").status, 200);
    assert_eq!(server.request("PUT", "/update/slow/x", b"1").status, 201);
    wait_for("the lease to lapse", || server.get("/lock").status == 404);
    assert!(started.elapsed() >= Duration::from_millis(900), "lapsed after {:?}", started.elapsed());
    assert_eq!(server.request("PUT", "/update/slow/x", b"2").status, 403);
    assert_eq!(server.request("PUT", "/lock/slow", b"").status, 404);
    assert_eq!(server.get("/data").text(), "{}\n");
    assert!(server.log().iter().any(|l| l.contains("lock slow lapsed")));
}

#[test]
fn requests_of_the_holder_renew_the_lease() {
    let server = Server::start(&["--lock-timeout=1"]);
    server.request("PUT", "/lock", b"busy");
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2_500) {
        assert_eq!(server.get("/update/busy").status, 200, "held after {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(server.get("/lock").text(), "busy\n");
}

#[test]
fn a_commit_that_changes_nothing_writes_no_file() {
    let dir = TempDir::new("noop");
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(transact(&server, "a", "/x", "1").status, 200);
    dir.wait_named();
    assert_eq!(dir.snapshots().len(), 1);
    server.request("PUT", "/lock", b"a");
    server.request("PUT", "/update/a/x", b"1");
    let response = server.request("PUT", "/lock/a", b"");
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["sequence"], 1);
    dir.wait_named();
    assert_eq!(dir.snapshots().len(), 1, "no new file");
    assert_eq!(server.get("/version").json()["sequence"], 1);
}

#[test]
fn a_durable_commit_is_on_disk_when_it_is_answered() {
    let dir = TempDir::new("durable");
    let server = Server::start(&[&dir.flag()]);
    let response = transact(&server, "a", "/answer", "42");
    assert_eq!(response.status, 200);
    // The file is under its name, or still in the spare file it was written into (renamed a
    // moment after the answer: docs/operations.md, "Spare files").
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| lighthouse::core::snapshot::parse_file_name(n).is_some() || n.starts_with(".spare-"))
        .filter(|n| std::fs::metadata(dir.path().join(n)).is_ok_and(|m| m.len() > 0))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let bytes = std::fs::read(dir.path().join(&files[0])).unwrap();
    let snapshot = lighthouse::core::snapshot::decode(&bytes).expect("the file is a valid snapshot");
    assert_eq!(snapshot.sealed.copy.version.sequence, 1);
    assert_eq!(snapshot.sealed.copy.version.checksum.to_string(), response.json()["checksum"].as_str().unwrap());
    drop(server);
    let restarted = Server::start(&[&dir.flag()]);
    assert_eq!(restarted.get("/data/answer").text(), "42\n");
}

#[test]
fn a_newer_copy_during_a_transaction_makes_its_commit_409_and_the_lock_stays() {
    // Local writes: a copy from another node may land under a transaction.
    let server = Server::start(&["--writes=local"]);
    server.request("PUT", "/lock", b"a");
    server.request("PUT", "/update/a/mine", b"1");
    let root = lighthouse::core::value::Value::parse(br#"{"theirs": 1}"#).unwrap();
    let checksum = lighthouse::core::version::Checksum::of(&root);
    let body = format!(r#"{{"version": {{"sequence": 7, "checksum": "{checksum}"}}, "data": {{"theirs": 1}}}}"#);
    assert_eq!(server.request("PUT", "/copy", body.as_bytes()).status, 201);
    let commit = server.request("PUT", "/lock/a", b"");
    assert_eq!(commit.status, 409);
    assert!(commit.error().contains("abort and retry"));
    assert_eq!(server.get("/lock").text(), "a\n");
    assert_eq!(server.get("/data").json(), serde_json::json!({"theirs": 1}));
    assert_eq!(server.request("DELETE", "/lock/a", b"").status, 200);
}

#[test]
fn a_copy_with_a_wrong_checksum_is_refused_and_changes_nothing() {
    let server = Server::start(&[]);
    let body = format!(r#"{{"version": {{"sequence": 7, "checksum": "{}"}}, "data": {{"x": 1}}}}"#, "a".repeat(40));
    let response = server.request("PUT", "/copy", body.as_bytes());
    assert_eq!(response.status, 400);
    assert!(response.error().contains("checksum"));
    assert_eq!(server.get("/version").json()["sequence"], 0);
    assert_eq!(server.request("PUT", "/copy", b"[not a copy").status, 400);
}

#[test]
fn get_copy_gives_the_store_and_its_version() {
    let server = Server::start(&[]);
    transact(&server, "a", "/k", "\"v\"");
    let copy = server.get("/copy").json();
    assert_eq!(copy["data"], serde_json::json!({"k": "v"}));
    assert_eq!(copy["version"], server.get("/version").json());
}

#[test]
fn a_chunked_upload_with_100_continue_stages_a_value() {
    let server = Server::start(&[]);
    server.request("PUT", "/lock", b"up");
    let mut client = Client::connect(server.addr);
    client.send(b"PUT /update/up/big HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(client.read_response().status, 100);
    client.send(b"4\r\n[1, \r\n3\r\n2]\n\r\n0\r\n\r\n");
    assert_eq!(client.read_response().status, 201);
    assert_eq!(server.get("/update/up/big/1").text(), "2\n");
}

#[test]
fn curl_uploads_from_stdin_with_a_chunked_body() {
    let server = Server::start(&[]);
    server.request("PUT", "/lock", b"pipe");
    let mut child = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", "-", &server.url("/update/pipe/x")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"{\"from\": \"stdin\"}").unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "201");
    assert!(started.elapsed() < Duration::from_millis(900), "100-continue answered at once, not after curl's 1 s wait");
    assert_eq!(server.get("/update/pipe/x/from").text(), "\"stdin\"\n");
}

#[test]
fn a_large_body_over_one_mebibyte_goes_through_curl() {
    let server = Server::start(&[]);
    server.request("PUT", "/lock", b"big");
    let dir = TempDir::new("bigbody");
    let file = dir.path().join("big.json");
    let value = format!("\"{}\"", "x".repeat(3 * 1024 * 1024));
    std::fs::write(&file, &value).unwrap();
    let started = Instant::now();
    let (code, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PUT",
        "--data-binary",
        &format!("@{}", file.display()),
        &server.url("/update/big/blob"),
    ]);
    assert_eq!((code, out.as_str()), (0, "201"));
    assert!(started.elapsed() < Duration::from_millis(900), "no 1 s Expect wait: {:?}", started.elapsed());
    assert_eq!(server.request("PUT", "/lock/big", b"").status, 200);
    assert_eq!(server.get("/data/blob").body.len(), value.len() + 1);
}
