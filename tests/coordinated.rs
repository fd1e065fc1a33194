//! Coordinated writes with real server processes: three nodes behind cuttable proxies, writers
//! that increment one counter by the lock dance (acquire, read, stage value + 1, commit) through
//! every node at once, and the faults the cluster must survive without losing an answered commit.
//!
//! The invariant every test checks: the values the answered (200) commits wrote are distinct, and
//! the final counter, the same on every node, counts every one of them (plus, at most, commits
//! whose outcome was unknown: answered 504).

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::cluster::Member;
use support::counter::{Increment, increment};
use support::{Rng, transact, try_request, wait_for};

/// Each node's client address while it runs.
type Addresses = Arc<Mutex<Vec<Option<SocketAddr>>>>;

/// What the writers saw.
#[derive(Default)]
struct Tally {
    /// Value written and (lock granted, answered) instants of every commit answered 200.
    committed: Vec<(u64, Instant, Instant)>,
    unknown: u64,
    refused: u64,
}

/// One writer per node, each sending every request of its transactions to its own node (or, while
/// that node is down, to the next one up), until `stop`.
struct Writers {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(addresses: &Addresses) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let count = addresses.lock().unwrap().len();
        let threads = (0..count)
            .map(|writer| {
                let (addresses, stop, tally) = (addresses.clone(), stop.clone(), tally.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng::new(writer as u64 + 11);
                    let mut attempt = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let up = addresses.lock().unwrap().clone();
                        let Some(address) = (0..count).find_map(|i| up[(writer + i) % count]) else { continue };
                        // A new name for every attempt: after a 504 a name is never reused.
                        attempt += 1;
                        let outcome = increment(address, &format!("w{writer}-{attempt}"));
                        let mut tally = tally.lock().unwrap();
                        match outcome {
                            Increment::Committed { value, started } => {
                                tally.committed.push((value, started, Instant::now()))
                            }
                            Increment::Unknown => tally.unknown += 1,
                            Increment::Refused => {
                                tally.refused += 1;
                                drop(tally);
                                std::thread::sleep(Duration::from_millis(1 + rng.below(10)));
                            }
                        }
                    }
                })
            })
            .collect();
        Writers { stop, tally, threads }
    }

    fn answered(&self) -> usize {
        self.tally.lock().unwrap().committed.len()
    }

    fn wait_answered(&self, at_least: usize) {
        wait_for(&format!("{at_least} answered commits"), || self.answered() >= at_least);
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        Arc::try_unwrap(self.tally).ok().unwrap().into_inner().unwrap()
    }
}

fn addresses(members: &[Member]) -> Addresses {
    Arc::new(Mutex::new(members.iter().map(|m| Some(m.server().addr)).collect()))
}

fn set_counter_to_zero(members: &[Member]) {
    assert_eq!(transact(members[0].server(), "init", "/counter", "0").status, 200);
}

/// Waits until every node serves the same counter, and returns it.
fn final_counter(members: &[Member]) -> u64 {
    final_version(members);
    let counters: Vec<u64> = members.iter().map(|m| m.server().get("/data/counter").json().as_u64().unwrap()).collect();
    assert!(counters.iter().all(|c| *c == counters[0]), "every node serves one counter: {counters:?}");
    counters[0]
}

/// Asserts that no answered commit is lost, and returns (answered, final, lost) for the report.
fn assert_nothing_lost(tally: &Tally, members: &[Member]) -> (usize, u64) {
    let counter = final_counter(members);
    let values: BTreeSet<u64> = tally.committed.iter().map(|(v, _, _)| *v).collect();
    let answered = tally.committed.len();
    assert_eq!(values.len(), answered, "two answered commits wrote the same value: one of them is lost");
    assert!(values.iter().all(|v| *v <= counter), "an answered value above the final counter {counter}");
    assert!(
        counter >= answered as u64 && counter <= answered as u64 + tally.unknown,
        "the counter {counter} counts the {answered} answered commits and at most the {} unknown ones",
        tally.unknown
    );
    (answered, counter)
}

/// The member that coordinates, as every node reports it.
fn coordinator(members: &[Member]) -> usize {
    let address = members[0].writes()["coordinator"].as_str().expect("a coordinator is known").to_string();
    members.iter().position(|m| m.address() == address).expect("the coordinator is a member")
}

