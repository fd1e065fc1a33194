//! The core driven directly: no sockets, no threads, a clock that moves only when told.

use super::*;
use crate::core::jobs::{self, DiskError, NoDisk};
use crate::core::sealed::{Sealed, seal};
use crate::core::version::Checksum;
mod changes;
mod removal;
mod single_voter;

impl Node {
    /// Takes a checked copy as if a peer had sent it.
    fn take_copy(&mut self, now: Now, sealed: Sealed) -> bool {
        let Node { shared, co } = self;
        shared.take_copy(co.as_mut(), now, sealed)
    }
}

struct Harness {
    node: Node,
    now: Now,
    next_ticket: Ticket,
}

impl Harness {
    fn new() -> Harness {
        let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
        let node = Node::new(CoreConfig::single("127.0.0.1:1"), now, Start::empty());
        Harness { node, now, next_ticket: 1 }
    }

    /// Sends a request; answers that come later are collected by `settle`.
    fn send(&mut self, method: Method, target: &str, body: &str) -> (Ticket, Reply) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let request =
            Request { method, target, headers: Headers::default(), body: body.as_bytes(), client: None, grant: None };
        (ticket, self.node.handle(self.now, ticket, &request))
    }

    /// A request that must be answered at once.
    fn call(&mut self, method: Method, target: &str, body: &str) -> Response {
        match self.send(method, target, body) {
            (_, Reply::Now(response) | Reply::Stream(response)) => response,
            (_, Reply::Later) => panic!("{method:?} {target} was parked"),
        }
    }

    /// A request whose answer waits for the workers: runs them and returns the answer.
    fn call_later(&mut self, method: Method, target: &str, body: &str) -> Response {
        let (ticket, reply) = self.send(method, target, body);
        match reply {
            Reply::Now(response) | Reply::Stream(response) => response,
            Reply::Later => self.settle().into_iter().find(|(t, _)| *t == ticket).expect("answered").1,
        }
    }

    /// A request whose answer waits for the workers: runs them and returns every answer given.
    fn call_later_all(&mut self, method: Method, target: &str, body: &str) -> Vec<(Ticket, Response)> {
        let (ticket, reply) = self.send(method, target, body);
        let mut answers = self.settle();
        if let Reply::Now(response) = reply {
            answers.push((ticket, response));
        }
        answers
    }

    /// Runs every queued job (in memory, no disk) until nothing is left; returns the answers.
    fn settle(&mut self) -> Vec<(Ticket, Response)> {
        let mut answers = Vec::new();
        loop {
            let effects: Vec<Effect> = self.node.drain_effects().collect();
            if effects.is_empty() {
                return answers;
            }
            for effect in effects {
                match effect {
                    Effect::Answer { ticket, response } => answers.push((ticket, response)),
                    Effect::Peer(request) => panic!("a single node asked a peer: {request:?}"),
                    Effect::Event { .. } => {}
                    Effect::Job(job) => {
                        let done = jobs::run(job, &mut NoDisk, &mut || {});
                        self.node.job_done(self.now, done);
                    }
                }
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now.mono_ms += ms;
        self.now.unix_ms += ms;
        self.node.tick(self.now);
    }

    fn body(&mut self, target: &str) -> String {
        let response = self.call(Method::Get, target, "");
        String::from_utf8(response.body.as_slice().to_vec()).unwrap()
    }
}

fn copy_of(sequence: u64, json: &str) -> Sealed {
    seal(Value::parse(json.as_bytes()).unwrap(), sequence, None)
}

fn copy_body(copy: &Sealed) -> String {
    String::from_utf8(copy.body.to_vec()).unwrap()
}

#[test]
fn a_transaction_stages_then_commits_a_new_version() {
    let mut h = Harness::new();
    assert_eq!(h.call(Method::Put, "/lock", "deploy\n").status, 200);
    assert_eq!(h.call(Method::Put, "/update/deploy", r#"{"a": [1]}"#).status, 201);
    assert_eq!(h.call(Method::Put, "/update/deploy/a/1", "2").status, 201);
    assert_eq!(h.body("/update/deploy/a"), "[\n  1,\n  2\n]\n");
    assert_eq!(h.body("/data"), "{}\n", "staged changes are invisible until the commit");
    let committed = h.call_later(Method::Put, "/lock/deploy", "");
    assert_eq!(committed.status, 200);
    let expected = Version { sequence: 1, checksum: Checksum::of_bytes(br#"{"a":[1,2]}"#) };
    assert_eq!(committed.body.as_slice(), expected.to_pretty_line().as_bytes());
    assert_eq!(h.node.version(), expected);
    assert_eq!(h.body("/data/a/1"), "2\n");
    assert_eq!(h.node.lock_holder(), None);
    assert_eq!(h.node.metrics().commits, 1);
}

#[test]
fn the_lock_belongs_to_one_name_at_a_time() {
    let mut h = Harness::new();
    assert_eq!(h.call(Method::Get, "/lock", "").status, 404);
    assert_eq!(h.call(Method::Put, "/lock", "alice").status, 200);
    assert_eq!(h.body("/lock"), "alice\n");
    assert_eq!(h.call(Method::Put, "/lock", "bob").status, 403);
    assert_eq!(h.call(Method::Put, "/update/bob/x", "1").status, 403);
    assert_eq!(h.call(Method::Put, "/lock/bob", "").status, 404);
    assert_eq!(h.call(Method::Delete, "/lock/bob", "").status, 404);
    assert_eq!(h.call(Method::Put, "/lock", "bad name").status, 400);
    assert_eq!(h.call(Method::Put, "/update/alice/x", "1").status, 201);
    assert_eq!(h.call(Method::Put, "/lock", "alice").status, 200, "renewal");
    assert_eq!(h.body("/update/alice/x"), "1\n", "renewal keeps staged changes");
    assert_eq!(h.call(Method::Delete, "/lock", "").status, 404, "an abort names its lock");
    assert_eq!(h.call(Method::Delete, "/lock/alice", "").status, 200);
    assert_eq!(h.call(Method::Get, "/lock", "").status, 404);
    assert_eq!(h.node.root(), &Value::default(), "abort drops staged changes");
}

#[test]
fn a_commit_that_changes_nothing_makes_no_version_and_no_job() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "1");
    h.call(Method::Delete, "/update/a/x", "");
    let response = h.call(Method::Put, "/lock/a", "");
    assert_eq!(response.status, 200);
    assert_eq!(h.node.version(), Version::initial());
    assert!(h.node.drain_effects().next().is_none(), "no snapshot job");
}

#[test]
fn the_lease_lapses_without_requests_and_activity_renews_it() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "1");
    h.advance(20_000);
    h.call(Method::Get, "/update/a", "");
    h.advance(20_000);
    assert_eq!(h.node.lock_holder(), Some("a"), "the read renewed the lease");
    assert_eq!(h.node.next_deadline(), Some(Deadline(1_000 + 20_000 + 30_000)));
    h.advance(10_000);
    assert_eq!(h.node.lock_holder(), None);
    assert_eq!(h.node.metrics().lease_expiries, 1);
    assert_eq!(h.call(Method::Put, "/update/a/x", "2").status, 403);
    assert_eq!(h.call(Method::Put, "/lock", "").status, 404, "nothing to commit");
}

#[test]
fn ttl_sets_the_lease_within_its_bound() {
    let mut h = Harness::new();
    assert_eq!(h.call(Method::Put, "/lock?ttl=0", "a").status, 400);
    assert_eq!(h.call(Method::Put, "/lock?ttl=3601", "a").status, 400);
    assert_eq!(h.call(Method::Put, "/lock?ttl=2", "a").status, 200);
    h.advance(2_000);
    assert_eq!(h.node.lock_holder(), None);
}

#[test]
fn staging_rules_follow_the_contract() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "t");
    let put = |h: &mut Harness, path: &str, body: &str| h.call(Method::Put, &format!("/update/t{path}"), body).status;
    assert_eq!(put(&mut h, "", r#"{"list": [0, 1], "obj": {}}"#), 201);
    assert_eq!(put(&mut h, "/list/2", "2"), 201, "index equal to the length appends");
    assert_eq!(put(&mut h, "/list/0", "\"zero\""), 201, "index below the length replaces");
    assert_eq!(put(&mut h, "/list/9", "9"), 404, "index past the end");
    assert_eq!(put(&mut h, "/missing/x", "1"), 404, "missing parent");
    assert_eq!(put(&mut h, "/obj/new", "true"), 201, "a key is created");
    assert_eq!(put(&mut h, "/obj/new/x", "1"), 404, "a scalar is no parent");
    assert_eq!(put(&mut h, "/obj", "not json"), 400);
    assert_eq!(h.body("/update/t/obj"), "{\n  \"new\": true\n}\n", "a bad body stages nothing");
    assert_eq!(h.call(Method::Delete, "/update/t/list/0", "").status, 204);
    assert_eq!(h.body("/update/t/list"), "[\n  1,\n  2\n]\n", "elements shift down");
    assert_eq!(h.call(Method::Delete, "/update/t/list/5", "").status, 404);
    assert_eq!(h.call(Method::Delete, "/update/t", "").status, 204);
    assert_eq!(h.body("/update/t"), "{}\n", "an empty path resets to {{}}");
    assert_eq!(h.call(Method::Get, "/update/t/nope", "").status, 404);
    assert_eq!(h.call(Method::Get, "/update", "").status, 404);
    assert_eq!(h.call(Method::Get, "/update/", "").status, 404);
    assert_eq!(h.call(Method::Post, "/update/t", "1").status, 405);
}

#[test]
fn a_newer_copy_makes_a_changed_transaction_conflict() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/mine", "1");
    let theirs = copy_of(5, r#"{"theirs": 1}"#);
    assert_eq!(h.call_later(Method::Put, "/copy", &copy_body(&theirs)).status, 201);
    assert_eq!(h.node.version(), theirs.copy.version);
    let response = h.call_later(Method::Put, "/lock/a", "");
    assert_eq!(response.status, 409);
    assert_eq!(h.node.lock_holder(), Some("a"), "the lock stays held after a conflict");
    assert_eq!(h.node.version(), theirs.copy.version, "nothing committed");
    assert_eq!(h.call(Method::Delete, "/lock/a", "").status, 200);
    assert_eq!(h.node.metrics().conflicts, 1);
}

#[test]
fn a_newer_copy_rebases_a_transaction_that_changed_nothing() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "a");
    let theirs = copy_of(5, r#"{"theirs": 1}"#);
    h.call_later(Method::Put, "/copy", &copy_body(&theirs));
    assert_eq!(h.body("/update/a/theirs"), "1\n");
    h.call(Method::Put, "/update/a/mine", "2");
    let response = h.call_later(Method::Put, "/lock/a", "");
    assert_eq!(response.status, 200);
    assert_eq!(h.node.version().sequence, 6);
}

