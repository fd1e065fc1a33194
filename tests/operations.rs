//! Operating a cluster as operators do, with real processes: restarting a node that joined, stopping
//! every node and starting them again (SIGTERM, and kill -9), a clean stop while a slow disk is
//! still writing, and the boundary between clusters (a mistyped seed, a node of the other write
//! mode).

mod support;

use std::time::{Duration, Instant};

use support::cluster::{Member, chain, wait_settled};
use support::slow_disk::SlowDisk;
use support::{Server, TempDir, wait_for};

/// Starts `member` again with the command line a chain gave it (`--seeds` of the one before).
fn start_again(members: &mut [Member], i: usize) {
    let seeds = (i > 0).then(|| format!("--seeds={}", members[i - 1].address()));
    let args: Vec<&str> = seeds.iter().map(String::as_str).collect();
    members[i].start(&args);
}

fn stop(member: &mut Member) {
    let status = member.server.take().expect("the member runs").terminate();
    assert!(status.success(), "a node stops cleanly on SIGTERM: {status:?}");
}

fn sequence(member: &Member) -> u64 {
    member.version()["sequence"].as_u64().expect("a sequence")
}

fn voters(member: &Member) -> Vec<String> {
    let mut ids: Vec<String> = member.writes()["voters"]
        .as_array()
        .expect("voters")
        .iter()
        .map(|v| v["id"].as_str().expect("an id").to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_node_that_joined_comes_back_as_itself() {
    let mut members = chain(3, "rejoin", &[]);
    let before = (voters(&members[0]), sequence(&members[0]));
    let id = members[2].server().get("/state").json()["id"].clone();
    stop(&mut members[2]);
    start_again(&mut members, 2);
    wait_settled(&members);
    assert_eq!(members[2].server().get("/state").json()["id"], id, "the restarted node has its old id");
    assert_eq!((voters(&members[0]), sequence(&members[0])), before, "no membership change was committed");
    let replaced =
        members[0].server().log().into_iter().chain(members[1].server().log()).any(|l| l.contains("replacing"));
    assert!(!replaced, "no node was taken for a replacement");
}

/// Stops every node (SIGTERM, or kill -9 when `kill`), starts them all again with the same
/// command lines, and checks that within 15 s every node serves the data and a write is taken.
fn full_restart(count: usize, name: &str, kill: bool) {
    let mut members = chain(count, name, &[]);
    let written = members[count - 1].server().request("PUT", "/data/before", b"\"restart\"");
    assert_eq!(written.status, 200, "{}", written.text());
    wait_settled(&members);
    for member in members.iter_mut() {
        if kill {
            member.kill9();
        } else {
            stop(member);
        }
    }
    let started = Instant::now();
    for i in 0..count {
        start_again(&mut members, i);
    }
    wait_for("every node to serve the data again", || {
        members.iter().all(|m| m.server().get("/data/before").text().contains("restart"))
    });
    let mut write = || members[count - 1].server().request("PUT", "/data/after", b"1").status == 200;
    wait_for("a write to be taken", &mut write);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "the cluster served and wrote again after {took:?}");
    wait_settled(&members);
    eprintln!("{name}: {count} nodes served and took a write {took:?} after they were all started again");
}

#[test]
fn a_full_restart_with_sigterm_serves_and_writes_again() {
    full_restart(3, "term", false);
}

#[test]
fn a_full_restart_after_kill_9_serves_and_writes_again() {
    full_restart(3, "kill", true);
}

#[test]
fn a_full_restart_of_five_nodes_serves_and_writes_again() {
    full_restart(5, "five", false);
}

/// Two clusters of one node each; the second is started again with `--seeds` naming the first (a
/// mistyped seed). Nothing crosses: each keeps its own data and takes its own writes, both log the
/// other once, and `/state` shows the other as foreign.
fn two_clusters_share_nothing(writes: &str) {
    let (dir_a, dir_b) = (TempDir::new("cluster-a"), TempDir::new("cluster-b"));
    let mode = format!("--writes={writes}");
    let a = Server::start(&[&dir_a.flag(), &mode]);
    let b = Server::start(&[&dir_b.flag(), &mode]);
    assert_eq!(a.request("PUT", "/data/who", b"\"a\"").status, 200);
    // The other cluster's store is the newer one: local writes would take it if nothing stopped them.
    for value in ["\"b\"", "\"b2\"", "\"b3\""] {
        assert_eq!(b.request("PUT", "/data/who", value.as_bytes()).status, 200);
    }
    b.terminate();
    let seed = format!("--seeds={}", a.addr);
    let b = Server::start(&[&dir_b.flag(), &mode, &seed, "--bootstrap-limit=1"]);
    wait_for("both nodes to log the other cluster", || {
        let refused = |s: &Server| s.log().iter().any(|l| l.contains("ERROR") && l.contains("belongs to cluster"));
        refused(&a) && refused(&b)
    });
    wait_for("the second node to show its seed as foreign", || {
        b.get("/state").json()["cluster"].as_array().unwrap().iter().any(|p| p["foreign"] == "foreign")
    });
    assert_eq!(a.request("PUT", "/data/who", b"\"a2\"").status, 200);
    wait_for("the second node to serve its own store", || b.get("/data/who").status == 200);
    assert_eq!(a.get("/data/who").json(), "a2", "the first cluster keeps its own writes");
    assert_eq!(b.get("/data/who").json(), "b3", "the second cluster keeps its own store");
    assert_eq!(b.request("PUT", "/data/who", b"\"b4\"").status, 200, "and takes its own writes");
    assert_eq!(a.get("/data/who").json(), "a2");
    let errors =
        |s: &Server| s.log().iter().filter(|l| l.contains("ERROR") && l.contains("belongs to cluster")).count();
    assert_eq!((errors(&a), errors(&b)), (1, 1), "each logs the other once");
    // A peer's message from the other cluster is refused, naming both ids.
    let b_cluster = b.get("/state").json()["cluster-id"].as_str().expect("a cluster id").to_string();
    let from = b.addr.to_string();
    let headers = [("X-Lighthouse-Writes", writes), ("X-Lighthouse-Cluster", &b_cluster), ("X-Lighthouse-From", &from)];
    let refused = a.request_with("PUT", "/state", &headers, format!("[{{\"address\": \"{from}\"}}]").as_bytes());
    let a_cluster = a.get("/state").json()["cluster-id"].as_str().expect("a cluster id").to_string();
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(refused.error().contains(&a_cluster) && refused.error().contains(&b_cluster), "{}", refused.error());
    assert!(a.get("/state").json()["cluster"].as_array().unwrap().is_empty(), "the other node never joins the table");
}

#[test]
fn two_clusters_and_a_mistyped_seed_share_nothing_with_coordinated_writes() {
    two_clusters_share_nothing("coordinated");
}

#[test]
fn two_clusters_and_a_mistyped_seed_share_nothing_with_local_writes() {
    two_clusters_share_nothing("local");
}

#[test]
fn a_node_of_the_other_write_mode_is_refused() {
    let dir = TempDir::new("other-mode");
    let coordinated = Server::start(&[&dir.flag()]);
    assert_eq!(coordinated.request("PUT", "/data/x", b"1").status, 200);
    let seed = format!("--seeds={}", coordinated.addr);
    let local = Server::start(&["--writes=local", &seed, "--bootstrap-limit=1"]);
    wait_for("the local node to show its seed as of the other mode", || {
        local.get("/state").json()["cluster"].as_array().unwrap().iter().any(|p| p["foreign"] == "other-mode")
    });
    wait_for("the coordinated node to log the other mode", || {
        coordinated.log().iter().any(|l| l.contains("ERROR") && l.contains("same --writes"))
    });
    wait_for("the local node to serve", || local.get("/ready").status == 200);
    assert_eq!(local.get("/data").json(), serde_json::json!({}), "it took nothing from the other mode");
    assert_eq!(coordinated.get("/data/x").json(), 1);
}

#[test]
fn node_json_holds_the_id_and_cluster_before_the_node_speaks_to_peers() {
    let first = Server::start(&[&TempDir::new("id-first").flag()]);
    let dir = TempDir::new("id-joiner");
    let seed = format!("--seeds={}", first.addr);
    // A joiner whose seed answers nothing yet still writes its id at start.
    let silent = TempDir::new("id-silent");
    let lonely = Server::start(&[&silent.flag(), "--seeds=127.0.0.1:1"]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(silent.path().join("node.json")).expect("node.json is written at start"))
            .unwrap();
    assert!(state["id"].is_string() && state["cluster"].is_null(), "{state}");
    drop(lonely);
    let joiner = Server::start(&[&dir.flag(), &seed]);
    let cluster = first.get("/state").json()["cluster-id"].clone();
    wait_for("the joiner to write the cluster it joined", || {
        let bytes = std::fs::read(dir.path().join("node.json")).unwrap_or_default();
        serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|s| s["cluster"] == cluster)
    });
    drop(joiner);
}