#[test]
fn three_writers_on_three_nodes_lose_no_commit_with_coordinated_writes() {
    let members = support::cluster::chain(3, "counter", &[]);
    set_counter_to_zero(&members);
    let writers = Writers::start(&addresses(&members));
    writers.wait_answered(120);
    let tally = writers.finish();
    let (answered, counter) = assert_nothing_lost(&tally, &members);
    eprintln!(
        "coordinated writes, 3 writers on 3 nodes: {answered} answered, counter {counter} on every node, 0 lost \
         ({} outcome unknown, {} refused and retried)",
        tally.unknown, tally.refused
    );
}

#[test]
fn three_writers_on_three_nodes_with_local_writes_converge_and_may_lose_commits() {
    let members = support::cluster::chain(3, "counter-local", &["--writes=local"]);
    set_counter_to_zero(&members);
    let writers = Writers::start(&addresses(&members));
    writers.wait_answered(120);
    let tally = writers.finish();
    // The available mode promises convergence, not the lock: every node ends on one counter.
    let counter = final_counter(&members);
    let answered = tally.committed.len() as u64;
    assert!(counter <= answered, "the counter {counter} counts no more than the {answered} commits");
    eprintln!(
        "local writes, 3 writers on 3 nodes: {answered} answered, counter {counter} on every node, {} lost",
        answered - counter
    );
}

