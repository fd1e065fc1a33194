//! Deterministic simulation: 3 to 5 pure cores on a simulated clock and network, all driven by
//! one seed. The network drops, delays, duplicates and reorders messages, partitions and heals;
//! nodes crash and restart from their last durable snapshot; disks fill up or turn read-only for a
//! while; clients commit on random nodes. Worker jobs run through `jobs::run`, the workers' own
//! code, on a disk kept in memory.
//! After every run: all nodes converge once the network heals, no node ever moves to an older
//! version, and every answered commit is in the final store or was counted as superseded.
//!
//! `cargo test --release --test simulation` runs 1,000 seeds. More, or one to replay:
//!
//! ```sh
//! LIGHTHOUSE_SIM_SEEDS=1000000 cargo test --release --test simulation -- --nocapture
//! LIGHTHOUSE_SIM_SEED=1234 cargo test --release --test simulation -- --nocapture
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use lighthouse::core::clock::Now;
use lighthouse::core::jobs::{self, Job};
use lighthouse::core::rng::Rng;
use lighthouse::core::version::{Checksum, Version};
use lighthouse::core::{Effect, Node, PeerReply, PeerRequest, Reply, Request, Ticket};

use super::disk::{DiskFault, SimDir};
use lighthouse::http::{Headers, Method, Response, parse_head};

/// Who waits for the answer to a request a node parked.
#[derive(Debug, Clone)]
enum Origin {
    /// A client's commit that wrote marker `k`.
    Commit(u64),
    /// A peer's request: answer to node `from` (incarnation `generation`), call `id`.
    Peer { from: usize, generation: u64, id: u64 },
}

