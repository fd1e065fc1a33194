//! The lock: a named lease that owns one transaction.
//!
//! Acquiring the lock starts a transaction on the current store. Its staged tree begins as the
//! store's root (one reference count, whatever the store's size) and changes by path copying, so
//! staging never copies more than the path to an edit. The lease lapses `lease_ms` after the
//! holder's last request; a lapsed transaction is dropped and nothing it staged lands.
//!
//! Where a transaction is (`LockState`) is private to this file: it changes only through the
//! transitions below (`begin_commit`, `commit_running`, `reopen`, `restamped`), which both ways of
//! committing use: the flush queue with local writes (`durability.rs`) and a majority of voters
//! with coordinated writes (`replicate.rs`). A commit that lands or is lost ends in
//! `transaction.rs` (`commit_landed`, `commit_failed`, `commit_lost`), for both.

use crate::core::Ticket;
use crate::core::clock::{Deadline, Now};
use crate::core::value::Value;
use crate::core::version::Version;
use crate::limits::LOCK_NAME_BYTES_MAX;

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockState {
    /// Staging: the holder may change, read, commit or abort.
    Open,
    /// A commit is waiting for the writer (`job` is `None` while it waits its turn). The answer
    /// goes to `ticket` once the snapshot is sealed (and durable, with a data directory).
    Committing { ticket: Ticket, job: Option<u64> },
}

/// The lock and its transaction. Every field is private: it changes only through the methods
/// below, so this file is the one place that says how a transaction may change.
#[derive(Debug)]
pub struct Lock {
    name: String,
    state: LockState,
    /// When it was acquired, for people reading `GET /lock`.
    since_unix_ms: u64,
    /// How long the lease runs after each request of the holder.
    lease_ms: u64,
    expires: Deadline,
    /// The store version and tree the transaction started from.
    base: Version,
    base_root: Value,
    /// The store as the transaction would leave it.
    staged: Value,
    /// Successful staging requests so far.
    changes: u64,
    /// The address of the client that took or last renewed it, for the audit lines.
    client: Option<std::net::SocketAddr>,
    /// The label of the token that took, renewed or committed it last, for the audit lines.
    label: Option<String>,
    /// Held by a one-request write (`PUT /data/x`), not by a client's transaction.
    one_request: Option<OneRequest>,
}

/// What the answer to a one-request write's commit carries besides the version.
#[derive(Debug, Clone)]
pub struct OneRequest {
    /// The ETag of the written subtree (none for a delete).
    pub etag: Option<String>,
    /// The write replaced the whole store: its ETag is the new version's checksum.
    pub whole_store: bool,
    /// A restore (`PUT /copy` with coordinated writes): the checked copy, committed at its own
    /// sequence and answered 201.
    pub restore: Option<Box<crate::core::sealed::Sealed>>,
}

/// A commit made a moment ago, so that a client retrying a commit whose answer it lost learns
/// that it landed.
#[derive(Debug, Clone)]
pub struct RecentCommit {
    pub name: String,
    pub version: crate::core::version::Version,
    pub unix_ms: u64,
}

impl Lock {
    pub fn new(name: &str, now: Now, lease_ms: u64, base: Version, base_root: Value) -> Lock {
        Lock {
            name: name.to_string(),
            state: LockState::Open,
            since_unix_ms: now.unix_ms,
            lease_ms,
            expires: Deadline::after(now, lease_ms),
            base,
            staged: base_root.clone(),
            base_root,
            changes: 0,
            client: None,
            label: None,
            one_request: None,
        }
    }

    /// Taken (or last renewed) by `client`.
    pub fn held_by(mut self, client: Option<std::net::SocketAddr>) -> Lock {
        self.client = client;
        self
    }

