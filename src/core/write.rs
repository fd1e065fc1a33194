//! One-request writes: `PUT`, `PATCH` and `DELETE` on `/data[/path]`, each a transaction of its
//! own. A write takes the lock under its own name (`PUT /data/x`, a name no client can take, as
//! it is not a valid lock name), puts its change on the current store and commits at once, so it
//! goes through the same lease, commit path and majority as any transaction, on the coordinator
//! in a cluster. Preconditions (`If-Match`, `If-None-Match`) are checked against the store the
//! write is made on, under the lock, so a compare-and-set cannot race another write.
//!
//! While the lock is held (a transaction, or another write being committed) a write waits its
//! turn, first come first served, for at most `WRITE_WAIT_MS`; then it answers 409 with the
//! holder's name and `Retry-After`.

use std::collections::VecDeque;

use log::{info, warn};

use super::coordinated::Coordinated;
use super::data::if_match;
use super::grant::Grant;
use super::lock::{Lock, OneRequest};
use super::store::{content_checksum, etag_matches};
use super::{Reply, Shared, Ticket};
use crate::core::clock::{Deadline, Now};
use crate::core::sealed::Sealed;
use crate::core::value::{EditError, PatchError, Value, json_patch, merge_patch};
use crate::core::version::Version;
use crate::http::Response;
use crate::limits::{
    PATCH_COPIED_VALUES_MAX, STORE_DEPTH_MAX, WRITE_WAIT_MS, WRITES_WAITING_BYTES_MAX, WRITES_WAITING_MAX,
};

/// A change to the store that one request asks for.
#[derive(Debug)]
pub enum Edit {
    /// `PUT`: the value at the path (its parent must exist).
    Put(Value),
    /// `DELETE`: the path removed.
    Delete,
    /// `PATCH` with `application/merge-patch+json` (RFC 7396).
    Merge(Value),
    /// `PATCH` with `application/json-patch+json` (RFC 6902).
    Patch(Value),
    /// A client's `PUT /copy` with coordinated writes: the whole store and the sequence of a
    /// checked copy (`take.rs`).
    Restore(Box<Sealed>),
}

/// A one-request write, parsed.
#[derive(Debug)]
pub struct Write {
    pub edit: Edit,
    /// Decoded segments below `/data`.
    pub path: Vec<String>,
    /// The name it holds the lock under: its method and path.
    pub name: String,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub client: Option<std::net::SocketAddr>,
    /// The request body's length, counted against `WRITES_WAITING_BYTES_MAX` while it waits.
    pub body_len: usize,
    /// What the request's token grants (its label names it in the audit lines).
    pub grant: Option<Grant>,
}

/// A write waiting for the lock.
#[derive(Debug)]
pub struct Waiting {
    ticket: Ticket,
    write: Write,
    deadline: Deadline,
}

/// The writes waiting for the lock, oldest first.
pub type WaitingWrites = VecDeque<Waiting>;

impl Shared {
    /// Carries out a write now, or queues it behind the lock's holder.
    pub(super) fn write(&mut self, co: Option<&mut Coordinated>, now: Now, ticket: Ticket, write: Write) -> Reply {
        self.expire_lock(now);
        if let Some(refused) = self.without_lease(co.as_deref(), now) {
            return Reply::Now(refused);
        }
        if self.lock.is_none() && self.waiting_writes.is_empty() {
            return match self.start_write(co, now, ticket, write) {
                Some(response) => Reply::Now(self.versioned(response)),
                None => Reply::Later,
            };
        }
        let waiting_bytes: usize = self.waiting_writes.iter().map(|w| w.write.body_len).sum();
        if self.waiting_writes.len() >= WRITES_WAITING_MAX || waiting_bytes + write.body_len > WRITES_WAITING_BYTES_MAX
        {
            let refused = Response::error(503, "too many writes are waiting for the lock; retry");
            return Reply::Now(refused.with_header("Retry-After", "1"));
        }
        self.waiting_writes.push_back(Waiting { ticket, write, deadline: Deadline::after(now, WRITE_WAIT_MS) });
        Reply::Later
    }

