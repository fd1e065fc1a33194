//! Unit tests of the message decoders: each round-trips, refuses a body without a field it cannot
//! do without, ignores unknown fields, takes a field of the wrong type as not said, and writes
//! the same bytes as the `serde_json::json!` values nodes sent before these types.

use serde_json::json;

use super::*;

fn accepted(term: u64, sequence: u64) -> Accepted {
    let checksum = Checksum::parse_hex(&"ab".repeat(20)).expect("40 hex digits");
    Accepted { term, version: Version { sequence, checksum } }
}

fn member(n: u8) -> Member {
    Member { id: format!("00000000000000{n:02x}"), address: format!("127.0.0.{n}:8001") }
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("a value");
    bytes.push(b'\n');
    bytes
}

/// The body with `field` removed (or replaced by `with`).
fn edited(body: &[u8], field: &str, with: Option<Value>) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(body).expect("JSON");
    let object = value.as_object_mut().expect("an object");
    match with {
        Some(v) => object.insert(field.to_string(), v),
        None => object.remove(field),
    };
    serde_json::to_vec(&value).expect("a value")
}

#[test]
fn a_vote_request_round_trips_with_the_bytes_nodes_always_sent() {
    for pre in [false, true] {
        let request = VoteRequest { term: 7, candidate: member(1), accepted: accepted(6, 12), pre };
        let mut old = json!({"term": 7, "candidate": member(1).to_json(), "accepted": accepted(6, 12).to_json()});
        if pre {
            old["pre"] = true.into();
        }
        assert_eq!(request.encode(), old.to_string().into_bytes(), "pre: {pre}");
        assert_eq!(VoteRequest::decode(&request.encode()), Some(request));
    }
}

#[test]
fn a_vote_request_without_a_term_candidate_or_accepted_version_is_refused() {
    let body = VoteRequest { term: 7, candidate: member(1), accepted: accepted(6, 12), pre: false }.encode();
    for field in ["term", "candidate", "accepted"] {
        assert_eq!(VoteRequest::decode(&edited(&body, field, None)), None, "without {field}");
        assert_eq!(VoteRequest::decode(&edited(&body, field, Some(json!("7")))), None, "{field} a string");
    }
    let bad_candidate = json!({"id": "not an id", "address": "127.0.0.1:1"});
    assert_eq!(VoteRequest::decode(&edited(&body, "candidate", Some(bad_candidate))), None);
    let forged_term = json!({"term": TERM_MAX + 1, "sequence": 1, "checksum": "ab".repeat(20)});
    assert_eq!(VoteRequest::decode(&edited(&body, "accepted", Some(forged_term))), None);
    assert_eq!(VoteRequest::decode(b"[7]"), None, "a list has no fields");
    assert_eq!(VoteRequest::decode(b"{\"term\": 7"), None, "not JSON");
}

#[test]
fn unknown_fields_are_ignored_and_a_wrong_pre_is_no_pre() {
    let body = VoteRequest { term: 7, candidate: member(1), accepted: accepted(6, 12), pre: false }.encode();
    let with_more = edited(&edited(&body, "future", Some(json!({"x": 1}))), "pre", Some(json!(1)));
    let request = VoteRequest::decode(&with_more).expect("unknown fields are ignored");
    assert!(!request.pre, "only the JSON true is a pre-vote");
}

#[test]
fn a_key_given_twice_counts_the_last_time() {
    let body = br#"{"term": 1, "ok": true, "term": 2}"#;
    assert_eq!(BeatAnswer::decode(body).map(|a| a.term), Some(2));
}

#[test]
fn a_vote_answer_round_trips_and_takes_wrong_fields_as_not_said() {
    let answer = VoteAnswer {
        term: 7,
        voter: Some(member(2).id),
        address: member(2).address,
        accepted: Some(accepted(6, 12)),
        granted: false,
        why: Some("this node voted for another candidate in term 7".into()),
        pre: true,
    };
    let old = json!({
        "term": 7, "voter": member(2).id, "address": member(2).address, "accepted": accepted(6, 12).to_json(),
        "granted": false, "why": "this node voted for another candidate in term 7", "pre": true,
    });
    assert_eq!(answer.encode(), pretty(&old));
    assert_eq!(VoteAnswer::decode(&answer.encode()), Some(answer));
    let odd = br#"{"term": "7", "voter": "x", "granted": 1, "address": 5, "accepted": {}, "pre": "yes"}"#;
    assert_eq!(VoteAnswer::decode(odd), Some(VoteAnswer::default()));
    assert_eq!(VoteAnswer::decode(b"not json"), None);
}

