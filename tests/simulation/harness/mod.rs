//! The world both simulations run in: nodes with their clocks and data directories (`disk.rs`), a
//! network with its faults, and the event loop that carries out what the cores ask for (answers,
//! peer requests, worker jobs) and fires their timers in time order. A mode (`local.rs`,
//! `coordinated/`) brings its workload, the faults it draws and what it checks, through the hooks
//! of `Sim`; everything else is here, once.
//!
//! Nodes are started, stopped and restarted only as the server is: `SimDir::boot` (the server's
//! start-up decision, `core::startup::decide`) on the bytes a real directory would hold.
//!
//! Where the two modes drew differently before the harness was shared (a delay's range, whether a
//! cut link loses what is in flight), `Profile` says so, so that every seed replays its history.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use lighthouse::core::clock::Now;
use lighthouse::core::jobs::Job;
use lighthouse::core::rng::Rng;
use lighthouse::core::value::TextCache;
use lighthouse::core::{Node, PeerReply, PeerRequest, Reply, Request, Ticket};
use lighthouse::http::{Headers, Method, Response};

use super::disk::{DiskFault, SimDir};

mod sim;
pub use sim::Sim;

/// How a mode's world draws its randomness: the numbers each mode has always used.
#[derive(Debug)]
pub struct Profile {
    /// The nodes' `--coordinated` flag.
    pub coordinated: bool,
    /// A lost message is heard of by its sender 100 ms plus up to this later.
    pub lost_ms: u64,
    /// A message takes 1 ms plus up to this: while faults last, and after.
    pub delay_ms: (u64, u64),
    /// While faults last, a peer request arrives twice with this chance in a thousand...
    pub duplicate_per_mille: u64,
    /// ...the copy up to this much later.
    pub duplicate_spread_ms: u64,
    /// A worker job takes up to this.
    pub job_ms: u64,
    /// A crashed node is restarted 50 ms plus up to this later.
    pub restart_ms: u64,
    /// A partition heals this plus up to 3 s later.
    pub heal_ms: u64,
    /// A link cut while a message or answer is on its way loses it, and a crash loses each request
    /// its node had sent and the network had not delivered with a chance of one in two.
    pub cut_in_flight: bool,
    /// Node timers due at the moment of an event fire before it, every due node's in node order
    /// (else the event comes first, and timers fire one at a time).
    pub timers_first: bool,
}

/// What happens at a moment: the harness's events, and the mode's own.
#[derive(Debug)]
pub enum Event<E> {
    /// A peer request arrives at `to`.
    Deliver {
        to: usize,
        from: usize,
        from_generation: u64,
        request: PeerRequest,
    },
    /// The outcome of a request `to` sent (`from` answered it; none when it was lost).
    Outcome {
        to: usize,
        from: Option<usize>,
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
    /// The writer of node `node` does its own work (`SimDir::settle`), idle between jobs.
    Settle {
        node: usize,
        generation: u64,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    /// The nodes fall into two random groups that do not hear each other.
    Partition,
    /// One direction of one link loses everything.
    OneWay {
        from: usize,
        to: usize,
    },
    Heal,
    /// The node's process stops for `ms`.
    Pause {
        node: usize,
        ms: u64,
    },
    /// Node `node`'s disk starts failing, or works again (`None`).
    Disk {
        node: usize,
        fault: Option<DiskFault>,
    },
    Mode(E),
}

/// Who waits for the answer to a request a node parked: one of the mode's clients, or a peer
/// (answer to node `from`, incarnation `generation`, call `id`).
#[derive(Debug, Clone)]
pub enum Origin<C> {
    Client(C),
    Peer { from: usize, generation: u64, id: u64 },
}

/// A node's clock: its rate off by `drift` thousandths, and pauses.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    pub drift: i64,
    pub offset: u64,
    /// The process is stopped until then (real time): its events wait.
    pub paused_until: u64,
    /// After a pause, its next step runs with the time it read before the pause (it read the
    /// clock, stopped, and acts on that reading).
    pub stale: Option<Now>,
}

impl Clock {
    pub fn now(&self, real: u64) -> Now {
        let mono = self.offset + real * (1000 + self.drift) as u64 / 1000;
        Now { mono_ms: mono, unix_ms: 1_800_000_000_000 + mono }
    }

