//! The event loop both modes run: what a node's effects become (answers, peer requests on the
//! network, worker jobs on its disk), the harness's events, node timers in time order, start-up
//! and the calm at the end. A mode plugs in through the hooks at the top of `Sim`.

use std::cmp::Reverse;
use std::fmt::Debug;

use lighthouse::core::jobs::{self, Job};
use lighthouse::core::{Effect, PeerReply, PeerRequest, Reply};
use lighthouse::http::{Headers, Method, Response, parse_head};

use super::{Event, Harness, Origin};

/// A simulation: a harness, and what its mode adds through these hooks. The provided methods are
/// the event loop, the same for every mode.
pub trait Sim: Sized {
    /// The mode's own events (its workload and faults).
    type Event: Debug;
    /// Who, among the mode's clients, waits for an answer.
    type Client: Debug + Clone;

    fn h(&self) -> &Harness<Self::Event, Self::Client>;
    fn hm(&mut self) -> &mut Harness<Self::Event, Self::Client>;
    /// The `--seeds` node `i` is started with.
    fn seeds_of(&self, i: usize) -> Vec<String>;
    /// Node `i` has just started (its first effects run next).
    fn booted(&mut self, _i: usize) {}
    /// Node `i` answered a client's request.
    fn answered(&mut self, i: usize, client: Self::Client, response: Response);
    /// What node `i` is and serves now, checked after each of its steps.
    fn observe(&mut self, i: usize);
    /// Node `from` is about to send `request` to `to`.
    fn sending(&mut self, _from: usize, _to: usize, _request: &PeerRequest) {}
    /// A node streamed an event to a watcher.
    fn streamed(&mut self) {}
    fn handle_mode(&mut self, event: Self::Event);

    /// Starts node `i` from what its disk holds, by the server's own start-up decision, with the
    /// same command line every time. A node whose disk refuses `node.json` does not start (the
    /// server exits), and is started again a little later.
    fn boot(&mut self, i: usize) {
        let seeds = self.seeds_of(i);
        let h = self.hm();
        h.label(i);
        let now = h.now_of(i);
        let address = h.nodes[i].address.clone();
        let Some(node) = h.nodes[i].dir.boot(&address, seeds, h.profile.coordinated, &mut h.rng, now) else {
            let delay = 500 + h.rng.below(2_000);
            h.at(delay, Event::Restart { node: i });
            return;
        };
        h.nodes[i].node = Some(node);
        // Its writer makes its spare files as it starts, beside the loop's first steps.
        let (generation, delay) = (h.nodes[i].generation, h.rng.below(h.profile.job_ms));
        h.at(delay, Event::Settle { node: i, generation });
        self.booted(i);
        self.drain(i);
    }

    /// Carries out every effect node `i` has queued, then checks what it is.
    fn drain(&mut self, i: usize) {
        loop {
            let Some(node) = self.hm().nodes[i].node.as_mut() else { return };
            let effects: Vec<Effect> = node.drain_effects().collect();
            if effects.is_empty() {
                break;
            }
            for effect in effects {
                self.effect(i, effect);
            }
        }
        self.observe(i);
    }

    fn effect(&mut self, i: usize, effect: Effect) {
        let h = self.hm();
        let generation = h.nodes[i].generation;
        match effect {
            Effect::Answer { ticket, response } => match h.nodes[i].origins.remove(&ticket) {
                Some(origin) => self.dispatch(i, origin, response),
                None => panic!("seed {}: an answer for unknown ticket {ticket}", h.seed),
            },
            Effect::Event { .. } => self.streamed(),
            // Freeing a version the store let go of changes nothing the core sees: it is done
            // here, with no event and no draw of the generator, so histories do not shift with it.
            Effect::Job(Job::Retire(_)) => {}
            Effect::Job(job) => {
                let delay = h.rng.below(h.profile.job_ms);
                h.at(delay, Event::JobDone { node: i, generation, job });
            }
            Effect::Peer(request) => {
                let Some(to) = h.nodes.iter().position(|n| n.address == request.peer) else {
                    panic!("seed {}: a request to an unknown address {}", h.seed, request.peer)
                };
                self.sending(i, to, &request);
                let id = request.id;
                let lost = Event::Outcome { to: i, from: None, generation, id, result: Err("lost".into()) };
                let deliver = Event::Deliver { to, from: i, from_generation: generation, request };
                self.hm().transmit(i, to, deliver, lost);
            }
        }
    }

