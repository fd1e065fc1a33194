//! Routing: a request to its resource. Every request passes the tokens (`auth.rs`), the guards of
//! the peer endpoints (`guard.rs`) and, from a peer, the boundary of its cluster (`peering.rs`),
//! then goes to the resource that owns it.

use super::coordinated::Coordinated;
use super::path::{self, Query};
use super::{Reply, Request, Shared, Ticket, auth, guard, info, json_response, method_not_allowed};
use crate::core::clock::Now;
use crate::http::{Method, Response};

impl Shared {
    /// Handles one request. `ticket` names it if the answer has to wait.
    pub(super) fn handle(
        &mut self,
        mut co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        request: &Request,
    ) -> Reply {
        self.handling(now);
        if request.method == Method::Unknown {
            return Reply::Now(Response::error(501, "method not implemented"));
        }
        let (raw_path, raw_query) = path::split_target(request.target);
        let Some((resource, below)) = split_resource(raw_path) else {
            return Reply::Now(Response::error(400, path::PathError::NotAbsolute.message()));
        };
        // Before anything else, a preflight included: what a web page sends never reaches a peer
        // endpoint.
        if let Some(refused) = guard::browser_refusal(resource, request.method, &request.headers) {
            return Reply::Now(refused);
        }
        if request.method == Method::Options {
            // A browser's preflight carries no token; the shell adds what CORS allows.
            let allow = match resource {
                "data" => "GET, HEAD, PUT, PATCH, DELETE, OPTIONS",
                "lock" | "update" | "state" => "GET, HEAD, PUT, DELETE, OPTIONS",
                "copy" => "GET, HEAD, PUT, OPTIONS",
                _ => "GET, HEAD, OPTIONS",
            };
            return Reply::Now(Response::empty(204).with_header("Allow", allow));
        }
        let get = matches!(request.method, Method::Get | Method::Head);
        if resource.is_empty() && below.is_empty() && get && request.headers.accept.is_some_and(info::prefers_html) {
            // A browser opening the node is sent to the page (which asks for a token if one is needed).
            return Reply::Now(Response::empty(302).with_header("Location", "/ui"));
        }
        if let Some(refused) = path::unknown_parameter(resource, raw_query) {
            return Reply::Now(Response::error(400, &refused));
        }
        let query = Query::parse(raw_query);
        let forwarded = request.headers.forwarded.is_some();
        let url_token = auth::url_token(request.method, request.headers.authorization, query.access_token);
        let authorization = request.headers.authorization.or(url_token.as_deref());
        let grant = self
            .config
            .access
            .check_forwarded(resource, request.method, authorization, forwarded)
            .and_then(|granted| match forwarded {
                true => auth::Access::forwarded_grant(granted, request.headers.grant),
                false => Ok(granted),
            })
            .and_then(|grant| match grant.refusal(resource, request.method, below) {
                Some(refused) => Err(refused),
                None => Ok(grant),
            });
        let grant = match grant {
            Ok(grant) => grant,
            Err(refused) => return Reply::Now(refused),
        };
        let request = &Request { grant: Some(&grant), ..*request };
        if request.headers.peer_writes.is_some() {
            // A peer's request: refused whole when it is of another cluster or mode, and answered
            // with this node's cluster and mode.
            let reply = match self.check_peer_request(co.as_deref_mut(), &request.headers) {
                Some(refused) => return Reply::Now(refused),
                None => self.route(co, now, ticket, request, resource, below, query),
            };
            return match reply {
                Reply::Now(response) => Reply::Now(response.with_extra_lines(&self.envelope())),
                other => other,
            };
        }
        self.route(co, now, ticket, request, resource, below, query)
    }

