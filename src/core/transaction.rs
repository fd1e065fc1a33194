//! The write path over HTTP: `/lock` (acquire, renew, commit, abort, inspect) and
//! `/update/NAME[/path]` (stage, read back, remove). Status codes are the contract's, which are
//! the first Lighthouse's, so scripts written for it keep working.

use log::{info, warn};

use super::coordinated::Coordinated;
use super::lock::{Lock, RecentCommit, valid_name};
use super::{Reply, Request, Shared, Ticket, json_response, method_not_allowed};
use crate::core::clock::{Now, seconds_to_ms};
use crate::core::jobs::DiskError;
use crate::core::lineage::Lineage;
use crate::core::path::{self, Query};
use crate::core::snapshot::OwnCommit;
use crate::core::store::{Format, staged_response};
use crate::core::value::{EditError, Value};
use crate::core::version::Version;
use crate::http::{Method, Response};
use crate::limits::{LINEAGE_VERSIONS_MAX, LOCK_TTL_S_MAX, RECENT_COMMIT_MS, RECENT_COMMITS_MAX, STORE_DEPTH_MAX};

impl Shared {
    /// `/lock` and `/lock/NAME`.
    pub(super) fn lock_request(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        request: &Request,
        below: &str,
        query: Query,
    ) -> Reply {
        // A lease that lapsed before this request arrived is gone, even if the timer has not run.
        self.expire_lock(now);
        let name = match single_segment(below) {
            Ok(name) => name,
            Err(response) => return Reply::Now(response),
        };
        let response = match (request.method, name.as_deref()) {
            (Method::Get | Method::Head, name) => self.lock_info(co.as_deref(), now, request, name),
            (Method::Put, Some(name)) => return self.commit(co, now, ticket, request, name),
            (Method::Put, None) => {
                let Ok(body) = std::str::from_utf8(request.body) else {
                    return Reply::Now(Response::error(400, "the lock name must be UTF-8 text"));
                };
                match body.trim() {
                    // The original answers 404 here: a commit that names no lock could commit
                    // another client's transaction.
                    "" => Response::error(
                        404,
                        "name the lock to commit: PUT /lock/NAME (PUT /lock takes a name to acquire)",
                    ),
                    name => self.acquire(co, now, request, name, query.ttl),
                }
            }
            (Method::Delete, Some(name)) => self.abort(request, name),
            (Method::Delete, None) => Response::error(404, "name the lock to abort: DELETE /lock/NAME"),
            _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
        };
        Reply::Now(response)
    }

    /// `GET /lock`: the holder's name as text, or with `Accept: application/json` the details.
    /// `GET /lock/NAME` answers the same when NAME holds the lock, 404 otherwise.
    fn lock_info(&self, co: Option<&Coordinated>, now: Now, request: &Request, name: Option<&str>) -> Response {
        if let Some(refused) = self.without_lease(co, now) {
            return refused;
        }
        match self.lock.as_ref().filter(|l| name.is_none_or(|n| n == l.name())) {
            Some(lock) => describe(lock, now, request),
            None => Response::error(404, "no lock is held"),
        }
    }

