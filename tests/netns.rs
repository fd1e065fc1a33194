//! A real minority/majority partition: three nodes, each in its own Linux network namespace, joined
//! by one veth pair per node to a bridge in a fourth ("hub") namespace, so nothing touches the
//! host's network. Writers increment one counter through every node (the lock dance of
//! tests/coordinated.rs) while the coordinator's cable is pulled (its veth end in the hub goes
//! down: its packets vanish, nothing is refused) and plugged back in.
//!
//! What it checks: the cut node answers no commit 200 and, once its lease has run out, refuses the
//! lock for want of a majority while it keeps serving reads; the two others elect a coordinator in
//! a higher term and keep committing; after the heal the old coordinator learns the new term, the
//! three converge, and every commit answered 200 is in the final counter.
//!
//! It needs root (namespaces, `setns`) and `ip` (iproute2); without them it says why and passes.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::counter::{Increment, increment};
use support::{PATIENCE, Response, Rng, TempDir, try_request, wait_for};

/// Every node listens on this port in its own namespace (ports are per namespace, so no clash).
const PORT: u16 = 8001;
/// The nodes' addresses are `SUBNET.1` to `SUBNET.3`; they exist only inside the test's namespaces.
const SUBNET: &str = "10.213.77";
/// The nodes' own namespaces hold one veth end each, under this name.
const NODE_DEV: &str = "eth0";

/// The `ip` command: on the PATH, or where Debian puts it (a user's PATH may lack /usr/sbin).
fn ip_command() -> &'static str {
    static FOUND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        let on_path = Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        let elsewhere = ["/usr/sbin/ip", "/sbin/ip"].into_iter().find(|p| std::path::Path::new(p).exists());
        if on_path { "ip" } else { elsewhere.unwrap_or("ip") }
    })
}

/// Runs `ip ARGS`; the error is what it printed (or why it did not run).
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new(ip_command())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`ip` does not run (apt-get install iproute2): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

fn must(result: Result<(), String>) {
    if let Err(why) = result {
        panic!("{why}");
    }
}

/// A named network namespace, deleted when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn add(name: String) -> Result<Netns, String> {
        ip(&["netns", "add", &name])?;
        Ok(Netns { name })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(why) = ip(&["netns", "del", &self.name]) {
            eprintln!("netns: could not delete namespace {}: {why}", self.name);
        }
    }
}

/// Moves the calling thread into the network namespace `name` (its sockets are made there).
fn enter(name: &str) {
    let path = format!("/var/run/netns/{name}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path} opens: {e}"));
    // SAFETY: a plain system call on a file descriptor we own; it changes this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {name}: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a new thread inside the network namespace `name`, and returns what it returns.
fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = name.to_string();
    std::thread::spawn(move || {
        enter(&name);
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The node's own loopback address, as seen from inside its namespace.
fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], PORT))
}

