//! Peers get the change: a commit of one key into a large store sends the voters (and, with local
//! writes, the peers it pushes to) the change, not the store; a node that was down catches up
//! whole; a large `PUT` into three nodes answers 200. Bytes are read from each node's
//! `lighthouse_peer_sent_bytes_total`.

mod support;

use support::cluster::{Member, chain};
use support::wait_for;

/// The bytes a change may cost on the wire, per peer: the patch, its versions and lineage, the
/// request's head, and the gossip and beats that run meanwhile.
const CHANGE_WIRE_BYTES_MAX: u64 = 64 * 1024;

/// A store of about `mib` MiB: 1 KiB values under keys `k0`, `k1`, ...
fn store(mib: usize) -> Vec<u8> {
    let value = "v".repeat(1_000);
    let entries: Vec<String> = (0..mib * 1_024).map(|i| format!("\"k{i}\":\"{value}\"")).collect();
    format!("{{{}}}", entries.join(",")).into_bytes()
}

fn metric(member: &Member, name: &str) -> u64 {
    let text = member.server().get("/metrics").text();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn sent(members: &[Member]) -> Vec<u64> {
    members.iter().map(|m| metric(m, "lighthouse_peer_sent_bytes_total")).collect()
}

fn coordinator(members: &[Member]) -> usize {
    let address = members[0].writes()["coordinator"].as_str().expect("a coordinator is known").to_string();
    members.iter().position(|m| m.address() == address).expect("the coordinator is a member")
}

fn wait_all_serve(members: &[&Member], path: &str, value: &str) {
    wait_for(&format!("every node to serve {path} = {value}"), || {
        members.iter().all(|m| m.server().get(path).text().trim() == value)
    });
}

#[test]
fn a_one_key_commit_into_a_10_mb_store_sends_the_voters_the_change_and_a_voter_back_catches_up() {
    let _heavy = support::heavy();
    let mut members = chain(3, "change", &[]);
    let leader = coordinator(&members);
    let put = members[leader].server().request("PUT", "/data", &store(10));
    assert_eq!(put.status, 200, "{}", put.text());
    support::cluster::wait_settled(&members);
    // Settled is every node holding the version; a whole copy sent to a voter that raced ahead of
    // it may still be going out. Measure from when the coordinator sends no more than gossip.
    wait_for("the coordinator's sends to quiet down to gossip", || {
        let start = sent(&members)[leader];
        std::thread::sleep(std::time::Duration::from_millis(300));
        sent(&members)[leader] - start < 64 * 1024
    });
    let before = sent(&members);
    let put = members[leader].server().request("PUT", "/data/k1", b"\"changed\"");
    assert_eq!(put.status, 200, "{}", put.text());
    let all: Vec<&Member> = members.iter().collect();
    wait_all_serve(&all, "/data/k1", "\"changed\"");
    let after = sent(&members);
    let by_leader = after[leader] - before[leader];
    eprintln!("a one-key commit into a 10 MiB store: the coordinator sent {by_leader} bytes to its 2 peers");
    assert!(by_leader < 2 * CHANGE_WIRE_BYTES_MAX, "the change, not the store: {by_leader} bytes");
    assert!(metric(&members[leader], "lighthouse_changes_pushed_total") >= 2);

    // A voter down while two commits land, then back: it catches up, whole.
    let away = (leader + 1) % 3;
    members[away].kill9();
    for value in ["\"one\"", "\"two\""] {
        let put = members[leader].server().request("PUT", "/data/k2", value.as_bytes());
        assert_eq!(put.status, 200, "{}", put.text());
    }
    members[away].start(&[]);
    wait_all_serve(&all_members(&members), "/data/k2", "\"two\"");
    let put = members[leader].server().request("PUT", "/data/k3", b"\"after\"");
    assert_eq!(put.status, 200, "{}", put.text());
    wait_all_serve(&all_members(&members), "/data/k3", "\"after\"");
}

fn all_members(members: &[Member]) -> Vec<&Member> {
    members.iter().collect()
}

#[test]
fn a_30_mb_put_into_three_nodes_answers_200() {
    let _heavy = support::heavy();
    let members = chain(3, "large-put", &[]);
    let leader = coordinator(&members);
    // Through a node that forwards it, and to the coordinator itself.
    let other = (leader + 1) % 3;
    let put = members[other].server().request("PUT", "/data", &store(30));
    assert_eq!(put.status, 200, "{}", put.text());
    let put = members[leader].server().request("PUT", "/data/k0", b"\"small\"");
    assert_eq!(put.status, 200, "{}", put.text());
    wait_all_serve(&all_members(&members), "/data/k0", "\"small\"");
}

#[test]
fn with_local_writes_a_commit_pushes_the_change_and_values_converge() {
    let _heavy = support::heavy();
    let members = chain(3, "change-local", &["--writes=local"]);
    let put = members[0].server().request("PUT", "/data", &store(10));
    assert_eq!(put.status, 200, "{}", put.text());
    let all = all_members(&members);
    wait_for("every node to take the 10 MiB store", || {
        let versions: Vec<_> = members.iter().map(Member::version).collect();
        versions.iter().all(|v| *v == versions[0])
    });
    let before = sent(&members);
    let pushed = metric(&members[0], "lighthouse_changes_pushed_total");
    let put = members[0].server().request("PUT", "/data/k1", b"\"changed\"");
    assert_eq!(put.status, 200, "{}", put.text());
    wait_all_serve(&all, "/data/k1", "\"changed\"");
    let by_writer = sent(&members)[0] - before[0];
    eprintln!("local writes, a one-key commit into a 10 MiB store: the writer sent {by_writer} bytes to its peers");
    assert!(by_writer < 2 * CHANGE_WIRE_BYTES_MAX, "the change, not the store: {by_writer} bytes");
    assert!(metric(&members[0], "lighthouse_changes_pushed_total") > pushed);
}

/// The longest a node may take to answer `GET /health` while a worker renders a whole copy: the
/// loop never renders one, so this is the machine's scheduling, not the store's size.
const HEALTH_WHILE_RENDERING_MS_MAX: u128 = 1_000;

/// `GET /copy` requests a node answered: a peer's own fetch of the whole store.
fn copy_fetches(member: &Member) -> u64 {
    let text = member.server().get("/metrics").text();
    let prefix = "lighthouse_requests_total{endpoint=\"copy\",method=\"GET\",";
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn rendered(members: &[Member]) -> Vec<u64> {
    members.iter().map(|m| metric(m, "lighthouse_bodies_rendered_total")).collect()
}

#[test]
fn commits_into_a_10_mb_store_render_no_whole_body_and_a_voter_back_with_an_older_store_gets_it_whole() {
    let _heavy = support::heavy();
    let mut members = chain(3, "bodies", &[]);
    let leader = coordinator(&members);
    let put = members[leader].server().request("PUT", "/data", &store(10));
    assert_eq!(put.status, 200, "{}", put.text());
    support::cluster::wait_settled(&members);
    let (before, fetches) = (rendered(&members), members.iter().map(copy_fetches).collect::<Vec<_>>());
    for i in 0..5 {
        let put = members[leader].server().request("PUT", &format!("/data/k{i}"), b"\"changed\"");
        assert_eq!(put.status, 200, "{}", put.text());
    }
    wait_all_serve(&all_members(&members), "/data/k4", "\"changed\"");
    // A voter whose pushes lag under load may fetch the store itself on gossip (`GET /copy`);
    // that render answers the fetch, and is not the commits'.
    let fetched: Vec<u64> =
        members.iter().map(copy_fetches).zip(&fetches).map(|(after, before)| after - before).collect();
    let by_commits: Vec<u64> =
        rendered(&members).iter().zip(&before).zip(&fetched).map(|((a, b), f)| a.saturating_sub(b + f)).collect();
    assert_eq!(by_commits, [0, 0, 0], "a commit whose change goes to every voter renders no whole body");

    // A voter down while two commits land comes back with its older store: it gets the whole
    // copy, rendered by a worker, while every node's loop keeps answering.
    let away = (leader + 1) % 3;
    let up: Vec<usize> = (0..3).filter(|i| *i != away).collect();
    let rendered_up = |members: &[Member]| -> u64 {
        up.iter().map(|i| metric(&members[*i], "lighthouse_bodies_rendered_total")).sum()
    };
    let fetched_up = |members: &[Member]| -> u64 { up.iter().map(|i| copy_fetches(&members[*i])).sum() };
    members[away].kill9();
    let (before, fetches) = (rendered_up(&members), fetched_up(&members));
    for value in ["\"one\"", "\"two\""] {
        let put = members[leader].server().request("PUT", "/data/k2", value.as_bytes());
        assert_eq!(put.status, 200, "{}", put.text());
    }
    // As above, a render that answered a lagging voter's own `GET /copy` is not the commits'.
    let by_commits = (rendered_up(&members) - before).saturating_sub(fetched_up(&members) - fetches);
    assert_eq!(by_commits, 0, "nor when a voter is down");
    members[away].start(&[]);
    let mut slowest = 0;
    wait_for("the voter back to serve the newest value", || {
        for member in up.iter().map(|i| &members[*i]) {
            let started = std::time::Instant::now();
            assert_eq!(member.server().get("/health").status, 200);
            slowest = slowest.max(started.elapsed().as_millis());
        }
        members[away].server().get("/data/k2").text().trim() == "\"two\""
    });
    eprintln!("GET /health answered within {slowest} ms while the voter caught up");
    assert!(slowest < HEALTH_WHILE_RENDERING_MS_MAX, "a loop stalled for {slowest} ms");
    let after = rendered_up(&members);
    assert!(after > before, "the voter got the store whole, rendered by a worker: {before} bodies, then {after}");
    let put = members[leader].server().request("PUT", "/data/k3", b"\"after\"");
    assert_eq!(put.status, 200, "{}", put.text());
    wait_all_serve(&all_members(&members), "/data/k3", "\"after\"");
}
