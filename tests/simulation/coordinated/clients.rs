//! The coordinated mode's workload: clients that run the lock dance against random nodes, a
//! request at a time, each to another node (increments of a counter, appends to a list, reads with
//! `?min-version=`), and one-request writes (an increment by compare-and-set, an append by JSON
//! Patch); and the operator's removals.

use lighthouse::core::version::Version;
use lighthouse::http::{Headers, Method, Response};

use super::{Act, Coordinated};
use crate::harness::{Origin, Sim};

/// A client gives up on a request after this long (the node crashed, or the answer was lost).
const CLIENT_TIMEOUT_MS: u64 = 4_000;
/// The client number of the operator's requests (`DELETE /state/ADDRESS`).
const OPERATOR: usize = usize::MAX - 1;
/// The client number of requests whose answer nobody waits for.
const NOBODY: usize = usize::MAX;

/// Who waits for an answer: a client (or the operator, or nobody), for its request `request`.
#[derive(Debug, Clone)]
pub struct Asker {
    client: usize,
    request: u64,
}

/// A step of a client's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Step {
    #[default]
    Idle,
    Acquire,
    Read,
    Stage,
    Commit,
    /// A read with `?min-version=`.
    Check,
    /// A one-request write's read of the value and its ETag.
    ReadTag,
    /// A one-request write.
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    Increment,
    Append,
    #[default]
    Check,
    /// `PUT /data/counter` with `If-Match`.
    CasIncrement,
    /// `PATCH /data` with a JSON Patch that appends.
    PatchAppend,
}

#[derive(Default)]
pub struct Client {
    pub task: Task,
    pub step: Step,
    /// The request in flight (its number; answers to older ones are ignored).
    request: u64,
    /// The lock name of this attempt: never reused after a commit with an unknown outcome.
    name: String,
    attempt: u64,
    /// What the transaction read and writes.
    value: u64,
    /// For a check: the sequence asked for.
    pub min_version: u64,
}

impl Coordinated {
    /// A node to send a client's request to: any node that runs.
    fn pick_node(&mut self) -> Option<usize> {
        // Once the trap is set, clients use the majority side, as clients behind a balancer that
        // checks `/ready` and writes would: the trap is about what that side commits.
        let trapped = self.trap.as_ref().and_then(|t| t.set).filter(|_| !self.h.calm());
        let nodes = &self.h.nodes;
        let up: Vec<usize> = (0..nodes.len())
            // A balancer that checks `/ready` sends nothing to a node that says it was removed.
            .filter(|&i| nodes[i].node.as_ref().is_some_and(|n| !n.is_removed()) && !nodes[i].gone)
            .filter(|&i| trapped.is_none_or(|(coordinator, keeper)| i != coordinator && i != keeper))
            .collect();
        (!up.is_empty()).then(|| up[self.h.rng.below(up.len() as u64) as usize])
    }

    fn new_request(&mut self) -> u64 {
        let request = self.next_request;
        self.next_request += 1;
        request
    }

    fn client_send(&mut self, c: usize, method: Method, target: String, body: Vec<u8>) {
        self.client_send_with(c, method, target, body, Headers::default());
    }

    fn client_send_with(&mut self, c: usize, method: Method, target: String, body: Vec<u8>, headers: Headers) {
        let request = self.new_request();
        self.clients[c].request = request;
        self.at(CLIENT_TIMEOUT_MS, Act::ClientWake { client: c, request });
        let Some(i) = self.pick_node() else { return };
        self.send(i, Origin::Client(Asker { client: c, request }), method, &target, &body, headers);
    }

