//! Watching: long-polls (`?wait=S` with `If-None-Match`) and server-sent event streams
//! (`Accept: text/event-stream`) on a subtree of the store.
//!
//! Watchers are grouped by path. Each group remembers the subtree it last saw; when the store
//! changes (a commit, or a copy from a peer), each group compares its subtree with the new one,
//! which costs a pointer comparison for every part that did not change. Only groups whose subtree
//! did change wake their watchers, so a change elsewhere in the store wakes nobody, and a waiting
//! client costs no CPU at all. Answers are rendered once per version and path and shared by every
//! watcher of that path.
//!
//! A stream may ask for the changes instead (`?changes`): after the first event, each event is
//! an RFC 6902 JSON Patch from the group's previous subtree to the new one (`value/diff.rs`),
//! computed once per group and change and costing about the change. To resume such a stream from
//! `Last-Event-ID` with a patch, the roots of the last few versions are kept (`Resume`) while
//! streams of changes are open.
//!
//! An event's id is the store's version, `SEQUENCE-CHECKSUM` as `X-Lighthouse-Version` gives it:
//! after a restore, two histories may share a sequence, and a client that resumed by the sequence
//! alone would be told it is up to date with a store it never saw. An id of the older form, a
//! sequence alone, is still taken: it starts the stream with the whole subtree.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use log::debug;

use super::coordinated::Coordinated;
use super::{Effect, Format, ReadError, Reply, Shared, Ticket};
use crate::core::clock::{Deadline, Now};
use crate::core::path;
use crate::core::value::Value;
use crate::core::version::Version;
use crate::http::{Bytes, Response};
use crate::limits::{MIN_VERSION_WAIT_MS_DEFAULT, STREAM_HEARTBEAT_MS, WAIT_S_MAX, WATCHERS_MAX};

mod kept;

use kept::{Resume, WholeEvent};

/// What a watcher waits for.
#[derive(Debug, Clone)]
enum Kind {
    /// A long-poll: answered once the answer's tag differs from `etag`, or at `deadline_ms` (304).
    /// With `changes`, the answer is the JSON Patch from the content the client holds (the one
    /// with `etag`, the group's subtree when it parked) to the new one.
    Poll { etag: String, deadline_ms: u64, changes: bool },
    /// An event stream: one event per change; `etag` is the last one sent. With `changes`, an
    /// event after the first is a JSON Patch from the subtree of the event before.
    Stream { etag: String, changes: bool },
}

#[derive(Debug, Clone)]
struct Watcher {
    ticket: Ticket,
    format: Format,
    kind: Kind,
}

/// The watchers of one path.
#[derive(Debug)]
struct Group {
    /// The path as first asked for (below `/data`), to render answers with.
    raw_path: String,
    /// The subtree when last looked at (`None`: the path did not exist).
    seen: Option<Value>,
    watchers: Vec<Watcher>,
}

/// A read that waits for the node to hold a sequence (`?min-version=N`).
#[derive(Debug, Clone)]
struct VersionWait {
    ticket: Ticket,
    sequence: u64,
    raw_path: String,
    format: Format,
    deadline: Deadline,
}

#[derive(Debug, Default)]
pub(super) struct Watches {
    /// Reads waiting for a sequence, answered in `wake_version_waiters` or at their deadline.
    versions: Vec<VersionWait>,
    /// Ordered, so that watchers are woken in the same order every time (a simulation replays).
    groups: BTreeMap<Vec<String>, Group>,
    /// Which group each watcher is in.
    by_ticket: HashMap<Ticket, Vec<String>>,
    /// Long-poll deadlines; entries of watchers already gone are skipped when they come up.
    deadlines: BinaryHeap<Reverse<(u64, Ticket)>>,
    streams: usize,
    next_heartbeat: Option<Deadline>,
    /// Streams of changes open, and the versions kept to resume them.
    changes_streams: usize,
    resume: Resume,
    /// The last whole first event sent, for the next stream opened on the same path and version.
    whole: WholeEvent,
}

