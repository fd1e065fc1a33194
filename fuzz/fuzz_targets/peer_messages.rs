//! What peers send: `parse_copy` (the body of `PUT /copy` and of the answer to `GET /copy`), and
//! the pure core handling `PUT /state` and `PUT /copy` with arbitrary bodies, its worker jobs run
//! in memory as the tests' harness runs them.
//!
//! Input: one control byte, then the body. The control byte sets up the node first: bit 0 commits
//! a transaction (so the node has a version of its own and a commit in `mine`); bit 1 starts a
//! second commit whose job is held back until the copy has been handled (a copy arriving during a
//! commit); bit 2 makes the node durable (it writes, in memory, every store it takes); bit 3 sends
//! the copy twice; bit 4 sends `PUT /state` after the copy instead of before.
//!
//! Checked: nothing panics; an accepted copy's data hashes to its version's checksum and its body
//! parses back to the same copy; the node answers every `PUT /copy` (201 or 400, or 503 when busy);
//! a copy newer than the node's store replaces it exactly; `GET /copy` then serves it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lighthouse::clock::Now;
use lighthouse::core::{CoreConfig, Effect, Node, Reply, Request, Start, Ticket};
use lighthouse::flush::{self, DiskConfig, Job, WriterState};
use lighthouse::http::{Method, Response};
use lighthouse::snapshot::{Sealed, parse_copy};
use lighthouse::version::Checksum;

struct Harness {
    node: Node,
    now: Now,
    next_ticket: Ticket,
    /// Jobs not run yet (the held commit).
    held: Vec<Job>,
}

impl Harness {
    fn new(durable: bool) -> Harness {
        let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
        let config = CoreConfig { durable, ..CoreConfig::single("127.0.0.1:1") };
        Harness { node: Node::new(config, now, Start::empty()), now, next_ticket: 1, held: Vec::new() }
    }

