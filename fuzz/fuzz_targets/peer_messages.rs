//! What peers send: every decoder of `core::messages` (vote requests and answers, beats and their
//! answers, answers to pushed versions, gossip, a peer's `/state`, a stored table's entries, the
//! answer to a pushed copy) on every body, `parse_copy` (the body of `PUT /copy` and of the answer
//! to `GET /copy`), and the pure core handling `PUT /state` and `PUT /copy` with arbitrary bodies, and peers' answers
//! to its own sync requests, its worker jobs run in memory as the core's test harness runs them.
//!
//! Input: a header byte, up to seven action bytes, then the bodies, separated by NUL bytes (which
//! JSON text never holds). The header's low three bits are the number of action bytes, bit 3
//! makes the node durable (it writes, in memory, every store it takes). With no action bytes the
//! node gets `PUT /state` then `PUT /copy` with the first body. Actions (the low three bits of an
//! action byte; the bodies are used in turn):
//!
//! 0. a commit through the lock (unless the lock is held);
//! 1. the writer's jobs (sealing a commit, writing or removing a snapshot) are held back from now
//!    until action 2: a slow disk, so that copies, answers and ticks arrive while it writes;
//! 2. the held jobs run (and a lock left over by a commit that lost to a copy is let go);
//! 3. `PUT /copy` with the next body;
//! 4. `PUT /state` with the next body;
//! 5. 600 ms pass and the node ticks (it syncs with the peers it learned);
//! 6. the oldest request the node sent a peer is answered with the next body (status 200, or 201
//!    for `PUT /copy`; bits 3-4 of the action byte make it a 500 or a failed connection instead);
//! 7. reads: `GET /copy`, `/state`, `/version`, `/data`, `/`.
//!
//! Checked: nothing panics; a message that decodes encodes to a body that decodes to the same
//! message; an accepted copy's data hashes to its version's checksum and its
//! canonical body parses back to the same copy; every `PUT /copy` is answered (201 or 400; a
//! durable node's once its copy is written, so a slow disk is let go first); a
//! valid copy newer than the store replaces it exactly, an older, equal or invalid one changes
//! nothing; after every action the store's checksum is the SHA-1 of its compact JSON, and
//! `GET /copy` serves a copy of the current version that parses.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use lighthouse::core::clock::Now;
use lighthouse::core::{CoreConfig, Effect, Node, PeerReply, PeerRequest, Reply, Request, Start, Ticket};
use lighthouse::core::jobs::{self, Job, NoDisk};
use lighthouse::http::{Headers, Method, Response};
use lighthouse::core::messages::{
    self, AcceptAnswer, Beat, BeatAnswer, GossipEntry, PeerState, StoredPeer, VoteAnswer, VoteRequest,
};
use lighthouse::core::sealed::{Sealed, parse_copy};
use lighthouse::core::version::Checksum;

const ME: &str = "127.0.0.1:1";

struct Harness {
    node: Node,
    now: Now,
    next_ticket: Ticket,
    /// Hold the writer's jobs (sealing, writing, removing snapshots) instead of running them.
    hold: bool,
    held: Vec<Job>,
    /// Requests the node sent to peers, not answered yet.
    outbox: VecDeque<PeerRequest>,
    /// Answers to requests that were parked.
    answers: Vec<(Ticket, Response)>,
    commits: u64,
}

impl Harness {
    fn new(durable: bool) -> Harness {
        let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
        let config = CoreConfig { durable, ..CoreConfig::single(ME) };
        Harness {
            node: Node::new(config, now, Start::empty()),
            now,
            next_ticket: 1,
            hold: false,
            held: Vec::new(),
            outbox: VecDeque::new(),
            answers: Vec::new(),
            commits: 0,
        }
    }

    /// Sends a request and runs the jobs; gives the answer if there is one by then.
    fn call(&mut self, method: Method, target: &str, body: &[u8]) -> Option<Response> {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        // As a peer sends it: a JSON body (a POST of another type never reaches the endpoints).
        let headers = Headers { content_type: Some("application/json"), ..Headers::default() };
        let request = Request { method, target, headers, body, client: None, grant: None };
        let reply = self.node.handle(self.now, ticket, &request);
        self.settle();
        match reply {
            Reply::Now(response) | Reply::Stream(response) => Some(response),
            Reply::Later => self.answer_to(ticket),
        }
    }

