//! What an operator reads in `GET /metrics`: counters the core and the event loop keep, rendered
//! by hand in the Prometheus text exposition format (version 0.0.4), every name prefixed
//! `lighthouse_`.

use std::fmt::Write as _;

use super::Shared;
use super::coordinated::NodeRole;
use crate::http::Method;

/// The upper bounds, in seconds, of one histogram's buckets (a type, so that a histogram cannot be
/// rendered with another's bounds).
pub trait Buckets {
    const SECONDS: &'static [f64];
}

/// The most buckets a histogram has (besides `+Inf`).
const BUCKETS_MAX: usize = 16;

/// Snapshot writes: serialize, hash, write and fsync, from half a millisecond to seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotBuckets;
impl Buckets for SnapshotBuckets {
    const SECONDS: &'static [f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
}

/// Commits: a write to disk (and, with coordinated writes, a round trip to a majority) measured
/// in whole milliseconds, up to past the 504 of `COMMIT_TIMEOUT_MS` (1.5 s).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitBuckets;
impl Buckets for CommitBuckets {
    const SECONDS: &'static [f64] =
        &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0];
}

const _: () = assert!(SnapshotBuckets::SECONDS.len() <= BUCKETS_MAX && CommitBuckets::SECONDS.len() <= BUCKETS_MAX);
const _: () = assert!(
    CommitBuckets::SECONDS[10] * 1000.0 == crate::limits::COMMIT_TIMEOUT_MS as f64,
    "a bucket ends at the commit timeout, so the 504s stand apart"
);

/// A latency histogram with fixed buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram<B: Buckets> {
    /// Observations at or below each bucket's bound (not cumulative; rendering sums them).
    counts: [u64; BUCKETS_MAX],
    count: u64,
    sum_seconds: f64,
    buckets: std::marker::PhantomData<B>,
}

impl<B: Buckets> Histogram<B> {
    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = B::SECONDS.iter().position(|bound| seconds <= *bound) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The samples of the histogram: cumulative buckets, `+Inf`, the sum and the count.
    fn samples(&self) -> Vec<(String, String)> {
        let mut samples = Vec::new();
        let mut cumulative = 0;
        for (bound, count) in B::SECONDS.iter().zip(self.counts) {
            cumulative += count;
            samples.push((format!("_bucket{{le=\"{bound}\"}}"), cumulative.to_string()));
        }
        samples.push(("_bucket{le=\"+Inf\"}".into(), self.count.to_string()));
        samples.push(("_sum".into(), format!("{}", self.sum_seconds)));
        samples.push(("_count".into(), self.count.to_string()));
        samples
    }
}

/// The methods requests are counted under.
const METHODS: [&str; 7] = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "other"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The endpoint families requests are counted under, so that peer traffic (`copy`, `state`) can
/// be told from clients'.
const ENDPOINTS: [&str; 6] = ["data", "lock", "update", "copy", "state", "other"];

/// The endpoint family of a request target: its first path segment, if it is one of `ENDPOINTS`.
pub fn endpoint_of(target: &str) -> usize {
    let first = target.strip_prefix('/').unwrap_or(target);
    let first = first.split(['/', '?']).next().unwrap_or("");
    ENDPOINTS.iter().position(|e| *e == first).unwrap_or(ENDPOINTS.len() - 1)
}

/// Counters; each only ever grows, except the gauges marked so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub commits: u64,
    pub aborts: u64,
    pub lease_expiries: u64,
    /// Commits answered 409 because a newer store arrived during the transaction.
    pub conflicts: u64,
    /// Snapshot writes that failed (disk full, read-only, I/O error).
    pub flush_failures: u64,
    /// Snapshot files written, and how long each job took.
    pub snapshot_writes: u64,
    pub snapshot_seconds: Histogram<SnapshotBuckets>,
    /// Copies from peers that replaced the store (pushed to it or pulled by it).
    pub copies_taken: u64,
    /// Copies this node pushed that a peer took in.
    pub copies_pushed: u64,
    /// Coordinated writes: versions pushed to voters as their change, and pushes of a change a
    /// voter could not take (it lacked the base), after which it got the version whole.
    pub changes_pushed: u64,
    pub changes_refused: u64,
    /// Copy bodies of a whole version rendered for peers or `GET /copy`: by a commit's seal (a
    /// full snapshot, or a change too large to go) or by a render job. A commit whose change goes
    /// to every peer renders none.
    pub bodies_rendered: u64,
    /// Copies this node fetched from a peer and took.
    pub copies_pulled: u64,
    /// Times a commit of this node was superseded by a concurrent commit elsewhere...
    pub superseded_commits: u64,
    /// ...and times a superseded commit came back, in a store that built on it after all.
    pub superseded_commits_recovered: u64,
    /// Coordinated writes: terms this node stood for, and won (a sole voter's own term at start
    /// included)...
    pub elections_started: u64,
    pub elections_won: u64,
    /// ...times its lease as coordinator ran out (no majority acknowledged its beats in time)...
    pub leases_lost: u64,
    /// ...and commits it answered 504, outcome unknown: not durable on a majority in time, the
    /// coordinator stepped down, or (forwarded) the coordinator did not answer.
    pub commits_unknown: u64,
    /// From a commit's start (`PUT /lock/NAME`, or a one-request write taking the lock) to its
    /// answer, whatever it was, on the node that carries the commit out.
    pub commit_seconds: Histogram<CommitBuckets>,
    /// Kept by the event loop: answers by endpoint, method and status class, bytes, connections.
    pub requests: [[[u64; 5]; 7]; 6],
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Bytes of requests written to peers (pushes, accepts, gossip, beats, forwards).
    pub peer_bytes_sent: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    /// A gauge: connections open now.
    pub connections_open: u64,
    /// Writes the disk refused (snapshots and the node's state): full, read-only, I/O errors.
    pub disk_errors: u64,
    /// A gauge: snapshot files skipped as damaged at start (set by the shell once).
    pub snapshots_skipped: u64,
}

