//! Coordinated writes' availability with real server processes: a pause does not cost the first
//! write after it, a node restarted while a majority is down keeps serving what it knows was
//! committed (marked), and a node whose seeds never answer never serves an empty store of its own.

mod support;

use std::time::{Duration, Instant};

use support::cluster::{Member, chain};
use support::{Server, TempDir, signal, wait_for};

/// Stops a process for `pause`, then lets it go on.
fn pause(server: &Server, pause: Duration) {
    signal(&server.child, libc::SIGSTOP);
    std::thread::sleep(pause);
    signal(&server.child, libc::SIGCONT);
}

/// The member that coordinates, by its `/state`.
fn coordinator(members: &[Member]) -> usize {
    let address = members[0].writes()["coordinator"].as_str().expect("a coordinator").to_string();
    members.iter().position(|m| m.address() == address).expect("the coordinator is a member")
}

#[test]
fn a_single_voter_takes_the_first_write_after_a_pause() {
    let dir = TempDir::new("pause-single");
    let server = Server::start(&[&dir.flag()]);
    wait_for("the node to coordinate", || server.get("/ready").status == 200);
    assert_eq!(server.request("PUT", "/data/x", b"1").status, 200);
    // Longer than the coordinator's lease: the lease it held has lapsed when it goes on.
    pause(&server, Duration::from_millis(2_000));
    let acquired = server.request("PUT", "/lock", b"after-pause");
    assert_eq!(acquired.status, 200, "PUT /lock after a pause: {}", acquired.text());
    assert_eq!(server.request("DELETE", "/lock/after-pause", b"").status, 200);
    pause(&server, Duration::from_millis(2_000));
    let written = server.request("PUT", "/data/x", b"2");
    assert_eq!(written.status, 200, "PUT /data/x after a pause: {}", written.text());
}

#[test]
fn the_coordinator_of_three_renews_its_lease_before_the_first_write_after_a_pause() {
    let members = chain(3, "pause-three", &[]);
    let c = coordinator(&members);
    let server = members[c].server();
    assert_eq!(server.request("PUT", "/data/x", b"1").status, 200);
    // Longer than the coordinator's lease (about 1.3 s), shorter than the voters' election
    // timeout (2.1 s): nobody else stands, and the lease has lapsed.
    pause(server, Duration::from_millis(1_600));
    let started = Instant::now();
    let acquired = server.request("PUT", "/lock", b"after-pause");
    assert_eq!(acquired.status, 200, "PUT /lock after a pause: {}", acquired.text());
    assert!(started.elapsed() < Duration::from_secs(1), "the lease was renewed in {:?}", started.elapsed());
    assert_eq!(server.request("DELETE", "/lock/after-pause", b"").status, 200);
    assert_eq!(coordinator(&members), c, "the same node coordinates");
    pause(server, Duration::from_millis(1_600));
    let written = server.request("PUT", "/data/x", b"2");
    assert_eq!(written.status, 200, "PUT /data/x after a pause: {}", written.text());
}

/// An address nobody listens on: a port the system handed out and took back.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("bound").to_string();
    drop(listener);
    address
}

#[test]
fn a_node_whose_seeds_never_answer_never_serves_an_empty_store() {
    let dir = TempDir::new("dead-seed");
    let seeds = format!("--seeds={}", dead_address());
    let server = Server::start(&[&dir.flag(), &seeds, "--bootstrap-limit=1"]);
    // Past --bootstrap-limit, with a margin for a slow machine: a node of local writes would
    // serve {} by now.
    std::thread::sleep(Duration::from_millis(2_500));
    let ready = server.get("/ready");
    assert_eq!(ready.status, 503, "/ready of a node whose seed never answered: {}", ready.text());
    let data = server.get("/data");
    assert_eq!(data.status, 503, "/data of a node whose seed never answered: {}", data.text());
    let log = server.log().join("\n");
    assert!(
        log.contains("never founds a cluster of its own") && log.contains("has ever answered"),
        "the log says why it does not serve:\n{log}"
    );
}