    fn send(&mut self, method: Method, target: &str, body: &[u8]) -> (Ticket, Reply) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let request = Request { method, target, headers: Default::default(), body };
        (ticket, self.node.handle(self.now, ticket, &request))
    }

    /// Sends a request and runs the jobs until it is answered (unless `hold`, which keeps its jobs).
    fn call(&mut self, method: Method, target: &str, body: &[u8], hold: bool) -> Option<Response> {
        let (ticket, reply) = self.send(method, target, body);
        let answers = self.settle(hold);
        match reply {
            Reply::Now(response) | Reply::Stream(response) => Some(response),
            Reply::Later => answers.into_iter().find(|(t, _)| *t == ticket).map(|(_, response)| response),
        }
    }

    /// Runs every queued job (in memory, no disk) until nothing is left; returns the answers.
    fn settle(&mut self, hold: bool) -> Vec<(Ticket, Response)> {
        let mut answers = Vec::new();
        loop {
            let effects: Vec<Effect> = self.node.drain_effects().collect();
            if effects.is_empty() {
                return answers;
            }
            for effect in effects {
                match effect {
                    Effect::Answer { ticket, response } => answers.push((ticket, response)),
                    Effect::Peer(_) | Effect::Event { .. } => {}
                    Effect::Job(job) if hold => self.held.push(job),
                    Effect::Job(job) => self.run(job),
                }
            }
        }
    }

    fn run(&mut self, job: Job) {
        // Name lookups are the event loop's; the core never asks for one.
        assert!(!matches!(job, Job::Resolve { .. }), "the core asked for a name lookup");
        let disk = DiskConfig { dir: None, keep_micros: 0 };
        if let Some(done) = flush::run(job, &disk, &mut WriterState::default()) {
            self.node.job_done(self.now, done);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else { return };
    let parsed = parse_copy(body);
    if let Ok(sealed) = &parsed {
        check_sealed(sealed);
    }

    let mut h = Harness::new(control & 4 != 0);
    if control & 1 != 0 {
        commit(&mut h, br#"{"mine": [1, 2.5, "x"]}"#, false);
    }
    if control & 2 != 0 {
        commit(&mut h, br#"{"held": true}"#, true);
    }
    if control & 16 == 0 {
        put_state(&mut h, body);
    }
    for _ in 0..if control & 8 != 0 { 2 } else { 1 } {
        let before = h.node.version();
        let response = h.call(Method::Put, "/copy", body, false).expect("PUT /copy is answered");
        match &parsed {
            Ok(sealed) => {
                assert_eq!(response.status, 201, "a valid copy was refused");
                let theirs = sealed.copy.version;
                if theirs > before {
                    assert_eq!(h.node.version(), theirs, "a newer copy was not taken");
                    assert_eq!(h.node.root(), &sealed.copy.root, "the copy's tree was not taken");
                    let served = h.call(Method::Get, "/copy", b"", false).expect("GET /copy is answered now");
                    let served = parse_copy(served.body.as_slice()).expect("GET /copy serves a copy that parses");
                    assert_eq!(served.copy.version, theirs);
                } else {
                    assert_eq!(h.node.version(), before, "an older copy replaced the store");
                }
            }
            Err(_) => {
                assert_eq!(response.status, 400, "an invalid copy was not refused");
                assert_eq!(h.node.version(), before, "an invalid copy changed the store");
            }
        }
    }
    if control & 16 != 0 {
        put_state(&mut h, body);
    }
    // The held commit finishes now: it wins, or loses to the copy.
    for job in std::mem::take(&mut h.held) {
        h.run(job);
    }
    h.settle(false);
    let version = h.node.version();
    assert_eq!(Checksum::of(h.node.root()), version.checksum, "the store's checksum");
    h.node.tick(h.now);
    h.settle(false);
});

/// Takes the lock, stages `json` at the root and commits; `hold` keeps the commit's job back.
fn commit(h: &mut Harness, json: &[u8], hold: bool) {
    let name = if hold { "held" } else { "fuzz" };
    assert_eq!(h.call(Method::Put, "/lock", name.as_bytes(), false).map(|r| r.status), Some(200));
    assert_eq!(h.call(Method::Put, &format!("/update/{name}"), json, false).map(|r| r.status), Some(201));
    let answer = h.call(Method::Put, &format!("/lock/{name}"), b"", hold);
    if !hold {
        assert_eq!(answer.map(|r| r.status), Some(200), "the commit of lock {name}");
    }
}

fn put_state(h: &mut Harness, body: &[u8]) {
    let response = h.call(Method::Put, "/state", body, false).expect("PUT /state is answered at once");
    let is_list = matches!(serde_json::from_slice::<serde_json::Value>(body), Ok(serde_json::Value::Array(_)));
    assert_eq!(response.status, if is_list { 200 } else { 400 }, "PUT /state");
    assert!(h.node.peers().len() <= lighthouse::limits::PEERS_MAX);
    assert!(h.node.peers().iter().all(|p| p.address != "127.0.0.1:1"), "the node learned itself");
}

fn check_sealed(sealed: &Sealed) {
    let copy = &sealed.copy;
    assert_eq!(Checksum::of(&copy.root), copy.version.checksum, "an accepted copy's data does not match");
    assert!(copy.version.sequence < u64::MAX);
    assert_eq!(copy.lineage.current(), copy.version, "the lineage ends at the version");
    assert!(copy.lineage.contains(&copy.version), "the lineage holds the version");
    let again = parse_copy(&sealed.body).expect("the canonical body parses");
    assert_eq!(again.copy.version, copy.version);
    assert_eq!(again.copy.root, copy.root);
    assert_eq!(again.copy.lineage, copy.lineage);
    assert_eq!(again.body, sealed.body, "the canonical body is a fixed point");
    assert_eq!(sealed.data_len, copy.root.to_compact().len(), "data_len");
}