    /// `PUT /lock` with a name: acquire, or renew when the name already holds it. Answers like
    /// `GET /lock`.
    fn acquire(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        request: &Request,
        name: &str,
        ttl: Option<&str>,
    ) -> Response {
        if !valid_name(name) {
            return Response::error(400, "a lock name is 1 to 128 characters of A-Z a-z 0-9 . _ ~ -");
        }
        if let Some(refused) = self.without_lease(co.as_deref(), now) {
            return refused;
        }
        // Writes waiting for a lock just freed take it first: first come, first served.
        self.run_waiting_writes(now, co);
        let lease_ms = match ttl {
            None => self.config.lock_timeout_ms,
            Some(ttl) => match ttl.parse::<u64>() {
                Ok(seconds) if (1..=LOCK_TTL_S_MAX).contains(&seconds) => seconds_to_ms(seconds),
                _ => {
                    return Response::error(
                        400,
                        &format!("ttl must be a whole number of seconds from 1 to {LOCK_TTL_S_MAX}"),
                    );
                }
            },
        };
        match &mut self.lock {
            Some(lock) if lock.name() == name => {
                if request.client.is_some() && request.client != lock.client() {
                    let address = |client: Option<std::net::SocketAddr>| client.map_or("?".into(), |c| c.to_string());
                    info!(
                        "lock {name} renewed by a new client {} (was {})",
                        address(request.client),
                        address(lock.client())
                    );
                }
                lock.renew_by(now, lease_ms, request.client);
                lock.signed(label(request));
            }
            Some(lock) => return Response::error(403, &format!("the lock is held by {}", lock.name())),
            None => {
                let sequence = self.store.version().sequence;
                info!("lock {name} acquired at sequence {sequence}{}{}", from(request.client), by(label(request)));
                let mut lock = Lock::new(name, now, lease_ms, self.store.version(), self.store.root().clone());
                lock.signed(label(request));
                self.grant(lock.held_by(request.client));
            }
        }
        describe(self.lock.as_ref().expect("held now"), now, request)
    }

    /// `PUT /lock/NAME`: commit. The answer waits for the writer.
    fn commit(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        ticket: Ticket,
        request: &Request,
        name: &str,
    ) -> Reply {
        let Some(lock) = self.lock.as_mut().filter(|l| l.name() == name) else {
            return Reply::Now(Response::error(404, &self.not_held(co.as_deref(), now, name)));
        };
        if lock.is_committing() {
            return Reply::Now(Response::error(409, "a commit of this lock is already in progress"));
        }
        if !lock.changed_something() {
            let lock = self.lock.take().expect("checked above");
            info!("lock {} released without changes{}{}", lock.name(), from(request.client), by(label(request)));
            return Reply::Now(Response::json(200, self.store.version().to_pretty_line().into_bytes()));
        }
        if lock.base() != self.store.version() {
            return Reply::Now(self.conflict_response());
        }
        // Whoever staged the changes, they land only when the committing token may make them all.
        let held = format!("; the lock is still held: abort with DELETE /lock/{name}");
        let refused = request.grant.and_then(|g| g.change_refusal(self.store.root(), lock.staged(), &held));
        if let Some(refused) = refused {
            info!(
                "lock {name}: commit refused, it changes what the token may not{}{}",
                from(request.client),
                by(label(request))
            );
            return Reply::Now(refused);
        }
        self.time_commit(now, ticket);
        let lock = self.lock.as_mut().expect("checked above");
        lock.signed(label(request));
        lock.begin_commit(ticket);
        let Some(co) = co else {
            self.pump_disk(now, None);
            return Reply::Later;
        };
        // Coordinated: durable on a majority of voters before it is answered; after the change of
        // voters being committed, if there is one.
        co.start_lock_commit(self, now);
        Reply::Later
    }

    /// In coordinated mode, the 503 of a coordinator that holds no lease (or has not made its
    /// term's first version durable yet): it may not grant or show the lock.
    pub(super) fn without_lease(&self, co: Option<&Coordinated>, now: Now) -> Option<Response> {
        let co = co?;
        let consensus = &co.consensus;
        if consensus.has_lease(now) {
            return None;
        }
        let why = match consensus.role() {
            super::consensus::Role::Coordinator(leading) if !leading.ready => format!(
                "this node was just elected coordinator (term {}) and is making the newest version durable; retry",
                consensus.state().term
            ),
            _ => return Some(co.no_majority(self, now)),
        };
        Some(Response::error(503, &why).with_header("Retry-After", "1"))
    }