/// One lighthouse process inside its namespace, killed when dropped.
struct Node {
    netns: String,
    /// The address peers know it by (`SUBNET.N:PORT`).
    address: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(netns: &str, address: &str, dir: &TempDir, seed: Option<&str>) -> Node {
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            netns.into(),
            support::BINARY.into(),
            format!("--bind=0.0.0.0:{PORT}"),
            format!("--advertise={address}"),
            dir.flag(),
            "--lock-timeout=10".into(),
            "--log-level=info".into(),
        ];
        if let Some(seed) = seed {
            args.push(format!("--seeds={seed}"));
        }
        let mut child = Command::new(ip_command())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("`ip netns exec` starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (listening_tx, listening_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, echo, tag) = (log.clone(), std::env::var_os("LIGHTHOUSE_TEST_LOG").is_some(), address.to_string());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[{tag}] {line}");
                }
                if line.contains("listening on ") {
                    let _ = listening_tx.send(());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let node = Node { netns: netns.into(), address: address.into(), child, log };
        if listening_rx.recv_timeout(PATIENCE).is_err() {
            panic!("node {address} did not start; log:\n{}", node.log.lock().unwrap().join("\n"));
        }
        // `ip netns exec` execs the command: the child is the server itself, so killing it kills the
        // server, not a wrapper.
        let exe = std::fs::read_link(format!("/proc/{}/exe", node.child.id())).unwrap_or_default();
        assert!(exe.ends_with("lighthouse"), "the child of `ip netns exec` is the server, not {exe:?}");
        node
    }

    /// One request on a new connection from inside its namespace; `None` when it failed.
    fn try_request(&self, method: &str, path: &str, body: &[u8]) -> Option<Response> {
        let (method, path, body) = (method.to_string(), path.to_string(), body.to_vec());
        in_netns(&self.netns, move || try_request(local(), &method, &path, &body).ok())
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.try_request(method, path, body).unwrap_or_else(|| panic!("{} {path} on {} answers", method, self.address))
    }

    fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.request("GET", path, b"");
        assert_eq!(response.status, 200, "GET {path} on {}: {}", self.address, String::from_utf8_lossy(&response.body));
        response.json()
    }

    /// What `/state` says of coordinated writes: `coordinator`, `term`, `voters`, `role`...
    fn writes(&self) -> serde_json::Value {
        self.get_json("/state")["writes"].clone()
    }

    fn version(&self) -> serde_json::Value {
        self.get_json("/version")
    }

    fn sequence(&self) -> u64 {
        self.version()["sequence"].as_u64().expect("a sequence")
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The namespaces, the links, the data directories and the nodes. Dropped in the order of the
/// fields: the processes first, then their directories, then the namespaces (links and bridge go
/// with them).
struct Lab {
    nodes: Vec<Node>,
    dirs: Vec<TempDir>,
    node_netns: Vec<Netns>,
    hub: Netns,
}

impl Lab {
    /// Sets up the network (or says why it cannot be), then starts the three nodes.
    fn new() -> Result<Lab, String> {
        // SAFETY: a plain system call without arguments.
        if unsafe { libc::geteuid() } != 0 {
            return Err("it needs root (network namespaces and setns)".into());
        }
        let prefix = format!("lhnet{}", std::process::id());
        let hub = Netns::add(format!("{prefix}-hub"))?;
        let mut lab = Lab { nodes: Vec::new(), dirs: Vec::new(), node_netns: Vec::new(), hub };
        for i in 0..3 {
            lab.node_netns.push(Netns::add(format!("{prefix}-n{i}"))?);
        }
        let hub = lab.hub.name.clone();
        must(ip(&["-n", &hub, "link", "set", "lo", "up"]));
        must(ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]));
        must(ip(&["-n", &hub, "link", "set", "br0", "up"]));
        for i in 0..3 {
            let netns = lab.node_netns[i].name.clone();
            let hub_dev = Lab::hub_dev(i);
            must(ip(&["-n", &hub, "link", "add", &hub_dev, "type", "veth", "peer", "name", NODE_DEV, "netns", &netns]));
            must(ip(&["-n", &hub, "link", "set", &hub_dev, "master", "br0", "up"]));
            must(ip(&["-n", &netns, "link", "set", "lo", "up"]));
            must(ip(&["-n", &netns, "addr", "add", &format!("{SUBNET}.{}/24", i + 1), "dev", NODE_DEV]));
            must(ip(&["-n", &netns, "link", "set", NODE_DEV, "up"]));
        }
        for i in 0..3 {
            lab.dirs.push(TempDir::new(&format!("netns{i}")));
            let seed = (i > 0).then(|| Lab::address(0));
            let node = Node::start(&lab.node_netns[i].name, &Lab::address(i), &lab.dirs[i], seed.as_deref());
            lab.nodes.push(node);
        }
        Ok(lab)
    }

    fn address(i: usize) -> String {
        format!("{SUBNET}.{}:{PORT}", i + 1)
    }

    /// Node `i`'s veth end in the hub, on the bridge.
    fn hub_dev(i: usize) -> String {
        format!("v{i}")
    }

    /// Pulls node `i`'s cable: its end on the bridge goes down, and its packets vanish.
    fn cut(&self, i: usize) {
        must(ip(&["-n", &self.hub.name, "link", "set", &Lab::hub_dev(i), "down"]));
    }

    fn heal(&self, i: usize) {
        must(ip(&["-n", &self.hub.name, "link", "set", &Lab::hub_dev(i), "up"]));
    }

    /// The index of the node at `address`.
    fn index_of(&self, address: &str) -> usize {
        self.nodes.iter().position(|n| n.address == address).unwrap_or_else(|| panic!("{address} is no node"))
    }

    /// Waits until every node serves, all three are voters, agree on the coordinator and serve the
    /// same version.
    fn wait_settled(&self) {
        wait_for("every node to catch up and serve", || {
            self.nodes.iter().all(|n| n.try_request("GET", "/", b"").is_some_and(|r| r.json()["active"] == true))
        });
        wait_for("every node to be a voter and to know the coordinator", || {
            let states: Vec<serde_json::Value> = self.nodes.iter().map(Node::writes).collect();
            let versions: Vec<serde_json::Value> = self.nodes.iter().map(Node::version).collect();
            let coordinator = &states[0]["coordinator"];
            !coordinator.is_null()
                && states
                    .iter()
                    .all(|s| s["coordinator"] == *coordinator && s["voters"].as_array().map(Vec::len) == Some(3))
                && versions.iter().all(|v| *v == versions[0])
        });
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!("---- last lines of {}'s log:\n{}", node.address, node.log_tail(60));
            }
        }
    }
}

