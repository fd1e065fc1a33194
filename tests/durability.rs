//! Durability: answered commits survive `kill -9`; a full or read-only disk fails a commit
//! cleanly (5xx, nothing half-applied, lock still held) and commits work again once it is fixed.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::tmpfs::Tmpfs;
use support::{Rng, Server, TempDir, transact, try_request};

#[test]
fn a_commit_onto_a_full_disk_answers_507_and_changes_nothing_until_space_is_back() {
    let Some(disk) = Tmpfs::mount("full", "512k") else { return };
    let server = Server::start(&[&disk.dir.flag()]);
    assert_eq!(transact(&server, "a", "/before", "1").status, 200);
    let filler = disk.dir.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 512 * 1024]);

    let big = format!("\"{}\"", "y".repeat(200 * 1024));
    let response = transact(&server, "a", "/big", &big);
    assert_eq!(response.status, 507, "{}", response.text());
    assert!(response.error().contains("No space left"), "{}", response.text());
    assert_eq!(server.get("/lock").text(), "a\n", "the lock is still held");
    assert_eq!(server.get("/data").json(), serde_json::json!({"before": 1}), "nothing half-applied");
    assert_eq!(server.get("/version").json()["sequence"], 1);
    assert_eq!(server.get("/data/before").text(), "1\n", "reads go on");

    std::fs::remove_file(&filler).unwrap();
    let retried = server.request("PUT", "/lock/a", b"");
    assert_eq!(retried.status, 200, "the same transaction commits once space is back");
    assert_eq!(server.get("/data/big").body.len(), big.len() + 1);
    drop(server);
    let restarted = Server::start(&[&disk.dir.flag()]);
    assert_eq!(restarted.get("/version").json()["sequence"], 2);
}

#[test]
fn a_commit_into_a_read_only_directory_answers_503_and_works_again_after() {
    let Some(disk) = Tmpfs::mount("readonly", "1m") else { return };
    let server = Server::start(&[&disk.dir.flag()]);
    assert_eq!(transact(&server, "a", "/x", "1").status, 200);
    disk.remount("ro");
    let response = transact(&server, "a", "/x", "2");
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.error().contains("Read-only"), "{}", response.text());
    assert_eq!(server.get("/data/x").text(), "1\n");
    disk.remount("rw");
    assert_eq!(server.request("PUT", "/lock/a", b"").status, 200);
    assert_eq!(server.get("/data/x").text(), "2\n");
}

/// How many times the crash test kills the server (`LIGHTHOUSE_CRASH_KILLS`, default 50).
fn kills() -> u64 {
    std::env::var("LIGHTHOUSE_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50)
}

#[test]
fn every_commit_answered_200_survives_kill_9() {
    let dir = TempDir::new("crash");
    let seed = std::env::var("LIGHTHOUSE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_1234_u64);
    let mut rng = Rng::new(seed);
    let mut acknowledged: u64 = 0;
    // Files that restarts found still in spare files and placed (`core::spare`).
    let mut from_spares = 0;
    for round in 0..kills() {
        let server = Server::start(&[&dir.flag()]);
        from_spares += server.log().iter().filter(|l| l.contains("holds a whole file")).count();
        let restarted = server.get("/data").json();
        let counter = restarted.get("counter").and_then(|c| c.as_u64()).unwrap_or(0);
        assert!(
            counter >= acknowledged,
            "round {round} (seed {seed}): the store has counter {counter} but commit {acknowledged} was answered 200"
        );
        acknowledged = counter;
        let addr = server.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut last_ok = counter;
                let mut next = counter + 1;
                while !stop.load(Ordering::Relaxed) {
                    let step = || -> std::io::Result<u16> {
                        try_request(addr, "PUT", "/lock", b"crash")?;
                        try_request(addr, "PUT", "/update/crash/counter", next.to_string().as_bytes())?;
                        Ok(try_request(addr, "PUT", "/lock/crash", b"")?.status)
                    };
                    match step() {
                        Ok(200) => last_ok = next,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                    next += 1;
                }
                last_ok
            })
        };
        std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        acknowledged = acknowledged.max(writer.join().unwrap());
    }
    let server = Server::start(&[&dir.flag()]);
    let counter = server.get("/data").json()["counter"].as_u64().unwrap_or(0);
    assert!(counter >= acknowledged, "after the last kill: counter {counter} < acknowledged {acknowledged}");
    assert!(acknowledged > kills(), "the test made progress: {acknowledged} commits acknowledged");
    eprintln!(
        "{} kills, {acknowledged} commits acknowledged, all of them in the restarted store; restarts placed {from_spares} \
         file(s) found in spare files",
        kills()
    );
}