    /// `DELETE /lock/NAME`: drop the staged changes and free the lock.
    fn abort(&mut self, request: &Request, name: &str) -> Response {
        let lock = match &self.lock {
            Some(lock) if lock.name() == name => lock,
            Some(lock) => return Response::error(404, &format!("the lock is held by {}, not {name}", lock.name())),
            None => return Response::error(404, &format!("{name} does not hold the lock: no lock is held")),
        };
        if lock.is_committing() {
            return Response::error(409, "a commit of this lock is in progress");
        }
        let lock = self.lock.take().expect("checked above");
        let (name, dropped) = (lock.name(), changes(lock.changes()));
        info!("lock {name} aborted, {dropped} dropped{}{}", from(request.client), by(label(request)));
        self.metrics.aborts += 1;
        Response::json(200, self.store.version().to_pretty_line().into_bytes())
    }

    /// Why `name` cannot commit: another name holds the lock, none does, or `name` committed a
    /// moment ago (a client whose answer was lost retries, and must learn that its commit landed).
    fn not_held(&self, co: Option<&Coordinated>, now: Now, name: &str) -> String {
        let held = match &self.lock {
            Some(lock) => format!("{name} does not hold the lock (it is held by {})", lock.name()),
            None => format!("{name} does not hold the lock: no lock is held"),
        };
        let held = match co.and_then(|co| co.dropped_lock.as_ref()) {
            Some((dropped, why)) if dropped == name => format!("{held}; its lock was dropped: {why}"),
            _ => held,
        };
        match self.recent_commits.iter().rev().find(|c| c.name == name) {
            Some(commit) => format!(
                "{held}; {name} committed sequence {} (checksum {}) {} s ago",
                commit.version.sequence,
                commit.version.checksum,
                now.unix_ms.saturating_sub(commit.unix_ms) / 1000
            ),
            None => held,
        }
    }

    /// Drops a lock whose lease has lapsed (never one whose commit is being written).
    pub(super) fn expire_lock(&mut self, now: Now) {
        let lapsed = self.lock.as_ref().is_some_and(|l| !l.is_committing() && l.expires().fired(now));
        if lapsed {
            let lock = self.lock.take().expect("checked above");
            info!(
                "lock {} lapsed after {} s without a request from its holder{}; {} dropped",
                lock.name(),
                lock.lease_ms() / 1000,
                from(lock.client()),
                changes(lock.changes())
            );
            self.metrics.lease_expiries += 1;
        }
    }

    /// `/update/NAME[/path]`: the transaction's staged store.
    pub(super) fn update_request(&mut self, now: Now, request: &Request, below: &str, query: Query) -> Response {
        self.expire_lock(now);
        let segments = match path::segments(if below.is_empty() { "/" } else { below }) {
            Ok(segments) => segments,
            Err(e) => return Response::error(e.status(), e.message()),
        };
        let Some((name, path)) = segments.split_first() else {
            return Response::error(404, "the lock's name is missing: use /update/NAME/path");
        };
        let lock = match &mut self.lock {
            Some(lock) if lock.name() == *name => lock,
            Some(_) => return Response::error(403, &format!("{name} does not hold the lock")),
            None => return Response::error(403, "no lock is held: take it first with PUT /lock"),
        };
        lock.renew(now);
        let committing = lock.is_committing();
        match request.method {
            Method::Get | Method::Head => match lock.staged().resolve(path) {
                Some(subtree) => staged_response(subtree, Format::of(&query)),
                None => Response::error(404, &format!("no such path in the staged store: /{}", path.join("/"))),
            },
            Method::Put | Method::Delete if committing => {
                Response::error(409, "the transaction is being committed; wait for the commit's answer")
            }
            Method::Put => {
                let value = match Value::parse(request.body) {
                    Ok(value) => value,
                    Err(e) => return Response::error(400, &format!("the body is not JSON: {e}")),
                };
                match lock.stage(|staged| staged.put(path, value, STORE_DEPTH_MAX)) {
                    Ok(()) => Response::empty(201),
                    Err(e) => edit_error(e, path),
                }
            }
            Method::Delete => match lock.stage(|staged| staged.delete(path)) {
                Ok(()) => Response::empty(204),
                Err(e) => edit_error(e, path),
            },
            _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
        }
    }
}