#[derive(Debug)]
enum Event {
    /// A peer request arrives at `to`.
    Deliver {
        to: usize,
        from: usize,
        from_generation: u64,
        request: PeerRequest,
    },
    /// The outcome of a peer request reaches its sender.
    Outcome {
        to: usize,
        generation: u64,
        id: u64,
        result: Result<PeerReply, String>,
    },
    /// A worker job of node `node` finishes.
    JobDone {
        node: usize,
        generation: u64,
        job: Job,
    },
    /// A client starts a transaction on `node`.
    Client {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Partition,
    Heal,
    /// Node `node`'s disk starts failing, or works again (`None`).
    Disk {
        node: usize,
        fault: Option<DiskFault>,
    },
}

struct SimNode {
    address: String,
    node: Option<Node>,
    /// Bumped at each crash, so messages for the dead incarnation are dropped.
    generation: u64,
    /// Its data directory: snapshot files and `node.json`, as bytes.
    dir: SimDir,
    origins: HashMap<Ticket, Origin>,
    next_ticket: Ticket,
    /// The newest version this incarnation has served.
    high_water: Version,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: Now,
    events: BinaryHeap<Reverse<(u64, u64)>>,
    /// By id, so that walking it is the same every run (a seed replays exactly).
    pending: BTreeMap<u64, Event>,
    next_event: u64,
    nodes: Vec<SimNode>,
    /// Partition group of each node; messages between groups are lost.
    groups: Vec<u8>,
    /// Faults stop at this time: the network heals and stays healed.
    calm_from: u64,
    next_marker: u64,
    /// Commits answered 200: (node, marker, version).
    answered: Vec<(usize, u64, Version)>,
}

const CHAOS_MS: u64 = 12_000;
const SETTLE_MS: u64 = 15_000;

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let count = 3 + rng.below(3) as usize;
        let now = Now { mono_ms: 0, unix_ms: 1_800_000_000_000 };
        let mut sim = Sim {
            seed,
            rng,
            now,
            events: BinaryHeap::new(),
            pending: BTreeMap::new(),
            next_event: 0,
            nodes: Vec::new(),
            groups: vec![0; count],
            calm_from: CHAOS_MS,
            next_marker: 0,
            answered: Vec::new(),
        };
        for i in 0..count {
            sim.nodes.push(SimNode {
                address: format!("10.0.0.{}:8001", i + 1),
                node: None,
                generation: 0,
                dir: SimDir::default(),
                origins: HashMap::new(),
                next_ticket: 1,
                high_water: Version::initial(),
            });
            sim.boot(i);
        }
        sim
    }

    /// Starts node `i` from what its disk holds, by the server's own start-up decision, with the
    /// same command line every time. Each node names one other as its seed (gossip has to do the
    /// rest), but the first, which founds the cluster as README's first node does. A node whose
    /// disk refuses `node.json` does not start (the server exits), and is started again later.
    fn boot(&mut self, i: usize) {
        let seeds = if i == 0 { Vec::new() } else { vec![self.nodes[(i + 1) % self.nodes.len()].address.clone()] };
        let address = self.nodes[i].address.clone();
        let Some(node) = self.nodes[i].dir.boot(&address, seeds, false, &mut self.rng, self.now) else {
            let delay = 500 + self.rng.below(2_000);
            self.at(delay, Event::Restart { node: i });
            return;
        };
        let sim_node = &mut self.nodes[i];
        sim_node.high_water = node.version();
        sim_node.node = Some(node);
        self.drain(i);
    }

    fn at(&mut self, delay_ms: u64, event: Event) {
        let id = self.next_event;
        self.next_event += 1;
        self.events.push(Reverse((self.now.mono_ms + delay_ms, id)));
        self.pending.insert(id, event);
    }

    fn calm(&self) -> bool {
        self.now.mono_ms >= self.calm_from
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.groups[a] == self.groups[b]
    }

    /// Sends a message across the network: it may be lost (the sender hears of it after a
    /// timeout), delayed, or duplicated.
    fn transmit(&mut self, from: usize, to: usize, event: Event, lost: Event) {
        let lost_now = !self.connected(from, to) || (!self.calm() && self.rng.chance(30));
        if lost_now {
            let timeout = 100 + self.rng.below(3_000);
            self.at(timeout, lost);
            return;
        }
        let delay = 1 + self.rng.below(if self.calm() { 5 } else { 40 });
        if !self.calm()
            && self.rng.chance(20)
            && let Event::Deliver { to, from, from_generation, request } = &event
        {
            let copy =
                Event::Deliver { to: *to, from: *from, from_generation: *from_generation, request: request.clone() };
            let later = delay + self.rng.below(100);
            self.at(later, copy);
        }
        self.at(delay, event);
    }

    /// Carries out every effect node `i` has queued.
    fn drain(&mut self, i: usize) {
        loop {
            let Some(node) = self.nodes[i].node.as_mut() else { return };
            let effects: Vec<Effect> = node.drain_effects().collect();
            if effects.is_empty() {
                break;
            }
            for effect in effects {
                self.effect(i, effect);
            }
        }
        self.check(i);
    }

    fn effect(&mut self, i: usize, effect: Effect) {
        let generation = self.nodes[i].generation;
        match effect {
            Effect::Answer { ticket, response } => match self.nodes[i].origins.remove(&ticket) {
                Some(Origin::Commit(marker)) => self.commit_answered(i, marker, &response),
                Some(Origin::Peer { from, generation, id }) => self.reply(i, from, generation, id, response),
                None => panic!("seed {}: an answer for unknown ticket {ticket}", self.seed),
            },
            Effect::Event { .. } => unreachable!("nobody streams in the simulation"),
            // Freeing a version the store let go of changes nothing the core sees: it is done
            // here, with no event and no draw of the generator, so histories do not shift with it.
            Effect::Job(Job::Retire(_)) => {}
            Effect::Job(job) => {
                let delay = self.rng.below(8);
                self.at(delay, Event::JobDone { node: i, generation, job });
            }
            Effect::Peer(request) => {
                let Some(to) = self.nodes.iter().position(|n| n.address == request.peer) else {
                    panic!("seed {}: a request to an unknown address {}", self.seed, request.peer);
                };
                let id = request.id;
                let lost = Event::Outcome { to: i, generation, id, result: Err("lost".into()) };
                self.transmit(i, to, Event::Deliver { to, from: i, from_generation: generation, request }, lost);
            }
        }
    }

    fn reply(&mut self, at: usize, to: usize, generation: u64, id: u64, response: Response) {
        let result = Ok(PeerReply {
            status: response.status,
            headers: response.headers.as_slice().to_vec(),
            body: response.body.as_slice().to_vec(),
        });
        let lost = Event::Outcome { to, generation, id, result: Err("lost".into()) };
        self.transmit(at, to, Event::Outcome { to, generation, id, result }, lost);
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
        let sim_node = &mut self.nodes[i];
        let node = sim_node.node.as_mut()?;
        let ticket = sim_node.next_ticket;
        sim_node.next_ticket += 1;
        let request = Request { method, target, headers: Headers::default(), body, client: None };
        match node.handle(self.now, ticket, &request) {
            Reply::Now(response) | Reply::Stream(response) => Some(response),
            Reply::Later => {
                sim_node.origins.insert(ticket, Origin::Commit(u64::MAX));
                None
            }
        }
    }

    fn client(&mut self, i: usize) {
        let Some(acquired) = self.request(i, Method::Put, "/lock", b"client") else { return };
        if acquired.status != 200 {
            return;
        }
        let marker = self.next_marker;
        self.next_marker += 1;
        let staged = self.request(i, Method::Put, &format!("/update/client/m{marker}"), b"true");
        assert_eq!(staged.map(|r| r.status), Some(201), "seed {}: staging", self.seed);
        let ticket = self.nodes[i].next_ticket;
        match self.request(i, Method::Put, "/lock/client", b"") {
            Some(response) => self.commit_answered(i, marker, &response),
            None => {
                self.nodes[i].origins.insert(ticket, Origin::Commit(marker));
            }
        }
        self.drain(i);
    }

    /// Runs a worker job with the workers' own code (`jobs::run`), on node `i`'s simulated disk.
    fn run_job(&mut self, i: usize, job: Job) -> jobs::Done {
        jobs::run(job, &mut self.nodes[i].dir, &mut || {})
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, from_generation, request } => {
                let sim_node = &mut self.nodes[to];
                let Some(node) = sim_node.node.as_mut() else {
                    let lost = Event::Outcome {
                        to: from,
                        generation: from_generation,
                        id: request.id,
                        result: Err("refused".into()),
                    };
                    self.at(1, lost);
                    return;
                };
                let ticket = sim_node.next_ticket;
                sim_node.next_ticket += 1;
                let body = request.body.as_slice().to_vec();
                // The request's headers as the receiving node's reader would parse them.
                let text = format!("{} {} HTTP/1.1\r\n{}\r\n", request.method.as_str(), request.path, request.headers);
                let parsed = parse_head(text.as_bytes(), u64::MAX).expect("a peer request's head parses");
                let headers = parsed.expect("a whole head").headers;
                let head =
                    Request { method: request.method, target: &request.path, headers, body: &body, client: None };
                match node.handle(self.now, ticket, &head) {
                    Reply::Now(response) | Reply::Stream(response) => {
                        self.reply(to, from, from_generation, request.id, response)
                    }
                    Reply::Later => {
                        let origin = Origin::Peer { from, generation: from_generation, id: request.id };
                        self.nodes[to].origins.insert(ticket, origin);
                    }
                }
                self.drain(to);
            }
            Event::Outcome { to, generation, id, result } => {
                if self.nodes[to].generation != generation {
                    return;
                }
                let Some(node) = self.nodes[to].node.as_mut() else { return };
                node.peer_reply(self.now, id, result);
                self.drain(to);
            }
            Event::JobDone { node: i, generation, job } => {
                if self.nodes[i].generation != generation || self.nodes[i].node.is_none() {
                    return;
                }
                let done = self.run_job(i, job);
                self.nodes[i].node.as_mut().expect("checked above").job_done(self.now, done);
                self.drain(i);
            }
            Event::Client { node } => {
                self.client(node);
                if !self.calm() {
                    let next = self.rng.below(self.nodes.len() as u64) as usize;
                    let delay = 20 + self.rng.below(300);
                    self.at(delay, Event::Client { node: next });
                }
            }
            Event::Crash { node: i } => {
                if self.nodes[i].node.take().is_none() {
                    return;
                }
                self.nodes[i].generation += 1;
                self.nodes[i].origins.clear();
                let delay = 50 + self.rng.below(2_000);
                self.at(delay, Event::Restart { node: i });
            }
            Event::Restart { node } if self.nodes[node].node.is_none() => self.boot(node),
            Event::Restart { .. } => {}
            Event::Partition => {
                for group in self.groups.iter_mut() {
                    *group = (self.rng.next_u64() % 2) as u8;
                }
                let delay = 200 + self.rng.below(3_000);
                self.at(delay, Event::Heal);
            }
            Event::Heal => self.groups.iter_mut().for_each(|g| *g = 0),
            Event::Disk { node, fault } => {
                self.nodes[node].dir.fault = fault;
                if fault.is_some() {
                    let delay = 200 + self.rng.below(2_000);
                    self.at(delay, Event::Disk { node, fault: None });
                }
            }
        }
    }

    /// No node ever serves an older version than it served before (in one incarnation), and a
    /// store always matches its checksum.
    fn check(&mut self, i: usize) {
        let sim_node = &mut self.nodes[i];
        let Some(node) = sim_node.node.as_ref() else { return };
        let version = node.version();
        assert!(
            version >= sim_node.high_water,
            "seed {}: node {i} went back from {:?} to {:?}",
            self.seed,
            sim_node.high_water,
            version
        );
        sim_node.high_water = version;
    }

    fn schedule_chaos(&mut self) {
        self.at(10, Event::Client { node: 0 });
        let mut t = 0;
        while t < CHAOS_MS {
            t += 500 + self.rng.below(2_500);
            let delay = t - self.now.mono_ms;
            let node = self.rng.below(self.nodes.len() as u64) as usize;
            let event = match self.rng.below(5) {
                0 => Event::Partition,
                1 => Event::Disk { node, fault: Some(DiskFault::Full) },
                2 => Event::Disk { node, fault: Some(DiskFault::ReadOnly) },
                _ => Event::Crash { node },
            };
            if t < CHAOS_MS {
                self.at(delay, event);
            }
        }
    }

    /// Runs events and node timers in time order until `until`.
    fn run_until(&mut self, until: u64) {
        loop {
            let next_event = self.events.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.nodes.iter().filter_map(|n| n.node.as_ref()?.next_deadline()).map(|d| d.0).min();
            let Some(next) = [next_event, next_timer].into_iter().flatten().min() else { return };
            if next > until {
                self.now.unix_ms += until - self.now.mono_ms;
                self.now.mono_ms = until;
                return;
            }
            self.now.unix_ms += next - self.now.mono_ms;
            self.now.mono_ms = next;
            if next_timer == Some(next) {
                for i in 0..self.nodes.len() {
                    let due = self.nodes[i].node.as_ref().and_then(Node::next_deadline).is_some_and(|d| d.0 <= next);
                    if due {
                        self.nodes[i].node.as_mut().expect("checked").tick(self.now);
                        self.drain(i);
                    }
                }
            } else {
                let Reverse((_, id)) = self.events.pop().expect("peeked");
                let event = self.pending.remove(&id).expect("scheduled");
                self.handle(event);
            }
        }
    }

    fn converged(&self) -> Option<Version> {
        let versions: HashSet<Version> = self.nodes.iter().filter_map(|n| Some(n.node.as_ref()?.version())).collect();
        let all_up = self.nodes.iter().all(|n| n.node.is_some());
        (all_up && versions.len() == 1).then(|| *versions.iter().next().expect("one"))
    }

    /// One whole run; panics with the seed on any broken invariant.
    fn run(mut self) -> (usize, usize) {
        self.schedule_chaos();
        self.run_until(CHAOS_MS);
        // Calm: heal the network and the disks, bring every node back, and let them converge.
        self.groups.iter_mut().for_each(|g| *g = 0);
        self.nodes.iter_mut().for_each(|n| n.dir.fault = None);
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() {
                self.boot(i);
            }
        }
        let mut converged_at = None;
        let mut t = CHAOS_MS;
        while t < CHAOS_MS + SETTLE_MS {
            t += 100;
            self.run_until(t);
            if let Some(version) = self.converged() {
                converged_at = Some((t, version));
                break;
            }
        }
        let versions = |sim: &Sim| -> Vec<_> { sim.nodes.iter().map(|n| n.node.as_ref().map(Node::version)).collect() };
        assert!(
            converged_at.is_some(),
            "seed {}: no convergence {SETTLE_MS} ms after healing: {:?}",
            self.seed,
            versions(&self)
        );
        // A commit still in flight at the heal may land after that: let it, and its pushes and
        // writes finish, then the nodes must agree again.
        self.run_until(t + 3_000);
        for i in 0..self.nodes.len() {
            self.check(i);
        }
        let version =
            self.converged().unwrap_or_else(|| panic!("seed {}: diverged again: {:?}", self.seed, versions(&self)));
        super::disk::assert_one_cluster(self.seed, self.nodes.iter().map(|n| &n.dir));
        let node = self.nodes[0].node.as_ref().expect("all up");
        assert_eq!(Checksum::of(node.root()), version.checksum, "seed {}: the store matches its checksum", self.seed);
        let markers: BTreeMap<String, bool> = node.root().entries().map(|(k, _)| (k.to_string(), true)).collect();
        let mut superseded = 0;
        for (i, marker, committed) in &self.answered {
            let present = markers.contains_key(&format!("m{marker}"));
            let node = self.nodes[*i].node.as_ref().expect("all up");
            let counted = node.superseded().any(|v| v == *committed);
            superseded += usize::from(counted);
            assert!(
                present != counted,
                "seed {}: commit m{marker} ({committed:?}) of node {i} was answered 200; in the final store: {present}, \
                 marked superseded by its node: {counted}",
                self.seed
            );
        }
        (self.answered.len(), superseded)
    }
}

#[test]
fn local_writes_converge_and_lose_no_answered_commit_under_faults() {
    let (commits, superseded) = super::run_seeds(|seed| Sim::new(seed).run());
    eprintln!("local writes: {commits} commits answered, {superseded} superseded and counted");
    assert!(commits > super::seeds().len(), "the runs committed something");
}