/// A commit answered 200.
#[derive(Clone, Copy)]
struct Commit {
    /// The node the writer sent it through.
    node: usize,
    value: u64,
    /// When its lock was granted (before the commit was sent) and when it was answered.
    started: Instant,
    answered: Instant,
}

/// What the writers saw.
#[derive(Default)]
struct Tally {
    committed: Vec<Commit>,
    unknown: u64,
    refused: u64,
}

/// One writer per node, each inside its node's namespace and sending every request of its
/// transactions to its own node, until stopped (also when dropped, should the test fail).
struct Writers {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(lab: &Lab) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let threads = lab
            .nodes
            .iter()
            .enumerate()
            .map(|(node, n)| {
                let (netns, stop, tally) = (n.netns.clone(), stop.clone(), tally.clone());
                std::thread::spawn(move || {
                    enter(&netns);
                    let mut rng = Rng::new(node as u64 + 11);
                    let mut attempt = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // A new name for every attempt: after a 504 a name is never reused.
                        attempt += 1;
                        let outcome = increment(local(), &format!("w{node}-{attempt}"));
                        let mut tally = tally.lock().unwrap();
                        match outcome {
                            Increment::Committed { value, started } => {
                                tally.committed.push(Commit { node, value, started, answered: Instant::now() })
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

    /// How many commits answered 200 match `filter`.
    fn count(&self, filter: impl Fn(&Commit) -> bool) -> usize {
        self.tally.lock().unwrap().committed.iter().filter(|c| filter(c)).count()
    }

    fn commits(&self) -> Vec<Commit> {
        self.tally.lock().unwrap().committed.clone()
    }

    fn wait(&self, what: &str, at_least: usize, filter: impl Fn(&Commit) -> bool) {
        wait_for(&format!("{at_least} answered commits {what}"), || self.count(&filter) >= at_least);
    }

    fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for thread in std::mem::take(&mut self.threads) {
            thread.join().unwrap();
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Takes the lock as `name`, puts `json` at `path` and commits, through `node`.
fn transact(node: &Node, name: &str, path: &str, json: &str) -> Response {
    assert_eq!(node.request("PUT", "/lock", name.as_bytes()).status, 200, "acquire {name}");
    assert_eq!(node.request("PUT", &format!("/update/{name}{path}"), json.as_bytes()).status, 201, "stage {path}");
    node.request("PUT", &format!("/lock/{name}"), b"")
}

/// Waits until every node serves the same version, and returns the counter they serve.
fn final_counter(lab: &Lab) -> u64 {
    wait_for("every node to serve the same version", || {
        let versions: Vec<serde_json::Value> = lab.nodes.iter().map(Node::version).collect();
        versions.iter().all(|v| *v == versions[0])
    });
    let counters: Vec<u64> = lab.nodes.iter().map(|n| n.get_json("/data/counter").as_u64().unwrap()).collect();
    assert!(counters.iter().all(|c| *c == counters[0]), "every node serves one counter: {counters:?}");
    counters[0]
}

/// Asserts that no answered commit is lost, and returns (answered, final counter).
fn assert_nothing_lost(tally: &Tally, lab: &Lab) -> (usize, u64) {
    let counter = final_counter(lab);
    let values: BTreeSet<u64> = tally.committed.iter().map(|c| c.value).collect();
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

fn term_of(writes: &serde_json::Value) -> u64 {
    writes["term"].as_u64().expect("a term")
}

#[test]
fn a_coordinator_cut_off_by_a_real_partition_stops_committing_and_the_majority_goes_on_losing_nothing() {
    let lab = match Lab::new() {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("netns test skipped: {why}");
            return;
        }
    };
    let started = Instant::now();
    lab.wait_settled();
    let settled = started.elapsed();
    let writes = lab.nodes[0].writes();
    let old = lab.index_of(writes["coordinator"].as_str().expect("a coordinator"));
    let old_address = lab.nodes[old].address.clone();
    let old_term = term_of(&writes);
    let info = lab.nodes[old].get_json("/");
    assert_eq!((info["coordinator"].as_str(), info["term"].as_u64()), (Some(old_address.as_str()), Some(old_term)));
    let majority: Vec<usize> = (0..3).filter(|i| *i != old).collect();

    let init = transact(&lab.nodes[0], "init", "/counter", "0");
    assert_eq!(init.status, 200, "{}", init.text());
    let writers = Writers::start(&lab);
    writers.wait("before the cut", 30, |_| true);

    lab.cut(old);
    let cut_at = Instant::now();

    // The cut node grants no lock once its lease has run out, and says why.
    let mut attempt = 0;
    let mut refusal = String::new();
    wait_for("the cut node to refuse writes for want of a majority", || {
        attempt += 1;
        let name = format!("probe-{attempt}");
        let Some(acquired) = lab.nodes[old].try_request("PUT", "/lock", name.as_bytes()) else { return false };
        if acquired.status == 200 {
            // Within its lease: a commit sent now cannot reach a majority.
            let _ = lab.nodes[old].try_request("PUT", &format!("/update/{name}/probe"), b"1");
            let commit = lab.nodes[old].try_request("PUT", &format!("/lock/{name}"), b"");
            if let Some(commit) = &commit {
                assert_ne!(commit.status, 200, "the cut node answered a commit 200: {}", commit.text());
            }
            let _ = lab.nodes[old].try_request("DELETE", &format!("/lock/{name}"), b"");
            return false;
        }
        if acquired.status != 503 || acquired.header("Retry-After").is_none() {
            return false;
        }
        refusal = acquired.error();
        refusal.starts_with("writes need a majority")
    });
    let refused_after = cut_at.elapsed();

    // The two others elect a coordinator in a higher term and commit again.
    let mut new_term = 0;
    let mut new_address = String::new();
    wait_for("the majority to elect a new coordinator", || {
        let states: Vec<serde_json::Value> = majority.iter().map(|i| lab.nodes[*i].writes()).collect();
        let coordinator = states[0]["coordinator"].as_str().unwrap_or_default().to_string();
        new_term = term_of(&states[0]);
        new_address = coordinator.clone();
        !coordinator.is_empty()
            && coordinator != old_address
            && new_term > old_term
            && states.iter().all(|s| s["coordinator"] == coordinator.as_str() && term_of(s) == new_term)
    });
    let elected_after = cut_at.elapsed();
    writers.wait("through the majority after the cut", 20, |c| c.started > cut_at && c.node != old);
    let resumed = writers.commits().iter().filter(|c| c.started > cut_at).map(|c| c.answered - cut_at).min().unwrap();

    // The cut node still serves reads, of a version the majority has gone past.
    let read = lab.nodes[old].request("GET", "/data", b"");
    assert_eq!(read.status, 200, "the cut node serves reads: {}", read.text());
    assert!(read.header("X-Lighthouse-Version").is_some(), "a read carries the version");
    let (cut_sequence, majority_sequence) = (lab.nodes[old].sequence(), lab.nodes[majority[0]].sequence());
    assert!(cut_sequence < majority_sequence, "the cut node serves {cut_sequence}, the majority {majority_sequence}");
    // Once it has given up on its peers, its refusal counts them right.
    let mut alone = 0;
    let mut counted = String::new();
    wait_for("the cut node to count 1 of 3 voters reachable", || {
        alone += 1;
        let Some(acquired) = lab.nodes[old].try_request("PUT", "/lock", format!("alone-{alone}").as_bytes()) else {
            return false;
        };
        assert_ne!(acquired.status, 200, "the cut node granted the lock after its lease ran out");
        counted = acquired.error();
        acquired.status == 503 && counted.starts_with("writes need a majority: 1 of 3 voters reachable")
    });
    let counted_after = cut_at.elapsed();

    let cut_term = term_of(&lab.nodes[old].writes());
    lab.heal(old);
    let heal_at = Instant::now();
    let sneaked = writers.count(|c| c.node == old && c.started > cut_at && c.answered < heal_at);
    assert_eq!(sneaked, 0, "commits sent through the cut node while it was cut were answered 200");

    // The old coordinator learns the new term; the three agree on one coordinator and term again.
    let mut final_term = 0;
    let mut final_address = String::new();
    wait_for("the three to agree on the coordinator and the term after the heal", || {
        let states: Vec<serde_json::Value> = lab.nodes.iter().map(Node::writes).collect();
        final_term = term_of(&states[0]);
        final_address = states[0]["coordinator"].as_str().unwrap_or_default().to_string();
        !final_address.is_empty()
            && final_term >= new_term
            && states.iter().all(|s| s["coordinator"] == final_address.as_str() && term_of(s) == final_term)
    });
    let agreed_after = heal_at.elapsed();
    writers.wait("after the heal", 20, |c| c.started > heal_at);
    writers.wait("through the healed node after the heal", 3, |c| c.started > heal_at && c.node == old);
    let tally = writers.finish();
    let (answered, counter) = assert_nothing_lost(&tally, &lab);

    let before = tally.committed.iter().filter(|c| c.answered < cut_at).count();
    let during = tally.committed.iter().filter(|c| c.answered >= cut_at && c.answered < heal_at).count();
    let after = answered - before - during;
    // The longest time without an answered commit after the heal (a re-election shows here).
    let mut healed: Vec<Instant> = tally.committed.iter().map(|c| c.answered).filter(|a| *a >= heal_at).collect();
    healed.sort();
    let stall = healed.iter().scan(heal_at, |last, a| Some(*a - std::mem::replace(last, *a))).max().unwrap();
    eprintln!(
        "netns partition: settled in {} ms; answered {before} before the cut, {during} while cut, {after} after the \
         heal ({answered} in all, counter {counter}, 0 lost, {} outcome unknown, {} refused); term {old_term} -> \
         {new_term} (majority elected {} ms after the cut, committed again {} ms after it), cut node refused after {} \
         ms ({refusal:?}) and counted its peers out after {} ms ({counted:?}), reaching term {cut_term}; after the heal term {final_term} on all three within {} ms, writes stalled at most {} ms, coordinator \
         {} -> {new_address} -> {final_address}",
        settled.as_millis(),
        tally.unknown,
        tally.refused,
        elected_after.as_millis(),
        resumed.as_millis(),
        refused_after.as_millis(),
        counted_after.as_millis(),
        agreed_after.as_millis(),
        stall.as_millis(),
        old_address,
    );
}