/// Compare-and-set writers, one per node, each through its own node (the next one while that one
/// is down), counting what they were answered.
struct CasWriters {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<(u64, Instant)>>>,
}

impl CasWriters {
    fn start(addresses: Vec<std::net::SocketAddr>) -> CasWriters {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let threads = (0..addresses.len())
            .map(|writer| {
                let (addresses, stop) = (addresses.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut committed = Vec::new();
                    let mut turn = writer;
                    while !stop.load(Ordering::Relaxed) {
                        match support::counter::cas_increment(addresses[turn % addresses.len()]) {
                            support::counter::Increment::Committed { value, .. } => {
                                committed.push((value, Instant::now()))
                            }
                            _ => {
                                turn += 1;
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                    }
                    committed
                })
            })
            .collect();
        CasWriters { stop, threads }
    }

    fn finish(self) -> Vec<(u64, Instant)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all: Vec<(u64, Instant)> = self.threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_by_key(|(_, at)| *at);
        all
    }
}

#[test]
fn a_rolling_restart_under_compare_and_set_writers_loses_nothing() {
    let mut members = chain(3, "rolling", &[]);
    assert_eq!(members[0].server().request("PUT", "/data/counter", b"0").status, 200);
    let addresses: Vec<std::net::SocketAddr> = members.iter().map(|m| m.proxy.addr).collect();
    let writers = CasWriters::start(addresses);
    let mut steps = Vec::new();
    for _round in 0..2 {
        for i in 0..members.len() {
            let began = Instant::now();
            stop(&mut members[i]);
            start_again(&mut members, i);
            wait_settled(&members);
            steps.push((began, Instant::now()));
        }
    }
    let committed = writers.finish();
    wait_settled(&members);
    let mut values: Vec<u64> = committed.iter().map(|(v, _)| *v).collect();
    values.sort_unstable();
    let count = values.len();
    values.dedup();
    assert_eq!(values.len(), count, "two increments answered 200 wrote the same value");
    for member in &members {
        let counter = member.server().get("/data/counter").json().as_u64().unwrap();
        assert!(counter >= count as u64, "{counter} on {} counts all {count} answered increments", member.address());
        assert!(values.iter().all(|v| *v <= counter), "every answered value is at most the counter");
    }
    // The longest time without an answered write during each step (a restart and its catching up).
    let mut worst = Duration::ZERO;
    for (began, ended) in steps {
        let mut last = began;
        for at in committed.iter().map(|(_, at)| *at).filter(|at| *at > began && *at < ended) {
            worst = worst.max(at - last);
            last = at;
        }
        worst = worst.max(ended.saturating_duration_since(last));
    }
    eprintln!("rolling restart: {count} increments answered, longest write gap in a step {worst:?}");
    assert!(worst < Duration::from_secs(5), "writes paused {worst:?} in one step of the rolling restart");
}

