//! Local writes, simulated: 3 to 5 nodes, each with its own lock, the first founding the cluster
//! and the others joining it by `--seeds`, on the harness's network (it drops, delays, duplicates
//! and reorders messages, partitions and heals); nodes crash and restart from their last durable
//! snapshot; disks fill up or turn read-only for a while; clients commit on random nodes.
//! After every run: all nodes converge once the network heals, no node ever moves to an older
//! version (within an incarnation), and every answered commit is in the final store or was counted
//! as superseded. How to run it, replay a seed and run long: `main.rs`.

use std::collections::BTreeMap;

use lighthouse::core::Node;
use lighthouse::core::rng::Rng;
use lighthouse::core::version::{Checksum, Version};
use lighthouse::http::{Headers, Method, Response};

use super::disk::{DiskFault, SimDir};
use super::harness::{Clock, Event, Harness, Origin, Profile, Sim};

/// What the local-writes world draws (the numbers it always drew, so that seeds replay).
static PROFILE: Profile = Profile {
    coordinated: false,
    lost_ms: 3_000,
    delay_ms: (40, 5),
    duplicate_per_mille: 20,
    duplicate_spread_ms: 100,
    job_ms: 8,
    restart_ms: 2_000,
    heal_ms: 200,
    cut_in_flight: false,
    timers_first: true,
};

/// A client starts a transaction on `node`.
#[derive(Debug)]
struct ClientStart {
    node: usize,
}

/// The marker a client's commit wrote (`u64::MAX`: a request nobody checks).
type Marker = u64;

struct Local {
    h: Harness<ClientStart, Marker>,
    /// The newest version each node's incarnation has served.
    high_water: Vec<Version>,
    next_marker: u64,
    /// Commits answered 200: (node, marker, version).
    answered: Vec<(usize, u64, Version)>,
}

const CHAOS_MS: u64 = 12_000;
const SETTLE_MS: u64 = 15_000;

impl Sim for Local {
    type Event = ClientStart;
    type Client = Marker;

    fn h(&self) -> &Harness<ClientStart, Marker> {
        &self.h
    }

    fn hm(&mut self) -> &mut Harness<ClientStart, Marker> {
        &mut self.h
    }

    /// Each node names one other as its seed (gossip has to do the rest), but the first, which
    /// founds the cluster as README's first node does.
    fn seeds_of(&self, i: usize) -> Vec<String> {
        let nodes = &self.h.nodes;
        if i == 0 { Vec::new() } else { vec![nodes[(i + 1) % nodes.len()].address.clone()] }
    }

    fn booted(&mut self, i: usize) {
        self.high_water[i] = self.h.nodes[i].node.as_ref().expect("booted").version();
    }

    fn answered(&mut self, i: usize, marker: Marker, response: Response) {
        self.commit_answered(i, marker, &response);
    }

    /// No node ever serves an older version than it served before (in one incarnation).
    fn observe(&mut self, i: usize) {
        let Some(node) = self.h.nodes[i].node.as_ref() else { return };
        let version = node.version();
        assert!(
            version >= self.high_water[i],
            "seed {}: node {i} went back from {:?} to {:?}",
            self.h.seed,
            self.high_water[i],
            version
        );
        self.high_water[i] = version;
    }

    fn streamed(&mut self) {
        unreachable!("nobody streams in the simulation")
    }

    fn handle_mode(&mut self, ClientStart { node }: ClientStart) {
        self.client(node);
        if !self.h.calm() {
            let next = self.h.rng.below(self.h.nodes.len() as u64) as usize;
            let delay = 20 + self.h.rng.below(300);
            self.h.at(delay, Event::Mode(ClientStart { node: next }));
        }
    }
}

impl Local {
    fn new(seed: u64) -> Local {
        let mut rng = Rng::new(seed);
        let count = 3 + rng.below(3) as usize;
        let h = Harness::new(seed, rng, CHAOS_MS, &PROFILE);
        let mut sim = Local { h, high_water: vec![Version::initial(); count], next_marker: 0, answered: Vec::new() };
        // Each node starts as it is added: the seed of a node started at once is the first node.
        for i in 0..count {
            sim.h.add_node(format!("10.0.0.{}:8001", i + 1), SimDir::default(), Clock::default());
            sim.boot(i);
        }
        sim
    }

    fn commit_answered(&mut self, i: usize, marker: u64, response: &Response) {
        if response.status == 200 {
            let body: serde_json::Value = serde_json::from_slice(response.body.as_slice()).unwrap();
            let version = Version::from_json(&body).expect("a commit answers its version");
            self.answered.push((i, marker, version));
        } else {
            self.request(i, Method::Delete, "/lock/client", b"");
        }
    }