#[test]
fn a_directory_of_local_writes_started_coordinated_with_seeds_logs_the_upgrade_hint() {
    let dir = TempDir::new("upgrade-hint");
    let local = Server::start(&[&dir.flag(), "--writes=local"]);
    assert_eq!(local.request("PUT", "/data/x", b"1").status, 200);
    assert!(local.terminate().success());
    let seeds = format!("--seeds={}", dead_address());
    let server = Server::start(&[&dir.flag(), &seeds, "--bootstrap-limit=1"]);
    wait_for("the upgrade hint", || server.log().iter().any(|l| l.contains("--writes=local")));
    let log = server.log().join("\n");
    assert!(
        log.contains("--bootstrap") && log.contains("docs/clustering.md: Upgrading"),
        "the hint names --bootstrap and the docs page:\n{log}"
    );
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(server.get("/ready").status, 503, "a learner of no cluster is not ready");
}

/// The sequence of the commit point a member's `node.json` holds (0 when none).
fn commit_point(member: &Member) -> u64 {
    let file = member.dir.path().join("node.json");
    let state: serde_json::Value =
        std::fs::read(file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    state["committed"]["sequence"].as_u64().unwrap_or(0)
}

/// `--seeds=` every other member.
fn seeds_but(members: &[Member], i: usize) -> String {
    let others: Vec<String> = (0..members.len()).filter(|j| *j != i).map(|j| members[j].address()).collect();
    format!("--seeds={}", others.join(","))
}

#[test]
fn a_node_restarted_while_a_majority_is_down_serves_the_committed_store_marked_and_refuses_writes() {
    let mut members = chain(3, "dark", &[]);
    let c = coordinator(&members);
    let written = members[c].server().request("PUT", "/data/x", b"1");
    assert_eq!(written.status, 200, "the write: {}", written.text());
    let sequence = written.json()["sequence"].as_u64().expect("a sequence");
    // A follower: its files hold versions it accepted before they were committed.
    let f = (c + 1) % 3;
    wait_for("the follower to record the commit point", || {
        members[f].server().get("/data/x").text() == "1\n" && commit_point(&members[f]) >= sequence
    });
    for i in (0..3).filter(|i| *i != f) {
        assert!(members[i].server.take().unwrap().terminate().success());
    }
    assert!(members[f].server.take().unwrap().terminate().success());
    let seeds = seeds_but(&members, f);
    members[f].start(&[&seeds]);
    let server = members[f].server();
    let read = server.get("/data/x");
    assert_eq!(read.status, 200, "a read with a majority down: {}", read.text());
    assert_eq!(read.text(), "1\n");
    let mark = read.header("X-Lighthouse-Unconfirmed").unwrap_or_default().to_string();
    assert!(mark.contains(&format!("sequence {sequence}")), "the read is marked unconfirmed: {:?}", read.headers);
    let write = server.request("PUT", "/data/x", b"2");
    assert_eq!(write.status, 503, "a write with a majority down: {}", write.text());
    assert!(write.error().contains("majority"), "{}", write.error());
    let ready = server.get("/ready");
    assert_eq!(ready.status, 503, "/ready while unconfirmed: {}", ready.text());
    let stream = support::curl(&["--max-time", "1", "-i", "-H", "Accept: text/event-stream", &server.url("/data/x")]).1;
    assert!(
        stream.contains("X-Lighthouse-Unconfirmed") && stream.contains("data: 1"),
        "the stream is marked:\n{stream}"
    );
    for i in (0..3).filter(|i| *i != f) {
        let seeds = seeds_but(&members, i);
        members[i].start(&[&seeds]);
    }
    let server = members[f].server();
    wait_for("the restarted node to confirm its store", || {
        let read = server.get("/data/x");
        read.status == 200 && read.header("X-Lighthouse-Unconfirmed").is_none()
    });
    wait_for("a write through the restarted node", || server.request("PUT", "/data/x", b"2").status == 200);
    assert_eq!(server.get("/ready").status, 200);
}