    fn answer_to(&mut self, ticket: Ticket) -> Option<Response> {
        let position = self.answers.iter().position(|(t, _)| *t == ticket)?;
        Some(self.answers.swap_remove(position).1)
    }

    /// Carries out the node's effects until there are none; held jobs wait.
    fn settle(&mut self) {
        loop {
            let effects: Vec<Effect> = self.node.drain_effects().collect();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                match effect {
                    Effect::Answer { ticket, response } => self.answers.push((ticket, response)),
                    Effect::Peer(request) => self.outbox.push_back(request),
                    Effect::Event { .. } => {}
                    Effect::Job(job) if self.hold && job.writes() => self.held.push(job),
                    Effect::Job(job) => self.run(job),
                }
            }
        }
    }

    fn run(&mut self, job: Job) {
        let done = jobs::run(job, &mut NoDisk, &mut || {});
        self.node.job_done(self.now, done);
    }

    /// Takes the lock, stages a change and commits. With held jobs the answer waits.
    fn commit(&mut self) {
        if self.node.lock_holder().is_some() {
            return;
        }
        self.commits += 1;
        assert_eq!(self.call(Method::Put, "/lock", b"fuzz").map(|r| r.status), Some(200), "PUT /lock");
        let staged = format!(r#"{{"commit": {}, "mine": [1, 2.5, "x"]}}"#, self.commits);
        let staged = self.call(Method::Put, "/update/fuzz/fuzz", staged.as_bytes());
        assert_eq!(staged.map(|r| r.status), Some(201), "PUT /update");
        match self.call(Method::Put, "/lock/fuzz", b"").map(|r| r.status) {
            Some(200) => assert!(self.node.lock_holder().is_none(), "the lock is free after its commit"),
            None => assert!(self.hold, "a commit without held jobs was not answered"),
            Some(status) => panic!("the commit answered {status}"),
        }
    }

    fn release(&mut self) {
        self.hold = false;
        loop {
            let held = std::mem::take(&mut self.held);
            if held.is_empty() {
                break;
            }
            for job in held {
                self.run(job);
            }
            self.settle();
        }
        if self.node.lock_holder().is_some() {
            // The held commit lost to a newer copy (409); let it go.
            self.abort();
        }
    }

    fn abort(&mut self) {
        let status = self.call(Method::Delete, "/lock/fuzz", b"").map(|r| r.status);
        assert!(status == Some(200) || self.hold, "DELETE /lock/fuzz answered {status:?}");
    }

    fn put_copy(&mut self, body: &[u8]) {
        let parsed = parse_copy(body);
        if let Ok(sealed) = &parsed {
            check_sealed(sealed);
        }
        let before = self.node.version();
        let response = match self.call(Method::Put, "/copy", body) {
            Some(response) => response,
            // A copy taken by a durable node is answered once written: the slow disk must finish.
            None => {
                let ticket = self.next_ticket - 1;
                assert!(self.hold, "PUT /copy is answered once decoded (and written, with a data directory)");
                self.release();
                self.answer_to(ticket).expect("PUT /copy is answered once its copy is written")
            }
        };
        match parsed {
            Ok(sealed) => {
                assert_eq!(response.status, 201, "a valid copy was refused");
                let theirs = sealed.copy.version;
                if theirs > before {
                    assert_eq!(self.node.version(), theirs, "a newer copy was not taken");
                    assert_eq!(self.node.root(), &sealed.copy.root, "the copy's tree was not taken");
                } else {
                    assert_eq!(self.node.version(), before, "an older or equal copy replaced the store");
                }
            }
            Err(_) => {
                assert_eq!(response.status, 400, "an invalid copy was not refused");
                assert_eq!(self.node.version(), before, "an invalid copy changed the store");
            }
        }
    }

    fn put_state(&mut self, body: &[u8]) {
        let response = self.call(Method::Put, "/state", body).expect("PUT /state is answered at once");
        let is_list = matches!(serde_json::from_slice::<serde_json::Value>(body), Ok(serde_json::Value::Array(_)));
        assert_eq!(response.status, if is_list { 200 } else { 400 }, "PUT /state");
    }

    fn tick(&mut self) {
        self.now.mono_ms += 600;
        self.now.unix_ms += 600;
        self.node.tick(self.now);
        self.settle();
    }

    /// Answers the oldest request to a peer: `kind` 0 and 1 with success, 2 with 500, 3 with a
    /// failed connection.
    fn reply(&mut self, kind: u8, body: &[u8]) {
        let Some(request) = self.outbox.pop_front() else { return };
        let success = if request.path == "/copy" && request.method == Method::Put { 201 } else { 200 };
        let result = match kind {
            0 | 1 => Ok(PeerReply { status: success, headers: Vec::new(), body: body.to_vec() }),
            2 => Ok(PeerReply { status: 500, headers: Vec::new(), body: body.to_vec() }),
            _ => Err("connection refused".to_string()),
        };
        self.node.peer_reply(self.now, request.id, result);
        self.settle();
    }

    fn reads(&mut self) {
        for target in ["/state", "/version", "/data", "/", "/metrics", "/lock"] {
            let response = self.call(Method::Get, target, b"").expect("a GET is answered at once");
            assert!(response.status < 500 || target == "/data", "GET {target} answered {}", response.status);
        }
    }

    /// What must hold between any two actions.
    fn check(&mut self) {
        let version = self.node.version();
        assert_eq!(Checksum::of(self.node.root()), version.checksum, "the store's checksum");
        let served = self.call(Method::Get, "/copy", b"").expect("GET /copy is answered at once");
        assert_eq!(served.status, 200);
        let served = parse_copy(served.body.as_slice()).expect("GET /copy serves a copy that parses");
        assert_eq!(served.copy.version, version, "GET /copy serves another version");
        assert_eq!(&served.copy.root, self.node.root(), "GET /copy serves another tree");
        assert!(self.node.peers().len() <= lighthouse::limits::PEERS_MAX);
        assert!(self.node.peers().iter().all(|p| p.address != ME), "the node learned itself");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&header, rest)) = data.split_first() else { return };
    let count = usize::from(header & 7).min(rest.len());
    let (actions, bodies) = rest.split_at(count);
    let bodies: Vec<&[u8]> = bodies.split(|b| *b == 0).collect();
    let mut next_body = bodies.iter().copied().cycle();
    for body in &bodies {
        check_decoders(body);
    }
    let mut h = Harness::new(header & 8 != 0);
    if actions.is_empty() {
        let body = bodies[0];
        h.put_state(body);
        h.check();
        h.put_copy(body);
        h.check();
    }
    for &action in actions {
        match action & 7 {
            0 => h.commit(),
            1 => h.hold = true,
            2 => h.release(),
            3 => h.put_copy(next_body.next().expect("at least one body")),
            4 => h.put_state(next_body.next().expect("at least one body")),
            5 => h.tick(),
            6 => h.reply((action >> 3) & 3, next_body.next().expect("at least one body")),
            _ => h.reads(),
        }
        h.check();
    }
    h.release();
    h.check();
});

