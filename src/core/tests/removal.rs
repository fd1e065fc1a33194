//! Voters removed while the cluster restarts: three coordinated nodes in memory, on a network that
//! delivers at once (or not at all to a node cut off), restarted from what each holds, as a
//! restart from its data directory would find it.

use std::collections::HashMap;

use super::*;
use crate::core::node_state::NodeState;
use crate::core::roster::{Coordination, Member};
use crate::core::sealed::seal_paced;

fn address(i: usize) -> String {
    format!("10.0.8.{}:8001", i + 1)
}

fn id(i: usize) -> String {
    format!("00000000000000d{i}")
}

const CLUSTER: &str = "00000000000000ca";

struct Net {
    nodes: Vec<Node>,
    now: Now,
    next_ticket: Ticket,
    /// Nodes cut off from the others.
    cut: Vec<usize>,
    /// Parked answers to peers: (node, ticket) -> (the asking node, its call id).
    waiting: HashMap<(usize, Ticket), (usize, u64)>,
    /// Answers to clients: (node, ticket, answer).
    clients: Vec<(usize, Ticket, Response)>,
}

/// Node `i` as it starts from `start`, with `state` as its `node.json`.
fn boot(i: usize, state: NodeState, start: Start, now: Now) -> Node {
    let coordinated = CoordinatedConfig { state: state.clone(), founding: None, force_new_cluster: false };
    let config = CoreConfig {
        seeds: (0..3).filter(|j| *j != i).map(address).collect(),
        rng_seed: 11 + i as u64,
        identity: state,
        coordinated: Some(coordinated),
        ..CoreConfig::single(&address(i))
    };
    Node::new(config, now, start)
}

