//! What an operator reads in `GET /metrics`: counters the core and the event loop keep, rendered
//! by hand in the Prometheus text exposition format (version 0.0.4), every name prefixed
//! `lighthouse_`.

use std::fmt::Write as _;

use crate::http::Method;

/// Upper bounds, in seconds, of the snapshot write latency histogram's buckets.
const SNAPSHOT_SECONDS_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A latency histogram with fixed buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or below each bucket's bound (not cumulative; rendering sums them).
    counts: [u64; SNAPSHOT_SECONDS_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = SNAPSHOT_SECONDS_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }

    pub fn count(&self) -> u64 {
        self.count
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
    pub snapshot_seconds: Histogram,
    /// Copies from peers that replaced the store (pushed to it or pulled by it).
    pub copies_taken: u64,
    /// Copies this node pushed that a peer took in.
    pub copies_pushed: u64,
    /// Copies this node fetched from a peer and took.
    pub copies_pulled: u64,
    /// Times a commit of this node was superseded by a concurrent commit elsewhere...
    pub superseded_commits: u64,
    /// ...and times a superseded commit came back, in a store that built on it after all.
    pub superseded_commits_recovered: u64,
    /// Kept by the event loop: answers by endpoint, method and status class, bytes, connections.
    pub requests: [[[u64; 5]; 7]; 6],
    pub bytes_received: u64,
    pub bytes_sent: u64,
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
    let one = |value: u64| vec![(String::new(), value.to_string())];

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
    family(
        "requests_total",
        "counter",
        "HTTP requests answered, by endpoint family, method and status class.",
        &requests,
    );
    family("connections_open", "gauge", "Client connections open now.", &one(metrics.connections_open));
    family("connections_accepted_total", "counter", "Client connections accepted.", &one(metrics.connections_accepted));
    family(
        "connections_refused_total",
        "counter",
        "Client connections answered 503 because --max-connections were open.",
        &one(metrics.connections_refused),
    );
    family("received_bytes_total", "counter", "Bytes read from clients.", &one(metrics.bytes_received));
    family("sent_bytes_total", "counter", "Bytes written to clients.", &one(metrics.bytes_sent));
    family("store_sequence", "gauge", "Sequence number of the store being served.", &one(gauges.sequence));
    family("store_bytes", "gauge", "Size of the store as compact JSON.", &one(gauges.store_bytes as u64));
    family(
        "active",
        "gauge",
        "1 when the node serves /data, 0 while it catches up with its cluster.",
        &one(u64::from(gauges.active)),
    );
    family("lock_held", "gauge", "1 while a lock is held.", &one(u64::from(gauges.lock_held)));
    family("commits_total", "counter", "Commits that made a new version.", &one(metrics.commits));
    family("aborts_total", "counter", "Transactions aborted by their holder.", &one(metrics.aborts));
    family(
        "lease_expiries_total",
        "counter",
        "Locks that lapsed without a request from their holder.",
        &one(metrics.lease_expiries),
    );
    family(
        "conflicts_total",
        "counter",
        "Commits answered 409: a newer store arrived from a peer during the transaction.",
        &one(metrics.conflicts),
    );
    family("snapshot_writes_total", "counter", "Snapshot files written.", &one(metrics.snapshot_writes));
    let histogram = &metrics.snapshot_seconds;
    let mut buckets = Vec::new();
    let mut cumulative = 0;
    for (bound, count) in SNAPSHOT_SECONDS_BUCKETS.iter().zip(histogram.counts) {
        cumulative += count;
        buckets.push((format!("_bucket{{le=\"{bound}\"}}"), cumulative.to_string()));
    }
    buckets.push(("_bucket{le=\"+Inf\"}".into(), histogram.count.to_string()));
    buckets.push(("_sum".into(), format!("{}", histogram.sum_seconds)));
    buckets.push(("_count".into(), histogram.count.to_string()));
    family(
        "snapshot_write_seconds",
        "histogram",
        "Time to seal and write a snapshot (serialize, hash, write, fsync).",
        &buckets,
    );
    family("flush_failures_total", "counter", "Snapshot writes that failed.", &one(metrics.flush_failures));
    family(
        "disk_errors_total",
        "counter",
        "Writes to the data directory that failed (snapshots, node.json): full, read-only, I/O error.",
        &one(metrics.disk_errors),
    );
    family(
        "snapshots_skipped",
        "gauge",
        "Snapshot files skipped as damaged at start (kept in the directory for the operator).",
        &one(metrics.snapshots_skipped),
    );
    family("peers", "gauge", "Peers in the cluster table.", &one(gauges.peers as u64));
    family("peers_reachable", "gauge", "Peers that answered the last request.", &one(gauges.peers_reachable as u64));
    family("copies_pushed_total", "counter", "Copies pushed to peers that took them.", &one(metrics.copies_pushed));
    family("copies_pulled_total", "counter", "Copies fetched from peers and taken.", &one(metrics.copies_pulled));
    family(
        "copies_taken_total",
        "counter",
        "Newer stores taken from peers, pushed or pulled.",
        &one(metrics.copies_taken),
    );
    family(
        "superseded_commits_total",
        "counter",
        "Times a commit of this node was superseded by a concurrent commit elsewhere.",
        &one(metrics.superseded_commits),
    );
    family(
        "superseded_commits_recovered_total",
        "counter",
        "Times a superseded commit of this node came back in a store that built on it.",
        &one(metrics.superseded_commits_recovered),
    );
    family("watchers", "gauge", "Long-polls and event streams waiting for a change.", &one(gauges.watchers as u64));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut metrics = Metrics::default();
        metrics.snapshot_seconds.observe(0.0007);
        metrics.snapshot_seconds.observe(0.003);
        metrics.snapshot_seconds.observe(9.0);
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
        };
        let text = render(&metrics, &gauges);
        assert!(text.contains("lighthouse_snapshot_write_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("lighthouse_snapshot_write_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("lighthouse_snapshot_write_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("lighthouse_requests_total{endpoint=\"lock\",method=\"PUT\",class=\"4xx\"} 1\n"));
        assert!(text.contains("lighthouse_requests_total{endpoint=\"state\",method=\"PUT\",class=\"2xx\"} 1\n"));
        assert!(text.contains("lighthouse_requests_total{endpoint=\"data\",method=\"GET\",class=\"2xx\"} 1\n"));
        assert!(text.contains("lighthouse_store_sequence 3\n"));
    }
}