#[test]
fn a_beat_round_trips_and_needs_its_term_and_coordinator() {
    let beat = Beat {
        term: 3,
        coordinator: member(1),
        cluster: Some("00000000000000cc".into()),
        committed: None,
        sent: Some(json!(1234)),
        leaving: true,
    };
    let old = json!({"term": 3, "coordinator": member(1).to_json(), "cluster": "00000000000000cc",
                     "committed": null, "sent": 1234, "leaving": true});
    assert_eq!(beat.encode(), old.to_string().into_bytes());
    assert_eq!(Beat::decode(&beat.encode()), Some(beat.clone()));
    for field in ["term", "coordinator"] {
        assert_eq!(Beat::decode(&edited(&beat.encode(), field, None)), None, "without {field}");
    }
    // The committed version, the cluster, `sent` and `leaving` may be missing.
    let bare = br#"{"term": 3, "coordinator": {"id": "0000000000000001", "address": "127.0.0.1:8001"}}"#;
    let bare = Beat::decode(bare).expect("a beat needs only its term and coordinator");
    assert_eq!((bare.committed, bare.sent, bare.leaving, bare.cluster), (None, None, false, None));
}

#[test]
fn a_beat_answer_echoes_sent_as_it_came_and_round_trips() {
    let answer = BeatAnswer {
        term: 3,
        ok: true,
        id: Some(member(2).id),
        sent: Some(json!(1.5)),
        accepted: Some(accepted(3, 9)),
        committed: Some(accepted(3, 8)),
    };
    let old = json!({"term": 3, "ok": true, "id": member(2).id, "sent": 1.5,
                     "accepted": accepted(3, 9).to_json(), "committed": accepted(3, 8).to_json()});
    assert_eq!(answer.encode(), pretty(&old));
    let decoded = BeatAnswer::decode(&answer.encode()).expect("decodes");
    assert_eq!(decoded, answer);
    assert_eq!(decoded.sent_ms(), None, "a send time that is not a whole number is none");
    assert_eq!(BeatAnswer::decode(b"5"), Some(BeatAnswer::default()), "a number has no fields");
    // Not said and `null` are echoed alike, as `null` (the fuzz target's round trip found this).
    assert_eq!(BeatAnswer::decode(br#"{"sent": null}"#), Some(BeatAnswer::default()));
}

#[test]
fn an_accept_answer_round_trips_and_junk_says_nothing() {
    let answer = AcceptAnswer { term: 4, accepted: Some(accepted(4, 2)), need: None };
    assert_eq!(answer.encode(), pretty(&json!({"term": 4, "accepted": accepted(4, 2).to_json()})));
    assert_eq!(AcceptAnswer::decode(&answer.encode()), answer);
    assert_eq!(AcceptAnswer::decode(b""), AcceptAnswer::default(), "a lost push");
    let refusal = AcceptRefusal { error: "a version of an older term", term: 5 };
    assert_eq!(refusal.encode(), pretty(&json!({"error": "a version of an older term", "term": 5})));
    assert_eq!(AcceptAnswer::decode(&refusal.encode()), AcceptAnswer { term: 5, accepted: None, need: None });
    let lacks = ChangeRefusal { accepted: None, error: "no base".into(), need: "copy", term: 6 };
    assert_eq!(lacks.encode(), pretty(&json!({"error": "no base", "need": "copy", "term": 6})));
    let decoded = AcceptAnswer::decode(&lacks.encode());
    assert_eq!(decoded, AcceptAnswer { term: 6, accepted: None, need: Some("copy".into()) });
    // A voter says what it holds: the coordinator may send it the changes since.
    let lacks = ChangeRefusal { accepted: Some(accepted(6, 3)), ..lacks };
    let decoded = AcceptAnswer::decode(&lacks.encode());
    assert_eq!(decoded, AcceptAnswer { term: 6, accepted: Some(accepted(6, 3)), need: Some("copy".into()) });
}

#[test]
fn a_change_pushed_to_a_voter_round_trips_and_is_told_from_a_whole_copy() {
    use crate::core::change::Change;
    use crate::core::lineage::Lineage;
    use crate::core::roster::{Coordination, Member};
    let version = |sequence| Version { sequence, checksum: Checksum::of(&crate::core::value::Value::default()) };
    let change =
        Change { base: version(4), version: version(5), patch: br#"[{"op":"add","path":"/a","value":1}]"#[..].into() };
    let member = Member { id: "00000000000000aa".into(), address: "127.0.0.1:1".into() };
    let coordination =
        Coordination { cluster: "00000000000000cc".into(), term: 3, voters: vec![member], removed: vec![] };
    let lineage = Lineage::of(version(4)).extended(version(5));
    let body = AcceptChange::encode(&change, Some(&coordination), &lineage);
    assert!(AcceptChange::is_change(&body) && !AcceptChange::is_change(br#"{"data":{}}"#));
    let decoded = AcceptChange::decode(&body).expect("decodes");
    assert_eq!(
        decoded,
        AcceptChange { change: change.clone(), coordination: Some(coordination), lineage: lineage.clone() }
    );
    let local = AcceptChange::encode(&change, None, &lineage);
    assert_eq!(AcceptChange::decode(&local).expect("decodes").coordination, None, "local writes: none");
    let junk = br#"{"change":{"base":1},"coordination":{},"lineage":{}}"#;
    assert!(AcceptChange::decode(junk).is_err());
}

#[test]
fn gossip_round_trips_and_only_a_list_is_gossip() {
    let body = GossipEntry::encode_list("127.0.0.1:1", Some("00000000000000aa"), ["127.0.0.1:2"].into_iter());
    let old = json!([{"address": "127.0.0.1:1", "id": "00000000000000aa"}, {"address": "127.0.0.1:2"}]);
    assert_eq!(body, serde_json::to_vec(&old).expect("a value"));
    let local = GossipEntry::encode_list("127.0.0.1:1", None, std::iter::empty());
    assert_eq!(local, br#"[{"address":"127.0.0.1:1","id":null}]"#);
    let entries = GossipEntry::decode_list(&body).expect("a list");
    assert_eq!(entries[0], GossipEntry { address: Some("127.0.0.1:1".into()), id: Some("00000000000000aa".into()) });
    assert_eq!(entries[1], GossipEntry { address: Some("127.0.0.1:2".into()), id: None });
    assert_eq!(GossipEntry::decode_list(br#"[5, {"address": 7}]"#), Some(vec![GossipEntry::default(); 2]));
    assert_eq!(GossipEntry::decode_list(br#"{"address": "127.0.0.1:2"}"#), None);
}

#[test]
fn a_peer_state_gives_the_peers_it_reaches_and_whether_it_is_committed() {
    let body = json!({
        "me": "127.0.0.1:2", "id": "anything", "version": {"sequence": 3, "checksum": "ab".repeat(20)},
        "committed": "no", "role": "follower",
        "cluster": [{"address": "127.0.0.1:3", "reachable": true}, {"address": "127.0.0.1:4", "reachable": 1}, 5],
    });
    let state = PeerState::decode(body.to_string().as_bytes()).expect("decodes");
    assert_eq!(state.reached().collect::<Vec<_>>(), ["127.0.0.1:3"]);
    assert!(state.is_committed(), "only false says it is not");
    assert_eq!(state.id.as_deref(), Some("anything"), "the id is checked where it is kept");
    assert_eq!(state.version.map(|v| v.sequence), Some(3));
    let uncommitted = PeerState::decode(br#"{"committed": false, "cluster": {}}"#).expect("decodes");
    assert!(!uncommitted.is_committed());
    assert_eq!(uncommitted.reached().count(), 0);
}

#[test]
fn the_small_objects_decode_as_strictly_as_before() {
    let v = accepted(2, 5);
    assert_eq!(super::accepted(&v.to_json()), Some(v));
    assert_eq!(version(&v.version.to_json()), Some(v.version));
    assert_eq!(version(&json!([5, "ab"])), None, "a list is no version");
    assert_eq!(super::member(&json!({"id": "00000000000000aa", "address": ""})), None, "an empty address");
    let coordination =
        json!({"cluster": "00000000000000cc", "term": 1, "voters": [member(2).to_json(), member(1).to_json()]});
    let decoded = super::coordination(&coordination).expect("decodes");
    assert_eq!(decoded.voters, vec![member(1), member(2)], "sorted");
    assert_eq!(decoded.removed, Vec::<String>::new(), "removed may be missing");
    let mut with_null = coordination.clone();
    with_null["removed"] = Value::Null;
    assert_eq!(super::coordination(&with_null), None, "removed, when given, is a list");
    assert_eq!(lineage_fields(&json!({"from": 4, "ids": "01"})), Some((4, "01".into())));
    assert_eq!(
        copy_answer(b"{\n  \"checksum\": \"abababababababababababababababababababab\",\n  \"sequence\": 5\n}\n"),
        Some(v.version)
    );
}

#[test]
fn peer_problems_read_as_they_always_did() {
    assert_eq!(PeerProblem::Unreachable("connection refused".into()).to_string(), "unreachable: connection refused");
    assert_eq!(
        PeerProblem::RefusesKey.to_string(),
        "it refuses this node's key (401): give every node the same --cluster-key-file (or, without one, the same \
         --token-file)"
    );
    assert_eq!(PeerProblem::Mismatch("x belongs to cluster y".into()).to_string(), "x belongs to cluster y");
}

#[test]
fn node_json_decodes_as_strictly_as_before() {
    let read = |text: &str| NodeState::from_bytes(text.as_bytes());
    let ok = r#"{"id": "00000000000000aa", "term": 1, "vote": null, "future": [1]}"#;
    assert_eq!(read(ok).map(|s| s.term), Some(1), "unknown fields are ignored");
    for bad in [
        r#"{"id": "00000000000000aa", "term": 1}"#,
        r#"{"id": "00000000000000aa", "term": 1, "vote": "x"}"#,
        r#"{"id": "00000000000000aa", "term": -1, "vote": null}"#,
        r#"{"id": "00000000000000aa", "term": 1, "vote": null, "committed": null}"#,
        r#"{"id": "00000000000000aa", "term": 1, "vote": null, "cluster": 5}"#,
        r#"["00000000000000aa", 1, null]"#,
    ] {
        assert_eq!(read(bad), None, "{bad}");
    }
    let no_cluster = read(r#"{"id": "00000000000000aa", "term": 1, "vote": null, "cluster": null}"#);
    assert_eq!(no_cluster.map(|s| s.cluster), Some(None));
}

#[test]
fn an_own_commit_is_superseded_only_when_it_says_true() {
    assert!(own_commit_superseded(&json!({"superseded": true})));
    assert!(!own_commit_superseded(&json!({"superseded": "true"})));
    assert!(!own_commit_superseded(&json!({})));
}

/// Ticks `node` and answers each request it sends a peer with `answer` (`None`: no answer yet).
fn sync_round(
    node: &mut crate::core::Node,
    now: crate::core::clock::Now,
    answer: impl Fn(&crate::core::PeerRequest) -> Option<Result<crate::core::PeerReply, String>>,
) {
    node.tick(now);
    let requests: Vec<crate::core::PeerRequest> = node
        .drain_effects()
        .filter_map(|e| match e {
            crate::core::Effect::Peer(request) => Some(request),
            _ => None,
        })
        .collect();
    for request in requests {
        if let Some(result) = answer(&request) {
            node.peer_reply(now, request.id, result);
        }
    }
}

#[test]
fn only_an_answer_of_401_marks_a_peer_as_refusing_the_key_not_401_in_a_transport_error() {
    use crate::core::{CoreConfig, Node, PeerReply, Start};
    let mut now = crate::core::clock::Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
    let config = CoreConfig { seeds: vec!["10.0.0.2:8001".into()], ..CoreConfig::single("10.0.0.1:8001") };
    let mut node = Node::new(config, now, Start::empty());
    // The link is down, and the transport's words happen to hold "401".
    let down = "unreachable; next attempt in 4010 ms";
    sync_round(&mut node, now, |_| Some(Err(down.to_string())));
    assert_eq!(node.peers()[0].problem, Some(PeerProblem::Unreachable(down.to_string())));
    // At the next round only its state read is answered: it is reachable again (a peer that
    // refused the key would stay not usable until a change goes through).
    now.mono_ms += crate::limits::SYNC_PERIOD_MS + crate::limits::SYNC_JITTER_MS;
    now.unix_ms += crate::limits::SYNC_PERIOD_MS + crate::limits::SYNC_JITTER_MS;
    let state = |r: &crate::core::PeerRequest| {
        (r.method == crate::http::Method::Get && r.path == "/state")
            .then(|| Ok(PeerReply { status: 200, headers: Vec::new(), body: b"{}".to_vec() }))
    };
    sync_round(&mut node, now, state);
    let peer = &node.peers()[0];
    assert!(peer.reachable && peer.problem.is_none(), "{:?}", peer.problem);
}
