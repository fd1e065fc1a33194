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
    let newest = dir.path().join(lighthouse::snapshot::file_name(T0 + 1));
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
    let checksum = lighthouse::version::Checksum::of_bytes(data.as_bytes());
    let text = format!(
        r#"{{"copy": {{"version": {{"sequence": 5, "checksum": "{checksum}"}}, "data": {data}}}, "cluster": []}}"#
    );
    fs::write(dir.path().join(lighthouse::snapshot::file_name(T0)), text).unwrap();
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
            let mut rng = support::Rng(0xdead_beef);
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
    drop(server);
    let files = dir.snapshots();
    let newest = dir.path().join(files.last().unwrap());
    let bytes = fs::read(&newest).unwrap();
    assert!(lighthouse::snapshot::decode(&bytes).is_ok(), "the file as written is valid");
    let positions = damage_samples(bytes.len());
    for &cut in &positions {
        assert!(
            lighthouse::snapshot::decode(&bytes[..cut]).is_err(),
            "cut at byte {cut} of {} was accepted",
            bytes.len()
        );
    }
    let mut rng = support::Rng(0x5eed);
    for &byte in &positions {
        let mut damaged = bytes.clone();
        let bit = rng.below(8);
        damaged[byte] ^= 1 << bit;
        assert!(lighthouse::snapshot::decode(&damaged).is_err(), "bit {bit} of byte {byte} flipped was accepted");
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
        assert_eq!(restarted.get("/version").json()["sequence"], 1, "damage at byte {byte}: the file before is loaded");
        drop(restarted);
        // The server may have written nothing; put the sweep's file back for the next case.
        for extra in dir.snapshots().into_iter().filter(|n| n > files.last().unwrap()) {
            fs::remove_file(dir.path().join(extra)).unwrap();
        }
    }
}
