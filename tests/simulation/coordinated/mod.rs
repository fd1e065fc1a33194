//! Coordinated writes, simulated: 3 to 5 voters (and, in some runs, learners that join while it
//! runs, and up to two nodes removed by an operator, the coordinator among them), each with its
//! own clock (its rate off by up to rho, and pauses), on a network that drops, delays, duplicates and reorders messages, partitions (both ways and
//! one way) and heals, with nodes that crash and restart from what their disks hold, and disks that
//! fail for a while. Clients run the lock dance against random nodes, a request at a time, each to
//! another node: increments of a counter, appends to a list, and reads with `?min-version=`; and
//! one-request writes: an increment by compare-and-set (read the counter and its ETag anywhere,
//! `PUT /data/counter` with `If-Match`) and an append by JSON Patch.
//!
//! What must hold in every history (checked as it happens, and at the end):
//! - one coordinator per term;
//! - one committed checksum per sequence: every version any node serves, or any read returns;
//! - no node serves an older version than it served before, across restarts too;
//! - acknowledged increments wrote distinct values, and all are in the final store; every
//!   acknowledged append is in the final list; nothing read or served is later discarded (the
//!   final store's history contains every version served);
//! - a read with `min-version=N` shows every commit answered with a sequence up to N;
//! - while the clock and pause bounds hold, at most one node holds a lease at any moment;
//! - a node that knows it was removed never coordinates, and a removal answered 200 leaves every
//!   running member's table by the end.

//!
//! This file holds the mode's world (its nodes, clients and history) and a run; `clients.rs` the
//! workload and the operator, `faults.rs` the faults it draws, `checks.rs` what it checks.

mod checks;
mod clients;
mod faults;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use lighthouse::core::node_state::NodeState;
use lighthouse::core::rng::Rng;
use lighthouse::core::roster::{Coordination, Member, new_id};
use lighthouse::core::sealed::seal_paced;
use lighthouse::core::value::Value;
use lighthouse::core::version::Checksum;
use lighthouse::http::Response;
use lighthouse::limits::CLOCK_DRIFT_PER_MILLE;

use super::disk::SimDir;
use super::harness::{Clock, Event, Harness, Profile, Sim};
use clients::{Asker, Client, Step};
use faults::Trap;

/// What the coordinated world draws (the numbers it always drew, so that seeds replay).
static PROFILE: Profile = Profile {
    coordinated: true,
    lost_ms: 2_500,
    delay_ms: (30, 4),
    duplicate_per_mille: 15,
    duplicate_spread_ms: 300,
    job_ms: 6,
    restart_ms: 2_500,
    heal_ms: 300,
    cut_in_flight: true,
    timers_first: false,
};

const CHAOS_MS: u64 = 15_000;
const SETTLE_MS: u64 = 25_000;
const CLIENTS: usize = 3;

/// What the runs pushed to voters (`PUT /cluster/accept`), across seeds: versions as their
/// change, and versions sent whole to a voter whose last push from the same node was a change
/// (mostly the fallback after a voter that lacked the base answered so).
static CHANGES_PUSHED: AtomicUsize = AtomicUsize::new(0);
static WHOLE_AFTER_CHANGE: AtomicUsize = AtomicUsize::new(0);

#[test]
fn coordinated_writes_keep_every_acknowledged_commit_under_faults() {
    let (commits, coordinators) = super::run_seeds(|seed| Coordinated::new(seed).run());
    let (changes, whole) = (CHANGES_PUSHED.load(Ordering::Relaxed), WHOLE_AFTER_CHANGE.load(Ordering::Relaxed));
    eprintln!(
        "coordinated writes: {commits} commits answered 200, {coordinators} terms with a coordinator; {changes} \
         versions pushed as changes, {whole} sent whole after a change"
    );
    let seeds = super::seeds().len();
    assert!(seeds < 100 || commits >= 5 * seeds, "the runs committed too little to prove anything: {commits}");
    assert!(seeds < 100 || (changes >= seeds && whole > 0), "both paths of a push ran: {changes}, {whole}");
}

