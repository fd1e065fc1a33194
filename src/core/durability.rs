//! The flush queue: which snapshot the writer thread works on next.
//!
//! One job is in flight at a time. A waiting commit goes first; otherwise, with a data directory,
//! the queue writes the current store whenever the disk lags behind it (a copy taken from a peer,
//! say). Nothing waits on a timer: the next job starts the moment the writer reports, and because
//! the queue always writes the *current* store, any versions that arrived meanwhile coalesce into
//! that one write. After a failed write it retries once a second, never in a tight loop.
//!
//! It also numbers new versions (above every sequence the data directory named at start, so
//! that no sequence names two versions after a damaged newest file) and keeps the disk's
//! failures for `/metrics` and `/state`.

use std::path::PathBuf;

use log::{error, warn};

use super::coordinated::Coordinated;
use super::{Effect, Shared, Ticket};
use crate::core::chain::{ChainState, Writing};
use crate::core::clock::{Deadline, Now};
use crate::core::jobs::{DiskError, Done, Job, Owner};
use crate::core::sealed::Sealed;
use crate::core::snapshot::{NodeJson, OwnCommit};
use crate::core::version::Version;
use crate::http::{Method, Response};
use crate::limits::PERSIST_RETRY_MS;

/// What the writer thread is doing for the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    /// Sealing (and writing) the lock's commit.
    Commit { id: u64, stamp: u64 },
    /// Writing the current store, which is already served, to disk.
    Persist { id: u64, version: Version, stamp: u64 },
    /// Removing the file of a commit that lost to a newer store; its 409 waits for this.
    Remove { id: u64 },
}

#[derive(Debug)]
pub(super) struct DiskQueue {
    in_flight: Option<InFlight>,
    /// The newest version known to be on disk.
    durable: Version,
    /// The cluster table's stamp in the newest file: a new peer is worth a write too, so that a
    /// restart without `--seeds` finds it.
    durable_stamp: u64,
    /// After a failed background write: not before this.
    retry_at: Option<Deadline>,
    /// `PUT /copy` requests whose copy was taken, answered once the disk holds its sequence (or a
    /// later one): a node must not answer a copy it would forget in a crash. Bounded by the
    /// connections.
    copies_waiting: Vec<(u64, Ticket)>,
    /// The data directory's chain as the writer last reported it (`core::chain`).
    pub(super) chain: ChainState,
}

impl DiskQueue {
    pub(super) fn new(durable: Version) -> DiskQueue {
        let chain = ChainState::default();
        DiskQueue { in_flight: None, durable, durable_stamp: 0, retry_at: None, copies_waiting: Vec::new(), chain }
    }

    /// When a failed background write is retried; nothing while a job is in flight, since its
    /// report starts the next one anyway.
    pub(super) fn retry_at(&self) -> Option<Deadline> {
        self.retry_at.filter(|_| self.in_flight.is_none())
    }

    /// A version written by a job the queue did not start (coordinated mode): it is on disk.
    pub(super) fn wrote(&mut self, version: Version, stamp: u64) {
        if version.sequence >= self.durable.sequence {
            self.durable = version;
            self.durable_stamp = stamp;
        }
    }

    pub(super) fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The table as it stands is on disk (at start-up, it came from there).
    pub(super) fn table_written(&mut self, stamp: u64) {
        self.durable_stamp = stamp;
    }
}

impl Shared {
    /// Counts a snapshot file written (or failed) by a job of coordinated mode.
    pub(super) fn count_write(&mut self, file: &Result<Option<std::path::PathBuf>, DiskError>, elapsed_us: u64) {
        match file {
            Ok(Some(_)) => {
                self.metrics.snapshot_writes += 1;
                self.metrics.snapshot_seconds.observe(elapsed_us as f64 / 1e6);
            }
            Ok(None) => {}
            Err(_) => self.metrics.flush_failures += 1,
        }
    }

