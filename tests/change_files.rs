//! Change files, as an operator sees them: a commit into a large store writes a file of about
//! the change, a restart loads the chain, damage ends the chain where it is, the writer writes a
//! full snapshot off the commit's path once a chain is long and at a clean stop.

mod support;

use support::{Server, TempDir, wait_for};

/// A store of about `bytes` of JSON, as a `PUT /data` body.
fn store_of(bytes: usize) -> String {
    let entries: Vec<String> = (0..bytes / 110).map(|i| format!("\"k{i}\":\"{}\"", "x".repeat(100))).collect();
    format!("{{{}}}", entries.join(","))
}

fn is_change_file(dir: &TempDir, name: &str) -> bool {
    lighthouse::core::change_file::is_change_file(&std::fs::read(dir.path().join(name)).unwrap())
}

fn put(server: &Server, path: &str, body: &str) -> serde_json::Value {
    let response = server.request("PUT", path, body.as_bytes());
    assert_eq!(response.status, 200, "PUT {path}: {}", response.text());
    server.get("/version").json()
}

/// A 1 MB store and `commits` one-key commits into it; returns the version after each.
fn large_store_with_commits(server: &Server, commits: u64) -> Vec<serde_json::Value> {
    put(server, "/data", &store_of(1 << 20));
    (1..=commits).map(|n| put(server, "/data/counter", &n.to_string())).collect()
}

#[test]
fn a_commit_into_a_large_store_writes_a_file_of_about_the_change_and_a_restart_loads_the_chain() {
    let dir = TempDir::new("change-files");
    let server = Server::start(&[&dir.flag()]);
    let versions = large_store_with_commits(&server, 5);
    dir.wait_named();
    let names = dir.snapshots();
    let changes: Vec<&String> = names.iter().filter(|n| is_change_file(&dir, n)).collect();
    assert!(changes.len() >= 5, "every one-key commit is a change file: {names:?}");
    for name in &changes {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(size < 4096, "{name}: a one-key change into a 1 MB store wrote {size} bytes");
    }
    server.kill9();
    let restarted = Server::start(&[&dir.flag()]);
    assert_eq!(restarted.get("/data/counter").text(), "5\n");
    assert_eq!(restarted.get("/version").json(), versions[4], "the version is the one committed last");
    assert_eq!(restarted.get("/data/k0").json(), serde_json::json!("x".repeat(100)));
    assert!(restarted.log().iter().any(|l| l.contains("after 5 change file(s)")), "{:?}", restarted.log());
}

#[test]
fn a_damaged_change_file_mid_chain_ends_the_chain_there_and_new_sequences_go_above_it() {
    let dir = TempDir::new("change-damaged");
    let server = Server::start(&[&dir.flag()]);
    let versions = large_store_with_commits(&server, 4);
    dir.wait_named();
    server.kill9();
    let names = dir.snapshots();
    let changes: Vec<&String> = names.iter().filter(|n| is_change_file(&dir, n)).collect();
    assert_eq!(changes.len(), 4, "{names:?}");
    // The second change (counter 2) has a flipped bit: counter 1 loads.
    let damaged = dir.path().join(changes[1]);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let at = bytes.windows(9).position(|w| w == b"/counter\"").unwrap();
    bytes[at + 1] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();

    let restarted = Server::start(&[&dir.flag()]);
    assert_eq!(restarted.get("/data/counter").text(), "1\n");
    assert_eq!(restarted.get("/version").json(), versions[0]);
    let log = restarted.log().join("\n");
    assert!(log.contains(&format!("skipping snapshot {}: file checksum mismatch", changes[1])), "{log}");
    let metrics = restarted.get("/metrics").text();
    assert!(metrics.contains("lighthouse_snapshots_skipped 3"), "the damaged file and the two after it:\n{metrics}");
    let next = put(&restarted, "/data/counter", "10");
    let highest = versions[3]["sequence"].as_u64().unwrap();
    assert!(next["sequence"].as_u64().unwrap() > highest, "{next} reuses a sequence up to {highest}");
    assert!(dir.path().join(changes[1]).exists(), "a damaged file is kept for the operator");
}

