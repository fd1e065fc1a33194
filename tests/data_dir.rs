//! The data directory as an operator meets it: one server per directory (a lock file), a
//! directory that takes no files refused at start, damaged and unreadable snapshots, sequence
//! numbers never reused after a damaged newest file, and a full disk that frees older files.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::tmpfs::Tmpfs;
use support::{Client, PATIENCE, Server, TempDir, transact, wait_for};

/// Runs the server with `args` until it exits by itself, and returns its exit code and its log.
/// A server that is still running after `PATIENCE` (it accepted what it should have refused) is
/// killed and the test fails.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child: Child = Command::new(support::BINARY)
        .args(args)
        .arg("--bind=127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting works") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut log = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut log);
            panic!("the server with {args:?} did not exit: it started and served\n{log}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    (status.code(), log)
}

/// The one ERROR line of a log.
fn error_line(log: &str) -> &str {
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line in:\n{log}");
    errors[0]
}

/// The value of a plain (unlabelled) sample in `/metrics`, parsed as Prometheus text.
fn metric(server: &Server, name: &str) -> f64 {
    let lines: Vec<_> = server.get("/metrics").text().lines().map(|l| Ok(l.to_string())).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).expect("the exposition parses");
    let sample = scrape.samples.iter().find(|s| s.metric == name).unwrap_or_else(|| panic!("{name} is exported"));
    match sample.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
        ref other => panic!("{name} is a counter or a gauge, not {other:?}"),
    }
}

fn sequence(server: &Server) -> u64 {
    server.get("/version").json()["sequence"].as_u64().expect("a sequence")
}

/// The sequence the last bytes of every snapshot file in `dir` name (the version stands at the
/// end of the copy), damaged or not.
fn sequences_named(dir: &TempDir) -> Vec<u64> {
    dir.snapshots()
        .iter()
        .filter_map(|name| {
            let bytes = std::fs::read(dir.path().join(name)).ok()?;
            lighthouse::core::snapshot::peek_order(&bytes).map(|(_, sequence)| sequence)
        })
        .collect()
}

/// Changes one byte of `file` inside the first occurrence of `marker`.
fn flip_byte_in(file: &Path, marker: &str) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes.windows(marker.len()).position(|w| w == marker.as_bytes()).expect("the marker is in the file");
    bytes[at + 1] ^= 0x20;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_second_server_on_a_data_directory_exits_1_naming_the_holder() {
    let dir = TempDir::new("locked");
    let first = Server::start(&[&dir.flag()]);
    assert_eq!(transact(&first, "a", "/x", "1").status, 200);

    let (code, log) = run_to_exit(&[&dir.flag()]);
    assert_eq!(code, Some(1), "the second server exits 1:\n{log}");
    let error = error_line(&log);
    let pid = first.child.id().to_string();
    for needle in [dir.path().to_str().unwrap(), pid.as_str(), "in use by another server"] {
        assert!(error.contains(needle), "the error names {needle}: {error}");
    }
    assert!(!log.contains("listening on"), "it never served:\n{log}");
    assert_eq!(first.get("/data/x").text(), "1\n", "the first server is untouched");

    // The lock goes with its process, however it ends.
    first.kill9();
    let again = Server::start(&[&dir.flag()]);
    assert_eq!(again.get("/data/x").text(), "1\n");
}

#[test]
fn a_read_only_data_directory_is_refused_at_start() {
    let Some(disk) = Tmpfs::mount("ro-start", "1m") else { return };
    let flag = disk.dir.flag();
    // A directory that served once holds the lock file: only the probe can tell.
    let server = Server::start(&[&flag]);
    assert_eq!(transact(&server, "a", "/x", "1").status, 200);
    server.terminate();
    disk.remount("ro");
    let (code, log) = run_to_exit(&[&flag]);
    assert_eq!(code, Some(1), "a read-only directory is refused:\n{log}");
    let error = error_line(&log);
    for needle in [disk.path().to_str().unwrap(), "does not take a file", "Read-only file system"] {
        assert!(error.contains(needle), "the error names {needle}: {error}");
    }
    assert!(!log.contains("listening on"), "it never served:\n{log}");
}