impl Metrics {
    /// Counts one answer; `endpoint` is what `endpoint_of` gave for its target.
    pub fn count_request(&mut self, endpoint: usize, method: Method, status: u16) {
        let method = match method {
            Method::Get => 0,
            Method::Head => 1,
            Method::Put => 2,
            Method::Post => 3,
            Method::Delete => 4,
            Method::Patch => 5,
            _ => 6,
        };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[endpoint.min(ENDPOINTS.len() - 1)][method][class] += 1;
    }
}

/// The node-wide values `/metrics` shows beside the counters.
pub struct Gauges {
    pub sequence: u64,
    pub store_bytes: usize,
    pub active: bool,
    pub lock_held: bool,
    pub peers: usize,
    pub peers_reachable: usize,
    pub watchers: usize,
    /// What this node is in its cluster; its term, the voters and those it reaches (0 with local
    /// writes).
    pub role: NodeRole,
    pub term: u64,
    pub voters: usize,
    pub voters_reachable: usize,
}

/// What times a commit from its start to its answer.
#[derive(Debug)]
pub struct CommitClock {
    /// The time of the input being handled: each entry point (`handle`, `tick`, `job_done`,
    /// `peer_reply`) sets it first, so that `answer` can time a commit without every path to an
    /// answer passing the time down.
    pub now: super::Now,
    /// The commit being timed: its request, and when it started (monotonic milliseconds).
    pub started: Option<(super::Ticket, u64)>,
}

impl Shared {
    /// An input is being handled at `now`: the time an answer to it is timed at.
    pub(super) fn handling(&mut self, now: super::Now) {
        self.clock.now = now;
    }

    /// A commit starts: its answer (whenever, whatever it is) is timed.
    pub(super) fn time_commit(&mut self, now: super::Now, ticket: super::Ticket) {
        self.clock.started = Some((ticket, now.mono_ms));
    }

    /// Every answer passes here: the one to the commit being timed is measured, and counted when
    /// it is a 504.
    pub(super) fn commit_answered(&mut self, ticket: super::Ticket, status: u16) {
        if let Some((_, started_ms)) = self.clock.started.take_if(|(timed, _)| *timed == ticket) {
            let elapsed_ms = self.clock.now.mono_ms.saturating_sub(started_ms);
            self.metrics.commit_seconds.observe(elapsed_ms as f64 / 1000.0);
            if status == 504 {
                self.metrics.commits_unknown += 1;
            }
        }
    }
}

