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
    for round in 0..kills() {
        let server = Server::start(&[&dir.flag()]);
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
    eprintln!("{} kills, {acknowledged} commits acknowledged, all of them in the restarted store", kills());
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
