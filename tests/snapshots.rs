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
