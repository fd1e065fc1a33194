//! Watching a cluster as an operator does: `GET /metrics` (checked by `promtool check metrics`,
//! read as Prometheus would) and `GET /state` on real server processes. Every node reports one
//! coordinator, the same term and the voters it reaches; a coordinator killed with `kill -9` is
//! replaced by one whose election counters and role show it; a node that joins is a learner until
//! the coordinator promotes it.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::cluster::{Member, chain, wait_settled};
use support::{Server, wait_for};

/// `promtool check metrics` on `text`: the exposition must pass the Prometheus project's own
/// linter (names, units, HELP and TYPE lines, histogram shape).
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian: apt-get install prometheus; .ci/run installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}

/// A node's metrics, parsed as Prometheus parses them.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    fn of(server: &Server) -> Scrape {
        let response = server.get("/metrics");
        assert_eq!(response.status, 200);
        let lines = response.text().lines().map(|l| Ok(l.to_string())).collect::<Vec<std::io::Result<String>>>();
        Scrape(prometheus_parse::Scrape::parse(lines.into_iter()).expect("the exposition parses"))
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let sample = self
            .0
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("{name} {labels:?} is exported"));
        match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{name} is a counter or a gauge, not {other:?}"),
        }
    }

    /// The role whose `lighthouse_role` sample is 1; every node has exactly one.
    fn role(&self) -> String {
        let roles: Vec<&prometheus_parse::Sample> = self
            .0
            .samples
            .iter()
            .filter(|s| {
                s.metric == "lighthouse_role" && matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 1.0)
            })
            .collect();
        assert_eq!(roles.len(), 1, "one role is 1: {roles:?}");
        roles[0].labels.get("role").unwrap().to_string()
    }

    fn count(&self, name: &str) -> u64 {
        self.value(name, &[]) as u64
    }
}

/// The roles `GET /state` on `member` gives: its own, and each peer's by address.
fn state_roles(member: &Member) -> (String, Vec<(String, String)>) {
    let state = member.server().get("/state").json();
    let own = state["role"].as_str().expect("/state has this node's role").to_string();
    let mut peers: Vec<(String, String)> = state["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["address"].as_str().unwrap().to_string(), p["role"].as_str().expect("each peer has a role").to_string())
        })
        .collect();
    peers.sort();
    (own, peers)
}

/// Waits until every member's metrics agree: one coordinator and voters otherwise, one term,
/// `voters` voters, all of them reachable. Returns the coordinator's index and the term.
fn wait_agreed(members: &[&Member], voters: u64) -> (usize, u64) {
    let mut agreed = (0, 0);
    wait_for("the metrics of every node to agree", || {
        let scrapes: Vec<Scrape> = members.iter().map(|m| Scrape::of(m.server())).collect();
        let roles: Vec<String> = scrapes.iter().map(Scrape::role).collect();
        let terms: Vec<u64> = scrapes.iter().map(|s| s.count("lighthouse_term")).collect();
        let coordinators: Vec<usize> = (0..members.len()).filter(|i| roles[*i] == "coordinator").collect();
        agreed = (coordinators.first().copied().unwrap_or(0), terms[0]);
        coordinators.len() == 1
            && roles.iter().filter(|r| *r == "voter").count() == members.len() - 1
            && terms.iter().all(|t| *t == terms[0] && *t > 0)
            && scrapes.iter().all(|s| s.count("lighthouse_voters") == voters)
            && scrapes.iter().all(|s| s.count("lighthouse_voters_reachable") == members.len() as u64)
    });
    agreed
}