/// Renders everything in the Prometheus text format.
pub fn render(metrics: &Metrics, gauges: &Gauges) -> String {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP lighthouse_{name} {help}");
        let _ = writeln!(out, "# TYPE lighthouse_{name} {kind}");
        for (suffix_and_labels, value) in samples {
            let _ = writeln!(out, "lighthouse_{name}{suffix_and_labels} {value}");
        }
    };
    family(
        "requests_total",
        COUNTER,
        "HTTP requests answered, by endpoint family, method and status class.",
        &requests(metrics),
    );
    let (m, g) = (metrics, gauges);
    scalars(
        &mut family,
        &[
            ("connections_open", GAUGE, "Client connections open now.", m.connections_open),
            ("connections_accepted_total", COUNTER, "Client connections accepted.", m.connections_accepted),
            (
                "connections_refused_total",
                COUNTER,
                "Client connections answered 503 because --max-connections were open.",
                m.connections_refused,
            ),
            ("received_bytes_total", COUNTER, "Bytes read from clients.", m.bytes_received),
            ("sent_bytes_total", COUNTER, "Bytes written to clients.", m.bytes_sent),
            (
                "peer_sent_bytes_total",
                COUNTER,
                "Bytes of requests written to peers: pushes of versions (whole or as changes), gossip, beats, forwards.",
                m.peer_bytes_sent,
            ),
            ("store_sequence", GAUGE, "Sequence number of the store being served.", g.sequence),
            ("store_bytes", GAUGE, "Size of the store as compact JSON.", g.store_bytes as u64),
            (
                "active",
                GAUGE,
                "1 when the node serves /data, 0 while it catches up with its cluster.",
                u64::from(g.active),
            ),
            ("lock_held", GAUGE, "1 while a lock is held.", u64::from(g.lock_held)),
            ("commits_total", COUNTER, "Commits that made a new version.", m.commits),
            ("aborts_total", COUNTER, "Transactions aborted by their holder.", m.aborts),
            (
                "lease_expiries_total",
                COUNTER,
                "Locks that lapsed without a request from their holder.",
                m.lease_expiries,
            ),
            (
                "conflicts_total",
                COUNTER,
                "Commits answered 409: a newer store arrived from a peer during the transaction.",
                m.conflicts,
            ),
            ("snapshot_writes_total", COUNTER, "Snapshot files written.", m.snapshot_writes),
        ],
    );
    family(
        "snapshot_write_seconds",
        "histogram",
        "Time to seal and write a snapshot (serialize, hash, write, fsync).",
        &metrics.snapshot_seconds.samples(),
    );
    scalars(
        &mut family,
        &[
            ("flush_failures_total", COUNTER, "Snapshot writes that failed.", m.flush_failures),
            (
                "disk_errors_total",
                COUNTER,
                "Writes to the data directory that failed (snapshots, node.json): full, read-only, I/O error.",
                m.disk_errors,
            ),
            (
                "snapshots_skipped",
                GAUGE,
                "Snapshot files skipped as damaged at start (kept in the directory for the operator).",
                m.snapshots_skipped,
            ),
            ("peers", GAUGE, "Peers in the cluster table.", g.peers as u64),
            ("peers_reachable", GAUGE, "Peers that answered the last request.", g.peers_reachable as u64),
            ("copies_pushed_total", COUNTER, "Copies pushed to peers that took them.", m.copies_pushed),
            (
                "changes_pushed_total",
                COUNTER,
                "Versions pushed to peers as their change from the version before, rather than whole.",
                m.changes_pushed,
            ),
            (
                "changes_refused_total",
                COUNTER,
                "Changes pushed that a peer could not take (it lacked their base): the version went whole.",
                m.changes_refused,
            ),
            (
                "bodies_rendered_total",
                COUNTER,
                "Whole copy bodies rendered (a seal that renders the store, a render for peers or GET /copy).",
                m.bodies_rendered,
            ),
            ("copies_pulled_total", COUNTER, "Copies fetched from peers and taken.", m.copies_pulled),
            ("copies_taken_total", COUNTER, "Newer stores taken from peers, pushed or pulled.", m.copies_taken),
            (
                "superseded_commits_total",
                COUNTER,
                "Times a commit of this node was superseded by a concurrent commit elsewhere.",
                m.superseded_commits,
            ),
            (
                "superseded_commits_recovered_total",
                COUNTER,
                "Times a superseded commit of this node came back in a store that built on it.",
                m.superseded_commits_recovered,
            ),
            ("watchers", GAUGE, "Long-polls and event streams waiting for a change.", g.watchers as u64),
        ],
    );
    render_cluster(metrics, gauges, &mut family);
    out
}

const GAUGE: &str = "gauge";
const COUNTER: &str = "counter";

/// Families of one sample each: (name, kind, help, value).
fn scalars(family: &mut impl FnMut(&str, &str, &str, &[(String, String)]), rows: &[(&str, &str, &str, u64)]) {
    for (name, kind, help, value) in rows {
        family(name, kind, help, &[(String::new(), value.to_string())]);
    }
}

/// The requests answered, one sample per endpoint, method and status class seen.
fn requests(metrics: &Metrics) -> Vec<(String, String)> {
    let mut requests = Vec::new();
    for (e, endpoint) in ENDPOINTS.iter().enumerate() {
        for (m, method) in METHODS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let count = metrics.requests[e][m][c];
                if count > 0 {
                    let labels = format!("{{endpoint=\"{endpoint}\",method=\"{method}\",class=\"{class}\"}}");
                    requests.push((labels, count.to_string()));
                }
            }
        }
    }
    requests
}

