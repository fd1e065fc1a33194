//! Clusters of real server processes on loopback. Each node sits behind a TCP proxy and
//! advertises the proxy's address, so a test can cut and heal the links between nodes.

mod support;

use std::time::{Duration, Instant};

use support::cluster::Member;
use support::{Server, transact, wait_for};

/// Three members where each knows only the one before it (coordinated writes, the default).
fn chain_of_three() -> Vec<Member> {
    support::cluster::chain(3, "node", &[])
}

/// The same with local writes (each node its own lock), for the available mode's behaviours.
fn chain_of_three_local() -> Vec<Member> {
    support::cluster::chain(3, "local", &["--writes=local"])
}

fn wait_converged(members: &[&Member]) -> serde_json::Value {
    wait_for("every node to serve the same version", || {
        let first = members[0].version();
        members.iter().all(|m| m.version() == first)
    });
    members[0].version()
}

#[test]
fn gossip_fills_every_table_even_from_a_chain_of_seeds() {
    let members = chain_of_three();
    for (i, member) in members.iter().enumerate() {
        let mut others: Vec<String> =
            members.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, m)| m.address()).collect();
        others.sort();
        wait_for(&format!("node {i} to list both others"), || member.peers() == others);
    }
    let state = members[2].server().get("/state").json();
    assert_eq!(state["me"], members[2].address(), "a node is not in its own table");
    for peer in state["cluster"].as_array().unwrap() {
        for field in ["version", "reachable", "last-reachable", "last-update", "last-push"] {
            assert!(peer.get(field).is_some(), "a table entry has {field}");
        }
    }
    let summary = members[0].server().get("/").json();
    assert_eq!(summary["cluster"]["peers"], 2);
    // GET / lists what the node knows of its peers too (for readers where /state needs the key).
    let nodes = summary["cluster"]["nodes"].as_array().expect("GET / lists the peers");
    assert_eq!(nodes.len(), 2, "{summary}");
    assert!(nodes.iter().all(|n| n["address"].is_string() && n["role"].is_string()), "{summary}");
}

#[test]
fn a_commit_on_any_node_is_served_by_all_within_500_ms() {
    let members = chain_of_three();
    wait_for("the table to fill", || members.iter().all(|m| m.peers().len() == 2));
    for (round, writer) in members.iter().enumerate() {
        let value = format!("\"written on node {round}\"");
        assert_eq!(transact(writer.server(), "w", "/key", &value).status, 200);
        let committed = Instant::now();
        wait_for("all nodes to serve the commit", || {
            members.iter().all(|m| m.server().get("/data/key").text() == format!("{value}\n"))
        });
        let took = committed.elapsed();
        assert!(took < Duration::from_millis(500), "round {round}: the commit reached all nodes after {took:?}");
    }
}

#[test]
fn a_node_killed_and_restarted_without_seeds_catches_up_from_its_stored_peers() {
    let mut members = chain_of_three();
    assert_eq!(transact(members[0].server(), "w", "/before", "1").status, 200);
    wait_converged(&members.iter().collect::<Vec<_>>());
    members[2].kill9();
    assert_eq!(transact(members[0].server(), "w", "/after", "2").status, 200);
    members[2].start(&[]);
    wait_for("the restarted node to catch up", || members[2].server().get("/data/after").status == 200);
    assert_eq!(members[2].server().get("/data/after").text(), "2\n");
    wait_converged(&members.iter().collect::<Vec<_>>());
}

#[test]
fn a_new_node_with_an_empty_directory_and_seeds_serves_the_cluster_store() {
    let mut members = chain_of_three();
    assert_eq!(transact(members[1].server(), "w", "/greeting", "\"hello\"").status, 200);
    wait_converged(&members.iter().collect::<Vec<_>>());
    let mut newcomer = Member::new("newcomer");
    newcomer.start(&[&format!("--seeds={}", members[0].address())]);
    wait_for("the newcomer to serve the store", || newcomer.server().get("/data/greeting").status == 200);
    assert_eq!(newcomer.server().get("/data/greeting").text(), "\"hello\"\n");
    members.push(newcomer);
    // The newcomer is promoted to voter, by a commit every node serves.
    wait_for("the newcomer to be a voter", || members[0].writes()["voters"].as_array().map(Vec::len) == Some(4));
    wait_converged(&members.iter().collect::<Vec<_>>());
    wait_for("every node to know the newcomer", || members.iter().all(|m| m.peers().len() == 3));
}