/// What the watchers of one group share for one change: the subtree before it, and the events
/// made so far (each rendered once, whatever the number of watchers).
struct Change {
    before: Option<Value>,
    patch: Option<Bytes>,
    full: Vec<(Format, Bytes)>,
}

impl Watches {
    pub(super) fn waiting(&self) -> usize {
        self.by_ticket.len() + self.versions.len()
    }

    pub(super) fn next_deadline(&self) -> Option<Deadline> {
        let poll = self.deadlines.peek().map(|Reverse((at, _))| Deadline(*at));
        let version = self.versions.iter().map(|w| w.deadline).min();
        [poll, self.next_heartbeat, version, self.resume.next_deadline()].into_iter().flatten().min()
    }

    /// The deadline of the long-poll with this ticket, if there is one.
    fn poll_deadline(&self, ticket: Ticket) -> Option<u64> {
        let group = self.groups.get(self.by_ticket.get(&ticket)?)?;
        match group.watchers.iter().find(|w| w.ticket == ticket)?.kind {
            Kind::Poll { deadline_ms, .. } => Some(deadline_ms),
            Kind::Stream { .. } => None,
        }
    }

    /// Whether any group has a stream of changes.
    fn has_changes_streams(&self) -> bool {
        self.changes_streams > 0
    }

    fn add(&mut self, key: Vec<String>, raw_path: &str, seen: Option<Value>, watcher: Watcher) {
        if let Kind::Poll { deadline_ms, .. } = watcher.kind {
            self.deadlines.push(Reverse((deadline_ms, watcher.ticket)));
        }
        self.by_ticket.insert(watcher.ticket, key.clone());
        let group = self.groups.entry(key).or_insert_with(|| Group {
            raw_path: raw_path.to_string(),
            seen,
            watchers: Vec::new(),
        });
        group.watchers.push(watcher);
    }

    /// Takes a watcher out; returns it if it was there.
    fn remove(&mut self, ticket: Ticket) -> Option<(Watcher, String)> {
        let key = self.by_ticket.remove(&ticket)?;
        let group = self.groups.get_mut(&key).expect("a watcher's group exists");
        let position = group.watchers.iter().position(|w| w.ticket == ticket).expect("a watcher is in its group");
        let watcher = group.watchers.swap_remove(position);
        let raw_path = group.raw_path.clone();
        if group.watchers.is_empty() {
            self.groups.remove(&key);
        }
        if let Kind::Stream { changes, .. } = watcher.kind {
            self.streams -= 1;
            self.changes_streams -= usize::from(changes);
        }
        Some((watcher, raw_path))
    }
}