#[test]
fn a_snapshot_write_interrupted_at_any_moment_leaves_a_startable_directory() {
    // Leftovers of a write killed half-way: a temporary file and nothing else.
    let dir = TempDir::new("leftover");
    let server = Server::start(&[&dir.flag()]);
    transact(&server, "a", "/x", "1");
    drop(server);
    let name = lighthouse::core::snapshot::file_name(lighthouse::shell::system_clock::unix_micros());
    std::fs::write(
        dir.path().join(lighthouse::core::snapshot::temporary_name(&name)),
        b"{\"cluster\":[],\"copy\":{\"da",
    )
    .unwrap();
    let started = Instant::now();
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/data/x").text(), "1\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!dir.path().join(lighthouse::core::snapshot::temporary_name(&name)).exists(), "the leftover is removed");
}

/// The non-empty spare files of `dir`: files written and not yet renamed, or writes cut short.
fn spares_holding_bytes(dir: &TempDir) -> Vec<String> {
    let entries = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok);
    let held = entries.filter(|e| e.file_name().to_string_lossy().starts_with(".spare-"));
    let mut names: Vec<String> = held
        .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_spare_file_cut_short_leaves_a_startable_directory_and_loses_no_answered_commit() {
    let dir = TempDir::new("spare-cut");
    let server = Server::start(&[&dir.flag()]);
    for i in 1..=3 {
        assert_eq!(transact(&server, "a", "/x", &i.to_string()).status, 200);
    }
    dir.wait_named();
    server.kill9();
    // A write killed part of the way into spare files (never answered: an answer waits for the
    // fdatasync): the first half of a real file, and bytes that are no file at all.
    let newest = std::fs::read(dir.path().join(dir.snapshots().pop().unwrap())).unwrap();
    std::fs::write(dir.path().join(".spare-40"), &newest[..newest.len() / 2]).unwrap();
    std::fs::write(dir.path().join(".spare-41"), b"\0\0\0\0garbage").unwrap();
    // Cut just before its file checksum: the tail still names a version.
    std::fs::write(dir.path().join(".spare-42"), &newest[..newest.len() - 3]).unwrap();

    let restarted = Server::start(&[&dir.flag()]);
    assert_eq!(restarted.get("/data/x").text(), "3\n", "every answered commit is there");
    assert!(spares_holding_bytes(&dir).is_empty(), "the cut writes are removed: {:?}", spares_holding_bytes(&dir));
    let warned = restarted.log().iter().filter(|l| l.contains("holds a write cut short")).count();
    assert_eq!(warned, 3, "{:?}", restarted.log());
    // Nothing waits for the operator: writes go on at the next sequence.
    assert_eq!(restarted.get("/version").json()["sequence"], 3);
    assert_eq!(transact(&restarted, "a", "/x", "4").status, 200);
    assert_eq!(restarted.get("/version").json()["sequence"], 4);
}

#[test]
fn an_answered_commit_still_in_a_spare_file_loads_at_start() {
    let dir = TempDir::new("spare-pending");
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(transact(&server, "a", "/x", "1").status, 200);
    dir.wait_named();
    // The writer renames a spare only once it is idle for a moment: killed right after the
    // answer, the commit's file is (almost always) still in its spare.
    assert_eq!(transact(&server, "a", "/x", "2").status, 200);
    let answered = server.get("/version").json();
    server.kill9();
    if spares_holding_bytes(&dir).is_empty() {
        // The writer was quicker than the kill: put the newest file back into a spare by hand.
        let newest = dir.snapshots().pop().unwrap();
        std::fs::rename(dir.path().join(&newest), dir.path().join(".spare-7")).unwrap();
    }
    let held = spares_holding_bytes(&dir);
    assert_eq!(held.len(), 1, "{held:?}");
    let named_before = dir.snapshots();

    let restarted = Server::start(&[&dir.flag()]);
    assert_eq!(restarted.get("/data/x").text(), "2\n");
    assert_eq!(restarted.get("/version").json(), answered, "the answered version, its checksum too");
    assert!(spares_holding_bytes(&dir).is_empty(), "the spare is placed under a file name");
    let placed: Vec<String> = dir.snapshots().into_iter().filter(|n| !named_before.contains(n)).collect();
    assert_eq!(placed.len(), 1, "{:?}", dir.snapshots());
    assert!(placed[0] > *named_before.last().unwrap(), "after every other file: {placed:?} {named_before:?}");
    assert!(restarted.log().iter().any(|l| l.contains(&format!("now {}", placed[0]))), "{:?}", restarted.log());
    assert_eq!(transact(&restarted, "a", "/x", "3").status, 200);
    drop(restarted);
    let again = Server::start(&[&dir.flag()]);
    assert_eq!(again.get("/data/x").text(), "3\n");
}
