//! A cluster of one voter: its own majority, so a commit's outcome is never unknown.

use super::*;
use crate::core::node_state::NodeState;

/// The founder of a cluster of one, coordinating.
fn founder() -> Harness {
    let mut h = founding(Start::empty());
    h.settle();
    h.advance(0);
    h.settle();
    assert!(h.node.consensus_status(h.now).is_some_and(|s| s.coordinator && s.lease), "it founds and leads");
    h
}

/// A node founding a cluster of one on `start`, its first jobs not yet run.
fn founding(start: Start) -> Harness {
    let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
    let cluster = Some("00000000000000c1".to_string());
    let state = NodeState { cluster: cluster.clone(), ..NodeState::new("00000000000000a1".into()) };
    let coordinated = CoordinatedConfig { state: state.clone(), founding: cluster, force_new_cluster: false };
    let config = CoreConfig { identity: state, coordinated: Some(coordinated), ..CoreConfig::single("127.0.0.1:1") };
    Harness { node: Node::new(config, now, start), now, next_ticket: 1 }
}

/// A copy body as the coordinator serves or pushes it: its term, if it has one.
fn term_of(body: &[u8]) -> Option<u64> {
    let copy: serde_json::Value = serde_json::from_slice(body).expect("a copy body is JSON");
    copy["coordination"]["term"].as_u64()
}

#[test]
fn a_copy_rendered_from_a_version_that_is_stamped_meanwhile_is_not_kept_as_the_stamped_ones() {
    // A store from before coordinated writes: the founder stamps it with its term, which keeps
    // its sequence and checksum. A `GET /copy` (a learner fetching) renders the unstamped copy
    // while the stamp is under way; that body must not be served or pushed as the stamped one,
    // or every learner refuses every push of it (409) and never joins.
    let start = Start { sealed: copy_of(5, r#"{"written":"by hand"}"#), ..Start::empty() };
    let mut h = founding(start);
    h.advance(0);
    let (early, reply) = h.send(Method::Get, "/copy", "");
    assert!(matches!(reply, Reply::Later), "the copy body is rendered off the loop");
    let jobs: Vec<Effect> = h.node.drain_effects().collect();
    let (renders, others): (Vec<Effect>, Vec<Effect>) =
        jobs.into_iter().partition(|e| matches!(e, Effect::Job(jobs::Job::Render { .. })));
    assert_eq!(renders.len(), 1, "one render of the unstamped copy");
    for effect in others.into_iter().chain(renders) {
        if let Effect::Job(job) = effect {
            let done = jobs::run(job, &mut NoDisk, &mut || {});
            h.node.job_done(h.now, done);
        }
    }
    let answers = h.settle();
    let first = answers.iter().find(|(t, _)| *t == early).expect("the early GET /copy is answered");
    assert_eq!(first.1.status, 200);
    assert_eq!(h.node.version().sequence, 5, "the stamp keeps the sequence");
    let later = h.call_later(Method::Get, "/copy", "");
    assert_eq!(later.status, 200);
    assert_eq!(term_of(later.body.as_slice()), Some(1), "{}", String::from_utf8_lossy(later.body.as_slice()));
}

#[test]
fn a_single_voters_commit_is_answered_when_its_write_is_done_however_slow() {
    let mut h = founder();
    let (ticket, reply) = h.send(Method::Put, "/data/x", "1");
    assert!(matches!(reply, Reply::Later));
    // The seal (and write) of a large store takes far longer than a majority's timeout.
    let held: Vec<Effect> = h.node.drain_effects().collect();
    assert!(held.iter().any(|e| matches!(e, Effect::Job(jobs::Job::Seal { .. }))), "{held:?}");
    for _ in 0..20 {
        h.advance(1_000);
        let early: Vec<Effect> = h.node.drain_effects().collect();
        assert!(!early.iter().any(|e| matches!(e, Effect::Answer { .. })), "answered before its write: {early:?}");
    }
    for effect in held {
        if let Effect::Job(job) = effect {
            let done = jobs::run(job, &mut NoDisk, &mut || {});
            h.node.job_done(h.now, done);
        }
    }
    let answers = h.settle();
    let answer = answers.iter().find(|(t, _)| *t == ticket).map(|(_, r)| r.status);
    assert_eq!(answer, Some(200), "{answers:?}");
    assert_eq!(h.body("/data/x"), "1\n");
}
