//! What no peer sends, refused at the peer endpoints: a browser's marks, and terms out of bounds.
//!
//! A page in an operator's browser may send a `GET`, a `HEAD`, or a `POST` of `text/plain`, form
//! or multipart data to any address, without asking the server first (a CORS preflight); it just
//! cannot read the answer. Without a cluster key, one such `POST /cluster/beat` with a huge term
//! used to stop every write of the cluster. Nodes never send an `Origin` header and always send
//! their bodies as `application/json`, so the peer endpoints (every `/cluster/*` endpoint, and
//! `PUT /state` and `PUT /copy`, which change what a node holds) refuse a request that carries an
//! `Origin` (403), and a `/cluster/*` `POST` of any other content type (415). `GET /state` and
//! `GET /copy` stay open to a page of this node's own origin (the page at `/ui` reads `/state`);
//! `http::host` keeps pages of other names from reading them through DNS rebinding.
//!
//! Terms from a peer are bounded (`TERM_MAX`): no arithmetic on a term overflows. A node that
//! belongs to a cluster also refuses a term more than `TERM_JUMP_MAX` beyond its own, and says so
//! once in the log.

use log::{debug, warn};

use super::Shared;
use super::coordinated::Coordinated;
use crate::http::{Headers, Method, Response};
use crate::limits::{TERM_JUMP_MAX, TERM_MAX};

/// `None` when the request may reach the endpoint; else the 403 or 415 that refuses it.
pub(super) fn browser_refusal(resource: &str, method: Method, headers: &Headers) -> Option<Response> {
    let peer_only = match resource {
        "cluster" => true,
        "state" | "copy" => method == Method::Put,
        _ => false,
    };
    if !peer_only {
        return None;
    }
    if headers.origin.is_some() {
        let why = "the peer endpoints take no request from a web page (this one carries Origin): nodes never send one";
        return Some(Response::error(403, why));
    }
    if resource == "cluster" && method == Method::Post && !is_json(headers.content_type) {
        let why = "a peer's POST is Content-Type: application/json (a web page may send any other type unasked)";
        return Some(Response::error(415, why));
    }
    None
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: Option<&str>) -> bool {
    let media = content_type.map_or("", |t| t.split(';').next().unwrap_or("").trim());
    media.eq_ignore_ascii_case("application/json")
}

impl Coordinated {
    /// `None` when this node may take up `term`, which came with `what` (`"a beat from
    /// 10.0.0.2:8001"`); else why not. The first refusal is logged as a warning, later ones only at
    /// debug level, so a flood of forged messages cannot flood the log.
    pub(super) fn term_refusal(&mut self, node: &Shared, term: u64, what: &str) -> Option<String> {
        let has_cluster = self.coordination(node).is_some();
        let consensus = &mut self.consensus;
        let ours = consensus.state().term;
        let why = if term > TERM_MAX {
            format!("term {term} is above the highest a cluster can reach ({TERM_MAX})")
        } else if has_cluster && term > ours.saturating_add(TERM_JUMP_MAX) {
            format!("term {term} is more than {TERM_JUMP_MAX} terms beyond this node's ({ours})")
        } else {
            return None;
        };
        if consensus.refuse_term() == 0 {
            warn!(
                "refused {what}: {why}; an honest cluster never does this, so a message was forged or corrupted \
                 (set --cluster-key-file so that only nodes can speak to the peer endpoints); further refusals are \
                 logged at debug level"
            );
        } else {
            debug!("refused {what}: {why}");
        }
        Some(why)
    }
}

