//! Voters take a commit as its change (`PUT /cluster/accept` with `{"change": ...}`): three
//! coordinated nodes in memory, on a network that delivers at once, or not at all to a node cut
//! off.

use std::collections::HashMap;

use super::*;
use crate::core::node_state::NodeState;
use crate::core::roster::{Coordination, Member};
use crate::core::sealed::seal_paced;
use crate::http::Bytes;

/// A request one node sent another, and the answer it got (status 0: none, it was cut off).
#[derive(Debug)]
struct Sent {
    from: usize,
    to: usize,
    path: String,
    body: Vec<u8>,
    status: u16,
    answer: String,
    /// The sequence the receiver held (accepted) when it answered.
    held: u64,
}

/// Who waits for a node's parked answer: a peer (its node, its call id, the index in `sent`), or
/// a client (`None`).
type Asker = Option<(usize, u64, usize)>;
/// Changes what a node sends before it travels.
type Tamper = Box<dyn FnMut(&mut PeerRequest)>;

struct Three {
    nodes: Vec<Node>,
    now: Now,
    next_ticket: Ticket,
    /// Nodes cut off from the others.
    cut: Vec<usize>,
    /// Parked answers: (node, ticket) -> (the asking node, its call id) or a client (`None`).
    waiting: HashMap<(usize, Ticket), Asker>,
    clients: Vec<(usize, Ticket, Response)>,
    sent: Vec<Sent>,
    /// Changes what a node sends before it travels (a damaged push).
    tamper: Option<Tamper>,
    /// Jobs held back from the workers (a slow render), and which of them to hold.
    held: Vec<(usize, Job)>,
    hold: Option<fn(&Job) -> bool>,
}

fn address(i: usize) -> String {
    format!("10.0.9.{}:8001", i + 1)
}

fn id(i: usize) -> String {
    format!("00000000000000b{i}")
}

impl Three {
    /// Three voters of one cluster, each holding the same first version: `big` bytes of padding
    /// beside a counter.
    fn new(big: usize) -> Three {
        let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
        let cluster = "00000000000000c9".to_string();
        let voters: Vec<Member> = (0..3).map(|i| Member { id: id(i), address: address(i) }).collect();
        let coordination = Coordination { cluster: cluster.clone(), term: 0, voters, removed: Vec::new() };
        let data = format!(r#"{{"counter": 0, "padding": "{}"}}"#, "x".repeat(big));
        let first = seal_paced(Value::parse(data.as_bytes()).unwrap(), 1, None, Some(coordination), &mut || {});
        let nodes = (0..3)
            .map(|i| {
                let state = NodeState { cluster: Some(cluster.clone()), ..NodeState::new(id(i)) };
                let coordinated = CoordinatedConfig { state: state.clone(), founding: None, force_new_cluster: false };
                let config = CoreConfig {
                    seeds: (0..3).filter(|j| *j != i).map(address).collect(),
                    bootstrap: true,
                    rng_seed: 7 + i as u64,
                    identity: state,
                    coordinated: Some(coordinated),
                    ..CoreConfig::single(&address(i))
                };
                let start = Start { sealed: first.clone(), floor: 1, ..Start::empty() };
                Node::new(config, now, start)
            })
            .collect();
        let mut three = Three {
            nodes,
            now,
            next_ticket: 1,
            cut: Vec::new(),
            waiting: HashMap::new(),
            clients: Vec::new(),
            sent: Vec::new(),
            tamper: None,
            held: Vec::new(),
            hold: None,
        };
        for _ in 0..200 {
            three.advance(50);
            if three.coordinator().is_some() && three.all_serve("/data/counter", "0\n") {
                return three;
            }
        }
        panic!("no coordinator elected");
    }

    /// The workers carry out the jobs held back, late.
    fn release(&mut self) {
        for (i, job) in std::mem::take(&mut self.held) {
            let done = jobs::run(job, &mut NoDisk, &mut || {});
            self.nodes[i].job_done(self.now, done);
        }
        self.settle();
    }

    /// A client's request to node `i`, parked; its answer is collected in `clients`.
    fn put_later(&mut self, i: usize, target: &str, body: &str) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let request = Request {
            method: Method::Put,
            target,
            headers: Headers::default(),
            body: body.as_bytes(),
            client: None,
            grant: None,
        };
        assert!(matches!(self.nodes[i].handle(self.now, ticket, &request), Reply::Later));
        self.waiting.insert((i, ticket), None);
        self.settle();
        ticket
    }