/// What the clients, the operator and the faults of this mode do.
#[derive(Debug)]
enum Act {
    /// A client's request timed out, or it is time for its next task.
    ClientWake {
        client: usize,
        request: u64,
    },
    Join,
    /// An operator removes a node (the coordinator, or any other) by `DELETE /state/ADDRESS`.
    Remove {
        coordinator: bool,
    },
    /// The operator asks again (after a 503, or a 409 that says to retry), `left` more times.
    RemoveAgain {
        victim: usize,
        left: u32,
    },
    /// The operator stops a removed node for good.
    Stop {
        node: usize,
    },
    /// Every node crashes at once (each is restarted a moment later, from its disk).
    CrashAll,
    /// Every node is restarted in turn, as an operator upgrading the cluster would.
    RollingRestart,
    /// A node that joined while the run went on (and may never have voted) crashes.
    CrashJoined,
    /// The coordinator crashes, or is cut off from every other node (the moments right after it
    /// answers a commit are the ones that matter).
    CrashCoordinator,
    IsolateCoordinator,
    /// The scripted trap (see `the_trap`): the coordinator's next push reaches one voter only,
    /// which is cut off from the others...
    ArmTrap,
    /// ...then the coordinator dies.
    SpringTrap,
}

struct Coordinated {
    h: Harness<Act, Asker>,
    /// How many nodes the cluster had at the start (the rest joined during the run).
    initial: usize,
    /// Whether this run keeps the clock and pause bounds (drift <= rho, pauses <= P).
    bounds_hold: bool,
    /// The highest sequence each node ever served, across restarts.
    served_max: Vec<u64>,
    /// Each node's removal was answered 200 (it may still run, serving nothing).
    removed: Vec<bool>,
    clients: Vec<Client>,
    next_request: u64,
    // ---- The history ----
    /// term -> the id of its coordinator.
    coordinators: BTreeMap<u64, String>,
    /// sequence -> the one checksum served or read at it.
    committed: BTreeMap<u64, Checksum>,
    /// Increments answered 200: (value written, sequence).
    increments: Vec<(u64, u64)>,
    /// Appends answered 200: (id, sequence).
    appends: Vec<(u64, u64)>,
    next_append: u64,
    /// Scripted runs: no random faults, only the trap.
    trap: Option<Trap>,
    /// The operator's removals waiting for their answers: request -> (the node it removes, how
    /// many more times the operator would ask).
    removals: HashMap<u64, (usize, u32)>,
    /// Whether the last push from one node to another was a change (for the counts above).
    last_push_was_change: HashMap<(usize, usize), bool>,
}

impl Sim for Coordinated {
    type Event = Act;
    type Client = Asker;

    fn h(&self) -> &Harness<Act, Asker> {
        &self.h
    }

    fn hm(&mut self) -> &mut Harness<Act, Asker> {
        &mut self.h
    }

    /// `--seeds` naming two other nodes: an operator names members as seeds, not nodes it removed.
    fn seeds_of(&self, i: usize) -> Vec<String> {
        (0..self.h.nodes.len())
            .filter(|&j| j != i && !self.h.nodes[j].gone && !self.removed[j])
            .map(|j| self.h.nodes[j].address.clone())
            .take(2)
            .collect()
    }

    fn answered(&mut self, _: usize, asker: Asker, response: Response) {
        self.client_answer(asker, response);
    }

    fn observe(&mut self, i: usize) {
        self.check_node(i);
    }

    fn sending(&mut self, from: usize, to: usize, request: &lighthouse::core::PeerRequest) {
        if request.path == "/cluster/accept" {
            let change = request.body.as_slice().starts_with(b"{\"change\":");
            if change {
                CHANGES_PUSHED.fetch_add(1, Ordering::Relaxed);
            } else if self.last_push_was_change.get(&(from, to)) == Some(&true) {
                WHOLE_AFTER_CHANGE.fetch_add(1, Ordering::Relaxed);
            }
            self.last_push_was_change.insert((from, to), change);
            self.spring_trap_on_push(from, to);
        }
    }

    fn handle_mode(&mut self, act: Act) {
        match act {
            Act::ClientWake { client, request } => self.client_wake(client, request),
            Act::RemoveAgain { victim, left } => {
                if !self.h.nodes[victim].gone && !self.removed[victim] {
                    self.ask_removal(victim, left);
                }
            }
            Act::Stop { node } => {
                self.h.crash(node);
                self.h.nodes[node].gone = true;
            }
            act => self.fault(act),
        }
    }
}

impl Coordinated {
    fn new(seed: u64) -> Coordinated {
        let mut rng = Rng::new(seed);
        let count = 3 + rng.below(3) as usize;
        let bounds_hold = rng.below(10) != 0;
        Coordinated::with(seed, rng, count, bounds_hold)
    }

