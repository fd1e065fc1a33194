//! `/data[/path]`: the store's reads (answers, long-polls, event streams) and its one-request
//! writes. A write (`PUT` a value, `DELETE` it, `PATCH` it with a merge patch or a JSON Patch) is
//! parsed and checked here, then carried out by `write.rs` as a transaction of its own.

use super::coordinated::Coordinated;
use super::store::{Format, ReadError, etag_matches};
use super::write::{Edit, Write};
use super::{Reply, Request, Shared, Ticket, method_not_allowed, watch};
use crate::core::clock::Now;
use crate::core::path::{self, Query};
use crate::core::value::Value;
use crate::http::{Method, Response};
use crate::limits::WRITE_NAME_BYTES_MAX;

/// The methods `/data` answers.
pub(super) const DATA_METHODS: &str = "GET, HEAD, PUT, PATCH, DELETE";

impl Shared {
    /// `/data[/path]`: reads, long-polls and event streams; `PUT`, `PATCH` and `DELETE` are
    /// one-request writes.
    pub(super) fn data(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        request: &Request,
        raw_path: &str,
        query: Query,
    ) -> Reply {
        match request.method {
            Method::Get | Method::Head => {}
            Method::Put | Method::Patch | Method::Delete => return self.data_write(co, now, ticket, request, raw_path),
            _ => return Reply::Now(method_not_allowed(DATA_METHODS)),
        }
        let co = co.as_deref();
        if !self.is_active(co) && !self.serves_unconfirmed(co) {
            return Reply::Now(self.inactive(co));
        }
        match self.read(now, ticket, request, raw_path, query) {
            Reply::Now(response) => Reply::Now(self.mark_read(co, response)),
            Reply::Stream(response) => Reply::Stream(self.mark_read(co, response)),
            Reply::Later => Reply::Later,
        }
    }

    /// A read, a long-poll or an event stream of a node that serves.
    fn read(&mut self, now: Now, ticket: Ticket, request: &Request, raw_path: &str, query: Query) -> Reply {
        let format = Format::of(&query);
        let wait_ms = match query.wait.map(watch::parse_wait).transpose() {
            Ok(wait_ms) => wait_ms,
            Err(refused) => return Reply::Now(refused),
        };
        if let Some(min_version) = query.min_version {
            let Ok(sequence) = min_version.parse::<u64>() else {
                return Reply::Now(Response::error(400, "min-version must be a sequence number"));
            };
            if self.store.version().sequence < sequence {
                return self.wait_for_version(now, ticket, raw_path, format, sequence, wait_ms);
            }
        }
        let headers = request.headers;
        if headers.accept.is_some_and(|a| a.contains("text/event-stream")) && request.method == Method::Get {
            return self.event_stream(now, ticket, raw_path, format, headers.last_event_id, query.changes);
        }
        if query.changes && (wait_ms.is_none() || format != Format::Json) {
            let message = "changes are sent on event streams (Accept: text/event-stream) and long-polls \
                           (?wait=S with If-None-Match), as JSON Patches of the JSON subtree";
            return Reply::Now(Response::error(400, message));
        }
        match self.store.read(raw_path, format) {
            Ok(rendered) => match (wait_ms, headers.if_none_match) {
                (Some(wait_ms), Some(tags)) if etag_matches(tags, &rendered.etag) => {
                    self.long_poll(now, ticket, raw_path, format, &rendered.etag, wait_ms, query.changes)
                }
                _ => Reply::Now(rendered.response(headers.if_none_match)),
            },
            // Waiting on a path that does not exist yet: answered once it does (or 404 at the end).
            Err(ReadError::NotFound) if let Some(wait_ms) = wait_ms => {
                self.long_poll(now, ticket, raw_path, format, "", wait_ms, query.changes)
            }
            Err(e) => Reply::Now(e.response(path::split_target(request.target).0)),
        }
    }

    /// `PUT`, `PATCH` or `DELETE` on `/data[/path]`: checked here, then forwarded to the
    /// coordinator or carried out.
    fn data_write(
        &mut self,
        mut co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        request: &Request,
        raw_path: &str,
    ) -> Reply {
        if self.serves_unconfirmed(co.as_deref()) {
            return Reply::Now(self.unconfirmed_refusal());
        }
        if !self.is_active(co.as_deref()) {
            return Reply::Now(self.inactive(co.as_deref()));
        }
        let write = match parse_write(request, raw_path) {
            Ok(write) => write,
            Err(refused) => {
                return Reply::Now(refused.with_header("X-Lighthouse-Version", &self.store.version().to_header()));
            }
        };
        if let Some(co) = co.as_deref_mut()
            && co.must_forward("data", request.method)
        {
            return co.forward(self, now, ticket, request, true);
        }
        if let Some(refused) = self.writes_refused(request.method) {
            return Reply::Now(refused);
        }
        self.write(co, now, ticket, write)
    }
}

/// A one-request write as the request gives it, or the answer refusing it.
fn parse_write(request: &Request, raw_path: &str) -> Result<Write, Response> {
    let path = if raw_path.is_empty() {
        Vec::new()
    } else {
        path::segments(raw_path).map_err(|e| Response::error(e.status(), e.message()))?
    };
    let path: Vec<String> = path.into_iter().map(|s| s.into_owned()).collect();
    let body = || Value::parse(request.body).map_err(|e| Response::error(400, &format!("the body is not JSON: {e}")));
    let media_type = request.headers.content_type.and_then(|t| t.split(';').next()).map(str::trim);
    let media_type = media_type.map(str::to_ascii_lowercase);
    let edit = match request.method {
        Method::Put if media_type.as_deref().is_some_and(|t| t.ends_with("patch+json")) => {
            let why = "a patch is sent with PATCH, not PUT (which would store the patch itself)";
            return Err(Response::error(415, why));
        }
        Method::Put => Edit::Put(body()?),
        Method::Delete => Edit::Delete,
        _ => match media_type.as_deref() {
            Some("application/merge-patch+json") => Edit::Merge(body()?),
            Some("application/json-patch+json") => Edit::Patch(body()?),
            _ => {
                return Err(Response::error(
                    415,
                    "PATCH takes Content-Type: application/merge-patch+json (RFC 7396) or \
                         application/json-patch+json (RFC 6902)",
                )
                .with_header("Accept-Patch", "application/merge-patch+json, application/json-patch+json"));
            }
        },
    };
    let mut name = format!("{} /data{raw_path}", request.method.as_str());
    if name.len() > WRITE_NAME_BYTES_MAX {
        let cut = (0..=WRITE_NAME_BYTES_MAX).rev().find(|i| name.is_char_boundary(*i)).unwrap_or(0);
        name.truncate(cut);
        name.push_str("...");
    }
    let headers = request.headers;
    Ok(Write {
        edit,
        path,
        name,
        if_match: headers.if_match.map(str::to_string),
        if_none_match: headers.if_none_match.map(str::to_string),
        client: request.client,
        body_len: request.body.len(),
        grant: request.grant.cloned(),
    })
}

/// `If-Match` holds `*` or a list of strong tags; a tag of `?raw` (`"X.raw"`) names the same
/// content as `"X"`.
pub(super) fn if_match(tags: &str, etag: &str) -> bool {
    tags.split(',').map(str::trim).any(|tag| tag == "*" || tag == etag || tag.replace(".raw\"", "\"") == etag)
}