#[test]
fn the_writer_writes_a_full_snapshot_once_the_changes_reach_the_store_size_off_the_commit_path() {
    let dir = TempDir::new("change-compact");
    let server = Server::start(&[&dir.flag()]);
    put(&server, "/data", &store_of(100_000));
    // Each commit replaces 10 KB of a 100 KB store: after about ten, the changes add up to it.
    for n in 0..30 {
        put(&server, "/data/k0", &format!("\"{n}{}\"", "v".repeat(10_000)));
    }
    // Every commit was answered; the full snapshots of the compaction come after change files.
    // Retention may remove an older chain between the listing and the reading: a file gone is
    // left out.
    let kinds = || -> Vec<bool> {
        let read = |name: &String| std::fs::read(dir.path().join(name)).ok();
        dir.snapshots()
            .iter()
            .filter_map(read)
            .map(|bytes| lighthouse::core::change_file::is_change_file(&bytes))
            .collect()
    };
    wait_for("a full snapshot after a chain", || kinds().windows(2).any(|w| w[0] && !w[1]));
    let kinds = kinds();
    let changes = kinds.iter().filter(|&&change| change).count();
    assert!(changes * 4 > kinds.len() * 3, "most commits are changes, not full snapshots: {kinds:?}");
    assert!(changes < kinds.len(), "some files are full: {kinds:?}");
}

#[test]
fn a_clean_stop_leaves_a_full_snapshot_newest_and_the_store_loads_from_it() {
    let dir = TempDir::new("change-stop");
    let server = Server::start(&[&dir.flag()]);
    let versions = large_store_with_commits(&server, 3);
    dir.wait_named();
    let before = dir.snapshots();
    assert!(is_change_file(&dir, before.last().unwrap()), "the newest file is a change before the stop");
    assert!(server.terminate().success());
    let after = dir.snapshots();
    assert!(!is_change_file(&dir, after.last().unwrap()), "the newest file is full after a clean stop: {after:?}");
    let restarted = Server::start(&[&dir.flag()]);
    assert_eq!(restarted.get("/version").json(), versions[2]);
    assert_eq!(restarted.get("/data/counter").text(), "3\n");
    assert!(!restarted.log().iter().any(|l| l.contains("change file(s)")), "one file was read");
}

#[test]
fn a_change_file_cut_short_loads_the_version_before_and_writes_wait_for_the_operator() {
    let dir = TempDir::new("change-cut");
    let server = Server::start(&[&dir.flag()]);
    let versions = large_store_with_commits(&server, 2);
    dir.wait_named();
    server.kill9();
    let newest = dir.path().join(dir.snapshots().last().unwrap());
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..40]).unwrap();

    let restarted = Server::start(&[&dir.flag()]);
    assert_eq!(restarted.get("/version").json(), versions[0], "the chain ends before the cut file");
    let refused = restarted.request("PUT", "/data/counter", b"3");
    assert_eq!(refused.status, 503, "the cut file shows no sequence: {}", refused.text());
    assert!(refused.error().contains("--accept-lost-versions"), "{}", refused.text());
    drop(restarted);
    let accepted = Server::start(&[&dir.flag(), "--accept-lost-versions"]);
    assert_eq!(accepted.get("/data/counter").text(), "1\n");
    put(&accepted, "/data/counter", "3");
}

#[test]
fn change_files_whose_full_snapshot_is_gone_load_nothing_and_the_start_is_refused() {
    let dir = TempDir::new("change-orphans");
    let server = Server::start(&[&dir.flag()]);
    large_store_with_commits(&server, 2);
    dir.wait_named();
    server.kill9();
    let names = dir.snapshots();
    assert!(!is_change_file(&dir, &names[0]) && names.len() == 3, "{names:?}");
    std::fs::remove_file(dir.path().join(&names[0])).unwrap();
    let output = std::process::Command::new(support::BINARY)
        .args([&dir.flag(), "--bind=127.0.0.1:0"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1), "nothing loads: it refuses to start");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("which no older file holds"), "{log}");
    assert!(log.contains("--start-empty"), "{log}");
}