impl Net {
    /// Three voters holding the same first version, once one of them coordinates.
    fn new() -> Net {
        let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
        let voters: Vec<Member> = (0..3).map(|i| Member { id: id(i), address: address(i) }).collect();
        let coordination = Coordination { cluster: CLUSTER.to_string(), term: 0, voters, removed: Vec::new() };
        let first = seal_paced(Value::parse(br#"{"counter": 0}"#).unwrap(), 1, None, Some(coordination), &mut || {});
        let nodes = (0..3)
            .map(|i| {
                let state = NodeState { cluster: Some(CLUSTER.to_string()), ..NodeState::new(id(i)) };
                boot(i, state, Start { sealed: first.clone(), floor: 1, ..Start::empty() }, now)
            })
            .collect();
        let mut net = Net { nodes, now, next_ticket: 1, cut: Vec::new(), waiting: HashMap::new(), clients: Vec::new() };
        assert!(net.run_until(20_000, |net| net.coordinator().is_some()), "no coordinator elected");
        net
    }

    /// The node that coordinates with a lease, if one does.
    fn coordinator(&self) -> Option<usize> {
        (0..self.nodes.len())
            .find(|i| self.nodes[*i].consensus_status(self.now).is_some_and(|s| s.coordinator && s.lease))
    }

    /// Moves time on in steps of 50 ms until `done` holds (true) or `ms` have passed (false).
    fn run_until(&mut self, ms: u64, done: impl Fn(&Net) -> bool) -> bool {
        let until = self.now.mono_ms + ms;
        while self.now.mono_ms < until {
            self.now.mono_ms += 50;
            self.now.unix_ms += 50;
            for node in &mut self.nodes {
                node.tick(self.now);
            }
            self.settle();
            if done(self) {
                return true;
            }
        }
        false
    }

    /// Carries out every effect of every node until none is left.
    fn settle(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                let effects: Vec<Effect> = self.nodes[i].drain_effects().collect();
                any |= !effects.is_empty();
                for effect in effects {
                    self.effect(i, effect);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn effect(&mut self, i: usize, effect: Effect) {
        match effect {
            Effect::Answer { ticket, response } => match self.waiting.remove(&(i, ticket)) {
                Some((from, call)) => self.reply(from, call, i, response),
                None => self.clients.push((i, ticket, response)),
            },
            Effect::Event { .. } => {}
            Effect::Job(job) => {
                let done = jobs::run(job, &mut NoDisk, &mut || {});
                self.nodes[i].job_done(self.now, done);
            }
            Effect::Peer(request) => {
                let to = (0..3).find(|j| address(*j) == request.peer).expect("a peer of the three");
                if self.cut.contains(&i) || self.cut.contains(&to) {
                    self.nodes[i].peer_reply(self.now, request.id, Err("lost".into()));
                    return;
                }
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                match super::changes::deliver(&mut self.nodes[to], self.now, ticket, &request) {
                    Reply::Now(response) | Reply::Stream(response) => self.reply(i, request.id, to, response),
                    Reply::Later => {
                        self.waiting.insert((to, ticket), (i, request.id));
                    }
                }
            }
        }
    }

    /// `response` of node `from` reaches node `to`, which asked it by call `call`.
    fn reply(&mut self, to: usize, call: u64, from: usize, response: Response) {
        if self.cut.contains(&from) || self.cut.contains(&to) {
            self.nodes[to].peer_reply(self.now, call, Err("lost".into()));
            return;
        }
        let reply = PeerReply {
            status: response.status,
            headers: response.headers.as_slice().to_vec(),
            body: response.body.as_slice().to_vec(),
        };
        self.nodes[to].peer_reply(self.now, call, Ok(reply));
    }

    /// A client's request to node `i`; its answer, once it has one within `ms`.
    fn ask(&mut self, i: usize, method: Method, target: &str, body: &str, ms: u64) -> Option<Response> {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let request =
            Request { method, target, headers: Headers::default(), body: body.as_bytes(), client: None, grant: None };
        if let Reply::Now(response) = self.nodes[i].handle(self.now, ticket, &request) {
            return Some(response);
        }
        self.settle();
        let answered = |net: &Net| net.clients.iter().any(|(n, t, _)| (*n, *t) == (i, ticket));
        if !answered(self) && !self.run_until(ms, answered) {
            return None;
        }
        let at = self.clients.iter().position(|(n, t, _)| (*n, *t) == (i, ticket))?;
        Some(self.clients.remove(at).2)
    }

    /// Node `i` stops and starts again with what it holds: its state, its store (the version it
    /// knows committed) and the newer version it accepted, if any.
    fn restart(&mut self, i: usize) {
        let node = &self.nodes[i];
        let co = node.co.as_ref().expect("coordinated");
        let state = co.consensus.state().clone();
        let sealed = node.shared.store.sealed().clone();
        let pending = co.pending.as_ref().map(|p| p.sealed.clone());
        let floor = pending.as_ref().map_or(sealed.copy.version.sequence, |p| p.copy.version.sequence);
        let start = Start { sealed, pending, committed: true, floor, ..Start::empty() };
        self.nodes[i] = boot(i, state, start, self.now);
        self.settle();
    }

    fn voters(&self, i: usize) -> Vec<String> {
        let node = &self.nodes[i];
        let co = node.co.as_ref().expect("coordinated");
        co.coordination(&node.shared).map(|c| c.voters.into_iter().map(|m| m.id).collect()).unwrap_or_default()
    }
}

/// The coordinator removes a voter, then itself; its push of its own removal reaches nobody, and
/// both restart. The voter left holds the roster with both of them, and asks the old coordinator
/// for its vote, which refuses (it holds a newer version); the old coordinator holds a roster
/// without itself. It stands all the same, with the votes of that roster's voters only, commits
/// it, and steps down; the voter left coordinates alone.
#[test]
fn a_coordinator_removed_by_a_roster_not_known_committed_stands_commits_it_and_steps_down() {
    let mut net = Net::new();
    let c = net.coordinator().expect("elected");
    let (other, gone) = ((c + 1) % 3, (c + 2) % 3);
    let removed = net.ask(c, Method::Delete, &format!("/state/{}", address(gone)), "", 5_000);
    assert_eq!(removed.map(|r| r.status), Some(200), "the first removal is committed");
    net.cut.push(gone);
    assert!(net.run_until(2_000, |net| net.voters(other).len() == 2), "the voter left holds the roster of two");
    // The coordinator accepts its own removal; the push to the voter left is lost.
    let ticket = net.next_ticket;
    net.next_ticket += 1;
    let request = Request {
        method: Method::Delete,
        target: &format!("/state/{}", address(c)),
        headers: Headers::default(),
        body: b"",
        client: None,
        grant: None,
    };
    assert!(matches!(net.nodes[c].handle(net.now, ticket, &request), Reply::Later), "a removal waits for its commit");
    net.cut.push(other);
    net.settle();
    assert_eq!(net.voters(c), vec![id(other)], "the coordinator holds its removal, not known committed");
    assert_eq!(net.voters(other).len(), 2, "the voter left never saw it");
    net.restart(c);
    net.restart(other);
    net.cut.retain(|i| *i != other);
    let led = net.run_until(30_000, |net| net.coordinator() == Some(other) && net.nodes[c].is_removed());
    let states: Vec<_> = (0..3).map(|i| net.nodes[i].consensus_status(net.now)).collect();
    assert!(led, "the voter left never came to coordinate: {states:#?}");
    assert_eq!(net.voters(other), vec![id(other)], "the removal is committed");
    assert!(!states[c].as_ref().unwrap().coordinator, "the removed node does not coordinate");
    let write = net.ask(other, Method::Put, "/data/counter", "1", 5_000);
    assert_eq!(write.map(|r| r.status), Some(200), "the cluster writes again");
}
