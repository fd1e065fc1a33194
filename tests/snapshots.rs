//! Start-up from `--data.d`: the newest valid snapshot wins; damaged files are skipped.

mod support;

use std::fs;

use support::{Server, TempDir, write_snapshot};

const T0: u64 = 1_700_000_000_000_000;

#[test]
fn the_data_directory_is_created_when_missing() {
    let parent = TempDir::new("create");
    let dir = parent.path().join("a/b/data.d");
    let server = Server::start(&[&format!("--data.d={}", dir.display())]);
    assert!(dir.is_dir());
    assert_eq!(server.get("/data").text(), "{}\n");
}

#[test]
fn the_newest_snapshot_is_loaded() {
    let dir = TempDir::new("newest");
    write_snapshot(dir.path(), T0, 1, r#"{"v": 1}"#);
    write_snapshot(dir.path(), T0 + 1, 2, r#"{"v": 2}"#);
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/data/v").text(), "2\n");
    assert_eq!(server.get("/version").json()["sequence"], 2);
}

#[test]
fn a_truncated_newest_snapshot_is_skipped_for_the_one_before() {
    let dir = TempDir::new("truncated");
    write_snapshot(dir.path(), T0, 1, r#"{"v": 1}"#);
    let newest = write_snapshot(dir.path(), T0 + 1, 2, r#"{"v": 2}"#);
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/data/v").text(), "1\n");
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("skipping snapshot") && l.contains(newest.file_name().unwrap().to_str().unwrap()))
    );
}

#[test]
fn a_newest_snapshot_with_a_wrong_checksum_is_skipped() {
    let dir = TempDir::new("checksum");
    write_snapshot(dir.path(), T0, 1, r#"{"v": 1}"#);
    let newest = dir.path().join(lighthouse::core::snapshot::file_name(T0 + 1));
    let wrong = format!(
        r#"{{"cluster": [], "copy": {{"version": {{"sequence": 9, "checksum": "{}"}}, "data": {{"v": 9}}}}}}"#,
        "0".repeat(40)
    );
    fs::write(&newest, wrong).unwrap();
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/data/v").text(), "1\n");
    assert!(server.log().iter().any(|l| l.contains("checksum mismatch")));
}

#[test]
fn a_hand_written_snapshot_with_a_matching_checksum_loads() {
    let dir = TempDir::new("handmade");
    let data = r#"{"greeting":"hello"}"#;
    let checksum = lighthouse::core::version::Checksum::of_bytes(data.as_bytes());
    let text = format!(
        r#"{{"copy": {{"version": {{"sequence": 5, "checksum": "{checksum}"}}, "data": {data}}}, "cluster": []}}"#
    );
    fs::write(dir.path().join(lighthouse::core::snapshot::file_name(T0)), text).unwrap();
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/data/greeting").text(), "\"hello\"\n");
    assert_eq!(server.get("/version").json()["sequence"], 5);
}

#[test]
fn files_that_are_not_snapshots_are_ignored() {
    let dir = TempDir::new("ignored");
    write_snapshot(dir.path(), T0, 1, r#"{"v": 1}"#);
    fs::write(dir.path().join("README"), "not a snapshot").unwrap();
    fs::write(dir.path().join("99999999T999999.999999.json"), "{}").unwrap();
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/data/v").text(), "1\n");
}

/// Positions to damage in the sweep (`LIGHTHOUSE_DAMAGE_SAMPLES`, default 400; `all` for every
/// byte and bit).
fn damage_samples(len: usize) -> Vec<usize> {
    match std::env::var("LIGHTHOUSE_DAMAGE_SAMPLES").ok().as_deref() {
        Some("all") => (0..len).collect(),
        other => {
            let count: usize = other.and_then(|v| v.parse().ok()).unwrap_or(400).min(len);
            let mut rng = support::Rng::new(0xdead_beef);
            (0..count).map(|_| rng.below(len as u64) as usize).collect()
        }
    }
}

#[test]
fn a_snapshot_cut_short_or_with_a_flipped_bit_is_never_loaded() {
    let dir = TempDir::new("damage");
    let server = Server::start(&[&dir.flag()]);
    let store = format!(
        r#"{{"services": {{{}}}, "note": "ünïcödé and \"quotes\""}}"#,
        (0..200)
            .map(|i| format!(r#""svc-{i}": {{"host": "10.0.{i}.1", "port": {}}}"#, 8000 + i))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(support::transact(&server, "w", "", &store).status, 200);
    assert_eq!(support::transact(&server, "w", "/note", "\"second\"").status, 200);
    // The second commit is a change file; the clean stop writes a full snapshot of it, newest.
    assert!(server.terminate().success());
    let files = dir.snapshots();
    let newest = dir.path().join(files.last().unwrap());
    let bytes = fs::read(&newest).unwrap();
    assert!(lighthouse::core::snapshot::decode(&bytes).is_ok(), "the file as written is valid");
    let positions = damage_samples(bytes.len());
    for &cut in &positions {
        assert!(
            lighthouse::core::snapshot::decode(&bytes[..cut]).is_err(),
            "cut at byte {cut} of {} was accepted",
            bytes.len()
        );
    }
    let mut rng = support::Rng::new(0x5eed);
    for &byte in &positions {
        let mut damaged = bytes.clone();
        let bit = rng.below(8);
        damaged[byte] ^= 1 << bit;
        assert!(lighthouse::core::snapshot::decode(&damaged).is_err(), "bit {bit} of byte {byte} flipped was accepted");
    }
    // End to end: with the newest file damaged, the server starts from the one before.
    for (i, &byte) in positions.iter().take(3).enumerate() {
        let mut damaged = bytes.clone();
        if i == 0 {
            damaged.truncate(byte);
        } else {
            damaged[byte] ^= 0x10;
        }
        fs::write(&newest, &damaged).unwrap();
        let restarted = Server::start(&[&dir.flag()]);
        // The files before it: the first full snapshot and the change file of sequence 2.
        assert_eq!(restarted.get("/version").json()["sequence"], 2, "damage at byte {byte}");
        let log = restarted.log().join("\n");
        assert!(log.contains("skipping snapshot") && log.contains("after 1 change file(s)"), "{log}");
        drop(restarted);
        // The server may have written nothing; put the sweep's file back for the next case.
        for extra in dir.snapshots().into_iter().filter(|n| n > files.last().unwrap()) {
            fs::remove_file(dir.path().join(extra)).unwrap();
        }
    }
}

/// Writes a file with a snapshot's name and bytes that are no snapshot.
fn damaged_snapshot(dir: &TempDir, micros: u64) -> String {
    let name = lighthouse::core::snapshot::file_name(micros);
    fs::write(dir.path().join(&name), b"{\"copy\": {\"version\": 3").unwrap();
    name
}

#[test]
fn a_directory_of_damaged_snapshots_is_refused_without_start_empty() {
    let dir = TempDir::new("all-damaged");
    let first = damaged_snapshot(&dir, T0);
    let second = damaged_snapshot(&dir, T0 + 1);
    let output = std::process::Command::new(support::BINARY)
        .args([&dir.flag(), "--bind=127.0.0.1:0"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1), "it refuses to start");
    let log = String::from_utf8_lossy(&output.stderr);
    let error = log.lines().find(|l| l.contains("ERROR")).unwrap_or_else(|| panic!("an error line in {log}"));
    for needle in [first.as_str(), second.as_str(), "--start-empty", "damaged"] {
        assert!(error.contains(needle), "the error names {needle}: {error}");
    }
    assert!(!log.contains("listening on"), "it never served: {log}");
    assert_eq!(dir.snapshots(), [first.clone(), second.clone()], "the damaged files are kept");

    let server = Server::start(&[&dir.flag(), "--start-empty"]);
    assert_eq!(server.get("/version").json()["sequence"], 0);
    assert!(server.log().iter().any(|l| l.contains("WARN") && l.contains("--start-empty")));
    assert_eq!(support::transact(&server, "w", "/x", "1").status, 200);
    drop(server);
    let mut left = dir.snapshots();
    left.retain(|n| *n == first || *n == second);
    assert_eq!(left.len(), 2, "the damaged files are still there after a commit");
}

#[test]
fn a_node_with_damaged_snapshots_and_peers_waits_for_their_store_past_the_bootstrap_limit() {
    let peer = Server::start(&[]);
    let dir = TempDir::new("damaged-with-peers");
    damaged_snapshot(&dir, T0);
    // The seed never answers (bound, so that no other test's node can take its port): the node
    // must stay inactive past --bootstrap-limit.
    let seed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let seed_address = seed.local_addr().unwrap();
    let node = Server::start(&[&dir.flag(), &format!("--seeds={seed_address}"), "--bootstrap-limit=1"]);
    assert!(node.log().iter().any(|l| l.contains("damaged") && l.contains("serves nothing until")));
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(node.get("/data").status, 503, "still inactive after the bootstrap limit");
    // A peer with a store shows up: the node takes it and serves.
    assert_eq!(support::transact(&peer, "w", "/from-peer", "true").status, 200);
    let body = format!(r#"[{{"address": "{}"}}]"#, peer.addr);
    assert_eq!(node.request("PUT", "/state", body.as_bytes()).status, 200);
    support::wait_for("the node to catch up with the peer", || node.get("/data/from-peer").status == 200);
    assert_eq!(node.get("/version").json(), peer.get("/version").json());
}

#[test]
fn snapshots_and_a_new_data_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = TempDir::new("private");
    let dir = parent.path().join("data.d");
    // A permissive umask (inherited by the server) must not widen them.
    // SAFETY: umask(2) only sets this process's file-creation mask.
    unsafe { libc::umask(0) };
    let server = Server::start(&[&format!("--data.d={}", dir.display())]);
    assert_eq!(support::transact(&server, "w", "/secret", "\"s3cret\"").status, 200);
    let mode = |path: &std::path::Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for entry in fs::read_dir(&dir).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600);
    }
}

#[test]
fn at_most_keep_snapshots_files_stay_and_the_newest_loads() {
    let dir = TempDir::new("keep");
    let server = Server::start(&[&dir.flag(), "--keep-snapshots=3"]);
    for i in 0..8 {
        assert_eq!(support::transact(&server, "w", "/i", &i.to_string()).status, 200);
    }
    // One chain, a full snapshot and seven change files, is kept whole past --keep-snapshots.
    dir.wait_named();
    assert_eq!(dir.snapshots().len(), 8, "{:?}", dir.snapshots());
    // The clean stop writes a full snapshot: a newer chain, and the older one goes whole. The
    // writer removes old files just after it reports a write, before it exits.
    assert!(server.terminate().success());
    assert_eq!(dir.snapshots().len(), 1, "{:?}", dir.snapshots());
    let restarted = Server::start(&[&dir.flag(), "--keep-snapshots=3"]);
    assert_eq!(restarted.get("/data/i").text(), "7\n");
    assert_eq!(restarted.get("/version").json()["sequence"], 8);
}