#[test]
fn copies_that_are_older_equal_or_bad_change_nothing() {
    let mut h = Harness::new();
    let newer = copy_of(3, r#"{"v": 3}"#);
    h.call_later(Method::Put, "/copy", &copy_body(&newer));
    for older in [copy_of(2, r#"{"v": 2}"#), copy_of(3, r#"{"v": 3}"#)] {
        assert_eq!(h.call_later(Method::Put, "/copy", &copy_body(&older)).status, 201);
        assert_eq!(h.node.version(), newer.copy.version);
    }
    let forged = copy_body(&copy_of(9, r#"{"v": 9}"#)).replace("\"v\":9", "\"v\":10");
    assert_eq!(h.call_later(Method::Put, "/copy", &forged).status, 400);
    assert_eq!(h.call_later(Method::Put, "/copy", "{").status, 400);
    assert_eq!(h.node.version(), newer.copy.version);
    let served = h.call_later(Method::Get, "/copy", "");
    let served: serde_json::Value = serde_json::from_slice(served.body.as_slice()).unwrap();
    assert_eq!(served["version"]["sequence"], 3);
    assert_eq!(served["data"], serde_json::json!({"v": 3}));
}

/// With a data directory, a taken copy is answered once it is on disk: a node that answered it
/// and then crashed would come back older (found by a user trial). A failed write says so.
#[test]
fn a_copy_is_answered_once_it_is_on_disk() {
    let config = CoreConfig { durable: true, ..CoreConfig::single("127.0.0.1:1") };
    let mut h = Harness::new();
    h.node = Node::new(config, h.now, Start::empty());
    let (ticket, reply) = h.send(Method::Put, "/copy", &copy_body(&copy_of(5, r#"{"v": 5}"#)));
    assert!(matches!(reply, Reply::Later));
    let Some(Effect::Job(Job::Decode { id, body })) = h.node.drain_effects().next() else { panic!("decoded first") };
    h.node.job_done(h.now, jobs::run(Job::Decode { id, body }, &mut NoDisk, &mut || {}));
    let effects: Vec<Effect> = h.node.drain_effects().collect();
    assert!(!effects.iter().any(|e| matches!(e, Effect::Answer { .. })), "not answered before the write");
    let Some(Effect::Job(Job::Write { id, .. })) = effects.iter().find(|e| matches!(e, Effect::Job(Job::Write { .. })))
    else {
        panic!("the copy is written: {effects:?}");
    };
    let file = Ok(Some(std::path::PathBuf::from("/data/1.json")));
    h.node.job_done(h.now, Done::Written { id: *id, file, chain: None, elapsed_us: 1 });
    let answered = h
        .node
        .drain_effects()
        .any(|e| matches!(e, Effect::Answer { ticket: t, response } if t == ticket && response.status == 201));
    assert!(answered, "answered once on disk");

    let (ticket, _) = h.send(Method::Put, "/copy", &copy_body(&copy_of(6, r#"{"v": 6}"#)));
    let Some(Effect::Job(Job::Decode { id, body })) = h.node.drain_effects().next() else { panic!("decoded first") };
    h.node.job_done(h.now, jobs::run(Job::Decode { id, body }, &mut NoDisk, &mut || {}));
    let Some(Effect::Job(Job::Write { id, .. })) =
        h.node.drain_effects().find(|e| matches!(e, Effect::Job(Job::Write { .. })))
    else {
        panic!("the copy is written");
    };
    let full = DiskError { status: 507, message: "no space left".into() };
    h.node.job_done(h.now, Done::Written { id, file: Err(full), chain: None, elapsed_us: 1 });
    let answered = h
        .node
        .drain_effects()
        .any(|e| matches!(e, Effect::Answer { ticket: t, response } if t == ticket && response.status == 507));
    assert!(answered, "a failed write is said");
}

/// A version the store no longer serves is freed by a worker, not on the loop.
#[test]
fn replaced_versions_are_handed_to_a_worker_to_free() {
    let mut h = Harness::new();
    let first = copy_of(3, r#"{"v": 3}"#);
    assert!(h.node.take_copy(h.now, first.clone()));
    let retired: Vec<Version> = h
        .node
        .drain_effects()
        .filter_map(|e| match e {
            Effect::Job(Job::Retire(sealed)) => Some(sealed.copy.version),
            _ => None,
        })
        .collect();
    assert_eq!(retired, [Version::initial()]);
    assert!(h.node.take_copy(h.now, copy_of(4, r#"{"v": 4}"#)));
    assert!(
        h.node
            .drain_effects()
            .any(|e| matches!(e, Effect::Job(Job::Retire(s)) if s.copy.version == first.copy.version))
    );
}

/// A node without peers sets its copy body aside; `GET /copy` has it rendered by the decoder
/// thread, once for every request waiting, and keeps it until the store changes.
#[test]
fn a_copy_body_set_aside_is_rendered_off_the_loop_once() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "1");
    h.call_later(Method::Put, "/lock/a", "");
    let (first, reply) = h.send(Method::Get, "/copy", "");
    assert!(matches!(reply, Reply::Later), "the body is rendered off the loop");
    let (second, reply) = h.send(Method::Get, "/copy", "");
    assert!(matches!(reply, Reply::Later));
    let renders = h.node.shared.effects.iter().filter(|e| matches!(e, Effect::Job(Job::Render { .. }))).count();
    assert_eq!(renders, 1, "one render for both requests");
    let answers = h.settle();
    for ticket in [first, second] {
        let (_, answer) = answers.iter().find(|(t, _)| *t == ticket).expect("answered");
        let parsed = crate::core::sealed::parse_copy(answer.body.as_slice()).expect("a valid copy");
        assert_eq!(parsed.copy.version, h.node.version());
    }
    assert_eq!(h.call(Method::Get, "/copy", "").status, 200, "kept for the next request");
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "2");
    h.call_later(Method::Put, "/lock/a", "");
    assert!(matches!(h.send(Method::Get, "/copy", "").1, Reply::Later), "a new version's body is set aside again");
}

#[test]
fn a_failed_snapshot_write_answers_5xx_and_keeps_the_lock_and_the_store() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "1");
    let (ticket, reply) = h.send(Method::Put, "/lock/a", "");
    assert!(matches!(reply, Reply::Later));
    let Some(Effect::Job(Job::Seal { id, root, sequence, .. })) = h.node.drain_effects().next() else {
        panic!("the commit asks for a seal");
    };
    let full = DiskError { status: 507, message: "no space left".into() };
    let sealed = seal(root, sequence, None);
    h.node.job_done(h.now, Done::Sealed { id, sealed, file: Err(full), chain: None, elapsed_us: 1 });
    let answers = h.settle();
    assert_eq!(
        answers,
        vec![(ticket, Response::error(507, "no space left; nothing was committed; the lock is still held"))]
    );
    assert_eq!(h.node.version(), Version::initial());
    assert_eq!(h.node.lock_holder(), Some("a"));
    assert_eq!(h.body("/update/a/x"), "1\n", "staged changes survive for a retry");
    assert_eq!(h.call_later(Method::Put, "/lock/a", "").status, 200, "a retry succeeds");
}

#[test]
fn a_copy_taken_while_the_commit_is_written_wins_and_the_commit_file_is_removed() {
    let config = CoreConfig { durable: true, ..CoreConfig::single("127.0.0.1:1") };
    let mut h = Harness::new();
    h.node = Node::new(config, h.now, Start::empty());
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "1");
    let (ticket, _) = h.send(Method::Put, "/lock/a", "");
    let Some(Effect::Job(Job::Seal { id, root, sequence, parent, .. })) = h.node.drain_effects().next() else {
        panic!("the commit asks for a seal")
    };
    let theirs = copy_of(4, r#"{"theirs": true}"#);
    assert!(h.node.take_copy(h.now, theirs.clone()));
    let file = std::path::PathBuf::from("/data/20260101T000000.000001.json");
    let sealed = seal(root, sequence, Some(&parent));
    h.node.job_done(h.now, Done::Sealed { id, sealed, file: Ok(Some(file.clone())), chain: None, elapsed_us: 1 });
    let effects: Vec<Effect> = h.node.drain_effects().collect();
    let Some(Effect::Job(Job::Remove { id: removal, file: removed })) = effects.first() else {
        panic!("the losing commit's file is removed first: {effects:?}");
    };
    assert_eq!(*removed, file);
    let others = effects.iter().filter(|e| !matches!(e, Effect::Job(Job::Retire(_)))).count();
    assert_eq!(others, 1, "no answer before the file is gone");
    h.node.job_done(h.now, Done::Removed { id: *removal });
    let effects: Vec<Effect> = h.node.drain_effects().collect();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Answer { ticket: t, response } if *t == ticket && response.status == 409))
    );
    assert!(effects.iter().any(|e| matches!(e, Effect::Job(Job::Write { .. }))), "the copy is persisted");
    assert_eq!(h.node.version(), theirs.copy.version);
    assert_eq!(h.node.lock_holder(), Some("a"), "the lock stays held after the 409");
}

#[test]
fn a_failed_background_write_made_good_by_a_commit_leaves_no_deadline_in_the_past() {
    let config = CoreConfig { durable: true, ..CoreConfig::single("127.0.0.1:1") };
    let mut h = Harness::new();
    h.node = Node::new(config, h.now, Start::empty());
    // A new peer makes the table worth writing; that write fails.
    assert_eq!(h.call(Method::Put, "/state", r#"[{"address": "127.0.0.1:2"}]"#).status, 200);
    h.node.tick(h.now);
    let effects: Vec<Effect> = h.node.drain_effects().collect();
    let Some(Effect::Job(Job::Write { id, .. })) = effects.iter().find(|e| matches!(e, Effect::Job(Job::Write { .. })))
    else {
        panic!("the table is written: {effects:?}");
    };
    let failed = Err(DiskError { status: 503, message: "gone".into() });
    h.node.job_done(h.now, Done::Written { id: *id, file: failed, chain: None, elapsed_us: 1 });
    // Before the retry, a commit writes everything.
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "1");
    let (_, reply) = h.send(Method::Put, "/lock/a", "");
    assert!(matches!(reply, Reply::Later));
    let jobs: Vec<Effect> = h.node.drain_effects().collect();
    let Some(Effect::Job(Job::Seal { id, root, sequence, parent, .. })) =
        jobs.into_iter().find(|e| matches!(e, Effect::Job(Job::Seal { .. })))
    else {
        panic!("the commit is sealed");
    };
    let sealed = seal(root, sequence, Some(&parent));
    h.node.job_done(h.now, Done::Sealed { id, sealed, file: Ok(None), chain: None, elapsed_us: 1 });
    h.advance(2_000);
    let _ = h.node.drain_effects().count();
    let deadline = h.node.next_deadline();
    assert!(deadline.is_none_or(|d| d.0 > h.now.mono_ms), "a deadline in the past would spin the loop: {deadline:?}");
}

/// Found by fuzzing (fuzz/regressions/path): `/data//` is not the root. An empty segment names
/// nothing (as in the original), so it is 404, wherever it stands.
#[test]
fn a_double_slash_names_nothing() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a", r#"{"": 1, "b": 2}"#);
    h.call_later(Method::Put, "/lock/a", "");
    for target in ["/data//", "//", "/data//b", "/version//"] {
        assert_eq!(h.call(Method::Get, target, "").status, 404, "{target}");
    }
    assert_eq!(h.body("/data/"), "{\n  \"\": 1,\n  \"b\": 2\n}\n");
}

#[test]
fn a_copy_at_the_largest_sequence_is_refused() {
    let mut h = Harness::new();
    let top = copy_of(u64::MAX, r#"{"x": 1}"#);
    assert_eq!(h.call_later(Method::Put, "/copy", &copy_body(&top)).status, 400);
    assert_eq!(h.node.version(), Version::initial());
}

#[test]
fn a_stale_long_poll_deadline_does_not_touch_a_later_watcher_of_the_same_connection() {
    let mut h = Harness::new();
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "1");
    h.call_later(Method::Put, "/lock/a", "");
    let tag = String::from_utf8(h.call(Method::Get, "/data/x", "").headers.as_slice().to_vec()).unwrap();
    let etag = tag.lines().find_map(|l| l.strip_prefix("ETag: ")).unwrap().trim().to_string();
    let ticket = 77;
    let request = |target: &'static str, accept: Option<&'static str>| Request {
        method: Method::Get,
        target,
        headers: Headers {
            if_none_match: Some(Box::leak(etag.clone().into_boxed_str())),
            accept,
            ..Headers::default()
        },
        ..Request { method: Method::Get, target: "", headers: Headers::default(), body: b"", client: None, grant: None }
    };
    assert!(matches!(h.node.handle(h.now, ticket, &request("/data/x?wait=3", None)), Reply::Later));
    h.call(Method::Put, "/lock", "a");
    h.call(Method::Put, "/update/a/x", "2");
    let answers = h.call_later_all(Method::Put, "/lock/a", "");
    assert!(answers.iter().any(|(t, r)| *t == ticket && r.status == 200), "the poll was woken");
    // The same ticket now streams; the first poll's deadline must not end it.
    let stream = h.node.handle(h.now, ticket, &request("/data/x", Some("text/event-stream")));
    assert!(matches!(stream, Reply::Stream(_)));
    h.advance(5_000);
    assert!(h.settle().iter().all(|(t, _)| *t != ticket), "nothing answers the stream");
}

#[test]
fn requests_for_the_lock_in_every_state_follow_the_status_table() {
    let mut h = Harness::new();
    // No lock.
    assert_eq!(h.call(Method::Put, "/lock", "").status, 404);
    assert_eq!(h.call(Method::Delete, "/lock", "").status, 404);
    assert_eq!(h.call(Method::Put, "/update/a", "1").status, 403);
    // Held.
    h.call(Method::Put, "/lock", "a");
    assert_eq!(h.call(Method::Get, "/lock/a", "").status, 200);
    assert_eq!(h.call(Method::Get, "/lock/b", "").status, 404);
    assert_eq!(h.call(Method::Post, "/lock", "").status, 405);
    assert_eq!(h.call(Method::Get, "/lock/a/b", "").status, 404);
    // A commit or an abort that names no lock changes nothing.
    h.call(Method::Put, "/update/a/x", "1");
    for (method, target) in
        [(Method::Put, "/lock"), (Method::Put, "/lock/"), (Method::Delete, "/lock"), (Method::Delete, "/lock/")]
    {
        let refused = h.call(method, target, "");
        assert_eq!(refused.status, 404, "{method:?} {target}");
        assert!(String::from_utf8_lossy(refused.body.as_slice()).contains("name the lock"));
    }
    assert_eq!(h.body("/lock"), "a\n", "still held");
    // After commit and after abort the lock is free again.
    assert_eq!(h.call_later(Method::Put, "/lock/a", "").status, 200);
    assert_eq!(h.call(Method::Put, "/update/a/x", "2").status, 403);
    h.call(Method::Put, "/lock", "b");
    assert_eq!(h.call(Method::Delete, "/lock/b", "").status, 200);
    assert_eq!(h.call(Method::Get, "/lock", "").status, 404);
}

/// Answers every request to a peer with `status` (or as unreachable, for `None`).
fn answer_peers(h: &mut Harness, status: Option<u16>) {
    answer_each_peer(h, |_| status);
}

/// Answers every request to a peer with the status `status_of` its address gives (or as
/// unreachable, for `None`).
fn answer_each_peer(h: &mut Harness, status_of: impl Fn(&str) -> Option<u16>) {
    let requests: Vec<PeerRequest> = h
        .node
        .drain_effects()
        .filter_map(|e| match e {
            Effect::Peer(request) => Some(request),
            _ => None,
        })
        .collect();
    for request in requests {
        let result = match status_of(&request.peer) {
            Some(status) => Ok(PeerReply { status, headers: Vec::new(), body: b"{}".to_vec() }),
            None => Err("connection refused".to_string()),
        };
        h.node.peer_reply(h.now, request.id, result);
    }
}

#[test]
fn an_address_never_reached_is_forgotten_unless_it_is_a_seed_or_was_reached_once() {
    let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
    let config =
        CoreConfig { seeds: vec!["10.0.0.9:8001".into()], bootstrap: true, ..CoreConfig::single("10.0.0.1:8001") };
    let mut h = Harness { node: Node::new(config, now, Start::empty()), now, next_ticket: 1 };
    let gossip = r#"[{"address": "10.0.0.2:8001"}, {"address": "10.0.0.3:8001"}]"#;
    assert_eq!(h.call(Method::Put, "/state", gossip).status, 200);
    // 10.0.0.2 answers once, then never again; nobody else ever answers.
    h.advance(0);
    answer_each_peer(&mut h, |peer| (peer == "10.0.0.2:8001").then_some(200));
    for _ in 0..80 {
        h.advance(500);
        answer_peers(&mut h, None);
    }
    let mut left: Vec<&str> = h.node.peers().iter().map(|p| p.address.as_str()).collect();
    left.sort();
    assert_eq!(left, ["10.0.0.2:8001", "10.0.0.9:8001"], "the stranger 10.0.0.3 is gone; a member and a seed stay");
}

#[test]
fn a_peer_that_refuses_the_key_is_shown_as_not_usable() {
    let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
    let config = CoreConfig { seeds: vec!["10.0.0.2:8001".into()], ..CoreConfig::single("10.0.0.1:8001") };
    let mut h = Harness { node: Node::new(config, now, Start::empty()), now, next_ticket: 1 };
    h.advance(0);
    answer_peers(&mut h, Some(401));
    let peer = &h.node.peers()[0];
    assert!(!peer.reachable);
    assert_eq!(peer.problem, Some(crate::core::messages::PeerProblem::RefusesKey));
    assert!(peer.problem.as_ref().is_some_and(|p| p.to_string().contains("401")), "{:?}", peer.problem);
    assert!(!h.node.is_active(), "nothing was learned from it");
}

#[test]
fn a_lapsed_lease_is_expired_before_a_request_at_the_deadline_is_handled() {
    let mut h = Harness::new();
    assert_eq!(h.call(Method::Put, "/lock?ttl=1", "a").status, 200);
    // The clock reaches the deadline, but no timer pass has run.
    h.now.mono_ms += 1_000;
    h.now.unix_ms += 1_000;
    assert_eq!(h.call(Method::Put, "/update/a/x", "1").status, 403, "the lease lapsed at its deadline");
    assert_eq!(h.call(Method::Put, "/lock", "a").status, 200, "taken again, as a new lock");
    assert_eq!(h.node.metrics().lease_expiries, 1);
    h.now.mono_ms += 999;
    assert_eq!(h.call(Method::Put, "/update/a/x", "1").status, 201, "a request before the deadline renews");
}