    /// Starts the waiting writes whose turn has come, and refuses those that waited too long.
    pub(super) fn run_waiting_writes(&mut self, now: Now, mut co: Option<&mut Coordinated>) {
        while let Some(i) = self.waiting_writes.iter().position(|w| w.deadline.fired(now)) {
            let waiting = self.waiting_writes.remove(i).expect("found above");
            let holder = self.lock.as_ref().map_or("a transaction", |l| l.name());
            let message = format!(
                "the lock is held by {holder}; this write waited {WRITE_WAIT_MS} ms and changed nothing; retry"
            );
            let refused = Response::error(409, &message).with_header("Retry-After", "1");
            let refused = self.versioned(refused);
            self.answer(waiting.ticket, refused);
        }
        if self.waiting_writes.is_empty() {
            return;
        }
        self.expire_lock(now);
        while self.lock.is_none()
            && let Some(waiting) = self.waiting_writes.pop_front()
        {
            let response = match self.without_lease(co.as_deref(), now) {
                Some(refused) => Some(refused),
                None => self.start_write(co.as_deref_mut(), now, waiting.ticket, waiting.write),
            };
            if let Some(response) = response {
                let response = self.versioned(response);
                self.answer(waiting.ticket, response);
            }
        }
    }

    /// An answer of this node to a write, with the version it was made on (or made: a commit's
    /// answer carries its own).
    fn versioned(&self, response: Response) -> Response {
        response.with_header("X-Lighthouse-Version", &self.store.version().to_header())
    }

    /// When the waiting writes need the core: at once when the lock is free, else when the
    /// oldest has waited long enough.
    pub(super) fn next_write_deadline(&self) -> Option<Deadline> {
        let oldest = self.waiting_writes.iter().map(|w| w.deadline).min()?;
        Some(if self.lock.is_none() { Deadline(0) } else { oldest })
    }

    /// Checks the preconditions and makes the change on the current store; commits it under the
    /// lock (the answer comes later), or answers now (refused, or nothing changed).
    fn start_write(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        write: Write,
    ) -> Option<Response> {
        if matches!(write.edit, Edit::Restore(_)) {
            return self.start_restore(co, now, ticket, write);
        }
        let root = self.store.root();
        let version = self.store.version();
        let current = root.resolve(&write.path);
        // A tag hashes its whole subtree, on the loop: only when a precondition asks for it.
        let conditional = write.if_match.is_some() || write.if_none_match.is_some();
        let current_tag = current.filter(|_| conditional).map(|subtree| tag(subtree, &write.path, version));
        if let Some(refused) = precondition(&write, current_tag.as_deref()) {
            return Some(refused);
        }
        let staged = match edited(root, current, &write) {
            Ok(staged) => staged,
            Err(refused) => return Some(refused),
        };
        // The path was checked against the token's prefixes; what the edit changes is checked
        // here (a deleted array element at a prefix shifts the elements after it).
        if let Some(refused) = write.grant.as_ref().and_then(|g| g.change_refusal(root, &staged, "")) {
            return Some(refused);
        }
        // The tag of what a PUT wrote costs what parsing its body cost; a patch's result may be a
        // large subtree, whose tag a client reads with GET when it needs one.
        let etag = match &write.edit {
            Edit::Put(_) if !write.path.is_empty() => {
                staged.resolve(&write.path).map(|subtree| tag(subtree, &write.path, version))
            }
            _ => None,
        };
        if staged.same_content(root) {
            let unchanged = Response::json(200, version.to_pretty_line().into_bytes());
            let whole_store = write.path.is_empty().then(|| format!("\"{}\"", version.checksum));
            return Some(match etag.or(current_tag).or(whole_store) {
                Some(etag) => unchanged.with_header("ETag", &etag),
                None => unchanged,
            });
        }
        let whole_store = write.path.is_empty() && !matches!(write.edit, Edit::Delete);
        let lock = Lock::new(&write.name, now, self.config.lock_timeout_ms, version, root.clone());
        let mut lock = lock.held_by(write.client).written(staged, OneRequest { etag, whole_store, restore: None });
        lock.signed(write.grant.as_ref().and_then(|g| g.label.as_deref()));
        lock.begin_commit(ticket);
        self.grant(lock);
        self.time_commit(now, ticket);
        match co {
            None => self.pump_disk(now, None),
            Some(co) => co.start_lock_commit(self, now),
        }
        None
    }