#[test]
fn a_transaction_may_send_each_request_to_another_node() {
    let members = support::cluster::chain(3, "spread", &[]);
    let [a, b, c] = [0, 1, 2].map(|i| members[i].server());
    assert_eq!(a.request("PUT", "/lock", b"spread").status, 200);
    assert_eq!(b.request("PUT", "/lock", b"other").status, 403, "the lock is the cluster's");
    assert_eq!(c.request("PUT", "/lock", b"other").status, 403, "the lock is the cluster's");
    assert_eq!(b.request("PUT", "/update/spread/where", br#""three nodes""#).status, 201);
    assert_eq!(a.get("/update/spread/where").text(), "\"three nodes\"\n", "the staged change is the coordinator's");
    let committed = c.request("PUT", "/lock/spread", b"");
    assert_eq!(committed.status, 200, "{}", committed.text());
    let sequence = committed.json()["sequence"].as_u64().unwrap();
    // Read your write on any node: `?min-version` waits for the commit's sequence.
    for member in &members {
        let read = member.server().get(&format!("/data/where?min-version={sequence}"));
        assert_eq!((read.status, read.text().as_str()), (200, "\"three nodes\"\n"));
        let served: u64 = read.header("X-Lighthouse-Version").unwrap().split('-').next().unwrap().parse().unwrap();
        assert!(served >= sequence);
    }
    // Every node names the coordinator and the term, in `/` and in `/state`.
    let coordinator = members[coordinator(&members)].address();
    for member in &members {
        let info = member.server().get("/").json();
        assert_eq!(info["coordinator"], coordinator);
        assert!(info["term"].as_u64().unwrap() >= 1);
        assert_eq!(member.writes()["term"], info["term"]);
    }
}

#[test]
fn a_read_with_min_version_on_another_node_sees_the_commit_it_names() {
    let members = support::cluster::chain(3, "ryw", &[]);
    for round in 0..30 {
        let writer = members[round % 3].server();
        let committed = transact(writer, &format!("ryw{round}"), "/round", &round.to_string());
        assert_eq!(committed.status, 200);
        let sequence = committed.json()["sequence"].as_u64().unwrap();
        let reader = members[(round + 1) % 3].server();
        let (code, body) = support::curl(&[&reader.url(&format!("/data/round?min-version={sequence}"))]);
        assert_eq!((code, body), (0, format!("{round}\n")), "round {round}: read on the next node");
    }
    let far = members[0].server().get("/data/round?min-version=1000000");
    assert_eq!(far.status, 503, "a sequence the node never reaches answers 503 after the wait");
    assert!(far.header("Retry-After").is_some());
}

#[test]
fn with_every_link_cut_no_commit_is_answered_200_and_writes_resume_after_the_heal() {
    let members = support::cluster::chain(3, "cut-all", &[]);
    let leader = coordinator(&members);
    let server = members[leader].server();
    assert_eq!(server.request("PUT", "/lock", b"before").status, 200);
    assert_eq!(server.request("PUT", "/update/before/x", b"1").status, 201);
    for member in &members {
        member.proxy.cut();
    }
    // 504 (outcome unknown) once pushed; 503 (nothing committed) if it waited behind a change of
    // voters, a promotion the cluster may still be making, that cannot finish either.
    let commit = server.request("PUT", "/lock/before", b"");
    match commit.status {
        504 => assert_eq!(commit.json()["outcome"], "unknown"),
        503 => assert!(commit.error().contains("nothing was committed"), "{}", commit.text()),
        status => panic!("no majority holds it, yet the commit answered {status}: {}", commit.text()),
    }

    // Until every node has given up its lease and its coordinator, no commit is answered 200.
    for (i, member) in members.iter().enumerate() {
        let mut attempt = 0;
        wait_for(&format!("node {i} to refuse writes for want of a majority"), || {
            attempt += 1;
            let name = format!("cut{i}-{attempt}");
            let acquired = member.server().request("PUT", "/lock", name.as_bytes());
            if acquired.status == 200 {
                let _ = member.server().request("PUT", &format!("/update/{name}/x"), b"2");
                let commit = member.server().request("PUT", &format!("/lock/{name}"), b"");
                assert_ne!(commit.status, 200, "node {i} answered a commit 200 with every link cut");
                return false;
            }
            acquired.status == 503
                && acquired.header("Retry-After").is_some()
                && acquired.error().starts_with("writes need a majority: 1 of 3 voters reachable")
        });
        let read = member.server().get("/data");
        assert_eq!(read.status, 200, "reads stay available on node {i}");
        assert!(read.header("X-Lighthouse-Version").is_some());
    }

    for member in &members {
        member.proxy.heal();
    }
    for (i, member) in members.iter().enumerate() {
        let mut attempt = 0;
        wait_for(&format!("a commit through node {i} after the heal"), || {
            attempt += 1;
            let name = format!("healed{i}-{attempt}");
            try_request(member.server().addr, "PUT", "/lock", name.as_bytes()).is_ok_and(|r| r.status == 200)
                && member.server().request("PUT", &format!("/update/{name}/after{i}"), b"true").status == 201
                && member.server().request("PUT", &format!("/lock/{name}"), b"").status == 200
        });
    }
    final_version(&members);
}

#[test]
fn cutting_the_coordinators_inbound_links_loses_nothing() {
    // A transaction that was forwarded to the coordinator when the cut came cannot abort: its lock
    // holds everyone off until it lapses, so the lease is short here.
    let members = support::cluster::chain(3, "cut-in", &["--lock-timeout=2"]);
    set_counter_to_zero(&members);
    let writers = Writers::start(&addresses(&members));
    writers.wait_answered(20);
    let leader = coordinator(&members);
    members[leader].proxy.cut();
    let during = writers.answered();
    writers.wait_answered(during + 10);
    members[leader].proxy.heal();
    let after = writers.answered();
    writers.wait_answered(after + 20);
    let tally = writers.finish();
    let (answered, counter) = assert_nothing_lost(&tally, &members);
    eprintln!(
        "coordinator's inbound links cut: {answered} answered ({} while cut), counter {counter}, 0 lost",
        after - during
    );
}

#[test]
fn kill_9_of_the_coordinator_under_load_loses_nothing_and_writes_resume_within_3_seconds() {
    let mut members = support::cluster::chain(3, "failover", &[]);
    set_counter_to_zero(&members);
    let up = addresses(&members);
    let writers = Writers::start(&up);
    writers.wait_answered(20);
    let leader = coordinator(&members);
    up.lock().unwrap()[leader] = None;
    members[leader].kill9();
    let killed = Instant::now();
    // The first commit whose lock was granted after the kill, by a new coordinator.
    let mut resumed = None;
    wait_for("a commit through the surviving nodes", || {
        resumed = writers
            .tally
            .lock()
            .unwrap()
            .committed
            .iter()
            .filter(|(_, started, _)| *started > killed)
            .map(|c| c.2)
            .min();
        resumed.is_some()
    });
    let outage = resumed.unwrap() - killed;
    let survivors: Vec<&Member> = members.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, m)| m).collect();
    let new_leader = survivors[0].writes()["coordinator"].clone();
    assert_ne!(new_leader, members[leader].address(), "a survivor coordinates");
    let before = writers.answered();
    writers.wait_answered(before + 10);
    members[leader].start(&[]);
    up.lock().unwrap()[leader] = Some(members[leader].server().addr);
    let later = writers.answered();
    writers.wait_answered(later + 10);
    let tally = writers.finish();
    let (answered, counter) = assert_nothing_lost(&tally, &members);
    eprintln!(
        "kill -9 of the coordinator under load: writes answered again {} ms after the kill; {answered} answered, \
         counter {counter}, 0 lost ({} outcome unknown)",
        outage.as_millis(),
        tally.unknown
    );
    assert!(outage < Duration::from_secs(3), "writes resumed {outage:?} after the kill");
}