    /// Answers a taken `PUT /copy` once its version is on disk (at once without a data directory).
    pub(super) fn answer_copy_when_durable(&mut self, ticket: Ticket) {
        let sequence = self.store.version().sequence;
        self.disk.copies_waiting.push((sequence, ticket));
        self.answer_durable_copies(None);
    }

    /// Answers the `PUT /copy` requests whose version the disk now holds, or, after a failed
    /// write, every one waiting with why.
    pub(super) fn answer_durable_copies(&mut self, failed: Option<&DiskError>) {
        if self.disk.copies_waiting.is_empty() {
            return;
        }
        let durable = if self.config.durable { self.disk.durable.sequence } else { u64::MAX };
        let (done, waiting): (Vec<_>, Vec<_>) =
            self.disk.copies_waiting.drain(..).partition(|(sequence, _)| *sequence <= durable || failed.is_some());
        self.disk.copies_waiting = waiting;
        for (_, ticket) in done {
            let response = match failed {
                Some(e) => Response::error(e.status, &format!("the copy was taken but is not on disk: {}", e.message)),
                None => Response::json(201, self.store.version().to_pretty_line().into_bytes()),
            };
            self.answer(ticket, response);
        }
    }

    /// Counts a write the disk refused, and keeps it as the last one for `/state`.
    pub(super) fn note_disk_error(&mut self, now: Now, done: &Done) {
        let error = match done {
            Done::Sealed { file: Err(e), .. } | Done::Written { file: Err(e), .. } => e,
            Done::StateSaved { result: Err(e), .. } => e,
            _ => return,
        };
        self.metrics.disk_errors += 1;
        self.last_disk_error = Some((now.unix_ms, error.message.clone()));
    }

    /// The sequence of a new version made on `base`: the next one, and above every sequence the
    /// data directory named at start (`Start::floor`), so that no sequence names two versions: a
    /// node whose newest file is damaged loads an older one, and a client holding the lost
    /// version's sequence (an event stream's `Last-Event-ID`) would miss a change named so again.
    pub(super) fn next_sequence(&self, base: u64) -> u64 {
        base.max(self.floor).saturating_add(1)
    }

    /// The refusal of a write while the floor of new sequences is not known.
    pub(super) fn writes_refused(&self, method: Method) -> Option<Response> {
        let why = self.writes_refused.as_deref()?;
        matches!(method, Method::Put | Method::Post | Method::Patch | Method::Delete).then(|| Response::error(503, why))
    }

    /// Starts the next job if the writer is idle.
    pub(super) fn pump_disk(&mut self, now: Now, co: Option<&Coordinated>) {
        if self.disk.in_flight.is_some() {
            return;
        }
        let stamp = self.cluster.stamp;
        // In coordinated mode a commit is made durable on a majority (`replicate.rs`), not here.
        if co.is_none()
            && let Some(lock) = &mut self.lock
            && lock.waiting_commit().is_some()
        {
            let id = self.ids.job(Owner::Disk);
            lock.commit_running(id.serial);
            self.disk.in_flight = Some(InFlight::Commit { id: id.serial, stamp });
            let (sequence, root) = (self.floor.max(lock.base().sequence).saturating_add(1), lock.staged().clone());
            let parent = self.store.lineage().clone();
            let before = (self.store.version() == lock.base()).then(|| (lock.base(), self.store.root().clone()));
            let node = self.node_json(Shared::store_confirmed(co));
            // A node with peers pushes the change; the seal renders the body only if the change
            // cannot go (a peer that lacks its base gets the body rendered by a worker).
            let body_needed = !self.cluster.peers.is_empty();
            let job =
                Job::Seal { id, sequence, root, parent, before, node, coordination: None, write: true, body_needed };
            self.effects.push(Effect::Job(job));
            return;
        }
        let behind =
            self.config.durable && (self.store.version() != self.disk.durable || stamp != self.disk.durable_stamp);
        if !behind {
            // Nothing to retry: a commit wrote what a failed write could not.
            self.disk.retry_at = None;
        }
        if behind && self.disk.retry_at.is_none_or(|at| at.fired(now)) {
            self.disk.retry_at = None;
            self.persist(co, Writing::AsRuled);
        } else if !behind && self.wants_full_snapshot() {
            // Compaction: the writer is idle, and the chain since the last full snapshot is long.
            self.persist(co, Writing::Compact);
        }
    }