impl Shared {
    /// `GET /data/path?wait=S` with `If-None-Match`: answers now if the content already differs,
    /// else parks until it does or the wait ends (with `changes`, answered with the patch).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn long_poll(
        &mut self,
        now: Now,
        ticket: Ticket,
        raw_path: &str,
        format: Format,
        etag: &str,
        wait_ms: u64,
        changes: bool,
    ) -> Reply {
        let Some((key, seen)) = self.watch_key(raw_path) else {
            return Reply::Now(Response::error(400, "bad path"));
        };
        if self.watches.waiting() >= WATCHERS_MAX {
            return Reply::Now(Response::error(503, "too many watchers on this node").with_header("Retry-After", "1"));
        }
        let deadline_ms = now.mono_ms + wait_ms;
        let watcher = Watcher { ticket, format, kind: Kind::Poll { etag: etag.to_string(), deadline_ms, changes } };
        self.watches.add(key, raw_path, seen, watcher);
        Reply::Later
    }

    /// `GET /data/path` with `Accept: text/event-stream`: the current subtree as the first event
    /// (unless `Last-Event-ID` says the client has this version already), then one per change:
    /// the subtree, or with `changes` a patch (and a first event that is a patch from
    /// `Last-Event-ID`'s version when that version is still kept).
    pub(super) fn event_stream(
        &mut self,
        now: Now,
        ticket: Ticket,
        raw_path: &str,
        format: Format,
        last_event_id: Option<&str>,
        changes: bool,
    ) -> Reply {
        if changes && format != Format::Json {
            return Reply::Now(Response::error(400, "changes are JSON Patches of the subtree: not with raw or keys"));
        }
        let Some((key, seen)) = self.watch_key(raw_path) else {
            // The read says what is wrong with the path, as a `GET` would.
            return Reply::Now(match self.store.read(raw_path, format) {
                Err(e) => e.response(&format!("/data{raw_path}")),
                Ok(_) => Response::error(400, "bad path"),
            });
        };
        if self.watches.waiting() >= WATCHERS_MAX {
            return Reply::Now(Response::error(503, "too many watchers on this node").with_header("Retry-After", "1"));
        }
        let version = self.store.version();
        // The version the client holds; an id of the older form (a sequence alone) names none.
        let last_seen = last_event_id.and_then(Version::from_header);
        // A stream of changes is up to date only at this very version: a client that saw a later
        // one (on another node) holds a subtree this node's patches may not apply to.
        let up_to_date = last_seen.is_some_and(|id| id.sequence > version.sequence && !changes || id == version);
        // A stream of changes resuming from a version still kept starts with the patch from it,
        // and one that is up to date with nothing: neither renders the subtree.
        let resumed = match (changes, last_seen, &seen) {
            (true, Some(id), Some(_)) => self.watches.resume.root_at(id).and_then(|root| root.resolve(&key)),
            _ => None,
        };
        let (first, etag) = match (resumed, &seen) {
            (_, Some(_)) if changes && up_to_date => (Bytes::EMPTY, String::new()),
            (Some(before), Some(after)) => {
                (Bytes::Owned(event(version, Some("patch"), &before.diff(after))), String::new())
            }
            _ if !up_to_date && let Some(whole) = self.watches.whole.hit(version, raw_path, format) => whole,
            // A path that does not exist yet starts with the `missing` event, and the stream goes on.
            _ => match self.store.read(raw_path, format) {
                Ok(rendered) if up_to_date => (Bytes::EMPTY, rendered.etag.to_string()),
                Ok(rendered) => {
                    let first = Bytes::Shared(event(version, None, rendered.body.as_ref()).into());
                    let etag = rendered.etag.to_string();
                    self.watches.whole = WholeEvent::Kept {
                        version,
                        raw_path: raw_path.to_string(),
                        format,
                        first: first.clone(),
                        etag: etag.clone(),
                    };
                    (first, etag)
                }
                Err(ReadError::NotFound) if up_to_date => (Bytes::EMPTY, String::new()),
                Err(ReadError::NotFound) => (Bytes::Owned(missing_event(version, raw_path)), String::new()),
                Err(e) => return Reply::Now(e.response(&format!("/data{raw_path}"))),
            },
        };
        if changes {
            let root = self.store.root().clone();
            self.watches.resume.now_ms = now.mono_ms;
            self.watches.resume.keep(version, &root);
            self.watches.changes_streams += 1;
        }
        let watcher = Watcher { ticket, format, kind: Kind::Stream { etag, changes } };
        self.watches.add(key, raw_path, seen, watcher);
        self.watches.streams += 1;
        self.watches.next_heartbeat.get_or_insert(Deadline::after(now, STREAM_HEARTBEAT_MS));
        let head = b"Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
        Reply::Stream(Response { status: 200, headers: Bytes::Static(head), body: first, close: false })
    }

    /// The group key of a path and the subtree there now.
    fn watch_key(&self, raw_path: &str) -> Option<(Vec<String>, Option<Value>)> {
        let segments = if raw_path.is_empty() { Vec::new() } else { path::segments(raw_path).ok()? };
        let key: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        let seen = self.store.root().resolve(&key).cloned();
        Some((key, seen))
    }

    /// After the store changed: wakes the watchers of every path whose subtree changed.
    pub(super) fn wake_watchers(&mut self, co: Option<&Coordinated>) {
        self.watches.whole = WholeEvent::None;
        let version = self.store.version();
        let root = self.store.root().clone();
        if self.watches.has_changes_streams() {
            self.watches.resume.keep(version, &root);
        }
        let mut changed: Vec<(Vec<String>, Option<Value>)> = Vec::new();
        for (key, group) in self.watches.groups.iter_mut() {
            let now_there = root.resolve(key);
            let same = match (&group.seen, now_there) {
                (Some(before), Some(after)) => before.same_content(after),
                (None, None) => true,
                _ => false,
            };
            if !same {
                let before = std::mem::replace(&mut group.seen, now_there.cloned());
                changed.push((key.clone(), before));
            }
        }
        for (key, before) in changed {
            let Some(group) = self.watches.groups.get_mut(&key) else { continue };
            let raw_path = group.raw_path.clone();
            let watchers = std::mem::take(&mut group.watchers);
            let mut change = Change { before, patch: None, full: Vec::new() };
            let mut staying = Vec::with_capacity(watchers.len());
            for mut watcher in watchers {
                if self.notify(co, &raw_path, &key, &mut watcher, version, &mut change) {
                    staying.push(watcher);
                } else {
                    self.watches.by_ticket.remove(&watcher.ticket);
                }
            }
            let group = self.watches.groups.get_mut(&key).expect("still there");
            group.watchers = staying;
            if group.watchers.is_empty() {
                self.watches.groups.remove(&key);
            }
        }
    }

    /// Tells one watcher about a change; returns whether it keeps watching.
    fn notify(
        &mut self,
        co: Option<&Coordinated>,
        raw_path: &str,
        key: &[String],
        watcher: &mut Watcher,
        version: Version,
        change: &mut Change,
    ) -> bool {
        // A stream of changes gets the group's patch without the subtree being rendered: on a
        // large subtree, a render would cost the subtree, not the change.
        if let (Kind::Stream { changes: true, .. }, Some(before)) = (&watcher.kind, &change.before)
            && let Some(after) = self.store.root().resolve(key)
        {
            let patch = change
                .patch
                .get_or_insert_with(|| Bytes::Shared(event(version, Some("patch"), &before.diff(after)).into()));
            self.effects.push(Effect::Event { ticket: watcher.ticket, bytes: patch.clone() });
            return true;
        }
        let rendered = self.store.read(raw_path, watcher.format);
        match (&mut watcher.kind, rendered) {
            (Kind::Poll { etag, .. }, Ok(rendered)) if *rendered.etag == **etag => true,
            (Kind::Poll { changes: true, .. }, Ok(rendered)) if let Some(before) = &change.before => {
                let after = self.store.root().resolve(key).expect("a subtree just read is there");
                let headers = format!(
                    "Content-Type: application/json-patch+json\r\nETag: {}\r\nX-Lighthouse-Version: {}\r\n",
                    rendered.etag,
                    self.store.version().to_header()
                );
                let mut body = before.diff(after);
                body.push(b'\n');
                let patch = Response {
                    status: 200,
                    headers: Bytes::Owned(headers.into_bytes()),
                    body: Bytes::Owned(body),
                    close: false,
                };
                self.answer_read(co, watcher.ticket, patch);
                false
            }
            (Kind::Poll { .. }, Ok(rendered)) => {
                self.answer_read(co, watcher.ticket, rendered.response(None));
                false
            }
            (Kind::Poll { .. }, Err(e)) => {
                self.answer_read(co, watcher.ticket, e.response(&format!("/data{raw_path}")));
                false
            }
            (Kind::Stream { etag, .. }, Ok(rendered)) if *rendered.etag == **etag => true,
            (Kind::Stream { etag, .. }, Ok(rendered)) => {
                *etag = rendered.etag.to_string();
                let bytes = match change.full.iter().find(|(format, _)| *format == watcher.format) {
                    Some((_, bytes)) => bytes.clone(),
                    None => {
                        let bytes = Bytes::Shared(event(version, None, rendered.body.as_ref()).into());
                        change.full.push((watcher.format, bytes.clone()));
                        bytes
                    }
                };
                self.effects.push(Effect::Event { ticket: watcher.ticket, bytes });
                true
            }
            (Kind::Stream { etag, .. }, Err(_)) => {
                etag.clear();
                let bytes = missing_event(version, raw_path);
                self.effects.push(Effect::Event { ticket: watcher.ticket, bytes: Bytes::Owned(bytes) });
                true
            }
        }
    }

    /// `GET /data/PATH?min-version=N` on a node that does not hold sequence N yet: the read waits
    /// until it does (read your own writes on any node), at most the `?wait=` asked for (else
    /// `MIN_VERSION_WAIT_MS_DEFAULT`), then answers 503.
    pub(super) fn wait_for_version(
        &mut self,
        now: Now,
        ticket: Ticket,
        raw_path: &str,
        format: Format,
        sequence: u64,
        wait_ms: Option<u64>,
    ) -> Reply {
        if self.watches.waiting() >= WATCHERS_MAX {
            return Reply::Now(Response::error(503, "too many watchers on this node").with_header("Retry-After", "1"));
        }
        let deadline = Deadline::after(now, wait_ms.unwrap_or(MIN_VERSION_WAIT_MS_DEFAULT));
        let wait = VersionWait { ticket, sequence, raw_path: raw_path.to_string(), format, deadline };
        self.watches.versions.push(wait);
        Reply::Later
    }

    /// After the store changed: answers the reads that waited for a sequence it now has.
    pub(super) fn wake_version_waiters(&mut self, co: Option<&Coordinated>) {
        let sequence = self.store.version().sequence;
        let (ready, waiting): (Vec<VersionWait>, Vec<VersionWait>) =
            std::mem::take(&mut self.watches.versions).into_iter().partition(|w| w.sequence <= sequence);
        self.watches.versions = waiting;
        for wait in ready {
            let response = match self.store.read(&wait.raw_path, wait.format) {
                Ok(rendered) => rendered.response(None),
                Err(e) => e.response(&format!("/data{}", wait.raw_path)),
            };
            self.answer_read(co, wait.ticket, response);
        }
    }

    /// Answers long-polls whose wait ended (304), keeps idle streams alive, and lets go of
    /// versions kept too long for resuming.
    pub(super) fn expire_watches(&mut self, now: Now, co: Option<&Coordinated>) {
        self.watches.resume.expire(now);
        let (expired, waiting): (Vec<VersionWait>, Vec<VersionWait>) =
            std::mem::take(&mut self.watches.versions).into_iter().partition(|w| w.deadline.fired(now));
        self.watches.versions = waiting;
        for wait in expired {
            let message = format!(
                "this node does not hold sequence {} yet (it has {}); retry, or read from another node",
                wait.sequence,
                self.store.version().sequence
            );
            self.answer(wait.ticket, Response::error(503, &message).with_header("Retry-After", "1"));
        }
        while let Some(&Reverse((at, ticket))) = self.watches.deadlines.peek() {
            if at > now.mono_ms {
                break;
            }
            self.watches.deadlines.pop();
            // The entry may be stale: its poll answered early, and the ticket (the connection's)
            // now parks another request. Only a poll with exactly this deadline is due.
            if self.watches.poll_deadline(ticket) != Some(at) {
                continue;
            }
            let (watcher, raw_path) = self.watches.remove(ticket).expect("checked above");
            let Kind::Poll { etag, .. } = watcher.kind else { unreachable!("only polls have deadlines") };
            let response = match self.store.read(&raw_path, watcher.format) {
                Ok(rendered) => rendered.response(Some(&etag)),
                Err(e) => e.response(&format!("/data{raw_path}")),
            };
            self.answer_read(co, ticket, response);
        }
        if self.watches.next_heartbeat.is_some_and(|d| d.fired(now)) {
            self.watches.next_heartbeat = (self.watches.streams > 0).then(|| Deadline::after(now, STREAM_HEARTBEAT_MS));
            let streams: Vec<Ticket> = self
                .watches
                .groups
                .values()
                .flat_map(|g| g.watchers.iter())
                .filter(|w| matches!(w.kind, Kind::Stream { .. }))
                .map(|w| w.ticket)
                .collect();
            for ticket in streams {
                self.effects.push(Effect::Event { ticket, bytes: Bytes::Static(b": keep-alive\n\n") });
            }
        }
    }

    /// The client of a parked or streaming request left: forget its watcher. Returns whether
    /// the request was a watcher (other parked requests, such as commits, still finish).
    pub(super) fn disconnected(&mut self, ticket: Ticket) -> bool {
        let waited = self.watches.versions.len();
        self.watches.versions.retain(|w| w.ticket != ticket);
        let was_watching = self.watches.remove(ticket).is_some() || self.watches.versions.len() < waited;
        if was_watching {
            debug!("a watcher went away");
        }
        was_watching
    }
}