    /// A restore takes the lock once its turn comes: a copy no newer than the store (by sequence)
    /// is ignored, as the contract says of `PUT /copy` (201); a newer one is committed at its own
    /// sequence, so that the version a backup names is the version the cluster serves.
    fn start_restore(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        write: Write,
    ) -> Option<Response> {
        let Edit::Restore(copy) = write.edit else { unreachable!("a restore") };
        let ours = self.store.version();
        let theirs = copy.copy.version;
        if theirs.sequence <= ours.sequence {
            info!(
                "PUT /copy of sequence {} ({}) ignored: the store is at sequence {}, as new or newer",
                theirs.sequence, theirs.checksum, ours.sequence
            );
            self.store.retire(*copy);
            return Some(Response::json(201, ours.to_pretty_line().into_bytes()));
        }
        info!(
            "restoring sequence {} ({}) from a copy{}: the store is at sequence {}",
            theirs.sequence,
            theirs.checksum,
            super::transaction::from(write.client),
            ours.sequence
        );
        let lock = Lock::new(&write.name, now, self.config.lock_timeout_ms, ours, self.store.root().clone());
        let staged = copy.copy.root.clone();
        let one_request = OneRequest { etag: None, whole_store: true, restore: Some(copy) };
        let mut lock = lock.held_by(write.client).written(staged, one_request);
        lock.signed(write.grant.as_ref().and_then(|g| g.label.as_deref()));
        lock.begin_commit(ticket);
        self.grant(lock);
        // Only coordinated writes take a client's copy as a restore (`take.rs`).
        if let Some(co) = co {
            co.start_lock_commit(self, now);
        }
        None
    }

    /// A one-request write whose commit failed or lost to a newer store: nobody will abort it, so
    /// its lock goes now. Returns whether it was one.
    pub(super) fn drop_failed_write(&mut self) -> bool {
        let dropped = self.release_if(|l| l.one_request().is_some() && !l.is_committing());
        if let Some(lock) = &dropped {
            warn!("write {} was not committed; its lock is free", lock.name());
        }
        dropped.is_some()
    }
}

/// The answer to a commit that landed: its version, and for a one-request write the ETag of what
/// it wrote, so that the next compare-and-set needs no read.
pub(super) fn committed(lock: &Lock, version: Version) -> Response {
    let answer = Response::json(200, version.to_pretty_line().into_bytes())
        .with_header("X-Lighthouse-Version", &version.to_header());
    match &lock.one_request() {
        Some(OneRequest { restore: Some(_), .. }) => Response::json(201, version.to_pretty_line().into_bytes())
            .with_header("X-Lighthouse-Version", &version.to_header()),
        Some(OneRequest { whole_store: true, .. }) => answer.with_header("ETag", &format!("\"{}\"", version.checksum)),
        Some(OneRequest { etag: Some(etag), .. }) => answer.with_header("ETag", etag),
        _ => answer,
    }
}

/// The 504 of a commit whose outcome is not known.
pub(super) fn outcome_unknown(lock: Option<&super::Lock>) -> Response {
    let name = lock.map_or("", |l| l.name());
    if lock.is_some_and(|l| l.one_request().is_some()) {
        return Response::outcome_unknown(&format!(
            "the write {name} is not durable on a majority of voters yet: it may land or not; read the data to find out"
        ));
    }
    let message = format!(
        "the commit of lock {name} is not durable on a majority of voters yet: it may land or not; do not reuse the \
         lock name, and read the version to find out (PUT /lock/{name} again tells whether it committed, as long \
         as this node coordinates)"
    );
    Response::outcome_unknown(&message)
}