    /// Whether the served store is worth a full snapshot now (`ChainState::wants_full`).
    fn wants_full_snapshot(&self) -> bool {
        self.config.durable && self.disk.chain.wants_full(self.store.version(), self.store.data_len())
    }

    /// Writes the served store (a full snapshot, or as the rule says).
    fn persist(&mut self, co: Option<&Coordinated>, writing: Writing) {
        let id = self.ids.job(Owner::Disk);
        let (version, stamp) = (self.store.version(), self.cluster.stamp);
        self.disk.in_flight = Some(InFlight::Persist { id: id.serial, version, stamp });
        // A node without peers has set the body aside: the writer renders it.
        let sealed = Box::new(self.store.sealed().clone());
        let node = self.node_json(Shared::store_confirmed(co));
        self.effects.push(Effect::Job(Job::Write { id, sealed, node, writing }));
    }

    /// At a clean stop: a full snapshot of the served store if the newest file holds it as a
    /// change, so that the next start reads one file (`None`: nothing to write, or the writer
    /// is busy; its job finishes first).
    pub(super) fn closing_snapshot(&mut self, co: Option<&Coordinated>) -> Option<Job> {
        let chain = self.disk.chain;
        let worth = chain.newest == Some(self.store.version()) && chain.commits > 0;
        if !self.config.durable || self.disk.in_flight.is_some() || !worth {
            return None;
        }
        self.persist(co, Writing::Compact);
        match self.effects.pop() {
            Some(Effect::Job(job)) => Some(job),
            _ => unreachable!("persist pushes its job"),
        }
    }

    /// What a snapshot holds about this node: its table, its own recent commits, and whether the
    /// store is known to be committed (a store loaded unconfirmed stays so when it is written
    /// again with a new table: else the next start would serve, and gossip as committed, a
    /// version no majority may hold): `confirmed`, as `Shared::store_confirmed` says.
    pub(super) fn node_json(&self, confirmed: bool) -> NodeJson {
        let mine: Vec<String> = self.mine.iter().map(OwnCommit::to_compact).collect();
        let mine = format!("[{}]", mine.join(",")).into_bytes();
        NodeJson { cluster: self.cluster.to_compact(), mine, committed: confirmed }
    }

    /// The writer sealed the lock's commit.
    pub(super) fn sealed_done(
        &mut self,
        mut co: Option<&mut Coordinated>,
        now: Now,
        id: u64,
        sealed: Sealed,
        file: Result<Option<PathBuf>, DiskError>,
        elapsed_us: u64,
    ) {
        let Some(InFlight::Commit { id: commit, stamp }) = self.disk.in_flight.take() else {
            unreachable!("a sealed report for job {id} without a commit in flight");
        };
        assert_eq!(commit, id, "the sealed commit is the one in flight");
        // A seal that rendered the store (a full snapshot, or a change too large to go).
        self.metrics.bodies_rendered += u64::from(!sealed.body.is_empty());
        if file.as_ref().is_ok_and(Option::is_some) {
            self.metrics.snapshot_writes += 1;
            self.metrics.snapshot_seconds.observe(elapsed_us as f64 / 1e6);
        }
        self.commit_done(co.as_deref_mut(), now, sealed, file, stamp);
        self.pump_disk(now, co.as_deref());
    }

