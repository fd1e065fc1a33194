//! Membership as an operator changes it, with real server processes and the commands of
//! `docs/operations.md` (`curl -X DELETE .../state/ADDRESS`): removing a voter (it leaves every
//! table, and stays removed across a restart), the removals that would leave the cluster unable
//! to commit (refused with 409 and why), removing the coordinator (another takes over), growing
//! from 3 voters to 5 and back, and replacing a node at its address with an empty directory.

mod support;

use std::time::{Duration, Instant};

use support::cluster::{Member, chain, wait_settled};
use support::{curl, wait_for};

/// `curl -X DELETE http://ANY/state/ADDRESS`, as the operations guide shows it: (status, body).
fn remove(via: &Member, address: &str) -> (u16, String) {
    let url = via.server().url(&format!("/state/{address}"));
    let (code, out) = curl(&["-X", "DELETE", "--write-out", "\n%{http_code}", &url]);
    assert_eq!(code, 0, "curl ran");
    let (body, status) = out.rsplit_once('\n').expect("curl wrote the status");
    (status.trim().parse().expect("a status code"), body.to_string())
}

/// Removes `address` through `via`, retrying while another change (a promotion) is being
/// committed, as a script would; returns the answer once it is not a 409 with `Retry-After`. A 504
/// (the removal may have landed) is settled as the guide says: by reading the voters.
fn remove_retrying(via: &Member, address: &str) -> (u16, String) {
    let mut answer = (0, String::new());
    wait_for(&format!("the removal of {address} to be answered"), || {
        answer = remove(via, address);
        !(answer.0 == 409 && answer.1.contains("retry")) && answer.0 != 503
    });
    if answer.0 == 504 {
        eprintln!("the removal of {address} answered 504 ({}): reading the voters", answer.1);
        wait_for("the removal that answered 504 to land", || !voters(via).contains(&address.to_string()));
        answer.0 = 200;
    }
    answer
}

/// A one-request write through `member`, retried until answered 200 (writes pause while a
/// coordinator is elected); returns how long it took.
fn write(member: &Member, path: &str, value: u64) -> Duration {
    let start = Instant::now();
    wait_for(&format!("a write of {path} through {}", member.address()), || {
        member.server().request("PUT", &format!("/data{path}"), value.to_string().as_bytes()).status == 200
    });
    start.elapsed()
}

fn voters(member: &Member) -> Vec<String> {
    let voters = member.writes()["voters"].as_array().cloned().unwrap_or_default();
    let mut addresses: Vec<String> = voters.iter().map(|v| v["address"].as_str().unwrap().to_string()).collect();
    addresses.sort();
    addresses
}

/// The index of the member that coordinates, as `members[from]` sees it.
fn coordinator(members: &[Member], from: usize) -> usize {
    let mut found = None;
    wait_for("a coordinator to be known", || {
        let name = members[from].writes()["coordinator"].as_str().map(str::to_string);
        found = name.and_then(|n| members.iter().position(|m| m.server.is_some() && m.address() == n));
        found.is_some()
    });
    found.unwrap()
}

/// Waits until every running member in `members` (by index) counts exactly the voters at
/// `expected` and none of them lists `gone` in its table.
fn wait_voters(members: &[Member], running: &[usize], expected: &[usize], gone: &[String]) {
    let mut want: Vec<String> = expected.iter().map(|&i| members[i].address()).collect();
    want.sort();
    for &i in running {
        wait_for(&format!("node {i} to count the voters {want:?} and forget {gone:?}"), || {
            voters(&members[i]) == want && members[i].peers().iter().all(|p| !gone.contains(p))
        });
    }
}

#[test]
fn a_removed_voter_leaves_every_table_and_stays_removed_after_a_restart() {
    let mut members = chain(3, "leave", &[]);
    let leader = coordinator(&members, 0);
    let victim = (leader + 1) % 3;
    let other = 3 - leader - victim;
    let gone = members[victim].address();
    let (status, body) = remove_retrying(&members[other], &gone);
    assert_eq!(status, 200, "the removal is committed: {body}");
    wait_voters(&members, &[leader, other], &[leader, other], std::slice::from_ref(&gone));
    // The removed node, still running, says so and serves nothing.
    wait_for("the removed node to know it was removed", || members[victim].writes()["role"] == "removed");
    let read = members[victim].server().get("/data");
    assert_eq!(read.status, 503);
    assert!(read.error().contains("was removed from its cluster"), "{}", read.error());
    assert_eq!(members[victim].server().get("/ready").status, 503);
    write(&members[other], "/after", 1);
    // Restarted on its old directory it is still removed, and nobody takes it back.
    members[victim].kill9();
    members[victim].start(&[]);
    wait_for("the restarted node to say it was removed", || members[victim].writes()["role"] == "removed");
    assert_eq!(members[victim].server().get("/data").status, 503);
    // For several sync rounds (a round is half a second), it stays in no table and no voter.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2) {
        for i in [leader, other] {
            assert!(!members[i].peers().contains(&gone), "node {i} learned the removed node again");
            assert!(!voters(&members[i]).contains(&gone), "node {i} counts the removed node as a voter");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = remove(&members[leader], &gone);
    assert_eq!(again.0, 404, "it is neither a voter nor a learner any more: {}", again.1);
    write(&members[leader], "/later", 2);
}

#[test]
fn removing_the_last_voter_is_refused_with_409() {
    let members = chain(1, "last", &[]);
    let (status, body) = remove(&members[0], &members[0].address());
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("is the only voter"), "{body}");
    assert_eq!(voters(&members[0]), vec![members[0].address()]);
    write(&members[0], "/still", 1);
}