    /// A one-request write: its whole transaction is `staged`, one change.
    pub fn written(mut self, staged: Value, one_request: OneRequest) -> Lock {
        self.staged = staged;
        self.changes = 1;
        self.one_request = Some(one_request);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn base(&self) -> Version {
        self.base
    }

    pub fn staged(&self) -> &Value {
        &self.staged
    }

    pub fn changes(&self) -> u64 {
        self.changes
    }

    pub fn client(&self) -> Option<std::net::SocketAddr> {
        self.client
    }

    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// A request with the token labelled `label` acts for the holder (kept when unlabelled).
    pub fn signed(&mut self, label: Option<&str>) {
        if let Some(label) = label {
            self.label = Some(label.to_string());
        }
    }

    pub fn one_request(&self) -> Option<&OneRequest> {
        self.one_request.as_ref()
    }

    /// The copy a restore commits, leaving the lock.
    pub fn into_restore(self) -> Option<Box<crate::core::sealed::Sealed>> {
        self.one_request.and_then(|o| o.restore)
    }

    pub fn expires(&self) -> Deadline {
        self.expires
    }

    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// The holder renews with a lease of `lease_ms` from now, from `client` (kept when unknown).
    pub fn renew_by(&mut self, now: Now, lease_ms: u64, client: Option<std::net::SocketAddr>) {
        self.lease_ms = lease_ms;
        self.renew(now);
        if client.is_some() {
            self.client = client;
        }
    }

    /// Stages one edit of the holder; it counts as a change when it succeeds.
    pub fn stage<E>(&mut self, edit: impl FnOnce(&mut Value) -> Result<(), E>) -> Result<(), E> {
        edit(&mut self.staged)?;
        self.changes += 1;
        Ok(())
    }

    /// Extends the lease from now.
    pub fn renew(&mut self, now: Now) {
        self.expires = Deadline::after(now, self.lease_ms);
    }

    /// True when the staged store differs from the one the transaction started from.
    pub fn changed_something(&self) -> bool {
        !self.staged.same_content(&self.base_root)
    }

    /// Starts the transaction again on a newer store. Only for a transaction that changed nothing,
    /// so that a holder who has only read sees the newest data.
    pub fn rebase(&mut self, base: Version, base_root: Value) {
        debug_assert!(!self.changed_something());
        self.base = base;
        self.staged = base_root.clone();
        self.base_root = base_root;
    }

    pub fn is_committing(&self) -> bool {
        matches!(self.state, LockState::Committing { .. })
    }

    /// Begin commit: the holder (or a one-request write) asks to commit; the answer goes to
    /// `ticket`, and the commit waits its turn for the writer (or for a change of voters).
    pub fn begin_commit(&mut self, ticket: Ticket) {
        assert_eq!(self.state, LockState::Open, "only an open transaction begins a commit");
        self.state = LockState::Committing { ticket, job: None };
    }

    /// The commit that waits its turn, if one does: the ticket its answer goes to.
    pub fn waiting_commit(&self) -> Option<Ticket> {
        match self.state {
            LockState::Committing { ticket, job: None } => Some(ticket),
            _ => None,
        }
    }

    /// The ticket the commit's answer goes to, while one is under way.
    pub fn commit_ticket(&self) -> Option<Ticket> {
        match self.state {
            LockState::Committing { ticket, .. } => Some(ticket),
            LockState::Open => None,
        }
    }

    /// The commit's work is under way as `job` (sealing it, or removing the file of one that lost).
    pub fn commit_running(&mut self, job: u64) {
        let LockState::Committing { ticket, .. } = self.state else {
            unreachable!("only a commit runs a job");
        };
        self.state = LockState::Committing { ticket, job: Some(job) };
    }

    /// Reopen: the commit failed or lost and the transaction goes on, its lease running from now.
    /// Returns the ticket the commit's answer goes to.
    pub fn reopen(&mut self, now: Now) -> Option<Ticket> {
        let ticket = match self.state {
            LockState::Committing { ticket, .. } => Some(ticket),
            LockState::Open => None,
        };
        self.state = LockState::Open;
        self.renew(now);
        ticket
    }

    /// A version with the same data as `before` replaced it (a change of voters): a transaction
    /// that started on `before` goes on from `version`.
    pub fn restamped(&mut self, before: Version, version: Version) {
        if self.base == before && version.checksum == before.checksum {
            self.base = version;
        }
    }

    /// What `GET /lock` with `Accept: application/json` shows.
    pub fn details(&self, now: Now) -> serde_json::Value {
        let remaining_ms = self.expires.0.saturating_sub(now.mono_ms);
        serde_json::json!({
            "name": self.name,
            "since": self.since_unix_ms,
            "expires": now.unix_ms + remaining_ms,
            "lease": self.lease_ms / 1000,
            "base": self.base.to_json(),
            "changes": self.changes,
            "committing": self.is_committing(),
        })
    }
}

/// Lock names are 1 to 128 characters of `A-Z a-z 0-9 . _ ~ -` (URL-safe without escaping).
pub fn valid_name(name: &str) -> bool {
    (1..=LOCK_NAME_BYTES_MAX).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_safe_words_of_bounded_length() {
        for good in ["a", "deploy-42", "A.b_c~d", &"x".repeat(128)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "has space", "slash/", "ünï", "semi;colon", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_lease_runs_from_the_last_renewal() {
        let now = Now { mono_ms: 1_000, unix_ms: 50_000 };
        let mut lock = Lock::new("a", now, 30_000, Version::initial(), Value::default());
        assert!(!lock.expires.fired(Now { mono_ms: 30_999, unix_ms: 0 }));
        assert!(lock.expires.fired(Now { mono_ms: 31_000, unix_ms: 0 }));
        lock.renew(Now { mono_ms: 20_000, unix_ms: 0 });
        assert!(!lock.expires.fired(Now { mono_ms: 31_000, unix_ms: 0 }));
        assert_eq!(lock.details(Now { mono_ms: 20_000, unix_ms: 69_000 })["expires"], 99_000);
    }

    #[test]
    fn a_commit_waits_its_turn_runs_and_reopens_with_its_ticket_and_a_new_lease() {
        let now = Now { mono_ms: 1_000, unix_ms: 0 };
        let mut lock = Lock::new("a", now, 30_000, Version::initial(), Value::default());
        assert_eq!((lock.waiting_commit(), lock.commit_ticket()), (None, None));
        lock.begin_commit(7);
        assert!(lock.is_committing());
        assert_eq!((lock.waiting_commit(), lock.commit_ticket()), (Some(7), Some(7)));
        lock.commit_running(42);
        assert_eq!((lock.waiting_commit(), lock.commit_ticket()), (None, Some(7)));
        let later = Now { mono_ms: 50_000, unix_ms: 0 };
        assert_eq!(lock.reopen(later), Some(7));
        assert!(!lock.is_committing());
        assert_eq!(lock.expires(), Deadline::after(later, 30_000));
    }

    #[test]
    #[should_panic(expected = "only an open transaction begins a commit")]
    fn a_transaction_cannot_begin_a_second_commit() {
        let now = Now { mono_ms: 0, unix_ms: 0 };
        let mut lock = Lock::new("a", now, 30_000, Version::initial(), Value::default());
        lock.begin_commit(1);
        lock.begin_commit(2);
    }

    #[test]
    fn staging_counts_only_the_edits_that_succeed() {
        let now = Now { mono_ms: 0, unix_ms: 0 };
        let mut lock = Lock::new("a", now, 30_000, Version::initial(), Value::default());
        assert_eq!(lock.stage(|_| Err::<(), _>("refused")), Err("refused"));
        assert_eq!((lock.changes(), lock.changed_something()), (0, false));
        let key = vec!["k".to_string()];
        assert!(lock.stage(|staged| staged.put(&key, Value::Bool(true), 8)).is_ok());
        assert_eq!((lock.changes(), lock.changed_something()), (1, true));
    }
}