    /// Gives node `i`'s answer to whoever waits for it.
    fn dispatch(&mut self, i: usize, origin: Origin<Self::Client>, response: Response) {
        match origin {
            Origin::Client(client) => self.answered(i, client, response),
            Origin::Peer { from, generation, id } => self.hm().reply(i, from, generation, id, response),
        }
    }

    /// Hands a request to node `i`; its answer, now or later, goes to `origin`.
    fn send(
        &mut self,
        i: usize,
        origin: Origin<Self::Client>,
        method: Method,
        target: &str,
        body: &[u8],
        headers: Headers,
    ) {
        let Some((ticket, reply)) = self.hm().call(i, method, target, headers, body) else { return };
        match reply {
            Reply::Now(response) | Reply::Stream(response) => self.dispatch(i, origin, response),
            Reply::Later => {
                self.hm().nodes[i].origins.insert(ticket, origin);
            }
        }
        self.drain(i);
    }

    /// A peer request reaches node `to`, unless it is down or the link was cut on the way.
    fn deliver(&mut self, to: usize, from: usize, from_generation: u64, request: PeerRequest) {
        let h = self.hm();
        if h.nodes[to].node.is_none() {
            let refused = Err("refused".into());
            h.at(
                1,
                Event::Outcome { to: from, from: None, generation: from_generation, id: request.id, result: refused },
            );
            return;
        }
        if h.profile.cut_in_flight && h.blocked.contains(&(from, to)) {
            let lost = Err("lost".into());
            let timeout = 100 + h.rng.below(h.profile.lost_ms);
            h.at(
                timeout,
                Event::Outcome { to: from, from: None, generation: from_generation, id: request.id, result: lost },
            );
            return;
        }
        // The request's head as the shell writes it (`Content-Type: application/json`, the core's
        // own header lines) and the receiving node's reader parses it.
        let mut head = Vec::new();
        let (method, path, length) = (request.method, &request.path, request.body.len());
        lighthouse::http::encode_request_head(method, path, &request.peer, length, &request.headers, &mut head);
        let parsed = parse_head(&head, u64::MAX).expect("a peer request's head parses");
        let headers = parsed.expect("a whole head").headers;
        let origin = Origin::Peer { from, generation: from_generation, id: request.id };
        let body = request.body.as_slice().to_vec();
        self.send(to, origin, request.method, &request.path, &body, headers);
    }

    /// The outcome of a peer request reaches its sender (if it still runs as the same incarnation).
    fn outcome(&mut self, to: usize, from: Option<usize>, generation: u64, id: u64, result: Result<PeerReply, String>) {
        let h = self.hm();
        if h.nodes[to].generation != generation {
            return;
        }
        let result = match from {
            Some(from) if h.profile.cut_in_flight && h.blocked.contains(&(from, to)) => Err("lost".to_string()),
            _ => result,
        };
        let now = h.node_now(to);
        let Some(node) = h.nodes[to].node.as_mut() else { return };
        node.peer_reply(now, id, result);
        self.drain(to);
    }

    /// Runs a worker job with the workers' own code (`jobs::run`), on node `i`'s simulated disk.
    fn job_done(&mut self, i: usize, generation: u64, job: Job) {
        let h = self.hm();
        if h.nodes[i].generation != generation || h.nodes[i].node.is_none() {
            return;
        }
        let sim_node = &mut h.nodes[i];
        let done = jobs::run_keeping(job, &mut sim_node.dir, &mut sim_node.text, &mut || {});
        if h.nodes[i].dir.unsettled() {
            // The writer renames and makes spare files when idle, or at once with none left:
            // meanwhile a crash finds commits in spares, and commits may find none ready.
            let delay = h.rng.below(8 * h.profile.job_ms);
            h.at(delay, Event::Settle { node: i, generation });
        }
        let now = h.node_now(i);
        h.nodes[i].node.as_mut().expect("checked above").job_done(now, done);
        self.drain(i);
    }