#[test]
fn an_empty_read_only_data_directory_is_refused_at_start() {
    let Some(disk) = Tmpfs::mount("ro-empty", "1m") else { return };
    disk.remount("ro");
    let (code, log) = run_to_exit(&[&disk.dir.flag()]);
    assert_eq!(code, Some(1), "a read-only directory is refused:\n{log}");
    let error = error_line(&log);
    for needle in [disk.path().to_str().unwrap(), "Read-only file system"] {
        assert!(error.contains(needle), "the error names {needle}: {error}");
    }
}

#[test]
fn a_data_directory_under_a_regular_file_is_refused_at_start() {
    let dir = TempDir::new("under-file");
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let flag = format!("--data.d={}", file.join("data").display());
    let (code, log) = run_to_exit(&[&flag]);
    assert_eq!(code, Some(1), "{log}");
    assert!(error_line(&log).contains(file.to_str().unwrap()), "{log}");
}

#[test]
fn a_damaged_newest_snapshot_never_makes_a_sequence_name_two_versions() {
    damaged_newest_then_commit(&[]);
}

#[test]
fn a_damaged_newest_snapshot_never_makes_a_sequence_name_two_versions_with_local_writes() {
    damaged_newest_then_commit(&["--writes=local"]);
}

/// Commits three versions, kills the node, damages the newest file's data (its last bytes still
/// name its sequence), restarts, commits: the new version must be numbered after every sequence
/// the directory named, and a stream client that had the lost version must get the change.
fn damaged_newest_then_commit(flags: &[&str]) {
    let dir = TempDir::new("damaged-newest");
    let flag = dir.flag();
    let args: Vec<&str> = [flag.as_str()].into_iter().chain(flags.iter().copied()).collect();
    let server = Server::start(&args);
    for i in 1..=3 {
        assert_eq!(transact(&server, "w", "/a", &format!("\"version-{i}-damage-me\"")).status, 200);
    }
    let before = sequence(&server);
    // A reader that saw the newest version before the node stopped.
    dir.wait_named();
    server.kill9();
    let newest = dir.snapshots().pop().unwrap();
    flip_byte_in(&dir.path().join(&newest), &format!("version-{before}-damage-me"));
    let highest_named = sequences_named(&dir).into_iter().max().unwrap();
    assert!(highest_named >= before, "the damaged file still names {before} in its last bytes");

    let server = Server::start(&args);
    assert!(sequence(&server) < before, "the node loaded an older file");
    assert!(server.log().iter().any(|l| l.contains("WARN") && l.contains(&newest)), "the skip is logged");
    assert_eq!(metric(&server, "lighthouse_snapshots_skipped"), 1.0);
    let committed = transact(&server, "w", "/a", "\"after the damage\"");
    assert_eq!(committed.status, 200, "{}", committed.text());
    let after = committed.json()["sequence"].as_u64().unwrap();
    assert!(
        after > highest_named,
        "the new version ({after}) is numbered after every sequence named ({highest_named})"
    );

    // A client that had the lost version reconnects with its id: it gets the change.
    let mut client = Client::connect(server.addr);
    let head = format!("GET /data/a HTTP/1.1\r\nAccept: text/event-stream\r\nLast-Event-ID: {before}\r\n\r\n");
    client.send(head.as_bytes());
    let mut text = String::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + PATIENCE;
    client.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    while !text.contains("after the damage") {
        assert!(Instant::now() < deadline, "the reconnected stream never sent the change: {text}");
        if let Ok(n) = client.stream.read(&mut chunk) {
            text.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }
    assert!(text.contains(&format!("id: {after}")), "the event carries the new sequence: {text}");
}

#[test]
fn a_damaged_snapshot_that_shows_no_sequence_stops_writes_until_the_operator_accepts() {
    let dir = TempDir::new("unnumbered");
    let server = Server::start(&[&dir.flag()]);
    for i in 1..=2 {
        assert_eq!(transact(&server, "w", "/a", &i.to_string()).status, 200);
    }
    dir.wait_named();
    server.kill9();
    // Cut short before its version: what it held is unknown.
    let newest = dir.snapshots().pop().unwrap();
    let file = dir.path().join(&newest);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 3]).unwrap();

    let server = Server::start(&[&dir.flag()]);
    assert_eq!(server.get("/data/a").text(), "1\n", "reads are served");
    let refused = server.request("PUT", "/data/a", b"3");
    assert_eq!(refused.status, 503, "{}", refused.text());
    for needle in ["--accept-lost-versions", newest.as_str()] {
        assert!(refused.error().contains(needle), "the refusal names {needle}: {}", refused.text());
    }
    assert_eq!(server.request("PUT", "/lock", b"w").status, 503, "transactions too");
    drop(server);

    let server = Server::start(&[&dir.flag(), "--accept-lost-versions"]);
    assert!(server.log().iter().any(|l| l.contains("WARN") && l.contains("--accept-lost-versions")));
    assert_eq!(server.request("PUT", "/data/a", b"3").status, 200);
    assert_eq!(server.get("/data/a").text(), "3\n");
}