    /// Starts a client's next task.
    fn client_start(&mut self, c: usize) {
        if self.h.calm() && self.h.real > self.h.calm_from + 2_000 {
            self.clients[c].step = Step::Idle;
            return;
        }
        let client = &mut self.clients[c];
        client.attempt += 1;
        client.name = format!("c{c}-{}", client.attempt);
        client.task = match self.h.rng.below(7) {
            0 | 1 => Task::Increment,
            2 | 3 => Task::Append,
            4 => Task::CasIncrement,
            5 => Task::PatchAppend,
            _ => Task::Check,
        };
        // Once the trap is set, every commit appends a new id: the versions the next coordinator
        // makes differ from the one the keeper holds (an increment could make the same bytes).
        if self.trap.as_ref().is_some_and(|t| t.set.is_some()) {
            client.task = match client.task {
                Task::Increment => Task::Append,
                Task::CasIncrement => Task::PatchAppend,
                task => task,
            };
        }
        match self.clients[c].task {
            Task::CasIncrement => {
                self.clients[c].step = Step::ReadTag;
                return self.client_send(c, Method::Get, "/data/counter".into(), Vec::new());
            }
            Task::PatchAppend => {
                let id = self.next_append;
                self.next_append += 1;
                self.clients[c].value = id;
                self.clients[c].step = Step::Write;
                let patch = format!(r#"[{{"op": "add", "path": "/list/-", "value": {id}}}]"#);
                let headers = Headers { content_type: Some("application/json-patch+json"), ..Headers::default() };
                return self.client_send_with(c, Method::Patch, "/data".into(), patch.into_bytes(), headers);
            }
            _ => {}
        }
        if self.clients[c].task == Task::Check {
            let known: Vec<u64> = self.increments.iter().chain(&self.appends).map(|(_, s)| *s).collect();
            if known.is_empty() {
                self.clients[c].task = Task::Increment;
            } else {
                let sequence = known[self.h.rng.below(known.len() as u64) as usize];
                self.clients[c].min_version = sequence;
                self.clients[c].step = Step::Check;
                self.client_send(c, Method::Get, format!("/data?min-version={sequence}&wait=2"), Vec::new());
                return;
            }
        }
        self.clients[c].step = Step::Acquire;
        let name = self.clients[c].name.clone();
        self.client_send(c, Method::Put, "/lock".into(), name.into_bytes());
    }

    /// Waits a little, then starts the next task.
    fn client_rest(&mut self, c: usize) {
        self.clients[c].step = Step::Idle;
        let request = self.new_request();
        self.clients[c].request = request;
        let delay = 20 + self.h.rng.below(200);
        self.at(delay, Act::ClientWake { client: c, request });
    }

    /// A client's request was not answered in time, or its rest is over.
    pub(super) fn client_wake(&mut self, c: usize, request: u64) {
        if self.clients[c].request != request {
            return;
        }
        match self.clients[c].step {
            Step::Idle => self.client_start(c),
            // No answer: a commit's outcome is unknown (it may land); anything else changed nothing.
            _ => self.client_abort(c),
        }
    }

    /// Gives up a transaction: aborts it (best effort) and rests.
    fn client_abort(&mut self, c: usize) {
        let name = self.clients[c].name.clone();
        if let Some(i) = self.pick_node() {
            let request = self.new_request();
            let origin = Origin::Client(Asker { client: NOBODY, request });
            self.send(i, origin, Method::Delete, &format!("/lock/{name}"), b"", Headers::default());
        }
        self.client_rest(c);
    }

    pub(super) fn client_answer(&mut self, Asker { client: c, request }: Asker, response: Response) {
        if c == OPERATOR {
            return self.operator_answer(request, response);
        }
        if c == NOBODY || self.clients[c].request != request {
            return;
        }
        let name = self.clients[c].name.clone();
        match (self.clients[c].step, response.status) {
            (Step::Acquire, 200) => {
                self.clients[c].step = Step::Read;
                let target = match self.clients[c].task {
                    Task::Increment => format!("/update/{name}/counter"),
                    _ => format!("/update/{name}/list?keys"),
                };
                self.client_send(c, Method::Get, target, Vec::new());
            }
            (Step::Read, 200) => self.staged_read(c, &response),
            (Step::ReadTag, 200) => self.tagged_read(c, &response),
            (Step::Write, 200) => self.written(c, &response, "a one-request write's answer"),
            // 412 (someone wrote first), 409, 503, or 504 (the outcome is unknown): rest.
            (Step::ReadTag | Step::Write, _) => self.client_rest(c),
            (Step::Stage, 201) => {
                self.clients[c].step = Step::Commit;
                self.client_send(c, Method::Put, format!("/lock/{name}"), Vec::new());
            }
            (Step::Commit, 200) => self.written(c, &response, "a commit's answer"),
            // 504: the outcome is unknown; the lock name is not reused (each attempt has its own).
            (Step::Commit, _) => self.client_rest(c),
            (Step::Check, 200) => {
                self.check_read(c, &response);
                self.client_rest(c);
            }
            (Step::Check, _) => self.client_rest(c),
            // Refused (another holder, no coordinator, the lock dropped): give up and retry later.
            _ => self.client_abort(c),
        }
    }

    /// A transaction read the counter (to increment it) or the list's length (to append to it):
    /// it stages the new value.
    fn staged_read(&mut self, c: usize, response: &Response) {
        let body = response.body.as_slice();
        let read: u64 = std::str::from_utf8(body)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("seed {}: a staged read gave {:?}", self.h.seed, String::from_utf8_lossy(body)));
        self.clients[c].step = Step::Stage;
        let name = self.clients[c].name.clone();
        let (target, value) = match self.clients[c].task {
            Task::Increment => (format!("/update/{name}/counter"), read + 1),
            _ => {
                let id = self.next_append;
                self.next_append += 1;
                (format!("/update/{name}/list/{read}"), id)
            }
        };
        self.clients[c].value = value;
        self.client_send(c, Method::Put, target, value.to_string().into_bytes());
    }