    /// Hands a request to its resource (with coordinated mode's state, which the resources of
    /// coordinated writes take: hence one argument more than clippy likes).
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        mut co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        request: &Request,
        resource: &str,
        below: &str,
        query: Query,
    ) -> Reply {
        let raw_path = path::split_target(request.target).0;
        // A forwarded request's client is the one the forwarding node names, for the audit lines.
        let forwarded_client = request.headers.forwarded.and_then(|c| c.parse().ok());
        let request = &Request { client: forwarded_client.or(request.client), ..*request };
        if let Some(co) = co.as_deref_mut()
            && let Some(parked) = co.wait_for_lease(self, now, ticket, request, resource)
        {
            return parked;
        }
        let response = match resource {
            "" if below.is_empty() => self.info(co.as_deref(), request.method),
            "ui" if below.is_empty() => get_only(request.method, crate::ui::page),
            "data" => return self.data(co, now, ticket, request, below, query),
            "health" if below.is_empty() => {
                get_only(request.method, || json_response(200, &serde_json::json!({"status": "ok"})))
            }
            "ready" if below.is_empty() => get_only(request.method, || self.ready(co.as_deref())),
            "metrics" if below.is_empty() => get_only(request.method, || self.metrics_response(co.as_deref(), now)),
            "version" if below.is_empty() => match request.method {
                Method::Get | Method::Head => Response::json(200, self.store.version().to_pretty_line().into_bytes()),
                _ => method_not_allowed("GET, HEAD"),
            },
            "lock" | "update" if self.serves_unconfirmed(co.as_deref()) => self.unconfirmed_refusal(),
            "lock" | "update" if !self.is_active(co.as_deref()) => self.inactive(co.as_deref()),
            "lock" | "update"
                if let Some(co) = co.as_deref_mut()
                    && co.must_forward(resource, request.method) =>
            {
                let commit = resource == "lock" && request.method == Method::Put && below.len() > 1;
                return co.forward(self, now, ticket, request, commit);
            }
            "lock" | "update" if let Some(refused) = self.writes_refused(request.method) => refused,
            "lock" => return self.lock_request(co, now, ticket, request, below, query),
            "update" => self.update_request(now, request, below, query),
            "copy" if below.is_empty() => return self.copy_request(co, now, ticket, request),
            "copy" if below == "/change" => return self.change_request(co.as_deref(), ticket, request),
            "state" if below.is_empty() => self.state_request(co.as_deref(), now, request.method, request.body),
            // A removal is a commit: unanswered once sent, its outcome is unknown (504).
            "state"
                if request.method == Method::Delete
                    && let Some(co) = co.as_deref_mut()
                    && co.must_forward(resource, request.method) =>
            {
                return co.forward(self, now, ticket, request, true);
            }
            "state"
                if request.method == Method::Delete
                    && let Some(co) = co.as_deref_mut() =>
            {
                let address = path::decode(below.trim_matches('/')).unwrap_or_default().into_owned();
                return co.remove_voter(self, now, ticket, &address);
            }
            "cluster" if let Some(co) = co => {
                return co.cluster_request(self, now, ticket, request, below);
            }
            _ => Response::error(404, &format!("no such resource: {raw_path}")),
        };
        Reply::Now(response)
    }
}

/// Answers `GET` and `HEAD` with `answer`, anything else with 405.
fn get_only(method: Method, answer: impl FnOnce() -> Response) -> Response {
    if matches!(method, Method::Get | Method::Head) { answer() } else { method_not_allowed("GET, HEAD") }
}

/// Splits a raw path into its first segment (the resource, not decoded: resource names are
/// plain words) and the raw rest: `/data/a/b` gives `data` and `/a/b`; `/` gives `` and ``.
fn split_resource(raw_path: &str) -> Option<(&str, &str)> {
    let below_root = raw_path.strip_prefix('/')?;
    let (resource, rest) = match below_root.find('/') {
        Some(i) => below_root.split_at(i),
        None => (below_root, ""),
    };
    // "/version/" is "/version": one trailing slash is ignored on every path, but "//" is not "/".
    Some((resource, if rest == "/" && !resource.is_empty() { "" } else { rest }))
}