/// Every message decoder on `body`: no panic, and what decodes survives its own encoding.
fn check_decoders(body: &[u8]) {
    if let Some(request) = VoteRequest::decode(body) {
        assert_eq!(VoteRequest::decode(&request.encode()).as_ref(), Some(&request), "a vote request round-trips");
    }
    if let Some(answer) = VoteAnswer::decode(body) {
        assert_eq!(VoteAnswer::decode(&answer.encode()).as_ref(), Some(&answer), "a vote answer round-trips");
    }
    if let Some(beat) = Beat::decode(body) {
        assert_eq!(Beat::decode(&beat.encode()).as_ref(), Some(&beat), "a beat round-trips");
    }
    if let Some(answer) = BeatAnswer::decode(body) {
        assert_eq!(BeatAnswer::decode(&answer.encode()).as_ref(), Some(&answer), "a beat answer round-trips");
    }
    let answer = AcceptAnswer::decode(body);
    assert_eq!(AcceptAnswer::decode(&answer.encode()), answer, "an accept answer round-trips");
    if let Some(entries) = GossipEntry::decode_list(body) {
        assert!(entries.len() <= body.len(), "an entry per element");
    }
    if let Some(state) = PeerState::decode(body) {
        let _ = state.reached().count();
        let _ = state.is_committed();
    }
    let _ = messages::copy_answer(body);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = StoredPeer::read(&value);
        let _ = messages::coordination(&value);
        let _ = messages::lineage_fields(&value);
    }
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