    /// A compare-and-set read the counter and its ETag: it writes the next value if nobody wrote
    /// since.
    fn tagged_read(&mut self, c: usize, response: &Response) {
        let body = response.body.as_slice();
        let read: u64 = std::str::from_utf8(body).ok().and_then(|t| t.trim().parse().ok()).expect("a counter");
        let headers = String::from_utf8_lossy(response.headers.as_slice()).into_owned();
        let tag = headers.lines().find_map(|l| l.strip_prefix("ETag: ")).expect("a read's ETag").to_string();
        self.clients[c].value = read + 1;
        self.clients[c].step = Step::Write;
        let headers = Headers { if_match: Some(&tag), ..Headers::default() };
        let body = (read + 1).to_string().into_bytes();
        self.client_send_with(c, Method::Put, "/data/counter".into(), body, headers);
    }

    /// A commit or a one-request write was answered 200: its version joins the history, and what
    /// it wrote must be in every later read and in the final store. Right after a commit's answer
    /// the coordinator may crash or be cut off.
    fn written(&mut self, c: usize, response: &Response, what: &str) {
        let version: serde_json::Value = serde_json::from_slice(response.body.as_slice()).unwrap();
        let version = Version::from_json(&version).unwrap_or_else(|| panic!("{what} names no version"));
        self.record_committed(version, what);
        if self.clients[c].step == Step::Commit && self.h.chaos() {
            if self.h.rng.chance(150) {
                let delay = self.h.rng.below(5);
                self.at(delay, Act::CrashCoordinator);
            } else if self.h.rng.chance(100) {
                let delay = self.h.rng.below(5);
                self.at(delay, Act::IsolateCoordinator);
            }
        }
        let value = self.clients[c].value;
        match self.clients[c].task {
            Task::Increment | Task::CasIncrement => self.increments.push((value, version.sequence)),
            _ => self.appends.push((value, version.sequence)),
        }
        self.client_rest(c);
    }

    /// The answer to an operator's removal: once it is 200, the node is removed; the operator
    /// stops it for good, or (sometimes) forgets to, and it must then serve nothing.
    fn operator_answer(&mut self, request: u64, response: Response) {
        let Some((victim, left)) = self.removals.remove(&request) else { return };
        let body = String::from_utf8_lossy(response.body.as_slice()).into_owned();
        assert!(
            [200, 404, 409, 503, 504].contains(&response.status),
            "seed {}: a removal answered {} {body}",
            self.h.seed,
            response.status
        );
        // As a script would: a refusal that says to retry is retried a little later.
        let retry = response.status == 503 || (response.status == 409 && body.contains("retry"));
        if retry && left > 0 {
            let delay = 200 + self.h.rng.below(800);
            self.at(delay, Act::RemoveAgain { victim, left: left - 1 });
        }
        if response.status != 200 {
            return;
        }
        self.removed[victim] = true;
        if self.h.rng.chance(700) {
            // Once the node has handed out what it is answering now (it may be the one that
            // answered).
            self.at(1, Act::Stop { node: victim });
        }
    }

    /// The operator's `DELETE /state/ADDRESS`, sent to any node (no answer: it asks again).
    pub(super) fn ask_removal(&mut self, victim: usize, left: u32) {
        let address = self.h.nodes[victim].address.clone();
        let Some(i) = self.pick_node() else { return };
        let request = self.new_request();
        self.removals.insert(request, (victim, left));
        let target = format!("/state/{address}");
        let origin = Origin::Client(Asker { client: OPERATOR, request });
        self.send(i, origin, Method::Delete, &target, b"", Headers::default());
    }
}
