//! Backup, restore and recovering from a lost majority, with real server processes and the curl
//! commands of `docs/operations.md`: `GET /copy` is a backup; a client's `PUT /copy` of a newer
//! copy is a restore, committed by the coordinator like any write, from whichever node it reaches;
//! a new cluster starts from a backup file; `--force-new-cluster` makes a surviving node the only
//! voter of its cluster when a majority is lost for good.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cluster::{Member, chain, wait_settled};
use support::{BINARY, Server, TempDir, curl, wait_for};

/// `curl -s ADDRESS/copy > FILE`: a backup.
fn backup(server: &Server, file: &Path) -> serde_json::Value {
    let (code, body) = curl(&[&server.url("/copy")]);
    assert_eq!(code, 0, "curl GET /copy");
    std::fs::write(file, &body).expect("the backup is written");
    let copy: serde_json::Value = serde_json::from_str(&body).expect("GET /copy gives JSON");
    copy["version"].clone()
}

/// `curl -X PUT --data-binary @FILE ADDRESS/copy`: a restore; gives the status and the body.
fn restore(address: &str, file: &Path, token: Option<&str>) -> (u16, String) {
    let data = format!("@{}", file.display());
    let url = format!("http://{address}/copy");
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec!["-X", "PUT", "--data-binary", &data, "-w", "\n%{http_code}", &url];
    if let Some(auth) = &auth {
        args.extend(["-H", auth.as_str()]);
    }
    let (code, out) = curl(&args);
    assert_eq!(code, 0, "curl PUT /copy");
    let (body, status) = out.rsplit_once('\n').expect("curl wrote the status last");
    (status.parse().expect("a status"), body.to_string())
}

/// A node of `members` that is not the coordinator.
fn follower(members: &[Member]) -> &Member {
    let coordinator = members[0].writes()["coordinator"].as_str().expect("a coordinator").to_string();
    members.iter().find(|m| m.address() != coordinator).expect("three members, one coordinator")
}