#[test]
fn unreachable_seeds_keep_a_node_of_local_writes_inactive_until_the_bootstrap_limit() {
    let started = Instant::now();
    // With coordinated writes it stays inactive for good (tests/availability.rs).
    let server = Server::start(&["--seeds=127.0.0.1:1", "--bootstrap-limit=2", "--writes=local"]);
    let first = server.get("/data");
    assert_eq!(first.status, 503, "inactive at first");
    assert_eq!(first.header("Retry-After"), Some("1"));
    assert_eq!(server.get("/version").status, 200, "/version answers while inactive");
    assert_eq!(server.get("/state").status, 200, "/state answers while inactive");
    assert_eq!(server.get("/copy").status, 200, "/copy answers while inactive");
    assert_eq!(server.request("PUT", "/lock", b"early").status, 503, "no transactions while inactive");
    wait_for("the node to become active", || server.get("/data").status == 200);
    assert!(started.elapsed() >= Duration::from_millis(1_900), "active after {:?}", started.elapsed());
    assert_eq!(server.get("/").json()["active"], true);
}

#[test]
fn bootstrap_makes_a_node_with_seeds_active_at_once() {
    let server = Server::start(&["--seeds=127.0.0.1:1", "--bootstrap"]);
    assert_eq!(server.get("/data").status, 200);
}

#[test]
fn after_a_partition_heals_all_nodes_converge_on_the_greater_version_within_a_second() {
    let members = chain_of_three_local();
    wait_for("the table to fill", || members.iter().all(|m| m.peers().len() == 2));
    for member in &members {
        member.proxy.cut();
    }
    let a = transact(members[0].server(), "w", "/a", "1").json();
    let b = transact(members[1].server(), "w", "/b", "1").json();
    assert_eq!(a["sequence"], b["sequence"], "two concurrent commits at the same sequence");
    let winner = if a["checksum"].as_str() > b["checksum"].as_str() { &a } else { &b };
    let (winner_index, loser_index) = if winner == &a { (0, 1) } else { (1, 0) };
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(members[0].version(), members[1].version(), "the partition held");
    for member in &members {
        member.proxy.heal();
    }
    let healed = Instant::now();
    let converged = wait_converged(&members.iter().collect::<Vec<_>>());
    let took = healed.elapsed();
    assert!(took < Duration::from_secs(1), "converged {took:?} after the heal");
    assert_eq!(&converged, winner, "the greater checksum wins everywhere");
    let key = if winner_index == 0 { "/data/a" } else { "/data/b" };
    assert!(members.iter().all(|m| m.server().get(key).status == 200));
    let loser = members[loser_index].server();
    wait_for("the loser to log its superseded commit", || loser.log().iter().any(|l| l.contains("superseded")));
}

#[test]
fn a_copy_with_a_wrong_checksum_changes_nothing_anywhere() {
    let members = chain_of_three();
    let before = wait_converged(&members.iter().collect::<Vec<_>>());
    let forged =
        format!(r#"{{"version": {{"sequence": 99, "checksum": "{}"}}, "data": {{"evil": true}}}}"#, "f".repeat(40));
    assert_eq!(members[0].server().request("PUT", "/copy", forged.as_bytes()).status, 400);
    std::thread::sleep(Duration::from_millis(1_200));
    for member in &members {
        assert_eq!(member.version(), before);
        assert_eq!(member.server().get("/data/evil").status, 404);
    }
}

#[test]
fn a_large_store_reaches_a_new_node_quickly() {
    let mut first = Member::new("large-first");
    first.start(&[]);
    let blob = format!(
        "[{}]",
        (0..60_000).map(|i| format!("\"item-{i:08}-{}\"", "x".repeat(40))).collect::<Vec<_>>().join(",")
    );
    assert!(blob.len() > 3 * 1024 * 1024);
    assert_eq!(transact(first.server(), "w", "/blob", &blob).status, 200);
    let started = Instant::now();
    let mut second = Member::new("large-second");
    second.start(&[&format!("--seeds={}", first.address())]);
    wait_for("the new node to serve the large store", || second.server().get("/data/blob/59999").status == 200);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "a {} MiB store took {took:?} to arrive", blob.len() >> 20);
    assert_eq!(second.version(), first.version());
}

#[test]
fn a_seed_that_never_answers_does_not_spread_and_is_kept_only_where_it_was_given() {
    // A port that is bound and never answers (a closed one could be taken by another test's node
    // while the tests run in parallel, and would then answer).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_address = dead.local_addr().unwrap().to_string();
    let mut first = Member::new("dead-seed-first");
    first.start(&[&format!("--seeds={dead_address}"), "--bootstrap"]);
    let mut second = Member::new("dead-seed-second");
    second.start(&[&format!("--seeds={}", first.address())]);
    wait_for("the two nodes to know each other", || {
        first.peers().contains(&second.address()) && second.peers().contains(&first.address())
    });
    // Several gossip rounds: the dead seed must not reach the second node's table.
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(!second.peers().contains(&dead_address), "a never-reached address spread: {:?}", second.peers());
    assert!(first.peers().contains(&dead_address), "a node keeps its own --seeds");
    // An address that some client PUT into the table and that never answers is forgotten.
    let stranger = r#"[{"address": "127.0.0.1:1"}]"#;
    assert_eq!(second.server().request("PUT", "/state", stranger.as_bytes()).status, 200);
    assert!(second.peers().contains(&"127.0.0.1:1".to_string()));
    drop(dead);
}