/// ` from ADDRESS` for an audit line, or nothing when the client is not known.
pub(super) fn from(client: Option<std::net::SocketAddr>) -> String {
    client.map(|c| format!(" from {c}")).unwrap_or_default()
}

/// ` by LABEL`: the label of the token a change was made with, for an audit line (never the
/// token), or nothing when no token was needed.
pub(super) fn by(label: Option<&str>) -> String {
    label.map(|l| format!(" by {l}")).unwrap_or_default()
}

/// The label of the request's token.
pub(super) fn label<'a>(request: &Request<'a>) -> Option<&'a str> {
    request.grant.and_then(|g| g.label.as_deref())
}

/// "1 change", "3 changes".
pub(super) fn changes(count: u64) -> String {
    format!("{count} change{}", if count == 1 { "" } else { "s" })
}

/// The lock as `GET /lock` shows it: its name as text, or its details as JSON when the request
/// accepts `application/json`.
fn describe(lock: &Lock, now: Now, request: &Request) -> Response {
    if request.headers.accept.is_some_and(|a| a.contains("application/json")) {
        json_response(200, &lock.details(now))
    } else {
        Response::text(200, format!("{}\n", lock.name()))
    }
}

fn edit_error<S: AsRef<str>>(e: EditError, path: &[S]) -> Response {
    let shown: Vec<&str> = path.iter().map(AsRef::as_ref).collect();
    let shown = format!("/{}", shown.join("/"));
    match e {
        EditError::NoParent => Response::error(
            404,
            &format!(
                "cannot put {shown}: its parent does not exist, is not an object or array, or the index is past the end"
            ),
        ),
        EditError::NotFound => Response::error(404, &format!("no such path in the staged store: {shown}")),
        EditError::TooDeep => {
            Response::error(400, &format!("the store would nest deeper than {STORE_DEPTH_MAX} levels"))
        }
    }
}

/// The one decoded segment of `/NAME` (or `None` for an empty rest); more segments are 404.
fn single_segment(below: &str) -> Result<Option<String>, Response> {
    if below.is_empty() {
        return Ok(None);
    }
    let segments = path::segments(below).map_err(|e| Response::error(e.status(), e.message()))?;
    match segments.as_slice() {
        [] => Ok(None),
        [name] => Ok(Some(name.to_string())),
        _ => Err(Response::error(404, "no such resource: /lock/NAME takes no further path")),
    }
}

impl Shared {
    /// Committed: the lock's commit landed as `version` and the transaction is over. Returns the
    /// lock, whose answer the caller sends once the store is the new version.
    pub(super) fn commit_landed(&mut self, now: Now, version: Version) -> Lock {
        let lock = self.lock.take().expect("a commit that landed has its lock");
        info!(
            "lock {} committed sequence {} ({}, {}){}{}",
            lock.name(),
            version.sequence,
            version.checksum,
            changes(lock.changes()),
            from(lock.client()),
            by(lock.label())
        );
        // Only transactions: a client retrying a lost commit must find its name among them.
        if lock.one_request().is_none() {
            self.remember_commit(now, lock.name(), version);
        }
        if self.mine.len() >= LINEAGE_VERSIONS_MAX {
            self.mine.pop_front();
        }
        self.mine.push_back(OwnCommit { version, superseded: false });
        self.metrics.commits += 1;
        lock
    }

    /// Committed on a majority (coordinated writes): the lock's commit landed as `version`; its
    /// client gets 200, unless it was answered 504 already.
    pub(super) fn lock_committed(&mut self, now: Now, ticket: Ticket, answered: bool, version: Version) {
        let lock = self.commit_landed(now, version);
        if answered {
            let name = lock.name();
            warn!("the commit of lock {name} that answered 504 landed after all, as sequence {}", version.sequence);
        } else {
            self.answer(ticket, super::write::committed(&lock, version));
        }
    }