#[test]
fn three_nodes_agree_in_their_metrics_and_state_and_a_new_coordinator_shows_its_election() {
    let mut members = chain(3, "observe", &[]);
    let all: Vec<&Member> = members.iter().collect();
    let (leader, term) = wait_agreed(&all, 3);
    for member in &members {
        promtool_check(&member.server().get("/metrics").text());
    }

    // /state: each node names its own role and every peer's, and they agree with the metrics.
    for member in &members {
        let (own, peers) = state_roles(member);
        let expected = |address: &str| if address == members[leader].address() { "coordinator" } else { "voter" };
        assert_eq!(own, expected(&member.address()), "{} of itself", member.address());
        for (address, role) in peers {
            assert_eq!(role, expected(&address), "{} of {address}", member.address());
        }
    }

    // A commit is timed on the coordinator, whichever node the client asked.
    let asked = (leader + 1) % 3;
    assert_eq!(support::transact(members[asked].server(), "timed", "/x", "1").status, 200);
    let scrape = Scrape::of(members[leader].server());
    let commits = scrape.0.samples.iter().find(|s| s.metric == "lighthouse_commit_duration_seconds").unwrap();
    let prometheus_parse::Value::Histogram(buckets) = &commits.value else { panic!("a histogram: {commits:?}") };
    let count = buckets.iter().find(|b| b.less_than == f64::INFINITY).map(|b| b.count);
    assert!(count.is_some_and(|c| c >= 1.0), "the commit is counted: {buckets:?}");
    assert_eq!(scrape.count("lighthouse_commits_unknown_total"), 0);

    // Kill the coordinator: a survivor stands, wins, and says so.
    let before: Vec<(u64, u64)> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| {
            let scrape = Scrape::of(members[i].server());
            (scrape.count("lighthouse_elections_started_total"), scrape.count("lighthouse_elections_won_total"))
        })
        .collect();
    let gone = members[leader].address();
    members[leader].kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let mut new_leader = 0;
    wait_for("a survivor to coordinate", || {
        let roles: Vec<String> = survivors.iter().map(|i| Scrape::of(members[*i].server()).role()).collect();
        match roles.iter().position(|r| r == "coordinator") {
            Some(at) => {
                new_leader = at;
                roles.iter().filter(|r| *r == "voter").count() == 1
            }
            None => false,
        }
    });
    let scrape = Scrape::of(members[survivors[new_leader]].server());
    let (started, won) = before[new_leader];
    assert!(scrape.count("lighthouse_elections_started_total") > started, "it stood for election");
    assert_eq!(scrape.count("lighthouse_elections_won_total"), won + 1, "it won once");
    assert!(scrape.count("lighthouse_term") > term, "in a later term");
    assert_eq!(scrape.count("lighthouse_voters"), 3, "the dead node is still a voter");
    wait_for("the new coordinator to reach 2 voters of 3", || {
        Scrape::of(members[survivors[new_leader]].server()).count("lighthouse_voters_reachable") == 2
    });
    let other = &members[survivors[1 - new_leader]];
    wait_for("the other survivor to see the new coordinator in /state", || {
        let (own, peers) = state_roles(other);
        own == "voter"
            && peers.iter().any(|(a, r)| *a == members[survivors[new_leader]].address() && r == "coordinator")
            && peers.iter().any(|(a, r)| *a == gone && r == "voter")
    });
    promtool_check(&members[survivors[new_leader]].server().get("/metrics").text());

    // The old coordinator comes back as a voter of the new term.
    members[leader].start(&[]);
    wait_settled(&members);
    let all: Vec<&Member> = members.iter().collect();
    let (again, _) = wait_agreed(&all, 3);
    assert_eq!(again, survivors[new_leader], "the new coordinator stays");
}

#[test]
fn a_joining_node_is_a_learner_until_the_coordinator_promotes_it() {
    let mut founder = Member::new("observe-founder");
    founder.start(&[]);
    // A first commit: from then on the store carries its voters, the founder alone.
    assert_eq!(founder.server().request("PUT", "/data/x", b"1").status, 200);
    // The coordinator changes no voters while the lock is held: the newcomer stays a learner.
    assert_eq!(founder.server().request("PUT", "/lock", b"hold").status, 200);
    let mut joiner = Member::new("observe-joiner");
    joiner.start(&[&format!("--seeds={}", founder.address())]);
    let newcomer = joiner.address();
    wait_for("the founder to list the newcomer as a learner", || {
        let (own, peers) = state_roles(&founder);
        own == "coordinator" && peers == [(newcomer.clone(), "learner".to_string())]
    });
    wait_for("the newcomer to call itself a learner", || {
        let (own, peers) = state_roles(&joiner);
        own == "learner" && peers == [(founder.address(), "coordinator".to_string())]
    });
    let scrape = Scrape::of(joiner.server());
    assert_eq!(scrape.role(), "learner");
    assert_eq!(scrape.count("lighthouse_voters"), 1, "the founder alone votes");
    assert_eq!(scrape.count("lighthouse_voters_reachable"), 1);
    assert_eq!(scrape.count("lighthouse_elections_started_total"), 0, "a learner never stands");
    promtool_check(&joiner.server().get("/metrics").text());

    // The lock is freed: the coordinator promotes the learner by a commit.
    assert_eq!(founder.server().request("DELETE", "/lock/hold", b"").status, 200);
    let members = [founder, joiner];
    wait_for("the newcomer to be a voter", || {
        Scrape::of(members[1].server()).role() == "voter" && state_roles(&members[0]).1[0].1 == "voter"
    });
    wait_agreed(&members.iter().collect::<Vec<_>>(), 2);
}

#[test]
fn a_node_with_local_writes_says_so_in_its_metrics_and_state() {
    let members = chain(2, "observe-local", &["--writes=local"]);
    for member in &members {
        let scrape = Scrape::of(member.server());
        assert_eq!(scrape.role(), "local");
        assert_eq!((scrape.count("lighthouse_term"), scrape.count("lighthouse_voters")), (0, 0));
        let (own, peers) = state_roles(member);
        assert_eq!(own, "local");
        assert!(peers.iter().all(|(_, role)| role == "local"), "{peers:?}");
        promtool_check(&member.server().get("/metrics").text());
    }
}