    /// The real time at which this clock reads `mono`.
    fn real_at(&self, mono: u64) -> u64 {
        (mono.saturating_sub(self.offset) * 1000).div_ceil((1000 + self.drift) as u64)
    }
}

pub struct SimNode<C> {
    pub address: String,
    pub node: Option<Node>,
    /// Bumped at each crash, so messages for the dead incarnation are dropped.
    pub generation: u64,
    /// Its data directory: snapshot files and `node.json`, as bytes.
    pub dir: SimDir,
    pub origins: HashMap<Ticket, Origin<C>>,
    next_ticket: Ticket,
    pub clock: Clock,
    /// Left the cluster for good (removed, and stopped).
    pub gone: bool,
    /// The workers' text of the store walked last (one for both, as the jobs run one at a time).
    pub text: TextCache,
}

impl<C> SimNode<C> {
    /// The ticket its next request gets.
    pub fn next_ticket(&self) -> Ticket {
        self.next_ticket
    }
}

pub struct Harness<E, C> {
    pub seed: u64,
    pub rng: Rng,
    pub real: u64,
    events: BinaryHeap<Reverse<(u64, u64)>>,
    /// By id, so that walking it is the same every run (a seed replays exactly).
    pending: BTreeMap<u64, Event<E>>,
    next_event: u64,
    pub nodes: Vec<SimNode<C>>,
    /// Directed links that lose everything.
    pub blocked: HashSet<(usize, usize)>,
    /// Faults stop at this time: the network heals and stays healed.
    pub calm_from: u64,
    /// A scripted run draws no random faults.
    pub scripted: bool,
    pub profile: &'static Profile,
}

impl<E, C> Harness<E, C> {
    pub fn new(seed: u64, rng: Rng, calm_from: u64, profile: &'static Profile) -> Self {
        Harness {
            seed,
            rng,
            real: 0,
            events: BinaryHeap::new(),
            pending: BTreeMap::new(),
            next_event: 0,
            nodes: Vec::new(),
            blocked: HashSet::new(),
            calm_from,
            scripted: false,
            profile,
        }
    }

    /// A node that has not started yet, with its directory and clock.
    pub fn add_node(&mut self, address: String, dir: SimDir, clock: Clock) {
        let (node, generation, origins, next_ticket, gone) = (None, 0, HashMap::new(), 1, false);
        let text = TextCache::default();
        self.nodes.push(SimNode { address, node, generation, dir, origins, next_ticket, clock, gone, text });
    }

    pub fn at(&mut self, delay: u64, event: Event<E>) {
        let id = self.next_event;
        self.next_event += 1;
        self.events.push(Reverse((self.real + delay, id)));
        self.pending.insert(id, event);
    }

    pub fn calm(&self) -> bool {
        self.real >= self.calm_from
    }

    /// Random faults: before the calm, and never in a scripted run.
    pub fn chaos(&self) -> bool {
        !self.calm() && !self.scripted
    }

    pub fn now_of(&self, i: usize) -> Now {
        self.nodes[i].clock.now(self.real)
    }

    /// The log lines that follow are node `i`'s, now.
    fn label(&self, i: usize) {
        let real = self.real;
        super::log_context(|| format!("{real:>6} n{i}"));
    }

    /// The time node `i` acts on: its clock now, or after a pause the reading it took before.
    fn node_now(&mut self, i: usize) -> Now {
        self.label(i);
        let now = self.now_of(i);
        self.nodes[i].clock.stale.take().unwrap_or(now)
    }

    /// Hands a request to node `i`: its ticket and what the node does with it (`None`: it is down).
    pub fn call(
        &mut self,
        i: usize,
        method: Method,
        target: &str,
        headers: Headers,
        body: &[u8],
    ) -> Option<(Ticket, Reply)> {
        let now = self.node_now(i);
        let sim_node = &mut self.nodes[i];
        let node = sim_node.node.as_mut()?;
        let ticket = sim_node.next_ticket;
        sim_node.next_ticket += 1;
        let request = Request { method, target, headers, body, client: None, grant: None };
        Some((ticket, node.handle(now, ticket, &request)))
    }