#[test]
fn delete_state_address_removes_a_dead_voter_by_a_commit() {
    let mut members = support::cluster::chain(3, "remove", &[]);
    let leader = coordinator(&members);
    let victim = (leader + 1) % 3;
    let other = 3 - leader - victim;
    let gone = members[victim].address();
    members[victim].kill9();
    // As a script would: retry while another change (a promotion, say) is being committed.
    wait_for("the removal to be committed", || {
        let removed = members[other].server().request("DELETE", &format!("/state/{gone}"), b"");
        assert!([200, 409].contains(&removed.status), "{}", removed.text());
        removed.status == 200
    });
    for i in [leader, other] {
        wait_for(&format!("node {i} to count two voters"), || {
            let voters = members[i].writes()["voters"].clone();
            voters.as_array().unwrap().len() == 2 && !voters.to_string().contains(&gone)
        });
    }
    let again = members[leader].server().request("DELETE", &format!("/state/{gone}"), b"");
    assert_eq!(again.status, 404, "it is no voter any more");
    assert_eq!(transact(members[other].server(), "after", "/two", "2").status, 200, "two voters commit");
}

#[test]
fn a_local_writes_cluster_upgrades_to_coordinated_writes_with_its_store() {
    let mut members = support::cluster::chain(3, "upgrade", &["--writes=local"]);
    assert_eq!(transact(members[1].server(), "before", "/kept", r#""from local writes""#).status, 200);
    let local = final_version(&members);
    for member in &mut members {
        member.server.take().unwrap().terminate();
    }
    // The upgrade of docs/clustering.md: the first node founds the cluster with the store it holds.
    members[0].start(&["--bootstrap"]);
    members[1].start(&[]);
    members[2].start(&[]);
    support::cluster::wait_settled(&members);
    for member in &members {
        assert_eq!(member.server().get("/data/kept").text(), "\"from local writes\"\n");
        let sequence = member.version()["sequence"].as_u64().unwrap();
        assert!(sequence >= local["sequence"].as_u64().unwrap(), "the store did not go back");
    }
    assert_eq!(transact(members[2].server(), "after", "/added", "1").status, 200);
    assert_eq!(members[0].server().get("/data/kept").status, 200);
}

/// Waits until every node serves the same version, and returns it.
fn final_version(members: &[Member]) -> serde_json::Value {
    wait_for("every node to serve the same version", || {
        let versions: Vec<serde_json::Value> = members.iter().map(Member::version).collect();
        versions.iter().all(|v| *v == versions[0])
    });
    members[0].version()
}

#[test]
fn a_first_node_started_on_a_snapshot_from_before_coordinated_writes_is_joined_by_learners() {
    let mut members: Vec<Member> = (0..3).map(|i| Member::new(&format!("hand{i}"))).collect();
    support::write_snapshot(members[0].dir.path(), 1_700_000_000_000_000, 5, r#"{"written":"by hand"}"#);
    members[0].start(&[]);
    let seed = format!("--seeds={}", members[0].address());
    members[1].start(&[&seed]);
    members[2].start(&[&seed]);
    support::cluster::wait_settled(&members);
    for member in &members {
        assert_eq!(member.server().get("/data/written").text(), "\"by hand\"\n");
        assert_eq!(member.writes()["voters"].as_array().map(Vec::len), Some(3), "every node is a voter");
    }
    assert_eq!(transact(members[1].server(), "after", "/more", "1").status, 200);
}

#[test]
fn a_node_with_local_writes_newer_than_the_founders_store_says_how_to_keep_its_data() {
    // The upgrade from local writes founds the cluster on the node with the newest version; when
    // an operator picks another, a node holding a newer one is never replaced (the coordinator
    // pushes only to older stores) and waits: its 503 says why and both ways out.
    let mut members: Vec<Member> = (0..2).map(|i| Member::new(&format!("older-founder{i}"))).collect();
    support::write_snapshot(members[1].dir.path(), 1_700_000_000_000_000, 5, r#"{"kept":"newer"}"#);
    members[0].start(&["--bootstrap"]);
    let seed = format!("--seeds={}", members[0].address());
    members[1].start(&[&seed]);
    let mut said = String::new();
    wait_for("the node to say why it waits", || {
        let answer = members[1].server().get("/data/kept");
        said = answer.text();
        answer.status == 503 && said.contains(&members[0].address())
    });
    assert!(said.contains("sequence 5") && said.contains("start this one first, with --bootstrap"), "{said}");
    assert!(said.contains("empty data directory"), "{said}");
    assert_eq!(members[1].version()["sequence"], 5, "its data is kept meanwhile");
    assert_eq!(members[0].server().get("/data").text(), "{}\n", "nor does it replace the cluster's");
}