/// The `missing` event of a stream whose path does not exist (or no longer does).
fn missing_event(version: Version, raw_path: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": format!("no such path: /data{raw_path}") }).to_string();
    event(version, Some("missing"), body.as_bytes())
}

/// The milliseconds of `?wait=SECONDS` (fractions allowed, at most `WAIT_S_MAX`), or the 400 of a
/// value that is not a number of seconds.
pub(super) fn parse_wait(wait: &str) -> Result<u64, Response> {
    match wait.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok((s.min(WAIT_S_MAX as f64) * 1000.0) as u64),
        _ => Err(Response::error(400, &format!("wait must be a number of seconds (at most {WAIT_S_MAX})"))),
    }
}

/// One server-sent event: `id: SEQUENCE-CHECKSUM` (the version), an optional `event:` type, then
/// the body's lines as `data:` lines.
fn event(version: Version, kind: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = format!("id: {}\n", version.to_header()).into_bytes();
    if let Some(kind) = kind {
        out.extend_from_slice(format!("event: {kind}\n").as_bytes());
    }
    let text = body.strip_suffix(b"\n").unwrap_or(body);
    for line in text.split(|b| *b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::event;
    use crate::core::version::{Checksum, Version};

    #[test]
    fn events_put_every_line_of_the_body_in_a_data_line() {
        let version = |sequence| Version { sequence, checksum: Checksum([0xab; 20]) };
        let id = |sequence| format!("id: {sequence}-{}\n", "ab".repeat(20));
        let expected = format!("{}data: {{\ndata:   \"a\": 1\ndata: }}\n\n", id(7));
        assert_eq!(event(version(7), None, b"{\n  \"a\": 1\n}\n"), expected.as_bytes());
        let expected = format!("{}event: missing\ndata: {{}}\n\n", id(8));
        assert_eq!(event(version(8), Some("missing"), b"{}"), expected.as_bytes());
    }

    #[test]
    fn an_event_id_reads_back_as_its_version_and_the_older_form_as_none() {
        let version = Version { sequence: 12, checksum: Checksum([0x3c; 20]) };
        assert_eq!(Version::from_header(&version.to_header()), Some(version));
        assert_eq!(Version::from_header(&format!(" {} ", version.to_header())), Some(version));
        for old_or_bad in [
            "12",
            "",
            "12-",
            "-3c3c",
            "x-3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c",
            "+1-3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c",
        ] {
            assert_eq!(Version::from_header(old_or_bad), None, "{old_or_bad:?}");
        }
    }
}