    /// Sends a message from `from` to `to`: lost on a cut link or at random (the sender hears of
    /// it after a timeout), else delayed, sometimes duplicated.
    fn transmit(&mut self, from: usize, to: usize, event: Event<E>, lost: Event<E>) {
        let profile = self.profile;
        let cut = self.blocked.contains(&(from, to));
        if cut || (self.chaos() && self.rng.chance(30)) {
            let timeout = 100 + self.rng.below(profile.lost_ms);
            self.at(timeout, lost);
            return;
        }
        let delay = 1 + self.rng.below(if self.chaos() { profile.delay_ms.0 } else { profile.delay_ms.1 });
        if self.chaos()
            && self.rng.chance(profile.duplicate_per_mille)
            && let Event::Deliver { to, from, from_generation, request } = &event
        {
            let copy =
                Event::Deliver { to: *to, from: *from, from_generation: *from_generation, request: request.clone() };
            let later = delay + self.rng.below(profile.duplicate_spread_ms);
            self.at(later, copy);
        }
        self.at(delay, event);
    }

    /// Sends node `at`'s answer to a request of node `to`.
    fn reply(&mut self, at: usize, to: usize, generation: u64, id: u64, response: Response) {
        let result = Ok(PeerReply {
            status: response.status,
            headers: response.headers.as_slice().to_vec(),
            body: response.body.as_slice().to_vec(),
        });
        let lost = Event::Outcome { to, from: None, generation, id, result: Err("lost".into()) };
        self.transmit(at, to, Event::Outcome { to, from: Some(at), generation, id, result }, lost);
    }

    /// Node `i`'s process dies: what it had not written is lost, and it is started again a little
    /// later from its disk. Its writer may die in the middle of a job (after some of its file
    /// operations), and half the time the machine loses power too: only what was synced stays.
    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].gone || self.nodes[i].node.take().is_none() {
            return;
        }
        let generation = self.nodes[i].generation;
        let writing = self.pending.iter().find_map(|(id, e)| match e {
            Event::JobDone { node, generation: g, job } if *node == i && *g == generation && job.writes() => Some(*id),
            _ => None,
        });
        if let Some(id) = writing
            && self.rng.chance(500)
            && let Some(Event::JobDone { job, .. }) = self.pending.remove(&id)
        {
            let dir = &mut self.nodes[i].dir;
            dir.files.cut_after(self.rng.below(4) as u32);
            let _ = lighthouse::core::jobs::run(job, dir, &mut || {});
        }
        let power_loss = self.rng.chance(500);
        self.nodes[i].dir.files.crash(power_loss);
        self.nodes[i].generation += 1;
        self.nodes[i].origins.clear();
        if self.profile.cut_in_flight {
            // What it had sent and the network had not delivered dies with it, or not.
            let dying: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, e)| matches!(e, Event::Deliver { from, .. } if *from == i))
                .map(|(id, _)| *id)
                .collect();
            for id in dying {
                if self.rng.chance(500) {
                    // Nobody waits for its answer: the sender is gone.
                    self.pending.remove(&id);
                }
            }
        }
        let delay = 50 + self.rng.below(self.profile.restart_ms);
        self.at(delay, Event::Restart { node: i });
    }

    /// Splits the nodes into two random groups that lose every message between them, until a heal.
    fn partition(&mut self) {
        self.blocked.clear();
        let groups: Vec<u64> = (0..self.nodes.len()).map(|_| self.rng.below(2)).collect();
        for a in 0..self.nodes.len() {
            for b in 0..self.nodes.len() {
                if groups[a] != groups[b] {
                    self.blocked.insert((a, b));
                }
            }
        }
        let delay = self.profile.heal_ms + self.rng.below(3_000);
        self.at(delay, Event::Heal);
    }

    /// Cuts node `i` off from every other node, both ways, until a heal.
    pub fn isolate(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            self.blocked.insert((i, j));
            self.blocked.insert((j, i));
        }
        let delay = 300 + self.rng.below(3_000);
        self.at(delay, Event::Heal);
    }

    /// The real time node `i`'s timer fires at (a paused node's waits).
    fn timer_at(&self, i: usize) -> Option<u64> {
        let sim_node = &self.nodes[i];
        let deadline = sim_node.node.as_ref()?.next_deadline()?;
        Some(sim_node.clock.real_at(deadline.0).max(sim_node.clock.paused_until))
    }

    /// The next node timer to fire: its real time and its node.
    fn next_timer(&self) -> Option<(u64, usize)> {
        (0..self.nodes.len()).filter_map(|i| Some((self.timer_at(i)?, i))).min()
    }
}