    fn coordinator(&self) -> Option<usize> {
        (0..3).find(|i| self.nodes[*i].consensus_status(self.now).is_some_and(|s| s.coordinator && s.lease))
    }

    fn advance(&mut self, ms: u64) {
        self.now.mono_ms += ms;
        self.now.unix_ms += ms;
        for node in &mut self.nodes {
            node.tick(self.now);
        }
        self.settle();
    }

    /// Carries out every effect of every node until none is left.
    fn settle(&mut self) {
        loop {
            let mut any = false;
            for i in 0..3 {
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
            Effect::Answer { ticket, response } => self.answered(i, ticket, response),
            Effect::Event { .. } => {}
            Effect::Job(job) if self.hold.is_some_and(|hold| hold(&job)) => self.held.push((i, job)),
            Effect::Job(job) => {
                let done = jobs::run(job, &mut NoDisk, &mut || {});
                self.nodes[i].job_done(self.now, done);
            }
            Effect::Peer(mut request) => {
                let to = (0..3).find(|j| address(*j) == request.peer).expect("a peer of the three");
                if let Some(tamper) = &mut self.tamper {
                    tamper(&mut request);
                }
                let index = self.sent.len();
                let body = request.body.as_slice().to_vec();
                self.sent.push(Sent {
                    from: i,
                    to,
                    path: request.path.clone(),
                    body,
                    status: 0,
                    answer: String::new(),
                    held: 0,
                });
                if self.cut.contains(&i) || self.cut.contains(&to) {
                    self.nodes[i].peer_reply(self.now, request.id, Err("lost".into()));
                    return;
                }
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                match deliver(&mut self.nodes[to], self.now, ticket, &request) {
                    Reply::Now(response) | Reply::Stream(response) => self.reply(i, request.id, index, response),
                    Reply::Later => {
                        self.waiting.insert((to, ticket), Some((i, request.id, index)));
                    }
                }
            }
        }
    }

    fn answered(&mut self, i: usize, ticket: Ticket, response: Response) {
        match self.waiting.remove(&(i, ticket)) {
            Some(Some((from, call, index))) => self.reply(from, call, index, response),
            _ => self.clients.push((i, ticket, response)),
        }
    }

    fn reply(&mut self, to: usize, call: u64, index: usize, response: Response) {
        let sent = &mut self.sent[index];
        sent.status = response.status;
        sent.answer = String::from_utf8_lossy(response.body.as_slice()).into_owned();
        sent.held = self.nodes[sent.to].consensus_status(self.now).map_or(0, |s| s.accepted.version.sequence);
        if self.cut.contains(&sent.from) || self.cut.contains(&sent.to) {
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

    /// A client's request to node `i`, answered once the cluster settles.
    fn put(&mut self, i: usize, target: &str, body: &str) -> Response {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let request = Request {
            method: Method::Put,
            target,
            headers: Headers::default(),
            body: body.as_bytes(),
            client: None,
            grant: None,
        };
        if let Reply::Now(response) = self.nodes[i].handle(self.now, ticket, &request) {
            return response;
        }
        self.waiting.insert((i, ticket), None);
        self.settle();
        for _ in 0..100 {
            if let Some(at) = self.clients.iter().position(|(n, t, _)| (*n, *t) == (i, ticket)) {
                return self.clients.remove(at).2;
            }
            self.advance(10);
        }
        panic!("PUT {target} was never answered");
    }

    fn get(&mut self, i: usize, target: &str) -> String {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let request =
            Request { method: Method::Get, target, headers: Headers::default(), body: b"", client: None, grant: None };
        match self.nodes[i].handle(self.now, ticket, &request) {
            Reply::Now(response) => String::from_utf8_lossy(response.body.as_slice()).into_owned(),
            _ => String::new(),
        }
    }

    fn all_serve(&mut self, target: &str, body: &str) -> bool {
        (0..3).all(|i| self.get(i, target) == body)
    }

    /// Pushes of versions to voters since `from`: (to, as a change, status).
    fn accepts(&self, from: usize) -> Vec<(usize, bool, u16, &str)> {
        self.sent[from..]
            .iter()
            .filter(|s| s.path == "/cluster/accept")
            .map(|s| (s.to, s.body.starts_with(b"{\"change\":"), s.status, s.answer.as_str()))
            .collect()
    }
}

/// Hands a peer request one in-memory node sent to node `to`, as the wire would carry it (its head
/// encoded and parsed again), under `ticket`: this file's harness and `removal.rs`'s.
pub(super) fn deliver(to: &mut Node, now: Now, ticket: Ticket, request: &PeerRequest) -> Reply {
    let mut head = Vec::new();
    let (method, path, length) = (request.method, &request.path, request.body.len());
    crate::http::encode_request_head(method, path, &request.peer, length, &request.headers, &mut head);
    let headers = crate::http::parse_head(&head, u64::MAX).unwrap().unwrap().headers;
    let body = request.body.as_slice().to_vec();
    to.handle(now, ticket, &Request { method, target: path, headers, body: &body, client: None, grant: None })
}

#[test]
fn voters_take_a_commit_as_its_change_and_serve_it() {
    let mut three = Three::new(20_000);
    let coordinator = three.coordinator().unwrap();
    let from = three.sent.len();
    assert_eq!(three.put(coordinator, "/data/counter", "1").status, 200);
    let accepts = three.accepts(from);
    assert_eq!(accepts.len(), 2, "{accepts:?}");
    assert!(accepts.iter().all(|(_, change, status, _)| *change && *status == 201), "{accepts:?}");
    let largest = three.sent[from..].iter().filter(|s| s.path == "/cluster/accept").map(|s| s.body.len()).max();
    assert!(largest.unwrap() < 2_000, "a change, not the store: {largest:?} bytes");
    for _ in 0..20 {
        three.advance(50);
    }
    assert!(three.all_serve("/data/counter", "1\n"));
    assert_eq!(three.nodes[coordinator].metrics().changes_pushed, 2);
}

#[test]
fn a_voter_that_missed_one_commit_gets_the_two_changes_at_once() {
    let mut three = Three::new(20_000);
    let coordinator = three.coordinator().unwrap();
    let away = (coordinator + 1) % 3;
    three.cut.push(away);
    assert_eq!(three.put(coordinator, "/data/counter", "1").status, 200, "a majority without it");
    // Back, and the next commit comes before anything else tells it of the one it missed.
    three.cut.clear();
    let from = three.sent.len();
    assert_eq!(three.put(coordinator, "/data/counter", "2").status, 200);
    let to_away: Vec<_> = three.accepts(from).into_iter().filter(|(to, ..)| *to == away).collect();
    let (_, change, status, answer) = to_away[0];
    assert!(change && status == 409, "{to_away:?}");
    assert!(answer.contains("\"need\": \"copy\"") && answer.contains("does not hold sequence 2"), "{answer}");
    assert!(answer.contains("\"sequence\": 1"), "it says what it holds: {answer}");
    assert!(to_away[1..].iter().all(|(_, change, ..)| *change), "never whole: {to_away:?}");
    assert!(to_away[1..].iter().any(|(_, _, status, _)| *status == 201), "the two changes: {to_away:?}");
    let largest = three.sent[from..].iter().filter(|s| s.to == away).map(|s| s.body.len()).max();
    assert!(largest.unwrap() < 2_000, "changes, not the store: {largest:?} bytes");
    for _ in 0..20 {
        three.advance(50);
    }
    assert!(three.all_serve("/data/counter", "2\n"));
}

/// Cuts `away` off while `values` are committed one by one, then lets it back: it lacks the base
/// of the next commit's change and the one before.
fn miss(three: &mut Three, away: usize, values: &[&str]) {
    let coordinator = three.coordinator().unwrap();
    three.cut.push(away);
    for value in values {
        assert_eq!(three.put(coordinator, "/data/counter", value).status, 200, "a majority without it");
    }
    three.cut.retain(|i| *i != away);
}

#[test]
fn a_voter_further_behind_answers_so_and_then_gets_the_whole_version() {
    let mut three = Three::new(20_000);
    let coordinator = three.coordinator().unwrap();
    let away = (coordinator + 1) % 3;
    miss(&mut three, away, &["1", "2"]);
    let from = three.sent.len();
    assert_eq!(three.put(coordinator, "/data/counter", "3").status, 200);
    let to_away: Vec<_> = three.accepts(from).into_iter().filter(|(to, ..)| *to == away).collect();
    let (_, change, status, answer) = to_away[0];
    assert!(change && status == 409, "{to_away:?}");
    assert!(answer.contains("\"need\": \"copy\"") && answer.contains("does not hold sequence 3"), "{answer}");
    assert!(to_away[1..].iter().any(|(_, change, status, _)| !change && *status == 201), "then whole: {to_away:?}");
    for _ in 0..20 {
        three.advance(50);
    }
    assert!(three.all_serve("/data/counter", "3\n"));
    assert!(three.nodes[coordinator].metrics().changes_refused >= 1);
}

#[test]
fn a_change_whose_result_does_not_match_its_checksum_is_refused_and_changes_nothing() {
    let mut three = Three::new(20_000);
    let coordinator = three.coordinator().unwrap();
    let victim = (coordinator + 1) % 3;
    // The patch says 3 where the version's checksum is of 1: only pushes to one voter, and only
    // the change (the whole copy that follows is left alone).
    three.tamper = Some(Box::new(move |request: &mut PeerRequest| {
        let body = request.body.as_slice();
        if request.path == "/cluster/accept" && request.peer == address(victim) && body.starts_with(b"{\"change\":") {
            let text = String::from_utf8_lossy(body).replace("\"value\":1}", "\"value\":3}");
            request.body = Bytes::Owned(text.into_bytes());
        }
    }));
    let from = three.sent.len();
    assert_eq!(three.put(coordinator, "/data/counter", "1").status, 200);
    let to_victim: Vec<_> = three.accepts(from).into_iter().filter(|(to, ..)| *to == victim).collect();
    let (_, change, status, answer) = to_victim[0];
    assert!(change && status == 400 && answer.contains("checksum mismatch"), "{to_victim:?}");
    let refused = three.sent[from..].iter().find(|s| s.to == victim && s.status == 400).unwrap();
    assert_eq!(refused.held, 1, "nothing changed: it holds the base still");
    for _ in 0..20 {
        three.advance(50);
    }
    // The commit had its majority without it: the committed version reaches it whole.
    let whole =
        three.sent[from..].iter().any(|s| s.to == victim && s.body.starts_with(b"{\"data\":") && s.status == 201);
    assert!(whole, "the version whole");
    assert!(three.all_serve("/data/counter", "1\n"), "the value the checksum is of, never 3");
}

#[test]
fn a_commit_waits_for_a_majority_longer_the_larger_the_store() {
    use crate::limits::{COMMIT_TIMEOUT_MS, commit_allowance_ms};
    let mut three = Three::new(8 << 20);
    let coordinator = three.coordinator().unwrap();
    let allowance = commit_allowance_ms(8 << 20);
    assert!(allowance >= 1_000, "{allowance} ms for 8 MiB");
    three.cut = (0..3).filter(|i| *i != coordinator).collect();
    let ticket = three.next_ticket;
    three.next_ticket += 1;
    let request = Request {
        method: Method::Put,
        target: "/data/counter",
        headers: Headers::default(),
        body: b"1",
        client: None,
        grant: None,
    };
    assert!(matches!(three.nodes[coordinator].handle(three.now, ticket, &request), Reply::Later));
    three.waiting.insert((coordinator, ticket), None);
    let started = three.now.mono_ms;
    while three.clients.is_empty() && three.now.mono_ms - started < COMMIT_TIMEOUT_MS + allowance + 500 {
        three.advance(50);
    }
    let waited = three.now.mono_ms - started;
    let (_, _, answer) = three.clients.pop().expect("answered in the end");
    assert_eq!(answer.status, 504, "no majority: outcome unknown");
    assert!(waited >= COMMIT_TIMEOUT_MS + allowance, "answered after {waited} ms, before the allowance for its size");
}

/// The seal of a version a coordinator makes durable.
fn commit_seal(job: &Job) -> bool {
    matches!(job, Job::Seal { id: JobId { owner: jobs::Owner::Commit, .. }, .. })
}

#[test]
fn a_commit_whose_seal_is_slow_waits_for_it_and_then_for_a_majority() {
    use crate::limits::{COMMIT_TIMEOUT_MS, commit_allowance_ms};
    let mut three = Three::new(1 << 10);
    let coordinator = three.coordinator().unwrap();
    three.hold = Some(commit_seal);
    three.put_later(coordinator, "/data/counter", "1");
    assert_eq!(three.held.len(), 1, "the seal is under way");
    // A busy worker: the seal takes longer than a commit may wait for its voters.
    let slow = 2 * (COMMIT_TIMEOUT_MS + commit_allowance_ms(1 << 10));
    for _ in 0..slow / 50 {
        three.advance(50);
    }
    assert!(three.clients.is_empty(), "answered while sealing: {:?}", three.clients.first().map(|c| c.2.status));
    three.hold = None;
    three.release();
    let (_, _, answer) = three.clients.pop().expect("answered once sealed and durable on a majority");
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(answer.body.as_slice()));
    assert!(three.all_serve("/data/counter", "1\n"));
}

/// A render for the version a coordinator makes durable (`replicate.rs`'s push to a voter that
/// lacks the base).
fn commit_render(job: &Job) -> bool {
    matches!(job, Job::Render { id: JobId { owner: jobs::Owner::Commit, .. }, .. })
}

#[test]
fn a_commit_whose_voters_take_its_change_renders_no_body() {
    let mut three = Three::new(20_000);
    let coordinator = three.coordinator().unwrap();
    for value in ["1", "2"] {
        assert_eq!(three.put(coordinator, "/data/counter", value).status, 200);
    }
    for _ in 0..20 {
        three.advance(50);
    }
    assert!(three.all_serve("/data/counter", "2\n"));
    for (i, node) in three.nodes.iter().enumerate() {
        assert_eq!(node.metrics().bodies_rendered, 0, "node {i} rendered a whole body");
        assert!(node.shared.store.body_at_hand().is_none(), "node {i} holds its store's body: it was rendered");
    }
}

#[test]
fn a_voter_without_the_base_gets_the_body_rendered_off_the_loop_and_a_late_render_is_dropped() {
    let mut three = Three::new(20_000);
    let coordinator = three.coordinator().unwrap();
    let away = (coordinator + 1) % 3;
    miss(&mut three, away, &["1", "2"]);
    three.hold = Some(commit_render);
    assert_eq!(three.put(coordinator, "/data/counter", "3").status, 200, "a majority without it again");
    assert!(
        three.held.iter().any(|(i, job)| *i == coordinator && commit_render(job)),
        "the body is rendered by a worker, not on the loop"
    );
    // The commit ended before the render reported: the report is stale, and nothing is pushed.
    three.hold = None;
    let from = three.sent.len();
    let rendered = three.nodes[coordinator].metrics().bodies_rendered;
    three.release();
    let whole = three.accepts(from).into_iter().filter(|(to, change, ..)| *to == away && !change).count();
    assert_eq!(whole, 0, "a version no longer in flight is not pushed");
    assert_eq!(three.nodes[coordinator].metrics().bodies_rendered, rendered, "a stale render is not counted");
    for _ in 0..40 {
        three.advance(50);
    }
    assert!(three.all_serve("/data/counter", "3\n"), "the voter catches up all the same");
}

#[test]
fn a_render_that_reports_after_the_commit_timed_out_still_pushes_and_the_commit_lands() {
    let mut three = Three::new(20_000);
    let coordinator = three.coordinator().unwrap();
    let (away, other) = ((coordinator + 1) % 3, (coordinator + 2) % 3);
    miss(&mut three, away, &["1", "2"]);
    // Back, lacking the base, while the only other voter is cut off: its whole copy is the
    // commit's majority, and it waits for a render that takes longer than the commit's timeout.
    three.cut = vec![other];
    three.hold = Some(commit_render);
    let ticket = three.put_later(coordinator, "/data/counter", "3");
    let started = three.now.mono_ms;
    while three.clients.is_empty() && three.now.mono_ms - started < 10_000 {
        three.advance(50);
    }
    let (_, answered, answer) = three.clients.pop().expect("answered in the end");
    assert_eq!((answered, answer.status), (ticket, 504), "no majority in time: outcome unknown");
    assert!(three.held.iter().any(|(_, job)| commit_render(job)), "the render is still out");
    three.hold = None;
    let from = three.sent.len();
    three.release();
    let whole: Vec<_> = three.accepts(from).into_iter().filter(|(to, change, ..)| *to == away && !change).collect();
    assert!(whole.iter().any(|(.., status, _)| *status == 201), "the version in flight goes whole: {whole:?}");
    for _ in 0..20 {
        three.advance(50);
    }
    assert_eq!(three.get(coordinator, "/data/counter"), "3\n", "the commit landed after its 504");
    three.cut.clear();
    for _ in 0..40 {
        three.advance(50);
    }
    assert!(three.all_serve("/data/counter", "3\n"));
}