    /// A lock commit that waits behind a change of voters and will not start (coordinated
    /// writes): nothing was committed, so it answers 503 and the lock is free.
    pub(super) fn refuse_waiting_commit(&mut self, why: &str) {
        if let Some(lock) = self.release_if(|l| l.waiting_commit().is_some()) {
            let ticket = lock.waiting_commit().expect("checked above");
            warn!("the commit of lock {} did not start: {why}; nothing was committed", lock.name());
            let message = format!("the commit did not start: {why}; nothing was committed");
            self.answer(ticket, Response::error(503, &message).with_header("Retry-After", "1"));
        }
    }

    /// Failed: the commit could not be made durable. Nothing was committed and the transaction
    /// goes on (a one-request write's lock goes); its client is told why, unless `answered`.
    pub(super) fn commit_failed(&mut self, now: Now, e: &DiskError, answered: bool) {
        let lock = self.lock.as_mut().expect("a failed commit has its lock");
        let ticket = lock.reopen(now);
        let held = if lock.one_request().is_some() { "retry" } else { "the lock is still held" };
        let message = format!("{}; nothing was committed; {held}", e.message);
        if let Some(ticket) = ticket.filter(|_| !answered) {
            self.answer(ticket, Response::error(e.status, &message));
        }
        self.drop_failed_write();
    }

    /// Lost: a newer store arrived from another node while the commit waited or was sealed.
    /// Nothing was committed, the client gets 409, and the transaction goes on.
    pub(super) fn commit_lost(&mut self, now: Now) {
        let lock = self.lock.as_mut().expect("a losing commit keeps its lock");
        let ticket = lock.reopen(now).expect("the lock of a losing commit is committing");
        let response = self.conflict_response();
        self.answer(ticket, response);
        self.drop_failed_write();
    }

    /// The lock is granted: the one way a lock comes to be held (`PUT /lock`, a one-request write
    /// or a restore taking its turn).
    pub(super) fn grant(&mut self, lock: Lock) {
        debug_assert!(self.lock.is_none(), "one lock at a time");
        self.lock = Some(lock);
    }

    /// The lock ends here if `ends` says so (a commit that will not run, a coordinator that can
    /// no longer grant it, a write that failed): the one way a lock ends outside this module's
    /// own commit, abort and lapse.
    pub(super) fn release_if(&mut self, ends: impl FnOnce(&Lock) -> bool) -> Option<Lock> {
        self.lock.take_if(|lock| ends(lock))
    }

    /// Marks this node's commits that a new history leaves out as superseded (and logs and counts
    /// it), and those it brings back as alive again. A node that moves to another node's branch
    /// cannot know whether a third node built on its own, so a mark can be undone later; once the
    /// cluster converges, the marks say exactly which of this node's commits are lost.
    pub(super) fn judge_own_commits(&mut self, lineage: &Lineage) {
        for commit in self.mine.iter_mut() {
            let version = commit.version;
            if !commit.superseded && lineage.excludes(&version) {
                commit.superseded = true;
                self.metrics.superseded_commits += 1;
                warn!(
                    "this node's commit of sequence {} ({}) was superseded by a concurrent commit elsewhere \
                     (sequence {} wins); it is lost unless a later store built on it",
                    version.sequence,
                    version.checksum,
                    lineage.current().sequence
                );
            } else if commit.superseded && lineage.contains(&version) {
                commit.superseded = false;
                self.metrics.superseded_commits_recovered += 1;
                info!("this node's commit of sequence {} ({}) survived after all", version.sequence, version.checksum);
            }
        }
    }

    /// Remembers a commit for `RECENT_COMMIT_MS`, at most `RECENT_COMMITS_MAX` of them.
    pub(super) fn remember_commit(&mut self, now: Now, name: &str, version: Version) {
        let cutoff = now.unix_ms.saturating_sub(RECENT_COMMIT_MS);
        while self.recent_commits.front().is_some_and(|c| c.unix_ms < cutoff)
            || self.recent_commits.len() >= RECENT_COMMITS_MAX
        {
            self.recent_commits.pop_front();
        }
        self.recent_commits.push_back(RecentCommit { name: name.to_string(), version, unix_ms: now.unix_ms });
    }
}