#[test]
fn a_removal_that_leaves_no_reachable_majority_is_refused_and_the_cluster_shrinks_to_its_last_voter() {
    let mut members = chain(3, "majority", &[]);
    let leader = coordinator(&members, 0);
    let dead = (leader + 1) % 3;
    let alive = 3 - leader - dead;
    let dead_address = members[dead].address();
    members[dead].kill9();
    // The coordinator counts a voter as answering for 1.31 s after its last acknowledged beat
    // (the lease): once its table shows the dead one unreachable, its last beat is older still.
    wait_for("the coordinator to see the dead voter unreachable", || {
        let state = members[leader].server().get("/state").json();
        let table = state["cluster"].as_array().cloned().unwrap_or_default();
        table.iter().any(|p| p["address"] == dead_address.as_str() && p["reachable"] == false)
    });
    let seen = Instant::now();
    wait_for("the dead voter's last beat to be older than a lease", || seen.elapsed() > Duration::from_millis(1_400));
    // {leader, dead} would be left: one of two answers, and two must.
    let (status, body) = remove_retrying(&members[alive], &members[alive].address());
    assert_eq!(status, 409, "removing the live voter is refused: {body}");
    assert!(body.contains(&format!("bring back or remove {dead_address} first")), "{body}");
    assert_eq!(voters(&members[leader]).len(), 3, "nothing changed");
    let (status, body) = remove_retrying(&members[alive], &dead_address);
    assert_eq!(status, 200, "the dead voter can go: {body}");
    wait_voters(&members, &[leader, alive], &[leader, alive], &[dead_address]);
    write(&members[alive], "/two", 2);
    // Of two voters, either may go (one voter is its own majority), the coordinator too: the
    // one left coordinates alone. It is then the last voter, and stays.
    let (status, body) = remove_retrying(&members[alive], &members[leader].address());
    assert_eq!(status, 200, "{body}");
    write(&members[alive], "/one", 1);
    assert_eq!(voters(&members[alive]), vec![members[alive].address()]);
    assert_eq!(members[alive].writes()["role"], "coordinator");
    let (status, body) = remove_retrying(&members[alive], &members[alive].address());
    assert_eq!(status, 409, "the last voter stays: {body}");
    assert!(body.contains("is the only voter"), "{body}");
}

#[test]
fn removing_the_coordinator_hands_over_and_writes_go_on_through_another() {
    let members = chain(3, "handover", &[]);
    let leader = coordinator(&members, 0);
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let old = members[leader].address();
    let start = Instant::now();
    let (status, body) = remove_retrying(&members[others[0]], &old);
    assert_eq!(status, 200, "the coordinator's removal is committed: {body}");
    let gap = write(&members[others[1]], "/after", 1);
    let resumed = start.elapsed();
    wait_for("another node to coordinate", || {
        let named = members[others[0]].writes()["coordinator"].clone();
        others.iter().any(|&i| named == members[i].address().as_str())
    });
    wait_voters(&members, &others, &others, std::slice::from_ref(&old));
    assert_eq!(members[leader].writes()["role"], "removed");
    assert_eq!(members[leader].server().get("/data").status, 503);
    for &i in &others {
        write(&members[i], "/through", i as u64);
    }
    eprintln!(
        "removing the coordinator: the next write answered 200 {} ms after the removal was asked for \
         ({} ms after its answer)",
        resumed.as_millis(),
        gap.as_millis()
    );
    assert!(resumed < Duration::from_secs(5), "writes resumed {resumed:?} after the removal");
}

#[test]
fn a_cluster_grows_from_three_voters_to_five_and_back_with_writes_at_every_step() {
    let mut members = chain(3, "grow", &[]);
    write(&members[0], "/step", 0);
    let seed = format!("--seeds={}", members[0].address());
    for name in ["grow3", "grow4"] {
        let mut member = Member::new(name);
        member.start(&[&seed]);
        members.push(member);
        wait_settled(&members);
        let n = members.len();
        write(&members[n - 1], "/step", n as u64);
    }
    assert_eq!(voters(&members[0]).len(), 5);
    // Back to three: the operator removes two voters (one of them the coordinator, if it is
    // among the last two), then stops them.
    for step in 0..2 {
        let victim = members.len() - 1 - step;
        let address = members[victim].address();
        let (status, body) = remove_retrying(&members[0], &address);
        assert_eq!(status, 200, "removing {address}: {body}");
        members[victim].kill9();
        let left: Vec<usize> = (0..victim).collect();
        wait_voters(&members, &left, &left, &[address]);
        write(&members[step], "/step", 10 + step as u64);
    }
    members.truncate(3);
    wait_settled(&members);
    for member in &members {
        write(member, "/step", 20);
    }
}

#[test]
fn a_non_founding_node_replaced_at_its_address_with_an_empty_directory_becomes_a_voter() {
    let mut members = chain(3, "replace", &[]);
    write(&members[0], "/before", 1);
    let old_id = members[2].writes()["id"].as_str().unwrap().to_string();
    members[2].kill9();
    // The guide's command: the same address, an empty data directory, --seeds naming a member.
    members[2].dir = support::TempDir::new("replaced");
    let seed = format!("--seeds={}", members[0].address());
    members[2].start(&[&seed]);
    wait_settled(&members);
    let new_id = members[2].writes()["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id, "the new node is a new member");
    for member in &members {
        let ids = member.writes()["voters"].to_string();
        assert!(ids.contains(&new_id) && !ids.contains(&old_id), "voters: {ids}");
        assert_eq!(member.server().get("/data/before").text(), "1\n");
    }
    write(&members[2], "/after", 2);
}
