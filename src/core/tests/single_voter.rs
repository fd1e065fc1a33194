//! A cluster of one voter: its own majority, so a commit's outcome is never unknown.

use super::*;
use crate::core::node_state::NodeState;

/// The founder of a cluster of one, coordinating.
fn founder() -> Harness {
    let now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
    let cluster = Some("00000000000000c1".to_string());
    let state = NodeState { cluster: cluster.clone(), ..NodeState::new("00000000000000a1".into()) };
    let coordinated = CoordinatedConfig { state: state.clone(), founding: cluster, force_new_cluster: false };
    let config = CoreConfig { identity: state, coordinated: Some(coordinated), ..CoreConfig::single("127.0.0.1:1") };
    let mut h = Harness { node: Node::new(config, now, Start::empty()), now, next_ticket: 1 };
    h.settle();
    h.advance(0);
    h.settle();
    assert!(h.node.consensus_status(h.now).is_some_and(|s| s.coordinator && s.lease), "it founds and leads");
    h
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