    /// Sends a request to node `i` as a local client; returns the immediate answer, if any.
    fn request(&mut self, i: usize, method: Method, target: &str, body: &[u8]) -> Option<Response> {
        let (ticket, reply) = self.h.call(i, method, target, Headers::default(), body)?;
        match reply {
            lighthouse::core::Reply::Now(response) | lighthouse::core::Reply::Stream(response) => Some(response),
            lighthouse::core::Reply::Later => {
                self.h.nodes[i].origins.insert(ticket, Origin::Client(u64::MAX));
                None
            }
        }
    }

    /// A transaction on node `i`: take the lock, stage a new marker, commit.
    fn client(&mut self, i: usize) {
        let Some(acquired) = self.request(i, Method::Put, "/lock", b"client") else { return };
        if acquired.status != 200 {
            return;
        }
        let marker = self.next_marker;
        self.next_marker += 1;
        let staged = self.request(i, Method::Put, &format!("/update/client/m{marker}"), b"true");
        assert_eq!(staged.map(|r| r.status), Some(201), "seed {}: staging", self.h.seed);
        let ticket = self.h.nodes[i].next_ticket();
        match self.request(i, Method::Put, "/lock/client", b"") {
            Some(response) => self.commit_answered(i, marker, &response),
            None => {
                self.h.nodes[i].origins.insert(ticket, Origin::Client(marker));
            }
        }
        self.drain(i);
    }

    fn schedule_chaos(&mut self) {
        self.h.at(10, Event::Mode(ClientStart { node: 0 }));
        let mut t = 0;
        while t < CHAOS_MS {
            t += 500 + self.h.rng.below(2_500);
            let delay = t - self.h.real;
            let node = self.h.rng.below(self.h.nodes.len() as u64) as usize;
            let event = match self.h.rng.below(5) {
                0 => Event::Partition,
                1 => Event::Disk { node, fault: Some(DiskFault::Full) },
                2 => Event::Disk { node, fault: Some(DiskFault::ReadOnly) },
                _ => Event::Crash { node },
            };
            if t < CHAOS_MS {
                self.h.at(delay, event);
            }
        }
    }

    /// Every node runs and serves one version.
    fn converged(&self) -> Option<Version> {
        let mut versions = self.h.nodes.iter().map(|n| n.node.as_ref().map(Node::version));
        let first = versions.next()??;
        versions.all(|v| v == Some(first)).then_some(first)
    }

    fn versions(&self) -> Vec<Option<Version>> {
        self.h.nodes.iter().map(|n| n.node.as_ref().map(Node::version)).collect()
    }

    /// One whole run; panics with the seed on any broken invariant.
    fn run(mut self) -> (usize, usize) {
        self.schedule_chaos();
        self.run_until(CHAOS_MS);
        // Calm: heal the network and the disks, bring every node back, and let them converge.
        self.calm_down();
        let (t, converged) = self.settle(CHAOS_MS, CHAOS_MS + SETTLE_MS, 100, |sim| sim.converged().is_some());
        let seed = self.h.seed;
        assert!(converged, "seed {seed}: no convergence {SETTLE_MS} ms after healing: {:?}", self.versions());
        // A commit still in flight at the heal may land after that: let it, and its pushes and
        // writes finish, then the nodes must agree again.
        self.run_until(t + 3_000);
        for i in 0..self.h.nodes.len() {
            self.observe(i);
        }
        let version = self.converged().unwrap_or_else(|| panic!("seed {seed}: diverged again: {:?}", self.versions()));
        super::disk::assert_one_cluster(seed, self.h.nodes.iter().map(|n| &n.dir));
        self.check_answered(version)
    }

    /// Every answered commit is in the final store or was counted as superseded by its node, not
    /// both; the store matches its checksum.
    fn check_answered(&self, version: Version) -> (usize, usize) {
        let seed = self.h.seed;
        let node = self.h.nodes[0].node.as_ref().expect("all up");
        assert_eq!(Checksum::of(node.root()), version.checksum, "seed {seed}: the store matches its checksum");
        let markers: BTreeMap<String, bool> = node.root().entries().map(|(k, _)| (k.to_string(), true)).collect();
        let mut superseded = 0;
        for (i, marker, committed) in &self.answered {
            let present = markers.contains_key(&format!("m{marker}"));
            let node = self.h.nodes[*i].node.as_ref().expect("all up");
            let counted = node.superseded().any(|v| v == *committed);
            superseded += usize::from(counted);
            assert!(
                present != counted,
                "seed {seed}: commit m{marker} ({committed:?}) of node {i} was answered 200; in the final store: \
                 {present}, marked superseded by its node: {counted}"
            );
        }
        (self.answered.len(), superseded)
    }
}

#[test]
fn local_writes_converge_and_lose_no_answered_commit_under_faults() {
    let (commits, superseded) = super::run_seeds(|seed| Local::new(seed).run());
    eprintln!("local writes: {commits} commits answered, {superseded} superseded and counted");
    assert!(commits > super::seeds().len(), "the runs committed something");
}