#[test]
fn a_coordinator_cut_off_counts_its_504_its_lost_lease_and_the_voters_it_no_longer_reaches() {
    let members = chain(3, "observe-cut", &[]);
    let all: Vec<&Member> = members.iter().collect();
    let (leader, _) = wait_agreed(&all, 3);
    let server = members[leader].server();
    let before = Scrape::of(server);
    assert_eq!(server.request("PUT", "/lock", b"cut").status, 200);
    assert_eq!(server.request("PUT", "/update/cut/x", b"1").status, 201);
    for member in &members {
        member.proxy.cut();
    }
    // 504 once pushed; 503 (nothing committed, not counted) if it waited behind a promotion.
    let commit = server.request("PUT", "/lock/cut", b"");
    assert!([503, 504].contains(&commit.status), "{}", commit.text());
    wait_for("the coordinator to lose its lease and count it", || {
        let scrape = Scrape::of(server);
        scrape.count("lighthouse_leases_lost_total") == before.count("lighthouse_leases_lost_total") + 1
            && scrape.count("lighthouse_voters_reachable") == 1
    });
    let after = Scrape::of(server);
    let unknown = u64::from(commit.status == 504);
    assert_eq!(
        after.count("lighthouse_commits_unknown_total"),
        before.count("lighthouse_commits_unknown_total") + unknown,
        "a 504 is counted"
    );
    let histogram = |scrape: &Scrape, le: f64| -> f64 {
        let sample = scrape.0.samples.iter().find(|s| s.metric == "lighthouse_commit_duration_seconds").unwrap();
        let prometheus_parse::Value::Histogram(buckets) = &sample.value else { panic!("a histogram") };
        buckets.iter().find(|b| b.less_than == le).map_or(0.0, |b| b.count)
    };
    assert_eq!(histogram(&after, f64::INFINITY), histogram(&before, f64::INFINITY) + 1.0, "the commit is timed");
    if commit.status == 504 {
        assert_eq!(histogram(&after, 1.0), histogram(&before, 1.0), "a 504 comes after the 1.5 s commit timeout");
    }
    promtool_check(&server.get("/metrics").text());

    for member in &members {
        member.proxy.heal();
    }
    wait_agreed(&all, 3);
}

#[test]
fn a_voter_removed_while_it_runs_calls_itself_removed() {
    let members = chain(3, "observe-removed", &[]);
    let all: Vec<&Member> = members.iter().collect();
    let (leader, _) = wait_agreed(&all, 3);
    let victim = (leader + 1) % 3;
    let gone = members[victim].address();
    wait_for("the removal to be committed", || {
        let removed = members[leader].server().request("DELETE", &format!("/state/{gone}"), b"");
        assert!([200, 409].contains(&removed.status), "{}", removed.text());
        removed.status == 200
    });
    wait_for("the removed node to call itself removed", || {
        let scrape = Scrape::of(members[victim].server());
        scrape.role() == "removed"
            && scrape.count("lighthouse_voters") == 2
            && state_roles(&members[victim]).0 == "removed"
    });
    promtool_check(&members[victim].server().get("/metrics").text());
    // The others: two voters; the removed node, while their tables still list it, is shown removed.
    for i in (0..3).filter(|i| *i != victim) {
        wait_for(&format!("node {i} to count two voters"), || {
            Scrape::of(members[i].server()).count("lighthouse_voters") == 2
        });
        let (_, peers) = state_roles(&members[i]);
        assert!(peers.iter().all(|(address, role)| *address != gone || role == "removed"), "{peers:?}");
    }
}

#[test]
fn a_seed_of_another_cluster_or_write_mode_is_shown_foreign_or_other_mode() {
    let mut first = Member::new("observe-first");
    first.start(&[]);
    // A second cluster of one, restarted with a seed of the first.
    let mut second = Member::new("observe-second");
    second.start(&[]);
    assert_eq!(second.server().request("PUT", "/data/x", b"1").status, 200);
    second.server.take().unwrap().terminate();
    let seed = format!("--seeds={}", first.address());
    second.start(&[&seed]);
    let mut local = Member::new("observe-local-seed");
    local.start(&["--writes=local", &seed]);
    let role_of_first = |member: &Member| {
        let (_, peers) = state_roles(member);
        peers.into_iter().find(|(address, _)| *address == first.address()).map(|(_, role)| role)
    };
    wait_for("the second cluster to show the first as foreign", || {
        role_of_first(&second).as_deref() == Some("foreign")
    });
    wait_for("the local node to show the first as other-mode", || {
        role_of_first(&local).as_deref() == Some("other-mode")
    });
    assert_eq!(Scrape::of(second.server()).role(), "coordinator", "it coordinates its own cluster still");
    assert_eq!(Scrape::of(local.server()).role(), "local");
}