/// The term after `term`, unless it would pass `TERM_MAX` (only a term on disk from before the
/// bound could be there).
pub(super) fn next_term(term: u64) -> Option<u64> {
    term.checked_add(1).filter(|next| *next <= TERM_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Node;

    fn headers<'a>(origin: Option<&'a str>, content_type: Option<&'a str>) -> Headers<'a> {
        Headers { origin, content_type, ..Headers::default() }
    }

    #[test]
    fn a_browser_request_to_a_peer_endpoint_is_refused() {
        let status =
            |resource: &str, method: Method, h: Headers| browser_refusal(resource, method, &h).map(|r| r.status);
        let json = Some("application/json");
        assert_eq!(status("cluster", Method::Post, headers(None, json)), None);
        assert_eq!(status("cluster", Method::Post, headers(None, Some("Application/JSON; charset=utf-8"))), None);
        assert_eq!(status("cluster", Method::Post, headers(None, Some("text/plain"))), Some(415));
        assert_eq!(
            status("cluster", Method::Post, headers(None, Some("application/x-www-form-urlencoded"))),
            Some(415)
        );
        assert_eq!(status("cluster", Method::Post, headers(None, None)), Some(415));
        assert_eq!(status("cluster", Method::Post, headers(Some("https://evil.example"), json)), Some(403));
        assert_eq!(status("cluster", Method::Get, headers(Some("null"), None)), Some(403));
        assert_eq!(status("state", Method::Put, headers(Some("http://127.0.0.1:8001"), json)), Some(403));
        assert_eq!(status("copy", Method::Put, headers(Some("http://x"), None)), Some(403));
        assert_eq!(
            status("copy", Method::Put, headers(None, Some("application/x-www-form-urlencoded"))),
            None,
            "curl restores"
        );
        assert_eq!(
            status("state", Method::Get, headers(Some("http://127.0.0.1:8001"), None)),
            None,
            "the page reads it"
        );
        assert_eq!(status("data", Method::Put, headers(Some("http://x"), None)), None);
    }

    /// A node with coordinated writes at term 0: a learner that joins through a seed, or the founder
    /// of a cluster of one.
    fn node(founding: bool) -> (Node, crate::core::clock::Now) {
        use crate::core::{CoordinatedConfig, CoreConfig, Start, node_state::NodeState};
        let now = crate::core::clock::Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
        let cluster = founding.then(|| "00000000000000c1".to_string());
        let state = NodeState { cluster: cluster.clone(), ..NodeState::new("00000000000000a1".into()) };
        let coordinated = CoordinatedConfig { state: state.clone(), founding: cluster, force_new_cluster: false };
        let seeds = if founding { Vec::new() } else { vec!["127.0.0.2:1".to_string()] };
        let single = CoreConfig::single("127.0.0.1:1");
        let config = CoreConfig { seeds, identity: state, coordinated: Some(coordinated), ..single };
        (Node::new(config, now, Start::empty()), now)
    }

    fn beat(node: &mut Node, now: crate::core::clock::Now, term: u64) -> u16 {
        let body = serde_json::json!({
            "term": term, "coordinator": {"id": "00000000000000b2", "address": "127.0.0.2:1"}, "committed": null,
        })
        .to_string();
        let headers = Headers { content_type: Some("application/json"), ..Headers::default() };
        let request = crate::core::Request {
            method: Method::Post,
            target: "/cluster/beat",
            headers,
            body: body.as_bytes(),
            client: None,
            grant: None,
        };
        match node.handle(now, 1, &request) {
            crate::core::Reply::Now(response) => response.status,
            other => panic!("a beat is answered at once: {other:?}"),
        }
    }

    #[test]
    fn a_new_learner_takes_the_clusters_term_however_high() {
        let (mut learner, now) = node(false);
        assert_eq!(beat(&mut learner, now, TERM_MAX + 1), 409, "never above the bound");
        assert_eq!(beat(&mut learner, now, 5 * TERM_JUMP_MAX), 200);
        assert_eq!(learner.consensus_status(now).unwrap().term, 5 * TERM_JUMP_MAX);
    }

    #[test]
    fn a_member_refuses_a_term_far_beyond_its_own() {
        let (mut founder, now) = node(true);
        let term = founder.consensus_status(now).unwrap().term;
        assert_eq!(beat(&mut founder, now, term + TERM_JUMP_MAX + 1), 409);
        assert_eq!(beat(&mut founder, now, u64::MAX), 409);
        assert_eq!(founder.consensus_status(now).unwrap().term, term, "no refused term was taken up");
        assert_eq!(beat(&mut founder, now, term + TERM_JUMP_MAX), 200, "a jump within the bound is taken");
        assert_eq!(founder.consensus_status(now).unwrap().term, term + TERM_JUMP_MAX);
    }

    #[test]
    fn the_next_term_stops_at_the_bound() {
        assert_eq!(next_term(1), Some(2));
        assert_eq!(next_term(TERM_MAX - 1), Some(TERM_MAX));
        assert_eq!(next_term(TERM_MAX), None);
        assert_eq!(next_term(u64::MAX), None);
    }
}