/// Writes `count` versions to a node by itself, the last one `last`.
fn write_versions(server: &Server, count: u64, last: &str) {
    for i in 1..count {
        assert_eq!(server.request("PUT", "/data", format!(r#"{{"step": {i}}}"#).as_bytes()).status, 200);
    }
    assert_eq!(server.request("PUT", "/data", last.as_bytes()).status, 200);
}

fn wait_everywhere(members: &[Member], what: &str, expected: &serde_json::Value) {
    wait_for(what, || members.iter().all(|m| m.server().get("/data").json() == *expected));
}

fn file(dir: &TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn a_clients_put_copy_to_a_follower_restores_a_newer_backup_on_every_node() {
    let members = chain(3, "restore", &[]);
    let follower = follower(&members);
    assert_eq!(follower.server().request("PUT", "/data/before", b"1").status, 200);
    let sequence = follower.version()["sequence"].as_u64().unwrap();
    let dir = TempDir::new("restore-files");

    // A backup of a node with local writes, newer than the cluster's store.
    let local = Server::start(&["--writes=local"]);
    write_versions(&local, sequence + 2, r#"{"from": "local"}"#);
    let older = backup(&local, &file(&dir, "older.json"));
    assert_eq!(local.request("PUT", "/data/more", b"true").status, 200);
    let newer = backup(&local, &file(&dir, "backup.json"));
    let (status, body) = restore(&follower.address(), &file(&dir, "backup.json"), None);
    assert_eq!(status, 201, "a restore through a follower: {body}");
    let expected = serde_json::json!({"from": "local", "more": true});
    wait_everywhere(&members, "the restored data on every node", &expected);
    for member in &members {
        assert_eq!(member.version(), newer, "the backup's version, on {}", member.address());
        assert_eq!(member.writes()["voters"].as_array().unwrap().len(), 3, "the voters are the cluster's");
    }

    // An older (or equal) copy is ignored, with 201 as the contract says.
    for ignored in ["older.json", "backup.json"] {
        let (status, body) = restore(&follower.address(), &file(&dir, ignored), None);
        assert_eq!(status, 201, "{ignored}: {body}");
    }
    assert!(older["sequence"].as_u64() < newer["sequence"].as_u64());
    for member in &members {
        assert_eq!(member.server().get("/data").json(), expected, "nothing changed on {}", member.address());
        assert_eq!(member.version(), newer);
    }

    // A later write works, from any node.
    assert_eq!(members[2].server().request("PUT", "/data/after", b"2").status, 200);
    let after = serde_json::json!({"from": "local", "more": true, "after": 2});
    wait_everywhere(&members, "the write after the restore on every node", &after);

    // A backup of another cluster (coordinated writes) restores its data, never its voters.
    let other = Server::start(&[]);
    let at = members[0].version()["sequence"].as_u64().unwrap();
    write_versions(&other, at + 3, r#"{"from": "another cluster"}"#);
    let theirs = backup(&other, &file(&dir, "other.json"));
    let (status, body) = restore(&members[0].address(), &file(&dir, "other.json"), None);
    assert_eq!(status, 201, "{body}");
    wait_everywhere(&members, "the other cluster's data", &serde_json::json!({"from": "another cluster"}));
    for member in &members {
        assert_eq!(member.version()["sequence"], theirs["sequence"]);
        assert_eq!(member.writes()["voters"].as_array().unwrap().len(), 3);
    }
    assert_eq!(follower.server().request("PUT", "/data/last", b"3").status, 200);
}

#[test]
fn with_a_write_token_a_restore_needs_it() {
    let dir = TempDir::new("restore-token");
    let token = file(&dir, "token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let token_flag = format!("--token-file={}", token.display());
    let node = Server::start(&[&token_flag]);
    let source = Server::start(&["--writes=local"]);
    write_versions(&source, 3, r#"{"restored": true}"#);
    backup(&source, &file(&dir, "backup.json"));
    let address = node.addr.to_string();
    assert_eq!(restore(&address, &file(&dir, "backup.json"), None).0, 401, "no token");
    assert_eq!(restore(&address, &file(&dir, "backup.json"), Some("wrong")).0, 401, "a wrong token");
    assert_eq!(node.get("/data").json(), serde_json::json!({}), "nothing changed");
    assert_eq!(restore(&address, &file(&dir, "backup.json"), Some("s3cret")).0, 201);
    assert_eq!(node.get("/data").json(), serde_json::json!({"restored": true}));
}

#[test]
fn a_new_cluster_starts_from_a_backup_file() {
    let dir = TempDir::new("new-cluster-files");
    // The old cluster, and its backup.
    let old = Server::start(&[]);
    write_versions(&old, 4, r#"{"service": {"port": 8080}}"#);
    let version = backup(&old, &file(&dir, "backup.json"));
    drop(old);

    // A fresh node: an empty data directory, no seeds. It founds a new cluster and takes the copy.
    let mut members: Vec<Member> = (0..3).map(|i| Member::new(&format!("from-backup{i}"))).collect();
    members[0].start(&[]);
    wait_for("the first node to serve", || members[0].server().get("/ready").status == 200);
    let (status, body) = restore(&members[0].address(), &file(&dir, "backup.json"), None);
    assert_eq!(status, 201, "{body}");
    // Then the others join it with --seeds.
    let seeds = format!("--seeds={}", members[0].address());
    members[1].start(&[&seeds]);
    members[2].start(&[&seeds]);
    wait_settled(&members);
    for member in &members {
        assert_eq!(member.server().get("/data").json(), serde_json::json!({"service": {"port": 8080}}));
        // Adding the voters committed versions of their own, of the same data.
        let served = member.version();
        assert_eq!(served["checksum"], version["checksum"]);
        assert!(served["sequence"].as_u64() >= version["sequence"].as_u64());
    }
    assert_eq!(members[2].server().request("PUT", "/data/service/port", b"9090").status, 200);
    wait_everywhere(&members, "a write in the new cluster", &serde_json::json!({"service": {"port": 9090}}));
}

#[test]
fn force_new_cluster_makes_a_survivor_the_only_voter_and_wiped_members_join_again() {
    let mut members = chain(3, "force", &[]);
    assert_eq!(members[0].server().request("PUT", "/data/kept", b"1").status, 200);
    wait_everywhere(&members, "the write on every node", &serde_json::json!({"kept": 1}));
    // A majority is lost for good: two nodes killed and their directories gone.
    for lost in [0, 2] {
        members[lost].kill9();
        std::fs::remove_dir_all(members[lost].dir.path()).unwrap();
        std::fs::create_dir_all(members[lost].dir.path()).unwrap();
    }
    members[1].kill9();

    members[1].start(&["--force-new-cluster"]);
    let survivor = members[1].server();
    wait_for("the survivor to serve its data", || survivor.get("/data").json() == serde_json::json!({"kept": 1}));
    assert!(
        survivor.log().iter().any(|l| l.contains("WARN") && l.contains("--force-new-cluster") && l.contains("Wipe")),
        "a loud warning says what happened: {:?}",
        survivor.log()
    );
    wait_for("the survivor to take a write", || survivor.request("PUT", "/data/after", b"2").status == 200);
    assert_eq!(members[1].writes()["voters"].as_array().unwrap().len(), 1);

    // The lost members come back wiped, as new nodes, and are promoted.
    let seeds = format!("--seeds={}", members[1].address());
    members[0].start(&[&seeds]);
    members[2].start(&[&seeds]);
    wait_settled(&members);
    wait_everywhere(&members, "the data on every node", &serde_json::json!({"kept": 1, "after": 2}));
    assert_eq!(members[0].server().request("PUT", "/data/later", b"3").status, 200);

    // From now on the survivor restarts without the flag, as one of three voters.
    members[1].server.take().expect("it runs").terminate();
    members[1].start(&[]);
    wait_settled(&members);
    // A client retries a 503 (`Retry-After`): the restart may have moved the coordinator.
    wait_for("a write through the restarted survivor", || {
        let written = members[1].server().request("PUT", "/data/restarted", b"4");
        assert!(matches!(written.status, 200 | 503), "{} {}", written.status, written.text());
        written.status == 200
    });
    let last = serde_json::json!({"kept": 1, "after": 2, "later": 3, "restarted": 4});
    wait_everywhere(&members, "a write after the survivor's restart", &last);
}

#[test]
fn force_new_cluster_refuses_a_directory_without_a_clusters_store() {
    let dir = TempDir::new("force-empty");
    for args in [vec![dir.flag()], vec![dir.flag(), "--writes=local".into()], vec![]] {
        let output = Command::new(BINARY)
            .args(["--bind=127.0.0.1:0", "--force-new-cluster"])
            .args(&args)
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("--force-new-cluster"), "{args:?}: the refusal names the flag: {stderr}");
    }
}