    fn with(seed: u64, mut rng: Rng, count: usize, bounds_hold: bool) -> Coordinated {
        let cluster = new_id(rng.next_u64());
        let mut sim = Coordinated {
            h: Harness::new(seed, rng, CHAOS_MS, &PROFILE),
            initial: count,
            bounds_hold,
            served_max: Vec::new(),
            removed: Vec::new(),
            clients: Vec::new(),
            next_request: 1,
            coordinators: BTreeMap::new(),
            committed: BTreeMap::new(),
            increments: Vec::new(),
            appends: Vec::new(),
            next_append: 1,
            trap: None,
            removals: HashMap::new(),
            last_push_was_change: HashMap::new(),
        };
        // A cluster that exists already: every node holds the same first version, whose voters are
        // all of them, and elects a coordinator.
        let voters: Vec<Member> =
            (0..count).map(|i| Member { id: new_id(1000 + i as u64), address: address(i) }).collect();
        let coordination = Coordination { cluster: cluster.clone(), term: 0, voters, removed: Vec::new() };
        let first = seal_paced(
            Value::parse(br#"{"counter": 0, "list": []}"#).unwrap(),
            1,
            None,
            Some(coordination),
            &mut || {},
        );
        for i in 0..count {
            let state = NodeState { cluster: Some(cluster.clone()), ..NodeState::new(new_id(1000 + i as u64)) };
            sim.add_node(SimDir::with_snapshot(&first.body, Some(state)));
        }
        for i in 0..CLIENTS {
            sim.clients.push(Client::default());
            sim.at(10 + i as u64 * 7, Act::ClientWake { client: i, request: 0 });
        }
        sim
    }

    /// A node with a clock of its own, started from `dir` (an empty one: a new node with
    /// `--seeds`).
    fn add_node(&mut self, dir: SimDir) {
        let i = self.h.nodes.len();
        let limit = if self.bounds_hold { CLOCK_DRIFT_PER_MILLE } else { 3 * CLOCK_DRIFT_PER_MILLE };
        let drift = self.h.rng.below(2 * limit + 1) as i64 - limit as i64;
        let offset = self.h.rng.below(1_000_000);
        self.h.add_node(address(i), dir, Clock { drift, offset, paused_until: 0, stale: None });
        self.served_max.push(0);
        self.removed.push(false);
        self.boot(i);
    }

    fn at(&mut self, delay: u64, act: Act) {
        self.h.at(delay, Event::Mode(act));
    }

    /// One whole run; panics with the seed on any broken invariant.
    fn run(mut self) -> (usize, usize) {
        if self.trap.is_some() {
            self.at(5_000, Act::ArmTrap);
        } else {
            self.schedule_chaos();
        }
        self.run_until(CHAOS_MS);
        self.calm_down();
        self.settle(CHAOS_MS, CHAOS_MS + SETTLE_MS, 200, |sim| {
            let t = sim.h.real;
            sim.converged().is_some() && sim.clients.iter().all(|c| c.step == Step::Idle) && t > CHAOS_MS + 5_000
        });
        let version = match self.converged() {
            Some(version) => version,
            None => panic!("seed {}: no convergence after the faults:\n{}", self.h.seed, self.states().join("\n")),
        };
        super::disk::assert_one_cluster(self.h.seed, self.h.nodes.iter().filter(|n| !n.gone).map(|n| &n.dir));
        self.check_tables();
        self.check_final(version);
        (self.increments.len() + self.appends.len(), self.coordinators.len())
    }
}

/// The trap of a version held by a minority (five voters): a coordinator pushes a version that only
/// one voter takes, and dies; the other three elect a coordinator that never saw it and commit
/// another version at that sequence; when the two meet, the answered one is kept and the other is
/// never served. Scripted, so that it happens in every run; the checks are those of every run.
#[test]
fn the_trap_of_a_version_held_by_a_minority_keeps_the_answered_commit() {
    super::init_log();
    for seed in 1..=20 {
        let mut sim = Coordinated::with(seed, Rng::new(seed), 5, true);
        sim.trap = Some(Trap::default());
        sim.h.scripted = true;
        let (commits, _) = sim.run();
        assert!(commits > 10, "seed {seed}: the run committed {commits}");
    }
}

fn address(i: usize) -> String {
    format!("10.0.1.{}:8001", i + 1)
}