/// The ETag `GET /data/path` gives a subtree: its checksum (the store's version for the root).
fn tag(subtree: &Value, path: &[String], version: Version) -> String {
    format!("\"{}\"", content_checksum(subtree, version, path.is_empty()))
}

/// 412 when `If-Match` or `If-None-Match` does not hold for the current content (400 for an
/// `If-Match` that names no tag as `GET` gives them).
fn precondition(write: &Write, current: Option<&str>) -> Option<Response> {
    let shown = format!("/data/{}", write.path.join("/"));
    if let Some(tags) = &write.if_match {
        let tags: Vec<&str> = tags.split(',').map(str::trim).collect();
        let quoted = |t: &str| t.len() >= 2 && t.starts_with('"') && t.ends_with('"');
        if tags != ["*"] && !tags.iter().all(|t| quoted(t) || t.strip_prefix("W/").is_some_and(quoted)) {
            let why = "If-Match takes * or ETags in double quotes, as GET gives them; nothing changed";
            return Some(Response::error(400, why));
        }
        if tags.iter().all(|t| t.starts_with("W/")) {
            let why = "If-Match: a weak ETag (W/\"...\") never matches; send the tag GET gives; nothing changed";
            return Some(Response::error(412, why));
        }
    }
    let failed = match (&write.if_match, &write.if_none_match, current) {
        (Some(_), _, None) => format!("If-Match: {shown} does not exist; nothing changed"),
        (Some(tags), _, Some(etag)) if !if_match(tags, etag) => {
            format!("If-Match: {shown} has changed (its ETag is now {etag}); nothing changed")
        }
        (_, Some(tags), Some(etag)) if etag_matches(tags, etag) => {
            format!("If-None-Match: {shown} exists (its ETag is {etag}); nothing changed")
        }
        _ => return None,
    };
    let refused = Response::error(412, &failed);
    Some(match current {
        Some(etag) => refused.with_header("ETag", etag),
        None => refused,
    })
}

/// The store with the write's change made, or the answer refusing it.
fn edited(root: &Value, current: Option<&Value>, write: &Write) -> Result<Value, Response> {
    let path = &write.path;
    let shown = format!("/data/{}", path.join("/"));
    let mut staged = root.clone();
    let put = |staged: &mut Value, value: Value| match staged.put(path, value, STORE_DEPTH_MAX) {
        Ok(()) => Ok(()),
        Err(EditError::TooDeep) => {
            Err(Response::error(400, &format!("the store would nest deeper than {STORE_DEPTH_MAX} levels")))
        }
        Err(_) => Err(Response::error(
            404,
            &format!(
                "cannot write {shown}: its parent does not exist, is not an object or array, or the index is past the end"
            ),
        )),
    };
    match &write.edit {
        Edit::Put(value) => put(&mut staged, value.clone())?,
        Edit::Delete => {
            staged.delete(path).map_err(|_| Response::error(404, &format!("no such path: {shown}")))?;
        }
        Edit::Merge(patch) => put(&mut staged, merge_patch(current, patch))?,
        Edit::Restore(copy) => staged = copy.copy.root.clone(),
        Edit::Patch(operations) => {
            if current.is_none() {
                return Err(Response::error(404, &format!("no such path: {shown}")));
            }
            staged = json_patch(root, path, operations, STORE_DEPTH_MAX).map_err(|e| match e {
                PatchError::Malformed(why) => Response::error(400, &format!("the JSON Patch is malformed: {why}")),
                PatchError::DoesNotApply(why) => {
                    Response::error(422, &format!("the JSON Patch does not apply: {why}; nothing changed"))
                }
                PatchError::TooDeep => {
                    Response::error(400, &format!("the store would nest deeper than {STORE_DEPTH_MAX} levels"))
                }
                PatchError::TooLarge => Response::error(
                    413,
                    &format!("the JSON Patch copies more than {PATCH_COPIED_VALUES_MAX} values; nothing changed"),
                ),
            })?;
        }
    }
    Ok(staged)
}