    fn handle(&mut self, event: Event<Self::Event>) {
        let h = self.hm();
        // A paused node's events wait for it.
        let target = match &event {
            Event::Deliver { to, .. } | Event::Outcome { to, .. } => Some(*to),
            Event::JobDone { node, .. } | Event::Settle { node, .. } => Some(*node),
            _ => None,
        };
        if let Some(i) = target
            && h.nodes[i].clock.paused_until > h.real
        {
            let wait = h.nodes[i].clock.paused_until - h.real;
            h.at(wait, event);
            return;
        }
        match event {
            Event::Deliver { to, from, from_generation, request } => self.deliver(to, from, from_generation, request),
            Event::Outcome { to, from, generation, id, result } => self.outcome(to, from, generation, id, result),
            Event::JobDone { node, generation, job } => self.job_done(node, generation, job),
            Event::Settle { node, generation } => {
                if h.nodes[node].generation == generation && h.nodes[node].node.is_some() {
                    h.nodes[node].dir.settle();
                }
            }
            Event::Crash { node } => h.crash(node),
            Event::Restart { node } => {
                if h.nodes[node].node.is_none() && !h.nodes[node].gone {
                    self.boot(node);
                }
            }
            Event::Partition => h.partition(),
            Event::OneWay { from, to } => {
                if from != to {
                    h.blocked.insert((from, to));
                    let delay = 300 + h.rng.below(3_000);
                    h.at(delay, Event::Heal);
                }
            }
            Event::Heal => h.blocked.clear(),
            Event::Pause { node, ms } => {
                let now = h.now_of(node);
                let clock = &mut h.nodes[node].clock;
                clock.paused_until = clock.paused_until.max(h.real + ms);
                clock.stale = Some(now);
            }
            Event::Disk { node, fault } => {
                h.nodes[node].dir.set_fault(fault);
                if fault.is_some() {
                    let delay = 200 + h.rng.below(2_000);
                    h.at(delay, Event::Disk { node, fault: None });
                }
            }
            Event::Mode(event) => self.handle_mode(event),
        }
    }

    /// Fires node `i`'s timer. `spins` counts the timers fired at one real moment, and the moment.
    fn tick(&mut self, i: usize, spins: &mut (u32, u64)) {
        let h = self.hm();
        let now = h.node_now(i);
        if let Some(node) = h.nodes[i].node.as_mut() {
            node.tick(now);
            // A timer that fires and is not moved on would spin a real server's loop.
            *spins = if h.real == spins.1 { (spins.0 + 1, spins.1) } else { (0, h.real) };
            let next = node.next_deadline();
            assert!(spins.0 < 10_000, "seed {}: node {i}'s timer at {next:?} does not move on", h.seed);
        }
        self.drain(i);
    }

    /// Runs events and node timers in time order until `until`.
    fn run_until(&mut self, until: u64) {
        let mut spins = (0, u64::MAX);
        loop {
            let h = self.hm();
            let next_event = h.events.peek().map(|Reverse((t, _))| *t);
            let candidates = [next_event.map(|t| (t, usize::MAX)), h.next_timer()].into_iter().flatten();
            let Some((next, who)) = candidates.min() else { return };
            if next > until {
                h.real = until;
                return;
            }
            // A timer already overdue (its deadline set in the past) fires now: time never goes back.
            h.real = h.real.max(next);
            if who != usize::MAX && (h.profile.timers_first || next_event.is_none_or(|e| e > next)) {
                // First every node whose timer is due (in the order of the nodes), or that one.
                let due: Vec<usize> = if h.profile.timers_first { (0..h.nodes.len()).collect() } else { vec![who] };
                for i in due {
                    if self.h().timer_at(i).is_some_and(|t| t <= next) {
                        self.tick(i, &mut spins);
                    }
                }
            } else {
                let Reverse((_, id)) = h.events.pop().expect("peeked");
                // Gone: a message lost in a crash.
                if let Some(event) = h.pending.remove(&id) {
                    log::trace!("{} event {id}: {:.300}", h.real, format!("{event:?}"));
                    self.handle(event);
                }
            }
        }
    }

    /// The faults end: every link and disk heals, and every node that is down (and not gone for
    /// good) is started again.
    fn calm_down(&mut self) {
        self.hm().blocked.clear();
        for i in 0..self.h().nodes.len() {
            let sim_node = &mut self.hm().nodes[i];
            sim_node.dir.set_fault(None);
            if sim_node.node.is_none() && !sim_node.gone {
                self.boot(i);
            }
        }
    }

    /// Runs `step` ms at a time from `from` until `done` holds or `until`: the time it stopped at,
    /// and whether `done` held.
    fn settle(&mut self, from: u64, until: u64, step: u64, done: impl Fn(&mut Self) -> bool) -> (u64, bool) {
        let mut t = from;
        while t < until {
            t += step;
            self.run_until(t);
            if done(self) {
                return (t, true);
            }
        }
        (t, false)
    }
}
