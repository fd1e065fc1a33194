//! What a node says about itself: `GET /` (who it is, its store, its cluster and who coordinates)
//! and `GET /metrics` (the Prometheus text format).

use super::coordinated::Coordinated;
use super::{Gauges, Shared, json_response, method_not_allowed, metrics};
use crate::http::{Method, Response};

impl Shared {
    /// `GET /`: what this node is, as JSON.
    pub(super) fn info(&self, co: Option<&Coordinated>, method: Method) -> Response {
        if !matches!(method, Method::Get | Method::Head) {
            return method_not_allowed("GET, HEAD");
        }
        let version = self.store.version();
        let body = serde_json::json!({
            "name": "lighthouse",
            "version": env!("CARGO_PKG_VERSION"),
            "address": self.config.address,
            "store": version.to_json(),
            "active": self.is_active(co),
            "lock": self.lock.as_ref().map(|l| l.name()),
            // What this node knows of its peers, as `/state` has it: with a cluster key `/state`
            // is for nodes only, and the page and operators read this instead.
            "cluster": {
                "peers": self.cluster.peers.len(),
                "reachable": self.cluster.reachable(),
                "nodes": self.peer_entries(co),
            },
            "writes": self.writes_mode(),
            "role": self.own_role(co).as_str(),
            "coordinator": co.and_then(|co| co.consensus.coordinator()).map(|c| c.address.clone()),
            "term": co.map(|co| co.consensus.state().term),
        });
        json_response(200, &body)
    }

    pub(super) fn metrics_response(&self, co: Option<&Coordinated>, now: crate::core::clock::Now) -> Response {
        let gauges = Gauges {
            sequence: self.store.version().sequence,
            store_bytes: self.store.data_len(),
            active: self.is_active(co),
            lock_held: self.lock.is_some(),
            peers: self.cluster.peers.len(),
            peers_reachable: self.cluster.reachable(),
            watchers: self.watches.waiting(),
            role: self.own_role(co),
            term: co.map_or(0, |co| co.consensus.state().term),
            voters: co.map_or(0, |co| co.voters(self).len()),
            voters_reachable: co.map_or(0, |co| co.reachable_voters(self, now)),
        };
        let body = metrics::render(&self.metrics, &gauges);
        Response {
            status: 200,
            headers: crate::http::Bytes::Static(b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            body: crate::http::Bytes::Owned(body.into_bytes()),
            close: false,
        }
    }
}

/// True when an `Accept` header puts HTML first, as a browser navigating to a page does
/// (`text/html,application/xhtml+xml,...`), and does not refuse it with `q=0`.
pub(super) fn prefers_html(accept: &str) -> bool {
    let first = accept.split(',').next().unwrap_or("");
    let mut parts = first.split(';').map(|p| p.replace(' ', ""));
    let media_type = parts.next().unwrap_or_default();
    let refused =
        parts.any(|p| p.eq_ignore_ascii_case("q=0") || p.starts_with("q=0.0") && p.trim_end_matches('0') == "q=0.");
    media_type.eq_ignore_ascii_case("text/html") && !refused
}

#[cfg(test)]
mod tests {
    use super::prefers_html;

    #[test]
    fn browsers_prefer_html_and_curl_does_not() {
        assert!(prefers_html("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
        assert!(prefers_html("TEXT/HTML"));
        assert!(prefers_html("text/html;q=0.5"));
        for other in ["*/*", "application/json, text/html", "text/html;q=0, application/json", "text/html; q=0.000"] {
            assert!(!prefers_html(other), "{other}");
        }
    }
}