/// The families of the cluster: role, term, voters, elections, leases, commits.
fn render_cluster(metrics: &Metrics, gauges: &Gauges, family: &mut impl FnMut(&str, &str, &str, &[(String, String)])) {
    let roles: Vec<(String, String)> = NodeRole::OWN
        .iter()
        .map(|role| (format!("{{role=\"{}\"}}", role.as_str()), u64::from(*role == gauges.role).to_string()))
        .collect();
    family(
        "role",
        GAUGE,
        "1 for this node's role (coordinator, voter, learner, removed; local with local writes), 0 for the others.",
        &roles,
    );
    let (m, g) = (metrics, gauges);
    scalars(
        family,
        &[
            ("term", GAUGE, "The current term of coordinated writes (0 with local writes).", g.term),
            ("voters", GAUGE, "Voters of the newest version this node holds.", g.voters as u64),
            (
                "voters_reachable",
                GAUGE,
                "Voters this node reached within a lease, itself included when it is one.",
                g.voters_reachable as u64,
            ),
            ("elections_started_total", COUNTER, "Terms this node stood for election in.", m.elections_started),
            ("elections_won_total", COUNTER, "Terms this node won and coordinated.", m.elections_won),
            (
                "leases_lost_total",
                COUNTER,
                "Times this node's lease as coordinator ran out: no majority acknowledged its beats in time.",
                m.leases_lost,
            ),
            (
                "commits_unknown_total",
                COUNTER,
                "Commits this node answered 504: not known to be durable on a majority in time, outcome unknown.",
                m.commits_unknown,
            ),
        ],
    );
    family(
        "commit_duration_seconds",
        "histogram",
        "Time from a commit's start to its answer, on the node that carries it out.",
        &metrics.commit_seconds.samples(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{CoreConfig, Effect, Node, Now, Reply, Request, Start, jobs};

    #[test]
    fn a_commit_is_timed_from_its_start_to_its_answer() {
        let mut now = Now { mono_ms: 1_000, unix_ms: 1_700_000_000_000 };
        let mut node = Node::new(CoreConfig::single("127.0.0.1:1"), now, Start::empty());
        let body = b"1";
        let request = Request {
            method: Method::Put,
            target: "/data/x",
            headers: Default::default(),
            body,
            client: None,
            grant: None,
        };
        assert!(matches!(node.handle(now, 7, &request), Reply::Later));
        // The writer takes 12 ms.
        now.mono_ms += 12;
        let mut answers = Vec::new();
        loop {
            let effects: Vec<Effect> = node.drain_effects().collect();
            if effects.is_empty() {
                break;
            }
            for effect in effects {
                match effect {
                    Effect::Job(job) => node.job_done(now, jobs::run(job, &mut jobs::NoDisk, &mut || {})),
                    Effect::Answer { ticket, response } => answers.push((ticket, response.status)),
                    _ => {}
                }
            }
        }
        assert_eq!(answers, [(7, 200)]);
        let timed = &node.metrics().commit_seconds;
        assert_eq!((timed.count(), timed.sum_seconds), (1, 0.012));
        assert_eq!(node.metrics().commits_unknown, 0);
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut metrics = Metrics::default();
        metrics.snapshot_seconds.observe(0.0007);
        metrics.snapshot_seconds.observe(0.003);
        metrics.snapshot_seconds.observe(9.0);
        metrics.commit_seconds.observe(1.5);
        metrics.count_request(endpoint_of("/data/x"), Method::Get, 200);
        metrics.count_request(endpoint_of("/lock/a?x"), Method::Put, 409);
        metrics.count_request(endpoint_of("/state"), Method::Put, 200);
        let gauges = Gauges {
            sequence: 3,
            store_bytes: 10,
            active: true,
            lock_held: false,
            peers: 2,
            peers_reachable: 1,
            watchers: 0,
            role: NodeRole::Voter,
            term: 7,
            voters: 3,
            voters_reachable: 2,
        };
        let text = render(&metrics, &gauges);
        assert!(text.contains("lighthouse_snapshot_write_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("lighthouse_snapshot_write_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("lighthouse_snapshot_write_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("lighthouse_commit_duration_seconds_bucket{le=\"1\"} 0\n"));
        assert!(text.contains("lighthouse_commit_duration_seconds_bucket{le=\"1.5\"} 1\n"));
        assert!(text.contains("lighthouse_requests_total{endpoint=\"lock\",method=\"PUT\",class=\"4xx\"} 1\n"));
        assert!(text.contains("lighthouse_requests_total{endpoint=\"state\",method=\"PUT\",class=\"2xx\"} 1\n"));
        assert!(text.contains("lighthouse_requests_total{endpoint=\"data\",method=\"GET\",class=\"2xx\"} 1\n"));
        assert!(text.contains("lighthouse_store_sequence 3\n"));
        assert!(text.contains("lighthouse_role{role=\"voter\"} 1\nlighthouse_role{role=\"learner\"} 0\n"), "{text}");
        assert!(text.contains("lighthouse_term 7\n") && text.contains("lighthouse_voters_reachable 2\n"));
    }
}