#[test]
fn a_new_cluster_at_a_voters_address_is_not_taken_for_its_replacement() {
    let mut members = chain(3, "imposter", &[]);
    assert_eq!(members[1].server().request("PUT", "/data/kept", b"true").status, 200);
    wait_settled(&members);
    let before = voters(&members[1]);
    // The founder's disk dies, and it is started again as README once said: an empty directory and
    // no seeds. It founds a cluster of its own, which the others refuse.
    members[0].kill9();
    std::fs::remove_dir_all(members[0].dir.path()).unwrap();
    members[0].start(&[]);
    wait_for("the others to see the new node as foreign", || {
        let foreign = |m: &Member| {
            m.server().get("/state").json()["cluster"].as_array().unwrap().iter().any(|p| p["foreign"] == "foreign")
        };
        foreign(&members[1]) && foreign(&members[2])
    });
    assert_eq!(voters(&members[1]), before, "the old cluster did not take it for the founder's replacement");
    assert_eq!(members[1].server().get("/data/kept").json(), true);
    // Started properly (with --seeds), it replaces the founder.
    members[0].kill9();
    std::fs::remove_dir_all(members[0].dir.path()).unwrap();
    let seeds = format!("--seeds={},{}", members[1].address(), members[2].address());
    members[0].start(&[&seeds]);
    let id = members[0].server().get("/state").json()["id"].as_str().unwrap().to_string();
    wait_for("the new node to be a voter in the founder's place", || voters(&members[1]).contains(&id));
    wait_settled(&members);
    assert_eq!(members[0].server().get("/data/kept").json(), true);
}

#[test]
fn a_clean_stop_leaves_the_served_store_on_disk_even_one_taken_while_an_older_write_ran() {
    // With local writes a node serves a version taken from a peer at once and writes it after; a
    // newer one that arrives while that write runs waits for it. A clean stop must end both
    // writes, or the next start serves the older store (and a cluster founded on it holds its
    // peers back for ever). Its disk made slow, the node is still writing the first version when
    // it takes the second and is stopped.
    let mut members = chain(2, "stop-in-flight", &["--writes=local"]);
    let write = Duration::from_millis(1_500);
    let Some(slow) = SlowDisk::attach(members[0].server().child.id(), write) else { return };
    let put = |m: &Member, path: &str, body: &[u8]| m.server().request("PUT", path, body).status;
    assert_eq!(put(&members[1], "/data/n", b"1"), 200);
    wait_for("the peer to serve the first commit", || members[0].server().get("/data/n").text() == "1\n");
    let started = Instant::now();
    assert_eq!(put(&members[1], "/data/n", b"2"), 200);
    wait_for("the peer to serve the second commit", || members[0].server().get("/data/n").text() == "2\n");
    let served = members[0].version();
    let taken = started.elapsed();
    assert!(taken < write / 2, "the second was taken while the first was written: {taken:?}");
    let (status, log) = members[0].server.take().expect("it runs").terminate_logged();
    assert!(status.success(), "{status:?}");
    assert!(log.iter().any(|l| l.contains("finishing the snapshot write in flight")), "{log:?}");
    drop(slow);
    members[1].kill9();
    // Alone now: `--bootstrap` serves what it loaded without waiting for its stored peer.
    members[0].start(&["--bootstrap"]);
    assert_eq!(members[0].version(), served, "the store it served when it was stopped");
    assert_eq!(members[0].server().get("/data/n").text(), "2\n");
}