#[test]
fn an_unreadable_snapshot_stops_the_start_with_the_error() {
    let dir = TempDir::new("unreadable");
    let server = Server::start(&[&dir.flag()]);
    assert_eq!(transact(&server, "w", "/a", "1").status, 200);
    server.terminate();
    // A directory with a snapshot's name, newer than every file: reading it fails (EISDIR), as
    // a file behind a failing disk or wrong permissions would, even for root.
    let name = lighthouse::core::snapshot::file_name(4_000_000_000_000_000);
    std::fs::create_dir(dir.path().join(&name)).unwrap();
    let (code, log) = run_to_exit(&[&dir.flag()]);
    assert_eq!(code, Some(1), "an unreadable file is not skipped as damaged:\n{log}");
    let error = error_line(&log);
    for needle in [name.as_str(), "cannot read", "Is a directory"] {
        assert!(error.contains(needle), "the error names {needle}: {error}");
    }
}

#[test]
fn a_full_disk_frees_older_snapshots_and_the_write_goes_through() {
    let Some(disk) = Tmpfs::mount("full-frees", "1m") else { return };
    let server = Server::start(&[&disk.dir.flag(), "--keep-snapshots=20"]);
    // Three commits of about 120 KiB each: each a change file as large as the store, so each is
    // followed by a full snapshot (compaction): five files, chains of two.
    let big = |tag: usize| format!("\"{}{tag}\"", "z".repeat(120 * 1024));
    for tag in 0..3 {
        assert_eq!(transact(&server, "w", "/big", &big(tag)).status, 200);
    }
    wait_for("the compaction of the last change", || {
        let Some(newest) = disk.dir.snapshots().pop() else { return false };
        !lighthouse::core::change_file::is_change_file(&std::fs::read(disk.path().join(newest)).unwrap_or_default())
    });
    let before = disk.dir.snapshots().len();
    assert_eq!(before, 5, "{:?}", disk.dir.snapshots());
    // Fill the disk but for less than one more file.
    let filler = disk.path().join("filler");
    let free = free_bytes(disk.path());
    std::fs::write(&filler, vec![0u8; (free - 60 * 1024) as usize]).unwrap();

    let committed = transact(&server, "w", "/big", &big(5));
    assert_eq!(committed.status, 200, "older files made room: {}", committed.text());
    let after = disk.dir.snapshots();
    assert!(after.len() <= 3, "the newest chain kept beside the new file(s): {after:?}");
    assert!(server.log().iter().any(|l| l.contains("WARN") && l.contains("full") && l.contains("removed")));
    assert_eq!(metric(&server, "lighthouse_disk_errors_total"), 0.0);
    assert_eq!(server.get("/state").json()["last-disk-error"], serde_json::Value::Null);

    // Not room enough even after freeing: 507, counted, and shown in /state.
    fill(&filler);
    let bigger = format!("\"{}\"", "y".repeat(400 * 1024));
    let refused = transact(&server, "w", "/big", &bigger);
    assert_eq!(refused.status, 507, "{}", refused.text());
    wait_for("the disk error in /metrics", || metric(&server, "lighthouse_disk_errors_total") >= 1.0);
    let state = server.get("/state").json();
    let last = &state["last-disk-error"];
    assert!(last["message"].as_str().unwrap().contains("No space left"), "{state}");
    assert!(last["time"].as_u64().unwrap() > 1_700_000_000_000, "Unix milliseconds: {state}");
    assert_eq!(server.get("/data/big").text().len(), big(5).len() + 1, "nothing half-applied");
}

/// Appends zeros to `file` until the disk is full.
fn fill(file: &Path) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    while file.write_all(&[0u8; 4096]).is_ok() {}
}

/// Free bytes on the file system of `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let output = Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("df prints the free bytes")
}