    /// The writer wrote the current store (or failed to).
    pub(super) fn written_done(
        &mut self,
        co: Option<&mut Coordinated>,
        now: Now,
        id: u64,
        file: Result<Option<PathBuf>, DiskError>,
        elapsed_us: u64,
    ) {
        let Some(InFlight::Persist { id: persist, version, stamp }) = self.disk.in_flight.take() else {
            unreachable!("a written report for job {id} without a write in flight");
        };
        assert_eq!(persist, id, "the written store is the one in flight");
        match file {
            Ok(_) => {
                self.metrics.snapshot_writes += 1;
                self.metrics.snapshot_seconds.observe(elapsed_us as f64 / 1e6);
                self.disk.durable = self.disk.durable.max(version);
                self.disk.durable_stamp = stamp;
            }
            Err(e) => {
                self.metrics.flush_failures += 1;
                error!("{}; the store is served but not on disk, retrying", e.message);
                self.disk.retry_at = Some(Deadline::after(now, PERSIST_RETRY_MS));
                self.answer_durable_copies(Some(&e));
            }
        }
        self.pump_disk(now, co.as_deref());
    }

    /// The file of a commit that lost is gone: now its 409 can be answered.
    pub(super) fn removed_done(&mut self, co: Option<&mut Coordinated>, now: Now, id: u64) {
        let Some(InFlight::Remove { id: removing }) = self.disk.in_flight.take() else {
            unreachable!("a removal report for job {id} without a removal in flight");
        };
        assert_eq!(removing, id, "the removal is the one in flight");
        self.commit_lost(now);
        self.pump_disk(now, co.as_deref());
    }

    /// The lock's commit is sealed (and durable, with a data directory), or failed.
    fn commit_done(
        &mut self,
        mut co: Option<&mut Coordinated>,
        now: Now,
        sealed: Sealed,
        file: Result<Option<PathBuf>, DiskError>,
        stamp: u64,
    ) {
        let lock = self.lock.as_mut().expect("a commit in flight has its lock");
        let lost = self.store.version() != lock.base();
        match file {
            Ok(Some(file)) if lost => {
                // A newer store arrived from a peer while the snapshot was written. It wins, and
                // this commit's file must never be loaded: the 409 waits until the file is gone,
                // so a crash in between cannot bring the lost commit back.
                let id = self.ids.job(Owner::Disk);
                lock.commit_running(id.serial);
                self.disk.in_flight = Some(InFlight::Remove { id: id.serial });
                self.effects.push(Effect::Job(Job::Remove { id, file }));
            }
            Err(e) => {
                self.metrics.flush_failures += 1;
                error!("commit of lock {} failed: {}", lock.name(), e.message);
                self.commit_failed(now, &e, false);
            }
            // A newer store arrived while the commit was sealed (without a data directory).
            Ok(_) if lost => self.commit_lost(now),
            Ok(_) => {
                let version = sealed.copy.version;
                let lock = self.commit_landed(now, version);
                if self.config.durable {
                    self.disk.durable = version;
                    self.disk.durable_stamp = stamp;
                }
                self.store.install(sealed);
                self.store_changed(co.as_deref_mut());
                let ticket = lock.commit_ticket().expect("the lock of a landed commit was committing");
                self.answer(ticket, super::write::committed(&lock, version));
                self.push_to_older(co.as_deref(), now);
            }
        }
    }

    /// The 409 of a commit whose store changed under the transaction.
    pub(super) fn conflict_response(&mut self) -> Response {
        self.metrics.conflicts += 1;
        let lock = self.lock.as_ref().expect("a conflict is about the held lock");
        warn!("commit of lock {} refused: a newer store arrived from another node", lock.name());
        let then = if lock.one_request().is_some() { "retry" } else { "the lock is still held: abort and retry" };
        let message = format!(
            "a newer store (sequence {}) arrived from another node while the lock was held \
             (the transaction started from sequence {}); nothing was committed; {then}",
            self.store.version().sequence,
            lock.base().sequence
        );
        Response::error(409, &message)
    }
}
